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

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::tunnel::TunnelRouting;
use super::{Check, env_prefix, tunnel_name};
use crate::desired::Desired;

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

    /// #2: `GET /<service>/health` → 200.
    async fn health(&self) -> Check {
        let url = self.url(&format!("{}/health", self.service()));
        match self.send(Method::GET, &url, None).await {
            Err(failed) => Check::fail(
                "#2",
                TITLE_HEALTH,
                failed.summary(self.timeout),
                self.unreached_fix(&failed),
            ),
            Ok(seen) if seen.ok_200() => Check::pass("#2", TITLE_HEALTH, seen.summary()),
            Ok(seen) => {
                let specific = match seen.status.as_u16() {
                    401 | 403 => Some(format!(
                        "the auth middleware guards the health path: add `/{}/health` to \
                         `_PUBLIC_PATHS` (seed §4.2 ⑤)",
                        self.service()
                    )),
                    404 => Some(self.health_not_found()),
                    _ => None,
                };
                Check::fail(
                    "#2",
                    TITLE_HEALTH,
                    seen.summary(),
                    self.fix_for(&seen, specific, "200"),
                )
            }
        }
    }

    /// Why `/<service>/health` answered 404: the tunnel (no rule reaches the proxy) or the app
    /// (no route), told apart by the local tunnel config when it was read.
    fn health_not_found(&self) -> String {
        let svc = self.service();
        let app = format!("the server needs `Route(\"/{svc}/health\", health)` (seed §4.2 ④)");
        let up = &self.desired.deploy.upstream_host;
        let port = self.desired.deploy.proxy_port;
        let merge = format!(
            "`entraform render MANIFEST --merge-cloudflared {}` adds `^/{svc}/health$` to \
             http://{up}:{port}",
            self.desired.deploy.tunnel_config
        );
        let route = self.routing.and_then(|r| {
            r.route_ending(&format!("/{svc}/health"))
                .map(|route| (r, route))
        });
        match route {
            Some((r, route)) if route.to_proxy => format!(
                "the tunnel config {} routes {} to the proxy (rule #{}), so the 404 is the \
                 app's: {app}",
                r.config, route.url, route.rule
            ),
            Some((r, route)) => format!(
                "the tunnel config {} sends {} to rule #{} ({}), not to the proxy: {merge}",
                r.config, route.url, route.rule, route.service
            ),
            None => format!(
                "the path is not routed: {app}; a 404 from the tunnel instead means no ingress \
                 rule reaches the proxy: {merge}"
            ),
        }
    }

    /// Fetch and judge a metadata document.
    async fn metadata(&self, url: &Url) -> Metadata {
        let seen = match self.send(Method::GET, url, None).await {
            Err(failed) => return Metadata::Unreached(failed),
            Ok(seen) => seen,
        };
        if !seen.ok_200() {
            return Metadata::Unexpected(seen);
        }
        match self.judge_document(&seen.body) {
            Ok(notes) => Metadata::Valid { seen, notes },
            Err(problems) => Metadata::Invalid { seen, problems },
        }
    }

    /// The metadata document's `resource`, `scopes_supported` and `authorization_servers`
    /// (see the module docs for what is accepted and why).
    fn judge_document(&self, body: &str) -> Result<String, Vec<Problem>> {
        let app_id_uri = self.app_id_uri();
        let prefix = env_prefix(self.service());
        let doc: Value = match serde_json::from_str(body) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Err(vec![Problem {
                    what: format!("the body is not a JSON object: {}", excerpt(body)),
                    fix: format!(
                        "serve the RFC 9728 document here (Route(\"/{}/{WELL_KNOWN}\", \
                         oauth_protected_resource), seed §4.2 ④)",
                        self.service()
                    ),
                }]);
            }
        };
        let mut problems = Vec::new();
        let mut notes = Vec::new();

        let resource_fix = format!(
            "serve the App ID URI as `resource` ({prefix}_MCP_APP_ID_URI={app_id_uri}): claude.ai \
             sends it to Entra as the token request's resource, and Entra rejects a resource that \
             does not prefix the scopes (AADSTS9010010)"
        );
        match doc.get("resource") {
            Some(Value::String(resource)) if resource == app_id_uri => {
                let mut note = "resource = the App ID URI".to_string();
                if self.endpoint.as_str() != app_id_uri {
                    // RFC 9728 §3.3 wants the URL the client used; through the public host
                    // that is the App ID URI.
                    note.push_str(&format!(
                        " (not the probed {}: equal only through the public host)",
                        self.endpoint
                    ));
                }
                notes.push(note);
            }
            Some(Value::String(resource)) => {
                let mut what = format!(
                    "`resource` is `{}`, expected the App ID URI `{app_id_uri}`",
                    excerpt(resource)
                );
                if resource == self.endpoint.as_str() {
                    what.push_str(
                        " (it is the probed endpoint's URL; make the App ID URI that URL)",
                    );
                } else if resource.trim_end_matches('/') == app_id_uri.trim_end_matches('/') {
                    what.push_str(" (they differ only by a trailing slash; RFC 9728 §3.3 wants them identical)");
                }
                problems.push(Problem {
                    what,
                    fix: resource_fix,
                });
            }
            _ => problems.push(Problem {
                what: "no `resource` string (RFC 9728 §2: REQUIRED)".into(),
                fix: resource_fix,
            }),
        }

        let wanted: Vec<String> = self
            .desired
            .app
            .scopes
            .iter()
            .map(|s| format!("{app_id_uri}/{}", s.value))
            .collect();
        let listed: Vec<&str> = doc
            .get("scopes_supported")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scope_fix = format!(
            "list {} in `scopes_supported`: claude.ai requests the scopes it finds there",
            quote_list(&wanted)
        );
        if doc
            .get("scopes_supported")
            .and_then(Value::as_array)
            .is_none()
        {
            problems.push(Problem {
                what: "no `scopes_supported` array".into(),
                fix: scope_fix,
            });
        } else {
            for (full, scope) in wanted.iter().zip(&self.desired.app.scopes) {
                if listed.contains(&full.as_str()) {
                    notes.push(format!("scopes_supported has {full}"));
                } else if listed.contains(&scope.value.as_str()) {
                    problems.push(Problem {
                        what: format!(
                            "`scopes_supported` has the bare `{}` but not `{full}`",
                            scope.value
                        ),
                        fix: format!(
                            "list the full scope `{full}`: Entra reads a scope without a resource \
                             prefix as a Microsoft Graph scope, so the token would not be for this \
                             app (https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc)"
                        ),
                    });
                } else {
                    problems.push(Problem {
                        what: format!(
                            "`scopes_supported` ({}) does not list `{full}`",
                            excerpt(&quote_list(&listed))
                        ),
                        fix: scope_fix.clone(),
                    });
                }
            }
        }

        let tenant = &self.desired.tenant_id;
        let servers: Vec<&str> = doc
            .get("authorization_servers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let server_fix = format!(
            "serve `\"authorization_servers\": [\"https://login.microsoftonline.com/{tenant}/v2.0\"]` \
             (the MCP authorization spec requires at least one)"
        );
        if servers.is_empty() {
            problems.push(Problem {
                what: "no `authorization_servers`".into(),
                fix: server_fix,
            });
        } else if let Some(server) = servers.iter().find(|s| s.contains(tenant.as_str())) {
            notes.push(format!("authorization server {server}"));
        } else {
            problems.push(Problem {
                what: format!(
                    "`authorization_servers` ({}) does not name the tenant {tenant}",
                    excerpt(&quote_list(&servers))
                ),
                fix: server_fix,
            });
        }

        if problems.is_empty() {
            Ok(notes.join("; "))
        } else {
            Err(problems)
        }
    }

    /// A metadata check from a fetch outcome. `unreachable_is_warning` is for the RFC 9728
    /// default location, which the rendered tunnel rules do not route.
    fn metadata_check(
        &self,
        id: &str,
        title: &str,
        outcome: Metadata,
        on_unexpected: impl FnOnce(&Seen) -> Option<String>,
        unreachable_is_warning: Option<&str>,
    ) -> Check {
        match outcome {
            Metadata::Valid { seen, notes } => Check::pass(
                id,
                title,
                format!(
                    "{} {} → {}: {notes}",
                    seen.method,
                    seen.url,
                    status_text(seen.status)
                ),
            ),
            Metadata::Invalid { seen, problems } => invalid_check(id, title, &seen, &problems),
            Metadata::Unexpected(seen) => {
                let advice = on_unexpected(&seen).or_else(|| self.common_fix(&seen));
                match unreachable_is_warning {
                    Some(why) => {
                        let fix = match advice {
                            Some(advice) => format!("{why}\n{advice}"),
                            None => why.to_string(),
                        };
                        Check::warn(id, title, seen.summary(), fix)
                    }
                    None => {
                        let fix = self.fix_for(&seen, advice, "200 with the metadata document");
                        Check::fail(id, title, seen.summary(), fix)
                    }
                }
            }
            Metadata::Unreached(failed) => {
                let fix = self.unreached_fix(&failed);
                match unreachable_is_warning {
                    Some(why) => Check::warn(
                        id,
                        title,
                        failed.summary(self.timeout),
                        format!("{why}\n{fix}"),
                    ),
                    None => Check::fail(id, title, failed.summary(self.timeout), fix),
                }
            }
        }
    }

    /// #3: `GET /<service>/.well-known/oauth-protected-resource`.
    async fn metadata_service_path(&self) -> Check {
        let path = format!("{}/{WELL_KNOWN}", self.service());
        let outcome = self.metadata(&self.url(&path)).await;
        self.metadata_check(
            "#3",
            TITLE_METADATA,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the metadata is behind auth: add `/{path}` to `_PUBLIC_PATHS` (seed §4.2 ⑤); \
                     a client cannot log in without reading it first"
                )),
                404 => Some(format!(
                    "the path is not routed: the server needs `Route(\"/{path}\", \
                     oauth_protected_resource)` (seed §4.2 ④) and the tunnel the rule \
                     `^/{svc}/\\.well-known/oauth-protected-resource(/.*)?$` (entraform render)",
                    svc = self.service()
                )),
                _ => None,
            },
            None,
        )
    }

    /// #3a: `GET /<service>/mcp/.well-known/oauth-protected-resource`.
    async fn metadata_resource_level(&self) -> Check {
        let path = format!("{}/mcp/{WELL_KNOWN}", self.service());
        let outcome = self.metadata(&self.url(&path)).await;
        self.metadata_check(
            "#3a",
            TITLE_METADATA_RESOURCE,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the resource-level metadata is behind auth, so claude.ai's reconnect loops on \
                     \"Connection has expired\": add `/{path}` to `_PUBLIC_PATHS` and to \
                     `inner.router` (troubleshooting: D-ops-23)"
                )),
                404 => Some(format!(
                    "the path is not routed: serve the metadata at `/{path}` too, public \
                     (troubleshooting: D-ops-23)"
                )),
                _ => None,
            },
            None,
        )
    }

    /// #3b: `GET /.well-known/oauth-protected-resource/<service>/mcp`, where RFC 9728 §3.1 puts
    /// the metadata of `https://<host>/<service>/mcp`. Unreachable is a warning: clients that
    /// follow `resource_metadata` (#4) never ask here.
    async fn metadata_default_location(&self) -> Check {
        let mut url = self.root.clone();
        url.set_path(&format!("/{WELL_KNOWN}{}", self.endpoint.path()));
        let outcome = self.metadata(&url).await;
        let rule = format!(
            "^/\\.well-known/oauth-protected-resource{}$",
            regex::escape(self.endpoint.path())
        );
        let why = format!(
            "a client that builds the metadata URL itself (RFC 9728 §3.1) looks here; harmless \
             while WWW-Authenticate's resource_metadata (#4) points at a routed path. To serve \
             it: a tunnel rule `{rule}` to http://{}:{} and a public route for the path",
            self.desired.deploy.upstream_host, self.desired.deploy.proxy_port
        );
        self.metadata_check(
            "#3b",
            TITLE_METADATA_DEFAULT,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the path is behind auth: add `{}` to `_PUBLIC_PATHS`",
                    url.path()
                )),
                _ => None,
            },
            Some(&why),
        )
    }

    /// #4: `POST /<service>/mcp` without a token → 401 with `WWW-Authenticate: Bearer …
    /// resource_metadata="…"`, and that URL serves the metadata.
    async fn no_bearer(&self) -> Check {
        let (id, title) = ("#4", TITLE_NO_BEARER);
        let seen = match self.send(Method::POST, &self.endpoint, None).await {
            Err(failed) => {
                return Check::fail(
                    id,
                    title,
                    failed.summary(self.timeout),
                    self.unreached_fix(&failed),
                );
            }
            Ok(seen) => seen,
        };
        let header_fix = format!(
            "every 401 must carry `WWW-Authenticate: Bearer resource_metadata=\"{}\"` (RFC 9728 \
             §5.1; seed §4.2 ②): it is how claude.ai finds where to log in",
            self.expected_resource_metadata()
        );
        if seen.status != StatusCode::UNAUTHORIZED || seen.redirect.is_some() {
            let specific = match seen.status.as_u16() {
                200..=299 => Some(format!(
                    "the MCP endpoint answers without a token: the JWT auth middleware must guard \
                     `/{}/mcp` (seed §4.2 ⑤)",
                    self.service()
                )),
                403 => Some(format!(
                    "answer a missing token with 401, not 403: {header_fix}"
                )),
                404 => Some(format!(
                    "the endpoint is not routed: `Mount(\"/{svc}\", app=mcp_app)` (seed §4.2 ④) \
                     and the tunnel rule `^/{svc}/mcp(/.*)?$` (entraform render)",
                    svc = self.service()
                )),
                _ => None,
            };
            return Check::fail(
                id,
                title,
                seen.summary(),
                self.fix_for(&seen, specific, "401"),
            );
        }
        let values: Vec<String> = seen
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.is_empty() {
            return Check::fail(
                id,
                title,
                format!("{}; no WWW-Authenticate header", seen.summary()),
                header_fix,
            );
        }
        let challenges: Vec<Challenge> = values.iter().flat_map(|v| parse_challenges(v)).collect();
        let shown = excerpt(&values.join(", "));
        let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        else {
            return Check::fail(
                id,
                title,
                format!(
                    "{}; WWW-Authenticate: {shown} has no Bearer challenge",
                    seen.summary()
                ),
                header_fix,
            );
        };
        let Some(metadata_ref) = bearer.param("resource_metadata") else {
            return Check::fail(
                id,
                title,
                format!(
                    "{}; WWW-Authenticate: {shown} has no resource_metadata",
                    seen.summary()
                ),
                header_fix,
            );
        };
        let metadata_url = match self.endpoint.join(metadata_ref) {
            Ok(url) => url,
            Err(err) => {
                return Check::fail(
                    id,
                    title,
                    format!(
                        "401, WWW-Authenticate: {shown}; resource_metadata is not a URL: {err}"
                    ),
                    header_fix,
                );
            }
        };
        let head = format!(
            "{} {} → 401, WWW-Authenticate: {shown}",
            seen.method, seen.url
        );
        let mut point_fix = format!(
            "point resource_metadata at a public, routed path: `{}` (seed §4.2 ②)",
            self.expected_resource_metadata()
        );
        if metadata_url.scheme() != self.endpoint.scheme() {
            // Behind Caddy/cloudflared the app sees plain HTTP; a URL built from the request
            // gets the wrong scheme.
            point_fix = format!(
                "resource_metadata says {}:// but the service is served over {}: build the URL \
                 from the App ID URI, not from the request the proxy forwarded; {point_fix}",
                metadata_url.scheme(),
                self.endpoint.scheme()
            );
        }
        match self.metadata(&metadata_url).await {
            Metadata::Valid { seen: doc, notes } => Check::pass(
                id,
                title,
                format!(
                    "{head}; GET {} → {}: {notes}",
                    doc.url,
                    status_text(doc.status)
                ),
            ),
            Metadata::Invalid {
                seen: doc,
                problems,
            } => {
                let mut check = invalid_check(id, title, &doc, &problems);
                check.detail = format!("{head}; {}", check.detail);
                check
            }
            Metadata::Unexpected(doc) => {
                let specific = match doc.status.as_u16() {
                    401 | 403 => Some(format!(
                        "the metadata that resource_metadata names is behind auth: add `{}` to \
                         `_PUBLIC_PATHS`",
                        doc.url.path()
                    )),
                    _ if metadata_url.scheme() != self.endpoint.scheme() => Some(point_fix),
                    404 => Some(point_fix),
                    _ => None,
                };
                let fix = self.fix_for(&doc, specific, "200 with the metadata document");
                Check::fail(
                    id,
                    title,
                    format!("{head}; resource_metadata: {}", doc.summary()),
                    fix,
                )
            }
            Metadata::Unreached(failed) => Check::fail(
                id,
                title,
                format!(
                    "{head}; resource_metadata: {}",
                    failed.summary(self.timeout)
                ),
                format!("{point_fix}\n{}", self.unreached_fix(&failed)),
            ),
        }
    }

    /// #5: `POST /<service>/mcp` with a fake bearer → 401 whose JSON body says why
    /// (`error.context.reason`, seed §4.2 ②, §10 #2).
    async fn fake_bearer(&self) -> Check {
        let (id, title) = ("#5", TITLE_FAKE_BEARER);
        let seen = match self
            .send(Method::POST, &self.endpoint, Some(FAKE_BEARER))
            .await
        {
            Err(failed) => {
                return Check::fail(
                    id,
                    title,
                    failed.summary(self.timeout),
                    self.unreached_fix(&failed),
                );
            }
            Ok(seen) => seen,
        };
        let container = &self.desired.deploy.container_name;
        let reason_fix = "`_unauthorized` must put the reason in the log and in the body as \
                          error.message and error.context.reason: `{\"error\": {\"code\": …, \
                          \"message\": <reason>, \"context\": {\"request_id\": …, \"reason\": \
                          <reason>}}}` (seed §4.2 ②, §10 #2); with one fixed message every 401 \
                          looks the same and the cause stays hidden";
        if seen.status != StatusCode::UNAUTHORIZED || seen.redirect.is_some() {
            let specific = match seen.status.as_u16() {
                200..=299 => Some(format!(
                    "the server ACCEPTED a fake token: check the JWT verification in \
                     auth_oidc.py (signature, audience, issuer; seed §4.1) and `docker logs {container}`"
                )),
                403 => Some(format!(
                    "answer an invalid token with 401, not 403; {reason_fix}"
                )),
                500 if !seen.body.contains("Task group is not initialized") => Some(format!(
                    "the token verifier crashes instead of answering 401: `docker logs {container} \
                     --since 5m 2>&1 | grep -iE 'error|exception|traceback'`; seen before: a \
                     2-argument httpx.Timeout (seed §10 #1), a stale DATABASE_URL making every \
                     Bearer request a 500 (§10 #6, check #15)"
                )),
                _ => None,
            };
            return Check::fail(
                id,
                title,
                seen.summary(),
                self.fix_for(&seen, specific, "401"),
            );
        }
        let body: Option<Value> = serde_json::from_str(&seen.body).ok();
        let error = body.as_ref().and_then(|b| b.get("error"));
        let reason = error
            .and_then(|e| e.pointer("/context/reason"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
        match (reason, message) {
            (Some(reason), Some(message)) => {
                let mut detail = format!(
                    "{} {} → 401, reason: {}",
                    seen.method,
                    seen.url,
                    excerpt(reason)
                );
                if message != reason {
                    detail.push_str(&format!(" (error.message: {})", excerpt(message)));
                }
                Check::pass(id, title, detail)
            }
            (Some(_), None) => Check::fail(
                id,
                title,
                format!(
                    "{}; error.context.reason is there but error.message is not",
                    seen.summary()
                ),
                reason_fix,
            ),
            (None, _) => {
                let what = if body.is_none() {
                    "the body is not JSON"
                } else {
                    "no error.context.reason in the body"
                };
                Check::fail(id, title, format!("{}; {what}", seen.summary()), reason_fix)
            }
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

/// One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    /// Auth-params in order; names as sent (compare case-insensitively).
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter's value by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parse a `WWW-Authenticate` value into challenges: `Bearer error="invalid_token",
/// resource_metadata="https://…"`, several comma-separated challenges, quoted strings with
/// backslash escapes. Lenient: anything it cannot read is skipped, never an error.
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip_ws(&mut i);
        if i < chars.len() && chars[i] == ',' {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_tchar(chars[i]) {
            i += 1;
        }
        if i == start {
            // Not a token (stray quote, `=`, non-ASCII): skip the character.
            i += 1;
            continue;
        }
        let token: String = chars[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if j < chars.len() && chars[j] == '=' {
            // An auth-param of the current challenge (or the `=` padding of a token68).
            j += 1;
            skip_ws(&mut j);
            let mut val = String::new();
            if j < chars.len() && chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    val.push(chars[j]);
                    j += 1;
                }
                j += 1; // closing quote (or end)
            } else {
                // RFC 9110 allows only a token here, but servers do send unquoted URLs
                // (`resource_metadata=https://…`): read up to the next comma or space.
                while j < chars.len() && !matches!(chars[j], ',' | ' ' | '\t') {
                    val.push(chars[j]);
                    j += 1;
                }
            }
            if let Some(current) = out.last_mut() {
                current.params.push((token, val));
            }
            i = j.min(chars.len());
        } else {
            out.push(Challenge {
                scheme: token,
                params: Vec::new(),
            });
        }
    }
    out
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
