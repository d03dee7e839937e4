//! `entraform new SERVICE`: scaffold `manifests/SERVICE.yaml` (docs/manifests.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::NewArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::manifest::{self, DEFAULTS_FILE, ManifestError, PortOwner, lower};
use crate::printer::Printer;
use crate::scaffold::{self, ScaffoldValues};
use crate::settings::Settings;

/// `--output json` of `new`.
#[derive(Debug, Serialize)]
struct NewOutput {
    path: PathBuf,
    service: String,
    customer: String,
    proxy_port: u16,
}

pub fn run(args: NewArgs, settings: &Settings, printer: &Printer) -> Result<ExitStatus, Error> {
    let service = args.service.clone();
    if !lower::is_service_name(&service) {
        let (message, hint) = lower::service_name_problem(&service);
        return Err(Error::usage(format!("SERVICE: {message}"), hint));
    }
    let target = args.dir.join(format!("{service}.yaml"));
    if target.exists() {
        return Err(Error::other(
            format!(
                "refusing to overwrite {}: it already exists",
                target.display()
            ),
            format!(
                "edit it, or choose another service name; to start over, move it away first (`mv {0} {0}.old`)",
                target.display()
            ),
        ));
    }
    let defaults_path = match &settings.defaults {
        Some(p) => p.clone(),
        None => args.dir.join(DEFAULTS_FILE),
    };
    if settings.defaults.is_none() && !defaults_path.exists() {
        return Err(ManifestError::DefaultsNotFound {
            manifest: target,
            looked: defaults_path,
        }
        .into());
    }
    let loaded = manifest::load_defaults(&defaults_path)?;
    let defaults = &loaded.defaults;
    let owners = manifest::scan_dir(&args.dir, &[&defaults_path]);
    let next_free = manifest::next_free_port(&owners, &defaults.ports);
    let ask = printer.interactive() && !settings.yes;

    let customer = choose_customer(&args, defaults, ask, settings.yes)?;
    let default_display = format!("{} MCP", capitalize(&service));
    let display_name = match &args.display_name {
        Some(n) => n.clone(),
        None if ask => prompt_text("Display name", &default_display, false)?,
        None => default_display,
    };
    let proxy_port = match args.proxy_port {
        Some(p) => {
            check_port(p, &owners, next_free)?;
            p
        }
        None if ask => prompt_port(next_free, &owners)?,
        None => next_free,
    };
    let suggested_reference = most_common_reference(&owners, &service);
    let reference = match &args.reference {
        Some(r) => {
            check_reference(r, &service)?;
            Some(r.clone())
        }
        None if ask => {
            let r = prompt_text(
                "Reference app (a service name or appId; empty for none)",
                suggested_reference.as_deref().unwrap_or(""),
                true,
            )?;
            if r.is_empty() {
                None
            } else {
                check_reference(&r, &service)?;
                Some(r)
            }
        }
        None => suggested_reference,
    };

    let values = ScaffoldValues {
        service: service.clone(),
        customer: customer.clone(),
        display_name,
        proxy_port,
        reference,
        host: defaults.customers[&customer].host.clone(),
        block: defaults.ports.block,
        defaults_name: defaults_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULTS_FILE.into()),
    };
    let text = scaffold::render_manifest(&values).map_err(|e| {
        Error::other(
            format!("cannot render the manifest template: {e}"),
            "this is a bug in entraform's embedded template; please report it".to_string(),
        )
    })?;
    scaffold::write_new(&target, &text).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::other(
                format!(
                    "refusing to overwrite {}: it already exists",
                    target.display()
                ),
                "another process created it meanwhile; edit it or choose another name".to_string(),
            )
        } else {
            Error::io("write", &target, e)
        }
    })?;
    // The written manifest must load like any other; if it does not, take it back.
    if let Err(e) = manifest::load_service(&target, settings.defaults.as_deref()) {
        let _ = std::fs::remove_file(&target);
        return Err(e.into());
    }

    if printer.is_json() {
        printer.json(&NewOutput {
            path: target.clone(),
            service,
            customer,
            proxy_port,
        });
    } else {
        printer.out(&target.display().to_string());
    }
    let defaults_flag = settings
        .defaults
        .as_ref()
        .map(|p| format!(" --defaults {}", shell_word(p)))
        .unwrap_or_default();
    let m = shell_word(&target);
    printer.status(&format!(
        "created {} (proxy port {proxy_port})",
        target.display()
    ));
    printer.status("next:");
    printer.status(&format!(
        "  entraform render {m}{defaults_flag}   # the four deployment fragments"
    ));
    printer.status(&format!(
        "  entraform plan {m}{defaults_flag}     # what would change in the tenant"
    ));
    printer.status(&format!(
        "  entraform apply {m}{defaults_flag}    # create the app, the secret in the vault, the consent"
    ));
    Ok(ExitStatus::Success)
}

