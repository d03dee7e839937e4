//! What the vault says about a service's secret, read before planning or rotating: plan, rotate
//! and secrets all decide from it which credential is the one in use.

use serde::Serialize;

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

pub use crate::credential::vault_credential;
