//! Vault backends (SPEC §5): where the client secret lives. The secret reaches a backend only as
//! a [`Secret`] and leaves it only as one.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// `vault:` in defaults.yaml or a service manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultConfig {
    /// The OS keychain (Secret Service on Linux, keyutils where none runs).
    Keyring {
        /// Keyring service name; the entry's user is the vault path.
        #[serde(default = "default_keyring_service")]
        service: String,
    },
    /// External commands; `{path}` is replaced by the vault path. The secret goes on stdin.
    Command {
        /// e.g. `[axe, secret, push, "{path}", "-"]`
        push: Vec<String>,
        /// e.g. `[axe, secret, get, "{path}", "-n"]`; without it there is no read-back.
        #[serde(default)]
        get: Option<Vec<String>>,
    },
    /// Upsert `KEY=value` (KEY = the secret env name) in a `.env` file, mode 0600.
    Dotenv { path: PathBuf },
    /// A 0600 JSON store keyed by vault path (used by `--sandbox`).
    File { path: PathBuf },
}

fn default_keyring_service() -> String {
    "entraform".into()
}

/// Failures of a vault backend. Messages never contain the secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault backend {backend}: {message}")]
    Backend {
        backend: String,
        message: String,
        hint: Option<String>,
    },
}

impl VaultError {
    pub fn hint(&self) -> Option<String> {
        match self {
            VaultError::Backend { hint, .. } => hint.clone(),
        }
    }
}

/// A place secrets are written to and read back from. Calls block; run them off the async
/// executor (`tokio::task::spawn_blocking`).
pub trait Vault: Send + Sync {
    /// A short description for messages (`keyring service=entraform`, `command axe secret push`).
    fn describe(&self) -> String;
    /// Store (create or replace) the secret at `path`.
    fn put(&self, path: &str, secret: &Secret) -> Result<(), VaultError>;
    /// Read the secret at `path`; `Ok(None)` when absent. Backends that cannot read return
    /// `Ok(None)` and `can_read() == false`.
    fn get(&self, path: &str) -> Result<Option<Secret>, VaultError>;
    /// Whether `get` can read back what `put` wrote.
    fn can_read(&self) -> bool;
}
