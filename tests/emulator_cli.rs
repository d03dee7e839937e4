//! `entraform emulator` as a process: its export lines are valid shell, point at a working
//! emulator, and the `/_emulator/` controls answer over HTTP; bad flags are usage errors.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_entraform");
const FRAME_SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/frame.seed.json"
);

/// Start the binary and collect its export lines (until the `last` variable is printed).
async fn spawn(args: &[&str], last: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("emulator")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn entraform");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push_str(&line);
            out.push('\n');
            if line.starts_with(&format!("export {last}=")) {
                break;
            }
        }
    })
    .await
    .expect("export lines within 20 s");
    (child, out)
}

fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// `eval` the lines in a real shell (script on stdin, so the secret is in no argv).
fn eval_in_shell(exports: &str) -> String {
    let mut sh = std::process::Command::new("sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let script = format!(
        "eval \"$(cat <<'EOF'\n{exports}EOF\n)\"\nprintf '%s|%s|%s|%s|%s\\n' \"$AZURE_AUTHORITY_HOST\" \"$ENTRAFORM_GRAPH_URL\" \"$AZURE_TENANT_ID\" \"$AZURE_CLIENT_ID\" \"${{#AZURE_CLIENT_SECRET}}\"\n"
    );
    sh.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = sh.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn tls_emulator_prints_working_export_lines() {
    let (child, text) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--verified-domain",
            "axelabs.ai",
            "--seed",
            FRAME_SEED,
        ],
        "ENTRAFORM_CA_CERT",
    )
    .await;
    let env = parse_exports(&text);
    for k in [
        "AZURE_AUTHORITY_HOST",
        "ENTRAFORM_GRAPH_URL",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "ENTRAFORM_CA_CERT",
    ] {
        assert!(env.contains_key(k), "{k} missing from:\n{text}");
    }
    let port = env["ENTRAFORM_GRAPH_URL"]
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches("/v1.0")
        .to_string();
    assert_eq!(
        env["AZURE_AUTHORITY_HOST"],
        format!("https://localhost:{port}")
    );
    assert_eq!(
        env["ENTRAFORM_GRAPH_URL"],
        format!("https://127.0.0.1:{port}/v1.0")
    );
    assert_eq!(
        env["AZURE_TENANT_ID"],
        "122fb574-7efa-476a-95b6-bee81bce2cce"
    );
    assert_eq!(env["AZURE_CLIENT_SECRET"].len(), 40);

    let shell = eval_in_shell(&text);
    assert_eq!(
        shell,
        format!(
            "{}|{}|{}|{}|40",
            env["AZURE_AUTHORITY_HOST"],
            env["ENTRAFORM_GRAPH_URL"],
            env["AZURE_TENANT_ID"],
            env["AZURE_CLIENT_ID"]
        )
    );

    let ca_path = env["ENTRAFORM_CA_CERT"].clone();
    let pem = std::fs::read(&ca_path).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let token: Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            env["AZURE_AUTHORITY_HOST"], env["AZURE_TENANT_ID"]
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", env["AZURE_CLIENT_ID"].as_str()),
            ("client_secret", env["AZURE_CLIENT_SECRET"].as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("token").to_string();
    let frame: Value = http
        .get(format!(
            "{}/applications?$filter=identifierUris/any(x:x eq 'https://axe.axelabs.ai/frame/mcp')",
            env["ENTRAFORM_GRAPH_URL"]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(frame["value"][0]["displayName"], "Frame MCP");

    let control = format!("https://127.0.0.1:{port}/_emulator");
    let health: Value = http
        .get(format!("{control}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));
    let log: Value = http
        .get(format!("{control}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            format!("/{}/oauth2/v2.0/token", env["AZURE_TENANT_ID"]).as_str(),
            "/v1.0/applications"
        ]
    );
    let secrets: Vec<String> = http
        .get(format!("{control}/issued-secrets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(secrets.contains(&env["AZURE_CLIENT_SECRET"]));
    let r = http
        .post(format!("{control}/faults"))
        .json(&json!({"errorNext": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/applications", env["ENTRAFORM_GRAPH_URL"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = http.post(format!("{control}/reset")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = http.get(format!("{control}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let status = terminate(child).await;
    assert!(status.success(), "{status:?}");
    assert!(
        !std::path::Path::new(&ca_path).exists(),
        "the temporary CA file is removed on exit"
    );
}

#[tokio::test]
async fn plain_http_emulator_uses_127_0_0_1_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (child, text) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().unwrap(),
        ],
        "AZURE_CLIENT_SECRET",
    )
    .await;
    let env = parse_exports(&text);
    assert!(env["AZURE_AUTHORITY_HOST"].starts_with("http://127.0.0.1:"));
    assert_eq!(
        format!("{}/v1.0", env["AZURE_AUTHORITY_HOST"]),
        env["ENTRAFORM_GRAPH_URL"]
    );
    assert!(!env.contains_key("ENTRAFORM_CA_CERT"));
    assert!(state.exists(), "state written at start");
    assert!(terminate(child).await.success());
}

#[test]
fn bad_flags_are_usage_errors_with_a_fix() {
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("emulator")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--throttle-rate", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
    let out = run(&["--tenant", "contoso"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GUID"));
    let out = run(&["--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--seed", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("seed file") && err.contains("hint:"), "{err}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"applications": [{"displayName": "x", "web": {"redirectUris": ["http://example.com/cb"]}}]}"#).unwrap();
    let out = run(&["--seed", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid seed") && err.contains("'web'"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when it fails");
}
