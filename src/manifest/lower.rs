//! Lowering: a parsed service manifest plus the organisation defaults → [`Desired`], with every
//! derived value of docs/manifests.md. Pure: no I/O, no locations; problems name a field path and the
//! loader turns them into located diagnostics.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::diag::FieldPath;
use super::model::{DefaultsManifest, PermissionRef, ServiceManifest, VaultChoice};
use super::vault_decl::{CommandConfig, VaultConfig, env_name_problem};
use crate::desired::{
    AppSpec, DeploySpec, Desired, GrantResource, GrantSpec, MS_GRAPH_APP_ID, PermissionSpec,
    ResourceAccessSpec, ScopeSpec, SecretSpec, USER_READ_SCOPE_ID, known_graph_permission,
};

/// Which file a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Service,
    Defaults,
}

/// A problem with a value: where (file kind + field path), what (found vs expected), the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub field: FieldPath,
    pub message: String,
    pub hint: String,
}

impl Problem {
    fn service(field: FieldPath, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            origin: Origin::Service,
            field,
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn defaults(field: FieldPath, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            origin: Origin::Defaults,
            field,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// `[a-z][a-z0-9-]{1,30}` (docs/manifests.md, "A service manifest").
pub static SERVICE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9-]{1,30}$").expect("valid regex"));
static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .expect("valid regex")
});
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$",
    )
    .expect("valid regex")
});
static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z_][A-Z0-9_]*$").expect("valid regex"));
static KEY_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9-]{0,30}$").expect("valid regex"));
static NETWORK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$").expect("valid regex"));

/// The sign-in audiences Graph accepts.
const AUDIENCES: &[&str] = &[
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

pub fn is_guid(s: &str) -> bool {
    GUID.is_match(s)
}

pub fn is_service_name(s: &str) -> bool {
    SERVICE_NAME.is_match(s)
}

/// A service name suggestion for a bad one: lowercased, other characters → `-`.
pub fn suggest_service_name(s: &str) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let mut out: String = out.chars().take(31).collect();
    if out.len() < 2 {
        out = "my-service".into();
    }
    out
}

/// The message for a bad service name (shared with `entraform new`).
pub fn service_name_problem(found: &str) -> (String, String) {
    let suggestion = suggest_service_name(found);
    (
        format!(
            "{found:?} is not a valid service name; expected [a-z][a-z0-9-]{{1,30}} (lowercase letters, digits, hyphens), e.g. {suggestion:?}"
        ),
        format!(
            "use {suggestion:?}: it becomes the container name, the App ID URI path and the vault path, which must all be lowercase"
        ),
    )
}

/// `blueprint` → `Blueprint`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `a/` + `b` → `a/b`.
fn join(root: &str, rest: &str) -> String {
    format!("{}/{rest}", root.trim_end_matches('/'))
}

/// Why a redirect URI is not acceptable to Entra
/// (<https://learn.microsoft.com/entra/identity-platform/reply-url>), if it is not.
fn redirect_uri_problem(uri: &str) -> Option<(String, String)> {
    const FORBIDDEN: &[char] = &['!', '$', '\'', '(', ')', ',', ';'];
    let parsed = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(e) => {
            return Some((
                format!("{uri:?} is not a URL ({e}); expected an https:// URL"),
                "write the full callback URL, e.g. \"https://claude.ai/api/mcp/auth_callback\""
                    .into(),
            ));
        }
    };
    let host = parsed.host_str().unwrap_or("");
    match parsed.scheme() {
        "https" => {}
        "http" if matches!(host, "localhost" | "127.0.0.1" | "[::1]") => {}
        "http" => {
            return Some((
                format!(
                    "{uri:?} uses http:// on a host that is not localhost; expected https:// (Entra accepts http:// only for localhost and 127.0.0.1)"
                ),
                format!("use {:?}", uri.replacen("http://", "https://", 1)),
            ));
        }
        other => {
            return Some((
                format!("{uri:?} has scheme {other}:; expected https://"),
                "use an https:// callback URL".into(),
            ));
        }
    }
    if parsed.fragment().is_some() {
        return Some((
            format!(
                "{uri:?} has a #fragment; expected none (Entra rejects fragments in redirect URIs)"
            ),
            "remove the part from `#` on".into(),
        ));
    }
    if let Some(c) = uri.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some((
            format!("{uri:?} contains {c:?}; Entra rejects ! $ ' ( ) , ; in redirect URIs"),
            "percent-encode or remove the character".into(),
        ));
    }
    if uri.chars().count() > 256 {
        return Some((
            format!(
                "redirect URI is {} characters long; expected at most 256",
                uri.chars().count()
            ),
            "shorten the URL".into(),
        ));
    }
    None
}

/// Why an `https://host[:port]` origin is not an origin, if it is not.
fn origin_problem(origin: &str) -> Option<(String, String)> {
    match url::Url::parse(origin) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => {
            if u.path() != "/" || origin.ends_with('/') || u.query().is_some() {
                Some((
                    format!(
                        "{origin:?} is not an origin; expected scheme://host[:port] with no path"
                    ),
                    format!("use {:?}", u.origin().ascii_serialization()),
                ))
            } else {
                None
            }
        }
        _ => Some((
            format!("{origin:?} is not an origin; expected e.g. \"https://claude.ai\""),
            "write scheme://host[:port]".into(),
        )),
    }
}

fn host_problem(host: &str) -> Option<(String, String)> {
    if HOST.is_match(host) && host.contains('.') {
        return None;
    }
    let bare = host
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    Some((
        format!(
            "{host:?} is not a host name; expected a lowercase DNS name like \"axe.axelabs.ai\" (no scheme, no path)"
        ),
        format!("write {bare:?}"),
    ))
}

fn tenant_guid_problem(found: &str) -> (String, String) {
    (
        format!(
            "{found:?} is not a GUID; expected a tenant id like \"122fb574-7efa-476a-95b6-bee81bce2cce\""
        ),
        "copy the Tenant ID from the Azure portal (Microsoft Entra ID → Overview) or from `az account show --query tenantId -o tsv`".into(),
    )
}

