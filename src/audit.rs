//! The audit log: one JSON line per apply/rotate event, appended to
//! `.entraform/audit.jsonl` next to the manifests (the caller passes the path).
//!
//! A record cannot hold a secret value: it has no field for one, the `hint` is refused unless it
//! is at most the 3 characters Graph itself shows for a credential, and every text field goes
//! through the same secret-shaped-run redaction as a vault command's output.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The record's `hint` is longer than Graph's 3-character credential hint.
    #[error("refusing to write an audit record whose hint is {len} characters long")]
    HintTooLong { len: usize },
    /// The record cannot be serialized.
    #[error("cannot serialize the audit record: {0}")]
    Serialize(serde_json::Error),
    /// The file or its directory could not be created, opened, appended to or read.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not a record.
    #[error("{}:{line}: not an audit record: {error}", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        error: serde_json::Error,
    },
}

impl AuditError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        AuditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditError::HintTooLong { .. } => Some(
                "the hint is Graph's 3-character credential hint, never more of the value".into(),
            ),
            AuditError::Serialize(_) | AuditError::Io { .. } => None,
            AuditError::BadLine { .. } => Some(
                "the audit log is append-only JSON lines; restore the line from a backup or move the file aside".into(),
            ),
        }
    }
}

/// The one audit sink: append a record, and if that fails say so through `warn` (the printer's
/// warning line, or the log) instead of failing the run; the audit log never stops a change that
/// already happened.
pub fn record(path: &Path, record: &AuditRecord, warn: impl FnOnce(&str)) {
    if let Err(e) = append(path, record) {
        warn(&format!(
            "cannot append to the audit log {}: {e}",
            path.display()
        ));
    }
}

/// Append one record as a JSON line (creating the file 0600 and its directory as needed). One
/// `write` of a whole line on an append-mode file, so concurrent runs do not interleave lines.
pub fn append(path: &Path, record: &AuditRecord) -> Result<(), AuditError> {
    if let Some(hint) = &record.hint
        && hint.chars().count() > 3
    {
        return Err(AuditError::HintTooLong {
            len: hint.chars().count(),
        });
    }
    let mut line = serde_json::to_vec(&record.sanitized()).map_err(AuditError::Serialize)?;
    line.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create", dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| AuditError::io("open", path, e))?;
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|e| AuditError::io("append to", path, e))
}

/// Every record of an audit file (an absent file has none). A bad line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<AuditRecord>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuditError::io("read", path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|error| AuditError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                error,
            })
        })
        .collect()
}
