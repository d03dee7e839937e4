//! The audit log (SPEC §5): one JSON line per apply/rotate event, appended to
//! `.entraform/audit.jsonl` next to the manifests (the caller passes the path).
//!
//! A record cannot hold a secret value: it has no field for one, the `hint` is refused unless it
//! is at most the 3 characters Graph itself shows for a credential, and every text field goes
//! through the same secret-shaped-run redaction as a vault command's output.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Error;
use crate::vault::redact::redact;

/// The file name under `.entraform/`.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// An apply run (one record per run, plus one per credential event below).
    Apply,
    /// A rotate run.
    Rotate,
    /// A client secret was added (`addPassword`) and stored in the vault.
    AddSecret,
    /// A client secret was removed (`removePassword`): pruned after the overlap.
    RemoveSecret,
    /// A just-added secret was removed again because storing or proving it failed.
    Rollback,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done as intended.
    Success,
    /// Nothing needed doing.
    NoChange,
    /// Failed; `detail` says why.
    Failed,
    /// Failed, and the new credential was removed again.
    RolledBack,
    /// Failed, and removing the new credential failed too: `key_id` must be removed by hand.
    RollbackFailed,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (UTC, RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Who ran it (UPN or appId of the signed-in principal, or the local user).
    pub operator: String,
    /// Tenant GUID.
    pub tenant: String,
    /// Service name of the manifest.
    pub service: String,
    /// The application's appId, once known.
    pub app_id: Option<String>,
    pub action: AuditAction,
    /// The credential's keyId, for secret events.
    pub key_id: Option<String>,
    /// The credential's public hint (first 3 characters, as Graph reports it).
    pub hint: Option<String>,
    pub outcome: AuditOutcome,
    /// Free text (an error message), never a value.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record stamped now, by [`local_operator`]; fill in the optional fields as known.
    pub fn new(
        tenant: impl Into<String>,
        service: impl Into<String>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            time: OffsetDateTime::now_utc(),
            operator: local_operator(),
            tenant: tenant.into(),
            service: service.into(),
            app_id: None,
            action,
            key_id: None,
            hint: None,
            outcome,
            detail: None,
        }
    }

    /// A copy safe to write: text fields redacted (anything long enough to be a secret).
    fn sanitized(&self) -> Self {
        let r = |s: &String| redact(s, None);
        Self {
            time: self.time,
            operator: r(&self.operator),
            tenant: r(&self.tenant),
            service: r(&self.service),
            app_id: self.app_id.as_ref().map(r),
            action: self.action,
            key_id: self.key_id.as_ref().map(r),
            hint: self.hint.clone(),
            outcome: self.outcome,
            detail: self.detail.as_ref().map(r),
        }
    }
}

/// `.entraform/audit.jsonl` in `manifest_dir`.
pub fn default_path(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".entraform").join(AUDIT_FILE)
}

/// The local user, for records made before (or without) a signed-in principal is known.
pub fn local_operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Append one record as a JSON line (creating the file 0600 and its directory as needed). One
/// `write` of a whole line on an append-mode file, so concurrent runs do not interleave lines.
pub fn append(path: &Path, record: &AuditRecord) -> Result<(), Error> {
    if let Some(hint) = &record.hint
        && hint.chars().count() > 3
    {
        return Err(Error::other(
            format!(
                "refusing to write an audit record whose hint is {} characters long",
                hint.chars().count()
            ),
            "the hint is Graph's 3-character credential hint, never more of the value".to_owned(),
        ));
    }
    let mut line = serde_json::to_vec(&record.sanitized())
        .map_err(|e| Error::other(format!("cannot serialize the audit record: {e}"), None))?;
    line.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| Error::io("open", path, e))?;
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("append to", path, e))
}

/// Every record of an audit file (an absent file has none). A bad line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<AuditRecord>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::other(
                    format!("{}:{}: not an audit record: {e}", path.display(), i + 1),
                    "the audit log is append-only JSON lines; restore the line from a backup or move the file aside".to_owned(),
                )
            })
        })
        .collect()
}