/// A path as one shell word (quoted only when needed).
fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-~".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn choose_customer(
    args: &NewArgs,
    defaults: &manifest::model::DefaultsManifest,
    ask: bool,
    yes: bool,
) -> Result<String, Error> {
    let keys: Vec<&String> = defaults.customers.keys().collect();
    let list = keys
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(c) = &args.customer {
        if defaults.customers.contains_key(c) {
            return Ok(c.clone());
        }
        return Err(Error::usage(
            format!("--customer {c:?} is not a customer in defaults.yaml; expected one of: {list}"),
            format!("pass one of: {list}, or add `{c}:` under `customers:` in defaults.yaml"),
        ));
    }
    if keys.len() == 1 {
        return Ok(keys[0].clone());
    }
    // The organisation's own customer is the natural default (axe for the axe organisation).
    let own = defaults
        .customers
        .contains_key(&defaults.organisation)
        .then(|| defaults.organisation.clone());
    if ask {
        let default = own
            .as_ref()
            .and_then(|o| keys.iter().position(|k| *k == o))
            .unwrap_or(0);
        let items: Vec<String> = keys
            .iter()
            .map(|k| format!("{k} ({})", defaults.customers[*k].host))
            .collect();
        let i = dialoguer::Select::new()
            .with_prompt("Customer")
            .items(&items)
            .default(default)
            .interact()
            .map_err(prompt_error)?;
        return Ok(keys[i].clone());
    }
    match own {
        Some(o) if yes => Ok(o),
        _ => Err(Error::usage(
            format!(
                "missing --customer: defaults.yaml has several customers ({list}) and there is no terminal to ask"
            ),
            format!(
                "pass --customer {}{}",
                keys[0],
                if defaults.customers.contains_key(&defaults.organisation) {
                    format!(
                        ", or --yes to take the organisation's own customer ({})",
                        defaults.organisation
                    )
                } else {
                    String::new()
                }
            ),
        )),
    }
}

fn prompt_error(e: dialoguer::Error) -> Error {
    Error::other(
        format!("cannot prompt: {e}"),
        "pass the values as flags (--customer, --display-name, --proxy-port, --reference) with --yes".to_string(),
    )
}

fn prompt_text(prompt: &str, default: &str, allow_empty: bool) -> Result<String, Error> {
    let mut input = dialoguer::Input::<String>::new()
        .with_prompt(prompt)
        .allow_empty(allow_empty);
    if !default.is_empty() {
        input = input.default(default.to_string());
    }
    input
        .interact_text()
        .map(|s| s.trim().to_string())
        .map_err(prompt_error)
}

fn prompt_port(next_free: u16, owners: &[PortOwner]) -> Result<u16, Error> {
    let owners = owners.to_vec();
    dialoguer::Input::<u16>::new()
        .with_prompt("Proxy port (host port Caddy listens on)")
        .default(next_free)
        .validate_with(move |p: &u16| port_problem(*p, &owners, next_free).map_or(Ok(()), Err))
        .interact_text()
        .map_err(prompt_error)
}

fn port_problem(port: u16, owners: &[PortOwner], next_free: u16) -> Option<String> {
    if port == 0 {
        return Some(format!("0 is not a port; the next free one is {next_free}"));
    }
    owners.iter().find(|o| o.ports().contains(&port)).map(|o| {
        format!(
            "{port} is already used by {}{}; the next free one is {next_free}",
            o.path.display(),
            o.service
                .as_ref()
                .map(|s| format!(" (service {s:?})"))
                .unwrap_or_default()
        )
    })
}

fn check_port(port: u16, owners: &[PortOwner], next_free: u16) -> Result<(), Error> {
    match port_problem(port, owners, next_free) {
        Some(problem) => Err(Error::usage(
            format!("--proxy-port: {problem}"),
            format!("pass --proxy-port {next_free}, or leave the flag out to get it"),
        )),
        None => Ok(()),
    }
}

fn check_reference(r: &str, service: &str) -> Result<(), Error> {
    if r == service {
        return Err(Error::usage(
            format!("--reference {r:?} is the new service itself"),
            "name the service whose app this one must match, e.g. --reference frame".to_string(),
        ));
    }
    if !lower::is_service_name(r) && !lower::is_guid(r) {
        return Err(Error::usage(
            format!("--reference {r:?} is neither a service name nor an appId"),
            "e.g. --reference frame".to_string(),
        ));
    }
    Ok(())
}

/// The reference most other manifests use (frame, for the axe organisation).
fn most_common_reference(owners: &[PortOwner], service: &str) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in owners.iter().filter_map(|o| o.reference.as_deref()) {
        if r != service {
            *counts.entry(r).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(r, _)| r.to_string())
}
