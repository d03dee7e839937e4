//! Vault backends (docs/manifests.md, "Vaults"): where the client secret lives. The secret reaches a backend only as
//! a [`Secret`] and leaves it only as one.
//!
//! [`open`] turns a [`VaultConfig`] into a backend; [`store_verified`] is the one way apply and
//! rotate write a new secret: shape check → `put` → read back (where the backend can) → digest
//! compare. Its errors tell apart "the write failed", "the read-back failed" and "the vault now
//! holds something else", so the caller can roll the credential back and say why.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::secret::{Secret, SecretShapeError, check_shape};

mod atomic;
pub mod command;
pub mod dotenv;
pub mod file;
pub mod keyring;
pub mod redact;

pub use crate::manifest::vault_decl::VaultConfig;
pub use command::{CommandConfig, CommandVault, MissingRule, Preset};
pub use dotenv::DotenvVault;
pub use file::FileVault;
pub use keyring::{KeyringStore, KeyringVault};

/// Which step of storing a secret failed (for apply's rollback message and `--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultStage {
    /// The vault configuration cannot work; nothing was attempted.
    Config,
    /// The value is not shaped like a client secret; nothing was written.
    Check,
    /// Writing failed; the vault may still hold its previous value.
    Write,
    /// Reading failed (after a write: the write may or may not have landed).
    Read,
    /// The write "succeeded" but the vault holds something else.
    Verify,
}

/// Failures of a vault backend. Messages never contain the secret: a child's output is redacted
/// before it is put in here (see [`redact`]).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault backend {backend}: {message}")]
    Backend {
        backend: String,
        message: String,
        hint: Option<String>,
    },
    /// The configuration cannot work (caught by [`open`] before anything runs).
    #[error("vault {backend}: {message}")]
    Config {
        backend: &'static str,
        message: String,
        hint: String,
    },
    /// Refused before writing: the value is not shaped like a client secret.
    #[error("refusing to store the secret at {path}: {source}")]
    Shape {
        path: String,
        #[source]
        source: SecretShapeError,
    },
    /// Writing failed.
    #[error("cannot write the secret to {backend} at {path}: {reason}")]
    WriteFailed {
        backend: String,
        path: String,
        reason: String,
        hint: String,
    },
    /// Reading failed.
    #[error("cannot read the secret from {backend} at {path}: {reason}")]
    ReadFailed {
        backend: String,
        path: String,
        reason: String,
        hint: String,
    },
    /// The `get` command failed and the vault declares no missing-entry rule, so it cannot be
    /// told whether the entry is absent or the vault is broken. Before minting, apply and
    /// rotate take the vault to hold nothing usable (with a warning); `secrets` and `verify`
    /// report it as the failed read it is.
    #[error("cannot read the secret from {backend} at {path}: {reason}")]
    ReadUnsure {
        backend: String,
        path: String,
        reason: String,
        hint: String,
    },
    /// The backend returned a value that is not shaped like a client secret.
    #[error("{backend} returned a value at {path} that is not a client secret: {source}")]
    ReadShape {
        backend: String,
        path: String,
        #[source]
        source: SecretShapeError,
        hint: String,
    },
    /// The write reported success but the value read back differs.
    #[error("read-back mismatch in {backend} at {path}: {detail}")]
    Mismatch {
        backend: String,
        path: String,
        detail: String,
    },
}

impl VaultError {
    pub fn hint(&self) -> Option<String> {
        match self {
            VaultError::Backend { hint, .. } => hint.clone(),
            VaultError::Config { hint, .. }
            | VaultError::WriteFailed { hint, .. }
            | VaultError::ReadFailed { hint, .. }
            | VaultError::ReadUnsure { hint, .. }
            | VaultError::ReadShape { hint, .. } => Some(hint.clone()),
            VaultError::Shape { .. } => Some(
                "the value did not come from addPassword unchanged; nothing was written. \
                 Report this: the credential should be removed and created again"
                    .into(),
            ),
            VaultError::Mismatch { .. } => Some(
                "the vault does not hold the secret that was written: check the backend's \
                 push/get (a tool's stderr mixed into stdout makes a 270-character \"secret\"; \
                 keep stderr apart, e.g. `2>/dev/null`). The new credential must not stay \
                 valid while the vault holds something else (apply removes it)"
                    .into(),
            ),
        }
    }

