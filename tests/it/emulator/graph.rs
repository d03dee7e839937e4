//! The emulator's Graph side: one test per rule of behavior.md we reproduce, asserting status,
//! `error.code` and the envelope; upsert; PATCH semantics; service principals; grants; `$batch`;
//! authentication; bad input. Response bodies are checked against the Graph schemas.

use super::support;

use entraform::emulator::{EmulatorConfig, Faults};
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn post_application_returns_the_full_object_with_graph_defaults() {
    let env = env().await;
    let app = env
        .create_app(json!({"displayName": "Blueprint MCP", "keyCredentials": []}))
        .await;
    check_schema(&app, "microsoft.graph.application");
    assert_eq!(
        app["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#applications/$entity"
    );
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert_eq!(app["api"]["requestedAccessTokenVersion"], Value::Null);
    assert_eq!(app["identifierUris"], json!([]));
    assert_eq!(
        app["web"]["implicitGrantSettings"]["enableIdTokenIssuance"],
        false
    );
    assert_eq!(app["passwordCredentials"], json!([]));
    assert_eq!(app["uniqueName"], Value::Null);
    let id = app["id"].as_str().unwrap();
    let app_id = app["appId"].as_str().unwrap();

    for path in [
        format!("/applications/{id}"),
        format!("/applications(appId='{app_id}')"),
    ] {
        let r = env.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["id"], id);
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json;odata.metadata=minimal")
        );
        assert_eq!(r.headers["odata-version"], "4.0");
    }
    let r = env
        .get(&format!("/applications/{id}?$select=id,appId,displayName"))
        .await;
    assert_eq!(
        r.body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#applications(id,appId,displayName)/$entity"
    );
    assert_eq!(r.body.as_object().unwrap().len(), 4);

    let r = env
        .get(&format!("/applications?$filter=appId eq '{app_id}'"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    for item in r.body["value"].as_array().unwrap() {
        check_schema(item, "microsoft.graph.application");
    }
    let r = env
        .get("/applications?$filter=startswith(displayName,'blueprint')")
        .await;
    assert_eq!(r.body["value"][0]["id"], id);
    let r = env
        .get("/applications?$filter=appId eq '00000000-0000-0000-0000-000000000001'")
        .await;
    assert_eq!(r.body["value"], json!([]));
}

#[tokio::test]
async fn missing_and_malformed_ids_get_documented_errors() {
    let env = env().await;
    let r = env
        .get("/applications/5b3a4e0c-0000-4000-8000-000000000000")
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    let r = env
        .get("/applications(appId='5b3a4e0c-0000-4000-8000-000000000000')")
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    let r = env.get("/applications/not-a-guid").await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid object identifier 'not-a-guid'")
    );
    let r = env
        .call(
            "DELETE",
            "/applications/5b3a4e0c-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn upsert_by_unique_name_is_201_then_204_and_404_without_prefer() {
    let env = env().await;
    let path = "/applications(uniqueName='axe-blueprint-mcp')";
    let body = json!({"displayName": "Blueprint MCP"});
    let r = env.call("PATCH", path, Some(body.clone())).await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");

    let prefer = [("Prefer", "create-if-missing")];
    let r = env
        .call_with("PATCH", path, Some(body.clone()), &prefer)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_schema(&r.body, "microsoft.graph.application");
    assert_eq!(r.body["uniqueName"], "axe-blueprint-mcp");
    let id = r.body["id"].clone();

    let r = env
        .call_with(
            "PATCH",
            path,
            Some(json!({"displayName": "Blueprint MCP 2"})),
            &prefer,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = env.get(path).await;
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["displayName"], "Blueprint MCP 2");

    // uniqueName is immutable once set.
    let r = env
        .call(
            "PATCH",
            &format!("/applications/{}", id.as_str().unwrap()),
            Some(json!({"uniqueName": "other"})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // Upsert creation still needs a displayName.
    let r = env
        .call_with(
            "PATCH",
            "/applications(uniqueName='x-y')",
            Some(json!({"notes": "n"})),
            &prefer,
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
}

#[tokio::test]
async fn identifier_uris_must_use_a_verified_domain_on_v1_apps() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let app_id = app["appId"].as_str().unwrap();

    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["https://evil.example.com/x/mcp"]})),
        )
        .await;
    assert_graph_error(&r, 400, "HostNameNotOnVerifiedDomain");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://evil.example.com/x/mcp")
    );
    // A subdomain of a verified domain is fine (behavior.md §3.4).
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["https://axe.axelabs.ai/blueprint/mcp"]})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // So is the tenant's initial domain and api://{appId}.
    let r = env
        .call("PATCH", &p, Some(json!({"identifierUris": ["https://axe.axelabs.ai/blueprint/mcp", format!("api://{app_id}"), "https://entraformemulator.onmicrosoft.com/x"]})))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The 2025 default policy: a new api:// URI on a v1 app must contain the app or tenant id.
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["api://blueprint"]})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // A GUID after api:// must be the appId or the tenant id.
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["api://0d6f3b7e-1111-4222-8333-944455556666"]})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // Trailing slash is invalid.
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["https://axe.axelabs.ai/x/"]})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // With v2 tokens any domain is accepted, even in the same PATCH.
    let r = env
        .call("PATCH", &p, Some(json!({"api": {"requestedAccessTokenVersion": 2}, "identifierUris": ["https://evil.example.com/x/mcp"]})))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[tokio::test]
