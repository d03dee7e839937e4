//! The serde structs that mirror the two YAML files exactly (docs/manifests.md).
//!
//! Every struct denies unknown fields, so a typo is an error with a location rather than a value
//! silently ignored. No defaults of the organisation live here: those are in `defaults.yaml`; the
//! few code defaults below are the seed values a fresh `defaults.yaml` may leave out.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::vault_decl::VaultConfig;

/// `manifests/defaults.yaml`: organisation-wide values every service manifest inherits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "entraform defaults.yaml")]
pub struct DefaultsManifest {
    /// Organisation name; prefixes the Caddy proxy container (`<organisation>-<service>-mcp-proxy`).
    pub organisation: String,
    /// Customers by key (the `customer:` of a service manifest), e.g. `axe`, `realchoice`.
    pub customers: BTreeMap<String, CustomerDefaults>,
    /// The connector's OAuth callbacks (`web.redirectUris`), e.g. claude.ai and claude.com.
    pub redirect_uris: Vec<String>,
    /// CORS origins the MCP server allows besides `https://<customer host>`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Host headers the MCP server accepts besides `<service>-mcp:*` and the customer host
    /// (FastMCP's DNS-rebinding guard answers 421 to anything else).
    #[serde(default = "default_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Where client secrets are written (and read back from): the default vault (a service
    /// manifest's `vault: default`). defaults.yaml is trusted configuration: only here may a
    /// vault be declared (a `command` vault runs programs).
    pub vault: VaultConfig,
    /// More vaults by name; a service manifest chooses one with `vault: NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vaults: BTreeMap<String, VaultConfig>,
    /// Client secret policy.
    #[serde(default)]
    pub secret: SecretDefaults,
    /// Cloudflare Tunnel settings.
    pub tunnel: TunnelDefaults,
    /// docker compose settings of the rendered fragment.
    #[serde(default)]
    pub compose: ComposeDefaults,
    /// Path roots used in rendered fragments (`~` is kept as written).
    #[serde(default)]
    pub paths: PathDefaults,
    /// How `entraform new` picks proxy ports.
    #[serde(default)]
    pub ports: PortDefaults,
}

/// One customer: its tenant and public host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerDefaults {
    /// Directory (tenant) id, a GUID.
    pub tenant_id: String,
    /// Public host of the customer (App ID URIs are `https://<host>/<service>/mcp`).
    pub host: String,
    /// Verified domains of the tenant (Graph accepts an `https://` App ID URI on v1-token apps
    /// only on a verified domain).
    #[serde(default)]
    pub verified_domains: Vec<String>,
}

/// `secret:` in defaults.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretDefaults {
    /// Lifetime of a new client secret in days (checklist §1 step 8: `--years 2`).
    #[serde(default = "default_lifetime_days")]
    pub lifetime_days: u32,
}

impl Default for SecretDefaults {
    fn default() -> Self {
        Self {
            lifetime_days: default_lifetime_days(),
        }
    }
}

/// `tunnel:` in defaults.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TunnelDefaults {
    /// The cloudflared config file the ingress rules go into.
    pub config: String,
    /// Host cloudflared reaches Caddy on.
    #[serde(default = "default_upstream_host")]
    pub upstream_host: String,
}

/// `compose:` in defaults.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDefaults {
    /// Shared networks the MCP and proxy containers join besides `default` (cloudflared's).
    #[serde(default = "default_networks")]
    pub networks: Vec<String>,
    /// `env_file:` of the mcp service, relative to the compose file.
    #[serde(default = "default_compose_env_file")]
    pub env_file: String,
    /// `build.context` of the mcp service.
    #[serde(default = "default_build_context")]
    pub build_context: String,
    /// `build.dockerfile` of the mcp service.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Image of the Caddy proxy service.
    #[serde(default = "default_caddy_image")]
    pub caddy_image: String,
}

impl Default for ComposeDefaults {
    fn default() -> Self {
        Self {
            networks: default_networks(),
            env_file: default_compose_env_file(),
            build_context: default_build_context(),
            dockerfile: default_dockerfile(),
            caddy_image: default_caddy_image(),
        }
    }
}

/// `paths:` in defaults.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathDefaults {
    /// Root of the organisation's runtime files; the proxy lives in `<root>/<service>-mcp-proxy`.
    #[serde(default = "default_axe_root")]
    pub root: String,
    /// Parent of the service checkouts; customers.yaml gets `<services>/<service>/.env`.
    #[serde(default = "default_services_root")]
    pub services: String,
}

