//! The emulator's login side and its knobs: the token endpoint's success and AADSTS errors,
//! discovery and cloud metadata, faults, replication delay, seeding, state persistence, the
//! request log, edits behind the tool's back, reset.

use super::support;

use std::time::{Duration, Instant};

use base64::Engine;
use entraform::emulator::{EmulatorConfig, Faults, start};
use serde_json::{Value, json};
use support::*;

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT-shaped");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn client_credentials_token_success() {
    let env = env().await;
    let emu = &env.emu;
    let r = token_request(
        &env.http,
        &emu.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", emu.operator_client_id()),
            ("client_secret", emu.operator_secret().expose()),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3599);
    assert_eq!(r.body["ext_expires_in"], 3599);
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["tid"], emu.tenant_id());
    assert_eq!(c["appid"], emu.operator_client_id());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert!(
        c["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Application.ReadWrite.All")
    );
    assert!(c["exp"].as_u64().unwrap() > c["iat"].as_u64().unwrap());

    // The tenant may be named by a domain; the scope by az's doubled slash, Graph's appId or
    // the emulator's own Graph origin; the secret may come as HTTP Basic.
    let domain_url = emu.token_url().replace(&emu.tenant_id(), "axelabs.ai");
    for (url, scope) in [
        (domain_url.as_str(), GRAPH_SCOPE.to_string()),
        (
            emu.token_url().as_str(),
            "https://graph.microsoft.com//.default".to_string(),
        ),
        (emu.token_url().as_str(), format!("{GRAPH_APP_ID}/.default")),
        (
            emu.token_url().as_str(),
            format!("{}/.default", emu.graph_url().trim_end_matches("/v1.0")),
        ),
    ] {
        let r = token_request(
            &env.http,
            url,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", emu.operator_client_id()),
                ("client_secret", emu.operator_secret().expose()),
                ("scope", &scope),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{scope}: {}", r.text);
    }
    let r = reply(
        env.http
            .post(emu.token_url())
            .basic_auth(
                emu.operator_client_id(),
                Some(emu.operator_secret().expose()),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ARM (az login needs it) gives a token Graph refuses.
    let arm = get_token(
        &env.http,
        emu,
        emu.operator_client_id(),
        emu.operator_secret().expose(),
        &format!("{}//.default", emu.authority_host()),
    )
    .await
    .unwrap();
    assert_eq!(claims(&arm)["aud"], "https://management.core.windows.net/");
}

#[tokio::test]
async fn token_endpoint_errors_are_the_real_aadsts_codes() {
    let env = env().await;
    let emu = &env.emu;
    let id = emu.operator_client_id();
    let good = emu.operator_secret().expose();
    let form = |client: &str, secret: &str, scope: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), client.to_string()),
            ("client_secret".to_string(), secret.to_string()),
            ("scope".to_string(), scope.to_string()),
        ]
    };
    let send = |url: String, f: Vec<(String, String)>| {
        let http = env.http.clone();
        async move { reply(http.post(url).form(&f).send().await.unwrap()).await }
    };

    let r = send(emu.token_url(), form(id, "wrong-secret", GRAPH_SCOPE)).await;
    assert_login_error(&r, 401, "invalid_client", 7000215);
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("not the client secret ID")
    );
    let r = send(
        emu.token_url(),
        form("0d6f3b7e-1111-4222-8333-944455556666", good, GRAPH_SCOPE),
    )
    .await;
    assert_login_error(&r, 400, "unauthorized_client", 700016);
    let r = send(
        emu.token_url().replace(&emu.tenant_id(), "contoso.example"),
        form(id, good, GRAPH_SCOPE),
    )
    .await;
    assert_login_error(&r, 400, "invalid_request", 90002);
    let r = send(
        emu.token_url().replace(&emu.tenant_id(), "common"),
        form(id, good, GRAPH_SCOPE),
    )
    .await;
    assert_login_error(&r, 400, "invalid_request", 9001023);
    let r = send(emu.token_url(), form(id, "", GRAPH_SCOPE)).await;
    assert_login_error(&r, 401, "invalid_client", 7000218);
    let r = send(
        emu.token_url(),
        form(id, good, "https://graph.microsoft.com/User.Read"),
    )
    .await;
    assert_login_error(&r, 400, "invalid_scope", 70011);
    let r = send(
        emu.token_url(),
        form(id, good, "https://nothing.example.com/.default"),
    )
    .await;
    assert_login_error(&r, 400, "invalid_resource", 500011);
    let r = send(emu.token_url(), vec![("client_id".into(), id.into())]).await;
    assert_login_error(&r, 400, "invalid_request", 900144);
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("'grant_type'")
    );
    // JSON instead of a form is a missing grant_type, as in Entra.
    let r = reply(
        env.http
            .post(emu.token_url())
            .json(&json!({"grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_login_error(&r, 400, "invalid_request", 900144);

    // An app without a service principal cannot get a token.
    let app = env.create_app(json!({"displayName": "no sp"})).await;
    let pw = env
        .call(
            "POST",
            &format!("/applications/{}/addPassword", app["id"].as_str().unwrap()),
            None,
        )
        .await;
    let r = send(
        emu.token_url(),
        form(
            app["appId"].as_str().unwrap(),
            pw.body["secretText"].as_str().unwrap(),
            GRAPH_SCOPE,
        ),
    )
    .await;
    assert_login_error(&r, 400, "invalid_client", 7000229);
}

#[tokio::test]
async fn expired_secrets_get_7000222() {
    let seed = json!({"applications": [{"displayName": "old", "servicePrincipal": true,
        "passwords": [{"displayName": "expired", "secretText": "abc8Q~expired-secret-value-0123456789abcd",
                       "startDateTime": "2020-01-01T00:00:00Z", "endDateTime": "2021-01-01T00:00:00Z"}]}]});
    let env = env_with(EmulatorConfig::default().tls(true).seed(seed)).await;
    let app_id = env
        .get("/applications?$filter=displayName eq 'old'")
        .await
        .body["value"][0]["appId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = token_request(
        &env.http,
        &env.emu.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app_id),
            ("client_secret", "abc8Q~expired-secret-value-0123456789abcd"),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_login_error(&r, 401, "invalid_client", 7000222);
}

#[tokio::test]
async fn replication_delay_hides_new_objects_and_secrets() {
    let env = env().await;
    env.emu
        .set_faults(Faults {
            replication_delay_ms: 700,
            ..Faults::default()
        })
        .unwrap();
    let t0 = Instant::now();
    let r = env
        .call_with(
            "PATCH",
            "/applications(uniqueName='axe-new-mcp')",
            Some(json!({"displayName": "New"})),
            &[("Prefer", "create-if-missing")],
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_str().unwrap().to_string();
    let app_id = r.body["appId"].as_str().unwrap().to_string();
    // Reads and writes addressed to it miss; the SP has no backing application yet; login
    // does not know it (behavior.md §10).
    assert_graph_error(
        &env.get(&format!("/applications/{id}")).await,
        404,
        "Request_ResourceNotFound",
    );
    assert_graph_error(
        &env.call(
            "PATCH",
            &format!("/applications/{id}"),
            Some(json!({"notes": "x"})),
        )
        .await,
        404,
        "Request_ResourceNotFound",
    );
    assert_eq!(
        env.get(&format!("/applications?$filter=appId eq '{app_id}'"))
            .await
            .body["value"],
        json!([])
    );
    let r = env
        .call("POST", "/servicePrincipals", Some(json!({"appId": app_id})))
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(
        r.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );
    // The upsert still finds it (no duplicate is ever created).
    let r = env
        .call_with(
            "PATCH",
            "/applications(uniqueName='axe-new-mcp')",
            Some(json!({"displayName": "New"})),
            &[("Prefer", "create-if-missing")],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(
        t0.elapsed() < Duration::from_millis(700),
        "the checks above ran inside the window"
    );

    tokio::time::sleep(Duration::from_millis(750)).await;
    assert_eq!(env.get(&format!("/applications/{id}")).await.status, 200);
    let r = env
        .call("POST", "/servicePrincipals", Some(json!({"appId": app_id})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let sp_id = r.body["id"].as_str().unwrap().to_string();
    // A grant naming the just-created SP misses it.
    let graph_sp = env.graph_sp_id().await;
    let r = env
        .call("POST", "/oauth2PermissionGrants", Some(json!({"clientId": sp_id, "consentType": "AllPrincipals", "resourceId": graph_sp, "scope": "User.Read"})))
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");

    let r = env
        .call(
            "POST",
            &format!("/applications(appId='{app_id}')/addPassword"),
            None,
        )
        .await;
    // The app is visible now, but its SP is not: wait for it, then check the secret's window.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let r2 = env
        .call(
            "POST",
            &format!("/applications(appId='{app_id}')/addPassword"),
            None,
        )
        .await;
    let secret = r2.body["secretText"].as_str().unwrap();
    let e = get_token(&env.http, &env.emu, &app_id, secret, GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(
        e.0, 401,
        "a new secret is unknown to login for a while: {}",
        e.1
    );
    assert!(
        e.1["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    // The first secret has replicated by now.
    get_token(
        &env.http,
        &env.emu,
        &app_id,
        r.body["secretText"].as_str().unwrap(),
        GRAPH_SCOPE,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(750)).await;
    get_token(&env.http, &env.emu, &app_id, secret, GRAPH_SCOPE)
        .await
        .unwrap();
}

#[tokio::test]
async fn injected_faults_throttle_fail_and_delay() {
    let env = env().await;
    env.emu
        .set_faults(Faults {
            throttle_next: 1,
            error_next: 1,
            retry_after_secs: 2.128,
            ..Faults::default()
        })
        .unwrap();
    let r = env.get("/applications").await;
    assert_graph_error(&r, 429, "TooManyRequests");
    assert_eq!(r.headers["retry-after"], "2.128");
    assert_eq!(r.body["error"]["innerError"]["code"], "429");
    assert_eq!(r.body["error"]["innerError"]["status"], "429");
    let r = env.get("/applications").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "2.128");
    assert_eq!(env.get("/applications").await.status, 200);
    let log = env.emu.requests();
    let faults: Vec<_> = log.iter().filter_map(|r| r.fault.clone()).collect();
    assert_eq!(faults, ["throttle", "error"]);

    // Run-time change over HTTP, without Retry-After.
    let r = reply(
        env.control_request("POST", "/faults")
            .json(&json!({"throttleNext": 1, "retryAfterSecs": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = env.get("/applications").await;
    assert_eq!(r.status, 429);
    assert!(r.headers.get("retry-after").is_none());
    let r = reply(
        env.control_request("POST", "/faults")
            .json(&json!({"throttleRate": 7}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");

    // Latency applies to every request.
    env.emu
        .set_faults(Faults {
            latency_ms: 150,
            ..Faults::default()
        })
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(env.get("/applications").await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn random_faults_reproduce_with_the_same_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let env = env_with(EmulatorConfig::default().tls(true).faults(Faults {
            throttle_rate: 0.3,
            error_rate: 0.2,
            rng_seed: seed,
            retry_after_secs: 0.0,
            ..Faults::default()
        }))
        .await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(env.get("/applications?$select=id").await.status);
        }
        statuses
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert!(
        a.contains(&429) && a.contains(&503) && a.contains(&200),
        "{a:?}"
    );
    assert_ne!(a, run(8).await);
}

#[tokio::test]
async fn discovery_and_cloud_metadata_point_at_the_emulator() {
    let env = env().await;
    let emu = &env.emu;
    let r = reply(
        env.http
            .get(format!(
                "{}/{}/v2.0/.well-known/openid-configuration",
                emu.authority_host(),
                emu.tenant_id()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_endpoint"], emu.token_url());
    assert_eq!(
        r.body["issuer"],
        format!("{}/{}/v2.0", emu.authority_host(), emu.tenant_id())
    );
    let r = reply(
        env.http
            .get(format!(
                "{}/nope.example/v2.0/.well-known/openid-configuration",
                emu.authority_host()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_login_error(&r, 400, "invalid_request", 90002);

    // az builds this URL with a doubled slash (VALIDATORS §f.1).
    let r = reply(
        env.http
            .get(format!(
                "{}//metadata/endpoints?api-version=2022-09-01",
                emu.authority_host()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["authentication"]["loginEndpoint"],
        format!("{}/", emu.authority_host())
    );
    assert_eq!(
        r.body["microsoftGraphResourceId"],
        format!("{}/", emu.graph_url().trim_end_matches("/v1.0"))
    );
    assert_ne!(
        emu.authority_host(),
        emu.graph_url().trim_end_matches("/v1.0"),
        "login and Graph are two origins"
    );
    let r = reply(
        env.http
            .get(format!(
                "{}/subscriptions?api-version=2022-12-01",
                emu.authority_host()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.body, json!({"value": []}));
}

#[tokio::test]
async fn the_request_log_never_holds_a_secret() {
    let env = env().await;
    let (app, _) = env.create_app_with_sp(json!({"displayName": "a"})).await;
    let r = env
        .call_with(
            "POST",
            &format!("/applications/{}/addPassword", app["id"].as_str().unwrap()),
            None,
            &[("client-request-id", "my-correlation")],
        )
        .await;
    let secret = r.body["secretText"].as_str().unwrap().to_string();
    assert_eq!(r.headers["client-request-id"], "my-correlation");
    get_token(
        &env.http,
        &env.emu,
        app["appId"].as_str().unwrap(),
        &secret,
        GRAPH_SCOPE,
    )
    .await
    .unwrap();
    let _ = reply(
        env.http
            .get(env.url("/applications?client_secret=leaky"))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap(),
    )
    .await;

    let log = env.emu.requests();
    let text = serde_json::to_string(&log).unwrap();
    let http_log = reply(
        env.control_request("GET", "/requests")
            .send()
            .await
            .unwrap(),
    )
    .await
    .text;
    for s in env.emu.issued_secrets() {
        assert!(
            !text.contains(s.expose()) && !http_log.contains(s.expose()),
            "a secret reached the request log"
        );
    }
    assert!(!text.contains(&env.token));
    assert!(text.contains("client_secret=***") && !text.contains("leaky"));
    let add = log
        .iter()
        .find(|r| r.path.ends_with("/addPassword"))
        .unwrap();
    assert_eq!(add.status, 200);
    assert_eq!(add.client_request_id, "my-correlation");
    assert!(add.duration_ms >= 0.0 && add.start_ms > 0.0);
    assert!(
        log.iter()
            .any(|r| r.path.ends_with("/oauth2/v2.0/token") && r.method == "POST")
    );
    // Seeded, operator and addPassword secrets are all listed for leak scans.
    assert!(
        env.emu
            .issued_secrets()
            .iter()
            .any(|s| s.expose() == secret)
    );
    assert!(
        env.emu
            .issued_secrets()
            .iter()
            .any(|s| s.expose() == env.emu.operator_secret().expose())
    );
}

#[tokio::test]
async fn frame_seed_looks_made_by_hand() {
    let cfg = EmulatorConfig::default()
        .tls(true)
        .seed_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/frame.seed.json"
        )))
        .unwrap();
    let env = env_with(cfg).await;
    let r = env
        .get("/applications?$filter=identifierUris/any(x:x eq 'https://axe.axelabs.ai/frame/mcp')")
        .await;
    let frame = r.body["value"][0].clone();
    check_schema(&frame, "microsoft.graph.application");
    assert_eq!(frame["appId"], FRAME_APP_ID);
    assert_eq!(
        frame["uniqueName"],
        Value::Null,
        "made by hand: no uniqueName"
    );
    assert_eq!(frame["api"]["requestedAccessTokenVersion"], 2);
    assert_eq!(
        frame["api"]["oauth2PermissionScopes"][0]["value"],
        "mcp.access"
    );
    assert_eq!(
        frame["api"]["oauth2PermissionScopes"][0]["adminConsentDisplayName"],
        "Access Frame MCP"
    );
    assert_eq!(
        frame["web"]["implicitGrantSettings"]["enableIdTokenIssuance"],
        true
    );
    assert_eq!(frame["web"]["redirectUris"].as_array().unwrap().len(), 2);
    assert_eq!(
        frame["requiredResourceAccess"][0]["resourceAccess"][0]["id"],
        USER_READ
    );
    assert_eq!(frame["passwordCredentials"].as_array().unwrap().len(), 1);
    let sp = env
        .get(&format!("/servicePrincipals(appId='{FRAME_APP_ID}')"))
        .await
        .body;
    let grants = env
        .get(&format!(
            "/oauth2PermissionGrants?$filter=clientId eq '{}'",
            sp["id"].as_str().unwrap()
        ))
        .await
        .body;
    let mut scopes: Vec<_> = grants["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["scope"].as_str().unwrap().to_string())
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["User.Read", "mcp.access"]);
    for g in grants["value"].as_array().unwrap() {
        assert_eq!(g["consentType"], "AllPrincipals");
        check_schema(g, "microsoft.graph.oAuth2PermissionGrant");
    }

    // Bad seeds are refused with a reason.
    let bad = env.emu.seed_app(&json!({"applications": [{"displayName": "x", "identifierUris": ["https://evil.example.com/x"]}]}));
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("HostNameNotOnVerifiedDomain")
    );
    assert!(env.emu.seed_app(&json!({"apps": []})).is_err());
}

#[tokio::test]
async fn edits_behind_the_back_and_reset() {
    let cfg = EmulatorConfig::default()
        .tls(true)
        .seed_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/frame.seed.json"
        )))
        .unwrap();
    let env = env_with(cfg).await;
    // Drift by hand: bypasses the disable-first rule on purpose.
    env.emu
        .edit_app(
            FRAME_APP_ID,
            &json!({"displayName": "Frame (edited)", "api": {"oauth2PermissionScopes": []}}),
        )
        .unwrap();
    let frame = env
        .get(&format!("/applications(appId='{FRAME_APP_ID}')"))
        .await
        .body;
    assert_eq!(frame["displayName"], "Frame (edited)");
    assert_eq!(
        frame["api"]["requestedAccessTokenVersion"], 2,
        "other properties kept"
    );
    let sp = env
        .get(&format!("/servicePrincipals(appId='{FRAME_APP_ID}')"))
        .await
        .body;
    assert_eq!(sp["displayName"], "Frame (edited)");
    assert!(
        env.emu
            .edit_app("0d6f3b7e-1111-4222-8333-944455556666", &json!({}))
            .is_err()
    );
    // Over HTTP too.
    let r = reply(
        env.control_request("PATCH", &format!("/applications/{FRAME_APP_ID}"))
            .json(&json!({"notes": "hand"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let state = reply(env.control_request("GET", "/state").send().await.unwrap())
        .await
        .body;
    let apps = state["applications"].as_array().unwrap();
    assert!(apps.iter().any(|a| a["notes"] == "hand"));
    assert_eq!(state["tenantId"], env.emu.tenant_id());

    env.create_app(json!({"displayName": "temp"})).await;
    let r = reply(env.control_request("POST", "/reset").send().await.unwrap()).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        env.get("/applications?$filter=displayName eq 'temp'")
            .await
            .body["value"],
        json!([])
    );
    let frame = env
        .get(&format!("/applications(appId='{FRAME_APP_ID}')"))
        .await
        .body;
    assert_eq!(frame["displayName"], "Frame MCP");
    assert!(env.emu.requests().len() <= 2, "the log restarts at reset");
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let cfg = || {
        EmulatorConfig::default()
            .tls(true)
            .verified_domain("axelabs.ai")
            .state_file(&path)
    };
    let env = env_with(cfg()).await;
    let old_secret = env.emu.operator_secret().expose().to_string();
    let app = env
        .create_app(
            json!({"displayName": "kept", "identifierUris": ["https://axe.axelabs.ai/kept/mcp"]}),
        )
        .await;
    let (with_sp, _) = env
        .create_app_with_sp(json!({"displayName": "with sp"}))
        .await;
    let pw = env
        .call(
            "POST",
            &format!(
                "/applications/{}/addPassword",
                with_sp["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let app_secret = pw.body["secretText"].as_str().unwrap().to_string();
    let operator = env.emu.operator_client_id().to_string();
    let Env { emu, .. } = env;
    emu.shutdown().await;
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        !saved.contains(&app_secret) && !saved.contains(&old_secret),
        "no secret values at rest"
    );

    let env = env_with(cfg()).await;
    let r = env
        .get(&format!("/applications/{}", app["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["identifierUris"],
        json!(["https://axe.axelabs.ai/kept/mcp"])
    );
    assert_eq!(
        env.emu.operator_client_id(),
        operator,
        "the operator app is kept"
    );
    let e = get_token(&env.http, &env.emu, &operator, &old_secret, GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(e.0, 401, "its secret is replaced at start");
    get_token(
        &env.http,
        &env.emu,
        with_sp["appId"].as_str().unwrap(),
        &app_secret,
        GRAPH_SCOPE,
    )
    .await
    .expect("secrets made before the restart still log in (digests persist)");

    std::fs::write(&path, "not json").unwrap();
    let err = start(cfg()).await.unwrap_err();
    assert!(err.to_string().contains("invalid state file"), "{err}");
    assert!(err.hint().is_some());
}

/// VALIDATORS.md §g: azure_identity's ClientSecretCredential, pointed at the emulator through a
/// custom cloud and trusting its CA through the transport, gets a token Graph accepts; a wrong
/// secret fails with the AADSTS7000215 text.
#[tokio::test]
async fn azure_identity_client_secret_credential_works_against_it() {
    use std::sync::Arc;

    use azure_core::credentials::{Secret as AzSecret, TokenCredential};

    let env = env().await;
    let credential = |secret: String| {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = env.emu.authority_host();
        let client_options = azure_core::http::ClientOptions {
            cloud: Some(Arc::new(custom.into())),
            transport: Some(azure_core::http::Transport::new(Arc::new(env.http.clone()))),
            ..Default::default()
        };
        let options = azure_identity::ClientSecretCredentialOptions { client_options };
        azure_identity::ClientSecretCredential::new(
            &env.emu.tenant_id(),
            env.emu.operator_client_id().to_string(),
            AzSecret::new(secret),
            Some(options),
        )
        .unwrap()
    };
    let good = credential(env.emu.operator_secret().expose().to_string());
    let token = good
        .get_token(&[GRAPH_SCOPE], None)
        .await
        .expect("token through azure_identity");
    let r = env
        .call_as(
            token.token.secret(),
            "GET",
            "/applications?$top=1",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let bad = credential("not-the-secret".to_string());
    let err = bad
        .get_token(&[GRAPH_SCOPE], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS7000215"), "{err}");
}
