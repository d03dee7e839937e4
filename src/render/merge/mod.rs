//! In-place merges into hand-kept files: `customers.yaml` and the cloudflared tunnel config.
//!
//! The files are edited as text, never re-serialized: `yamlpath` (the query half of yamlpatch)
//! locates the mappings and sequences, and the new entries are inserted as lines at the right
//! indentation, so comments, order, quoting and every unrelated entry stay byte for byte.
//! (yamlpatch's own `Add`/`Append` flatten nested values and can only append at the end of a
//! sequence, while cloudflared's rules must go before the catch-all.)
//!
//! Every merge checks its own output before writing: the merged text must parse to exactly the
//! original document plus the intended changes, and a merged cloudflared config must validate
//! and route each new rule's probe URL to that rule. A second merge finds nothing to do and
//! writes nothing. A changed file is written atomically, and its previous content is kept as
//! `FILE.bak`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RenderError, write_atomic};
use crate::desired::Desired;

mod cloudflared;
mod customers;
mod engine;

pub use cloudflared::merge_cloudflared_text;
pub use customers::merge_customers_text;

/// What a merge did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// `customers` or `cloudflared`.
    pub kind: &'static str,
    pub path: PathBuf,
    /// False when the file already held everything (it was not touched).
    pub changed: bool,
    /// Where the previous content was saved, when the file changed.
    pub backup: Option<PathBuf>,
    /// What was added or replaced, one line each (`added azure_apps.axe.blueprint_mcp`).
    pub actions: Vec<String>,
    /// Things the operator should know that did not stop the merge.
    pub warnings: Vec<String>,
}

/// The merged text of a file and what changed (the pure half of a merge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    pub actions: Vec<String>,
    pub warnings: Vec<String>,
}

/// An existing value that differs from the one entraform would write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// 1-based line of the existing value.
    pub line: usize,
    /// What it is (`azure_apps.axe.blueprint_mcp.client_id`, `ingress rule #3 service`).
    pub what: String,
    pub existing: String,
    pub wanted: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} is {}, entraform would write {}",
            self.line, self.what, self.existing, self.wanted
        )
    }
}

/// Merge the service's entries into a customers.yaml: `azure_apps.<customer>.<service>_mcp`
/// and `services.<service>` (its secret item is added to an existing `secrets:` list).
///
/// `client_id = None` keeps an existing client id; with no entry to keep it refuses, so a live
/// customers.yaml never gets a placeholder. A value that differs from the desired one is a
/// conflict (every conflict is listed with its line) unless `force`, except a placeholder
/// client id, which is always filled in.
pub fn merge_customers(
    file: &Path,
    desired: &Desired,
    client_id: Option<&str>,
    force: bool,
) -> Result<MergeReport, RenderError> {
    merge_file(file, "customers", |text, path| {
        merge_customers_text(text, path, desired, client_id, force)
    })
}

/// Insert the service's ingress rules into a cloudflared config, as one group right before the
/// first existing rule that could match any URL they route (above any comment lines directly
/// over that rule; at the latest before the catch-all). A rule with the same hostname and path
/// but another service is a conflict unless `force` (which replaces its service). A config that
/// cloudflared would reject (no catch-all last, a bad regex, …) is refused with cloudflared's
/// own message.
pub fn merge_cloudflared(
    file: &Path,
    desired: &Desired,
    force: bool,
) -> Result<MergeReport, RenderError> {
    merge_file(file, "cloudflared", |text, path| {
        merge_cloudflared_text(text, path, desired, force)
    })
}

fn merge_file(
    file: &Path,
    kind: &'static str,
    merge: impl FnOnce(&str, &Path) -> Result<Merged, RenderError>,
) -> Result<MergeReport, RenderError> {
    // Edit the file a symlink points at (dotfiles often are links), not the link.
    let real = fs::canonicalize(file).map_err(|e| RenderError::io("read", file, e))?;
    let meta = fs::metadata(&real).map_err(|e| RenderError::io("read", file, e))?;
    let bytes = fs::read(&real).map_err(|e| RenderError::io("read", file, e))?;
    let text = String::from_utf8(bytes).map_err(|e| RenderError::MergeParse {
        path: file.to_path_buf(),
        line: None,
        message: format!("not UTF-8 text ({e})"),
    })?;
    let merged = merge(&text, file)?;
    if merged.text == text {
        return Ok(MergeReport {
            kind,
            path: file.to_path_buf(),
            changed: false,
            backup: None,
            actions: merged.actions,
            warnings: merged.warnings,
        });
    }
    // Next to the file that is written; named as the user named it unless that was a link.
    let is_link = fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink());
    let mut backup = if is_link {
        real.clone()
    } else {
        file.to_path_buf()
    }
    .into_os_string();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    write_atomic(&backup, text.as_bytes(), Some(&meta))?;
    write_atomic(&real, merged.text.as_bytes(), Some(&meta))?;
    Ok(MergeReport {
        kind,
        path: file.to_path_buf(),
        changed: true,
        backup: Some(backup),
        actions: merged.actions,
        warnings: merged.warnings,
    })
}
