//! The four deployment fragments (docs/render.md), rendered from minijinja templates, and the
//! in-place merges into the hand-kept customers.yaml and cloudflared config.
//!
//! Rendering is pure ([`render_all`]); writing is atomic and skips unchanged files
//! ([`write_fragments`]). The values every fragment needs are computed here once, in Rust
//! ([`ingress_rules`], [`customers_entry`]), so the templates only lay them out and the merges
//! insert exactly the same values.

pub mod cloudflared;
pub mod merge;
pub(crate) mod yaml;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::desired::Desired;

/// What `client_id` says when the app's client id is not known yet (no `app_id:` pinned and no
/// apply has run). Not a GUID, so token validation and connector setup fail loudly on it.
pub const PLACEHOLDER_CLIENT_ID: &str = "REPLACE-ME-run-entraform-apply";

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    /// The file name inside the output directory.
    pub name: &'static str,
    /// The full text.
    pub content: String,
}

/// What [`write_fragments`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    pub files: Vec<WrittenFile>,
}

/// One file of a [`WriteReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenFile {
    pub name: String,
    pub path: PathBuf,
    /// False when the file already had exactly these bytes (it was not touched).
    pub changed: bool,
}

/// A template: the fragment it renders and its embedded default text.
struct TemplateSpec {
    fragment: &'static str,
    file: &'static str,
    embedded: &'static str,
}

/// The fragments in the order they are rendered and reported.
const TEMPLATES: [TemplateSpec; 4] = [
    TemplateSpec {
        fragment: "customers.entry.yaml",
        file: "customers.entry.yaml.j2",
        embedded: include_str!("../../templates/customers.entry.yaml.j2"),
    },
    TemplateSpec {
        fragment: "cloudflared.ingress.yaml",
        file: "cloudflared.ingress.yaml.j2",
        embedded: include_str!("../../templates/cloudflared.ingress.yaml.j2"),
    },
    TemplateSpec {
        fragment: "Caddyfile",
        file: "Caddyfile.j2",
        embedded: include_str!("../../templates/Caddyfile.j2"),
    },
    TemplateSpec {
        fragment: "compose.mcp.yaml",
        file: "compose.mcp.yaml.j2",
        embedded: include_str!("../../templates/compose.mcp.yaml.j2"),
    },
];

/// File names of the four fragments, in render order.
pub const FRAGMENT_NAMES: [&str; 4] = [
    TEMPLATES[0].fragment,
    TEMPLATES[1].fragment,
    TEMPLATES[2].fragment,
    TEMPLATES[3].fragment,
];

/// Template file names a `--templates DIR` may override.
pub const TEMPLATE_FILES: [&str; 4] = [
    TEMPLATES[0].file,
    TEMPLATES[1].file,
    TEMPLATES[2].file,
    TEMPLATES[3].file,
];

