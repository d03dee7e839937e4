//! What the vault says about a service's secret, read before planning or rotating: plan, rotate
//! and secrets all decide from it which credential is the one in use.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::graph::wire::PasswordCredential;

/// What the vault says about this service's secret (read before planning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum VaultView {
    /// The vault holds a secret; its first three characters match Graph's `hint`.
    Holds { hint: String },
    /// Nothing stored at the vault path.
    Empty,
    /// The backend cannot read back (a `command` vault without `get`).
    Unreadable,
    /// The read failed in a way that may only mean "no such entry" (a `get` that failed, no
    /// missing-entry rule declared): apply and rotate take it as holding nothing usable and
    /// write a new secret, but remove nothing on its account.
    Unknown,
}

/// The credential the vault's secret belongs to (by hint; the newest if several share it).
pub fn vault_credential<'a>(
    creds: &'a [PasswordCredential],
    vault: &VaultView,
) -> Option<&'a PasswordCredential> {
    let VaultView::Holds { hint } = vault else {
        return None;
    };
    creds
        .iter()
        .filter(|c| c.hint.as_deref() == Some(hint.as_str()))
        .max_by_key(|c| {
            c.start_date_time
                .as_deref()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        })
}
