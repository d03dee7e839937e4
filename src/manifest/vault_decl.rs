//! The vault's declaration: `vault:` / `vaults.<name>:` in defaults.yaml and a service manifest.
//! Manifest data only; `vault::open` turns a [`VaultConfig`] into a backend, and the
//! `command` backend's behaviour (presets filled in, argv run) lives in `vault::command`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// External commands (`pass`, `secret-tool`, `axe secret`, …); `{path}` is replaced by the
    /// vault path. The secret goes on stdin. Declared only in defaults.yaml (trusted
    /// configuration): a service manifest chooses a declaration by name.
    Command(CommandConfig),
    /// Upsert `KEY=value` (KEY = the secret env name) in a `.env` file, mode 0600.
    Dotenv { path: PathBuf },
    /// A 0600 JSON store keyed by vault path (used by `--sandbox`).
    File { path: PathBuf },
}

fn default_keyring_service() -> String {
    "entraform".into()
}

/// `vault: {backend: command, …}` in defaults.yaml (under `vault:` or `vaults.<name>:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Ready settings of a common vault CLI (`pass`, `secret-tool`): they fill `push`, `get`
    /// and `missing`; a field written beside the preset replaces the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// e.g. `[axe, secret, push, "{path}", "-"]`: stores the secret it reads on stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Vec<String>>,
    /// e.g. `[axe, secret, get, "{path}", "-n"]`: prints the secret; without it there is no
    /// read-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<Vec<String>>,
    /// How a failing `get` says "no such entry" (e.g. `pass`: exit 1 and "is not in the
    /// password store" on stderr). Without it a failing `get` cannot be told from a broken
    /// vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingRule>,
    /// Hands the secret to a person (`entraform send`): `{path}` and `{to}` are substituted,
    /// the secret goes on stdin, e.g. `[axe, secret, send, "{path}", --to, "{to}"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Vec<String>>,
    /// Names of extra environment variables the commands receive (besides the allow-list of
    /// `PATH`, `HOME`, locale, `XDG_*`, D-Bus, GnuPG, `PASSWORD_STORE_*`, `BW_*`, `OP_*`,
    /// `VAULT_*`). `AZURE_*` credentials are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Seconds each command may take (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u64>,
}

/// `missing:` — a failing `get` whose exit code is one of `exit` (any non-zero code when left
/// out) and whose stderr matches `stderr` (when given) means "no such entry".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingRule {
    /// Exit codes of a missing entry, e.g. `[1]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit: Vec<i32>,
    /// A regular expression searched in the stderr of a missing entry (trimmed), e.g.
    /// `"is not in the password store"`; `"^$"` means "no stderr at all".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// Ready settings of a vault CLI whose behaviour was checked by running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// `pass` (the standard unix password manager): `pass insert --multiline --force` reads
    /// the secret on stdin and stores exactly those bytes; `pass show` prints them; a missing
    /// entry exits 1 with `Error: <path> is not in the password store.` on stderr
    /// (<https://git.zx2c4.com/password-store/tree/src/password-store.sh>, `cmd_show`).
    Pass,
    /// `secret-tool` (libsecret) against the Secret Service, items with the attributes
    /// `service entraform path <vault path>`: `store` reads the secret on stdin, `lookup`
    /// prints it; a missing entry exits 1 with no output at all
    /// (<https://gitlab.gnome.org/GNOME/libsecret/-/blob/master/tool/secret-tool.c>); a
    /// Secret Service that cannot be reached also exits 1, but says why on stderr.
    SecretTool,
}

/// Problems of an `env:` name (`None`: fine).
pub fn env_name_problem(name: &str) -> Option<String> {
    let well_formed = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !well_formed {
        return Some(format!(
            "{name:?} is not an environment variable name; expected [A-Za-z_][A-Za-z0-9_]*"
        ));
    }
    if name.starts_with("AZURE_") && name != "AZURE_CONFIG_DIR" {
        return Some(format!(
            "{name:?}: the operator's Azure credentials never reach a vault command \
             (only AZURE_CONFIG_DIR, the az CLI's own login directory, may be passed)"
        ));
    }
    None
}
