//! The login side: the v2.0 token endpoint (client credentials,
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>), OIDC discovery,
//! and the bits of ARM the Azure CLI reads (cloud metadata, subscriptions;
//! docs/emulator.md, "The real Azure CLI against it").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::errors::{Ctx, GraphError};
use super::state::{GRAPH_APP_ID, State, digest_hex};
use super::util::{Headers, Resp, login_timestamp, new_guid, now_ms, parse_time};
use super::{Inner, Shared, TokenInfo};
use crate::Secret;

pub(crate) fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    _query: &str,
    headers: &Headers,
    body: &[u8],
    ctx: &Ctx,
) -> Resp {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["metadata", "endpoints"]) | ("GET", ["arm", "metadata", "endpoints"]) => {
            Resp::json(200, cloud_metadata(shared))
        }
        ("GET", ["subscriptions"]) | ("GET", ["arm", "subscriptions"]) => {
            Resp::json(200, json!({"value": []}))
        }
        ("GET", ["tenants"]) | ("GET", ["arm", "tenants"]) => {
            let order = shared.lock().order.clone();
            let value: Vec<Value> = order
                .iter()
                .map(|tid| json!({"id": format!("/tenants/{tid}"), "tenantId": tid, "tenantCategory": "Home", "displayName": "entraform emulator"}))
                .collect();
            Resp::json(200, json!({ "value": value }))
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            let mut inner = shared.lock();
            token(shared, &mut inner, tenant, headers, body, ctx)
        }
        ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"])
        | ("GET", [tenant, ".well-known", "openid-configuration"]) => {
            let mut inner = shared.lock();
            match resolve_tenant(&mut inner, tenant, false) {
                Ok(tid) => Resp::json(200, discovery(shared, &tid)),
                Err(e) => e.to_resp(ctx),
            }
        }
        ("GET", [_tenant, "discovery", "v2.0", "keys"])
        | ("GET", [_tenant, "discovery", "keys"]) => {
            // Tokens are unsigned; there are no keys to publish.
            Resp::json(200, json!({"keys": []}))
        }
        _ => GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!("The emulator has no endpoint {method} {path}."),
        )
        .to_resp(ctx),
    }
}

/// An AADSTS error as the token endpoint sends it
/// (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
pub(crate) struct LoginError {
    status: u16,
    error: &'static str,
    code: u32,
    text: String,
}

impl LoginError {
    fn new(status: u16, error: &'static str, code: u32, text: impl Into<String>) -> Self {
        LoginError {
            status,
            error,
            code,
            text: text.into(),
        }
    }

