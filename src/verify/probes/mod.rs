//! The HTTP half of `entraform verify --url`: checklist #2–#5 against the running service.
//!
//! Every probe is one plain request with its own timeout; redirects are never followed (a
//! connector does not follow them for its POSTs either) but reported. A failing check says what
//! was seen (method, URL, status, the header that is missing, a body excerpt of at most 200
//! characters) and the fix the seed wrote down for that symptom.
//!
//! What "right" means for the metadata document (RFC 9728, <https://www.rfc-editor.org/rfc/rfc9728>):
//! - `resource` must be the App ID URI. RFC 9728 §3.3 wants it identical to the URL the client
//!   used for the resource (`https://<host>/<service>/mcp`), and Entra wants the token request's
//!   `resource` to prefix the requested scopes (else AADSTS9010010). With the default App ID URI
//!   both are the same string; when probing through another origin (a test URL) only the App ID
//!   URI can match, and the report says so.
//! - `scopes_supported` must hold the fully qualified `<App ID URI>/mcp.access`. A bare
//!   `mcp.access` is not accepted: Entra reads a scope without a resource prefix as a Microsoft
//!   Graph scope (<https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc>), so the
//!   token would not be for this app.
//! - `authorization_servers` must name the customer's tenant (the MCP authorization spec
//!   requires at least one: <https://modelcontextprotocol.io/specification/2025-06-18/basic/authorization>).

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use super::tunnel::TunnelRouting;
use super::{Check, env_prefix, tunnel_name};
use crate::desired::Desired;

mod bearer;
mod challenge;
mod health;
mod metadata;

pub use challenge::{Challenge, parse_challenges};

/// Per-request timeout of every probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The seed's fake token for #5 (§9): a JWT-shaped string no verifier accepts.
pub const FAKE_BEARER: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZXN0IjoxfQ.invalid";

/// The RFC 9728 well-known suffix.
pub const WELL_KNOWN: &str = ".well-known/oauth-protected-resource";

/// Longest body excerpt shown in a check (characters).
const EXCERPT_CHARS: usize = 200;
/// Most of a body read (a metadata document or an error body is far smaller).
const BODY_CAP: usize = 64 * 1024;
/// What #4 and #5 POST: an MCP `initialize`, as a connector's first request would be.
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","method":"initialize","id":1,"params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"entraform-verify","version":"0"}}}"#;

pub(crate) const TITLE_HEALTH: &str = "health endpoint → 200";
pub(crate) const TITLE_METADATA: &str = "OAuth metadata at the service path";
pub(crate) const TITLE_METADATA_RESOURCE: &str = "OAuth metadata at the resource-level path";
pub(crate) const TITLE_METADATA_DEFAULT: &str = "OAuth metadata at the RFC 9728 default location";
pub(crate) const TITLE_NO_BEARER: &str = "no bearer → 401 + WWW-Authenticate resource_metadata";
pub(crate) const TITLE_FAKE_BEARER: &str = "fake bearer → 401 with error.context.reason";

/// A client fit for the probes: no redirects followed, [`PROBE_TIMEOUT`], and `extra_roots`
/// trusted besides the built-in roots (`--ca-cert`).
pub fn probe_client(extra_roots: Vec<reqwest::Certificate>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROBE_TIMEOUT)
        .user_agent(concat!("entraform/", env!("CARGO_PKG_VERSION"), " verify"))
        .tls_certs_merge(extra_roots)
        .build()
}

/// Checklist #2–#5 against `base` (the public origin, e.g. `https://axe.axelabs.ai`), each
/// request with a 5 s timeout. Returns, in order: #2 health, #3 metadata at the service path,
/// #3a at the resource-level path, #3b at the RFC 9728 default location (a warning when
/// unreachable), #4 no bearer, #5 fake bearer.
///
/// Use a client that does not follow redirects ([`probe_client`]); with one that does, a
/// redirect is still reported (the final URL differs from the one asked for).
pub async fn probe_http(base: &Url, desired: &Desired, client: &reqwest::Client) -> Vec<Check> {
    probe_http_with(base, desired, client, PROBE_TIMEOUT).await
}

