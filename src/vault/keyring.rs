//! The `keyring` backend: the OS keychain through the `keyring` crate (v3). Entry: service =
//! `vault.service`, user = the vault path.
//!
//! Store per OS (the crate's features in Cargo.toml select them):
//! - Linux: the Secret Service over D-Bus (gnome-keyring, KeePassXC, …; pure-Rust `zbus`,
//!   feature `async-secret-service` + `tokio`) when a session bus is reachable, else the kernel
//!   keyutils session keyring (feature `linux-native`; lost at reboot, and only reachable from
//!   a process that has a session keyring — `keyctl session -`). The crate's own
//!   `linux-native-async-persistent` store was not used: it writes keyutils *first* and fails
//!   outright where the process has no session keyring (containers, CI), even with a working
//!   Secret Service, and reads keyutils first, so a read-back could prove only the cache.
//! - macOS: Keychain (`apple-native`); Windows: Credential Manager (`windows-native`). Without
//!   those features keyring 3 silently falls back to an in-memory mock there.
//!
//! Every call runs on a fresh thread with a time limit: the async Secret Service client blocks
//! on its own tokio runtime, which panics ("Cannot start a runtime from within a runtime") when
//! called from a tokio worker thread
//! (<https://github.com/hwchen/keyring-rs/issues/132>), and D-Bus activation of a Secret Service
//! that cannot start (e.g. no `XDG_RUNTIME_DIR` for its socket) hangs for 120 s before it fails
//! with `org.freedesktop.DBus.Error.TimedOut` (observed with gnome-keyring).

use std::sync::mpsc;
use std::time::Duration;

use keyring::credential::{CredentialBuilder, CredentialPersistence};
use keyring::{Entry, Error as KError};

use super::{Vault, VaultError};
use crate::secret::Secret;

/// How long one keychain call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which keychain the backend talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringStore {
    /// Linux/BSD: the freedesktop Secret Service on the session bus.
    SecretService,
    /// Linux: the kernel keyutils session keyring (not persistent across reboots).
    Keyutils,
    /// macOS Keychain / Windows Credential Manager.
    Native,
}

impl KeyringStore {
    /// The store `open` picks on this machine: on Linux the Secret Service when a session bus
    /// is reachable (`DBUS_SESSION_BUS_ADDRESS`, or `$XDG_RUNTIME_DIR/bus`), else keyutils.
    pub fn detect() -> Self {
        if cfg!(target_os = "linux") {
            let bus_env =
                std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
            let bus_socket = std::env::var_os("XDG_RUNTIME_DIR")
                .is_some_and(|d| std::path::Path::new(&d).join("bus").exists());
            if bus_env || bus_socket {
                KeyringStore::SecretService
            } else {
                KeyringStore::Keyutils
            }
        } else {
            KeyringStore::Native
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyringStore::SecretService => "Secret Service",
            KeyringStore::Keyutils => "Linux keyutils",
            KeyringStore::Native => {
                if cfg!(target_os = "macos") {
                    "macOS Keychain"
                } else if cfg!(target_os = "windows") {
                    "Windows Credential Manager"
                } else {
                    "OS keychain"
                }
            }
        }
    }

    fn builder(self) -> Result<Box<CredentialBuilder>, VaultError> {
        #[cfg(target_os = "linux")]
        {
            Ok(match self {
                KeyringStore::SecretService => {
                    keyring::secret_service::default_credential_builder()
                }
                KeyringStore::Keyutils => keyring::keyutils::default_credential_builder(),
                KeyringStore::Native => keyring::default::default_credential_builder(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            match self {
                KeyringStore::Native => Ok(keyring::default::default_credential_builder()),
                other => Err(VaultError::Config {
                    backend: "keyring",
                    message: format!("the {} store exists only on Linux", other.name()),
                    hint: "use the default store of this OS".into(),
                }),
            }
        }
    }

    fn unavailable_hint(self) -> String {
        match self {
            KeyringStore::SecretService => {
                "run a Secret Service in this session and unlock it (headless: `dbus-run-session` \
                 + `gnome-keyring-daemon --unlock --components=secrets`), or choose another \
                 backend (`vault: {backend: command|dotenv|file}`)"
                    .into()
            }
            KeyringStore::Keyutils => {
                "no D-Bus session bus was found, so the kernel keyring was used, and this process \
                 has no session keyring: run under `keyctl session - entraform …`, or start a \
                 Secret Service (`dbus-run-session` + `gnome-keyring-daemon --unlock`), or choose \
                 another backend (`vault: {backend: command|dotenv|file}`)"
                    .into()
            }
            KeyringStore::Native => {
                "unlock the OS keychain for this user, or choose another backend \
                 (`vault: {backend: command|dotenv|file}`)"
                    .into()
            }
        }
    }
}

/// The OS keychain.
pub struct KeyringVault {
    service: String,
    store: KeyringStore,
    builder: Box<CredentialBuilder>,
    timeout: Duration,
}

impl std::fmt::Debug for KeyringVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringVault")
            .field("service", &self.service)
            .field("store", &self.store)
            .finish()
    }
}

impl KeyringVault {
    /// The keychain of this machine ([`KeyringStore::detect`]).
    pub fn new(service: &str) -> Result<Self, VaultError> {
        Self::with_store(service, KeyringStore::detect())
    }

