//! Harness of the `apply`, `tenants`, `vault_cli` and reliability modules: an in-process TLS
//! emulator, a temp directory holding a copy of the example manifests whose vault is a file (or
//! command) backend inside the temp dir, and a runner for the real binary pointed at the
//! emulator. Every run is scanned for every secret value the emulator ever issued (stdout,
//! stderr with `RUST_LOG=trace`, and every file under the temp dir except the vault store
//! itself).

use crate::support::bin::Bin;
use crate::support::copy_dir;
pub use crate::support::files_under;
pub use crate::support::trips::{graph_only, round_trips, sequential_depth};
pub use crate::support::{DOMAIN, GRAPH_APP_ID, USER_READ};
use std::path::{Path, PathBuf};

use entraform::emulator::{EmulatorConfig, Faults, RequestRecord, RunningEmulator, start};
use entraform::secret::Secret;
use serde_json::Value;

/// Which emulator principal the binary signs in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Application.ReadWrite.All + DelegatedPermissionGrant.ReadWrite.All.
    Full,
    /// No grant permission (grant writes get 403).
    Limited,
    /// The multi-tenant operator app (consented in every hosted tenant; the emulator must host
    /// more than one).
    MultiTenant,
}

pub struct Harness {
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub operator: Operator,
    /// Files (or directories) meant to hold the secret: the vault store, excluded from the
    /// leak scan.
    pub vault_files: Vec<PathBuf>,
    /// The keyring service name when the vault is the OS keyring.
    pub keyring_service: Option<String>,
    /// More variables for the binary's environment (set last: they override).
    pub extra_env: Vec<(String, std::ffi::OsString)>,
    /// Environment changes applied last: `Some` sets, `None` removes.
    pub env: Vec<(String, Option<String>)>,
}

/// One finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--output json` document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e})\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stderr without the trace/debug logs (for failure messages).
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        let mut in_log = false;
        for line in self.stderr.lines() {
            let is_log_start = line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[4] == b'-';
            if is_log_start {
                in_log = true;
                continue;
            }
            // A log record's continuation lines (Debug dumps) are indented or closing brackets.
            if in_log && (line.starts_with("    ") || line.starts_with(['}', ']', ')'])) {
                continue;
            }
            in_log = false;
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Panic with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit code\nstdout:\n{}\nstderr (logs left out):\n{}",
            self.stdout,
            self.diagnostics()
        );
        self
    }
}

/// Replace the `vault:` block of a defaults file (it ends at the next blank line).
fn replace_vault_block(text: &str, block: &str) -> String {
    let start = text.find("\nvault:").expect("defaults has a vault block") + 1;
    let end = text[start..]
        .find("\n\n")
        .map(|i| start + i + 1)
        .unwrap_or(text.len());
    format!("{}{}{}", &text[..start], block, &text[end..])
}

impl Harness {
    /// A fresh tenant (no apps but the operators), the manifests with a file vault.
    pub async fn new() -> Self {
        Self::with_config(EmulatorConfig::default()).await
    }

    pub async fn with_config(config: EmulatorConfig) -> Self {
        let emu = start(config.tls(true).verified_domain(DOMAIN))
            .await
            .expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests"),
            &dir.path().join("manifests"),
        );
        emu.write_ca_cert(&dir.path().join("ca.pem"))
            .expect("CA written");
        let mut h = Harness {
            emu,
            dir,
            operator: Operator::Full,
            vault_files: Vec::new(),
            keyring_service: None,
            extra_env: Vec::new(),
            env: Vec::new(),
        };
        h.set_vault("vault:\n  backend: file\n  path: vault.json\n");
        h.vault_files = vec![h.manifests().join("vault.json")];
        h
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifests(&self) -> PathBuf {
        self.root().join("manifests")
    }