impl Default for PathDefaults {
    fn default() -> Self {
        Self {
            root: default_axe_root(),
            services: default_services_root(),
        }
    }
}

/// `ports:` in defaults.yaml: each service owns a block of host ports; its proxy port is the
/// block's start + 1 (blueprint: block 3150, proxy 3151, blue/green 3152/3153).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortDefaults {
    /// Proxy port of the first service when no manifest exists yet.
    #[serde(default = "default_first_port")]
    pub first: u16,
    /// Size of the block of host ports reserved per service.
    #[serde(default = "default_block")]
    pub block: u16,
}

impl Default for PortDefaults {
    fn default() -> Self {
        Self {
            first: default_first_port(),
            block: default_block(),
        }
    }
}

/// `manifests/<service>.yaml`: one MCP service. Only the first five fields are usually written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "entraform service manifest")]
pub struct ServiceManifest {
    /// Service name: `[a-z][a-z0-9-]{1,30}`; also the file name (`<service>.yaml`).
    pub service: String,
    /// Customer key from defaults.yaml.
    pub customer: String,
    /// The app's display name (default: `<Service> MCP`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Host port Caddy listens on; cloudflared targets it.
    #[schemars(range(min = 1))]
    pub proxy_port: u16,
    /// Other host ports this service publishes (e.g. blue/green containers); reserved so that no
    /// other manifest and no `entraform new` takes them.
    #[serde(default)]
    pub host_ports: Vec<u16>,
    /// The app this one must match (drift): a service name or an appId.
    #[serde(default)]
    pub reference: Option<String>,
    /// Pin an existing app registration by its appId (client id): adoption.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The compose service waits for `postgres` to be healthy.
    #[serde(default)]
    pub uses_postgres: bool,
    /// Run the MCP server as two compose services, `mcp-blue` and `mcp-green` (containers
    /// `<service>-mcp-blue`/`-green` on host ports `proxy_port + 1` and `+ 2`), with the network
    /// alias `<service>-mcp` the proxy forwards to on the active one.
    #[serde(default)]
    pub blue_green: Option<BlueGreen>,
    /// Permissions besides the derived Microsoft Graph `User.Read`.
    #[serde(default)]
    pub permissions: Vec<PermissionRequest>,
    /// Which vault of defaults.yaml holds this service's secret: `default` (defaults.yaml's
    /// `vault:`, also when left out) or a key of its `vaults:`. Only a name: a service
    /// manifest cannot declare a vault (that would let it choose a program to run); its path
    /// is `overrides.vault_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub vault: Option<VaultChoice>,
    /// Who holds the client secret besides the vault; decides how `rotate` retires old secrets.
    #[serde(default)]
    pub secret: ServiceSecret,
    /// Replace derived values (rarely needed; every one of them has a derived default).
    #[serde(default)]
    pub overrides: Overrides,
}

/// `secret:` in a service manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSecret {
    /// `people` (default): whoever added the connector in claude.ai typed the secret into its
    /// Advanced settings, so `rotate` never removes an old secret on its own schedule (only
    /// `rotate --prune-old`, or its expiry). `machines`: only programs read it from the vault,
    /// and `rotate --overlap-days` prunes.
    #[serde(default)]
    pub held_by: HeldBy,
}

/// Who holds a client secret besides the vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeldBy {
    /// People: the connector's users typed it in (every connector app, unless declared).
    #[default]
    People,
    /// Only machines, which read it from the vault.
    Machines,
}

impl HeldBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldBy::People => "people",
            HeldBy::Machines => "machines",
        }
    }
}

/// `blue_green:` in a service manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlueGreen {
    /// The colour that holds the network alias `<service>-mcp` (the proxy's upstream).
    pub active: Colour,
}

/// A blue/green colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }
}

/// A service manifest's `vault:` as written: a name, or (refused when lowering, with the
/// reason) a whole declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VaultChoice {
    /// `vault: NAME`.
    Name(String),
    /// Anything else (a map, a list): refused.
    Declaration(serde_yaml::Value),
}

/// Permissions on one API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionRequest {
    /// `microsoft-graph` (default) or the API's appId.
    #[serde(default = "default_api")]
    pub api: String,
    /// Delegated permissions (`Scope`), by name (well-known Graph ones) or `{value, id}`.
    #[serde(default)]
    pub delegated: Vec<PermissionRef>,
    /// Application permissions (`Role`, app-only). A connector app should not have any.
    #[serde(default)]
    pub application: Vec<PermissionRef>,
}