    /// Whether the vault may hold something else than before the failed call: a push that
    /// failed, timed out or was killed may have written all, part or none of the value (a CLI
    /// that exits non-zero after updating its store, a timeout after the write landed), and a
    /// failed or mismatched read-back follows a write. Only a refusal before anything ran
    /// (configuration, shape check) leaves the vault certainly untouched. The caller settles
    /// the rest by reading the vault again ([`crate::secret_flow`]).
    pub fn may_have_written(&self) -> bool {
        !matches!(self.stage(), VaultStage::Config | VaultStage::Check)
    }

    /// Which step failed.
    pub fn stage(&self) -> VaultStage {
        match self {
            VaultError::Backend { .. } => VaultStage::Write,
            VaultError::Config { .. } => VaultStage::Config,
            VaultError::Shape { .. } => VaultStage::Check,
            VaultError::WriteFailed { .. } => VaultStage::Write,
            VaultError::ReadFailed { .. }
            | VaultError::ReadUnsure { .. }
            | VaultError::ReadShape { .. } => VaultStage::Read,
            VaultError::Mismatch { .. } => VaultStage::Verify,
        }
    }
}

impl VaultError {
    /// Whether this is a failed read that may only mean "no such entry" (a `get` that failed
    /// without a declared missing-entry rule): apply and rotate may then go on as if the vault
    /// held nothing, the read-back after the push still has to succeed.
    pub fn may_be_absent(&self) -> bool {
        matches!(self, VaultError::ReadUnsure { .. })
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
    /// Whether the declaration has a `send:` command (hand the secret to a person).
    fn can_send(&self) -> bool {
        false
    }
    /// Hand `secret` (read from `path`) to `to` with the declaration's `send:` command; the
    /// secret goes on the command's stdin only.
    fn send(&self, path: &str, to: &str, secret: &Secret) -> Result<(), VaultError> {
        let _ = (path, to, secret);
        Err(VaultError::Config {
            backend: "vault",
            message: format!("{} has no `send:` command", self.describe()),
            hint: "declare the vault in defaults.yaml as a `command` vault with                    `send: [PROGRAM, …, \"{path}\", \"{to}\"]` (the secret on its stdin)"
                .into(),
        })
    }
}

/// What [`store_verified`] did (no secret in here: the hint is Graph's public 3-char hint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// [`Vault::describe`] of the backend.
    pub backend: String,
    /// The vault path written.
    pub path: String,
    /// The first three characters (Entra shows the same hint for the credential).
    pub hint: String,
    /// Length of the stored value in characters.
    pub length: usize,
    /// Whether the value was read back and its digest matched (false: backend cannot read).
    pub verified: bool,
}

/// Build the backend a configuration names. Relative paths (dotenv/file paths, a command's
/// program when it contains a `/`) are resolved against `base_dir`, the manifest's directory;
/// a leading `~` is the home directory. `secret_env` is the env name the dotenv backend upserts.
pub fn open(
    config: &VaultConfig,
    base_dir: &Path,
    secret_env: &str,
) -> Result<Box<dyn Vault>, VaultError> {
    Ok(match config {
        VaultConfig::Keyring { service } => Box::new(KeyringVault::new(service)?),
        VaultConfig::Command(config) => Box::new(CommandVault::from_config(config, base_dir)?),
        VaultConfig::Dotenv { path } => Box::new(DotenvVault::new(
            resolve_path(path, base_dir, "dotenv")?,
            secret_env,
        )?),
        VaultConfig::File { path } => {
            Box::new(FileVault::new(resolve_path(path, base_dir, "file")?))
        }
    })
}