    /// Replace the defaults' `vault:` block with `block` (YAML, ending in a newline).
    pub fn set_vault(&self, block: &str) {
        let path = self.manifests().join("defaults.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, replace_vault_block(&text, block)).unwrap();
    }

    /// Point customer `name` of the defaults at `tenant` (adding the customer, with host
    /// `<name>.axelabs.ai`, when it is not there).
    pub fn set_customer_tenant(&self, name: &str, tenant: &str) {
        let path = self.manifests().join("defaults.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        let mut in_customer = false;
        let mut found = false;
        for line in text.lines() {
            if line.starts_with("  ") && !line.starts_with("   ") {
                in_customer = line.trim() == format!("{name}:");
                found |= in_customer;
            } else if !line.starts_with(' ') && !line.trim().is_empty() {
                in_customer = false;
            }
            if in_customer && line.trim_start().starts_with("tenant_id:") {
                out.push_str(&format!("    tenant_id: {tenant}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            if line == "customers:" && !text.contains(&format!("\n  {name}:\n")) {
                out.push_str(&format!(
                    "  {name}:\n    tenant_id: {tenant}\n    host: {name}.axelabs.ai\n"
                ));
                found = true;
            }
        }
        assert!(found, "customer {name} in defaults.yaml");
        std::fs::write(&path, out).unwrap();
    }

    /// A service manifest of `customer` (reference frame) at `proxy_port`.
    pub fn write_service(&self, service: &str, customer: &str, proxy_port: u16) {
        self.write_manifest(
            &format!("{service}.yaml"),
            &format!(
                "service: {service}\ncustomer: {customer}\nproxy_port: {proxy_port}\nreference: frame\n"
            ),
        );
    }

    pub fn write_manifest(&self, name: &str, text: &str) {
        std::fs::write(self.manifests().join(name), text).unwrap();
    }

    /// A `command` vault: `push.sh {path}` and `get.sh {path}` in the manifests dir, storing
    /// under `manifests/store/`. `push` is the push script's body (it reads the secret on
    /// stdin); the default get prints the stored value, or nothing when absent.
    pub fn command_vault(&mut self, push: &str) {
        self.write_script("push.sh", push);
        self.write_script(
            "get.sh",
            r#"f="$(dirname "$0")/store/$1"; if [ -f "$f" ]; then cat "$f"; fi"#,
        );
        self.set_vault(
            "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n",
        );
        self.vault_files = vec![self.manifests().join("store")];
    }

    /// The OS keyring (Secret Service) under a service name of its own.
    pub fn keyring_vault(&mut self, service: &str) {
        self.set_vault(&format!(
            "vault:\n  backend: keyring\n  service: {service}\n"
        ));
        self.vault_files = Vec::new();
        self.keyring_service = Some(service.to_string());
    }

    /// What the command vault's store holds at `path`.
    pub fn command_vault_secret(&self, path: &str) -> Option<Secret> {
        std::fs::read_to_string(self.manifests().join("store").join(path))
            .ok()
            .map(Secret::new)
    }

    /// Write an executable script (for `command` vaults) under the manifests dir.
    pub fn write_script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.manifests().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Run `entraform ARGS` in the temp dir, signed in as [`Harness::operator`], with trace logs;
    /// then scan everything for leaked secrets.
    pub async fn run(&self, args: &[&str]) -> Run {
        let run = self.run_raw(args).await;
        self.assert_no_leaks(&run);
        run
    }

    /// Like [`Harness::run`] without the scan (the caller scans).
    pub async fn run_raw(&self, args: &[&str]) -> Run {
        let (client_id, secret) = match self.operator {
            Operator::Full => (
                self.emu.operator_client_id().to_string(),
                self.emu.operator_secret(),
            ),
            Operator::Limited => (
                self.emu.limited_operator().client_id.clone(),
                self.emu.limited_operator().secret(),
            ),
            Operator::MultiTenant => {
                let p = self
                    .emu
                    .multi_tenant_operator()
                    .expect("the emulator hosts several tenants");
                (p.client_id.clone(), p.secret())
            }
        };
        let mut cmd = Bin::new(&self.emu, &self.root().join("ca.pem"), self.root(), args)
            .operator(&self.emu, &client_id, secret.expose())
            .trace()
            .command();
        // The keyring test needs the private D-Bus session of scripts/test.sh.
        for key in [
            "DBUS_SESSION_BUS_ADDRESS",
            "XDG_RUNTIME_DIR",
            "XDG_DATA_HOME",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.output().await.expect("the binary runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every secret the emulator issued: none in stdout, stderr (trace logs included), or any
    /// file under the temp dir other than the vault store.
    #[track_caller]
    pub fn assert_no_leaks(&self, run: &Run) {
        let secrets = self.emu.issued_secrets();
        assert!(!secrets.is_empty());
        let files: Vec<PathBuf> = files_under(self.root())
            .into_iter()
            .filter(|f| !self.vault_files.iter().any(|v| f.starts_with(v)))
            .collect();
        for s in &secrets {
            assert_absent(s, run.stdout.as_bytes(), "stdout");
            assert_absent(s, run.stderr.as_bytes(), "stderr");
            for f in &files {
                let bytes = std::fs::read(f).unwrap_or_default();
                assert_absent(s, &bytes, &f.display().to_string());
            }
        }
    }

    /// The file vault's contents (`{vault path: secret}`).
    pub fn file_vault(&self) -> Value {
        let path = self.manifests().join("vault.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Err(_) => Value::Object(Default::default()),
        }
    }

    /// What the vault (the command vault's store when one is set up, else the file vault)
    /// holds at `path`.
    pub fn vault_secret(&self, path: &str) -> Option<Secret> {
        if let Some(service) = &self.keyring_service {
            use entraform::vault::Vault;
            let vault = entraform::vault::KeyringVault::new(service).expect("keyring");
            return vault.get(path).expect("keyring read");
        }
        if self.vault_files.iter().any(|v| v.ends_with("store")) {
            return self.command_vault_secret(path);
        }
        self.file_vault()[path]
            .as_str()
            .map(|s| Secret::new(s.into()))
    }

    pub fn state(&self) -> Value {
        self.emu.state_json()
    }

    /// One hosted tenant's state.
    pub fn tenant_state(&self, tenant: &str) -> Value {
        self.emu
            .tenant_state_json(tenant)
            .unwrap_or_else(|| panic!("the emulator hosts {tenant}"))
    }

    /// The service's application(s) in the tenant (by uniqueName or App ID URI).
    pub fn apps_of(&self, unique_name: &str, uri: &str) -> Vec<Value> {
        let state = self.state();
        state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["uniqueName"] == unique_name
                    || a["identifierUris"]
                        .as_array()
                        .is_some_and(|u| u.iter().any(|x| x == uri))
            })
            .cloned()
            .collect()
    }

    pub fn sps_of(&self, app_id: &str) -> Vec<Value> {
        let state = self.state();
        state["servicePrincipals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["appId"] == app_id)
            .cloned()
            .collect()
    }

    pub fn grants_of(&self, sp_id: &str) -> Vec<Value> {
        let state = self.state();
        state["oauth2PermissionGrants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["clientId"] == sp_id)
            .cloned()
            .collect()
    }

    pub fn graph_sp_id(&self) -> String {
        let sps = self.sps_of(GRAPH_APP_ID);
        sps[0]["id"].as_str().unwrap().to_string()
    }

    pub fn set_faults(&self, f: Faults) {
        self.emu.set_faults(f).expect("valid faults");
    }

    /// Graph requests of the log (the login endpoint's token requests left out).
    pub fn graph_requests(&self) -> Vec<RequestRecord> {
        graph_only(&self.emu.requests())
    }
}

/// Writes among requests (inner `$batch` requests counted one by one).
pub fn writes(requests: &[RequestRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for r in requests {
        let items: Vec<&RequestRecord> = if r.batch {
            r.inner.iter().collect()
        } else {
            vec![r]
        };
        for i in items {
            if i.method != "GET" {
                out.push(format!("{} {}", i.method, i.path));
            }
        }
    }
    out
}

#[track_caller]
fn assert_absent(secret: &Secret, haystack: &[u8], what: &str) {
    let needle = secret.expose().as_bytes();
    if needle.is_empty() || haystack.len() < needle.len() {
        return;
    }
    // A run of the first 16 characters is enough to count as a leak (truncated or wrapped).
    let probe = &needle[..needle.len().min(16)];
    let hit = haystack.windows(probe.len()).any(|w| w == probe);
    assert!(
        !hit,
        "a secret issued by the emulator (hint {}) appears in {what}",
        secret.hint()
    );
}

/// A push script body that stores the secret from stdin as given.
pub const GOOD_PUSH: &str =
    r#"d="$(dirname "$0")/store/$(dirname "$1")"; mkdir -p "$d"; cat > "$(dirname "$0")/store/$1""#;
