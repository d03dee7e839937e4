//! The desired state of one service: every value of docs/manifests.md, derived and validated.
//!
//! This is the output of lowering a service manifest plus the organisation defaults
//! (`manifest::load` → `desired::lower`). It is plain data: everything downstream (render,
//! plan, apply, drift, rotate) reads it and nothing writes it.

use std::path::PathBuf;

use serde::Serialize;

use crate::manifest::vault_decl::VaultConfig;

/// Microsoft Graph's appId (the same in every tenant).
pub const MS_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Microsoft Graph delegated `User.Read`.
pub const USER_READ_SCOPE_ID: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";

/// Well-known Microsoft Graph permissions a manifest may name without an id:
/// (value, `Scope` or `Role`, id). The ids are the same in every tenant; source: the Microsoft
/// Graph permissions reference, https://learn.microsoft.com/graph/permissions-reference
pub const GRAPH_PERMISSIONS: &[(&str, &str, &str)] = &[
    ("User.Read", "Scope", USER_READ_SCOPE_ID),
    ("openid", "Scope", "37f7f235-527c-4136-accd-4a02d197296e"),
    ("profile", "Scope", "14dad69e-099b-42c9-810b-d002981feec1"),
    ("email", "Scope", "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"),
    (
        "offline_access",
        "Scope",
        "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    ),
    ("Mail.Send", "Scope", "e383f46e-2787-4529-855e-0e479a3ffac0"),
    ("Mail.Send", "Role", "b633e1c5-b582-4048-a93e-9f11b44c7e96"),
    (
        "Calendars.ReadWrite",
        "Scope",
        "1ec239c2-d7c9-4623-a91a-a9775856bb36",
    ),
    (
        "Calendars.ReadWrite",
        "Role",
        "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
    ),
];

/// The id of a well-known Graph permission of `kind` (`Scope` or `Role`).
pub fn known_graph_permission(value: &str, kind: &str) -> Option<&'static str> {
    GRAPH_PERMISSIONS
        .iter()
        .find(|(v, k, _)| *v == value && *k == kind)
        .map(|(_, _, id)| *id)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    /// Service name, `[a-z][a-z0-9-]{1,30}`.
    pub service: String,
    /// Customer key in defaults.yaml (e.g. `axe`).
    pub customer: String,
    /// Tenant GUID of the customer.
    pub tenant_id: String,
    /// Public host of the customer (e.g. `axe.axelabs.ai`).
    pub host: String,
    /// Verified domains of the tenant (from defaults).
    pub verified_domains: Vec<String>,
    /// The app's display name.
    pub display_name: String,
    /// `<customer>-<service>-mcp`: the alternate key used to find and upsert the app.
    pub unique_name: String,
    /// A pinned existing app (adoption), when the manifest says so.
    pub app_id: Option<String>,
    /// Steps 2–7: the properties of the application object.
    pub app: AppSpec,
    /// Step 9: the AllPrincipals grants to create.
    pub consent: Vec<GrantSpec>,
    /// Step 8: the client secret and where it lives.
    pub secret: SecretSpec,
    /// The vault backend that holds the secret.
    pub vault: VaultConfig,
    /// Deployment values for the four fragments.
    pub deploy: DeploySpec,
    /// The reference app this one must match (drift), by manifest name.
    pub reference: Option<String>,
    /// The manifest file this came from.
    pub source: PathBuf,
    /// Non-fatal findings (e.g. application permissions on a connector app).
    pub warnings: Vec<String>,
}

/// Properties of the application object the nine steps converge (steps 2–7).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppSpec {
    /// App ID URI: `https://<host>/<service>/mcp`.
    pub identifier_uri: String,
    /// `AzureADMyOrg` by default.
    pub sign_in_audience: String,
    /// `api.requestedAccessTokenVersion` (2).
    pub requested_access_token_version: i32,
    /// `api.oauth2PermissionScopes` (the ids are assigned at apply time, or kept if present).
    pub scopes: Vec<ScopeSpec>,
    /// `web.redirectUris`.
    pub redirect_uris: Vec<String>,
    /// `requiredResourceAccess`.
    pub required_resource_access: Vec<ResourceAccessSpec>,
    /// `web.implicitGrantSettings.enableIdTokenIssuance`.
    pub enable_id_token_issuance: bool,
    /// `web.implicitGrantSettings.enableAccessTokenIssuance`.
    pub enable_access_token_issuance: bool,
}

/// One delegated permission the app exposes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeSpec {
    /// `mcp.access`.
    pub value: String,
    /// `User` or `Admin`.
    pub kind: String,
    pub admin_consent_display_name: String,
    pub admin_consent_description: String,
    pub user_consent_display_name: String,
    pub user_consent_description: String,
}

/// One API the app asks permissions of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceAccessSpec {
    pub resource_app_id: String,
    pub access: Vec<PermissionSpec>,
}

