//! `drift`, `export` and the Entra half of `verify`, driving the real binary against the
//! in-process TLS emulator: drift clean after apply, drift after an edit behind the tool's
//! back, reference by name / appId / exported file, `drift --all` over fifty services with its
//! round trips counted from the emulator's request log, verify #11–#13 and consent (including
//! the 270-character vault value and running without credentials), and a secret scan of every
//! output.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use entraform::emulator::{EmulatorConfig, Faults, RequestRecord, RunningEmulator, start};
use serde_json::{Value, json};

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const USER_READ: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";
const HOST: &str = "axe.axelabs.ai";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

struct Fixture {
    emu: RunningEmulator,
    dir: tempfile::TempDir,
    /// Every stdout and stderr of the binary, for the secret scan.
    outputs: Mutex<Vec<String>>,
}

/// The repository's defaults.yaml with a `file` vault (relative to the manifests directory).
fn defaults_with_file_vault() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/defaults.yaml"),
    )
    .expect("defaults.yaml");
    let start = text.find("vault:\n").expect("vault block");
    let end = start + text[start..].find("\n\n").expect("end of the vault block");
    format!(
        "{}vault:\n  backend: file\n  path: vault.json{}",
        &text[..start],
        &text[end..]
    )
}

impl Fixture {
    async fn new(seed: Option<Value>) -> Self {
        let mut config = EmulatorConfig::default()
            .tls(true)
            .verified_domain("axelabs.ai");
        if let Some(seed) = seed {
            config = config.seed(seed);
        }
        let emu = start(config).await.expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        emu.write_ca_cert(&dir.path().join("ca.pem"))
            .expect("CA written");
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        std::fs::write(
            dir.path().join("manifests/defaults.yaml"),
            defaults_with_file_vault(),
        )
        .unwrap();
        Fixture {
            emu,
            dir,
            outputs: Mutex::new(Vec::new()),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Copy service manifests of the repository (frame, hive) into `manifests/`.
    fn copy_manifest(&self, name: &str) {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("manifests/{name}.yaml")),
            self.path(&format!("manifests/{name}.yaml")),
        )
        .expect("copy manifest");
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, true).await
    }

    /// Run the binary in the fixture's directory; `credentials: false` runs it with no Azure
    /// credential at all (and no developer tools on PATH).
    async fn run_with(&self, args: &[&str], credentials: bool) -> Out {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_entraform"));
        cmd.current_dir(self.dir.path()).args(args);
        for k in [
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
            "IDENTITY_ENDPOINT",
            "MSI_ENDPOINT",
            "ENTRAFORM_GRAPH_URL",
            "ENTRAFORM_CA_CERT",
            "ENTRAFORM_DEFAULTS",
            "RUST_LOG",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("AZURE_AUTHORITY_HOST", self.emu.authority_host())
            .env("ENTRAFORM_GRAPH_URL", self.emu.graph_url())
            .env("ENTRAFORM_CA_CERT", self.path("ca.pem"));
        if credentials {
            cmd.env("AZURE_TENANT_ID", self.emu.tenant_id())
                .env("AZURE_CLIENT_ID", self.emu.operator_client_id())
                .env("AZURE_CLIENT_SECRET", self.emu.operator_secret().expose());
        } else {
            let empty = self.path("empty-bin");
            std::fs::create_dir_all(&empty).unwrap();
            cmd.env("PATH", empty).env("HOME", self.path("home"));
        }
        let out = cmd.output().await.expect("binary runs");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut all = self.outputs.lock().unwrap();
        all.push(out.stdout.clone());
        all.push(out.stderr.clone());
        out
    }

    /// No secret the emulator ever handed out (addPassword, seeds, operators) appears in any
    /// output of the binary, nor in the listed files.
    fn scan_secrets(&self, files: &[&str]) {
        let secrets = self.emu.issued_secrets();
        assert!(!secrets.is_empty());
        let mut texts = self.outputs.lock().unwrap().clone();
        for f in files {
            texts.push(std::fs::read_to_string(self.path(f)).expect("scanned file"));
        }
        let mut hits = 0;
        for t in &texts {
            for s in &secrets {
                if t.contains(s.expose()) {
                    hits += 1;
                }
            }
        }
        assert_eq!(hits, 0, "a secret value appeared in an output");
    }
}

