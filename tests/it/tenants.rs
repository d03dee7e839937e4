//! The customer's tenant, and only that tenant (issue 9 §1), on the real binary against an
//! emulator hosting several tenants: the operator's token is asked for the customer's tenant
//! and its `tid` checked before any Graph request; `--all` runs group services by tenant, one
//! session per tenant, tenants in parallel, and a tenant the operator cannot reach fails only
//! its own services.

use crate::support::harness;

use std::time::Instant;

use entraform::emulator::{EmulatorConfig, Faults, RequestRecord};
use harness::{Harness, Operator, graph_only as graph, sequential_depth, writes};
use serde_json::Value;

/// The repo's tenant (customer axe) and two more.
const A: &str = "122fb574-7efa-476a-95b6-bee81bce2cce";
const B: &str = "5b0e9c1a-7d3f-4e2a-9c8b-1f2e3d4c5b6a";
/// Not hosted by the emulator: its login answers AADSTS90002.
const C: &str = "c3c3c3c3-1111-4222-8333-444455556666";

fn two_tenants() -> EmulatorConfig {
    EmulatorConfig::default().tenant(A).add_tenant(B)
}

fn token_requests(log: &[RequestRecord]) -> Vec<String> {
    log.iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| r.path.clone())
        .collect()
}

fn apps(h: &Harness, tenant: &str) -> Vec<String> {
    h.tenant_state(tenant)["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["displayName"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the figures are the point (`-- --nocapture`)
async fn a_foreign_tenant_apply_sends_only_the_token_request_and_writes_nothing() {
    // The operator is signed in to tenant A (its app is registered only there); the manifest's
    // customer lives in tenant B. Before: the app, its secret and grants were created in A and
    // only the final proof failed. Now the token is asked for B, B refuses the app
    // (AADSTS700016), and nothing else is sent.
    let h = Harness::with_config(two_tenants()).await;
    h.set_customer_tenant("axe", B);
    let before_a = h.tenant_state(A);
    let before_b = h.tenant_state(B);
    h.emu.clear_requests();
    let started = Instant::now();
    let run = h
        .run(&["apply", "manifests/hive.yaml", "--yes", "--out", "out"])
        .await;
    let took = started.elapsed();
    run.expect(1);
    let log = h.emu.requests();
    let diag = run.diagnostics();
    assert!(diag.contains(B), "names the customer's tenant: {diag}");
    assert!(diag.contains(A), "names the operator's tenant: {diag}");
    assert!(diag.contains("AADSTS700016"), "{diag}");
    assert!(diag.contains(&format!("az login --tenant {B}")), "{diag}");
    assert_eq!(
        token_requests(&log),
        vec![format!("/{B}/oauth2/v2.0/token")],
        "one token request, for the customer's tenant: {log:#?}"
    );
    assert!(graph(&log).is_empty(), "no Graph request: {log:#?}");
    assert!(writes(&graph(&log)).is_empty());
    assert_eq!(h.tenant_state(A)["applications"], before_a["applications"]);
    assert_eq!(h.tenant_state(B)["applications"], before_b["applications"]);
    assert_eq!(h.file_vault(), Value::Object(Default::default()));
    eprintln!(
        "foreign-tenant apply: {} request(s) in the emulator log ({} token, {} Graph), exit 1 in {:.0} ms",
        log.len(),
        token_requests(&log).len(),
        graph(&log).len(),
        took.as_secs_f64() * 1000.0
    );
}

/// A stand-in `az` on PATH: it records its arguments and prints, in the shape of `az account
/// get-access-token -o json` (<https://learn.microsoft.com/cli/azure/account#az-account-get-access-token>:
/// `accessToken`, `expires_on`, `tenant`, `tokenType`), a real emulator token of tenant `tid`
/// whatever tenant it is asked for — a credential that cannot choose its tenant, like a managed
/// identity's.
async fn fake_az(h: &mut Harness, tid: &str) -> std::path::PathBuf {
    let cfg = entraform::graph::AuthConfig::new(h.emu.authority_host(), h.emu.graph_url())
        .with_ca_pem(h.emu.ca_cert_pem().unwrap().as_bytes());
    let operator = h.emu.tenant_operator(tid).unwrap();
    let resp: Value = cfg
        .http_client()
        .unwrap()
        .post(h.emu.token_url_for(tid))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", operator.client_id.as_str()),
            ("client_secret", operator.secret().expose()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = resp["access_token"].as_str().unwrap().to_string();
    let bin = h.root().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let args = h.root().join("az-args.txt");
    let script = bin.join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nprintf '%s' '{{\"accessToken\":\"{token}\",\"expires_on\":4102444800,\"tenant\":\"{tid}\",\"tokenType\":\"Bearer\"}}'\n",
            args.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    h.env = vec![
        ("PATH".into(), Some(path)),
        ("AZURE_CLIENT_SECRET".into(), None),
        ("AZURE_CLIENT_ID".into(), None),
        ("AZURE_TENANT_ID".into(), None),
    ];
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_graph_command_refuses_a_token_of_another_tenant_before_any_graph_request() {
    // `az login` users: the customer's tenant is passed to az (`--tenant B`); a token that is
    // nevertheless for tenant A is refused on its `tid`, before Graph sees a request.
    let mut h = Harness::with_config(two_tenants()).await;
    h.set_customer_tenant("axe", B);
    let az_args = fake_az(&mut h, A).await;
    let cases: &[&[&str]] = &[
        &["plan", "manifests/hive.yaml"],
        &["apply", "manifests/hive.yaml", "--yes"],
        &["drift", "manifests/hive.yaml"],
        &["drift", "--all", "manifests"],
        &["export", "manifests/hive.yaml"],
        &["rotate", "manifests/hive.yaml"],
        &["rotate", "--all", "manifests"],
        &["secrets", "manifests/hive.yaml"],
        &["secrets", "--all", "manifests"],
        &["verify", "manifests/hive.yaml"],
    ];
    for args in cases {
        h.emu.clear_requests();
        let run = h.run(args).await;
        let diag = run.diagnostics();
        assert_eq!(run.code, 1, "{args:?}: exit 1\n{}\n{diag}", run.stdout);
        assert!(
            diag.contains(&format!("the operator's token is for tenant {A}")),
            "{args:?}: {diag}"
        );
        assert!(diag.contains(B), "{args:?}: {diag}");
        assert!(
            diag.contains(&format!("az login --tenant {B}")) && diag.contains("AZURE_TENANT_ID"),
            "{args:?}: the fix: {diag}"
        );
        let log = h.emu.requests();
        assert!(
            graph(&log).is_empty(),
            "{args:?}: no Graph request: {log:#?}"
        );
    }
    // The typed error, in JSON too.
    for args in [
        &["plan", "manifests/hive.yaml", "--output", "json"][..],
        &["secrets", "manifests/hive.yaml", "--output", "json"],
    ] {
        let run = h.run(args).await;
        run.expect(1);
        let doc = run.json();
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["error"]["kind"], "graph", "{args:?}: {doc}");
        assert!(
            doc["error"]["hint"]
                .as_str()
                .unwrap()
                .contains(&format!("az login --tenant {B}"))
        );
    }
    let asked = std::fs::read_to_string(&az_args).unwrap();
    assert!(
        asked
            .lines()
            .all(|l| l.contains("get-access-token") && l.contains(&format!("--tenant {B}"))),
        "az is asked for the customer's tenant: {asked}"
    );
    assert!(apps(&h, B).iter().all(|a| a.contains("operator")));
}

/// axe (frame, hive) in tenant A; realchoice (ledger, relay) in tenant B; all applied by the
/// multi-tenant operator.
async fn applied_in_two_tenants() -> Harness {
    let mut h = Harness::with_config(two_tenants()).await;
    h.operator = Operator::MultiTenant;
    h.set_customer_tenant("realchoice", B);
    h.write_service("ledger", "realchoice", 3161);
    h.write_service("relay", "realchoice", 3171);
    // blueprint pins an app that exists in no tenant here.
    std::fs::remove_file(h.manifests().join("blueprint.yaml")).unwrap();
    for m in ["frame", "hive", "ledger", "relay"] {
        h.run(&[
            "apply",
            &format!("manifests/{m}.yaml"),
            "--yes",
            "--out",
            "out",
        ])
        .await
        .expect(0);
    }
    for m in ["Frame MCP", "Hive MCP"] {
        assert!(apps(&h, A).iter().any(|a| a == m), "{m} in A");
        assert!(!apps(&h, B).iter().any(|a| a == m), "{m} not in B");
    }
    for m in ["Ledger MCP", "Relay MCP"] {
        assert!(apps(&h, B).iter().any(|a| a == m), "{m} in B");
        assert!(!apps(&h, A).iter().any(|a| a == m), "{m} not in A");
    }
    h
}

fn statuses(doc: &Value) -> Vec<(String, String)> {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["status"]
                    .as_str()
                    .or(s["outcome"].as_str())
                    .or(s["health"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_all_and_rotate_all_span_two_tenants() {
    let h = applied_in_two_tenants().await;

    // drift --all: each service read in its own tenant; ledger and relay (tenant B) compared
    // with frame (tenant A), each side read where it lives.
    h.emu.clear_requests();
    let run = h
        .run(&["drift", "--all", "manifests", "--output", "json"])
        .await;
    run.expect(0);
    let doc = run.json();
    let by: std::collections::BTreeMap<_, _> = statuses(&doc).into_iter().collect();
    assert_eq!(by["frame"], "no_reference", "{doc}");
    assert_eq!(by["hive"], "in_sync", "{doc}");
    assert_eq!(by["ledger"], "in_sync", "{doc}");
    assert_eq!(by["relay"], "in_sync", "{doc}");
    let tokens = token_requests(&h.emu.requests());
    assert!(
        tokens.contains(&format!("/{A}/oauth2/v2.0/token")),
        "{tokens:?}"
    );
    assert!(
        tokens.contains(&format!("/{B}/oauth2/v2.0/token")),
        "{tokens:?}"
    );

    // rotate --all: a new secret for every app, in its own tenant.
    let run = h
        .run(&["rotate", "--all", "manifests", "--output", "json"])
        .await;
    run.expect(0);
    let doc = run.json();
    let by: std::collections::BTreeMap<_, _> = statuses(&doc).into_iter().collect();
    for s in ["frame", "hive", "ledger", "relay"] {
        assert_eq!(by[s], "rotated", "{s}: {doc}");
    }
    for (tenant, app) in [(A, "Hive MCP"), (B, "Ledger MCP"), (B, "Relay MCP")] {
        let state = h.tenant_state(tenant);
        let found = state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["displayName"] == app)
            .unwrap_or_else(|| panic!("{app} in {tenant}"));
        assert_eq!(
            found["passwordCredentials"].as_array().unwrap().len(),
            2,
            "{app}: the applied secret and the rotated one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreachable_tenant_among_three_fails_only_its_own_services() {
    let h = applied_in_two_tenants().await;
    // acme lives in tenant C, which the operator cannot reach (the emulator does not host it:
    // its login answers AADSTS90002).
    h.set_customer_tenant("acme", C);
    h.write_service("widget", "acme", 3181);
    h.write_service("gadget", "acme", 3191);

    for (args, ok_status) in [
        (vec!["drift", "--all", "manifests"], "in_sync"),
        (vec!["secrets", "--all", "manifests"], "ok"),
        (vec!["rotate", "--all", "manifests"], "rotated"),
    ] {
        let mut full = args.clone();
        full.extend(["--output", "json"]);
        let run = h.run(&full).await;
        run.expect(1);
        let doc = run.json();
        let by: std::collections::BTreeMap<_, _> = statuses(&doc).into_iter().collect();
        for s in ["hive", "ledger", "relay"] {
            assert_eq!(by[s], ok_status, "{args:?} {s}: {doc}");
        }
        for s in ["widget", "gadget"] {
            let entry = doc["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["service"] == s)
                .unwrap();
            let text = entry.to_string();
            assert!(
                text.contains(C) && text.contains("AADSTS90002"),
                "{args:?} {s} fails naming its tenant: {text}"
            );
        }
        let diag = run.diagnostics();
        assert!(diag.contains(C), "{args:?}: {diag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the figures are the point (`-- --nocapture`)
async fn two_tenants_cost_the_round_trips_of_one() {
    // The same four services, first all in tenant A, then split over A and B: the tenants are
    // read in parallel, so the sequential round trips (from the emulator's request log) match.
    // 60 ms per request makes "in flight at the same time" visible in the log.
    let slow = Faults {
        latency_ms: 60,
        ..Faults::default()
    };
    let mut one = Harness::with_config(two_tenants()).await;
    one.operator = Operator::MultiTenant;
    one.write_service("ledger", "realchoice", 3161);
    one.write_service("relay", "realchoice", 3171);
    std::fs::remove_file(one.manifests().join("blueprint.yaml")).unwrap();
    for m in ["frame", "hive", "ledger", "relay"] {
        one.run(&[
            "apply",
            &format!("manifests/{m}.yaml"),
            "--yes",
            "--out",
            "out",
        ])
        .await
        .expect(0);
    }
    let two = applied_in_two_tenants().await;
    let mut figures = Vec::new();
    for (name, h) in [("one tenant", &one), ("two tenants", &two)] {
        h.set_faults(slow.clone());
        h.emu.clear_requests();
        let started = Instant::now();
        h.run(&["drift", "--all", "manifests"]).await.expect(0);
        let took = started.elapsed();
        let log = h.emu.requests();
        let g = graph(&log);
        figures.push((
            name,
            token_requests(&log).len(),
            g.len(),
            sequential_depth(&g),
            sequential_depth(&log),
            took,
        ));
    }
    for (name, tokens, requests, depth, depth_all, took) in &figures {
        eprintln!(
            "drift --all, {name}: {tokens} token request(s), {requests} Graph request(s), {depth} sequential Graph round trip(s) ({depth_all} with the token requests), {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
    }
    assert_eq!(figures[0].1, 1);
    assert_eq!(figures[1].1, 2, "one token per tenant");
    assert_eq!(
        figures[0].3, figures[1].3,
        "the second tenant adds no sequential Graph round trip"
    );
    assert_eq!(figures[0].4, figures[1].4, "nor a sequential token wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_seeds_one_tenant_per_customer_tenant() {
    let h = Harness::new().await;
    h.set_customer_tenant("realchoice", B);
    h.write_service("ledger", "realchoice", 3161);
    let run = h
        .run(&[
            "apply",
            "manifests/ledger.yaml",
            "--sandbox",
            "--output",
            "json",
        ])
        .await;
    run.expect(0);
    assert!(
        run.diagnostics().contains("2 tenants"),
        "{}",
        run.diagnostics()
    );
    let again = h
        .run(&[
            "apply",
            "manifests/hive.yaml",
            "--sandbox",
            "--output",
            "json",
        ])
        .await;
    again.expect(0);
    let state: Value = serde_json::from_slice(
        &std::fs::read(h.root().join(".entraform/sandbox/tenant.json")).unwrap(),
    )
    .unwrap();
    let tenants = state["tenants"].as_array().expect("several tenants kept");
    assert_eq!(tenants.len(), 2);
    let names = |tid: &str| -> Vec<String> {
        tenants
            .iter()
            .find(|t| t["tenant_id"] == tid)
            .unwrap_or_else(|| panic!("{tid} in {state}"))["applications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["data"]["displayName"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names(B).contains(&"Ledger MCP".to_string()),
        "{:?}",
        names(B)
    );
    assert!(!names(A).contains(&"Ledger MCP".to_string()));
    assert!(names(A).contains(&"Hive MCP".to_string()), "{:?}", names(A));
    assert!(
        names(A).contains(&"Frame MCP".to_string()),
        "the reference in its own tenant"
    );
}
