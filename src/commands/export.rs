//! `entraform export MANIFEST|APP_ID [--out FILE]`: the app's Graph JSON without secrets, plus
//! its identity and SP/grants summary: a file `drift --reference FILE` reads, so a team can
//! keep frame's shape in git.

use std::path::Path;

use crate::cli::ExportArgs;
use crate::drift::{Identity, ReferenceFile, Target, read_targets};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::session::Session;
use crate::settings::Settings;

pub async fn run(
    args: ExportArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let raw = args.target.trim();
    let (target, desired) = match uuid::Uuid::parse_str(raw) {
        Ok(id) => (Target::AppId(id.hyphenated().to_string()), None),
        Err(_) => {
            let path = Path::new(raw);
            if !path.is_file() {
                return Err(Error::usage(
                    format!("`{raw}` is neither an application (client) id nor a manifest file"),
                    Some(
                        "give a service manifest (`manifests/frame.yaml`) or the app's client id (a GUID)"
                            .to_string(),
                    ),
                ));
            }
            let d = crate::manifest::load_service(path, settings.defaults.as_deref())?;
            (Target::Manifest(Box::new(d.clone())), Some(d))
        }
    };
    // A manifest names its customer, so its tenant; a bare app id is read in the credential's
    // own tenant (there is no customer to hold it to).
    let session = match &desired {
        Some(d) => Session::for_service(settings, d).await?,
        None => Session::from_settings(settings)?,
    };
    let found = read_targets(&session.client, std::slice::from_ref(&target), true)
        .await?
        .pop()
        .transpose()?
        .flatten();
    let Some(snapshot) = found else {
        return Err(Error::other(
            match &desired {
                Some(d) => format!(
                    "no app for {} in tenant {} (looked up by {}uniqueName {} and App ID URI {})",
                    d.service,
                    d.tenant_id,
                    d.app_id
                        .as_deref()
                        .map(|id| format!("app_id {id}, "))
                        .unwrap_or_default(),
                    d.unique_name,
                    d.app.identifier_uri
                ),
                None => format!("no application with appId {raw} in this tenant"),
            },
            Some(match &desired {
                Some(_) => "apply the manifest first (`entraform apply MANIFEST`)".to_string(),
                None => {
                    "check the client id and that the credentials are for its tenant".to_string()
                }
            }),
        ));
    };
    let identity = match &desired {
        Some(d) => Identity::of_desired(d, Some(&snapshot.application)),
        None => Identity::infer(&snapshot.application),
    };
    let file = ReferenceFile::from_snapshot(&snapshot, &identity);
    let json = file.to_json();
    let app_id = snapshot.application.app_id.clone().unwrap_or_default();
    match &args.out {
        None => printer.out(&json),
        Some(out) => {
            crate::render::write_atomic(out, json.as_bytes(), None)?;
            printer.status(&format!(
                "use it with `entraform drift MANIFEST --reference {}`",
                out.display()
            ));
            if printer.is_json() {
                printer.json(&serde_json::json!({
                    "ok": true,
                    "service": identity.service,
                    "app_id": app_id,
                    "out": out,
                }));
            } else {
                printer.out(&format!(
                    "Exported {} (appId {app_id}) to {}",
                    if identity.service.is_empty() {
                        "the app"
                    } else {
                        identity.service.as_str()
                    },
                    out.display()
                ));
            }
        }
    }
    Ok(ExitStatus::Success)
}