/// Failures of rendering and merging. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("templates directory {}: {reason}", path.display())]
    TemplatesDir { path: PathBuf, reason: String },
    #[error("client id {value:?} is not a GUID")]
    BadClientId { value: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: not valid YAML: {message}", path.display(), line_suffix(*line))]
    MergeParse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}{}: {message}", path.display(), line_suffix(*line))]
    MergeShape {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: {} conflicting entr{} (nothing was written):\n{}", path.display(), conflicts.len(),
        if conflicts.len() == 1 { "y" } else { "ies" }, format_conflicts(conflicts))]
    Conflict {
        path: PathBuf,
        conflicts: Vec<merge::Conflict>,
    },
    #[error("{}{}: {message}", path.display(), line_suffix(*line))]
    Cloudflared {
        path: PathBuf,
        line: Option<usize>,
        message: String,
        hint: Option<String>,
    },
    #[error(
        "{}: the client id of {service} is not known, so there is no customers.yaml entry to write",
        path.display()
    )]
    ClientIdUnknown { path: PathBuf, service: String },
    #[error("{}: internal check failed, nothing was written: {message}", path.display())]
    SelfCheck { path: PathBuf, message: String },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn format_conflicts(conflicts: &[merge::Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("  {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RenderError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::Template { .. } => Some(
                "fix the template (an override from --templates, or the embedded one); \
                 every variable must exist: see templates/ in the source for the available context"
                    .into(),
            ),
            RenderError::TemplatesDir { .. } => Some(format!(
                "--templates takes a directory holding one or more of: {}",
                TEMPLATE_FILES.join(", ")
            )),
            RenderError::BadClientId { .. } => Some(
                "the client id is the app's appId, a GUID like 482598f7-540c-462c-9dfd-b957651eb804; \
                 fix `app_id:` in the manifest"
                    .into(),
            ),
            RenderError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Some("check the path".into()),
                std::io::ErrorKind::PermissionDenied => {
                    Some("check the file's permissions and owner".into())
                }
                _ => None,
            },
            RenderError::MergeParse { .. } => {
                Some("fix the YAML syntax at that line; the file was left as it was".into())
            }
            RenderError::MergeShape { .. } => Some(
                "rewrite that part in block style (one key per line); the file was left as it was"
                    .into(),
            ),
            RenderError::Conflict { .. } => Some(
                "check which value is right; pass --force to replace the existing values \
                 (the previous file is kept as FILE.bak)"
                    .into(),
            ),
            RenderError::Cloudflared { hint, .. } => hint.clone(),
            RenderError::ClientIdUnknown { .. } => Some(
                "run `entraform apply MANIFEST` (it creates or finds the app and merges with the real \
                 client id), or pin `app_id: <GUID>` in the manifest"
                    .into(),
            ),
            RenderError::SelfCheck { .. } => {
                Some("this is a bug in entraform; please report it with the file (redacted)".into())
            }
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        RenderError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One cloudflared ingress rule this service needs (docs/render.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRule {
    pub hostname: String,
    /// A Go/RE2 regex over the request path.
    pub path: String,
    /// `http://<upstream_host>:<proxy_port>`.
    pub service: String,
    /// A URL this rule must be the first match for (used to check a merged config).
    pub probe_url: String,
}

/// The path rules of a service: the MCP endpoint, its RFC 9728 metadata document, and its
/// health endpoint (the checklist's probe #2 and the troubleshooting guide curl
/// `https://<host>/<service>/health` through the tunnel). cloudflared does not strip the path
/// prefix, so all of them go to the same proxy.
pub fn ingress_rules(desired: &Desired) -> Vec<IngressRule> {
    let service = regex::escape(&desired.service);
    let target = format!(
        "http://{}:{}",
        desired.deploy.upstream_host, desired.deploy.proxy_port
    );
    let base = format!("https://{}/{}", desired.host, desired.service);
    vec![
        IngressRule {
            hostname: desired.host.clone(),
            path: format!("^/{service}/mcp(/.*)?$"),
            service: target.clone(),
            probe_url: format!("{base}/mcp"),
        },
        IngressRule {
            hostname: desired.host.clone(),
            path: format!(r"^/{service}/\.well-known/oauth-protected-resource(/.*)?$"),
            service: target.clone(),
            probe_url: format!("{base}/.well-known/oauth-protected-resource"),
        },
        IngressRule {
            hostname: desired.host.clone(),
            path: format!("^/{service}/health$"),
            service: target,
            probe_url: format!("{base}/health"),
        },
    ]
}

/// The values of the customers.yaml entries (`azure_apps.<customer>.<service>_mcp` and
/// `services.<service>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomersEntry {
    pub customer: String,
    pub service: String,
    /// `<service>_mcp`.
    pub app_key: String,
    /// `None` when unknown; templates get [`PLACEHOLDER_CLIENT_ID`] instead.
    pub client_id: Option<String>,
    pub application_id_uri: String,
    /// `<app id uri>/<scope>` for every exposed scope.
    pub scopes: Vec<String>,
    pub client_secret_env: String,
    pub env_file: String,
    pub secret: SecretRef,
}

/// One item of `services.<service>.secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub env: String,
    /// Always `desired.secret.vault_path`: the same string the vault push uses.
    pub vault: String,
    pub rotation_external: String,
}

