//! `plan` and `apply` on the real binary against the in-process emulator (issue 4): every
//! property of steps 1–9, zero writes on a second run, adoption, disable-first scope changes,
//! the admin-consent fallback, faults, interrupted runs, failing vault commands, the keyring
//! backend, the audit log, and the round trips. Every run is scanned for leaked secrets.

use crate::support::harness;
use crate::support::{HIVE, HIVE_UNIQUE, HIVE_URI, HIVE_VAULT_PATH, frame_seed};

use entraform::emulator::{EmulatorConfig, Faults};
use harness::{GOOD_PUSH, GRAPH_APP_ID, Harness, USER_READ, round_trips, sequential_depth, writes};
use serde_json::{Value, json};

/// A tenant holding frame as made by hand.
async fn with_frame() -> Harness {
    Harness::with_config(EmulatorConfig::default().seed(frame_seed())).await
}

/// The one app of hive, its SP and grants, checked for duplicates.
fn hive_objects(h: &Harness) -> (Value, Value, Vec<Value>) {
    let apps = h.apps_of(HIVE_UNIQUE, HIVE_URI);
    assert_eq!(apps.len(), 1, "exactly one hive app: {apps:#?}");
    let app = apps[0].clone();
    let sps = h.sps_of(app["appId"].as_str().unwrap());
    assert_eq!(sps.len(), 1, "exactly one SP: {sps:#?}");
    let sp = sps[0].clone();
    let grants = h.grants_of(sp["id"].as_str().unwrap());
    (app, sp, grants)
}

/// Every property of steps 1–9 as the manifest says, exactly.
fn assert_converged(h: &Harness) {
    assert_converged_with(h, 0);
}