    /// A specific store.
    pub fn with_store(service: &str, store: KeyringStore) -> Result<Self, VaultError> {
        if service.trim().is_empty() {
            return Err(VaultError::Config {
                backend: "keyring",
                message: "`vault.service` is empty".into(),
                hint: "set `vault.service` (default `entraform`) or leave it out".into(),
            });
        }
        let builder = store.builder()?;
        // keyring 3 builds an in-memory mock where it has no real store for the OS: a secret
        // "stored" there is gone when the process ends.
        if matches!(
            builder.persistence(),
            CredentialPersistence::EntryOnly | CredentialPersistence::ProcessOnly
        ) {
            return Err(VaultError::Config {
                backend: "keyring",
                message: "this build has no persistent keychain for this operating system".into(),
                hint: "choose another backend (`vault: {backend: command|dotenv|file}`)".into(),
            });
        }
        Ok(Self {
            service: service.to_owned(),
            store,
            builder,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Override the time limit of each keychain call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store in use.
    pub fn store(&self) -> KeyringStore {
        self.store
    }

    fn entry(&self, path: &str) -> Result<Entry, KError> {
        let credential = self.builder.build(None, &self.service, path)?;
        Ok(Entry::new_with_credential(credential))
    }

    /// Run `op` on its own thread (no tokio context), giving up after the timeout.
    fn on_thread<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ()> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("entraform-keyring".into())
            .spawn(move || {
                let _ = tx.send(op());
            })
            .map_err(|_| ())?;
        rx.recv_timeout(self.timeout).map_err(|_| ())
    }

    fn timeout_reason(&self) -> String {
        format!(
            "the {} did not answer within {} s",
            self.store.name(),
            self.timeout.as_secs_f32()
        )
    }

    /// Delete the entry at `path` (`Ok(false)` when there was none).
    pub fn delete(&self, path: &str) -> Result<bool, VaultError> {
        let entry = self.entry(path).map_err(|e| self.read_error(path, &e))?;
        match self.on_thread(move || entry.delete_credential()) {
            Ok(Ok(())) => Ok(true),
            Ok(Err(KError::NoEntry)) => Ok(false),
            Ok(Err(e)) => Err(self.write_error(path, &e)),
            Err(()) => Err(VaultError::WriteFailed {
                backend: self.describe(),
                path: path.to_owned(),
                reason: self.timeout_reason(),
                hint: self.store.unavailable_hint(),
            }),
        }
    }

    fn write_error(&self, path: &str, e: &KError) -> VaultError {
        let (reason, hint) = match e {
            KError::Ambiguous(items) => (
                format!(
                    "{} keychain items match service={} user={path}",
                    items.len(),
                    self.service
                ),
                format!(
                    "remove the duplicates (e.g. `secret-tool clear service {} username {path}`) \
                     and run again",
                    self.service
                ),
            ),
            // keyutils reports a missing session keyring as NoEntry on write.
            KError::NoEntry => (
                format!(
                    "{} refused the write (no keyring to write to)",
                    self.store.name()
                ),
                self.store.unavailable_hint(),
            ),
            other => (error_text(other), self.store.unavailable_hint()),
        };
        VaultError::WriteFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason,
            hint,
        }
    }

    fn read_error(&self, path: &str, e: &KError) -> VaultError {
        let hint = match e {
            KError::Ambiguous(_) => format!(
                "remove the duplicate items (e.g. `secret-tool clear service {} username {path}`) \
                 and run again",
                self.service
            ),
            KError::BadEncoding(_) => {
                "the stored value is not text; store the secret again (apply/rotate)".into()
            }
            _ => self.store.unavailable_hint(),
        };
        VaultError::ReadFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason: error_text(e),
            hint,
        }
    }
}

/// keyring's message for an error, never its payload (`BadEncoding` carries the stored bytes).
fn error_text(e: &KError) -> String {
    match e {
        KError::BadEncoding(_) => "the stored value is not UTF-8 text".into(),
        KError::Ambiguous(items) => format!("{} keychain items match", items.len()),
        other => other.to_string(),
    }
}

impl Vault for KeyringVault {
    fn describe(&self) -> String {
        let note = if self.store == KeyringStore::Keyutils {
            "; kernel memory, lost at reboot"
        } else {
            ""
        };
        format!(
            "keyring service={} ({}{note})",
            self.service,
            self.store.name()
        )
    }

    fn put(&self, path: &str, secret: &Secret) -> Result<(), VaultError> {
        let entry = self.entry(path).map_err(|e| self.write_error(path, &e))?;
        // The worker thread needs its own handle on the value; it stays a zeroizing `Secret`.
        let value = Secret::new(secret.expose().to_owned());
        match self.on_thread(move || entry.set_password(value.expose())) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.write_error(path, &e)),
            Err(()) => Err(VaultError::WriteFailed {
                backend: self.describe(),
                path: path.to_owned(),
                reason: self.timeout_reason(),
                hint: self.store.unavailable_hint(),
            }),
        }
    }

    fn get(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let entry = self.entry(path).map_err(|e| self.read_error(path, &e))?;
        let result = self.on_thread(move || match entry.get_password() {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(KError::NoEntry) => Ok(None),
            Err(KError::BadEncoding(mut bytes)) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                Err(KError::BadEncoding(Vec::new()))
            }
            Err(e) => Err(e),
        });
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.read_error(path, &e)),
            Err(()) => Err(VaultError::ReadFailed {
                backend: self.describe(),
                path: path.to_owned(),
                reason: self.timeout_reason(),
                hint: self.store.unavailable_hint(),
            }),
        }
    }

    fn can_read(&self) -> bool {
        true
    }
}
