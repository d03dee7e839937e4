//! Secret-leak audit (issue 6): every command of the binary runs against the emulator with
//! `RUST_LOG=trace` and `TMPDIR` inside the test's temp dir; then stdout, stderr, and every file
//! under the temp dir (rendered fragments, merged files and their `.bak`, the audit log, the
//! sandbox dir, the process's temp files, scaffolded manifests) are scanned for every secret the
//! emulator issued (any 12-character run of one) and for anything shaped like an Entra secret.
//!
//! Exempt, because holding the secret is their job:
//! - `manifests/vault.json`: the `file` vault of the temp manifests;
//! - `sandbox/.entraform/sandbox/vault.json`: the `file` vault of `apply --sandbox`;
//! - `manifests/store/`: the `command` vault's store (the fake vault CLI's data);
//! - the stdout of `entraform emulator`: its documented job is to print the `export` lines,
//!   `AZURE_CLIENT_SECRET` and `ENTRAFORM_EMULATOR_CONTROL_TOKEN` included (SPEC §6); it is
//!   checked to hold each on its own line and no other secret. The control token is then one
//!   of the values scanned for everywhere else (the emulator's trace log included).
// The figures each run reports on stderr are what docs/RELIABILITY.md quotes.
#![allow(clippy::print_stderr)]

use crate::support::reliability;
use crate::support::{DOMAIN, TENANT_B, copy_dir, repo};

use std::ops::Not;
use std::path::{Path, PathBuf};
use std::time::Duration;