/// Check the organisation defaults on their own. Lowering assumes these passed.
pub fn validate_defaults(d: &DefaultsManifest) -> Vec<Problem> {
    let mut out = serde_json::to_value(d)
        .map(|v| control_character_problems(&v, Origin::Defaults))
        .unwrap_or_default();
    let control = out.len();
    let root = FieldPath::root();
    if !KEY_NAME.is_match(&d.organisation) {
        out.push(Problem::defaults(
            root.k("organisation"),
            format!(
                "{:?} is not a valid organisation name; expected [a-z][a-z0-9-]{{0,30}}, e.g. \"axe\"",
                d.organisation
            ),
            "it prefixes container names (`axe-<service>-mcp-proxy`), so it must be lowercase",
        ));
    }
    if d.customers.is_empty() {
        out.push(Problem::defaults(
            root.k("customers"),
            "no customers; expected at least one, e.g. `axe: {tenant_id: …, host: axe.axelabs.ai}`",
            "add the customers whose tenants host the MCP apps",
        ));
    }
    for (key, c) in &d.customers {
        let at = root.k("customers").k(key.clone());
        if !KEY_NAME.is_match(key) {
            out.push(Problem::defaults(
                at.clone(),
                format!("{key:?} is not a valid customer key; expected [a-z][a-z0-9-]{{0,30}}"),
                "customer keys appear in app names and vault paths: use lowercase",
            ));
        }
        if !is_guid(&c.tenant_id) {
            let (m, h) = tenant_guid_problem(&c.tenant_id);
            out.push(Problem::defaults(at.k("tenant_id"), m, h));
        }
        if let Some((m, h)) = host_problem(&c.host) {
            out.push(Problem::defaults(at.k("host"), m, h));
        }
        for (i, dom) in c.verified_domains.iter().enumerate() {
            if let Some((m, h)) = host_problem(dom) {
                out.push(Problem::defaults(at.k("verified_domains").i(i), m, h));
            }
        }
    }
    if d.redirect_uris.is_empty() {
        out.push(Problem::defaults(
            root.k("redirect_uris"),
            "no redirect URIs; expected the connector callbacks",
            "add \"https://claude.ai/api/mcp/auth_callback\" and \"https://claude.com/api/mcp/auth_callback\"",
        ));
    }
    for (i, uri) in d.redirect_uris.iter().enumerate() {
        if let Some((m, h)) = redirect_uri_problem(uri) {
            out.push(Problem::defaults(root.k("redirect_uris").i(i), m, h));
        }
    }
    for (i, o) in d.allowed_origins.iter().enumerate() {
        if let Some((m, h)) = origin_problem(o) {
            out.push(Problem::defaults(root.k("allowed_origins").i(i), m, h));
        }
    }
    check_vault(&d.vault, root.k("vault"), Origin::Defaults, &mut out);
    for (name, v) in &d.vaults {
        let field = root.k("vaults").k(name);
        if name == "default" {
            out.push(Problem::defaults(
                field.clone(),
                "`default` is the name of defaults.yaml's `vault:`; expected another name",
                "rename this vault, or make it the default by moving it to `vault:`",
            ));
        } else if !KEY_NAME.is_match(name) {
            out.push(Problem::defaults(
                field.clone(),
                format!("{name:?} is not a vault name; expected [a-z][a-z0-9-]{{0,30}}"),
                "use a short lowercase name, e.g. `pass` or `team-keyring`",
            ));
        }
        check_vault(v, field, Origin::Defaults, &mut out);
    }
    check_lifetime(
        d.secret.lifetime_days,
        root.k("secret").k("lifetime_days"),
        Origin::Defaults,
        &mut out,
    );
    if d.tunnel.config.trim().is_empty() {
        out.push(Problem::defaults(
            root.k("tunnel").k("config"),
            "empty; expected the path of the cloudflared config, e.g. \"~/.axe/tunnels/axelabs/config.yml\"",
            "write the path of the tunnel's config.yml",
        ));
    }
    if let Some((m, h)) = upstream_problem(&d.tunnel.upstream_host) {
        out.push(Problem::defaults(root.k("tunnel").k("upstream_host"), m, h));
    }
    for (i, n) in d.compose.networks.iter().enumerate() {
        if !NETWORK.is_match(n) {
            out.push(Problem::defaults(
                root.k("compose").k("networks").i(i),
                format!("{n:?} is not a docker network name; expected [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
                "use the name of the shared network, e.g. \"artemis\"",
            ));
        }
    }
    if d.ports.block == 0 || d.ports.first == 0 {
        out.push(Problem::defaults(
            root.k("ports"),
            format!(
                "first: {}, block: {}; expected a first port above 0 and a block of at least 1",
                d.ports.first, d.ports.block
            ),
            "e.g. `ports: {first: 3131, block: 10}`",
        ));
    }
    keep_control_problems_only(&mut out, control);
    out
}

/// A field with a control character gets that one problem, not also the messages of its other
/// rules (which the character usually breaks too). The first `control` problems are those.
fn keep_control_problems_only(problems: &mut Vec<Problem>, control: usize) {
    let fields: Vec<FieldPath> = problems[..control]
        .iter()
        .map(|p| p.field.clone())
        .collect();
    let mut index = 0;
    problems.retain(|p| {
        index += 1;
        index <= control || !fields.contains(&p.field)
    });
}

/// Every string of a manifest that contains a control character (a newline, a tab, an escape
/// sequence), by field. Manifest values are written into rendered files (a comment line of
/// cloudflared.ingress.yaml holds `tunnel.config`; compose, Caddy and customers.yaml lines hold
/// the others), where a newline would start a line of its own: a value must be one line of
/// text. Not checked here: the vault declaration (it never reaches a rendered file and has its
/// own rules) and the consent descriptions, which go to Graph only.
pub fn control_character_problems(value: &serde_json::Value, origin: Origin) -> Vec<Problem> {
    fn walk(
        v: &serde_json::Value,
        at: FieldPath,
        keys: &mut Vec<String>,
        origin: Origin,
        out: &mut Vec<Problem>,
    ) {
        match v {
            serde_json::Value::String(s) => {
                if let Some(c) = s.chars().find(|c| c.is_control()) {
                    let name = match c {
                        '\n' => "a newline".to_owned(),
                        '\r' => "a carriage return".to_owned(),
                        '\t' => "a tab".to_owned(),
                        other => format!("the control character U+{:04X}", u32::from(other)),
                    };
                    out.push(Problem {
                        origin,
                        field: at,
                        message: format!(
                            "{s:?} contains {name}; expected one line of text without control characters"
                        ),
                        hint: "remove it: the value is written into rendered files (compose, Caddyfile, \
                               the tunnel config, customers.yaml), where a line break would start \
                               a line of its own"
                            .into(),
                    });
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, at.i(i), keys, origin, out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    // `vault_path` has its own rules (a control character among them).
                    // `vault` (and any vault declarations beside it) is the vault's own.
                    let skip = (keys.is_empty() && k.starts_with("vault"))
                        || k == "vault_path"
                        || (keys.last().is_some_and(|p| p == "scope")
                            && k.ends_with("_consent_description"));
                    if skip {
                        continue;
                    }
                    keys.push(k.clone());
                    walk(item, at.k(k.clone()), keys, origin, out);
                    keys.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, FieldPath::root(), &mut Vec::new(), origin, &mut out);
    out
}

fn upstream_problem(host: &str) -> Option<(String, String)> {
    // `localhost` and docker service names have no dot; accept any DNS label.
    if HOST.is_match(host) {
        None
    } else {
        Some((
            format!("{host:?} is not a host name; expected e.g. \"host.docker.internal\""),
            "write the host cloudflared reaches Caddy on, without scheme or port".into(),
        ))
    }
}

/// Why a vault path cannot be used (`None`: fine). The path becomes an argument of vault
/// commands and a key of the file/keyring backends: nothing that reads as an option
/// (`-…`), climbs out of the vault's tree (`..`), or holds control characters.
pub fn vault_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("is empty")
    } else if path.starts_with('-') {
        Some("starts with `-` (a vault command would read it as an option)")
    } else if path.contains("..") {
        Some("contains `..`")
    } else if path.chars().any(char::is_control) {
        Some("contains a control character")
    } else if path.starts_with('/') {
        Some("is absolute")
    } else if path.chars().any(char::is_whitespace) {
        Some("contains a space")
    } else {
        None
    }
}

fn check_lifetime(days: u32, field: FieldPath, origin: Origin, out: &mut Vec<Problem>) {
    if days == 0 || days > 3650 {
        out.push(Problem {
            origin,
            field,
            message: format!(
                "{days} days; expected 1 to 3650 (the org's policy is 730, two years)"
            ),
            hint: "use 730 (checklist §1 step 8: `--years 2`)".into(),
        });
    }
}

fn check_command(
    c: &CommandConfig,
    field: &FieldPath,
    push: &mut impl FnMut(FieldPath, String, &str),
) {
    match c.effective_push() {
        None => push(
            field.k("push"),
            "no `push` and no `preset`; expected one of them".into(),
            "write `preset: pass` (or `secret-tool`), or `push: [PROGRAM, …, \"{path}\"]` (the secret goes to its stdin)",
        ),
        Some(argv) if argv.is_empty() || argv[0].trim().is_empty() => push(
            field.k("push"),
            "empty command; expected an argv like [axe, secret, push, \"{path}\", \"-\"]".into(),
            "the secret goes to the command's stdin; `{path}` is replaced by the vault path",
        ),
        Some(argv) if !argv.iter().any(|a| a.contains("{path}")) => push(
            field.k("push"),
            format!("{argv:?} does not mention {{path}}; expected the vault path as an argument"),
            "add \"{path}\" where the command takes the secret's name, e.g. [axe, secret, push, \"{path}\", \"-\"]",
        ),
        Some(_) => {}
    }
    let get = c.effective_get();
    if let Some(get) = &get {
        if get.is_empty() || get[0].trim().is_empty() {
            push(
                field.k("get"),
                "empty command; expected an argv like [axe, secret, get, \"{path}\", \"-n\"] or no `get` at all".into(),
                "remove `get:` to skip the read-back, or write the command",
            );
        } else if !get.iter().any(|a| a.contains("{path}")) {
            push(
                field.k("get"),
                format!(
                    "{get:?} does not mention {{path}}; expected the vault path as an argument"
                ),
                "add \"{path}\", e.g. [axe, secret, get, \"{path}\", \"-n\"]",
            );
        }
    }
    if let Some(rule) = &c.missing {
        if get.is_none() {
            push(
                field.k("missing"),
                "a missing-entry rule without a `get` command; expected `get:` beside it".into(),
                "add the `get` command the rule is about, or remove `missing:`",
            );
        }
        if rule.exit.is_empty() && rule.stderr.is_none() {
            push(
                field.k("missing"),
                "an empty rule; expected `exit:` codes and/or a `stderr:` pattern".into(),
                "e.g. `missing: {exit: [1], stderr: \"is not in the password store\"}` (pass)",
            );
        }
        for (i, code) in rule.exit.iter().enumerate() {
            if *code <= 0 || *code > 255 {
                push(
                    field.k("missing").k("exit").i(i),
                    format!("{code}; expected a failing exit code, 1 to 255"),
                    "exit 0 is success: a get that prints nothing with exit 0 is already \"absent\"",
                );
            }
        }
        if let Some(pattern) = &rule.stderr
            && let Err(e) = Regex::new(pattern)
        {
            push(
                field.k("missing").k("stderr"),
                format!("{pattern:?} is not a regular expression: {e}"),
                "write a regular expression searched in the get command's stderr, e.g. \"is not in the password store\" (`^$`: no stderr)",
            );
        }
    }
    if let Some(send) = &c.send {
        if send.is_empty() || send[0].trim().is_empty() {
            push(
                field.k("send"),
                "empty command; expected an argv like [axe, secret, send, \"{path}\", --to, \"{to}\"]".into(),
                "remove `send:` or write the command (the secret goes to its stdin)",
            );
        } else if !send.iter().any(|a| a.contains("{to}")) {
            push(
                field.k("send"),
                format!("{send:?} does not mention {{to}}; expected the recipient as an argument"),
                "add \"{to}\" where the command takes the person, e.g. [axe, secret, send, \"{path}\", --to, \"{to}\"]",
            );
        }
    }
    for (i, name) in c.env.iter().enumerate() {
        if let Some(message) = env_name_problem(name) {
            push(
                field.k("env").i(i),
                message,
                "list only the variables the vault CLI itself needs (its session or config)",
            );
        }
    }
    if let Some(t) = c.timeout_seconds
        && !(1..=3600).contains(&t)
    {
        push(
            field.k("timeout_seconds"),
            format!("{t}; expected 1 to 3600 seconds"),
            "remove it for the default of 60 seconds",
        );
    }
}

fn check_vault(v: &VaultConfig, field: FieldPath, origin: Origin, out: &mut Vec<Problem>) {
    let mut push = |field: FieldPath, message: String, hint: &str| {
        out.push(Problem {
            origin,
            field,
            message,
            hint: hint.into(),
        })
    };
    match v {
        VaultConfig::Command(c) => check_command(c, &field, &mut push),
        VaultConfig::Dotenv { path } | VaultConfig::File { path } => {
            if path.as_os_str().is_empty() {
                push(
                    field.k("path"),
                    "empty path; expected a file path".into(),
                    "write where the secrets file lives, e.g. \".env\"",
                );
            }
        }
        VaultConfig::Keyring { service } => {
            if service.trim().is_empty() {
                push(
                    field.k("service"),
                    "empty keyring service name".into(),
                    "use \"entraform\" (the default) or leave `service:` out",
                );
            }
        }
    }
}

/// Lower a service manifest with its (already validated) defaults. `source` is recorded in the
/// result; `defaults_path` names the defaults in messages. Problems are the service manifest's
/// (an unknown customer included).
///
/// One function per section of [`Desired`], called in the order of the manifest's fields, so
/// problems keep that order.
pub fn lower(
    m: &ServiceManifest,
    d: &DefaultsManifest,
    source: &Path,
    defaults_path: &Path,
) -> Result<Desired, Vec<Problem>> {
    let problems = serde_json::to_value(m)
        .map(|v| control_character_problems(&v, Origin::Service))
        .unwrap_or_default();
    let control = problems.len();
    let mut l = Lowering {
        m,
        d,
        defaults_path,
        root: FieldPath::root(),
        ovp: FieldPath::root().k("overrides"),
        problems,
        warnings: Vec::new(),
    };
    let identity = l.identity();
    let blue_green = l.ports();
    l.references();
    let unique_name = l.unique_name();
    let token = l.token(&identity.host, &identity.verified_domains);
    let scope = l.scope(&identity.display_name);
    let redirect_uris = l.redirect_uris();
    let required_resource_access = l.permissions();
    let consent = consent(&required_resource_access, &scope);
    let secret = l.secret();
    let vault = l.vault();
    let deploy = l.deploy(&identity.host, blue_green);
    let Lowering {
        mut problems,
        warnings,
        ..
    } = l;
    if !problems.is_empty() {
        keep_control_problems_only(&mut problems, control);
        return Err(problems);
    }
    let ov = &m.overrides;
    Ok(Desired {
        service: m.service.clone(),
        customer: m.customer.clone(),
        tenant_id: identity.tenant_id,
        host: identity.host,
        verified_domains: identity.verified_domains,
        display_name: identity.display_name,
        unique_name,
        app_id: m.app_id.as_ref().map(|a| a.to_ascii_lowercase()),
        app: AppSpec {
            identifier_uri: token.identifier_uri,
            sign_in_audience: token.sign_in_audience,
            requested_access_token_version: token.version,
            scopes: vec![scope],
            redirect_uris,
            required_resource_access,
            enable_id_token_issuance: ov.enable_id_token_issuance.unwrap_or(true),
            enable_access_token_issuance: ov.enable_access_token_issuance.unwrap_or(false),
        },
        consent,
        secret,
        vault,
        deploy,
        reference: m.reference.clone(),
        source: source.to_path_buf(),
        warnings,
    })
}

/// One lowering under way: the inputs, and the problems and warnings found so far.
struct Lowering<'a> {
    m: &'a ServiceManifest,
    d: &'a DefaultsManifest,
    defaults_path: &'a Path,
    root: FieldPath,
    /// `overrides`.
    ovp: FieldPath,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// The service, its customer and its display name.
struct Identity {
    tenant_id: String,
    host: String,
    verified_domains: Vec<String>,
    display_name: String,
}

/// Steps 2 and 3: the App ID URI, the sign-in audience and the token version.
struct Token {
    identifier_uri: String,
    sign_in_audience: String,
    version: i32,
}

impl Lowering<'_> {
    fn problem(&mut self, field: FieldPath, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem::service(field, message, hint));
    }

    /// The service name, the customer (its tenant and host) and the display name.
    fn identity(&mut self) -> Identity {
        let (m, d) = (self.m, self.d);
        if !is_service_name(&m.service) {
            let (msg, hint) = service_name_problem(&m.service);
            self.problem(self.root.k("service"), msg, hint);
        }
        let customer = d.customers.get(&m.customer);
        if customer.is_none() {
            let known: Vec<&str> = d.customers.keys().map(String::as_str).collect();
            self.problem(
                self.root.k("customer"),
                format!(
                    "{:?} is not a customer in {}; expected one of: {}",
                    m.customer,
                    self.defaults_path.display(),
                    known.join(", ")
                ),
                format!(
                    "fix the name, or add `{}:` under `customers:` in {} with its tenant_id and host",
                    m.customer,
                    self.defaults_path.display()
                ),
            );
        }
        let display_name = self.display_name();
        let (tenant_id, host, verified_domains) = match customer {
            Some(c) => (
                c.tenant_id.clone(),
                c.host.clone(),
                c.verified_domains.clone(),
            ),
            None => (String::new(), String::new(), Vec::new()),
        };
        Identity {
            tenant_id,
            host,
            verified_domains,
            display_name,
        }
    }

    fn display_name(&mut self) -> String {
        let m = self.m;
        match &m.display_name {
            Some(n) if n.trim().is_empty() => {
                self.problem(
                    self.root.k("display_name"),
                    "empty; expected the app's name as users see it on the consent screen",
                    format!(
                        "write e.g. \"{} MCP\", or remove the line to get that default",
                        capitalize(&m.service)
                    ),
                );
                n.clone()
            }
            Some(n) if n.chars().count() > 120 => {
                self.problem(
                    self.root.k("display_name"),
                    format!("{} characters; expected at most 120", n.chars().count()),
                    "shorten the display name",
                );
                n.clone()
            }
            Some(n) => n.clone(),
            None => format!("{} MCP", capitalize(&m.service)),
        }
    }

    /// `proxy_port`, `host_ports` and the blue/green ports.
    fn ports(&mut self) -> Option<crate::desired::BlueGreenSpec> {
        let m = self.m;
        if m.proxy_port == 0 {
            self.problem(
                self.root.k("proxy_port"),
                "0; expected a host port between 1 and 65535",
                "use the next free port (`entraform new` picks one)",
            );
        }
        let mut seen_ports = vec![m.proxy_port];
        for (i, p) in m.host_ports.iter().enumerate() {
            if *p == 0 || seen_ports.contains(p) {
                self.problem(
                    self.root.k("host_ports").i(i),
                    format!(
                        "{p} is {}; expected distinct host ports other than proxy_port",
                        if *p == 0 {
                            "not a port"
                        } else {
                            "listed twice"
                        }
                    ),
                    "list each extra host port once (the proxy port is already reserved)",
                );
            }
            seen_ports.push(*p);
        }
        m.blue_green
            .as_ref()
            .map(|bg| self.blue_green(bg.active.as_str()))
    }

    fn blue_green(&mut self, active: &str) -> crate::desired::BlueGreenSpec {
        let m = self.m;
        // The port block's layout: proxy = block start + 1, blue + 2, green + 3.
        let blue = m.proxy_port.checked_add(1).unwrap_or(0);
        let green = m.proxy_port.checked_add(2).unwrap_or(0);
        let listed = |p: u16| m.host_ports.contains(&p);
        if blue == 0 || green == 0 || !listed(blue) || !listed(green) {
            let field = if m.host_ports.is_empty() {
                self.root.k("blue_green")
            } else {
                self.root.k("host_ports")
            };
            self.problem(
                field,
                format!(
                    "blue/green runs two containers on host ports {} and {} (proxy_port + 1 and + 2), but host_ports is {:?}; expected both listed there so no other service takes them",
                    u32::from(m.proxy_port) + 1,
                    u32::from(m.proxy_port) + 2,
                    m.host_ports
                ),
                format!(
                    "write `host_ports: [{}, {}]` (or remove `blue_green:` to run one `mcp` service)",
                    u32::from(m.proxy_port) + 1,
                    u32::from(m.proxy_port) + 2
                ),
            );
        }
        crate::desired::BlueGreenSpec {
            active: active.to_owned(),
            blue_port: blue,
            green_port: green,
        }
    }

    /// `app_id` and `reference`.
    fn references(&mut self) {
        let m = self.m;
        if let Some(app_id) = &m.app_id
            && !is_guid(app_id)
        {
            self.problem(
                self.root.k("app_id"),
                format!("{app_id:?} is not a GUID; expected the app's Application (client) ID like \"482598f7-540c-462c-9dfd-b957651eb804\""),
                "copy it from `az ad app list --display-name \"<name>\" --query \"[].appId\" -o tsv`, or remove `app_id:` to find the app by its unique name",
            );
        }
        if let Some(r) = &m.reference {
            if r == &m.service {
                self.problem(
                    self.root.k("reference"),
                    format!("{r:?} is this service itself; expected another service (e.g. \"frame\") or an appId"),
                    "remove `reference:` from the reference service's own manifest",
                );
            } else if !is_service_name(r) && !is_guid(r) {
                self.problem(
                    self.root.k("reference"),
                    format!(
                        "{r:?} is neither a service name nor an appId; expected e.g. \"frame\""
                    ),
                    "name the service whose app this one must match byte for byte",
                );
            }
        }
    }

    /// Step 1: the app's `uniqueName`.
    fn unique_name(&mut self) -> String {
        let m = self.m;
        let unique_name = m
            .overrides
            .unique_name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-mcp", m.customer, m.service));
        if unique_name.is_empty()
            || unique_name
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '\'' | '/' | '"' | '\\' | '?' | '#'))
        {
            self.problem(
                self.ovp.k("unique_name"),
                format!("{unique_name:?}; expected a non-empty name without spaces, quotes, / \\ ? #"),
                "it goes into the Graph URL `/applications(uniqueName='…')`; use e.g. \"axe-blueprint-mcp\"",
            );
        }
        unique_name
    }

    /// Steps 2 and 3: the App ID URI, the audience and the access token version.
    fn token(&mut self, host: &str, verified_domains: &[String]) -> Token {
        let m = self.m;
        let ov = &m.overrides;
        let identifier_uri = ov
            .identifier_uri
            .clone()
            .unwrap_or_else(|| format!("https://{host}/{}/mcp", m.service));
        if let Some(uri) = &ov.identifier_uri {
            let ok = match url::Url::parse(uri) {
                Ok(u) => matches!(u.scheme(), "https" | "http" | "api" | "urn"),
                Err(_) => false,
            };
            if !ok || uri.ends_with('/') || uri.chars().count() > 255 || uri.contains('*') {
                self.problem(
                    self.ovp.k("identifier_uri"),
                    format!("{uri:?}; expected an App ID URI like \"https://<host>/<service>/mcp\" or \"api://<appId>\" (no trailing /, no wildcard, at most 255 characters)"),
                    "remove the override to get https://<host>/<service>/mcp",
                );
            }
        }
        let sign_in_audience = ov
            .sign_in_audience
            .clone()
            .unwrap_or_else(|| "AzureADMyOrg".into());
        if !AUDIENCES.contains(&sign_in_audience.as_str()) {
            self.problem(
                self.ovp.k("sign_in_audience"),
                format!("{sign_in_audience:?}; expected one of: {}", AUDIENCES.join(", ")),
                "a connector app of one organisation uses AzureADMyOrg (the default): remove the override",
            );
        }
        let version = ov.requested_access_token_version.unwrap_or(2);
        self.check_version(
            version,
            &sign_in_audience,
            &identifier_uri,
            verified_domains,
        );
        Token {
            identifier_uri,
            sign_in_audience,
            version,
        }
    }

    fn check_version(
        &mut self,
        version: i32,
        sign_in_audience: &str,
        identifier_uri: &str,
        verified_domains: &[String],
    ) {
        if !matches!(version, 1 | 2) {
            self.problem(
                self.ovp.k("requested_access_token_version"),
                format!("{version}; expected 1 or 2"),
                "use 2 (the v2 endpoint; checklist §1 step 3)",
            );
        } else if version != 2 && sign_in_audience.contains("Personal") {
            self.problem(
                self.ovp.k("requested_access_token_version"),
                format!("{version} with sign-in audience {sign_in_audience}; expected 2 (Graph rejects personal-account audiences on v1 tokens with InvalidAccessTokenVersion)"),
                "use 2",
            );
        }
        if version != 2 {
            let uri_host = url::Url::parse(identifier_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
            if let Some(h) = uri_host
                && !verified_domains
                    .iter()
                    .any(|v| h == *v || h.ends_with(&format!(".{v}")))
            {
                self.warnings.push(format!(
                    "the App ID URI host {h} is not on a verified domain of the tenant and the token version is {version}: Graph rejects that with HostNameNotOnVerifiedDomain (it accepts any host once requestedAccessTokenVersion is 2)"
                ));
            }
        }
    }

    /// Step 4: the one delegated scope.
    fn scope(&mut self, display_name: &str) -> ScopeSpec {
        let so = self.m.overrides.scope.clone().unwrap_or_default();
        let scope = ScopeSpec {
            value: so.value.clone().unwrap_or_else(|| "mcp.access".into()),
            kind: so.kind.clone().unwrap_or_else(|| "User".into()),
            admin_consent_display_name: so
                .admin_consent_display_name
                .clone()
                .unwrap_or_else(|| format!("Access {display_name}")),
            // The checklist's scope body (step 4) has display names only: frame, made that way, has
            // no descriptions, and "copy frame byte for byte" means none here either by default.
            admin_consent_description: so.admin_consent_description.clone().unwrap_or_default(),
            user_consent_display_name: so
                .user_consent_display_name
                .clone()
                .unwrap_or_else(|| format!("Access {display_name}")),
            user_consent_description: so.user_consent_description.clone().unwrap_or_default(),
        };
        let sp = self.ovp.k("scope");
        if scope.value.is_empty()
            || scope.value.starts_with('.')
            || scope.value.chars().any(char::is_whitespace)
            || scope.value.chars().count() > 120
        {
            self.problem(
                sp.k("value"),
                format!("{:?}; expected a scope value without spaces, not starting with '.', at most 120 characters", scope.value),
                "use \"mcp.access\" (the default) unless the server checks another scope",
            );
        }
        if !matches!(scope.kind.as_str(), "User" | "Admin") {
            self.problem(
                sp.k("type"),
                format!("{:?}; expected \"User\" or \"Admin\"", scope.kind),
                "use \"User\" so employees can consent for themselves",
            );
        }
        for (name, v) in [
            (
                "admin_consent_display_name",
                &scope.admin_consent_display_name,
            ),
            (
                "user_consent_display_name",
                &scope.user_consent_display_name,
            ),
        ] {
            if v.trim().is_empty() {
                self.problem(
                    sp.k(name),
                    "empty; expected the text of the consent screen",
                    "remove the override to get \"Access <display_name>\"",
                );
            }
        }
        scope
    }

    /// Step 5: the redirect URIs.
    fn redirect_uris(&mut self) -> Vec<String> {
        let ov = &self.m.overrides;
        let redirect_uris = ov
            .redirect_uris
            .clone()
            .unwrap_or_else(|| self.d.redirect_uris.clone());
        if let Some(list) = &ov.redirect_uris {
            if list.is_empty() {
                self.problem(
                    self.ovp.k("redirect_uris"),
                    "empty list; expected the connector callbacks",
                    "remove the override to use the redirect URIs of defaults.yaml",
                );
            }
            for (i, uri) in list.iter().enumerate() {
                if let Some((msg, hint)) = redirect_uri_problem(uri) {
                    self.problem(self.ovp.k("redirect_uris").i(i), msg, hint);
                }
            }
        }
        redirect_uris
    }

    /// Step 6: Graph User.Read first, then what the manifest asks for.
    fn permissions(&mut self) -> Vec<ResourceAccessSpec> {
        let mut rra = vec![ResourceAccessSpec {
            resource_app_id: MS_GRAPH_APP_ID.into(),
            access: vec![PermissionSpec {
                id: USER_READ_SCOPE_ID.into(),
                kind: "Scope".into(),
                value: "User.Read".into(),
            }],
        }];
        let mut roles = Vec::new();
        for (i, req) in self.m.permissions.iter().enumerate() {
            let at = self.root.k("permissions").i(i);
            let api = match req.api.as_str() {
                "microsoft-graph" | "graph" => MS_GRAPH_APP_ID.to_string(),
                other if is_guid(other) => other.to_ascii_lowercase(),
                other => {
                    self.problem(
                        at.k("api"),
                        format!(
                            "{other:?}; expected \"microsoft-graph\" or the API's appId (a GUID)"
                        ),
                        "write the resource application's appId",
                    );
                    continue;
                }
            };
            for (list, kind, key) in [
                (&req.delegated, "Scope", "delegated"),
                (&req.application, "Role", "application"),
            ] {
                for (j, p) in list.iter().enumerate() {
                    let Some(id) = self.permission_id(p, &api, kind, at.k(key).i(j)) else {
                        continue;
                    };
                    let spec = PermissionSpec {
                        id,
                        kind: kind.into(),
                        value: p.value().to_string(),
                    };
                    if kind == "Role" {
                        roles.push(p.value().to_string());
                    }
                    add_permission(&mut rra, &api, spec);
                }
            }
        }
        if !roles.is_empty() {
            self.warnings.push(format!(
                "application permissions ({}) on the connector app: app-only calls (client credentials, e.g. admin send-as) run as the product's own app — for blueprint the Next.js app 2b222356-1c36-48e0-96a3-2c5e0ecbf937 — not as the MCP connector app (checklist §1, known-gaps \"blueprint azure app id confusion\"); entraform declares them but grants no admin consent for them",
                roles.join(", ")
            ));
        }
        rra
    }

    /// A permission's id: as written (a GUID), or a Microsoft Graph permission known by name.
    fn permission_id(
        &mut self,
        p: &PermissionRef,
        api: &str,
        kind: &str,
        pat: FieldPath,
    ) -> Option<String> {
        let is_graph = api == MS_GRAPH_APP_ID;
        match p {
            PermissionRef::Full(p) if is_guid(&p.id) => Some(p.id.to_ascii_lowercase()),
            PermissionRef::Full(p) => {
                self.problem(
                    pat.k("id"),
                    format!("{:?} is not a GUID; expected the permission's id", p.id),
                    "find it with `az ad sp show --id <api appId> --query \"oauth2PermissionScopes[].{value:value,id:id}\"` (appRoles for application permissions)",
                );
                None
            }
            PermissionRef::Name(name) => {
                match is_graph
                    .then(|| known_graph_permission(name, kind))
                    .flatten()
                {
                    Some(id) => Some(id.to_string()),
                    None => {
                        self.problem(
                            pat,
                            format!("{name:?} is not a {} permission entraform knows by name; expected `{{value: {name}, id: <GUID>}}`", if is_graph { "Microsoft Graph" } else { "well-known" }),
                            format!("write `- {{value: {name}, id: <GUID>}}` with the id from the API's service principal"),
                        );
                        None
                    }
                }
            }
        }
    }

    /// Step 8: the secret's environment name, vault path, lifetime and display name.
    fn secret(&mut self) -> SecretSpec {
        let m = self.m;
        let ov = &m.overrides;
        let secret_env = ov.secret_env.clone().unwrap_or_else(|| {
            format!(
                "AZURE_{}_MCP_CLIENT_SECRET",
                m.service.to_ascii_uppercase().replace('-', "_")
            )
        });
        if !ENV_NAME.is_match(&secret_env) {
            self.problem(
                self.ovp.k("secret_env"),
                format!(
                    "{secret_env:?} is not an environment variable name; expected [A-Z_][A-Z0-9_]*"
                ),
                "remove the override to get AZURE_<SERVICE>_MCP_CLIENT_SECRET",
            );
        }
        let vault_path = ov
            .vault_path
            .clone()
            .unwrap_or_else(|| format!("{}/{}/mcp-client-secret", m.service, m.customer));
        if let Some(why) = vault_path_problem(&vault_path) {
            self.problem(
                self.ovp.k("vault_path"),
                format!("{vault_path:?} {why}; expected a relative path without spaces like \"<service>/<customer>/mcp-client-secret\""),
                "remove the override to get <service>/<customer>/mcp-client-secret",
            );
        }
        let lifetime_days = ov
            .secret_lifetime_days
            .unwrap_or(self.d.secret.lifetime_days);
        if ov.secret_lifetime_days.is_some() {
            check_lifetime(
                lifetime_days,
                self.ovp.k("secret_lifetime_days"),
                Origin::Service,
                &mut self.problems,
            );
        }
        SecretSpec {
            env: secret_env,
            vault_path,
            lifetime_days,
            display_name: ov
                .secret_display_name
                .clone()
                .unwrap_or_else(|| format!("entraform {}", m.service)),
            held_by: m.secret.held_by,
        }
    }

    /// The vault: the default one, or one of defaults.yaml chosen by name.
    fn vault(&mut self) -> VaultConfig {
        let d = self.d;
        match &self.m.vault {
            None => d.vault.clone(),
            Some(VaultChoice::Name(name)) if name == "default" => d.vault.clone(),
            Some(VaultChoice::Name(name)) => match d.vaults.get(name) {
                Some(v) => v.clone(),
                None => {
                    let known: Vec<&str> = std::iter::once("default")
                        .chain(d.vaults.keys().map(String::as_str))
                        .collect();
                    let suggestion = crate::similar::did_you_mean(name, known.iter().copied())
                        .map(|b| format!("did you mean `{b}`? "))
                        .unwrap_or_default();
                    self.problem(
                        self.root.k("vault"),
                        format!(
                            "{name:?} is not a vault of defaults.yaml; expected one of: {}",
                            known.join(", ")
                        ),
                        format!(
                            "{suggestion}declare it in defaults.yaml under `vaults: {{{name}: {{backend: …}}}}`, \
                             or remove `vault:` to use the default vault"
                        ),
                    );
                    d.vault.clone()
                }
            },
            Some(VaultChoice::Declaration(_)) => {
                self.problem(
                    self.root.k("vault"),
                    "a vault declaration is refused here: a service manifest cannot declare a program to run; declare it in defaults.yaml under vaults: and choose it by name",
                    "write `vault: NAME` (`default`, or a key of `vaults:` in defaults.yaml, which is trusted configuration reviewed like code); the service can still set its path with `overrides.vault_path`",
                );
                d.vault.clone()
            }
        }
    }

    /// The values the deployment fragments are rendered from.
    fn deploy(
        &mut self,
        host: &str,
        blue_green: Option<crate::desired::BlueGreenSpec>,
    ) -> DeploySpec {
        let (m, d) = (self.m, self.d);
        let ov = &m.overrides;
        let container_name = self.container_name();
        let container_port = ov.container_port.unwrap_or(3000);
        if container_port == 0 {
            self.problem(
                self.ovp.k("container_port"),
                "0; expected the port the MCP server listens on inside its container",
                "remove the override to get 3000",
            );
        }
        let proxy_name = self.proxy_name();
        let upstream_host = ov
            .upstream_host
            .clone()
            .unwrap_or_else(|| d.tunnel.upstream_host.clone());
        if let Some(h) = &ov.upstream_host
            && let Some((msg, hint)) = upstream_problem(h)
        {
            self.problem(self.ovp.k("upstream_host"), msg, hint);
        }
        let networks = self.networks();
        let (allowed_hosts, allowed_origins) = self.allowed(&container_name, host);
        DeploySpec {
            proxy_port: m.proxy_port,
            container_name: container_name.clone(),
            container_port,
            proxy_name,
            upstream_host,
            tunnel_config: d.tunnel.config.clone(),
            networks,
            allowed_hosts,
            allowed_origins,
            uses_postgres: m.uses_postgres,
            env_file: ov
                .env_file
                .clone()
                .unwrap_or_else(|| join(&d.paths.services, &format!("{}/.env", m.service))),
            compose_env_file: ov
                .compose_env_file
                .clone()
                .unwrap_or_else(|| d.compose.env_file.clone()),
            build_context: ov
                .build_context
                .clone()
                .unwrap_or_else(|| d.compose.build_context.clone()),
            dockerfile: ov
                .dockerfile
                .clone()
                .unwrap_or_else(|| d.compose.dockerfile.clone()),
            proxy_dir: ov
                .proxy_dir
                .clone()
                .unwrap_or_else(|| join(&d.paths.root, &format!("{}-mcp-proxy", m.service))),
            caddy_image: ov
                .caddy_image
                .clone()
                .unwrap_or_else(|| d.compose.caddy_image.clone()),
            blue_green,
        }
    }

    fn container_name(&mut self) -> String {
        let m = self.m;
        let container_name = m
            .overrides
            .container_name
            .clone()
            .unwrap_or_else(|| format!("{}-mcp", m.service));
        if !NETWORK.is_match(&container_name) {
            self.problem(
                self.ovp.k("container_name"),
                format!(
                    "{container_name:?} is not a container name; expected [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                ),
                "remove the override to get <service>-mcp",
            );
        }
        container_name
    }

    fn proxy_name(&mut self) -> String {
        let m = self.m;
        let proxy_name = m
            .overrides
            .proxy_name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-mcp-proxy", self.d.organisation, m.service));
        if !NETWORK.is_match(&proxy_name) {
            self.problem(
                self.ovp.k("proxy_name"),
                format!(
                    "{proxy_name:?} is not a container name; expected [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                ),
                "remove the override to get <organisation>-<service>-mcp-proxy",
            );
        }
        proxy_name
    }

    fn networks(&mut self) -> Vec<String> {
        let ov = &self.m.overrides;
        let networks = ov
            .networks
            .clone()
            .unwrap_or_else(|| self.d.compose.networks.clone());
        if let Some(list) = &ov.networks {
            for (i, n) in list.iter().enumerate() {
                if !NETWORK.is_match(n) {
                    self.problem(
                        self.ovp.k("networks").i(i),
                        format!(
                            "{n:?} is not a docker network name; expected [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                        ),
                        "use the shared network's name, e.g. \"artemis\"",
                    );
                }
            }
        }
        networks
    }

    /// The proxy's allowed hosts and origins.
    fn allowed(&mut self, container_name: &str, host: &str) -> (Vec<String>, Vec<String>) {
        let (ov, d) = (&self.m.overrides, self.d);
        let allowed_hosts = ov.allowed_hosts.clone().unwrap_or_else(|| {
            let mut v = vec![format!("{container_name}:*")];
            v.extend(d.allowed_hosts.iter().cloned());
            v.push(host.to_string());
            v
        });
        let allowed_origins = ov.allowed_origins.clone().unwrap_or_else(|| {
            let mut v = vec![format!("https://{host}")];
            v.extend(d.allowed_origins.iter().cloned());
            v
        });
        if let Some(list) = &ov.allowed_origins {
            for (i, o) in list.iter().enumerate() {
                if let Some((msg, hint)) = origin_problem(o) {
                    self.problem(self.ovp.k("allowed_origins").i(i), msg, hint);
                }
            }
        }
        (allowed_hosts, allowed_origins)
    }
}

/// A permission added to its API's entry (a new entry for a new API), once.
fn add_permission(rra: &mut Vec<ResourceAccessSpec>, api: &str, spec: PermissionSpec) {
    match rra.iter_mut().find(|r| r.resource_app_id == api) {
        Some(r) => {
            if !r
                .access
                .iter()
                .any(|a| a.id == spec.id && a.kind == spec.kind)
            {
                r.access.push(spec);
            }
        }
        None => rra.push(ResourceAccessSpec {
            resource_app_id: api.to_string(),
            access: vec![spec],
        }),
    }
}

/// Step 9: one AllPrincipals grant per API with delegated scopes; the app's own scope last.
fn consent(rra: &[ResourceAccessSpec], scope: &ScopeSpec) -> Vec<GrantSpec> {
    let mut consent = Vec::new();
    for r in rra {
        let scopes: Vec<&str> = r
            .access
            .iter()
            .filter(|a| a.kind == "Scope")
            .map(|a| a.value.as_str())
            .collect();
        if !scopes.is_empty() {
            consent.push(GrantSpec {
                resource: GrantResource::App(r.resource_app_id.clone()),
                scope: scopes.join(" "),
            });
        }
    }
    consent.push(GrantSpec {
        resource: GrantResource::SelfApp,
        scope: scope.value.clone(),
    });
    consent
}