/// One permission in `requiredResourceAccess`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PermissionSpec {
    /// Permission GUID.
    pub id: String,
    /// `Scope` (delegated) or `Role` (application permission).
    pub kind: String,
    /// The claim value (e.g. `User.Read`), used for grants and messages.
    pub value: String,
}

/// An AllPrincipals oauth2PermissionGrant (step 9).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrantSpec {
    /// Whose service principal is the resource.
    pub resource: GrantResource,
    /// Space-separated scope values (e.g. `User.Read`).
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "app_id")]
pub enum GrantResource {
    /// The app's own service principal (for `mcp.access`).
    SelfApp,
    /// Another API's service principal, by appId (Microsoft Graph for `User.Read`).
    App(String),
}

/// The client secret's identity and lifetime (never its value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretSpec {
    /// `AZURE_<SERVICE>_MCP_CLIENT_SECRET`.
    pub env: String,
    /// `<service>/<customer>/mcp-client-secret`: the vault path, also written into customers.yaml.
    pub vault_path: String,
    /// Lifetime of a new secret in days (default 730).
    pub lifetime_days: u32,
    /// The credential's displayName in Entra; marks it as made by entraform.
    pub display_name: String,
    /// Who holds the secret besides the vault (`secret.held_by`): the rotation policy.
    pub held_by: crate::manifest::model::HeldBy,
}

/// Values for the four deployment fragments (docs/render.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploySpec {
    /// Host port Caddy listens on; cloudflared targets it.
    pub proxy_port: u16,
    /// `<service>-mcp`.
    pub container_name: String,
    /// Port inside the MCP container (3000).
    pub container_port: u16,
    /// `axe-<service>-mcp-proxy`.
    pub proxy_name: String,
    /// Where cloudflared reaches Caddy (`host.docker.internal`).
    pub upstream_host: String,
    /// Path of the tunnel config (for `--merge-cloudflared` hints).
    pub tunnel_config: String,
    /// The shared network(s) besides `default` (`artemis`).
    pub networks: Vec<String>,
    /// `<SERVICE>_MCP_ALLOWED_HOSTS`.
    pub allowed_hosts: Vec<String>,
    /// `<SERVICE>_MCP_ALLOWED_ORIGINS`.
    pub allowed_origins: Vec<String>,
    /// Add `depends_on: postgres: service_healthy`.
    pub uses_postgres: bool,
    /// The service's env file for customers.yaml (`<root>/<service>/.env` style).
    pub env_file: String,
    /// The compose `env_file` of the mcp service (`../.env`).
    pub compose_env_file: String,
    /// Compose build context and dockerfile of the mcp service.
    pub build_context: String,
    pub dockerfile: String,
    /// Directory holding the proxy's Caddyfile (`~/.axe/<service>-mcp-proxy`).
    pub proxy_dir: String,
    /// Caddy image for the proxy service.
    pub caddy_image: String,
    /// Two colours instead of one `mcp` service, when the manifest says `blue_green:`.
    pub blue_green: Option<BlueGreenSpec>,
}

/// The blue/green layout of a service: compose services `mcp-blue` and `mcp-green`, containers
/// `<container_name>-blue`/`-green`, and the network alias `<container_name>` (what the proxy
/// forwards to) on the active one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlueGreenSpec {
    /// `blue` or `green`: the colour holding the alias.
    pub active: String,
    /// Host port of the blue container (`proxy_port + 1`).
    pub blue_port: u16,
    /// Host port of the green container (`proxy_port + 2`).
    pub green_port: u16,
}

/// The admin-consent URL a tenant admin opens when the operator may not grant (step 9).
pub fn admin_consent_url(authority: &str, desired: &Desired, app_id: &str) -> String {
    let mut scopes: Vec<String> = Vec::new();
    for r in &desired.app.required_resource_access {
        for p in r.access.iter().filter(|p| p.kind == "Scope") {
            if r.resource_app_id.eq_ignore_ascii_case(MS_GRAPH_APP_ID) {
                scopes.push(format!("https://graph.microsoft.com/{}", p.value));
            }
        }
    }
    for s in &desired.app.scopes {
        scopes.push(format!("{}/{}", desired.app.identifier_uri, s.value));
    }
    let mut url = url::Url::parse(&format!(
        "{}/{}/v2.0/adminconsent",
        authority.trim_end_matches('/'),
        desired.tenant_id
    ))
    .unwrap_or_else(|_| url::Url::parse("https://login.microsoftonline.com/").expect("static url"));
    url.query_pairs_mut()
        .append_pair("client_id", app_id)
        .append_pair("scope", &scopes.join(" "))
        .append_pair(
            "redirect_uri",
            desired
                .app
                .redirect_uris
                .first()
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .append_pair("state", "entraform");
    url.to_string()
}