async fn identifier_uris_are_unique_in_the_tenant() {
    let env = env().await;
    env.create_app(json!({"displayName": "a", "identifierUris": ["https://axe.axelabs.ai/a/mcp"]}))
        .await;
    let r = env
        .call(
            "POST",
            "/applications",
            Some(json!({"displayName": "b", "identifierUris": ["https://AXE.axelabs.ai/a/mcp"]})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(r.body["error"]["details"][0]["code"], "ObjectConflict");
    assert_eq!(r.body["error"]["details"][0]["target"], "identifierUris");
}

#[tokio::test]
async fn token_version_must_be_2_for_personal_account_audiences() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"signInAudience": "AzureADandPersonalMicrosoftAccount"})),
        )
        .await;
    assert_graph_error(&r, 400, "InvalidAccessTokenVersion");
    assert_eq!(
        r.body["error"]["message"],
        "One or more properties contains invalid values."
    );
    let r = env
        .call("PATCH", &p, Some(json!({"api": {"requestedAccessTokenVersion": 2}, "signInAudience": "AzureADandPersonalMicrosoftAccount"})))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = env
        .call(
            "POST",
            "/applications",
            Some(json!({"displayName": "p", "signInAudience": "PersonalMicrosoftAccount"})),
        )
        .await;
    assert_graph_error(&r, 400, "InvalidAccessTokenVersion");
    let r = env
        .call("PATCH", &p, Some(json!({"signInAudience": "Everyone"})))
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
}

fn scope(id: &str, name: &str, enabled: bool) -> Value {
    json!({"id": id, "value": "mcp.access", "type": "User", "isEnabled": enabled,
           "adminConsentDisplayName": name, "userConsentDisplayName": name})
}