/// [`probe_http`] with another per-request timeout.
pub async fn probe_http_with(
    base: &Url,
    desired: &Desired,
    client: &reqwest::Client,
    timeout: Duration,
) -> Vec<Check> {
    probe_http_routed(base, desired, client, timeout, None).await
}

/// [`probe_http_with`], knowing what the local tunnel config routes (`verify` reads it when it
/// is on this machine), so a 404 says whether the tunnel or the app answered it.
pub async fn probe_http_routed(
    base: &Url,
    desired: &Desired,
    client: &reqwest::Client,
    timeout: Duration,
    routing: Option<&TunnelRouting>,
) -> Vec<Check> {
    let mut target = Target::new(base, desired, client, timeout);
    target.routing = routing;
    let (health, meta, meta_resource, meta_default, no_bearer, fake_bearer) = tokio::join!(
        target.health(),
        target.metadata_service_path(),
        target.metadata_resource_level(),
        target.metadata_default_location(),
        target.no_bearer(),
        target.fake_bearer(),
    );
    vec![
        health,
        meta,
        meta_resource,
        meta_default,
        no_bearer,
        fake_bearer,
    ]
}

/// The service as seen from the probe's origin.
struct Target<'a> {
    desired: &'a Desired,
    client: &'a reqwest::Client,
    timeout: Duration,
    /// The base URL with a path ending in `/`.
    root: Url,
    /// `<root><service>/mcp`: the MCP endpoint, the protected resource.
    endpoint: Url,
    /// What the local tunnel config routes, when it was read.
    routing: Option<&'a TunnelRouting>,
}

/// A response, read up to [`BODY_CAP`].
struct Seen {
    method: Method,
    url: Url,
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    /// `Location` of a 3xx, or the final URL when the client followed a redirect.
    redirect: Option<String>,
}

impl Seen {
    /// `GET <url> → 404 Not Found: <excerpt>` (plus the redirect target).
    fn summary(&self) -> String {
        let mut s = format!(
            "{} {} → {}",
            self.method,
            self.url,
            status_text(self.status)
        );
        if let Some(to) = &self.redirect {
            s.push_str(&format!(" (redirect to {})", excerpt(to)));
        }
        let body = excerpt(&self.body);
        if !body.is_empty() {
            s.push_str(": ");
            s.push_str(&body);
        }
        s
    }

    fn ok_200(&self) -> bool {
        self.status == StatusCode::OK && self.redirect.is_none()
    }
}

/// A request that got no response.
struct Unreached {
    method: Method,
    url: Url,
    kind: UnreachedKind,
    message: String,
}

#[derive(PartialEq)]
enum UnreachedKind {
    Timeout,
    Connect,
    Tls,
    Other,
}

impl Unreached {
    fn summary(&self, timeout: Duration) -> String {
        match self.kind {
            UnreachedKind::Timeout => format!(
                "{} {} → no response within {}",
                self.method,
                self.url,
                fmt_duration(timeout)
            ),
            _ => format!("{} {} → {}", self.method, self.url, self.message),
        }
    }
}

/// The outcome of fetching a metadata document.
enum Metadata {
    /// 200 and the document is right; the notes say what was accepted.
    Valid {
        seen: Seen,
        notes: String,
    },
    /// 200 but the document is wrong.
    Invalid {
        seen: Seen,
        problems: Vec<Problem>,
    },
    /// Another status (or a redirect).
    Unexpected(Seen),
    Unreached(Unreached),
}

/// One thing wrong with a metadata document, and its fix.
struct Problem {
    what: String,
    fix: String,
}