/// The customers.yaml values of a service.
pub fn customers_entry(desired: &Desired, client_id: Option<&str>) -> CustomersEntry {
    CustomersEntry {
        customer: desired.customer.clone(),
        service: desired.service.clone(),
        app_key: format!("{}_mcp", desired.service),
        client_id: client_id.map(str::to_owned),
        application_id_uri: desired.app.identifier_uri.clone(),
        scopes: desired
            .app
            .scopes
            .iter()
            .map(|s| format!("{}/{}", desired.app.identifier_uri, s.value))
            .collect(),
        client_secret_env: desired.secret.env.clone(),
        env_file: desired.deploy.env_file.clone(),
        secret: SecretRef {
            env: desired.secret.env.clone(),
            vault: desired.secret.vault_path.clone(),
            rotation_external: "azure".into(),
        },
    }
}

/// `BLUEPRINT` for `blueprint`, `MY_SVC` for `my-svc`: the prefix of the service's env vars.
pub fn env_prefix(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// Everything a template can use. `d` is the whole desired state.
#[derive(Serialize)]
struct Context<'a> {
    d: &'a Desired,
    service: &'a str,
    customer: &'a str,
    host: &'a str,
    tenant_id: &'a str,
    app_id_uri: &'a str,
    env_prefix: String,
    /// The real client id, or [`PLACEHOLDER_CLIENT_ID`].
    client_id: String,
    client_id_known: bool,
    customers: CustomersEntry,
    ingress: Vec<IngressRule>,
    deploy: &'a crate::desired::DeploySpec,
    caddy: CaddyContext,
    compose: ComposeContext,
}

#[derive(Serialize)]
struct CaddyContext {
    /// `<container>:<port>`: the compose network alias of the MCP container.
    upstream: String,
}

#[derive(Serialize)]
struct ComposeContext {
    /// The MCP server's compose services: `mcp`, or `mcp-blue` and `mcp-green`.
    mcp_services: Vec<McpService>,
    /// `KEY=value` items of the mcp service's `environment:`.
    environment: Vec<String>,
    health_url: String,
    /// `"<proxy_port>:80"`.
    port_mapping: String,
    /// `<proxy_dir>/Caddyfile:/etc/caddy/Caddyfile:ro`.
    caddyfile_mount: String,
}

/// One compose service running the MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct McpService {
    /// `mcp`, `mcp-blue` or `mcp-green`.
    pub name: String,
    /// `<service>-mcp`, `<service>-mcp-blue`, `<service>-mcp-green`.
    pub container: String,
    /// `blue` or `green` in a blue/green layout.
    pub colour: Option<String>,
    /// `"<host port>:<container port>"` of a colour (the single `mcp` service publishes none).
    pub ports: Option<String>,
    /// Holds the network alias `<service>-mcp` the proxy forwards to.
    pub alias: bool,
}

/// The compose services of the MCP server: one `mcp` holding the alias, or with `blue_green`
/// both colours, the alias on the active one.
pub fn mcp_services(desired: &Desired) -> Vec<McpService> {
    let deploy = &desired.deploy;
    let Some(bg) = &deploy.blue_green else {
        return vec![McpService {
            name: "mcp".into(),
            container: deploy.container_name.clone(),
            colour: None,
            ports: None,
            alias: true,
        }];
    };
    [("blue", bg.blue_port), ("green", bg.green_port)]
        .into_iter()
        .map(|(colour, port)| McpService {
            name: format!("mcp-{colour}"),
            container: format!("{}-{colour}", deploy.container_name),
            colour: Some(colour.into()),
            ports: Some(format!("{port}:{}", deploy.container_port)),
            alias: bg.active == colour,
        })
        .collect()
}