#[tokio::test]
async fn an_enabled_scope_must_be_disabled_before_it_changes_or_goes() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let id = "3b9e6c1d-2f4a-4d8b-b7e2-5a1c9f0d6e73";
    let set = |scopes: Value| json!({"api": {"oauth2PermissionScopes": scopes}});
    assert_eq!(
        env.call("PATCH", &p, Some(set(json!([scope(id, "Access A", true)]))))
            .await
            .status,
        204
    );
    // Re-sending the same enabled scope is not a change.
    assert_eq!(
        env.call("PATCH", &p, Some(set(json!([scope(id, "Access A", true)]))))
            .await
            .status,
        204
    );

    let r = env
        .call("PATCH", &p, Some(set(json!([scope(id, "Access B", true)]))))
        .await;
    assert_graph_error(&r, 400, "CannotDeleteOrUpdateEnabledEntitlement");
    let r = env.call("PATCH", &p, Some(set(json!([])))).await;
    assert_graph_error(&r, 400, "CannotDeleteOrUpdateEnabledEntitlement");
    // Disabling and changing in the same request is still a change of an enabled scope.
    let r = env
        .call(
            "PATCH",
            &p,
            Some(set(json!([scope(id, "Access B", false)]))),
        )
        .await;
    assert_graph_error(&r, 400, "CannotDeleteOrUpdateEnabledEntitlement");

    assert_eq!(
        env.call(
            "PATCH",
            &p,
            Some(set(json!([scope(id, "Access A", false)])))
        )
        .await
        .status,
        204
    );
    let r = env.get(&p).await;
    assert_eq!(
        r.body["api"]["oauth2PermissionScopes"][0]["isEnabled"],
        false
    );
    check_schema(&r.body, "microsoft.graph.application");
    assert_eq!(
        env.call("PATCH", &p, Some(set(json!([scope(id, "Access B", true)]))))
            .await
            .status,
        204
    );
    assert_eq!(
        env.call(
            "PATCH",
            &p,
            Some(set(json!([scope(id, "Access B", false)])))
        )
        .await
        .status,
        204
    );
    assert_eq!(
        env.call("PATCH", &p, Some(set(json!([])))).await.status,
        204
    );

    // The SP mirrors the app's scopes.
    let r = env
        .call("PATCH", &p, Some(set(json!([scope(id, "Access C", true)]))))
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .call(
            "POST",
            "/servicePrincipals",
            Some(json!({"appId": app["appId"]})),
        )
        .await;
    assert_eq!(
        r.body["oauth2PermissionScopes"][0]["adminConsentDisplayName"],
        "Access C"
    );
}