/// Apply frame then hive (hive's reference is frame), both through the tool.
async fn applied_frame_and_hive() -> Fixture {
    let fx = Fixture::new(None).await;
    fx.copy_manifest("frame");
    fx.copy_manifest("hive");
    for m in ["manifests/frame.yaml", "manifests/hive.yaml"] {
        let out = fx.run(&["--yes", "apply", m]).await;
        assert_eq!(out.code, 0, "apply {m}: {out:?}");
    }
    fx
}

fn row<'a>(report: &'a Value, field: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["field"] == field)
        .unwrap_or_else(|| panic!("no row {field} in {report:#}"))
}

fn differing(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "differs")
        .map(|r| r["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_clean_after_apply_and_names_a_token_version_edit() {
    let fx = applied_frame_and_hive().await;

    let out = fx.run(&["drift", "manifests/hive.yaml"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("FIELD"), "{out:?}");
    assert!(out.stdout.contains("hive: no drift from frame."), "{out:?}");

    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["reference"]["name"], "frame");
    assert_eq!(report["reference"]["source"], "manifest");
    assert!(differing(&report).is_empty(), "{report:#}");
    assert_eq!(row(&report, "servicePrincipal")["this_app"], "present");
    assert_eq!(
        row(&report, "oauth2PermissionGrants[self]")["this_app"],
        "mcp.access"
    );
    assert_eq!(
        row(&report, "oauth2PermissionGrants[Microsoft Graph]")["reference"],
        "User.Read"
    );
    assert_eq!(
        row(&report, "passwordCredentials (valid secret)")["this_app"],
        "1 valid secret"
    );
    assert_eq!(
        row(&report, "passwordCredentials (latest expiry)")["status"],
        "info"
    );
    // normalized on both sides
    assert_eq!(
        row(&report, "identifierUris")["reference"],
        "[https://{host}/{service}/mcp]"
    );

    // Behind the tool's back: hive's token version goes back to 1.
    fx.emu
        .edit_app(
            "axe-hive-mcp",
            &json!({"api": {"requestedAccessTokenVersion": 1}}),
        )
        .unwrap();
    let out = fx.run(&["drift", "manifests/hive.yaml"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("hive: 1 field differs from frame: api.requestedAccessTokenVersion"),
        "{out:?}"
    );
    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let report = out.json();
    assert_eq!(report["ok"], false);
    assert_eq!(differing(&report), ["api.requestedAccessTokenVersion"]);
    let r = row(&report, "api.requestedAccessTokenVersion");
    assert_eq!(
        (r["reference"].as_str(), r["this_app"].as_str()),
        (Some("2"), Some("1"))
    );

    // A consent text copied from frame and not renamed, and a missing grant.
    fx.emu
        .edit_app(
            "axe-hive-mcp",
            &json!({"api": {"requestedAccessTokenVersion": 2}, "displayName": "Frame MCP"}),
        )
        .unwrap();
    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(differing(&out.json()), ["displayName"]);

    fx.scan_secrets(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_a_reference_file_drift_reads_and_app_id_references_work() {
    let fx = applied_frame_and_hive().await;

    // export to stdout (by manifest) and to a file (by appId)
    let out = fx.run(&["export", "manifests/frame.yaml"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let exported = out.json();
    assert_eq!(exported["format"], "entraform.reference/v1");
    assert_eq!(exported["service"], "frame");
    assert_eq!(exported["host"], HOST);
    assert_eq!(exported["displayName"], "Frame MCP");
    let frame_app_id = exported["application"]["appId"]
        .as_str()
        .unwrap()
        .to_string();
    let creds = exported["application"]["passwordCredentials"]
        .as_array()
        .unwrap();
    assert!(!creds.is_empty());
    for c in creds {
        assert!(
            c.get("hint").is_none() && c.get("secretText").is_none(),
            "{c}"
        );
    }
    assert!(exported["servicePrincipal"]["id"].is_string());
    let grants: Vec<(&str, &str)> = exported["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["resource"].as_str().unwrap(),
                g["scope"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        [(GRAPH_APP_ID, "User.Read"), ("self", "mcp.access")]
    );

    let out = fx
        .run(&["export", &frame_app_id, "--out", "refs/frame.json"])
        .await;
    assert_eq!(out.code, 1, "refs/ does not exist yet: {out:?}");
    std::fs::create_dir(fx.path("refs")).unwrap();
    let out = fx
        .run(&["export", &frame_app_id, "--out", "refs/frame.json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("refs/frame.json"), "{out:?}");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("refs/frame.json")).unwrap())
            .unwrap();
    assert_eq!(
        file, exported,
        "by appId and by manifest export the same document"
    );
    // no temp file left behind
    assert_eq!(std::fs::read_dir(fx.path("refs")).unwrap().count(), 1);

    // --reference FILE and --reference APP_ID agree with the manifest reference
    for reference in ["refs/frame.json", frame_app_id.as_str(), "frame"] {
        let out = fx
            .run(&[
                "--output",
                "json",
                "drift",
                "manifests/hive.yaml",
                "--reference",
                reference,
            ])
            .await;
        assert_eq!(out.code, 0, "--reference {reference}: {out:?}");
        let report = out.json();
        assert!(differing(&report).is_empty(), "{report:#}");
        assert_eq!(report["reference"]["app_id"], frame_app_id.as_str());
    }

    // The file keeps frame's shape after frame itself changes: hive still matches the file,
    // and no longer matches live frame.
    fx.emu
        .edit_app(
            &frame_app_id,
            &json!({"signInAudience": "AzureADMultipleOrgs"}),
        )
        .unwrap();
    let out = fx
        .run(&[
            "drift",
            "manifests/hive.yaml",
            "--reference",
            "refs/frame.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(differing(&out.json()), ["signInAudience"]);

    // A plain Graph application JSON works as a reference too (no SP/consent rows).
    let mut plain = file["application"].clone();
    plain["signInAudience"] = json!("AzureADMyOrg");
    fx.write("refs/plain.json", &plain.to_string());
    let out = fx
        .run(&[
            "--output",
            "json",
            "drift",
            "manifests/hive.yaml",
            "--reference",
            "refs/plain.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["field"] != "servicePrincipal")
    );

    fx.scan_secrets(&["refs/frame.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_errors_name_the_problem_and_the_fix() {
    let fx = Fixture::new(None).await;
    fx.copy_manifest("frame");
    fx.copy_manifest("hive");

    // neither app exists: the reference is missing → error (exit 1), nothing on stdout
    let out = fx.run(&["drift", "manifests/hive.yaml"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr.contains("the reference app frame was not found"),
        "{out:?}"
    );
    assert!(out.stderr.contains("hint:"), "{out:?}");

    // frame names no reference
    let out = fx.run(&["drift", "manifests/frame.yaml"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--reference"), "{out:?}");
    // a reference that is no name, id or file
    let out = fx
        .run(&["drift", "manifests/hive.yaml", "--reference", "Not A Name"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    // a reference manifest that is not there
    let out = fx
        .run(&["drift", "manifests/hive.yaml", "--reference", "nothere"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("nothere.yaml does not exist"),
        "{out:?}"
    );
    // a broken reference file
    fx.write("bad.json", "{\"format\": \"something/v9\"}");
    let out = fx
        .run(&["drift", "manifests/hive.yaml", "--reference", "bad.json"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown format"), "{out:?}");
    // MANIFEST and --all together
    let out = fx
        .run(&["drift", "manifests/hive.yaml", "--all", "manifests"])
        .await;
    assert_eq!(out.code, 2, "{out:?}");

    // the reference exists, this app does not: a drift report with one row, exit 3
    let out = fx.run(&["--yes", "apply", "manifests/frame.yaml"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(differing(&out.json()), ["application"]);

    // export of something that does not exist
    let out = fx.run(&["export", "manifests/hive.yaml"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("entraform apply"), "{out:?}");
    let out = fx.run(&["export", "not-a-file-or-guid"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    fx.scan_secrets(&[]);
}

/// The application JSON of a service as its manifest derives it, with an SP and admin
/// consent, as a seed (made by hand: no uniqueName).
fn seed_app(service: &str, display: &str) -> Value {
    json!({
        "displayName": display,
        "signInAudience": "AzureADMyOrg",
        "identifierUris": [format!("https://{HOST}/{service}/mcp")],
        "api": {
            "requestedAccessTokenVersion": 2,
            "oauth2PermissionScopes": [{
                "id": uuid::Uuid::new_v4().to_string(),
                "value": "mcp.access",
                "type": "User",
                "isEnabled": true,
                "adminConsentDisplayName": format!("Access {display}"),
                "adminConsentDescription": format!("Allows the claude.ai connector to call {display} on behalf of the signed-in user."),
                "userConsentDisplayName": format!("Access {display}"),
                "userConsentDescription": format!("Allows the claude.ai connector to call {display} on your behalf."),
            }],
        },
        "web": {
            "redirectUris": [
                "https://claude.ai/api/mcp/auth_callback",
                "https://claude.com/api/mcp/auth_callback"
            ],
            "implicitGrantSettings": {"enableIdTokenIssuance": true, "enableAccessTokenIssuance": false},
        },
        "requiredResourceAccess": [{
            "resourceAppId": GRAPH_APP_ID,
            "resourceAccess": [{"id": USER_READ, "type": "Scope"}],
        }],
        "servicePrincipal": true,
        "passwords": [{"displayName": format!("{service} (az ad app credential reset)")}],
        "grants": [
            {"resourceAppId": GRAPH_APP_ID, "scope": "User.Read"},
            {"resourceAppId": "self", "scope": "mcp.access"},
        ],
    })
}

/// Sequential round trips to Graph: requests whose [start, start + duration] intervals overlap
/// form one round trip (token requests to the login path are not counted).
fn round_trips(log: &[RequestRecord]) -> (usize, usize) {
    let mut spans: Vec<(f64, f64)> = log
        .iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .map(|r| (r.start_ms, r.start_ms + r.duration_ms))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let requests = spans.len();
    let mut clusters = 0;
    let mut end = f64::NEG_INFINITY;
    for (s, e) in spans {
        if s > end {
            clusters += 1;
            end = e;
        } else {
            end = end.max(e);
        }
    }
    (requests, clusters)
}

fn spans(log: &[RequestRecord]) -> Vec<(u64, f64, f64)> {
    log.iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .map(|r| {
            (
                r.seq,
                r.start_ms.round(),
                (r.start_ms + r.duration_ms).round(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the measured figures, for the record
async fn drift_all_over_fifty_services_costs_a_handful_of_round_trips() {
    const N: usize = 50;
    let mut apps = vec![seed_app("frame", "Frame MCP")];
    for i in 1..=N {
        apps.push(seed_app(&format!("svc-{i:02}"), &format!("Svc {i:02} MCP")));
    }
    let fx = Fixture::new(Some(json!({"applications": apps}))).await;
    fx.copy_manifest("frame");
    for i in 1..=N {
        fx.write(
            &format!("manifests/svc-{i:02}.yaml"),
            &format!(
                "service: svc-{i:02}\ncustomer: axe\ndisplay_name: Svc {i:02} MCP\nproxy_port: {}\nreference: frame\n",
                4001 + i * 10
            ),
        );
    }

    // Without injected latency the log mostly measures this machine's CPU (debug build, TLS
    // handshakes of the parallel connections); printed for the record.
    fx.emu.clear_requests();
    let out = fx.run(&["drift", "--all", "manifests"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (requests, trips) = round_trips(&fx.emu.requests());
    eprintln!(
        "drift --all, {N} services, no added latency: {requests} Graph requests, {trips} clusters"
    );

    // With a WAN-like 150 ms per request, concurrent requests overlap as they would against
    // Graph, and the clusters are the sequential round trips.
    fx.emu
        .set_faults(Faults {
            latency_ms: 150,
            ..Faults::default()
        })
        .unwrap();
    fx.emu.clear_requests();
    let out = fx
        .run(&["--output", "json", "drift", "--all", "manifests"])
        .await;
    let log = fx.emu.requests();
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["summary"]["services"], N + 1);
    assert_eq!(doc["summary"]["in_sync"], N);
    assert_eq!(doc["summary"]["no_reference"], 1);
    let (requests, trips) = round_trips(&log);
    eprintln!(
        "drift --all, {N} services, 150 ms latency: {requests} Graph requests, {trips} round trips"
    );
    // wave 1: 3 look-ups per service + Graph's SP (8 concurrent $batch of ≤ 20);
    // wave 2: the grants of 51 SPs (3 concurrent $batch).
    assert!(trips <= 3, "{trips} round trips: {:?}", spans(&log));
    assert!(requests <= 12, "{requests} requests");

    // Drift in two services: named in the summary table, exit 3, the same cost.
    fx.emu
        .edit_app(
            doc["services"][7]["report"]["app_id"].as_str().unwrap(),
            &json!({"web": {"redirectUris": ["https://claude.ai/api/mcp/auth_callback"]}}),
        )
        .unwrap();
    let svc = doc["services"][20]["service"].as_str().unwrap().to_string();
    fx.emu
        .edit_app(
            doc["services"][20]["report"]["app_id"].as_str().unwrap(),
            &json!({"api": {"requestedAccessTokenVersion": null}}),
        )
        .unwrap();
    fx.emu.clear_requests();
    let out = fx.run(&["drift", "--all", "manifests"]).await;
    let (_, trips_again) = round_trips(&fx.emu.requests());
    assert_eq!(out.code, 3, "{out:?}");
    assert!(trips_again <= 3, "{:?}", spans(&fx.emu.requests()));
    fx.emu.set_faults(Faults::default()).unwrap();
    let svc7 = doc["services"][7]["service"].as_str().unwrap();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(svc7) && l.contains("DRIFT") && l.contains("web.redirectUris")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "{svc}: api.requestedAccessTokenVersion: 2 (reference) vs 1 (this app)"
        )),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "{} service(s): {} in sync, 2 drifted, 0 missing, 1 without reference, 0 failed",
            N + 1,
            N - 2
        )),
        "{out:?}"
    );

    // A reference that cannot be found is a failure of the run (exit 1), listed per service.
    let frame_id = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s["report"]["reference"]["app_id"].as_str())
        .unwrap()
        .to_string();
    fx.emu
        .edit_app(
            &frame_id,
            &json!({"identifierUris": ["https://axe.axelabs.ai/moved/mcp"]}),
        )
        .unwrap();
    let out = fx
        .run(&["--output", "json", "drift", "--all", "manifests"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["summary"]["error"], N);
    assert!(
        doc["services"][1]["error"]
            .as_str()
            .unwrap()
            .contains("the reference app frame was not found")
    );

    fx.scan_secrets(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_app_the_sp_the_vault_secret_and_consent() {
    let fx = applied_frame_and_hive().await;

    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    let status = |doc: &Value, id: &str| -> String {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}: {doc:#}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for id in ["#11a", "#11b", "#11c", "#12", "#13a", "#13b", "consent"] {
        assert_eq!(status(&doc, id), "pass", "{id}: {doc:#}");
    }

    // #11 and consent break behind the tool's back
    fx.emu
        .edit_app(
            "axe-hive-mcp",
            &json!({"api": {"requestedAccessTokenVersion": null},
                    "identifierUris": ["api://hive"]}),
        )
        .unwrap();
    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    assert_eq!(status(&doc, "#11a"), "fail");
    assert_eq!(status(&doc, "#11b"), "fail");
    assert_eq!(status(&doc, "#11c"), "pass");

    // The 270-character "secret" (a tool's stderr glued to it) in a command vault.
    let glued = format!(
        "{}WARNING:the-keychain-is-locked.{}",
        "abc~DEF.ghi_jkl-0123456789abcdefghijklmnop",
        "x".repeat(270 - 42 - 31)
    );
    assert_eq!(glued.len(), 270);
    // the value sits in a file the `get` command prints, as a vault would hold it
    fx.write("glued.txt", &glued);
    let defaults = defaults_with_file_vault().replace(
        "vault:\n  backend: file\n  path: vault.json",
        &format!(
            "vault:\n  backend: command\n  push: [sh, -c, \"cat >/dev/null\", push, \"{{path}}\"]\n  get: [sh, -c, 'cat \"$1\"', get, \"{}\", \"{{path}}\"]",
            fx.path("glued.txt").display()
        ),
    );
    fx.write("glued-defaults.yaml", &defaults);
    let out = fx
        .run(&[
            "--output",
            "json",
            "--defaults",
            "glued-defaults.yaml",
            "verify",
            "manifests/hive.yaml",
        ])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    let c13 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "#13a")
        .unwrap();
    assert_eq!(c13["status"], "fail");
    let text = format!("{} {}", c13["detail"], c13["fix"]);
    assert!(text.contains("270"), "{c13:#}");
    assert!(text.contains("stderr"), "{c13:#}");
    assert!(!out.stdout.contains(&glued) && !out.stderr.contains(&glued));
    assert_eq!(status(&doc, "#13b"), "skip");

    // Without any Graph credential the Entra checks fail with the reason, not skipped.
    let out = fx
        .run_with(
            &["--output", "json", "verify", "manifests/hive.yaml"],
            false,
        )
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    for id in ["#11", "#12", "#13b", "consent"] {
        assert_eq!(status(&doc, id), "fail", "{id}: {doc:#}");
    }
    let c11 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "#11")
        .unwrap();
    assert!(
        c11["detail"]
            .as_str()
            .unwrap()
            .contains("cannot read the tenant"),
        "{c11:#}"
    );
    assert!(c11["fix"].is_string());
    // the vault is still read and checked
    assert_eq!(status(&doc, "#13a"), "pass");

    fx.scan_secrets(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_consent_and_token_when_missing() {
    let fx = applied_frame_and_hive().await;
    // a wrong secret in the vault (well-shaped) and the admin consent gone
    let vault_path = fx.path("manifests/vault.json");
    let mut vault: Value =
        serde_json::from_str(&std::fs::read_to_string(&vault_path).unwrap()).unwrap();
    let wrong = "zzz~DEF.ghi_jkl-0123456789abcdefghijklmnop";
    let mut replaced = false;
    if let Some(map) = vault.as_object_mut() {
        for (_, v) in map.iter_mut() {
            replace_strings(v, "hive/axe/mcp-client-secret", wrong, &mut replaced);
        }
        if let Some(v) = map.get_mut("hive/axe/mcp-client-secret") {
            *v = json!(wrong);
            replaced = true;
        }
    }
    assert!(replaced, "vault layout: {vault:#}");
    std::fs::write(&vault_path, vault.to_string()).unwrap();
    let state = fx.emu.state_json();
    let hive_sp = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["displayName"] == "Hive MCP")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(fx.emu.ca_cert_pem().unwrap().as_bytes()).unwrap(),
        ])
        .build()
        .unwrap();
    for g in state["oauth2PermissionGrants"].as_array().unwrap() {
        if g["clientId"] == hive_sp.as_str() {
            let r = client
                .delete(format!(
                    "{}/oauth2PermissionGrants/{}",
                    fx.emu.control_url(),
                    g["id"].as_str().unwrap()
                ))
                .bearer_auth(fx.emu.control_token().expose())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{r:?}");
        }
    }
    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    let check = |id: &str| -> Value {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(check("#13a")["status"], "pass");
    assert_eq!(check("#13b")["status"], "fail");
    assert!(
        check("#13b")["detail"]
            .as_str()
            .unwrap()
            .contains("7000215"),
        "{:#}",
        check("#13b")
    );
    assert_eq!(check("consent")["status"], "fail");
    assert!(
        check("consent")["fix"]
            .as_str()
            .unwrap()
            .contains("adminconsent"),
        "{:#}",
        check("consent")
    );
    assert!(!out.stdout.contains(wrong));
    fx.scan_secrets(&[]);
}

/// Replace the string stored under `key` anywhere in a JSON tree.
fn replace_strings(v: &mut Value, key: &str, with: &str, done: &mut bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == key && child.is_string() {
                    *child = json!(with);
                    *done = true;
                } else {
                    replace_strings(child, key, with, done);
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                replace_strings(i, key, with, done);
            }
        }
        _ => {}
    }
}
