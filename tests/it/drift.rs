//! `drift`, driving the real binary against the in-process TLS emulator: drift clean after
//! apply, drift after an edit behind the tool's back, reference by name / appId, its errors,
//! `drift --all` over fifty services with its round trips counted from the emulator's request
//! log, and a secret scan of every output.

use entraform::emulator::{Faults, RequestRecord};
use serde_json::{Value, json};

use crate::support::fixture::{Fixture, applied_frame_and_hive, differing, row};
use crate::support::trips::{self, graph_only};
use crate::support::{GRAPH_APP_ID, HOST, USER_READ};

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

/// (Graph requests, round trips) of a log.
fn round_trips(log: &[RequestRecord]) -> (usize, usize) {
    let graph = graph_only(log);
    (graph.len(), trips::round_trips(&graph).len())
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
