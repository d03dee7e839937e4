//! The `command` vault against real vault CLIs, through the real binary and the in-process
//! emulator (issue 9 §2, issue 10): `pass` with a throw-away GPG key made here (its own
//! `GNUPGHOME` and `PASSWORD_STORE_DIR`), `secret-tool` inside the D-Bus session
//! `scripts/test.sh` starts; and the hardening of the child: a cleared environment with an
//! allow-list, `entraform send`, and a failing `get` without a missing-entry rule.
//!
//! The real-tool tests skip with a note when the tool is absent, unless
//! `ENTRAFORM_REQUIRE_TOOLS=1` (CI installs them: `.ci/run`).

use crate::support::harness;
use crate::support::{HIVE, HIVE_VAULT_PATH, frame_seed};

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use entraform::emulator::EmulatorConfig;
use entraform::secret::Secret;
use harness::{GOOD_PUSH, Harness, writes};
use serde_json::Value;

async fn harness() -> Harness {
    Harness::with_config(EmulatorConfig::default().seed(frame_seed())).await
}

/// The app's password credentials made by entraform (its marker display name).
fn hive_credentials(h: &Harness) -> Vec<Value> {
    let apps = h.apps_of("axe-hive-mcp", "https://axe.axelabs.ai/hive/mcp");
    if apps.is_empty() {
        return Vec::new();
    }
    apps[0]["passwordCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// A skipped external-tool test says so on stderr (common rules).
#[allow(clippy::print_stderr)]
fn tool_available(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if !found {
        assert!(
            std::env::var("ENTRAFORM_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (ENTRAFORM_REQUIRE_TOOLS=1) but was not found: install it \
             (.ci/run installs pass, gnupg and libsecret-tools)"
        );
        eprintln!("note: skipping a check: {name} is not installed");
    }
    found
}

#[allow(clippy::print_stderr)]
fn secret_service_available() -> bool {
    let present = std::env::var("ENTRAFORM_SECRET_SERVICE").as_deref() == Ok("1");
    if !present {
        assert!(
            std::env::var("ENTRAFORM_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "ENTRAFORM_REQUIRE_TOOLS=1 but no Secret Service: run the tests through \
             scripts/test.sh with gnome-keyring, dbus and libsecret-tools installed"
        );
        eprintln!(
            "note: secret-tool test skipped (no Secret Service; run through scripts/test.sh \
             with gnome-keyring installed)"
        );
    }
    present && tool_available("secret-tool")
}

// ---------------------------------------------------------------------------------------------
// pass

/// A throw-away password store: a GPG key without passphrase in its own GNUPGHOME, and a
/// store initialised for it (VALIDATORS §h). The agent is stopped on drop.
struct PassStore {
    gnupg: tempfile::TempDir,
    store: PathBuf,
}

impl PassStore {
    fn new(store: PathBuf) -> Self {
        let gnupg = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(gnupg.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let s = PassStore { gnupg, store };
        let out = s
            .cmd("gpg")
            .args([
                "--batch",
                "--quiet",
                "--passphrase",
                "",
                "--quick-gen-key",
                "entraform-test@example.invalid",
                "default",
                "default",
                "never",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = s
            .cmd("pass")
            .args(["init", "entraform-test@example.invalid"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    fn env(&self) -> Vec<(String, OsString)> {
        vec![
            ("GNUPGHOME".into(), self.gnupg.path().into()),
            ("PASSWORD_STORE_DIR".into(), self.store.clone().into()),
        ]
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// What `pass show` prints for `path` (exact bytes), or `None` when it fails.
    fn show(&self, path: &str) -> Option<Secret> {
        let out = self.cmd("pass").args(["show", path]).output().unwrap();
        out.status
            .success()
            .then(|| Secret::new(String::from_utf8(out.stdout).unwrap()))
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = self.cmd("gpgconf").args(["--kill", "gpg-agent"]).output();
    }
}

fn pass_available() -> bool {
    tool_available("pass") && tool_available("gpg")
}

async fn pass_harness() -> (Harness, PassStore) {
    let mut h = harness().await;
    let store = PassStore::new(h.root().join("password-store"));
    h.extra_env = store.env();
    h.set_vault("vault:\n  backend: command\n  preset: pass\n");
    // The store holds only GPG-encrypted files: the leak scan covers it too.
    h.vault_files = Vec::new();
    (h, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_fresh_apply_reapply_rotate_and_secrets() {
    if !pass_available() {
        return;
    }
    let (h, store) = pass_harness().await;
    // Fresh: `pass show` of the missing entry exits 1 ("… is not in the password store."),
    // which the preset's rule reads as "absent".
    let run = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    run.expect(0);
    let doc = run.json();
    assert_eq!(doc["applied"]["secret"]["vault"]["verified"], true, "{doc}");
    let first = store.show(HIVE_VAULT_PATH).expect("pass holds the secret");
    assert_eq!(first.len(), 40, "exactly the secret, no newline added");
    assert!(h.emu.issued_secrets().iter().any(|s| s.same_as(&first)));
    assert!(
        store.store.join(format!("{HIVE_VAULT_PATH}.gpg")).is_file(),
        "stored as pass stores it"
    );

    // Re-apply: the value reads back, nothing to write.
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(
        writes(&h.graph_requests()).is_empty(),
        "{:?}",
        writes(&h.graph_requests())
    );

    // Rotate: a new secret in pass, proven.
    h.run(&["rotate", HIVE]).await.expect(0);
    let second = store.show(HIVE_VAULT_PATH).unwrap();
    assert!(!second.same_as(&first));
    assert!(h.emu.issued_secrets().iter().any(|s| s.same_as(&second)));

    // `secrets` sees what pass holds.
    let run = h.run(&["secrets", HIVE, "--output", "json"]).await;
    run.expect(0);
    let doc = run.json();
    let svc = &doc["services"][0];
    assert_eq!(svc["health"], "ok", "{doc}");
    assert_eq!(svc["vault"]["state"], "holds", "{doc}");
    assert_eq!(svc["vault"]["hint"], second.hint(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_with_a_key_it_cannot_use_is_an_error_and_loses_nothing() {
    if !pass_available() {
        return;
    }
    let (mut h, store) = pass_harness().await;
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let held = store.show(HIVE_VAULT_PATH).unwrap();
    let entry = store.store.join(format!("{HIVE_VAULT_PATH}.gpg"));
    let bytes = std::fs::read(&entry).unwrap();
    let creds = hive_credentials(&h);

    // The secret key is gone (another GNUPGHOME): `pass show` exits 2 with gpg's
    // "decryption failed: No secret key" — not the preset's missing-entry rule.
    let empty = tempfile::tempdir().unwrap();
    h.extra_env = vec![
        ("GNUPGHOME".into(), empty.path().into()),
        ("PASSWORD_STORE_DIR".into(), store.store.clone().into()),
    ];
    h.emu.clear_requests();
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let err = run.diagnostics();
    assert!(
        err.contains("cannot read the secret from command `pass show {path}`"),
        "{err}"
    );
    assert!(err.contains("exit status 2"), "{err}");
    assert!(err.contains("not the vault's missing-entry rule"), "{err}");
    assert!(writes(&h.graph_requests()).is_empty(), "nothing written");
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "the entry is untouched"
    );
    assert_eq!(hive_credentials(&h), creds, "the credential is untouched");

    // `secrets` reports the failed read, never "absent".
    let run = h.run(&["secrets", HIVE, "--output", "json"]).await;
    run.expect(1);
    let doc = run.json();
    assert_eq!(doc["services"][0]["health"], "error", "{doc}");
    assert_eq!(
        doc["services"][0]["summary"], "the vault read failed",
        "{doc}"
    );

    // With the key back, all is as before.
    h.extra_env = store.env();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(store.show(HIVE_VAULT_PATH).unwrap().same_as(&held));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_store_without_gpg_id_rolls_the_new_credential_back() {
    if !pass_available() {
        return;
    }
    let (h, store) = pass_harness().await;
    std::fs::remove_file(store.store.join(".gpg-id")).unwrap();
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let err = run.diagnostics();
    assert!(
        err.contains("cannot write the secret to command `pass insert"),
        "{err}"
    );
    assert!(
        err.contains("pass init"),
        "pass's own words are shown: {err}"
    );
    assert!(err.contains("was removed again"), "{err}");
    assert!(
        hive_credentials(&h).is_empty(),
        "no credential outlives the failed write: {:?}",
        hive_credentials(&h)
    );
    assert!(!store.store.join(format!("{HIVE_VAULT_PATH}.gpg")).exists());
}

// ---------------------------------------------------------------------------------------------
// secret-tool

/// Removes the test's items from the Secret Service.
struct SecretToolItem(String);

impl Drop for SecretToolItem {
    fn drop(&mut self) {
        let _ = Command::new("secret-tool")
            .args(["clear", "service", "entraform", "path", &self.0])
            .output();
    }
}

fn secret_tool_lookup(path: &str) -> Option<Secret> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "entraform", "path", path])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| Secret::new(String::from_utf8(out.stdout).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_tool_fresh_apply_reapply_rotate_secrets_and_a_lost_bus() {
    if !secret_service_available() {
        return;
    }
    let mut h = harness().await;
    // Each run of this test uses its own vault path, so concurrent suites do not meet.
    let path = format!("hive/axe-{}/mcp-client-secret", std::process::id());
    let _cleanup = SecretToolItem(path.clone());
    let text = std::fs::read_to_string(h.manifests().join("hive.yaml")).unwrap();
    h.write_manifest(
        "hive.yaml",
        &format!("{text}\noverrides:\n  vault_path: {path}\n")
            .replace("\n\noverrides:", "\noverrides:"),
    );
    h.set_vault("vault:\n  backend: command\n  preset: secret-tool\n");
    h.vault_files = Vec::new();
    assert!(secret_tool_lookup(&path).is_none());

    // Fresh: `secret-tool lookup` of a missing item exits 1 with no output: absent.
    let run = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    run.expect(0);
    assert_eq!(run.json()["applied"]["secret"]["vault"]["verified"], true);
    let first = secret_tool_lookup(&path).expect("the Secret Service holds it");
    assert!(h.emu.issued_secrets().iter().any(|s| s.same_as(&first)));

    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(writes(&h.graph_requests()).is_empty());

    h.run(&["rotate", HIVE]).await.expect(0);
    let second = secret_tool_lookup(&path).unwrap();
    assert!(!second.same_as(&first));

    let run = h.run(&["secrets", HIVE, "--output", "json"]).await;
    run.expect(0);
    let doc = run.json();
    assert_eq!(doc["services"][0]["vault"]["hint"], second.hint(), "{doc}");

    // No Secret Service reachable: `secret-tool lookup` exits 1 too, but says why on stderr,
    // so it is a failed read (nothing written), not an empty vault.
    h.extra_env = vec![(
        "DBUS_SESSION_BUS_ADDRESS".into(),
        "unix:path=/nonexistent/entraform-bus".into(),
    )];
    h.emu.clear_requests();
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let err = run.diagnostics();
    assert!(err.contains("secret-tool lookup"), "{err}");
    assert!(err.contains("not the vault's missing-entry rule"), "{err}");
    assert!(writes(&h.graph_requests()).is_empty());
    let run = h.run(&["secrets", HIVE, "--output", "json"]).await;
    run.expect(1);
    assert_eq!(
        run.json()["services"][0]["summary"],
        "the vault read failed"
    );
    h.extra_env.clear();
    assert!(
        secret_tool_lookup(&path).unwrap().same_as(&second),
        "nothing lost"
    );
}

// ---------------------------------------------------------------------------------------------
// the child's environment, a get without a missing-entry rule, send

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_command_gets_an_allow_listed_environment_only() {
    let mut h = harness().await;
    h.write_script(
        "push.sh",
        &format!(r#"env > "$(dirname "$0")/env-dump.txt"; {GOOD_PUSH}"#),
    );
    h.write_script(
        "get.sh",
        r#"f="$(dirname "$0")/store/$1"; if [ -f "$f" ]; then cat "$f"; fi"#,
    );
    h.set_vault(
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n  env: [AXE_PROFILE]\n",
    );
    h.vault_files = vec![h.manifests().join("store")];
    h.extra_env = vec![
        ("AXE_PROFILE".into(), "ops".into()),
        ("GITHUB_TOKEN".into(), "ghp-not-for-vaults".into()),
        ("PASSWORD_STORE_DIR".into(), "/srv/pass".into()),
        ("BW_SESSION".into(), "bw-session-value".into()),
        ("AZURE_CLIENT_CERTIFICATE_PATH".into(), "/etc/op.pem".into()),
    ];
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let dump = std::fs::read_to_string(h.manifests().join("env-dump.txt")).unwrap();
    let names: Vec<&str> = dump
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    // The binary runs with AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (the
    // operator's credentials): none of them reaches the vault command.
    assert!(!names.iter().any(|n| n.starts_with("AZURE_")), "{names:?}");
    assert!(
        !dump.contains(h.emu.operator_secret().expose()),
        "the operator's secret is not in the child's environment"
    );
    for kept in [
        "PATH",
        "HOME",
        "USER",
        "AXE_PROFILE",
        "PASSWORD_STORE_DIR",
        "BW_SESSION",
    ] {
        assert!(names.contains(&kept), "{kept} missing from {names:?}");
    }
    for dropped in [
        "GITHUB_TOKEN",
        "RUST_LOG",
        "ENTRAFORM_GRAPH_URL",
        "ENTRAFORM_CA_CERT",
    ] {
        assert!(
            !names.contains(&dropped),
            "{dropped} reached the child: {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_get_without_a_rule_does_not_block_the_first_apply() {
    let mut h = harness().await;
    // Like `bw get password` (exit 1, "Not found.") wrapped without a missing-entry rule.
    h.write_script("push.sh", GOOD_PUSH);
    h.write_script(
        "get.sh",
        r#"f="$(dirname "$0")/store/$1"; if [ -f "$f" ]; then cat "$f"; else echo "Not found." >&2; exit 1; fi"#,
    );
    h.set_vault(
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n",
    );
    h.vault_files = vec![h.manifests().join("store")];
    let plan = h.run(&["plan", HIVE]).await;
    plan.expect(3);
    assert!(
        plan.stdout.contains("taken as holding nothing usable"),
        "{}",
        plan.stdout
    );
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(0);
    let err = run.diagnostics();
    assert!(
        err.contains("Not found."),
        "the warning shows the CLI's stderr: {err}"
    );
    assert!(
        err.contains("taken as: the vault holds nothing usable"),
        "{err}"
    );
    assert!(err.contains("missing: {exit: [CODE]"), "{err}");
    assert!(h.command_vault_secret(HIVE_VAULT_PATH).is_some());
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(writes(&h.graph_requests()).is_empty());

    // `secrets` and `verify` report such a read as a failed read, never as "absent".
    std::fs::remove_dir_all(h.manifests().join("store")).unwrap();
    let run = h.run(&["secrets", HIVE, "--output", "json"]).await;
    run.expect(1);
    assert_eq!(
        run.json()["services"][0]["summary"],
        "the vault read failed"
    );
    let run = h.run(&["verify", HIVE, "--output", "json"]).await;
    let text = run.stdout.clone();
    assert!(text.contains("Not found."), "{text}");
    assert!(!text.contains("holds no secret"), "{text}");

    // `rotate` with the entry gone: not fatal either; the new secret is written and read back.
    let run = h.run(&["rotate", HIVE]).await;
    run.expect(0);
    assert!(
        run.diagnostics()
            .contains("taken as: the vault holds nothing usable"),
        "{}",
        run.diagnostics()
    );
    let rotated = h
        .command_vault_secret(HIVE_VAULT_PATH)
        .expect("rotate stored a secret");
    assert!(h.emu.issued_secrets().iter().any(|s| s.same_as(&rotated)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_read_back_fails_is_rolled_back_even_without_a_rule() {
    let h = harness().await;
    // The push "succeeds" but stores nothing; the get fails without a rule: taken as empty
    // before minting, but the read-back after the push must succeed.
    h.write_script("push.sh", "cat >/dev/null");
    h.write_script("get.sh", r#"echo "Not found." >&2; exit 1"#);
    h.set_vault(
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n",
    );
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let err = run.diagnostics();
    assert!(err.contains("was removed again"), "{err}");
    assert!(
        hive_credentials(&h).is_empty(),
        "{:?}",
        hive_credentials(&h)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_hands_the_secret_over_on_stdin_only() {
    let mut h = harness().await;
    h.write_script("push.sh", GOOD_PUSH);
    h.write_script(
        "get.sh",
        r#"f="$(dirname "$0")/store/$1"; if [ -f "$f" ]; then cat "$f"; fi"#,
    );
    // The send command records its argv, environment and stdin apart (the stdin file is the
    // hand-off, excluded from the leak scan like the store).
    h.write_script(
        "send.sh",
        r#"d="$(dirname "$0")"; printf '%s\n' "$@" > "$d/send-argv.txt"; env > "$d/send-env.txt"; mkdir -p "$d/sent"; cat > "$d/sent/stdin"; echo "https://send.example.invalid/#link-to-the-secret""#,
    );
    h.set_vault(
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n  send: [./send.sh, \"{path}\", --to, \"{to}\"]\n",
    );
    h.vault_files = vec![h.manifests().join("store"), h.manifests().join("sent")];

    // Nothing stored yet: a clear error, nothing run.
    let run = h.run(&["send", HIVE, "--to", "jane@axelabs.ai"]).await;
    run.expect(1);
    assert!(
        run.diagnostics()
            .contains("holds nothing at hive/axe/mcp-client-secret"),
        "{}",
        run.diagnostics()
    );
    assert!(!h.manifests().join("send-argv.txt").exists());

    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let stored = h.command_vault_secret(HIVE_VAULT_PATH).unwrap();
    let run = h
        .run(&["send", HIVE, "--to", "jane@axelabs.ai", "--output", "json"])
        .await;
    run.expect(0);
    let doc = run.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["to"], "jane@axelabs.ai");
    assert_eq!(doc["vault_path"], HIVE_VAULT_PATH);
    assert_eq!(doc["hint"], stored.hint());
    // stdin got exactly the secret; argv and environment hold no part of it; the send
    // command's stdout (a link to the secret) is not shown.
    let sent = std::fs::read(h.manifests().join("sent/stdin")).unwrap();
    assert_eq!(sent, stored.expose().as_bytes());
    let argv = std::fs::read_to_string(h.manifests().join("send-argv.txt")).unwrap();
    assert_eq!(argv, format!("{HIVE_VAULT_PATH}\n--to\njane@axelabs.ai\n"));
    let env = std::fs::read_to_string(h.manifests().join("send-env.txt")).unwrap();
    assert!(!env.contains("AZURE_"), "{env}");
    assert!(
        !run.stdout.contains("link-to-the-secret") && !run.stderr.contains("link-to-the-secret")
    );

    // A recipient that reads as an option is refused before anything runs.
    let run = h.run(&["send", HIVE, "--to=--exec=sh"]).await;
    run.expect(2);
    assert!(
        run.diagnostics().contains("starts with `-`"),
        "{}",
        run.diagnostics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_a_send_command_says_where_to_declare_one() {
    let h = harness().await;
    let run = h.run(&["send", HIVE, "--to", "jane@axelabs.ai"]).await;
    run.expect(2);
    let err = run.diagnostics();
    assert!(err.contains("has no `send:` command"), "{err}");
    assert!(err.contains("defaults.yaml"), "{err}");
}