impl<'a> Target<'a> {
    fn new(
        base: &Url,
        desired: &'a Desired,
        client: &'a reqwest::Client,
        timeout: Duration,
    ) -> Self {
        let mut root = base.clone();
        root.set_query(None);
        root.set_fragment(None);
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let mut target = Target {
            desired,
            client,
            timeout,
            endpoint: root.clone(),
            root,
            routing: None,
        };
        target.endpoint = target.url(&format!("{}/mcp", desired.service));
        target
    }

    /// `<root><relative>`.
    fn url(&self, relative: &str) -> Url {
        let mut url = self.root.clone();
        let path = format!("{}{}", self.root.path(), relative);
        url.set_path(&path);
        url
    }

    fn service(&self) -> &str {
        &self.desired.service
    }

    fn app_id_uri(&self) -> &str {
        &self.desired.app.identifier_uri
    }

    /// Where the seed's server points `resource_metadata` (§4.2 ②): the App ID URI without
    /// `/mcp`, plus the well-known suffix.
    fn expected_resource_metadata(&self) -> String {
        let uri = self.app_id_uri().trim_end_matches('/');
        let stem = uri.strip_suffix("/mcp").unwrap_or(uri);
        format!("{stem}/{WELL_KNOWN}")
    }

    fn tunnel(&self) -> String {
        tunnel_name(self.desired).unwrap_or_else(|| "TUNNEL".into())
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        bearer: Option<&str>,
    ) -> Result<Seen, Unreached> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .timeout(self.timeout);
        if method == Method::POST {
            // Streamable HTTP wants both media types in Accept; without them a server may answer
            // 406 before its auth middleware gets to say 401.
            request = request
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .body(INITIALIZE);
        }
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let unreached = |err: reqwest::Error| Unreached {
            method: method.clone(),
            url: url.clone(),
            kind: if err.is_timeout() {
                UnreachedKind::Timeout
            } else if error_chain(&err)
                .to_ascii_lowercase()
                .contains("certificate")
            {
                UnreachedKind::Tls
            } else if err.is_connect() {
                UnreachedKind::Connect
            } else {
                UnreachedKind::Other
            },
            message: error_chain(&err),
        };
        let mut response = request.send().await.map_err(unreached)?;
        let status = response.status();
        let headers = response.headers().clone();
        let redirect = if status.is_redirection() {
            Some(
                headers
                    .get(LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_else(|| "no Location header".into()),
            )
        } else if response.url() != url {
            Some(response.url().to_string())
        } else {
            None
        };
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = BODY_CAP - bytes.len();
                    if chunk.len() >= room {
                        bytes.extend_from_slice(&chunk[..room]);
                        break;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    let mut failed = unreached(err);
                    failed.message = format!(
                        "{}, then reading the body failed: {}",
                        status_text(status),
                        failed.message
                    );
                    return Err(failed);
                }
            }
        }
        Ok(Seen {
            method,
            url: url.clone(),
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            redirect,
        })
    }

    /// What to do about a status the check did not expect: the check's own advice for this
    /// status first, then the seed's advice for the symptom, then a plain statement.
    fn fix_for(&self, seen: &Seen, specific: Option<String>, expected: &str) -> String {
        specific
            .or_else(|| self.common_fix(seen))
            .unwrap_or_else(|| format!("expected {expected}; see the response above"))
    }

    /// The seed's fixes for symptoms that look the same on every path.
    fn common_fix(&self, seen: &Seen) -> Option<String> {
        let container = &self.desired.deploy.container_name;
        if seen.redirect.is_some() {
            return Some(
                "entraform does not follow redirects, and a connector does not follow them for \
                 its POSTs: pass the final origin as --url, or serve the path without a redirect"
                    .into(),
            );
        }
        if seen.status == StatusCode::MISDIRECTED_REQUEST
            || seen.body.contains("Invalid Host header")
        {
            let host = match (seen.url.host_str(), seen.url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => self.desired.host.clone(),
            };
            return Some(format!(
                "the MCP server's DNS-rebinding guard rejects the Host header `{host}`: add it to \
                 {}_MCP_ALLOWED_HOSTS in the compose environment, which sets \
                 `mcp.settings.transport_security.allowed_hosts` (seed §4.2 ③, §10 #5)",
                env_prefix(self.service())
            ));
        }
        if seen.body.contains("Task group is not initialized") {
            return Some(
                "FastMCP's lifespan does not run: the Starlette lifespan must enter \
                 `mcp_app.router.lifespan_context(app)` (seed §4.2 ①, §10 #4)"
                    .into(),
            );
        }
        match seen.status.as_u16() {
            500 => Some(format!(
                "the server fails on this request (a 500 on every request is the whole app): read \
                 the traceback with `docker logs {container} --since 5m 2>&1 | grep -iE \
                 'error|exception|traceback'` (seed §9); seen before: a 2-argument httpx.Timeout \
                 (§10 #1), a stale DATABASE_URL in the env file (§10 #6)"
            )),
            502..=504 => Some(format!(
                "the proxy cannot reach the container: `docker ps | grep {container}`, then \
                 `docker logs {} --since 5m`",
                self.desired.deploy.proxy_name
            )),
            530 => Some(format!(
                "Cloudflare cannot reach the tunnel: `cloudflared tunnel info {}`",
                self.tunnel()
            )),
            _ => None,
        }
    }

    /// The failed check for a request that got no answer: what happened and where to look.
    fn unreached(&self, id: &'static str, title: &'static str, failed: &Unreached) -> Check {
        Check::fail(
            id,
            title,
            failed.summary(self.timeout),
            self.unreached_fix(failed),
        )
    }

    fn unreached_fix(&self, failed: &Unreached) -> String {
        let container = &self.desired.deploy.container_name;
        let tunnel = self.tunnel();
        match failed.kind {
            UnreachedKind::Timeout => format!(
                "nothing answered in time: is the container up (`docker ps | grep {container}`) \
                 and the tunnel connected (`cloudflared tunnel info {tunnel}`)?"
            ),
            UnreachedKind::Tls => "the TLS handshake failed: for a server with a private CA, \
                                   pass its root with --ca-cert FILE"
                .into(),
            UnreachedKind::Connect | UnreachedKind::Other => format!(
                "nothing accepts the request at {}: check the URL and DNS, then the tunnel \
                 (`cloudflared tunnel info {tunnel}`) and the proxy (`docker ps | grep {}`)",
                failed.url.origin().ascii_serialization(),
                self.desired.deploy.proxy_name
            ),
        }
    }
}