/// Check the shape, write, and (where the backend can) read back and compare digests. Nothing
/// of the value is printed or put in an error: only lengths and the shape verdict.
pub fn store_verified(
    vault: &dyn Vault,
    path: &str,
    secret: &Secret,
) -> Result<StoreReport, VaultError> {
    check_shape(secret).map_err(|source| VaultError::Shape {
        path: path.to_owned(),
        source,
    })?;
    vault.put(path, secret)?;
    let verified = if vault.can_read() {
        let back = match vault.get(path) {
            Ok(back) => back,
            // The backend read something, but not a secret: for a value just written that
            // means the vault holds something else (the 270-character incident).
            Err(VaultError::ReadShape {
                backend,
                path,
                source,
                ..
            }) => {
                return Err(VaultError::Mismatch {
                    backend,
                    path,
                    detail: format!(
                        "wrote {} characters, read back a value that is not a client secret: {source}",
                        secret.len()
                    ),
                });
            }
            // After a write, a failed read is never "maybe absent": the read-back must succeed.
            Err(VaultError::ReadUnsure {
                backend,
                path,
                reason,
                hint,
            }) => {
                return Err(VaultError::ReadFailed {
                    backend,
                    path,
                    reason,
                    hint,
                });
            }
            Err(other) => return Err(other),
        };
        let Some(back) = back else {
            return Err(VaultError::Mismatch {
                backend: vault.describe(),
                path: path.to_owned(),
                detail: "the write reported success but reading it back finds nothing".into(),
            });
        };
        if !back.same_as(secret) {
            let detail = if back.len() == secret.len() {
                format!(
                    "read back a different value of the same length ({} characters)",
                    back.len()
                )
            } else {
                format!(
                    "wrote {} characters, read back {} characters",
                    secret.len(),
                    back.len()
                )
            };
            return Err(VaultError::Mismatch {
                backend: vault.describe(),
                path: path.to_owned(),
                detail,
            });
        }
        true
    } else {
        false
    };
    Ok(StoreReport {
        backend: vault.describe(),
        path: path.to_owned(),
        hint: secret.hint(),
        length: secret.len(),
        verified,
    })
}

/// `~` → home, relative → under `base_dir`.
pub fn resolve_path(
    path: &Path,
    base_dir: &Path,
    backend: &'static str,
) -> Result<PathBuf, VaultError> {
    let mut components = path.components();
    if let Some(Component::Normal(first)) = components.next() {
        if first == "~" {
            let home = home_dir().ok_or_else(|| VaultError::Config {
                backend,
                message: format!("cannot expand `~` in {}: HOME is not set", path.display()),
                hint: "set HOME or write the path without `~`".into(),
            })?;
            return Ok(home.join(components.as_path()));
        }
        if first.to_string_lossy().starts_with('~') {
            return Err(VaultError::Config {
                backend,
                message: format!("`~user` paths are not supported: {}", path.display()),
                hint: "write the absolute path, or `~/…` for your own home".into(),
            });
        }
    }
    if path.as_os_str().is_empty() {
        return Err(VaultError::Config {
            backend,
            message: "the path is empty".into(),
            hint: format!("set `vault.path` for the {backend} backend"),
        });
    }
    // `./x` → `<base>/x` (a leading `.` adds nothing to messages).
    let path: PathBuf = path
        .components()
        .skip_while(|c| matches!(c, Component::CurDir))
        .collect();
    Ok(if path.is_absolute() {
        path
    } else {
        base_dir.join(path)
    })
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_against_the_manifest_dir() {
        let base = Path::new("/srv/manifests");
        assert_eq!(
            resolve_path(Path::new("vault.json"), base, "file").unwrap(),
            PathBuf::from("/srv/manifests/vault.json")
        );
        assert_eq!(
            resolve_path(Path::new("../.env"), base, "dotenv").unwrap(),
            PathBuf::from("/srv/manifests/../.env")
        );
        assert_eq!(
            resolve_path(Path::new("/etc/x.env"), base, "dotenv").unwrap(),
            PathBuf::from("/etc/x.env")
        );
        assert!(matches!(
            resolve_path(Path::new("~bob/x"), base, "file"),
            Err(VaultError::Config { .. })
        ));
        if let Some(home) = home_dir() {
            assert_eq!(
                resolve_path(Path::new("~/.axe/x.env"), base, "dotenv").unwrap(),
                home.join(".axe/x.env")
            );
        }
    }
}