    fn to_resp(&self, ctx: &Ctx) -> Resp {
        let ts = login_timestamp();
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {ts}",
            self.code, self.text, ctx.request_id, ctx.client_request_id
        );
        Resp::json(
            self.status,
            json!({
                "error": self.error,
                "error_description": description,
                "error_codes": [self.code],
                "timestamp": ts,
                "trace_id": ctx.request_id,
                "correlation_id": ctx.client_request_id,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

/// The tenant segment: the GUID or one of the domains of a hosted tenant, which becomes the
/// active one. `/common` and `/consumers` cannot do client credentials (AADSTS9001023);
/// anything else is AADSTS90002 "Tenant not found"
/// (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>): a tenant the
/// emulator does not host does not exist, as for Entra.
fn resolve_tenant(
    inner: &mut Inner,
    tenant: &str,
    token_endpoint: bool,
) -> Result<String, LoginError> {
    let t = tenant.to_lowercase();
    if !matches!(t.as_str(), "common" | "consumers" | "organizations") && inner.activate(&t) {
        return Ok(inner.state.tenant_id.clone());
    }
    if matches!(t.as_str(), "common" | "consumers" | "organizations") {
        inner.activate_first();
        let state = &inner.state;
        if token_endpoint {
            return Err(LoginError::new(
                400,
                "invalid_request",
                9001023,
                "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
            ));
        }
        return Ok(state.tenant_id.clone());
    }
    Err(LoginError::new(
        400,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    ))
}

fn token(
    shared: &Shared,
    inner: &mut Inner,
    tenant: &str,
    headers: &Headers,
    body: &[u8],
    ctx: &Ctx,
) -> Resp {
    match issue(shared, inner, tenant, headers, body) {
        Ok(v) => Resp::json(200, v),
        Err(e) => e.to_resp(ctx),
    }
}

fn issue(
    shared: &Shared,
    inner: &mut Inner,
    tenant: &str,
    headers: &Headers,
    body: &[u8],
) -> Result<Value, LoginError> {
    let tid = resolve_tenant(inner, tenant, true)?;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let missing = |name: &str| {
        LoginError::new(
            400,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    // HTTP Basic client authentication (RFC 6749 §2.3.1) is allowed instead of form fields.
    let basic = basic_credentials(headers);

    let grant_type = field("grant_type").ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(LoginError::new(
            400,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{grant_type}'. The emulator supports client_credentials only."
            ),
        ));
    }
    let client_id = field("client_id")
        .or_else(|| basic.as_ref().map(|(u, _)| u.clone()))
        .ok_or_else(|| missing("client_id"))?;
    let scope = field("scope").ok_or_else(|| missing("scope"))?;

    let now = now_ms();
    let state = &inner.state;
    // The application object (and its secrets) lives in its home tenant: this one, or, for a
    // multi-tenant app consented here, another hosted tenant.
    let home = super::tenants::home_of(state, &inner.parked, &client_id, now).unwrap_or(state);
    let Some(ai) = home.app_index_by("appId", &client_id, Some(now)) else {
        return Err(LoginError::new(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tid}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    let app_id = home.applications[ai].app_id().to_string();
    let secret = match (form.iter().find(|(k, _)| k == "client_secret"), basic) {
        (Some((_, v)), _) if !v.is_empty() => Secret::new(v.clone()),
        (_, Some((_, s))) if !s.is_empty() => s,
        _ => {
            if field("client_assertion").is_some() {
                return Err(LoginError::new(
                    401,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation. The emulator accepts client secrets only.",
                ));
            }
            return Err(LoginError::new(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    };
    check_secret(home, ai, &app_id, secret, now)?;
    // The app needs a service principal in the tenant to get a token at all.
    let Some(spi) = state.sp_index_by("appId", &app_id, Some(now)) else {
        return Err(LoginError::new(
            400,
            "invalid_client",
            7000229,
            format!(
                "The client application {app_id} is missing service principal in the tenant {tid}."
            ),
        ));
    };
    let sp_id = state.service_principals[spi].id().to_string();

    let audience = resolve_scope(shared, state, &scope, &tid)?;
    Ok(mint(shared, inner, &tid, app_id, &sp_id, audience, now))
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1): the client id and secret,
/// each form-urlencoded.
fn basic_credentials(headers: &Headers) -> Option<(String, Secret)> {
    headers
        .get("authorization")
        .and_then(|a| {
            a.strip_prefix("Basic ")
                .or_else(|| a.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':').map(|(u, p)| {
                (
                    super::util::percent_decode(&u.replace('+', " ")),
                    Secret::new(super::util::percent_decode(&p.replace('+', " "))),
                )
            })
        })
}

/// The presented secret must be a visible, current one of the app (`ai` in `home`).
fn check_secret(
    home: &State,
    ai: usize,
    app_id: &str,
    secret: Secret,
    now: u64,
) -> Result<(), LoginError> {
    let digest = digest_hex(&secret);
    drop(secret);
    let wrong = || {
        LoginError::new(
            401,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app_id}'."
            ),
        )
    };
    // A secret still replicating is unknown to login (<https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
    let Some(record) = home
        .passwords
        .iter()
        .find(|p| p.app_id == app_id && p.digest == digest && p.visible_at <= now)
    else {
        return Err(wrong());
    };
    let cred = home.applications[ai].data["passwordCredentials"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["keyId"].as_str() == Some(record.key_id.as_str()))
        });
    let now_t = time::OffsetDateTime::now_utc();
    if let Some(c) = cred {
        if c["endDateTime"]
            .as_str()
            .and_then(parse_time)
            .is_some_and(|end| end <= now_t)
        {
            return Err(LoginError::new(
                401,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
                ),
            ));
        }
        if c["startDateTime"]
            .as_str()
            .and_then(parse_time)
            .is_some_and(|start| start > now_t)
        {
            return Err(wrong());
        }
    }
    Ok(())
}

/// Issue an access token for `app_id` (its SP `sp_id`) in tenant `tid` and remember it.
/// `audience` is what [`resolve_scope`] answered: (the audience kind, the `aud` claim).
fn mint(
    shared: &Shared,
    inner: &mut Inner,
    tid: &str,
    app_id: String,
    sp_id: &str,
    (audience, aud_claim): (String, String),
    now: u64,
) -> Value {
    let state = &inner.state;
    let roles = if audience == "graph" {
        state.roles.get(&app_id).cloned().unwrap_or_default()
    } else {
        Vec::new()
    };
    let lifetime = shared.token_lifetime.as_secs();
    let iat = now / 1000;
    let header = json!({"typ": "JWT", "alg": "none", "kid": "entraform-emulator"});
    let payload = json!({
        "aud": aud_claim,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "appid": app_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{tid}/"),
        "oid": sp_id,
        "sub": sp_id,
        "roles": roles,
        "tid": tid,
        "uti": new_guid(),
        "ver": "1.0",
    });
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default());
    let token = format!(
        "{}.{}.{}",
        enc(&header),
        enc(&payload),
        URL_SAFE_NO_PAD.encode(b"unsigned-entraform-emulator")
    );
    inner.tokens.insert(
        token.clone(),
        TokenInfo {
            app_id,
            tenant_id: tid.to_string(),
            roles,
            audience,
            expires_ms: now + lifetime * 1000,
        },
    );
    json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    })
}

/// `<resource>/.default` → which audience. Graph answers to its public id, its appId and the
/// emulator's Graph origin; ARM to its public audiences and the login origin (az asks for it); any app of the tenant to its appId or identifier URIs. az sends the
/// resource with a trailing slash, so `…//.default` is accepted
/// (docs/emulator.md, "The real Azure CLI against it").
fn resolve_scope(
    shared: &Shared,
    state: &State,
    scope: &str,
    tid: &str,
) -> Result<(String, String), LoginError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let invalid = || {
        LoginError::new(
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    };
    let mut resources = Vec::new();
    for s in &scopes {
        let r = s.strip_suffix("/.default").ok_or_else(invalid)?;
        resources.push(r.trim_end_matches('/').to_lowercase());
    }
    resources.dedup();
    if resources.len() != 1 || resources[0].is_empty() {
        if resources.len() > 1 {
            return Err(LoginError::new(
                400,
                "invalid_scope",
                700022,
                "The provided value for the input parameter scope is not valid because it contains more than one resource.",
            ));
        }
        return Err(invalid());
    }
    let r = resources[0].as_str();
    let graph = [
        "https://graph.microsoft.com".to_string(),
        GRAPH_APP_ID.to_string(),
        shared.urls.graph_origin.to_lowercase(),
    ];
    if graph.iter().any(|g| g == r) {
        return Ok(("graph".into(), "https://graph.microsoft.com".into()));
    }
    let arm = [
        "https://management.core.windows.net".to_string(),
        "https://management.azure.com".to_string(),
        shared.urls.authority.to_lowercase(),
    ];
    if arm.iter().any(|a| a == r) {
        return Ok(("arm".into(), "https://management.core.windows.net/".into()));
    }
    let now = now_ms();
    let found = state.applications.iter().find(|a| {
        a.visible(now)
            && (a.app_id().to_lowercase() == r
                || a.data["identifierUris"].as_array().is_some_and(|u| {
                    u.iter()
                        .any(|u| u.as_str().map(str::to_lowercase).as_deref() == Some(r))
                }))
    });
    if let Some(app) = found
        && state
            .sp_index_by("appId", app.app_id(), Some(now))
            .is_some()
    {
        return Ok((app.app_id().to_string(), app.app_id().to_string()));
    }
    let name = scopes[0]
        .trim_end_matches("/.default")
        .trim_end_matches('/');
    Err(LoginError::new(
        400,
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {name} was not found in the tenant named {tid}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        ),
    ))
}

