//! What `secrets` and `rotate` share: the services a run covers, and a failure as `--output json`
//! reports it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::desired::Desired;
use crate::error::Error;
use crate::printer::Printer;
use crate::session;
use crate::settings::Settings;

/// The services a command runs on: one manifest, or every manifest of `--all DIR`; plus the
/// directory relative vault and audit paths are resolved against.
pub(super) fn targets(
    manifest: Option<&Path>,
    all: Option<&Path>,
    settings: &Settings,
    printer: &Printer,
) -> Result<(Vec<Desired>, PathBuf), Error> {
    let (desired, base) = match (manifest, all) {
        (_, Some(dir)) => {
            let desired = crate::manifest::load_all(dir, settings.defaults.as_deref())?;
            if desired.is_empty() {
                return Err(Error::usage(
                    format!("{} holds no service manifests", dir.display()),
                    Some(
                        "pass the directory holding <service>.yaml files (and defaults.yaml)"
                            .to_string(),
                    ),
                ));
            }
            (desired, dir.to_path_buf())
        }
        (Some(m), None) => (
            vec![crate::manifest::load_service(
                m,
                settings.defaults.as_deref(),
            )?],
            session::manifest_dir(m),
        ),
        (None, None) => {
            return Err(Error::usage(
                "name a manifest or pass --all DIR",
                None::<String>,
            ));
        }
    };
    for d in &desired {
        for w in &d.warnings {
            printer.warn(&format!("{}: {w}", d.service));
        }
    }
    Ok((desired, base))
}

/// A failure, for `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    pub message: String,
    pub hint: Option<String>,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        ErrorInfo {
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}
