//! Shared by the `rotate` and `secrets` modules: an in-process TLS emulator seeded with
//! hand-made apps, a temp manifests directory (the repo's defaults with a vault inside the temp
//! dir), the binary pointed at both, token checks, and the secret scan.

pub use crate::support::{BLUEPRINT_APP_ID, FRAME_APP_ID, GRAPH_SCOPE, HIVE_APP_ID};
use std::path::{Path, PathBuf};

use entraform::emulator::{EmulatorConfig, RunningEmulator, start};
use entraform::secret::Secret;
use entraform::vault::{FileVault, Vault};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::support::bin::Bin;
use time::format_description::well_known::Rfc3339;

/// A client-secret-shaped value (the 40–50 band, Entra's alphabet), distinct per `tag`.
pub fn secret_value(tag: &str) -> String {
    let mut s = format!("{tag}8Q~seeded.secret_value-");
    while s.len() < 44 {
        s.push('x');
    }
    s.truncate(44);
    s
}

/// RFC 3339 time `days` from now (negative: in the past).
pub fn days_from_now(days: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::days(days))
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// A seeded password credential.
pub fn password(
    display_name: &str,
    secret: &str,
    started_days_ago: i64,
    ends_in_days: i64,
) -> Value {
    json!({
        "displayName": display_name,
        "secretText": secret,
        "startDateTime": days_from_now(-started_days_ago),
        "endDateTime": days_from_now(ends_in_days),
    })
}

/// An app of service `name` as `apply` leaves it (uniqueName set, SP present) with `passwords`.
pub fn app(name: &str, app_id: &str, passwords: Vec<Value>) -> Value {
    let title = format!("{}{} MCP", name[..1].to_uppercase(), &name[1..]);
    json!({
        "displayName": title,
        "appId": app_id,
        "uniqueName": format!("axe-{name}-mcp"),
        "signInAudience": "AzureADMyOrg",
        "identifierUris": [format!("https://axe.axelabs.ai/{name}/mcp")],
        "servicePrincipal": true,
        "passwords": passwords,
    })
}

/// Which vault the temp manifests use.
pub enum VaultKind {
    /// A 0600 JSON file `vault.json` beside the manifests.
    File,
    /// `sh ./push.sh {path}` / `sh ./get.sh {path}` storing under `store/`; `push.sh` and
    /// `get.sh` obey the control files described in [`World::arm`].
    Command,
}

pub struct World {
    pub emu: RunningEmulator,
    pub dir: TempDir,
    pub ca: PathBuf,
    pub http: reqwest::Client,
}

const PUSH: &str = r#"#!/bin/sh
# A vault CLI stand-in: the secret arrives on stdin; `fail-push` makes the write fail,
# `arm-get-failure` makes the read-back after this write fail, `push-then-fail` writes and
# then exits 1 (as a CLI does that updates its store and then fails to sync), `push-then-die`
# writes and is then killed (both once), `push-race` writes, then another operator's write of
# `foreign-value` lands, then the push exits 1.
set -e
mkdir -p store
f="store/$(printf '%s' "$1" | tr / _)"
if [ -e fail-push ]; then echo "vault: connection refused" >&2; exit 1; fi
cat > "$f"
if [ -e push-then-fail ]; then rm push-then-fail; echo "vault: sync failed" >&2; exit 1; fi
if [ -e push-then-die ]; then rm push-then-die; kill -KILL $$; fi
if [ -e push-race ]; then cp foreign-value "$f"; echo "vault: conflict" >&2; exit 1; fi
if [ -e arm-get-failure ]; then rm arm-get-failure; touch fail-get; fi
"#;

const GET: &str = r#"#!/bin/sh
set -e
f="store/$(printf '%s' "$1" | tr / _)"
if [ -e fail-get ]; then rm fail-get; echo "vault: session expired" >&2; exit 1; fi
if [ ! -e "$f" ]; then exit 0; fi
cat "$f"
"#;