fn context<'a>(desired: &'a Desired, client_id: Option<&str>) -> Context<'a> {
    let prefix = env_prefix(&desired.service);
    let deploy = &desired.deploy;
    let environment = vec![
        format!("{prefix}_MCP_PORT={}", deploy.container_port),
        // `${VAR:-default}`: an operator can still override from the env file (checklist §5).
        format!(
            "{prefix}_MCP_APP_ID_URI=${{{prefix}_MCP_APP_ID_URI:-{}}}",
            desired.app.identifier_uri
        ),
        format!(
            "AZURE_AD_TENANT_ID=${{AZURE_AD_TENANT_ID:-{}}}",
            desired.tenant_id
        ),
        format!(
            "{prefix}_MCP_ALLOWED_HOSTS={}",
            deploy.allowed_hosts.join(",")
        ),
        format!(
            "{prefix}_MCP_ALLOWED_ORIGINS={}",
            deploy.allowed_origins.join(",")
        ),
    ];
    Context {
        d: desired,
        service: &desired.service,
        customer: &desired.customer,
        host: &desired.host,
        tenant_id: &desired.tenant_id,
        app_id_uri: &desired.app.identifier_uri,
        env_prefix: prefix,
        client_id: client_id.unwrap_or(PLACEHOLDER_CLIENT_ID).to_owned(),
        client_id_known: client_id.is_some(),
        customers: customers_entry(desired, client_id),
        ingress: ingress_rules(desired),
        deploy,
        caddy: CaddyContext {
            upstream: format!("{}:{}", deploy.container_name, deploy.container_port),
        },
        compose: ComposeContext {
            mcp_services: mcp_services(desired),
            environment,
            health_url: format!("http://127.0.0.1:{}/health", deploy.container_port),
            port_mapping: format!("{}:80", deploy.proxy_port),
            caddyfile_mount: format!(
                "{}/Caddyfile:/etc/caddy/Caddyfile:ro",
                deploy.proxy_dir.trim_end_matches('/')
            ),
        },
    }
}

/// Check a client id before it goes into a file someone deploys.
pub fn check_client_id(client_id: &str) -> Result<(), RenderError> {
    uuid::Uuid::parse_str(client_id)
        .map(|_| ())
        .map_err(|_| RenderError::BadClientId {
            value: client_id.to_owned(),
        })
}

/// Render the four fragments. Pure: the same inputs give the same bytes. `client_id = None`
/// renders [`PLACEHOLDER_CLIENT_ID`] (the caller warns). `templates` overrides the embedded
/// templates file by file (`<DIR>/<fragment>.j2`).
pub fn render_all(
    desired: &Desired,
    client_id: Option<&str>,
    templates: Option<&Path>,
) -> Result<Vec<Fragment>, RenderError> {
    if let Some(id) = client_id {
        check_client_id(id)?;
    }
    let sources = template_sources(templates)?;
    let mut env = Environment::new();
    // Values are quoted explicitly with the yaml filters; no HTML/JSON auto-escaping.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("yaml", |v: String| yaml::scalar(&v));
    env.add_filter("yaml_dq", |v: String| yaml::double_quoted(&v));
    // Every other value a template writes goes through one of these two: text in a comment
    // line must be one line, and a Caddyfile token one word (issue 10: a newline in
    // `tunnel.config` used to add ingress rules to cloudflared.ingress.yaml).
    env.add_filter("comment", |v: minijinja::Value| one_line(&v.to_string()));
    env.add_filter("caddy", |v: minijinja::Value| caddy_token(&v.to_string()));
    for (spec, source) in TEMPLATES.iter().zip(&sources) {
        env.add_template_owned(spec.file, source.clone())
            .map_err(|e| template_error(spec.file, &e))?;
    }
    let ctx = context(desired, client_id);
    TEMPLATES
        .iter()
        .map(|spec| {
            let content = env
                .get_template(spec.file)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| template_error(spec.file, &e))?;
            Ok(Fragment {
                name: spec.fragment,
                content,
            })
        })
        .collect()
}

