//! What `--reference` names, and the reference file `entraform export` writes.
//!
//! The file is the app's Graph JSON without secrets (passwordCredentials keep keyId, name and
//! dates; never `hint` or `secretText`), plus what drift needs beside it: the identity to
//! normalize (service, host, display name) and the SP/grants summary. A plain Graph
//! application JSON (`az ad app show --id …`) is accepted too; the SP and consent rows are
//! then not compared.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::wire::Application;

use super::{GrantSummary, Identity, Related, Snapshot, SpSummary};

/// Why `--reference` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The argument is neither a service name, an appId nor a file (a usage error, exit 2).
    #[error("--reference `{raw}` is not a service name, an appId or a file")]
    NotAReference { raw: String },
    /// The reference file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The reference file is not an export nor a Graph application.
    #[error("{}: {what}", path.display())]
    BadFile { path: PathBuf, what: String },
}

impl ReferenceError {
    /// What the user should do about it (an unreadable file's hint is the I/O one, given by the
    /// caller's error type).
    pub fn hint(&self) -> Option<String> {
        match self {
            ReferenceError::NotAReference { .. } => Some(
                "give the reference's service name (`frame`, read from frame.yaml beside the \
                 manifest), its application (client) id, or a JSON file from `entraform export`"
                    .to_string(),
            ),
            ReferenceError::Io { .. } => None,
            ReferenceError::BadFile { .. } => Some(
                "give a file written by `entraform export MANIFEST|APP_ID --out FILE` (or the \
                 application JSON of `az ad app show --id APP_ID`)"
                    .to_string(),
            ),
        }
    }
}

/// The `format` of a reference file.
pub const REFERENCE_FORMAT: &str = "entraform.reference/v1";

/// What `--reference` (or a manifest's `reference:`) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceSpec {
    /// A service manifest: `NAME` is `<manifest dir>/NAME.yaml`; a `.yaml` path as given.
    Manifest(PathBuf),
    /// An application (client) id.
    AppId(String),
    /// A file written by `entraform export` (or a Graph application JSON).
    File(PathBuf),
}

/// The directory a manifest's siblings are in (`.` for a bare file name).
pub fn manifest_dir(manifest: &Path) -> PathBuf {
    manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn is_service_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && (2..=31).contains(&s.len())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ReferenceSpec {
    /// `NAME` (a manifest beside `manifest_dir`), an appId (a GUID), or a file path.
    pub fn parse(raw: &str, manifest_dir: &Path) -> Result<Self, ReferenceError> {
        let raw = raw.trim();
        if let Ok(id) = uuid::Uuid::parse_str(raw) {
            return Ok(ReferenceSpec::AppId(id.hyphenated().to_string()));
        }
        let path = Path::new(raw);
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml") {
            return Ok(ReferenceSpec::Manifest(path.to_path_buf()));
        }
        if ext == "json" || path.is_file() {
            return Ok(ReferenceSpec::File(path.to_path_buf()));
        }
        if is_service_name(raw) {
            return Ok(ReferenceSpec::Manifest(
                manifest_dir.join(format!("{raw}.yaml")),
            ));
        }
        Err(ReferenceError::NotAReference {
            raw: raw.to_string(),
        })
    }
}

/// The file `entraform export` writes and `--reference FILE` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceFile {
    /// [`REFERENCE_FORMAT`].
    pub format: String,
    pub service: String,
    pub host: String,
    pub display_name: String,
    /// The Graph application JSON, secrets removed.
    pub application: Value,
    pub service_principal: Option<SpSummary>,
    pub grants: Vec<GrantSummary>,
}

impl ReferenceFile {
    /// From a live snapshot. `passwordCredentials` keep only keyId, displayName and dates.
    pub fn from_snapshot(snapshot: &Snapshot, identity: &Identity) -> Self {
        let app = &snapshot.application;
        let mut application = serde_json::to_value(app).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut application {
            // `Application` serializes for writes (no read-only keys); add back what a
            // reference needs: the ids and the credentials' metadata.
            let put = |map: &mut serde_json::Map<String, Value>, k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    map.insert(k.into(), Value::String(v.clone()));
                }
            };
            put(map, "id", &app.id);
            put(map, "appId", &app.app_id);
            let creds: Vec<Value> = app
                .password_credentials
                .iter()
                .flatten()
                .map(|c| {
                    serde_json::json!({
                        "keyId": c.key_id,
                        "displayName": c.display_name,
                        "startDateTime": c.start_date_time,
                        "endDateTime": c.end_date_time,
                    })
                })
                .collect();
            map.insert("passwordCredentials".into(), Value::Array(creds));
        }
        let related = snapshot.related.clone().unwrap_or_default();
        ReferenceFile {
            format: REFERENCE_FORMAT.into(),
            service: identity.service.clone(),
            host: identity.host.clone(),
            display_name: identity.display_name.clone(),
            application,
            service_principal: related.service_principal,
            grants: related.grants,
        }
    }

    /// The snapshot and identity it describes.
    pub fn to_snapshot(&self) -> Result<(Snapshot, Identity), serde_json::Error> {
        let application: Application = serde_json::from_value(self.application.clone())?;
        let mut identity = Identity {
            service: self.service.clone(),
            host: self.host.clone(),
            display_name: self.display_name.clone(),
            ids: Vec::new(),
        };
        identity.ids = super::app_ids(&application);
        if let Some(sp) = &self.service_principal {
            identity.ids.push(sp.id.clone());
        }
        Ok((
            Snapshot {
                application,
                related: Some(Related {
                    service_principal: self.service_principal.clone(),
                    grants: self.grants.clone(),
                }),
            },
            identity,
        ))
    }

    /// Pretty JSON with a trailing newline (stable: re-exporting an unchanged app changes no
    /// byte).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Read `--reference FILE`: an export, or a plain Graph application JSON.
pub fn load_file(path: &Path) -> Result<(Snapshot, Identity), ReferenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReferenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |what: String| ReferenceError::BadFile {
        path: path.to_path_buf(),
        what,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    match value.get("format").and_then(Value::as_str) {
        Some(REFERENCE_FORMAT) => {
            let file: ReferenceFile = serde_json::from_value(value)
                .map_err(|e| bad(format!("not a valid reference file: {e}")))?;
            file.to_snapshot()
                .map_err(|e| bad(format!("its application is not a Graph application: {e}")))
        }
        Some(other) => Err(bad(format!(
            "unknown format {other:?} (this entraform reads {REFERENCE_FORMAT})"
        ))),
        None => {
            let looks_like_app = value.get("appId").is_some()
                || value.get("identifierUris").is_some()
                || value.get("api").is_some();
            if !looks_like_app {
                return Err(bad(
                    "neither a reference file nor a Graph application (no format, appId, \
                     identifierUris or api)"
                        .into(),
                ));
            }
            let application: Application = serde_json::from_value(value)
                .map_err(|e| bad(format!("not a Graph application: {e}")))?;
            let identity = Identity::infer(&application);
            Ok((
                Snapshot {
                    application,
                    related: None,
                },
                identity,
            ))
        }
    }
}
