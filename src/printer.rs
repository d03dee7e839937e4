//! The only module that writes to stdout and stderr.
//!
//! stdout carries the result (a plan, a table, JSON); every diagnostic and progress line goes to
//! stderr. Commands receive a `&Printer` and never print on their own.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// The result format on stdout (`--output text|json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One stable JSON document on stdout.
    Json,
}

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Owns stdout/stderr for the whole process.
#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    verbosity: Verbosity,
    stderr_is_tty: bool,
    stdin_is_tty: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, verbosity: Verbosity) -> Self {
        Self {
            format,
            verbosity,
            stderr_is_tty: std::io::stderr().is_terminal(),
            stdin_is_tty: std::io::stdin().is_terminal(),
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether prompts may be shown (both ends are a terminal).
    pub fn interactive(&self) -> bool {
        self.stdin_is_tty && self.stderr_is_tty
    }

    /// Whether progress bars may be drawn (stderr is a terminal and not quiet).
    pub fn fancy_progress(&self) -> bool {
        self.stderr_is_tty && self.verbosity > Verbosity::Quiet && !self.is_json()
    }

    /// The result of a command, as text, on stdout.
    pub fn out(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        if !text.ends_with('\n') && !text.is_empty() {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
    }

    /// The result of a command, as one pretty JSON document, on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| {
            format!("{{\"error\":{{\"message\":\"cannot serialize output: {e}\"}}}}")
        });
        self.out(&text);
    }

    /// A progress or status line on stderr (hidden by `--quiet`).
    pub fn status(&self, line: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{line}");
        }
    }

    /// Detail on stderr shown only with `--verbose`.
    pub fn detail(&self, line: &str) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{line}");
        }
    }

    /// A warning on stderr (always shown, even with `--quiet`).
    pub fn warn(&self, line: &str) {
        eprintln!("warning: {line}");
    }

    /// A failed command: the message, its causes, and the hint, on stderr; with `--output json`
    /// also a JSON error document on stdout so scripts always get one document.
    pub fn error<E: Report + ?Sized>(&self, err: &E) {
        let message = err.to_string();
        let mut lines = vec![format!("error: {message}")];
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            // Many errors already quote their cause in their own message; say it once.
            let text = cause.to_string();
            if !message.contains(&text) {
                lines.push(format!("  caused by: {text}"));
            }
            source = cause.source();
        }
        let hint = Report::hint(err);
        if let Some(hint) = &hint {
            for (i, line) in hint.lines().enumerate() {
                lines.push(if i == 0 {
                    format!("hint: {line}")
                } else {
                    format!("      {line}")
                });
            }
        }
        eprintln!("{}", lines.join("\n"));
        if self.is_json() {
            self.json(&serde_json::json!({
                "ok": false,
                "error": { "kind": Report::kind(err), "message": err.to_string(), "hint": hint },
            }));
        }
    }
}

/// A plain text table: left-aligned columns two spaces apart, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A failure the printer can report: its message and causes (`Display` and `source`), the fix,
/// and a stable machine name for `--output json`.
pub trait Report: std::error::Error {
    /// What the user should do about it.
    fn hint(&self) -> Option<String>;
    /// The `kind` of the `--output json` error document.
    fn kind(&self) -> &'static str;
}

/// Per-step progress: an indicatif bar on a terminal, plain lines on stderr otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    printer: Printer,
}

impl Printer {
    /// Progress over `total` steps.
    pub fn progress(&self, total: u64) -> Progress {
        let bar = self.fancy_progress().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            printer: self.clone(),
        }
    }
}

impl Progress {
    /// A step finished: print its line and advance.
    pub fn step(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => self.printer.status(line),
        }
    }

    /// What is running now (shown on the bar only).
    pub fn working(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
