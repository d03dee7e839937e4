//! The emulator hosting several tenants: each its own directory, operator principals and login
//! issuer; a multi-tenant operator app consented in each; Graph routed by the token's `tid`.
//! One test per rule, each citing where the rule comes from.

use super::support;
use crate::support::{GRAPH_SCOPE, TENANT as A, TENANT_B as B};

use base64::Engine;
use entraform::emulator::{EmulatorConfig, start};
use serde_json::{Value, json};
use support::*;

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT-shaped");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn two() -> Env {
    env_with(
        EmulatorConfig::default()
            .tls(true)
            .verified_domain("axelabs.ai")
            .tenant(A)
            .add_tenant(B),
    )
    .await
}

async fn token_in(env: &Env, tenant: &str, client_id: &str, secret: &str) -> Reply {
    token_request(
        &env.http,
        &env.emu.token_url_for(tenant),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await
}

/// Rule: a token request for a tenant that does not exist is AADSTS90002, 400
/// `invalid_request` ("Tenant '{tenant}' not found", AADSTS90002 in
/// https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
#[tokio::test]
async fn a_tenant_the_emulator_does_not_host_is_aadsts90002() {
    let env = two().await;
    let op = env.emu.operator();
    let missing = "c3c3c3c3-1111-4222-8333-444455556666";
    let r = token_in(&env, missing, &op.client_id, op.secret().expose()).await;
    assert_login_error(&r, 400, "invalid_request", 90002);
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains(&format!("Tenant '{missing}' not found")),
        "{}",
        r.text
    );
    // Its discovery document does not exist either.
    let url = format!(
        "{}/{missing}/v2.0/.well-known/openid-configuration",
        env.emu.authority_host()
    );
    let r = reply(env.http.get(url).send().await.unwrap()).await;
    assert_login_error(&r, 400, "invalid_request", 90002);
}

/// Rule: each tenant is its own issuer; discovery names the tenant's own endpoints
/// (`https://login.microsoftonline.com/{tenant}/v2.0` in
/// https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri).
#[tokio::test]
async fn discovery_and_issuer_are_per_tenant() {
    let env = two().await;
    for t in [A, B] {
        let url = format!(
            "{}/{t}/v2.0/.well-known/openid-configuration",
            env.emu.authority_host()
        );
        let r = reply(env.http.get(url).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body["issuer"],
            format!("{}/{t}/v2.0", env.emu.authority_host())
        );
        assert_eq!(r.body["token_endpoint"], env.emu.token_url_for(t));
    }
    assert_eq!(env.emu.tenant_ids(), vec![A.to_string(), B.to_string()]);
}

/// Rule: an app registered in one tenant is unknown to another one's token endpoint:
/// AADSTS700016 "Application with identifier … was not found in the directory" (reference
/// error codes, above). Each tenant has operators of its own.
#[tokio::test]
async fn a_single_tenant_operator_gets_tokens_only_in_its_own_tenant() {
    let env = two().await;
    let a_op = env.emu.tenant_operator(A).unwrap();
    let b_op = env.emu.tenant_operator(B).unwrap();
    assert_ne!(a_op.client_id, b_op.client_id);
    let r = token_in(&env, B, &a_op.client_id, a_op.secret().expose()).await;
    assert_login_error(&r, 400, "unauthorized_client", 700016);
    assert!(r.text.contains(B), "{}", r.text);
    let r = token_in(&env, B, &b_op.client_id, b_op.secret().expose()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(r.body["access_token"].as_str().unwrap())["tid"], B);
}