/// A 200 whose metadata document is wrong.
fn invalid_check(id: &str, title: &str, seen: &Seen, problems: &[Problem]) -> Check {
    let whats: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
    let mut fixes: Vec<&str> = Vec::new();
    for p in problems {
        if !fixes.contains(&p.fix.as_str()) {
            fixes.push(&p.fix);
        }
    }
    Check::fail(
        id,
        title,
        format!(
            "{} {} → {}, but {}",
            seen.method,
            seen.url,
            status_text(seen.status),
            whats.join("; ")
        ),
        fixes.join("\n"),
    )
}

/// `404 Not Found`.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// One line, at most [`EXCERPT_CHARS`] characters (control characters and runs of whitespace
/// become one space; a cut ends in `…`).
pub(crate) fn excerpt(text: &str) -> String {
    let mut flat = String::new();
    let mut last_space = true;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            if !last_space {
                flat.push(' ');
                last_space = true;
            }
        } else {
            flat.push(c);
            last_space = false;
        }
    }
    let flat = flat.trim_end();
    if flat.chars().count() <= EXCERPT_CHARS {
        flat.to_string()
    } else {
        let mut cut: String = flat.chars().take(EXCERPT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What went wrong, in the words of the innermost cause (`Connection refused (os error 111)`,
/// `invalid peer certificate: UnknownIssuer`); reqwest's outer layers only repeat the URL.
fn error_chain(err: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    let kind = if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "cannot read the response"
    } else {
        "request failed"
    };
    format!("{kind}: {innermost}")
}