/// A permission by name, or by name and id for those entraform does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PermissionRef {
    /// A well-known Microsoft Graph permission name, e.g. `User.Read`.
    Name(String),
    /// Any permission: its claim value and GUID.
    Full(PermissionById),
}

/// `{value: Files.Read, id: <GUID>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionById {
    /// The claim value, e.g. `Files.Read`.
    pub value: String,
    /// The permission's GUID on the resource's service principal.
    pub id: String,
}

impl PermissionRef {
    pub fn value(&self) -> &str {
        match self {
            PermissionRef::Name(v) => v,
            PermissionRef::Full(p) => &p.value,
        }
    }
}

/// Derived values a service may replace. Each is `None` unless written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Default `<customer>-<service>-mcp`. Immutable once the app exists.
    pub unique_name: Option<String>,
    /// App ID URI; default `https://<host>/<service>/mcp`.
    pub identifier_uri: Option<String>,
    /// Default `AzureADMyOrg`.
    pub sign_in_audience: Option<String>,
    /// Default 2.
    pub requested_access_token_version: Option<i32>,
    /// The exposed delegated permission (default `mcp.access`).
    pub scope: Option<ScopeOverride>,
    /// Default: `redirect_uris` of defaults.yaml.
    pub redirect_uris: Option<Vec<String>>,
    /// Default true.
    pub enable_id_token_issuance: Option<bool>,
    /// Default false.
    pub enable_access_token_issuance: Option<bool>,
    /// Default `AZURE_<SERVICE>_MCP_CLIENT_SECRET`.
    pub secret_env: Option<String>,
    /// Default `<service>/<customer>/mcp-client-secret`.
    pub vault_path: Option<String>,
    /// Default: `secret.lifetime_days` of defaults.yaml.
    pub secret_lifetime_days: Option<u32>,
    /// Default `entraform <service>`.
    pub secret_display_name: Option<String>,
    /// Default `<service>-mcp`.
    pub container_name: Option<String>,
    /// Default 3000.
    pub container_port: Option<u16>,
    /// Default `<organisation>-<service>-mcp-proxy`.
    pub proxy_name: Option<String>,
    /// Default: the `upstream_host` of defaults.yaml.
    pub upstream_host: Option<String>,
    /// Default: `compose.networks` of defaults.yaml.
    pub networks: Option<Vec<String>>,
    /// Default `<service>-mcp:*`, defaults.yaml `allowed_hosts`, the customer host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Default `https://<host>` and defaults.yaml `allowed_origins`.
    pub allowed_origins: Option<Vec<String>>,
    /// customers.yaml `env_file`; default `<paths.services>/<service>/.env`.
    pub env_file: Option<String>,
    /// compose `env_file`; default `compose.env_file` of defaults.yaml.
    pub compose_env_file: Option<String>,
    /// compose build context; default `compose.build_context` of defaults.yaml.
    pub build_context: Option<String>,
    /// compose dockerfile; default `compose.dockerfile` of defaults.yaml.
    pub dockerfile: Option<String>,
    /// Default `<paths.root>/<service>-mcp-proxy`.
    pub proxy_dir: Option<String>,
    /// Default `compose.caddy_image` of defaults.yaml.
    pub caddy_image: Option<String>,
}

/// `overrides.scope`: fields left out keep their derived value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeOverride {
    /// Default `mcp.access`.
    pub value: Option<String>,
    /// `User` (default) or `Admin`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub admin_consent_display_name: Option<String>,
    pub admin_consent_description: Option<String>,
    pub user_consent_display_name: Option<String>,
    pub user_consent_description: Option<String>,
}

fn default_allowed_hosts() -> Vec<String> {
    vec![
        "localhost:*".into(),
        "127.0.0.1:*".into(),
        "host.docker.internal:*".into(),
    ]
}
fn default_lifetime_days() -> u32 {
    730
}
fn default_upstream_host() -> String {
    "host.docker.internal".into()
}
fn default_networks() -> Vec<String> {
    vec!["artemis".into()]
}
fn default_compose_env_file() -> String {
    "../.env".into()
}
fn default_build_context() -> String {
    "..".into()
}
fn default_dockerfile() -> String {
    "mcp/Dockerfile".into()
}
fn default_caddy_image() -> String {
    "caddy:2-alpine".into()
}
fn default_axe_root() -> String {
    "~/.axe".into()
}
fn default_services_root() -> String {
    "~".into()
}
fn default_first_port() -> u16 {
    3131
}
fn default_block() -> u16 {
    10
}
fn default_api() -> String {
    "microsoft-graph".into()
}
