//! `plan` and `apply` on the real binary against the in-process emulator (issue 4): every
//! property of steps 1–9, zero writes on a second run, adoption, disable-first scope changes,
//! the admin-consent fallback, faults, interrupted runs, failing vault commands, the keyring
//! backend, the audit log, and the round trips. Every run is scanned for leaked secrets.

mod apply_support;

use apply_support::{GRAPH_APP_ID, Harness, USER_READ, round_trips, writes};
use entraform::emulator::{EmulatorConfig, Faults};
use serde_json::{Value, json};

const HIVE: &str = "manifests/hive.yaml";
const HIVE_UNIQUE: &str = "axe-hive-mcp";
const HIVE_URI: &str = "https://axe.axelabs.ai/hive/mcp";
const HIVE_VAULT_PATH: &str = "hive/axe/mcp-client-secret";

fn frame_seed() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/frame.seed.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

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
    assert_eq!(
        s["adminConsentDescription"],
        "Allows the claude.ai connector to call Hive MCP on behalf of the signed-in user."
    );
    assert_eq!(
        s["userConsentDescription"],
        "Allows the claude.ai connector to call Hive MCP on your behalf."
    );
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
    // One password, and the vault holds its secret.
    let pw = app["passwordCredentials"].as_array().unwrap();
    assert_eq!(pw.len(), 1, "{pw:#?}");
    let held = h
        .vault_secret(HIVE_VAULT_PATH)
        .expect("the vault holds a secret");
    assert_eq!(pw[0]["hint"], held.hint());
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
    let files = apply_support::files_under(&out);
    assert_eq!(files.len(), 4, "{files:?}");
    let customers = files
        .iter()
        .find(|f| f.to_string_lossy().contains("customers"))
        .expect("customers fragment");
    assert!(std::fs::read_to_string(customers).unwrap().contains(app_id));
    // Drift against frame (seeded as made by hand, without consent descriptions): exactly the
    // two descriptions differ.
    assert_eq!(doc["drift"]["found"], true, "{}", doc["drift"]);
    let fields: Vec<&str> = doc["drift"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "api.oauth2PermissionScopes[mcp.access].adminConsentDescription",
            "api.oauth2PermissionScopes[mcp.access].userConsentDescription"
        ],
        "{}",
        doc["drift"]
    );

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
        trips.len(),
        show(&trips)
    );
    assert!(
        trips.len() <= 4,
        "fresh apply round trips:\n{}",
        show(&trips)
    );
    assert!(reqs.len() <= 6, "fresh apply requests:\n{}", show(&trips));

    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let reqs = h.graph_requests();
    let trips = round_trips(&reqs);
    eprintln!(
        "no-op apply: {} HTTP requests, {} round trips\n{}",
        reqs.len(),
        trips.len(),
        show(&trips)
    );
    assert!(
        trips.len() <= 2,
        "no-op apply round trips:\n{}",
        show(&trips)
    );
    assert!(writes(&reqs).is_empty());
}