/// A value for a `# …` comment line: refused when it holds a control character (a newline
/// would end the comment and start a line of YAML).
pub(crate) fn one_line(v: &str) -> Result<String, minijinja::Error> {
    match v.chars().find(|c| c.is_control()) {
        None => Ok(v.to_owned()),
        Some(c) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "{v:?} holds the control character U+{:04X}; a value written into a comment line must be one line",
                u32::from(c)
            ),
        )),
    }
}

/// A Caddyfile token written bare: refused unless it is one word of characters that mean
/// nothing to the Caddyfile lexer (no space, quote, brace, `#` or control character; see
/// <https://caddyserver.com/docs/caddyfile/concepts#tokens-and-quotes>).
fn caddy_token(v: &str) -> Result<String, minijinja::Error> {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@[]".contains(c));
    if plain {
        Ok(v.to_owned())
    } else {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "{v:?} is not a plain Caddyfile word (letters, digits and - _ . : / @ [ ] only)"
            ),
        ))
    }
}

/// The message with the template line it points at.
fn template_error(name: &str, err: &minijinja::Error) -> RenderError {
    let mut message = err.to_string();
    if let Some(line) = err.line() {
        message = format!("line {line}: {message}");
    }
    RenderError::Template {
        name: name.to_owned(),
        message,
    }
}

fn template_sources(dir: Option<&Path>) -> Result<Vec<String>, RenderError> {
    let Some(dir) = dir else {
        return Ok(TEMPLATES.iter().map(|t| t.embedded.to_owned()).collect());
    };
    if !dir.is_dir() {
        return Err(RenderError::TemplatesDir {
            path: dir.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let mut overridden = 0;
    let mut sources = Vec::with_capacity(TEMPLATES.len());
    for spec in &TEMPLATES {
        let path = dir.join(spec.file);
        match fs::read_to_string(&path) {
            Ok(text) => {
                overridden += 1;
                sources.push(text);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                sources.push(spec.embedded.to_owned());
            }
            Err(e) => return Err(RenderError::io("read", &path, e)),
        }
    }
    if overridden == 0 {
        // Almost certainly the wrong directory: say so rather than silently use the defaults.
        return Err(RenderError::TemplatesDir {
            path: dir.to_path_buf(),
            reason: format!("holds none of {}", TEMPLATE_FILES.join(", ")),
        });
    }
    Ok(sources)
}

/// Write the fragments into `dir` (created if missing). Each file is written atomically
/// (temp file in the same directory + rename); a file that already has these bytes is not
/// touched, so re-rendering an unchanged manifest changes nothing, not even mtimes.
pub fn write_fragments(dir: &Path, fragments: &[Fragment]) -> Result<WriteReport, RenderError> {
    fs::create_dir_all(dir).map_err(|e| RenderError::io("create directory", dir, e))?;
    let mut files = Vec::with_capacity(fragments.len());
    for fragment in fragments {
        let path = dir.join(fragment.name);
        let changed = match fs::read(&path) {
            Ok(existing) => existing != fragment.content.as_bytes(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(RenderError::io("read", &path, e)),
        };
        if changed {
            write_atomic(&path, fragment.content.as_bytes(), None)?;
        }
        files.push(WrittenFile {
            name: fragment.name.to_owned(),
            path,
            changed,
        });
    }
    Ok(WriteReport { files })
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename, so a reader
/// sees the old or the new file, never half of one. `mode_from` copies that file's permissions.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode_from: Option<&fs::Metadata>,
) -> Result<(), RenderError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "fragment".into());
    let mut attempt = 0u32;
    let (tmp_path, mut file) = loop {
        let candidate = dir.join(format!(
            ".{file_name}.entraform-{}-{}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(f) => break (candidate, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
            }
            Err(e) => return Err(RenderError::io("create a temp file in", &dir, e)),
        }
    };
    let result = (|| {
        file.write_all(bytes)?;
        if let Some(meta) = mode_from {
            fs::set_permissions(&tmp_path, meta.permissions())?;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(RenderError::io("write", path, e));
    }
    Ok(())
}