use entraform::emulator::{EmulatorConfig, RunningEmulator, start};
use entraform::secret::Secret;
use reliability::{Leak, Scanner, command, files_under};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// Move realchoice to tenant B and give it a service, `ledger` (reference frame).
fn realchoice_in_b(manifests: &Path) {
    let path = manifests.join("defaults.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from = "    tenant_id: 122fb574-7efa-476a-95b6-bee81bce2cce\n    host: realchoice";
    assert!(text.contains(from));
    std::fs::write(
        &path,
        text.replacen(
            from,
            &format!("    tenant_id: {TENANT_B}\n    host: realchoice"),
            1,
        ),
    )
    .unwrap();
    std::fs::write(
        manifests.join("ledger.yaml"),
        "service: ledger\ncustomer: realchoice\nproxy_port: 3161\nreference: frame\n",
    )
    .unwrap();
}

/// Replace the `vault:` block of the temp defaults (it ends at the next blank line).
fn set_vault(manifests: &Path, block: &str) {
    let path = manifests.join("defaults.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("\nvault:").expect("defaults has a vault block") + 1;
    let end = text[start..]
        .find("\n\n")
        .map(|i| start + i + 1)
        .unwrap_or(text.len());
    std::fs::write(
        &path,
        format!("{}{}{}", &text[..start], block, &text[end..]),
    )
    .unwrap();
}

/// One run: what was run, and both streams.
struct Ran {
    label: String,
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

struct Audit {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    ran: Vec<Ran>,
    /// Secrets known from outside the emulator's list (the sandbox's, the binary emulator's).
    extra: Vec<Secret>,
}

impl Audit {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn manifests(&self) -> PathBuf {
        self.root().join("manifests")
    }

    /// Run `args` in `cwd` (relative to the temp root) and check the exit code is one of `ok`.
    async fn run_in(&mut self, cwd: &str, args: &[&str], ok: &[i32]) -> String {
        let cwd = self.root().join(cwd);
        let out = command(
            &self.emu,
            &self.root().join("ca.pem"),
            &cwd,
            &self.root().join("tmp"),
            args,
        )
        .output()
        .await
        .expect("the binary runs");
        let code = out.status.code().unwrap_or(-1);
        let label = format!("entraform {}", args.join(" "));
        assert!(
            ok.contains(&code),
            "{label}: exit {code}, expected {ok:?}\nstdout:\n{}\nstderr (tail):\n{}",
            String::from_utf8_lossy(&out.stdout),
            tail(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.ran.push(Ran {
            label,
            code,
            stdout: out.stdout,
            stderr: out.stderr,
        });
        stdout
    }

    async fn run(&mut self, args: &[&str], ok: &[i32]) -> String {
        self.run_in(".", args, ok).await
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `entraform emulator --tls` as a child: read its export lines, run `plan` against it, ask it
/// for every secret it issued, stop it.
async fn binary_emulator(a: &mut Audit) {
    let root = a.root().to_path_buf();
    let ca = root.join("emu-ca.pem");
    let mut child = command(
        &a.emu,
        &root.join("ca.pem"),
        &root,
        &root.join("tmp"),
        &[
            "emulator",
            "--tls",
            "--verified-domain",
            DOMAIN,
            "--seed",
            repo("tests/fixtures/frame.seed.json").to_str().unwrap(),
            "--ca-cert-out",
            ca.to_str().unwrap(),
        ],
    )
    .spawn()
    .expect("the emulator starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut exports = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            exports.push(line);
            let seen = |k: &str| {
                exports
                    .iter()
                    .any(|l| l.starts_with(&format!("export {k}=")))
            };
            if seen("AZURE_CLIENT_SECRET")
                && seen("ENTRAFORM_CA_CERT")
                && seen("ENTRAFORM_EMULATOR_CONTROL_TOKEN")
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the emulator prints its export lines");
    let var = |name: &str| -> String {
        let line = exports
            .iter()
            .find(|l| l.starts_with(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("no {name} in {} export lines", exports.len()));
        let v = &line[format!("export {name}=").len()..];
        v.trim_matches('\'').to_string()
    };
    let secret = Secret::new(var("AZURE_CLIENT_SECRET"));
    let control_token = Secret::new(var("ENTRAFORM_EMULATOR_CONTROL_TOKEN"));
    // The plan of a service against the binary emulator.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_entraform"));
    let out = cmd
        .args(["plan", "manifests/hive.yaml"])
        .current_dir(&root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("TMPDIR", root.join("tmp"))
        .env("RUST_LOG", "trace")
        .env("AZURE_AUTHORITY_HOST", var("AZURE_AUTHORITY_HOST"))
        .env("ENTRAFORM_GRAPH_URL", var("ENTRAFORM_GRAPH_URL"))
        .env("ENTRAFORM_CA_CERT", var("ENTRAFORM_CA_CERT"))
        .env("AZURE_TENANT_ID", var("AZURE_TENANT_ID"))
        .env("AZURE_CLIENT_ID", var("AZURE_CLIENT_ID"))
        .env("AZURE_CLIENT_SECRET", secret.expose())
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "plan against the binary emulator\n{}",
        tail(&out.stderr)
    );
    a.ran.push(Ran {
        label: "entraform plan (against `entraform emulator`)".into(),
        code: 3,
        stdout: out.stdout,
        stderr: out.stderr,
    });
    // Every secret the binary emulator knows of, through its control endpoint (which needs the
    // control token: without it, 401).
    let pem = std::fs::read(&ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let graph = var("ENTRAFORM_GRAPH_URL");
    let control = graph.trim_end_matches("/v1.0").to_string() + "/_emulator/issued-secrets";
    let refused = http.get(&control).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the controls need the token");
    let issued: Value = http
        .get(&control)
        .bearer_auth(control_token.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values: Vec<Secret> = issued
        .as_array()
        .or_else(|| issued["secrets"].as_array())
        .expect("a list of secrets")
        .iter()
        .filter_map(|v| v.as_str().or_else(|| v["value"].as_str()))
        .map(|s| Secret::new(s.to_string()))
        .collect();
    assert!(!values.is_empty());
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    // Its stdout (export lines, read above) must hold the secret and the control token each on
    // its one line only.
    for (value, line) in [
        (&secret, "export AZURE_CLIENT_SECRET="),
        (&control_token, "export ENTRAFORM_EMULATOR_CONTROL_TOKEN="),
    ] {
        let leaked_elsewhere: Vec<&String> = exports
            .iter()
            .filter(|l| !l.starts_with(line))
            .filter(|l| l.contains(value.expose()))
            .collect();
        assert!(leaked_elsewhere.is_empty(), "{leaked_elsewhere:?}");
    }
    a.ran.push(Ran {
        label: "entraform emulator (stderr)".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: Vec::new(),
        stderr: out.stderr,
    });
    a.extra.extend(values);
    a.extra.push(secret);
    a.extra.push(control_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_leaks_a_secret_anywhere() {
    let frame: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/frame.seed.json")).unwrap(),
    )
    .unwrap();
    let emu = start(
        EmulatorConfig::default()
            .tls(true)
            .verified_domain(DOMAIN)
            .seed(frame)
            .add_tenant(TENANT_B),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    emu.write_ca_cert(&dir.path().join("ca.pem")).unwrap();
    copy_dir(&repo("manifests"), &dir.path().join("manifests"));
    copy_dir(&repo("manifests"), &dir.path().join("sandbox/manifests"));
    // A sandbox of two customer tenants, and --all runs where one tenant is unreachable.
    realchoice_in_b(&dir.path().join("sandbox/manifests"));
    copy_dir(&repo("manifests"), &dir.path().join("tenants/manifests"));
    realchoice_in_b(&dir.path().join("tenants/manifests"));
    std::fs::copy(
        repo("tests/fixtures/render/customers.yaml"),
        dir.path().join("customers.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo("tests/fixtures/render/cloudflared-config.yml"),
        dir.path().join("cloudflared.yml"),
    )
    .unwrap();
    let mut a = Audit {
        emu,
        dir,
        ran: Vec::new(),
        extra: Vec::new(),
    };
    set_vault(
        &a.manifests(),
        "vault:\n  backend: file\n  path: vault.json\n",
    );
    let hive = "manifests/hive.yaml";

    // Commands that need no tenant.
    a.run(&["schema"], &[0]).await;
    a.run(&["completions", "bash"], &[0]).await;
    a.run(&["explain", "AADSTS7000215"], &[0]).await;
    a.run(&["explain", "Invalid", "Host", "header"], &[0]).await;
    a.run(
        &[
            "new",
            "zeta",
            "--customer",
            "axe",
            "--proxy-port",
            "3190",
            "--dir",
            "manifests",
        ],
        &[0],
    )
    .await;
    std::fs::remove_file(a.manifests().join("zeta.yaml")).unwrap();
    a.run(&["render", hive, "--out", "out-render"], &[0]).await;
    a.run(&["verify", hive], &[0, 3]).await;

    // The main job and everything after it, text and JSON.
    a.run(&["plan", hive], &[3]).await;
    a.run(&["-vv", "apply", hive, "--out", "out", "--yes"], &[0])
        .await;
    a.run(&["plan", hive, "--output", "json"], &[0]).await;
    a.run(&["apply", hive, "--out", "out", "--output", "json"], &[0])
        .await;
    a.run(&["secrets", hive], &[0]).await;
    a.run(&["secrets", hive, "--output", "json"], &[0]).await;
    a.run(&["drift", hive], &[0, 3]).await;
    a.run(
        &["drift", "--all", "manifests", "--output", "json"],
        &[0, 1, 3],
    )
    .await;
    a.run(&["export", hive], &[0]).await;
    a.run(&["export", hive, "--out", "hive.export.json"], &[0])
        .await;
    a.run(&["drift", hive, "--reference", "hive.export.json"], &[0, 3])
        .await;
    a.run(&["rotate", hive, "--overlap-days", "0"], &[0]).await;
    a.run(&["-v", "rotate", hive, "--output", "json"], &[0])
        .await;
    a.run(&["rotate", "--all", "manifests"], &[0, 1]).await;
    a.run(&["secrets", "--all", "manifests"], &[0, 1, 3]).await;
    // The people policy's outputs: the hand-off, the still-valid secrets, the explicit prune.
    a.run(&["secrets", hive, "--output", "json"], &[0]).await;
    a.run(&["-vv", "rotate", hive, "--prune-old"], &[0]).await;
    a.run(&["rotate", hive, "--prune-old", "--output", "json"], &[0])
        .await;
    // addPassword's answer lost after it ran (504, then a dropped connection): settled.
    for lost in [
        entraform::emulator::LostAnswer::GatewayTimeout,
        entraform::emulator::LostAnswer::Reset,
    ] {
        a.emu
            .set_faults(entraform::emulator::Faults {
                lose_answer_next: 1,
                lost_answer: lost,
                matching: Some("addPassword".into()),
                ..Default::default()
            })
            .unwrap();
        a.run(&["-vv", "rotate", hive, "--output", "json"], &[1])
            .await;
    }
    a.emu
        .set_faults(entraform::emulator::Faults::default())
        .unwrap();
    // Two customer tenants, the second one the operator cannot reach (its app is registered
    // in the first tenant only: AADSTS700016): only ledger fails, by name.
    set_vault(
        &a.root().join("tenants/manifests"),
        "vault:\n  backend: file\n  path: vault.json\n",
    );
    for args in [
        &["drift", "--all", "tenants/manifests"][..],
        &["secrets", "--all", "tenants/manifests", "--output", "json"],
        &["rotate", "--all", "tenants/manifests"],
        &["plan", "tenants/manifests/ledger.yaml"],
    ] {
        a.run(args, &[1]).await;
    }
    a.run(
        &[
            "render",
            hive,
            "--out",
            "out",
            "--merge-cloudflared",
            "cloudflared.yml",
            "--merge-customers",
            "customers.yaml",
            "--force",
        ],
        &[0],
    )
    .await;
    let url = a.emu.graph_url().trim_end_matches("/v1.0").to_string();
    a.run(&["verify", hive, "--url", &url], &[0, 3]).await;
    a.run(&["verify", hive, "--output", "json"], &[0, 3]).await;

    // Failure paths that handle the secret: a vault command that prints what it got on
    // stderr and fails (the error shows its output redacted), then one that stores something
    // else (read-back mismatch); each rolls the credential back.
    std::fs::write(
        a.manifests().join("push.sh"),
        "#!/bin/sh\ncat >&2; echo ' <- got that' >&2; exit 3\n",
    )
    .unwrap();
    std::fs::write(
        a.manifests().join("get.sh"),
        "#!/bin/sh\nf=\"$(dirname \"$0\")/store/x\"; [ -f \"$f\" ] && cat \"$f\"; exit 0\n",
    )
    .unwrap();
    std::fs::write(
        a.manifests().join("push-mismatch.sh"),
        "#!/bin/sh\nmkdir -p \"$(dirname \"$0\")/store\"; { echo WARNING: slow; cat; } > \"$(dirname \"$0\")/store/x\"\n",
    )
    .unwrap();
    for f in ["push.sh", "get.sh", "push-mismatch.sh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            a.manifests().join(f),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    set_vault(
        &a.manifests(),
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n",
    );
    a.run(&["rotate", hive], &[1]).await;
    set_vault(
        &a.manifests(),
        "vault:\n  backend: command\n  push: [./push-mismatch.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n",
    );
    a.run(&["rotate", hive, "--output", "json"], &[1]).await;
    // `entraform send`: the secret from the vault to the send command's stdin (kept in the
    // exempt store), with a send that fails and echoes its stdin on stderr (redacted), and a
    // `get` that fails without a missing-entry rule after printing the secret on stderr (the
    // warning shows its stderr, redacted).
    for (name, body) in [
        (
            "push-good.sh",
            "d=\"$(dirname \"$0\")/store\"; mkdir -p \"$d/$(dirname \"$1\")\"; cat > \"$d/$1\"",
        ),
        (
            "get-good.sh",
            "f=\"$(dirname \"$0\")/store/$1\"; [ -f \"$f\" ] && cat \"$f\"; exit 0",
        ),
        (
            "get-unsure.sh",
            "cat \"$(dirname \"$0\")/store/$1\" >&2; echo ' <- is what I have' >&2; exit 1",
        ),
        (
            "send.sh",
            "cat > \"$(dirname \"$0\")/store/sent\"; echo \"sent to $2\"",
        ),
        (
            "send-fail.sh",
            "cat >&2; echo ' <- could not send that' >&2; exit 1",
        ),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let path = a.manifests().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let command_vault = |get: &str, send: &str| {
        format!(
            "vault:\n  backend: command\n  push: [./push-good.sh, \"{{path}}\"]\n  get: [./{get}, \"{{path}}\"]\n  send: [./{send}, \"{{path}}\", \"{{to}}\"]\n"
        )
    };
    set_vault(&a.manifests(), &command_vault("get-good.sh", "send.sh"));
    a.run(&["apply", hive, "--out", "out"], &[0]).await;
    a.run(&["send", hive, "--to", "jane@axelabs.ai"], &[0])
        .await;
    a.run(
        &[
            "-v",
            "send",
            hive,
            "--to",
            "jane@axelabs.ai",
            "--output",
            "json",
        ],
        &[0],
    )
    .await;
    set_vault(
        &a.manifests(),
        &command_vault("get-good.sh", "send-fail.sh"),
    );
    a.run(&["send", hive, "--to", "jane@axelabs.ai"], &[1])
        .await;
    a.run(
        &["send", hive, "--to", "jane@axelabs.ai", "--output", "json"],
        &[1],
    )
    .await;
    set_vault(&a.manifests(), &command_vault("get-unsure.sh", "send.sh"));
    a.run(&["plan", hive], &[3]).await;
    a.run(&["secrets", hive, "--output", "json"], &[1]).await;
    a.run(&["send", hive, "--to", "jane@axelabs.ai"], &[1])
        .await;
    let sent = std::fs::read(a.manifests().join("store/sent")).unwrap();
    assert!(
        Scanner::new(&a.emu.issued_secrets())
            .scan("sent", &sent)
            .is_empty()
            .not(),
        "the send command got the secret on stdin"
    );

    set_vault(
        &a.manifests(),
        "vault:\n  backend: file\n  path: vault.json\n",
    );
    a.run(&["apply", hive, "--out", "out"], &[0]).await;

    // The sandbox, in a directory of its own.
    a.run_in(
        "sandbox",
        &["apply", "manifests/hive.yaml", "--sandbox"],
        &[0],
    )
    .await;
    a.run_in(
        "sandbox",
        &[
            "apply",
            "manifests/hive.yaml",
            "--sandbox",
            "--output",
            "json",
        ],
        &[0],
    )
    .await;
    a.run_in(
        "sandbox",
        &["apply", "manifests/ledger.yaml", "--sandbox"],
        &[0],
    )
    .await;
    // The sandbox's in-process emulator hands its CA to the client in memory: it leaves no
    // certificate directory in TMPDIR.
    let left: Vec<String> = std::fs::read_dir(a.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("entraform-emulator"))
        .collect();
    assert!(left.is_empty(), "the sandbox left {left:?} in TMPDIR");
    let sandbox_vault = a.root().join("sandbox/.entraform/sandbox/vault.json");
    let held: Value = serde_json::from_slice(&std::fs::read(&sandbox_vault).unwrap()).unwrap();
    for v in held.as_object().unwrap().values() {
        a.extra.push(Secret::new(v.as_str().unwrap().to_string()));
    }

    // The emulator command itself, and a client of it.
    binary_emulator(&mut a).await;

    // Scan.
    let mut secrets = a.emu.issued_secrets();
    secrets.push(Secret::new(a.emu.control_token().expose().to_string()));
    secrets.extend(a.extra.iter().map(|s| Secret::new(s.expose().to_string())));
    let scanner = Scanner::new(&secrets);
    let exempt: Vec<PathBuf> = vec![
        a.manifests().join("vault.json"),
        a.manifests().join("store"),
        a.root().join("tenants/manifests/vault.json"),
        sandbox_vault.clone(),
    ];
    let mut leaks: Vec<Leak> = Vec::new();
    let mut bytes_scanned = 0usize;
    for r in &a.ran {
        bytes_scanned += r.stdout.len() + r.stderr.len();
        let label = format!("{} (exit {})", r.label, r.code);
        leaks.extend(scanner.scan(&format!("stdout of {label}"), &r.stdout));
        leaks.extend(scanner.scan(&format!("stderr of {label}"), &r.stderr));
    }
    let files: Vec<PathBuf> = files_under(a.root())
        .into_iter()
        .filter(|f| !exempt.iter().any(|e| f.starts_with(e)))
        .collect();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        bytes_scanned += bytes.len();
        leaks.extend(scanner.scan(
            &f.strip_prefix(a.root()).unwrap().display().to_string(),
            &bytes,
        ));
    }
    // The audit has teeth: the exempt stores do hold secrets, the logs were at trace level,
    // and the temp dir saw the runs' files.
    for e in [a.manifests().join("vault.json"), sandbox_vault] {
        let bytes = std::fs::read(&e).unwrap();
        assert!(
            !scanner.scan("vault", &bytes).is_empty(),
            "{} holds a secret the scanner knows",
            e.display()
        );
    }
    assert!(
        a.ran
            .iter()
            .any(|r| String::from_utf8_lossy(&r.stderr).contains("TRACE")),
        "trace logs were on"
    );
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(a.root()).unwrap().display().to_string())
        .collect();
    for must in [
        "hive.export.json",
        "manifests/.entraform/audit.jsonl",
        "sandbox/.entraform/sandbox/tenant.json",
        "cloudflared.yml.bak",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} was scanned: {names:#?}"
        );
    }
    eprintln!(
        "leak audit: {} runs, {} files, {} bytes, {} secrets: {} leaks",
        a.ran.len(),
        files.len(),
        bytes_scanned,
        scanner.secrets(),
        leaks.len()
    );
    assert!(
        leaks.is_empty(),
        "secrets leaked:\n{}",
        leaks
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_scanner_finds_a_run_of_a_secret_and_a_secret_shaped_value() {
    let known = Secret::new("abc8Q~0123456789abcdefghijklmnopqrstuvwx".into());
    let scanner = Scanner::new([&known]);
    assert!(
        scanner
            .scan("clean", b"nothing here, abc8Q~ only")
            .is_empty()
    );
    // A 12-character run from the middle (truncated or wrapped).
    let hit = scanner.scan("log", b"value=456789abcdef;");
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(hit[0].hint, "abc");
    assert_eq!(hit[0].offset, 6);
    // 11 characters do not count.
    assert!(scanner.scan("log", b"56789abcdef").is_empty());
    // An unknown value of Entra's shape does.
    let unknown = b"token Zq93Q~ZYXWVUTSRQPONMLKJIHGFEDCBA98765432 end";
    assert_eq!(scanner.scan("file", unknown).len(), 1);
}