impl World {
    /// Start the emulator with `seed` and write `manifests/` (defaults + the named services).
    pub async fn new(seed: Value, services: &[&str], vault: VaultKind) -> World {
        let emu = start(
            EmulatorConfig::default()
                .tls(true)
                .verified_domain("axelabs.ai")
                .seed(seed),
        )
        .await
        .expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.pem");
        emu.write_ca_cert(&ca).expect("write CA");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let defaults = std::fs::read_to_string(repo.join("defaults.yaml")).unwrap();
        let vault_yaml = match vault {
            VaultKind::File => "vault:\n  backend: file\n  path: vault.json\n".to_string(),
            VaultKind::Command => {
                std::fs::write(manifests.join("push.sh"), PUSH).unwrap();
                std::fs::write(manifests.join("get.sh"), GET).unwrap();
                "vault:\n  backend: command\n  push: [sh, ./push.sh, \"{path}\"]\n  get: [sh, ./get.sh, \"{path}\"]\n"
                    .to_string()
            }
        };
        let defaults = replace_block(&defaults, "vault:", &vault_yaml)
            .replace("122fb574-7efa-476a-95b6-bee81bce2cce", &emu.tenant_id());
        std::fs::write(manifests.join("defaults.yaml"), defaults).unwrap();
        for s in services {
            std::fs::copy(
                repo.join(format!("{s}.yaml")),
                manifests.join(format!("{s}.yaml")),
            )
            .unwrap();
        }
        let ca_pem = emu.ca_cert_pem().unwrap().to_string();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
            .build()
            .unwrap();
        World { emu, dir, ca, http }
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// Put `value` in the vault at `path` (the state a previous apply left).
    pub fn vault_put(&self, path: &str, value: &str) {
        let m = self.manifests();
        if m.join("push.sh").exists() {
            let f = m.join("store").join(path.replace('/', "_"));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, value).unwrap();
        } else {
            FileVault::new(m.join("vault.json"))
                .put(path, &Secret::new(value.to_string()))
                .unwrap();
        }
    }

    /// What the vault holds at `path`.
    pub fn vault_get(&self, path: &str) -> Option<String> {
        let m = self.manifests();
        if m.join("push.sh").exists() {
            std::fs::read_to_string(m.join("store").join(path.replace('/', "_"))).ok()
        } else {
            FileVault::new(m.join("vault.json"))
                .get(path)
                .unwrap()
                .map(|s| s.expose().to_string())
        }
    }

    /// Create a control file of the command vault (`fail-push`, `arm-get-failure`, …).
    pub fn arm(&self, name: &str) {
        std::fs::write(self.manifests().join(name), "").unwrap();
    }

    /// Write a control file with content (`foreign-value`).
    pub fn arm_with(&self, name: &str, content: &str) {
        std::fs::write(self.manifests().join(name), content).unwrap();
    }

    /// Add `line` under the service manifest's top level (e.g. `secret: {held_by: machines}`).
    pub fn manifest_line(&self, service: &str, line: &str) {
        let path = self.manifests().join(format!("{service}.yaml"));
        let mut text = std::fs::read_to_string(&path).unwrap();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(line);
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    pub fn disarm(&self, name: &str) {
        let _ = std::fs::remove_file(self.manifests().join(name));
    }

    /// Run the binary in the temp dir against the emulator: (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Bin::new(&self.emu, &self.ca, self.dir.path(), args)
            .full_operator(&self.emu)
            .command()
            .output()
            .await
            .expect("run entraform");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A client-credentials token request: Ok(()) or Err(the AADSTS error description).
    pub async fn token(&self, app_id: &str, secret: &str) -> Result<(), String> {
        let resp = self
            .http
            .post(self.emu.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app_id),
                ("client_secret", secret),
                ("scope", GRAPH_SCOPE),
            ])
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 {
            Ok(())
        } else {
            Err(body["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
    }

    /// The app's password credentials as the tenant holds them (by appId).
    pub fn credentials(&self, app_id: &str) -> Vec<Value> {
        let state = self.emu.state_json();
        state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["appId"] == app_id)
            .and_then(|a| a["passwordCredentials"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The audit log's lines.
    pub fn audit(&self) -> Vec<Value> {
        let path = self.manifests().join(".entraform/audit.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// No secret the emulator ever handed out or was seeded with appears in `texts` or in the
    /// audit log (the vault itself is the one place they may be).
    pub fn assert_no_secret_in(&self, texts: &[&str]) {
        let audit = std::fs::read_to_string(self.manifests().join(".entraform/audit.jsonl"))
            .unwrap_or_default();
        let secrets = self.emu.issued_secrets();
        assert!(!secrets.is_empty(), "the scan needs secrets to look for");
        for s in &secrets {
            let v = s.expose();
            for (i, t) in texts
                .iter()
                .chain(std::iter::once(&audit.as_str()))
                .enumerate()
            {
                assert!(
                    !t.contains(v),
                    "output #{i} contains a secret (hint {})",
                    s.hint()
                );
            }
        }
    }
}

/// Replace the top-level YAML block starting at `key` (up to the next top-level key).
fn replace_block(yaml: &str, key: &str, with: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in yaml.lines() {
        if line.starts_with(key) {
            skipping = true;
            out.push_str(with);
            continue;
        }
        if skipping && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parse a JSON document from stdout.
pub fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
}