/// Like [`assert_converged`], with `foreign` credentials entraform did not make.
fn assert_converged_with(h: &Harness, foreign: usize) {
    let (app, sp, grants) = hive_objects(h);
    assert_eq!(app["uniqueName"], HIVE_UNIQUE);
    assert_eq!(app["displayName"], "Hive MCP");
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert_eq!(app["identifierUris"], json!([HIVE_URI]));
    assert_eq!(app["api"]["requestedAccessTokenVersion"], 2);
    let scopes = app["api"]["oauth2PermissionScopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 1, "{scopes:#?}");
    let s = &scopes[0];
    assert_eq!(s["value"], "mcp.access");
    assert_eq!(s["type"], "User");
    assert_eq!(s["isEnabled"], true);
    assert_eq!(s["adminConsentDisplayName"], "Access Hive MCP");
    assert_eq!(s["userConsentDisplayName"], "Access Hive MCP");
    // No descriptions, as frame has none (the checklist's scope body): Graph stores null.
    assert_eq!(s["adminConsentDescription"], Value::Null);
    assert_eq!(s["userConsentDescription"], Value::Null);
    assert_eq!(
        app["web"]["redirectUris"],
        json!([
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback"
        ])
    );
    assert_eq!(
        app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"],
        true
    );
    assert_eq!(
        app["requiredResourceAccess"],
        json!([{"resourceAppId": GRAPH_APP_ID,
                 "resourceAccess": [{"id": USER_READ, "type": "Scope"}]}])
    );
    assert_eq!(sp["appId"], app["appId"]);
    // Two AllPrincipals grants: User.Read on Graph, mcp.access on the app's own SP.
    assert_eq!(grants.len(), 2, "{grants:#?}");
    let graph_sp = h.graph_sp_id();
    let on = |res: &str| {
        grants
            .iter()
            .find(|g| g["resourceId"] == res)
            .unwrap_or_else(|| panic!("no grant on {res}: {grants:#?}"))
            .clone()
    };
    let g = on(&graph_sp);
    assert_eq!(g["consentType"], "AllPrincipals");
    assert_eq!(g["scope"], "User.Read");
    assert!(g["principalId"].is_null());
    let g = on(sp["id"].as_str().unwrap());
    assert_eq!(g["consentType"], "AllPrincipals");
    assert_eq!(g["scope"], "mcp.access");
    // One password of entraform's, and the vault holds its secret.
    let pw = app["passwordCredentials"].as_array().unwrap();
    assert_eq!(pw.len(), 1 + foreign, "{pw:#?}");
    let ours: Vec<&Value> = pw
        .iter()
        .filter(|p| p["displayName"] == "entraform hive")
        .collect();
    assert_eq!(ours.len(), 1, "{pw:#?}");
    let held = h
        .vault_secret(HIVE_VAULT_PATH)
        .expect("the vault holds a secret");
    assert_eq!(ours[0]["hint"], held.hint());
}

/// Wait until nothing in the emulator is still replicating.
async fn replicated(h: &Harness) {
    for _ in 0..100 {
        let s = h.state();
        let pending = !s["replicating"].as_array().unwrap().is_empty()
            || s["passwords"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["visibleInMs"].as_u64().unwrap_or(0) > 0);
        if !pending {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the emulator is still replicating after 10 s");
}

/// The hive app as someone made it by hand with `az` (checklist's first commands): App ID URI
/// set, token version 1, no scope, one redirect URI, an SP, a hand-made secret, no consent.
fn hand_made_hive() -> Value {
    json!({"applications": [{
        "displayName": "Hive MCP",
        "signInAudience": "AzureADMyOrg",
        "identifierUris": [HIVE_URI],
        "web": {"redirectUris": ["https://claude.ai/api/mcp/auth_callback"]},
        "servicePrincipal": true,
        "passwords": [{"displayName": "hive (az ad app credential reset)"}]
    }]})
}

fn audit(h: &Harness) -> Vec<Value> {
    let path = h.manifests().join(".entraform/audit.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_apply_sets_every_step_and_a_second_apply_writes_nothing() {
    let h = with_frame().await;
    let out = h.root().join("out");
    let run = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    run.expect(0);
    assert_converged(&h);
    let doc = run.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["changed"], true);
    let (app, sp, _) = hive_objects(&h);
    let app_id = app["appId"].as_str().unwrap();
    assert_eq!(doc["applied"]["app_id"], app_id);
    let steps = doc["applied"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 9);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["number"], i + 1);
        assert_eq!(s["result"], "done", "{s}");
    }
    assert_eq!(
        doc["applied"]["secret"]["hint"],
        app["passwordCredentials"][0]["hint"]
    );
    assert_eq!(doc["applied"]["secret"]["proven"], true);
    assert_eq!(doc["applied"]["secret"]["vault"]["verified"], true);
    // Progress per step on stderr, the plan before it.
    for n in 1..=9 {
        assert!(
            run.stderr.contains(&format!("[{n}/9]")),
            "progress of step {n}:\n{}",
            run.stderr
        );
    }
    // The fragments carry the real client id.
    let files = harness::files_under(&out);
    assert_eq!(files.len(), 4, "{files:?}");
    let customers = files
        .iter()
        .find(|f| f.to_string_lossy().contains("customers"))
        .expect("customers fragment");
    assert!(std::fs::read_to_string(customers).unwrap().contains(app_id));
    // Drift against frame (seeded as made by hand with the checklist's `az` bodies): none —
    // entraform's defaults are frame's shape byte for byte.
    assert_eq!(doc["drift"]["found"], true, "{}", doc["drift"]);
    assert_eq!(doc["drift"]["differences"], json!([]), "{}", doc["drift"]);

    // Audit: one apply record and one add_secret record, no values.
    let records = audit(&h);
    let apply: Vec<&Value> = records.iter().filter(|r| r["action"] == "apply").collect();
    assert_eq!(apply.len(), 1, "{records:#?}");
    assert_eq!(apply[0]["outcome"], "success");
    assert_eq!(apply[0]["app_id"], app_id);
    let added: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "add_secret")
        .collect();
    assert_eq!(added.len(), 1, "{records:#?}");
    assert_eq!(added[0]["key_id"], app["passwordCredentials"][0]["keyId"]);
    assert_eq!(added[0]["hint"], app["passwordCredentials"][0]["hint"]);

    // Second apply: no writes at all (the emulator's own log), same app, same secret.
    h.emu.clear_requests();
    let again = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    again.expect(0);
    let doc = again.json();
    assert_eq!(doc["changed"], false);
    assert_eq!(doc["applied"]["writes"], 0);
    let steps = doc["applied"]["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["result"] == "ok"), "{steps:#?}");
    assert!(
        steps[7]["detail"]
            .as_str()
            .unwrap()
            .starts_with("vault holds keyId "),
        "{}",
        steps[7]
    );
    let w = writes(&h.graph_requests());
    assert!(w.is_empty(), "a no-op apply wrote: {w:?}");
    let (app2, sp2, _) = hive_objects(&h);
    assert_eq!(app2["id"], app["id"]);
    assert_eq!(sp2["id"], sp["id"]);
    assert_eq!(app2["passwordCredentials"], app["passwordCredentials"]);
    let records = audit(&h);
    let last = records.last().unwrap();
    assert_eq!(last["action"], "apply");
    assert_eq!(last["outcome"], "no_change");

    // And plan agrees: exit 0, every step ok.
    let plan = h.run(&["plan", HIVE]).await;
    plan.expect(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
}

// The measurement is printed for the report (`cargo test --test apply round_trips -- --nocapture`).
#[allow(clippy::print_stderr)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_a_fresh_and_a_no_op_apply() {
    let h = with_frame().await;
    // Latency makes concurrent requests overlap in the log however fast the machine is.
    h.set_faults(Faults {
        latency_ms: 60,
        ..Faults::default()
    });
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let reqs = h.graph_requests();
    let trips = round_trips(&reqs);
    let show = |trips: &Vec<Vec<entraform::emulator::RequestRecord>>| {
        trips
            .iter()
            .map(|c| {
                c.iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
                    .join(" ‖ ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    eprintln!(
        "fresh apply: {} HTTP requests, {} round trips\n{}",
        reqs.len(),
        sequential_depth(&reqs),
        show(&trips)
    );
    // observe ‖ reference look-up; upsert; SP ‖ addPassword; grants $batch (which starts once the
    // SP exists, while the new secret is still being proven).
    assert_eq!(
        sequential_depth(&reqs),
        4,
        "fresh apply round trips:\n{}",
        show(&trips)
    );
    assert_eq!(reqs.len(), 6, "fresh apply requests:\n{}", show(&trips));

    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let reqs = h.graph_requests();
    let trips = round_trips(&reqs);
    eprintln!(
        "no-op apply: {} HTTP requests, {} round trips\n{}",
        reqs.len(),
        sequential_depth(&reqs),
        show(&trips)
    );
    // observe ‖ reference look-up; the SP's grants.
    assert_eq!(
        sequential_depth(&reqs),
        2,
        "no-op apply round trips:\n{}",
        show(&trips)
    );
    assert_eq!(reqs.len(), 3, "no-op apply requests:\n{}", show(&trips));
    assert!(writes(&reqs).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_app_is_adopted_by_its_app_id_uri_never_duplicated() {
    let h = with_frame().await;
    let ids = h.emu.seed_app(&hand_made_hive()).unwrap();
    let hand_app_id = ids[0].clone();

    let plan = h.run(&["plan", HIVE]).await;
    plan.expect(3);
    assert!(
        plan.stdout.contains("found by identifier_uri"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("uniqueName: (none) → axe-hive-mcp"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("api.requestedAccessTokenVersion: 1 → 2"),
        "{}",
        plan.stdout
    );

    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged_with(&h, 1);
    let (app, _, _) = hive_objects(&h);
    assert_eq!(app["appId"], hand_app_id, "the hand-made app was adopted");
    // The hand-made secret is someone else's: kept.
    let pw = app["passwordCredentials"].as_array().unwrap();
    assert!(
        pw.iter()
            .any(|p| p["displayName"] == "hive (az ad app credential reset)")
    );

    // Now found by uniqueName, and converged.
    h.emu.clear_requests();
    let again = h.run(&["apply", HIVE, "--out", "out"]).await;
    again.expect(0);
    assert!(writes(&h.graph_requests()).is_empty());
    let plan = h.run(&["plan", HIVE, "--output", "json"]).await;
    plan.expect(0);
    assert_eq!(plan.json()["plan"]["found_by"], "unique_name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_scope_is_disabled_first_and_keeps_its_id() {
    let h = with_frame().await;
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let (app, _, _) = hive_objects(&h);
    let scope_id = app["api"]["oauth2PermissionScopes"][0]["id"].clone();
    let object_id = app["id"].as_str().unwrap().to_string();

    let manifest = std::fs::read_to_string(h.manifests().join("hive.yaml")).unwrap();
    h.write_manifest(
        "hive.yaml",
        &format!("{manifest}overrides:\n  scope:\n    admin_consent_display_name: Use Hive MCP\n"),
    );
    let plan = h.run(&["plan", HIVE]).await;
    plan.expect(3);
    assert!(
        plan.stdout.contains(
            "api.oauth2PermissionScopes[mcp.access].adminConsentDisplayName: \"Access Hive MCP\" → \"Use Hive MCP\""
        ),
        "{}",
        plan.stdout
    );

    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let patches: Vec<String> = writes(&h.graph_requests());
    let app_path = format!("PATCH /v1.0/applications/{object_id}");
    assert_eq!(
        patches,
        [app_path.clone(), app_path],
        "disable first, then change: {patches:?}"
    );
    let (app, _, grants) = hive_objects(&h);
    let scopes = app["api"]["oauth2PermissionScopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 1);
    assert_eq!(scopes[0]["id"], scope_id, "an existing scope keeps its id");
    assert_eq!(scopes[0]["isEnabled"], true);
    assert_eq!(scopes[0]["adminConsentDisplayName"], "Use Hive MCP");
    assert_eq!(grants.len(), 2);

    // Renaming the scope: the old one is disabled, then replaced by a new one.
    let manifest = std::fs::read_to_string(h.manifests().join("hive.yaml")).unwrap();
    h.write_manifest(
        "hive.yaml",
        &manifest.replace("  scope:\n", "  scope:\n    value: mcp.use\n"),
    );
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let (app, sp, grants) = hive_objects(&h);
    let scopes = app["api"]["oauth2PermissionScopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 1, "{scopes:#?}");
    assert_eq!(scopes[0]["value"], "mcp.use");
    assert_ne!(scopes[0]["id"], scope_id);
    let own = grants
        .iter()
        .find(|g| g["resourceId"] == sp["id"])
        .expect("grant on the app itself");
    assert!(
        own["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "mcp.use"),
        "{own}"
    );
    let plan = h.run(&["plan", HIVE]).await;
    plan.expect(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grant_permission_consent_is_blocked_with_the_admin_consent_url() {
    let mut h = with_frame().await;
    h.operator = harness::Operator::Limited;
    let run = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    let doc = run.json();
    let (app, _, grants) = hive_objects(&h);
    assert!(grants.is_empty(), "{grants:#?}");
    let step9 = &doc["applied"]["steps"][8];
    assert_eq!(step9["result"], "blocked", "{step9}");
    let url = doc["applied"]["admin_consent_url"].as_str().unwrap();
    let parsed = url::Url::parse(url).unwrap();
    assert_eq!(
        parsed.origin().ascii_serialization(),
        h.emu.authority_host()
    );
    assert!(
        parsed
            .path()
            .ends_with(&format!("{}/v2.0/adminconsent", h.emu.tenant_id()))
    );
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], app["appId"].as_str().unwrap());
    assert_eq!(
        q["scope"],
        format!("https://graph.microsoft.com/User.Read {HIVE_URI}/mcp.access")
    );
    assert_eq!(q["redirect_uri"], "https://claude.ai/api/mcp/auth_callback");
    // Everything else converged; the run says consent is still pending (exit 3).
    run.expect(3);
    let text = h.run(&["apply", HIVE, "--out", "out"]).await;
    text.expect(3);
    assert!(
        text.stdout.contains("Admin consent needed: "),
        "{}",
        text.stdout
    );
    assert!(text.stderr.contains("blocked"), "{}", text.stderr);
    let (app2, _, _) = hive_objects(&h);
    assert_eq!(
        app2["passwordCredentials"].as_array().unwrap().len(),
        1,
        "a blocked consent mints no second secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_and_replication_delay_still_converge_without_duplicates() {
    let h = with_frame().await;
    h.set_faults(Faults {
        throttle_next: 2,
        error_next: 2,
        retry_after_secs: 0.05,
        replication_delay_ms: 1500,
        ..Faults::default()
    });
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let log = h.emu.requests();
    let mut faults: Vec<&str> = log
        .iter()
        .flat_map(|r| std::iter::once(r).chain(r.inner.iter()))
        .filter_map(|r| r.fault.as_deref())
        .collect();
    faults.sort();
    assert_eq!(
        faults,
        ["error", "error", "throttle", "throttle"],
        "{log:#?}"
    );
    // The replication delay was met too (the SP before its app was visible).
    assert!(
        log.iter()
            .any(|r| r.path == "/v1.0/servicePrincipals" && r.status == 400),
        "{log:#?}"
    );
    replicated(&h).await;
    assert_converged(&h);

    // Faults inside the grants $batch (inner requests are throttled on their own), then a
    // 503 on addPassword: a fresh service still converges once.
    let h = with_frame().await;
    h.set_faults(Faults {
        throttle_next: 2,
        retry_after_secs: 0.05,
        matching: Some("oauth2PermissionGrants".into()),
        ..Faults::default()
    });
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
    let h = with_frame().await;
    h.set_faults(Faults {
        throttle_next: 2,
        retry_after_secs: 0.05,
        matching: Some("PATCH /applications(uniqueName=".into()),
        ..Faults::default()
    });
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
    let h = with_frame().await;
    h.set_faults(Faults {
        error_next: 1,
        retry_after_secs: 0.05,
        matching: Some("addPassword".into()),
        ..Faults::default()
    });
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
    h.emu.clear_requests();
    h.set_faults(Faults::default());
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(writes(&h.graph_requests()).is_empty());
}

/// The hive app's credentials in the tenant.
fn passwords(h: &Harness) -> Vec<Value> {
    let apps = h.apps_of(HIVE_UNIQUE, HIVE_URI);
    assert_eq!(apps.len(), 1, "{apps:#?}");
    apps[0]["passwordCredentials"].as_array().unwrap().clone()
}

/// A vault that fails ends the run with a clear error, the new credential removed, no secret
/// shown anywhere (the harness scans every run), and the failure in the audit log.
async fn failing_vault(push: &str, expect_in_error: &[&str]) -> Harness {
    let mut h = with_frame().await;
    h.command_vault(push);
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let diag = run.diagnostics();
    for e in expect_in_error {
        assert!(diag.contains(e), "error should say {e:?}:\n{diag}");
    }
    assert!(
        diag.contains("was removed again"),
        "the error says the credential was removed:\n{diag}"
    );
    assert!(passwords(&h).is_empty(), "{:#?}", passwords(&h));
    let records = audit(&h);
    let rolled: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "add_secret")
        .collect();
    assert_eq!(rolled.len(), 1, "{records:#?}");
    assert_eq!(rolled[0]["outcome"], "rolled_back");
    let failed = records.last().unwrap();
    assert_eq!(failed["action"], "apply", "{records:#?}");
    assert_eq!(failed["outcome"], "failed");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_command_that_fails_leaves_no_credential_behind() {
    let mut h = failing_vault(
        r#"cat > /dev/null; echo "vault is locked: run 'axe login'" >&2; exit 1"#,
        &["vault is locked: run 'axe login'", "exit"],
    )
    .await;
    // Fixed vault: the next run converges with one credential, the one the vault holds.
    h.command_vault(GOOD_PUSH);
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_that_stores_something_else_fails_the_read_back() {
    // The 270-character incident: a warning glued in front of the secret.
    let h = failing_vault(
        r#"f="$(dirname "$0")/store/$1"; mkdir -p "$(dirname "$f")"; { echo "WARNING: keychain is slow"; cat; } > "$f""#,
        &["read back"],
    )
    .await;
    assert!(h.command_vault_secret(HIVE_VAULT_PATH).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_command_that_prints_the_secret_on_its_stderr_shows_it_redacted() {
    failing_vault(
        r#"cat >&2; echo " <- that was the secret" >&2; exit 2"#,
        &["*** <- that was the secret"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_converges_on_the_next_run_without_duplicates() {
    // The vault command kills entraform (SIGKILL: no cleanup) after addPassword: the tenant
    // holds an app, maybe its SP, and a credential no vault holds.
    let mut h = with_frame().await;
    h.command_vault(r#"kill -9 $PPID; exit 1"#);
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    assert_eq!(run.code, -1, "killed by a signal: {}", run.diagnostics());
    assert_eq!(passwords(&h).len(), 1);
    let orphan = passwords(&h)[0]["keyId"].clone();

    h.command_vault(GOOD_PUSH);
    let plan = h.run(&["plan", HIVE, "--output", "json"]).await;
    plan.expect(3);
    let actions: Vec<String> = plan.json()["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actions.contains(&"remove_orphan_password".into()),
        "{actions:?}"
    );
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
    assert!(passwords(&h).iter().all(|p| p["keyId"] != orphan));

    // A step that keeps failing (grants answered 503 every time) stops the run; the next run
    // creates only what is missing: no second secret.
    let h = with_frame().await;
    h.set_faults(Faults {
        error_next: 1000,
        retry_after_secs: 0.01,
        matching: Some("oauth2PermissionGrants".into()),
        ..Faults::default()
    });
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(1);
    let (_, sp, grants) = hive_objects(&h);
    assert!(grants.is_empty());
    let first = passwords(&h);
    assert_eq!(first.len(), 1);
    h.set_faults(Faults::default());
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
    assert_eq!(passwords(&h), first, "no new credential");
    let (_, sp2, _) = hive_objects(&h);
    assert_eq!(sp2["id"], sp["id"]);
    let w = writes(&h.graph_requests());
    assert_eq!(
        w,
        [
            "POST /v1.0/oauth2PermissionGrants",
            "POST /v1.0/oauth2PermissionGrants"
        ],
        "only the grants are written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_never_prompts_without_a_terminal() {
    // stdin is not a TTY (the harness gives /dev/null) and there is no --yes: apply goes ahead.
    let h = with_frame().await;
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(0);
    assert!(!run.stderr.contains("Apply "), "{}", run.diagnostics());
    assert!(
        run.stdout.starts_with("Applied hive (axe): app "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Fragments: out"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leak_scan_finds_a_planted_secret() {
    // The scan every test relies on must be able to fail: plant an issued secret in a file
    // of the temp dir and in a stream.
    let h = with_frame().await;
    let secret = h.emu.issued_secrets().pop().unwrap();
    let clean = harness::Run {
        code: 0,
        stdout: String::new(),
        stderr: String::new(),
    };
    h.assert_no_leaks(&clean);
    let in_stream = harness::Run {
        code: 0,
        stdout: String::new(),
        stderr: format!("log: {}", secret.expose()),
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.assert_no_leaks(&in_stream)
    }));
    assert!(caught.is_err(), "a secret on stderr is found");
    std::fs::write(h.root().join("out.txt"), secret.expose()).unwrap();
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.assert_no_leaks(&clean)));
    assert!(caught.is_err(), "a secret in a file is found");
}

/// Whether a real Secret Service runs (scripts/test.sh starts one); skips with a note, but
/// fails when ENTRAFORM_REQUIRE_TOOLS=1.
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
            "note: keyring apply test skipped (no Secret Service; run `bash scripts/test.sh \
             --test apply` with gnome-keyring installed)"
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_the_keyring_backend_against_a_real_secret_service() {
    if !secret_service_available() {
        return;
    }
    let mut h = with_frame().await;
    let service = format!("entraform-apply-test-{}", std::process::id());
    h.keyring_vault(&service);
    let run = h
        .run(&["apply", HIVE, "--out", "out", "--output", "json"])
        .await;
    run.expect(0);
    let doc = run.json();
    assert_eq!(doc["applied"]["secret"]["vault"]["verified"], true);
    assert!(
        doc["applied"]["secret"]["vault"]["backend"]
            .as_str()
            .unwrap()
            .contains("Secret Service"),
        "{}",
        doc["applied"]["secret"]["vault"]
    );
    assert_converged(&h);
    // The keyring is read back on the next run: nothing to do.
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert!(writes(&h.graph_requests()).is_empty());
    let vault = entraform::vault::KeyringVault::new(&service).unwrap();
    assert!(vault.delete(HIVE_VAULT_PATH).unwrap());
}

/// Plan text with the values that change per run (GUIDs, hints, timestamps) replaced.
fn stable(text: &str) -> String {
    let guid =
        regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let hint = regex::Regex::new(r"hint [^)\s]{3}").unwrap();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    let text = guid.replace_all(text, "[guid]");
    let text = hint.replace_all(&text, "hint [hint]");
    time.replace_all(&text, "[time]").into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_output_for_a_fresh_tenant_and_a_drifted_app() {
    let h = with_frame().await;
    let fresh = h.run(&["plan", HIVE]).await;
    fresh.expect(3);
    insta::assert_snapshot!("plan_fresh_tenant", stable(&fresh.stdout));
    // Diagnostics only on stderr: the plan is stdout.
    assert!(!fresh.stdout.contains("warning"), "{}", fresh.stdout);

    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let (app, _, _) = hive_objects(&h);
    h.emu
        .edit_app(
            app["id"].as_str().unwrap(),
            &json!({
                "api": {"requestedAccessTokenVersion": 1},
                "web": {
                    "redirectUris": ["https://claude.ai/api/mcp/auth_callback"],
                    "implicitGrantSettings": {"enableIdTokenIssuance": false}
                }
            }),
        )
        .unwrap();
    let drifted = h.run(&["plan", HIVE]).await;
    drifted.expect(3);
    insta::assert_snapshot!("plan_drifted_app", stable(&drifted.stdout));
    let doc = h.run(&["plan", HIVE, "--output", "json"]).await.json();
    assert_eq!(doc["changes"], true);
    let step5 = &doc["plan"]["steps"][4];
    assert_eq!(step5["status"], "update");
    assert_eq!(step5["changes"][0]["field"], "web.redirectUris");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_apply_converges_and_a_second_run_is_a_no_op() {
    // The sandbox runs its own emulator inside the binary; the secret it minted is in the
    // sandbox's file vault, so that is what the streams and files are scanned for.
    let h = Harness::new().await;
    for manifest in ["manifests/hive.yaml", "manifests/blueprint.yaml"] {
        let first = h
            .run(&["apply", manifest, "--sandbox", "--output", "json"])
            .await;
        first.expect(0);
        let doc = first.json();
        assert_eq!(doc["changed"], true);
        assert!(
            doc["applied"]["secret"]["proven"] == true,
            "{}",
            doc["applied"]
        );
        let again = h
            .run(&["apply", manifest, "--sandbox", "--output", "json"])
            .await;
        again.expect(0);
        let doc2 = again.json();
        assert_eq!(doc2["changed"], false, "{}", doc2["plan"]);
        assert_eq!(doc2["applied"]["app_id"], doc["applied"]["app_id"]);
        if manifest.ends_with("blueprint.yaml") {
            // The pinned app is adopted, not duplicated.
            assert_eq!(
                doc["applied"]["app_id"],
                "482598f7-540c-462c-9dfd-b957651eb804"
            );
        }
        let vault_path = h.root().join(".entraform/sandbox/vault.json");
        let vault: Value = serde_json::from_slice(&std::fs::read(&vault_path).unwrap()).unwrap();
        for (_, secret) in vault.as_object().unwrap() {
            let secret = secret.as_str().unwrap();
            for (what, text) in [
                ("stdout", &first.stdout),
                ("stderr", &first.stderr),
                ("stdout", &again.stdout),
                ("stderr", &again.stderr),
            ] {
                assert!(!text.contains(secret), "the sandbox secret is in {what}");
            }
            for f in harness::files_under(h.root()) {
                if f != vault_path {
                    let bytes = std::fs::read(&f).unwrap();
                    assert!(
                        !String::from_utf8_lossy(&bytes).contains(secret),
                        "the sandbox secret is in {}",
                        f.display()
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_secret_is_proven_only_once_the_service_principal_exists() {
    // The SP is created concurrently with addPassword; a slow SP (throttled three times) used
    // to lose the race: the token proof got AADSTS7000229 and the secret was rolled back.
    let h = with_frame().await;
    h.set_faults(Faults {
        throttle_next: 3,
        retry_after_secs: 0.4,
        matching: Some("POST /servicePrincipals".into()),
        ..Faults::default()
    });
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);

    // An SP that cannot be created at all: the secret is rolled back, and the error says
    // both what failed and what was undone.
    let h = with_frame().await;
    h.set_faults(Faults {
        error_next: 1000,
        retry_after_secs: 0.01,
        matching: Some("POST /servicePrincipals".into()),
        ..Faults::default()
    });
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let diag = run.diagnostics();
    assert!(diag.contains("service principal failed"), "{diag}");
    assert!(diag.contains("was removed again"), "{diag}");
    assert!(passwords(&h).is_empty());
    h.set_faults(Faults::default());
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    assert_converged(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_without_read_back_gets_the_secret_only_once_it_works() {
    // A push-only vault cannot be read to tell a dead secret from a live one: the new secret
    // is proven first and written only then. Here the proof cannot happen (the SP cannot be
    // created): the credential goes, and the vault was never written.
    let mut h = with_frame().await;
    h.command_vault(GOOD_PUSH);
    h.set_vault("vault:\n  backend: command\n  push: [./push.sh, \"{path}\"]\n");
    h.set_faults(Faults {
        error_next: 1000,
        retry_after_secs: 0.01,
        matching: Some("POST /servicePrincipals".into()),
        ..Faults::default()
    });
    let run = h.run(&["apply", HIVE, "--out", "out"]).await;
    run.expect(1);
    let diag = run.diagnostics();
    assert!(diag.contains("the vault was not written"), "{diag}");
    assert!(diag.contains("was removed again"), "{diag}");
    assert!(passwords(&h).is_empty());
    assert!(
        h.command_vault_secret(HIVE_VAULT_PATH).is_none(),
        "no dead secret in the vault"
    );

    // Once the SP can be made, the proven secret lands in the vault.
    h.set_faults(Faults::default());
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let creds = passwords(&h);
    assert_eq!(creds.len(), 1);
    let stored = h.command_vault_secret(HIVE_VAULT_PATH).expect("stored");
    assert_eq!(creds[0]["hint"], stored.hint().as_str());
}
