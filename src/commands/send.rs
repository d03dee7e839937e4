//! `entraform send MANIFEST --to PERSON`: hand the service's client secret to a person with the
//! `send:` command of its vault's declaration (defaults.yaml), e.g. a one-time Bitwarden Send
//! or `axe secret send`. The secret is read from the vault (`get`) and goes on the send
//! command's stdin only: never an argument, never the terminal, never the output (the send
//! command's own stdout is not shown either: it may hold a link to the secret).
//!
//! No Graph request: this hands out what the vault holds; `entraform secrets` says which
//! credential that is.

use std::sync::Arc;

use serde::Serialize;

use crate::cli::SendArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::secret::Secret;
use crate::session;
use crate::settings::Settings;
use crate::vault::Vault;

/// What `send` did (never the value: the hint is Graph's public 3-character hint).
#[derive(Debug, Serialize)]
struct SendReport {
    ok: bool,
    service: String,
    customer: String,
    to: String,
    vault_path: String,
    backend: String,
    /// The first three characters, as Entra shows them for the credential.
    hint: String,
    length: usize,
}

/// Why `to` cannot be passed to a command (`None`: fine).
fn recipient_problem(to: &str) -> Option<&'static str> {
    if to.trim().is_empty() {
        Some("is empty")
    } else if to.starts_with('-') {
        Some("starts with `-` (the send command would read it as an option)")
    } else if to.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

pub async fn run(
    args: SendArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    if let Some(why) = recipient_problem(&args.to) {
        return Err(Error::usage(
            format!("--to {:?} {why}", args.to),
            Some(
                "pass the person as the send command expects it, e.g. `--to jane@axelabs.ai`"
                    .to_string(),
            ),
        ));
    }
    let desired = crate::manifest::load_service(&args.manifest, settings.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let vault = session::open_vault(&desired, &session::manifest_dir(&args.manifest))?;
    let path = desired.secret.vault_path.clone();
    if !vault.can_send() {
        return Err(Error::usage(
            format!(
                "the vault of {} ({}) has no `send:` command",
                desired.service,
                vault.describe()
            ),
            Some(
                "declare it in defaults.yaml on the `command` vault the service uses: \
                 `send: [PROGRAM, …, \"{path}\", \"{to}\"]`, the secret goes on its stdin \
                 (README, \"Handing a secret to a person\")"
                    .to_string(),
            ),
        ));
    }
    if !vault.can_read() {
        return Err(Error::usage(
            format!(
                "the vault of {} ({}) has no `get` command, so entraform cannot read the secret to send",
                desired.service,
                vault.describe()
            ),
            Some(
                "add `get:` (or a `preset`) to the vault's declaration in defaults.yaml"
                    .to_string(),
            ),
        ));
    }
    let secret = read(Arc::clone(&vault), &path).await?;
    let Some(secret) = secret else {
        return Err(Error::other(
            format!(
                "the vault ({}) holds nothing at {path}: there is no secret to send",
                vault.describe()
            ),
            Some(format!(
                "create it with `entraform apply {}` (or `entraform rotate`), then send again",
                args.manifest.display()
            )),
        ));
    };
    let (hint, length) = (secret.hint(), secret.len());
    let to = args.to.clone();
    let backend = vault.describe();
    {
        let path = path.clone();
        let vault = Arc::clone(&vault);
        tokio::task::spawn_blocking(move || vault.send(&path, &to, &secret))
            .await
            .map_err(|e| {
                Error::other(
                    format!("the send command did not finish: {e}"),
                    None::<String>,
                )
            })??;
    }
    let report = SendReport {
        ok: true,
        service: desired.service.clone(),
        customer: desired.customer.clone(),
        to: args.to.clone(),
        vault_path: path,
        backend,
        hint,
        length,
    };
    if printer.is_json() {
        printer.json(&report);
    } else {
        printer.out(&format!(
            "sent the secret of {} (vault {}, hint {}, {} characters) to {} with the vault's send command\n",
            report.service, report.vault_path, report.hint, report.length, report.to
        ));
    }
    Ok(ExitStatus::Success)
}

async fn read(vault: Arc<dyn Vault>, path: &str) -> Result<Option<Secret>, Error> {
    Ok(crate::secret_flow::vault_get(vault, path).await?)
}