fn discovery(shared: &Shared, tid: &str) -> Value {
    let a = &shared.urls.authority;
    json!({
        "token_endpoint": format!("{a}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{a}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{a}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{}/oidc/userinfo", shared.graph_url()),
        "authorization_endpoint": format!("{a}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{a}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{a}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{a}/{tid}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    })
}

/// The ARM metadata document `az cloud register --endpoint-resource-manager` reads
/// (`/metadata/endpoints?api-version=2022-09-01`; docs/emulator.md). az takes Graph's base from
/// `microsoftGraphResourceId` (minus its trailing slash, plus `/v1.0`).
fn cloud_metadata(shared: &Shared) -> Value {
    let a = &shared.urls.authority;
    json!({
        "portal": "https://portal.azure.com",
        "authentication": {
            "loginEndpoint": format!("{a}/"),
            "audiences": [format!("{a}/"), "https://management.core.windows.net/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": "https://rest.media.azure.net",
        "graphAudience": "https://graph.windows.net/",
        "graph": "https://graph.windows.net/",
        "name": "EntraformEmulator",
        "suffixes": {
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "acrLoginServer": "azurecr.io",
            "sqlServerHostname": "database.windows.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "storageSyncEndpointSuffix": "afs.azure.net",
            "mhsmDns": "managedhsm.azure.net",
            "mysqlServerEndpoint": "mysql.database.azure.com",
            "postgresqlServerEndpoint": "postgres.database.azure.com",
            "mariadbServerEndpoint": "mariadb.database.azure.com",
            "synapseAnalytics": "dev.azuresynapse.net",
            "attestationEndpoint": "attest.azure.net",
        },
        "batch": "https://batch.core.windows.net/",
        "resourceManager": format!("{a}/"),
        "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "microsoftGraphResourceId": format!("{}/", shared.urls.graph_origin),
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
    })
}
