//! The `file` backend: a JSON object `{ "<vault path>": "<secret>", … }`, mode 0600, replaced
//! atomically (used by `apply --sandbox` under `.entraform/sandbox/`).
//!
//! Values live as [`Secret`]s from the moment they are parsed; the only place one is exposed is
//! the private [`Exposed`] serializer, at the write. A file that is not such an object is never
//! overwritten (nothing is lost); parse errors report line and column only, never content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::{Vault, VaultError};
use crate::secret::Secret;

/// A JSON file of secrets.
#[derive(Debug, Clone)]
pub struct FileVault {
    path: PathBuf,
}

/// A stored value on its way in: wrapped as soon as serde has it.
struct Loaded(Secret);

impl<'de> Deserialize<'de> for Loaded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Loaded(Secret::new(s)))
    }
}

/// A stored value on its way out: the one place the file backend exposes a secret.
struct Exposed<'a>(&'a Secret);

impl Serialize for Exposed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

impl FileVault {
    /// `path` must already be resolved.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<BTreeMap<String, Loaded>, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(BTreeMap::new());
        }
        // serde_json's message can quote the offending value: report its position only.
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} is not a JSON object of strings (line {}, column {})",
                self.path.display(),
                e.line(),
                e.column()
            )
        })
    }
}

impl Vault for FileVault {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn put(&self, path: &str, secret: &Secret) -> Result<(), VaultError> {
        let fail = |reason: String, hint: &str| VaultError::WriteFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason,
            hint: hint.to_owned(),
        };
        // The sandbox store lives under `.entraform/sandbox/`, which may not exist yet.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| {
                fail(
                    format!("cannot create {}: {e}", dir.display()),
                    "check the path and its permissions (`vault.path`)",
                )
            })?;
        }
        // Several services may share the store: no concurrent writer may lose this update.
        // Best effort: where no lock file can be made, the write fails with its own message.
        let _lock = super::atomic::lock_beside(&self.path).ok();
        let existing = self.load().map_err(|reason| {
            fail(
                reason,
                "fix or move the file; it was not overwritten (it may hold other secrets)",
            )
        })?;
        let mut map: BTreeMap<&str, Exposed<'_>> = existing
            .iter()
            .map(|(k, v)| (k.as_str(), Exposed(&v.0)))
            .collect();
        map.insert(path, Exposed(secret));
        // Sized up front (JSON escaping at most doubles the text, plus layout) so the buffer
        // holding the secrets never reallocates and leaves a copy behind.
        let size: usize = map
            .iter()
            .map(|(k, v)| 2 * (k.len() + v.0.expose().len()) + 16)
            .sum::<usize>()
            + 16;
        let mut out = Zeroizing::new(Vec::with_capacity(size));
        serde_json::to_writer_pretty(&mut *out, &map)
            .map_err(|e| fail(format!("cannot serialize the store: {e}"), "report this"))?;
        out.push(b'\n');
        super::atomic::write_atomic(&self.path, &out).map_err(|e| {
            fail(
                format!("cannot write {}: {e}", self.path.display()),
                "check that the directory exists and is writable; the file was left as it was",
            )
        })
    }

    fn get(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let mut map = self.load().map_err(|reason| VaultError::ReadFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason,
            hint: "fix or move the file".into(),
        })?;
        Ok(map.remove(path).map(|l| l.0))
    }

    fn can_read(&self) -> bool {
        true
    }
}

/// `mkdir -p` with mode 0700 for the directories it creates.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod concurrent_writers {
    use super::*;

    /// `rotate --all` stores several services' secrets in one shared file at once: every
    /// update must survive (without the lock, the last rename wins and the others are lost).
    #[test]
    fn concurrent_puts_to_one_store_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("vault.json");
        let secret =
            |i: usize| Secret::new(format!("s{i:02}~abcdefghijklmnopqrstuvwxyz0123456789"));
        std::thread::scope(|scope| {
            for i in 0..16 {
                let vault = FileVault::new(store.clone());
                scope.spawn(move || {
                    vault
                        .put(&format!("svc{i}/axe/mcp-client-secret"), &secret(i))
                        .unwrap()
                });
            }
        });
        let vault = FileVault::new(store);
        for i in 0..16 {
            let got = vault.get(&format!("svc{i}/axe/mcp-client-secret")).unwrap();
            assert!(got.is_some_and(|g| g.same_as(&secret(i))), "svc{i} lost");
        }
    }
}