#[tokio::test]
async fn redirect_uris_must_be_https_except_loopback() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let web = |uris: Value| json!({"web": {"redirectUris": uris}});
    let r = env
        .call(
            "PATCH",
            &p,
            Some(web(json!(["http://claude.ai/api/mcp/auth_callback"]))),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(
        r.body["error"]["message"],
        "Invalid value specified for property 'web' of resource 'Application'."
    );
    let r = env.call("PATCH", &p, Some(web(json!(["not a url"])))).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call(
            "PATCH",
            &p,
            Some(web(json!([
                "http://localhost:8400/cb",
                "https://claude.ai/api/mcp/auth_callback"
            ]))),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[tokio::test]
async fn patch_replaces_collections_and_merges_complex_properties() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a", "web": {"redirectUris": ["https://a.example/cb", "https://b.example/cb"]}})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"web": {"redirectUris": ["https://c.example/cb"]}})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"web": {"implicitGrantSettings": {"enableIdTokenIssuance": true}}})),
        )
        .await;
    assert_eq!(r.status, 204);
    let got = env.get(&p).await.body;
    assert_eq!(got["web"]["redirectUris"], json!(["https://c.example/cb"]));
    assert_eq!(
        got["web"]["implicitGrantSettings"],
        json!({"enableAccessTokenIssuance": false, "enableIdTokenIssuance": true})
    );
    let r = env
        .call("PATCH", &p, Some(json!({"requiredResourceAccess": [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": USER_READ, "type": "Scope"}]}]})))
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .call("PATCH", &p, Some(json!({"requiredResourceAccess": [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": [{"id": USER_READ, "type": "Delegated"}]}]})))
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
}

#[tokio::test]
async fn bad_bodies_get_graph_errors_not_panics() {
    let env = env().await;
    let app = env.create_app(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());

    let r = env
        .call("PATCH", &p, Some(json!({"displayNme": "typo"})))
        .await;
    assert_graph_error(&r, 400, "BadRequest");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'displayNme' does not exist")
    );
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"api": {"requestedAccessTokenVersionn": 2}})),
        )
        .await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"passwordCredentials": [{"displayName": "x"}]})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": "https://axe.axelabs.ai/x"})),
        )
        .await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"appId": "3b9e6c1d-2f4a-4d8b-b7e2-5a1c9f0d6e73"})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call("POST", "/applications", Some(json!({"notes": "no name"})))
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call(
            "POST",
            "/applications",
            Some(json!(["not", "an", "object"])),
        )
        .await;
    assert_graph_error(&r, 400, "BadRequest");

    let raw = |ct: &'static str, body: &'static str| {
        env.http
            .patch(env.url(&p))
            .bearer_auth(&env.token)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let r = reply(raw("application/json", "{\"displayName\": ").await.unwrap()).await;
    assert_graph_error(&r, 400, "BadRequest");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unable to read JSON request payload")
    );
    let r = reply(raw("text/plain", "{\"displayName\": \"x\"}").await.unwrap()).await;
    assert_graph_error(&r, 415, "UnsupportedMediaType");
    let big = format!("{{\"notes\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let r = reply(
        env.http
            .patch(env.url(&p))
            .bearer_auth(&env.token)
            .header("Content-Type", "application/json")
            .body(big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_graph_error(&r, 413, "Request_EntityTooLarge");

    let r = env.get("/users").await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = env.get("/applications?$filter=appId eq").await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = env.get("/applications?$filter=secretSauce eq 'x'").await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = env.get("/applications?$select=nope").await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = env.call("PUT", &p, Some(json!({}))).await;
    assert_graph_error(&r, 405, "Request_BadRequest");
    let r = reply(
        env.http
            .get(format!("{}/nowhere", env.emu.authority_host()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body["error"]["code"].is_string() && r.body["error"]["message"].is_string());
}

#[tokio::test]
async fn add_password_returns_a_40_character_secret_once() {
    let env = env().await;
    let (app, _sp) = env.create_app_with_sp(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let r = env
        .call(
            "POST",
            &format!("{p}/addPassword"),
            Some(json!({"passwordCredential": {"displayName": "entraform"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_schema(&r.body, "microsoft.graph.passwordCredential");
    assert_eq!(
        r.body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.passwordCredential"
    );
    let secret = r.body["secretText"].as_str().unwrap().to_string();
    let s = entraform::secret::Secret::new(secret.clone());
    entraform::secret::check_shape(&s).unwrap();
    assert_eq!(s.len(), 40);
    assert_eq!(r.body["hint"], &secret[..3]);
    let key_id = r.body["keyId"].as_str().unwrap().to_string();
    let start = time::OffsetDateTime::parse(
        r.body["startDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let end = time::OffsetDateTime::parse(
        r.body["endDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (end - start).whole_days(),
        730,
        "default lifetime is two years"
    );

    // Listed without the value; usable at the token endpoint.
    let got = env.get(&p).await.body;
    assert_eq!(got["passwordCredentials"][0]["secretText"], Value::Null);
    assert_eq!(got["passwordCredentials"][0]["hint"], &secret[..3]);
    assert!(!env.get(&p).await.text.contains(&secret));
    let app_id = app["appId"].as_str().unwrap();
    get_token(
        &env.http,
        &env.emu,
        app_id,
        &secret,
        "https://graph.microsoft.com/.default",
    )
    .await
    .unwrap();
    assert!(
        env.emu
            .issued_secrets()
            .iter()
            .any(|x| x.expose() == secret)
    );

    // az sends displayName null, and no body at all is fine too (VALIDATORS §f.6).
    let r = env
        .call(
            "POST",
            &format!("{p}/addPassword"),
            Some(json!({"passwordCredential": {"displayName": null}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = env.call("POST", &format!("{p}/addPassword"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = env
        .call(
            "POST",
            &format!("{p}/removePassword"),
            Some(json!({"keyId": key_id})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let e = get_token(
        &env.http,
        &env.emu,
        app_id,
        &secret,
        "https://graph.microsoft.com/.default",
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 401);
    let r = env
        .call(
            "POST",
            &format!("{p}/removePassword"),
            Some(json!({"keyId": key_id})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call(
            "POST",
            &format!("/applications(appId='{app_id}')/microsoft.graph.addPassword"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "alternate key + qualified action name: {}",
        r.text
    );
}

#[tokio::test]
async fn service_principals_one_per_app_with_names_in_sync() {
    let env = env().await;
    let app = env
        .create_app(json!({"displayName": "Blueprint MCP", "identifierUris": ["https://axe.axelabs.ai/blueprint/mcp"]}))
        .await;
    let app_id = app["appId"].as_str().unwrap();
    let r = env
        .call("POST", "/servicePrincipals", Some(json!({"appId": app_id})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_schema(&r.body, "microsoft.graph.servicePrincipal");
    assert_eq!(
        r.body["servicePrincipalNames"],
        json!([app_id, "https://axe.axelabs.ai/blueprint/mcp"])
    );
    assert_eq!(r.body["appDisplayName"], "Blueprint MCP");
    let sp_id = r.body["id"].as_str().unwrap().to_string();

    let r = env
        .call("POST", "/servicePrincipals", Some(json!({"appId": app_id})))
        .await;
    assert_graph_error(&r, 409, "Request_MultipleObjectsWithSameKeyValue");
    let r = env
        .call(
            "POST",
            "/servicePrincipals",
            Some(json!({"appId": "0d6f3b7e-1111-4222-8333-944455556666"})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(
        r.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );
    assert_eq!(r.body["error"]["details"][0]["target"], "appId");

    // Found by App ID URI in one round trip; renames follow the app.
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let r = env
        .call(
            "PATCH",
            &p,
            Some(json!({"identifierUris": ["https://axe.axelabs.ai/blueprint2/mcp"]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .get("/servicePrincipals?$filter=servicePrincipalNames/any(x:x eq 'https://axe.axelabs.ai/blueprint2/mcp')")
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.body["value"][0]["id"], sp_id.as_str());
    let r = env
        .get(&format!("/servicePrincipals(appId='{app_id}')"))
        .await;
    assert_eq!(r.body["id"], sp_id.as_str());
    let r = env
        .get(&format!("/servicePrincipals?$filter=appId eq '{app_id}'"))
        .await;
    assert_eq!(r.body["value"][0]["id"], sp_id.as_str());

    // The Graph SP is pre-seeded with User.Read.
    let r = env
        .get(&format!("/servicePrincipals(appId='{GRAPH_APP_ID}')"))
        .await;
    check_schema(&r.body, "microsoft.graph.servicePrincipal");
    let scopes = r.body["oauth2PermissionScopes"].as_array().unwrap();
    assert!(
        scopes
            .iter()
            .any(|s| s["id"] == USER_READ && s["value"] == "User.Read")
    );

    // Deleting the app deletes its SP (behavior.md §4.5).
    assert_eq!(env.call("DELETE", &p, None).await.status, 204);
    let r = env.get(&format!("/servicePrincipals/{sp_id}")).await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn grants_have_derived_ids_and_reject_duplicates() {
    let env = env().await;
    let (_app, sp) = env
        .create_app_with_sp(json!({"displayName": "a", "api": {"oauth2PermissionScopes": [scope("3b9e6c1d-2f4a-4d8b-b7e2-5a1c9f0d6e73", "Access A", true)]}}))
        .await;
    let sp_id = sp["id"].as_str().unwrap();
    let graph_sp = env.graph_sp_id().await;
    let body = json!({"clientId": sp_id, "consentType": "AllPrincipals", "resourceId": graph_sp, "scope": "User.Read"});
    let r = env
        .call("POST", "/oauth2PermissionGrants", Some(body.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    check_schema(&r.body, "microsoft.graph.oAuth2PermissionGrant");
    assert_eq!(r.body["principalId"], Value::Null);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 43, "unpadded base64url of two GUIDs");
    assert!(!id.contains('=') && !id.contains('+') && !id.contains('/'));

    let r = env
        .call("POST", "/oauth2PermissionGrants", Some(body))
        .await;
    assert_graph_error(&r, 409, "Request_MultipleObjectsWithSameKeyValue");
    assert_eq!(
        r.body["error"]["message"],
        "Permission entry already exists."
    );

    // mcp.access on the app's own SP.
    let own = json!({"clientId": sp_id, "consentType": "AllPrincipals", "resourceId": sp_id, "scope": "mcp.access"});
    assert_eq!(
        env.call("POST", "/oauth2PermissionGrants", Some(own))
            .await
            .status,
        201
    );
    let r = env
        .get(&format!(
            "/oauth2PermissionGrants?$filter=clientId eq '{sp_id}'"
        ))
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = env
        .get(&format!("/oauth2PermissionGrants?$filter=clientId eq '{sp_id}' and resourceId eq '{graph_sp}' and consentType eq 'AllPrincipals'"))
        .await;
    assert_eq!(r.body["value"][0]["id"], id.as_str());

    let r = env
        .call(
            "PATCH",
            &format!("/oauth2PermissionGrants/{id}"),
            Some(json!({"scope": "User.Read openid"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        env.get(&format!("/oauth2PermissionGrants/{id}")).await.body["scope"],
        "User.Read openid"
    );
    let r = env
        .call(
            "PATCH",
            &format!("/oauth2PermissionGrants/{id}"),
            Some(json!({"scope": "Nope.Nothing"})),
        )
        .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = env
        .call("POST", "/oauth2PermissionGrants", Some(json!({"clientId": sp_id, "consentType": "AllPrincipals", "resourceId": "0d6f3b7e-1111-4222-8333-944455556666", "scope": "x"})))
        .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    assert_eq!(
        env.call("DELETE", &format!("/oauth2PermissionGrants/{id}"), None)
            .await
            .status,
        204
    );
    let r = env.get(&format!("/oauth2PermissionGrants/{id}")).await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn an_operator_without_the_grant_role_is_denied() {
    let env = env().await;
    let limited = env.emu.limited_operator();
    let token = get_token(
        &env.http,
        &env.emu,
        &limited.client_id,
        limited.secret().expose(),
        "https://graph.microsoft.com/.default",
    )
    .await
    .unwrap();
    let (_app, sp) = env.create_app_with_sp(json!({"displayName": "a"})).await;
    let graph_sp = env.graph_sp_id().await;
    let r = env
        .call_as(&token, "POST", "/oauth2PermissionGrants", Some(json!({"clientId": sp["id"], "consentType": "AllPrincipals", "resourceId": graph_sp, "scope": "User.Read"})), &[])
        .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    assert_eq!(
        r.body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    // It can still manage applications.
    let r = env
        .call_as(
            &token,
            "POST",
            "/applications",
            Some(json!({"displayName": "b"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn bearer_tokens_are_required_and_checked() {
    let env = env_with(
        EmulatorConfig::default()
            .tls(true)
            .token_lifetime(std::time::Duration::from_secs(1)),
    )
    .await;
    let r = reply(env.http.get(env.url("/applications")).send().await.unwrap()).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(r.body["error"]["message"], "Access token is empty.");
    let www = r.headers["www-authenticate"].to_str().unwrap();
    assert!(www.starts_with("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\""), "{www}");
    let r = env
        .call_as("garbage", "GET", "/applications", None, &[])
        .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    // A well-formed token the emulator never issued.
    let forged = format!(
        "{}.{}.x",
        "eyJhbGciOiJub25lIn0", "eyJyb2xlcyI6WyJEaXJlY3RvcnkuUmVhZFdyaXRlLkFsbCJdfQ"
    );
    let r = env
        .call_as(&forged, "GET", "/applications", None, &[])
        .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    // An ARM token is for another audience.
    let arm = get_token(
        &env.http,
        &env.emu,
        env.emu.operator_client_id(),
        env.emu.operator_secret().expose(),
        "https://management.core.windows.net//.default",
    )
    .await
    .unwrap();
    let r = env.call_as(&arm, "GET", "/applications", None, &[]).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audience")
    );
    // A token without Graph app roles is authenticated but not authorized.
    let (app, _) = env
        .create_app_with_sp(json!({"displayName": "plain"}))
        .await;
    let pw = env
        .call(
            "POST",
            &format!("/applications/{}/addPassword", app["id"].as_str().unwrap()),
            None,
        )
        .await;
    let plain = get_token(
        &env.http,
        &env.emu,
        app["appId"].as_str().unwrap(),
        pw.body["secretText"].as_str().unwrap(),
        "https://graph.microsoft.com/.default",
    )
    .await
    .unwrap();
    let r = env.call_as(&plain, "GET", "/applications", None, &[]).await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    // Expiry.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = env.get("/applications").await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(
        r.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
}

#[tokio::test]
async fn batch_runs_dependencies_in_order_and_fails_dependents() {
    let env = env().await;
    let prefer = json!({"Content-Type": "application/json", "Prefer": "create-if-missing"});
    let batch = json!({"requests": [
        {"id": "3", "method": "GET", "url": "/applications(uniqueName='axe-b-mcp')?$select=id,uniqueName", "dependsOn": ["2"]},
        {"id": "1", "method": "PATCH", "url": "/applications(uniqueName='axe-b-mcp')", "headers": prefer, "body": {"displayName": "B"}},
        {"id": "2", "method": "PATCH", "url": "applications(uniqueName='axe-b-mcp')", "headers": {"Content-Type": "application/json"}, "body": {"notes": "second"}, "dependsOn": ["1"]},
        {"id": "4", "method": "GET", "url": "/applications/5b3a4e0c-0000-4000-8000-000000000000"},
        {"id": "5", "method": "GET", "url": "/applications", "dependsOn": ["4"]},
    ]});
    let r = env.call("POST", "/$batch", Some(batch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let responses = r.body["responses"].as_array().unwrap();
    let by = |id: &str| responses.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(by("1")["status"], 201);
    check_schema(&by("1")["body"], "microsoft.graph.application");
    assert_eq!(by("2")["status"], 204);
    assert!(by("2").get("body").is_none(), "204 has no body");
    assert_eq!(by("3")["status"], 200);
    assert_eq!(by("3")["body"]["uniqueName"], "axe-b-mcp");
    assert_eq!(by("4")["status"], 404);
    assert_eq!(by("4")["body"]["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(by("5")["status"], 424);
    assert!(
        by("1")["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );

    // The log keeps the batch with its inner requests, in execution order.
    let log = env.emu.requests();
    let b = log.iter().find(|x| x.batch).unwrap();
    let ids: Vec<_> = b
        .inner
        .iter()
        .map(|x| x.batch_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    assert_eq!(b.inner[0].method, "PATCH");
    assert_eq!(b.inner[3].status, 404);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/applications"}))
        .collect();
    let r = env
        .call("POST", "/$batch", Some(json!({"requests": too_many})))
        .await;
    assert_graph_error(&r, 400, "BadRequest");
    assert_eq!(
        r.body["error"]["message"],
        "Number of requests inside batch exceeds the limit."
    );
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/applications"}, {"id": "A", "method": "GET", "url": "/applications"}]});
    assert_graph_error(
        &env.call("POST", "/$batch", Some(dup)).await,
        400,
        "BadRequest",
    );
    let no_ct = json!({"requests": [{"id": "a", "method": "POST", "url": "/applications", "body": {"displayName": "x"}}]});
    assert_graph_error(
        &env.call("POST", "/$batch", Some(no_ct)).await,
        400,
        "BadRequest",
    );
    let cycle = json!({"requests": [{"id": "a", "method": "GET", "url": "/applications", "dependsOn": ["b"]}, {"id": "b", "method": "GET", "url": "/applications", "dependsOn": ["a"]}]});
    assert_graph_error(
        &env.call("POST", "/$batch", Some(cycle)).await,
        400,
        "BadRequest",
    );
    let r = reply(
        env.http
            .post(env.url("/$batch"))
            .json(&json!({"requests": []}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
}

#[tokio::test]
async fn batch_inner_requests_are_throttled_individually() {
    let env = env().await;
    env.emu
        .set_faults(Faults {
            throttle_next: 1,
            retry_after_secs: 2.5,
            ..Faults::default()
        })
        .unwrap();
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/applications"},
        {"id": "2", "method": "GET", "url": "/applications"},
    ]});
    let r = env.call("POST", "/$batch", Some(batch)).await;
    assert_eq!(r.status, 200);
    let responses = r.body["responses"].as_array().unwrap();
    assert_eq!(responses[0]["status"], 429);
    assert_eq!(responses[0]["headers"]["Retry-After"], "2.5");
    assert_eq!(responses[0]["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(responses[1]["status"], 200);
}

#[tokio::test]
async fn a_lost_answer_leaves_the_change_made() {
    // `loseAnswerNext`: the request runs, then the client gets a 504 (or no answer at all).
    let env = env().await;
    let (app, _sp) = env.create_app_with_sp(json!({"displayName": "a"})).await;
    let p = format!("/applications/{}", app["id"].as_str().unwrap());
    let creds = |env: &Env| {
        let state = env.emu.state_json();
        state["applications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == app["id"])
            .unwrap()["passwordCredentials"]
            .as_array()
            .map_or(0, Vec::len)
    };
    env.emu
        .set_faults(Faults {
            lose_answer_next: 1,
            matching: Some("addPassword".into()),
            ..Faults::default()
        })
        .unwrap();
    // Not matching: answered as usual, and the counter is not used up.
    assert_eq!(env.get(&p).await.status, 200);
    let add = json!({"passwordCredential": {"displayName": "entraform"}});
    let r = env
        .call("POST", &format!("{p}/addPassword"), Some(add.clone()))
        .await;
    assert_graph_error(&r, 504, "UnknownError");
    assert!(r.body.get("secretText").is_none(), "{}", r.text);
    assert_eq!(creds(&env), 1, "the credential was made all the same");
    let log = env.emu.requests();
    assert_eq!(log.last().unwrap().fault.as_deref(), Some("lost_answer"));

    // Reset: the connection closes without a complete answer.
    env.emu
        .set_faults(Faults {
            lose_answer_next: 1,
            lost_answer: entraform::emulator::LostAnswer::Reset,
            matching: Some("addPassword".into()),
            ..Faults::default()
        })
        .unwrap();
    let sent = env
        .http
        .post(env.url(&format!("{p}/addPassword")))
        .bearer_auth(&env.token)
        .json(&add)
        .send()
        .await;
    let answered = match sent {
        Ok(resp) => resp.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "no complete answer after a reset");
    assert_eq!(creds(&env), 2, "the credential was made all the same");
    // The next request is answered normally (on a new connection).
    let r = env
        .call("POST", &format!("{p}/addPassword"), Some(add))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(creds(&env), 3);
}

#[tokio::test]
async fn list_pages_with_next_link_and_top() {
    let env = env().await;
    for i in 0..5 {
        env.create_app(json!({"displayName": format!("page-{i}")}))
            .await;
    }
    let r = env
        .get("/applications?$filter=startswith(displayName,'page-')&$top=2&$count=true")
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["@odata.count"], 5);
    let mut next = r.body["@odata.nextLink"].as_str().unwrap().to_string();
    let mut seen = 2;
    loop {
        let r = reply(
            env.http
                .get(&next)
                .bearer_auth(&env.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen += r.body["value"].as_array().unwrap().len();
        match r.body["@odata.nextLink"].as_str() {
            Some(n) => next = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    assert_graph_error(&env.get("/applications?$top=1000").await, 400, "BadRequest");
}
