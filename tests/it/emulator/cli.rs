//! `entraform emulator` as a process: its export lines are valid shell, point at a working
//! emulator, and the `/_emulator/` controls answer over HTTP with the control token; bad flags
//! are usage errors; it stays local (loopback unless --allow-remote, foreign `Host` refused,
//! the CA in a private directory removed on exit).

use crate::support::{BIN, FRAME_SEED};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Start the binary and collect its export lines (until the `last` variable is printed).
async fn spawn(args: &[&str], last: &str) -> (Child, String) {
    spawn_with(args, last, &[]).await
}

/// [`spawn`] with extra environment variables.
async fn spawn_with(args: &[&str], last: &str, envs: &[(&str, &Path)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("emulator")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn entraform");
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

async fn terminate(child: Child) -> std::process::ExitStatus {
    signal(child, "-TERM").await
}

/// Send `sig` (`-TERM`, `-INT`) and wait for the exit.
async fn signal(mut child: Child, sig: &str) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args([sig, &pid])
        .status();
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the signal")
        .unwrap()
}

/// The port of an export line's URL (`http://127.0.0.1:PORT/...`).
fn port_of(url: &str) -> u16 {
    url.split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// One raw HTTP/1.1 exchange on 127.0.0.1:`port` (so the `Host` header is exactly as written):
/// the status and the body.
async fn raw(port: u16, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(path: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
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
        "ENTRAFORM_EMULATOR_CONTROL_TOKEN",
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
    let bearer = env["ENTRAFORM_EMULATOR_CONTROL_TOKEN"].clone();
    let health: Value = http
        .get(format!("{control}/health"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));
    let log: Value = http
        .get(format!("{control}/requests"))
        .bearer_auth(&bearer)
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
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(secrets.contains(&env["AZURE_CLIENT_SECRET"]));
    let r = http
        .post(format!("{control}/faults"))
        .bearer_auth(&bearer)
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
    let r = http
        .post(format!("{control}/reset"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{control}/nope"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
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

/// Issue 10: `/_emulator/*` hands out every issued secret, so over HTTP it needs the control
/// token printed with the export lines: none or a wrong one gets 401 with a body that says what
/// to send; the right one gets 200. The token is in neither the request log nor the trace log.
#[tokio::test]
async fn control_endpoints_need_the_control_token() {
    let logs = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["emulator", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(logs.path().join("stderr")).unwrap())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn entraform");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("export AZURE_CLIENT_SECRET=") {
                break;
            }
        }
    })
    .await
    .expect("export lines within 20 s");
    let env = parse_exports(&text);
    let token = env
        .get("ENTRAFORM_EMULATOR_CONTROL_TOKEN")
        .unwrap_or_else(|| panic!("no control token in the export lines:\n{text}"))
        .clone();
    assert_eq!(token.len(), 64, "256 bits, hex");
    let control = format!("{}/_emulator", env["AZURE_AUTHORITY_HOST"]);
    let http = reqwest::Client::new();
    let wrong = "0".repeat(64);
    for (method, path) in [
        ("GET", "/issued-secrets"),
        ("GET", "/requests"),
        ("GET", "/state"),
        ("GET", "/health"),
        ("POST", "/reset"),
        ("POST", "/seed"),
        ("DELETE", "/applications/x"),
    ] {
        for presented in [None, Some(wrong.as_str()), Some("")] {
            let mut req = http.request(method.parse().unwrap(), format!("{control}{path}"));
            if let Some(t) = presented {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {presented:?}");
            assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{:?}",
                r.headers()
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "Unauthorized", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("ENTRAFORM_EMULATOR_CONTROL_TOKEN")
                    && message.contains("Authorization: Bearer"),
                "{message}"
            );
            assert_eq!(
                message.contains("does not match"),
                presented == Some(wrong.as_str()),
                "{message}"
            );
        }
    }
    // The token as a query parameter does not count.
    let r = http
        .get(format!("{control}/issued-secrets?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // With it: 200, and the secrets are there.
    let r = http
        .get(format!("{control}/issued-secrets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let secrets: Vec<String> = r.json().await.unwrap();
    assert!(secrets.contains(&env["AZURE_CLIENT_SECRET"]));
    // The token sent to Graph by mistake is refused there and not logged; the control calls
    // above are not in the request log at all.
    let _ = http
        .get(format!("{}/organization", env["ENTRAFORM_GRAPH_URL"]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let log = http
        .get(format!("{control}/requests"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("/v1.0/organization"), "{log}");
    assert!(!log.contains(&token), "the request log holds the token");
    assert!(terminate(child).await.success());
    let stderr = std::fs::read_to_string(logs.path().join("stderr")).unwrap();
    assert!(
        stderr.contains("GET /v1.0/organization -> 401"),
        "the request log lines are on stderr: {stderr}"
    );
    assert!(!stderr.contains(&token), "the trace log holds the token");
    assert!(
        !stderr.contains(&token[..12]),
        "a run of the token in the log"
    );
}

/// Issue 10: a non-loopback --listen is a usage error naming --allow-remote; with it, the
/// emulator starts (and still answers on loopback).
#[tokio::test]
async fn non_loopback_listen_needs_allow_remote() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:8443"] {
        let mut cmd = Command::new(BIN);
        cmd.args(["emulator", "--listen", addr]).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("--listen {addr} without --allow-remote must be refused"))
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--listen {addr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a loopback address") && err.contains("--allow-remote"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
        assert!(out.stdout.is_empty(), "no export lines when refused");
    }
    let (child, text) = spawn(
        &["--listen", "0.0.0.0:0", "--allow-remote"],
        "AZURE_CLIENT_SECRET",
    )
    .await;
    let env = parse_exports(&text);
    let port = port_of(&env["ENTRAFORM_GRAPH_URL"]);
    // Reached by an IP address: served; by a DNS name: still refused.
    let (status, _) = raw(
        port,
        &get("/_emulator/health", Some(&format!("10.1.2.3:{port}"))),
    )
    .await;
    assert_eq!(
        status, 401,
        "an IP literal passes the Host check with --allow-remote"
    );
    let (status, _) = raw(
        port,
        &get(
            "/v1.0/organization",
            Some(&format!("rebound.example:{port}")),
        ),
    )
    .await;
    assert_eq!(status, 421);
    assert!(terminate(child).await.success());
}

/// Issue 10: a request that names another host (a DNS-rebinding page, a proxy request) is
/// refused with 421 and Graph's error envelope, on every route; the emulator's own origins, the
/// ones az and azure_identity send, pass.
#[tokio::test]
async fn a_request_for_another_host_is_refused() {
    let (child, text) = spawn(&["--listen", "127.0.0.1:0"], "AZURE_CLIENT_SECRET").await;
    let env = parse_exports(&text);
    let port = port_of(&env["ENTRAFORM_GRAPH_URL"]);
    let tenant = &env["AZURE_TENANT_ID"];
    let evil = format!("evil.example:{port}");
    for path in [
        "/v1.0/organization".to_string(),
        format!("/{tenant}/v2.0/.well-known/openid-configuration"),
        "/_emulator/issued-secrets".to_string(),
        "/metadata/endpoints".to_string(),
    ] {
        for host in [evil.as_str(), "evil.example", "localhost", "127.0.0.1:1"] {
            let (status, body) = raw(port, &get(&path, Some(host))).await;
            assert_eq!(status, 421, "{path} with Host {host}: {body}");
            let doc: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(doc["error"]["code"], "MisdirectedRequest", "{body}");
            let message = doc["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("127.0.0.1:{port}")) && message.contains("DNS rebinding"),
                "{message}"
            );
            assert!(
                doc["error"]["innerError"]["request-id"].is_string(),
                "{body}"
            );
        }
    }
    // The token does not open a foreign host either.
    let (status, _) = raw(
        port,
        &format!(
            "GET /_emulator/issued-secrets HTTP/1.1\r\nHost: {evil}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            env["ENTRAFORM_EMULATOR_CONTROL_TOKEN"]
        ),
    )
    .await;
    assert_eq!(status, 421);
    // A request in absolute form is judged by its URI's host (RFC 9112 §3.2.2).
    let (status, _) = raw(
        port,
        &format!(
            "GET http://{evil}/v1.0/organization HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 421);
    // No Host at all: 400.
    let (status, _) = raw(port, &get("/v1.0/organization", None)).await;
    assert_eq!(status, 400);
    // Our own origins pass (Graph answers 401 for want of a token, not 421).
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let (status, body) = raw(port, &get("/v1.0/organization", Some(&host))).await;
        assert_eq!(status, 401, "Host {host}: {body}");
        let (status, _) = raw(port, &get("/metadata/endpoints", Some(&host))).await;
        assert_eq!(status, 200, "Host {host}");
    }
    assert!(terminate(child).await.success());
}

/// Issue 10: with --tls the CA lives in a private directory under TMPDIR (mode 0700, a random
/// name that owes nothing to the pid or port, nothing else in it), and the directory is gone
/// after SIGTERM and after SIGINT.
#[cfg(unix)]
#[tokio::test]
async fn the_tls_directory_is_private_and_removed_on_exit() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().canonicalize().unwrap();
    let mut seen: Vec<(PathBuf, String)> = Vec::new();
    for sig in ["-TERM", "-INT"] {
        let (child, text) =
            spawn_with(&["--tls"], "ENTRAFORM_CA_CERT", &[("TMPDIR", &tmp_path)]).await;
        let pid = child.id().unwrap().to_string();
        let env = parse_exports(&text);
        let port = port_of(&env["ENTRAFORM_GRAPH_URL"]).to_string();
        let ca = PathBuf::from(&env["ENTRAFORM_CA_CERT"]);
        let dir = ca.parent().unwrap().to_path_buf();
        assert_eq!(dir.parent().unwrap().canonicalize().unwrap(), tmp_path);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let random = name
            .strip_prefix("entraform-emulator-")
            .unwrap_or_else(|| panic!("{name}"));
        assert!(random.len() >= 12, "{name}");
        assert!(
            !name.contains(&pid) && !name.contains(&port),
            "{name} is derived from pid {pid} or port {port}"
        );
        let entries: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, ["ca.pem"], "only the CA certificate is on disk");
        assert!(
            std::fs::read_to_string(&ca)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let status = signal(child, sig).await;
        assert!(status.success(), "{sig}: {status:?}");
        assert!(!dir.exists(), "{} is left after {sig}", dir.display());
        seen.push((dir, env["ENTRAFORM_EMULATOR_CONTROL_TOKEN"].clone()));
    }
    assert_ne!(seen[0].0, seen[1].0, "each start gets its own directory");
    assert_ne!(
        seen[0].1, seen[1].1,
        "each start gets its own control token"
    );
    assert_eq!(
        std::fs::read_dir(&tmp_path).unwrap().count(),
        0,
        "nothing is left in TMPDIR"
    );
}

/// The in-process API: `write_ca_cert_private` makes the same private directory, and dropping
/// the emulator (what the sandbox does) removes it; `control_token` is what HTTP callers send.
#[cfg(unix)]
#[tokio::test]
async fn in_process_private_ca_is_removed_when_the_emulator_is_dropped() {
    use entraform::emulator::{EmulatorConfig, start};
    use std::os::unix::fs::PermissionsExt;
    let emu = start(EmulatorConfig::default().tls(true)).await.unwrap();
    let ca = emu.write_ca_cert_private().unwrap();
    let dir = ca.parent().unwrap().to_path_buf();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(emu.export_lines().contains(&format!(
        "export ENTRAFORM_EMULATOR_CONTROL_TOKEN={}\n",
        emu.control_token().expose()
    )));
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/health", emu.control_url()))
        .bearer_auth(emu.control_token().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(emu);
    assert!(!dir.exists(), "{} is left after drop", dir.display());
}

/// The library refuses a non-loopback address too unless allowed.
#[tokio::test]
async fn in_process_start_refuses_a_non_loopback_address() {
    use entraform::emulator::{EmulatorConfig, start};
    let err = start(EmulatorConfig::default().listen("0.0.0.0:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    assert!(err.hint().unwrap().contains("--allow-remote"));
}
