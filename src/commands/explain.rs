//! `entraform explain CODE|MESSAGE`.

use serde::Serialize;

use crate::cli::ExplainArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::explain::{self, Entry, Lookup};
use crate::printer::Printer;

/// `--output json`: `{query, matches: [entry…]}`.
#[derive(Debug, Serialize)]
struct ExplainOutput<'a> {
    query: &'a str,
    matches: Vec<&'static Entry>,
}

pub fn run(args: ExplainArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let query = args.query.join(" ");
    match explain::explain(&query) {
        Lookup::Found(entries) => {
            if printer.is_json() {
                printer.json(&ExplainOutput {
                    query: &query,
                    matches: entries,
                });
            } else {
                let text = entries
                    .iter()
                    .map(|e| explain::render_text(e))
                    .collect::<Vec<_>>()
                    .join("\n");
                printer.out(&text);
            }
            Ok(ExitStatus::Success)
        }
        Lookup::NotFound { code, closest } => {
            let mut hint = String::from("closest entries:");
            for e in &closest {
                hint.push_str(&format!("\n  {:<28} {}", e.id, e.title));
            }
            hint.push_str(&format!(
                "\nrun `entraform explain {}` for one of them",
                closest.first().map_or("AADSTS700016", |e| e.id)
            ));
            if let Some(c) = code {
                hint.push_str(&format!(
                    "\nMicrosoft's description of the code: https://login.microsoftonline.com/error?code={c}"
                ));
            }
            let what = match code {
                Some(c) => format!("AADSTS{c} is not in entraform's table"),
                None => format!("no explanation matches {query:?}"),
            };
            Err(Error::other(what, hint))
        }
    }
}