/// Rule: a multi-tenant app (`AzureADMultipleOrgs`) has its application object in its home
/// tenant and a service principal wherever it is consented; the same client id and secret get
/// a token in each of those tenants, whose `tid` is the tenant asked for
/// (https://learn.microsoft.com/entra/identity-platform/application-model,
/// https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
#[tokio::test]
async fn the_multi_tenant_operator_gets_a_token_in_each_tenant_with_that_tid() {
    let env = two().await;
    let multi = env.emu.multi_tenant_operator().expect("two tenants");
    for t in [A, B] {
        let r = token_in(&env, t, &multi.client_id, multi.secret().expose()).await;
        assert_eq!(r.status, 200, "{t}: {}", r.text);
        let c = claims(r.body["access_token"].as_str().unwrap());
        assert_eq!(c["tid"], t);
        assert_eq!(c["appid"], multi.client_id);
        assert!(
            c["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "Application.ReadWrite.All")
        );
    }
    // One application object (home tenant A), one service principal per tenant.
    let in_a = env.emu.tenant_state_json(A).unwrap();
    let in_b = env.emu.tenant_state_json(B).unwrap();
    let has_app = |s: &Value| {
        s["applications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["appId"] == multi.client_id.as_str())
    };
    let sp_owner = |s: &Value| {
        s["servicePrincipals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["appId"] == multi.client_id.as_str())
            .map(|p| p["appOwnerOrganizationId"].clone())
    };
    assert!(has_app(&in_a) && !has_app(&in_b));
    assert_eq!(sp_owner(&in_a), Some(json!(A)));
    assert_eq!(
        sp_owner(&in_b),
        Some(json!(A)),
        "B's SP names the home tenant"
    );
    // A wrong secret is still wrong in the foreign tenant.
    let r = token_in(&env, B, &multi.client_id, "not-the-secret").await;
    assert_login_error(&r, 401, "invalid_client", 7000215);
    // The export lines name the first tenant and the principal valid in both.
    let lines = env.emu.export_lines();
    assert!(
        lines.contains(&format!("export AZURE_TENANT_ID={A}\n")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("export AZURE_CLIENT_ID={}\n", multi.client_id)),
        "{lines}"
    );
}

/// Rule: Graph serves the directory of the tenant the bearer token was issued in (its `tid`,
/// access token claims reference above): an app made with a token of B exists only in B.
#[tokio::test]
async fn graph_requests_are_routed_by_the_tokens_tid() {
    let env = two().await;
    let multi = env.emu.multi_tenant_operator().unwrap();
    let token_b = token_in(&env, B, &multi.client_id, multi.secret().expose())
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"displayName": "Only In B", "uniqueName": "only-in-b"});
    let r = env
        .call_as(&token_b, "POST", "/applications", Some(body), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let in_b = env
        .call_as(
            &token_b,
            "GET",
            "/applications(uniqueName='only-in-b')",
            None,
            &[],
        )
        .await;
    assert_eq!(in_b.status, 200, "{}", in_b.text);
    // env.token is the first tenant's operator.
    let in_a = env.get("/applications(uniqueName='only-in-b')").await;
    assert_graph_error(&in_a, 404, "Request_ResourceNotFound");
    let org = env
        .call_as(&token_b, "GET", "/organization", None, &[])
        .await;
    assert_eq!(org.body["value"][0]["id"], B, "{}", org.text);
    // $batch inner requests follow the same token.
    let batch = env
        .call_as(
            &token_b,
            "POST",
            "/$batch",
            Some(json!({"requests": [{"id": "1", "method": "GET", "url": "/applications(uniqueName='only-in-b')"}]})),
            &[],
        )
        .await;
    assert_eq!(batch.body["responses"][0]["status"], 200, "{}", batch.text);
}

/// Rule (the emulator's own controls): `?tenant=` picks the tenant a control acts on, the
/// first one by default; an unknown tenant is 404. Seeds may name their tenant.
#[tokio::test]
async fn controls_act_on_the_first_tenant_or_the_one_named() {
    let env = two().await;
    let r = reply(
        env.control_request("POST", "/seed")
            .json(&json!({"tenant": B, "applications": [{"displayName": "Seeded In B"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let names = |v: &Value| -> Vec<String> {
        v["applications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["displayName"].as_str().unwrap().to_string())
            .collect()
    };
    let first = reply(env.control_request("GET", "/state").send().await.unwrap()).await;
    assert_eq!(first.body["tenantId"], A);
    assert_eq!(first.body["tenants"], json!([A, B]));
    assert!(!names(&first.body).contains(&"Seeded In B".to_string()));
    let b = reply(
        env.control_request("GET", &format!("/state?tenant={B}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b.body["tenantId"], B);
    assert!(names(&b.body).contains(&"Seeded In B".to_string()));
    let none = reply(
        env.control_request("GET", "/state?tenant=c3c3c3c3-1111-4222-8333-444455556666")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none.status, 404, "{}", none.text);
    // Reset returns every tenant to its start.
    env.emu.reset();
    assert!(!names(&env.emu.tenant_state_json(B).unwrap()).contains(&"Seeded In B".to_string()));
}

/// Rule (persistence): `--state` keeps every tenant; a restart finds each tenant's apps where
/// they were.
#[tokio::test]
async fn state_files_keep_every_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let config = || {
        EmulatorConfig::default()
            .tls(true)
            .tenant(A)
            .add_tenant(B)
            .state_file(&path)
    };
    let emu = start(config()).await.unwrap();
    emu.seed_app(&json!({"tenant": B, "applications": [{"displayName": "Kept In B"}]}))
        .unwrap();
    emu.shutdown().await;
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["tenants"].as_array().unwrap().len(), 2);
    let emu = start(config()).await.unwrap();
    let b = emu.tenant_state_json(B).unwrap();
    assert!(b.to_string().contains("Kept In B"));
    assert!(!emu.state_json().to_string().contains("Kept In B"));
    emu.shutdown().await;
}

/// The `emulator` command: `--tenant` repeatable, `--tenants-from DEFAULTS` one tenant per
/// distinct customer tenant; the export lines name the first tenant and a client id valid in
/// every hosted tenant.
#[tokio::test]
async fn the_emulator_command_hosts_repeated_tenants_and_those_of_a_defaults_file() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let defaults = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/defaults.yaml"
    ))
    .unwrap()
    .replacen(
        &format!("    tenant_id: {A}\n    host: realchoice"),
        &format!("    tenant_id: {B}\n    host: realchoice"),
        1,
    );
    assert!(defaults.contains(B), "realchoice moved to B");
    let path = dir.path().join("defaults.yaml");
    std::fs::write(&path, defaults).unwrap();
    let third = "d4d4d4d4-2222-4333-8444-555566667777";
    for (args, expected) in [
        (
            vec!["--tenant", A, "--tenant", B, "--tenant", third],
            vec![A, B, third],
        ),
        (vec!["--tenants-from", path.to_str().unwrap()], vec![A, B]),
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_entraform"))
            .arg("emulator")
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut exports = std::collections::HashMap::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                exports.insert(k.to_string(), v.trim_matches('\'').to_string());
            }
            if line.starts_with("export AZURE_CLIENT_SECRET=") {
                break;
            }
        }
        assert_eq!(exports["AZURE_TENANT_ID"], expected[0], "{args:?}");
        let http = reqwest::Client::new();
        let authority = &exports["AZURE_AUTHORITY_HOST"];
        let listed = reply(
            http.get(format!("{authority}/tenants"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let ids: Vec<&str> = listed.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenantId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{args:?}");
        for t in &expected {
            let r = token_request(
                &http,
                &format!("{authority}/{t}/oauth2/v2.0/token"),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &exports["AZURE_CLIENT_ID"]),
                    ("client_secret", &exports["AZURE_CLIENT_SECRET"]),
                    ("scope", GRAPH_SCOPE),
                ],
            )
            .await;
            assert_eq!(r.status, 200, "{args:?} {t}: {}", r.text);
            assert_eq!(claims(r.body["access_token"].as_str().unwrap())["tid"], *t);
        }
        child.kill().await.unwrap();
    }
}
