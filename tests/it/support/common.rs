//! Shared test helpers: blueprint's desired state (the manifest loader is another module; these
//! are the real values of the seeds) and the external validators.

pub use crate::support::{BLUEPRINT_APP_ID as CLIENT_ID, TENANT};
use std::path::{Path, PathBuf};
use std::process::Command;

use entraform::desired::*;
use entraform::vault::VaultConfig;

/// blueprint on axe, as SPEC §2 derives it.
pub fn blueprint() -> Desired {
    service("blueprint", 3151, Some(CLIENT_ID))
}

/// A service of the axe customer with the org's defaults.
pub fn service(name: &str, proxy_port: u16, app_id: Option<&str>) -> Desired {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    let title = {
        let mut c = name.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let display_name = format!("{title} MCP");
    let host = "axe.axelabs.ai";
    let container = format!("{name}-mcp");
    Desired {
        service: name.into(),
        customer: "axe".into(),
        tenant_id: TENANT.into(),
        host: host.into(),
        verified_domains: vec!["axellc.com".into()],
        display_name: display_name.clone(),
        unique_name: format!("axe-{name}-mcp"),
        app_id: app_id.map(str::to_owned),
        app: AppSpec {
            identifier_uri: format!("https://{host}/{name}/mcp"),
            sign_in_audience: "AzureADMyOrg".into(),
            requested_access_token_version: 2,
            scopes: vec![ScopeSpec {
                value: "mcp.access".into(),
                kind: "User".into(),
                admin_consent_display_name: format!("Access {display_name}"),
                admin_consent_description: format!("Access {display_name}"),
                user_consent_display_name: format!("Access {display_name}"),
                user_consent_description: format!("Access {display_name}"),
            }],
            redirect_uris: vec![
                "https://claude.ai/api/mcp/auth_callback".into(),
                "https://claude.com/api/mcp/auth_callback".into(),
            ],
            required_resource_access: vec![ResourceAccessSpec {
                resource_app_id: MS_GRAPH_APP_ID.into(),
                access: vec![PermissionSpec {
                    id: USER_READ_SCOPE_ID.into(),
                    kind: "Scope".into(),
                    value: "User.Read".into(),
                }],
            }],
            enable_id_token_issuance: true,
            enable_access_token_issuance: false,
        },
        consent: vec![
            GrantSpec {
                resource: GrantResource::App(MS_GRAPH_APP_ID.into()),
                scope: "User.Read".into(),
            },
            GrantSpec {
                resource: GrantResource::SelfApp,
                scope: "mcp.access".into(),
            },
        ],
        secret: SecretSpec {
            env: format!("AZURE_{upper}_MCP_CLIENT_SECRET"),
            vault_path: format!("{name}/axe/mcp-client-secret"),
            lifetime_days: 730,
            display_name: "entraform".into(),
            held_by: Default::default(),
        },
        vault: VaultConfig::Command(entraform::vault::CommandConfig::new(
            vec![
                "axe".into(),
                "secret".into(),
                "push".into(),
                "{path}".into(),
                "-".into(),
            ],
            Some(vec![
                "axe".into(),
                "secret".into(),
                "get".into(),
                "{path}".into(),
                "-n".into(),
            ]),
        )),
        deploy: DeploySpec {
            proxy_port,
            container_name: container.clone(),
            container_port: 3000,
            proxy_name: format!("axe-{name}-mcp-proxy"),
            upstream_host: "host.docker.internal".into(),
            tunnel_config: "~/.axe/tunnels/axelabs/config.yml".into(),
            networks: vec!["artemis".into()],
            allowed_hosts: vec![
                format!("{container}:*"),
                "localhost:*".into(),
                "127.0.0.1:*".into(),
                "host.docker.internal:*".into(),
                host.into(),
            ],
            allowed_origins: vec![
                format!("https://{host}"),
                "https://claude.ai".into(),
                "https://claude.com".into(),
            ],
            uses_postgres: true,
            env_file: format!("/Users/axe/{name}/.env"),
            compose_env_file: "../.env".into(),
            build_context: "..".into(),
            dockerfile: "mcp/Dockerfile".into(),
            proxy_dir: format!("~/.axe/{name}-mcp-proxy"),
            caddy_image: "caddy:2".into(),
            blue_green: None,
        },
        reference: Some("frame".into()),
        source: PathBuf::from(format!("manifests/{name}.yaml")),
        warnings: Vec::new(),
    }
}

/// An external validator: found → Some(path); absent → None after a printed note, or a panic
/// when `ENTRAFORM_REQUIRE_TOOLS=1` (CI installs every tool).
#[allow(clippy::print_stderr)] // the skip note is the point
pub fn tool(name: &str, env_var: Option<&str>) -> Option<PathBuf> {
    let found = match env_var.and_then(std::env::var_os) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_in_path(name),
    };
    if found.is_none() {
        let how = env_var
            .map(|v| format!(" (or set {v})"))
            .unwrap_or_default();
        if std::env::var("ENTRAFORM_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (ENTRAFORM_REQUIRE_TOOLS=1) but was not found{how}");
        }
        eprintln!("note: skipping a check: {name} is not installed{how}");
    }
    found
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Run a command; (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run the command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/render")
        .join(name)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
