//! The HTTP probes of `entraform verify --url` (#2–#5) against an in-test server that behaves
//! like frame's `mcp/http_server.py` behind the tunnel, and against variants that reproduce each
//! failure the seeds recorded (checklist §10, troubleshooting's RFC 9728 metadata path).

use crate::support::common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, HOST, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use entraform::exit::ExitStatus;
use entraform::verify::probes::{probe_client, probe_http, probe_http_with};
use entraform::verify::{Check, CheckStatus, VerifyReport, manual_checks};
use serde_json::json;
use url::Url;

const TENANT: &str = "122fb574-7efa-476a-95b6-bee81bce2cce";
const APP_ID_URI: &str = "https://axe.axelabs.ai/blueprint/mcp";
const META_SERVICE: &str = "/blueprint/.well-known/oauth-protected-resource";
const META_RESOURCE: &str = "/blueprint/mcp/.well-known/oauth-protected-resource";
const META_DEFAULT: &str = "/.well-known/oauth-protected-resource/blueprint/mcp";

use common::blueprint;

/// How the fake server behaves. `good()` is the known-good frame pattern (seed §4.2); each
/// test flips what one failure of the seeds got wrong.
#[derive(Clone)]
struct Frame {
    /// `/blueprint/.well-known/oauth-protected-resource` in `_PUBLIC_PATHS`.
    public_metadata: bool,
    /// `/blueprint/mcp/.well-known/oauth-protected-resource` in `_PUBLIC_PATHS` (D-ops-23).
    public_resource_level: bool,
    /// The tunnel routes the RFC 9728 default location and the app serves it.
    default_location: bool,
    /// `resource` in the metadata; `{host}` is replaced by the request's Host.
    resource: String,
    scopes: Vec<String>,
    /// 401s carry `WWW-Authenticate`.
    www_authenticate: bool,
    /// The path `resource_metadata` points at (on the requested host).
    resource_metadata_path: String,
    /// `_unauthorized` puts the reason in the body (seed §10 #2 fixed).
    reason_in_body: bool,
    /// FastMCP's DNS-rebinding guard: only this Host passes, else 421.
    allowed_host: Option<String>,
    /// Every request is a 500 (seed §10 #1, #6).
    always_500: bool,
    /// 301 everything to this origin.
    redirect_to: Option<String>,
    /// Never answer.
    hang: bool,
    /// The scheme the app puts in `resource_metadata` (it sees plain HTTP behind the proxy).
    scheme: &'static str,
    /// The app serves `Route("/blueprint/health", health)` (seed §4.2 ④).
    health_route: bool,
}

impl Frame {
    fn good() -> Self {
        Frame {
            public_metadata: true,
            public_resource_level: true,
            default_location: true,
            resource: APP_ID_URI.into(),
            scopes: vec![format!("{APP_ID_URI}/mcp.access")],
            www_authenticate: true,
            resource_metadata_path: META_SERVICE.into(),
            reason_in_body: true,
            allowed_host: None,
            always_500: false,
            redirect_to: None,
            hang: false,
            scheme: "http",
            health_route: true,
        }
    }

    fn metadata(&self, host: &str) -> serde_json::Value {
        json!({
            "resource": self.resource.replace("{host}", host),
            "authorization_servers": [format!("https://login.microsoftonline.com/{TENANT}/v2.0")],
            "scopes_supported": self.scopes,
            "bearer_methods_supported": ["header"],
        })
    }
}

/// The tunnel (only the service's paths and, when routed, the default location reach the app),
/// then the app: the DNS-rebinding guard, the JWT middleware with its public paths, the routes.
async fn handle(
    State(f): State<Arc<Frame>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if f.hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = uri.path();
    if let Some(to) = &f.redirect_to {
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(LOCATION, format!("{to}{path}"))],
        )
            .into_response();
    }
    let routed = path.starts_with("/blueprint/") || (f.default_location && path == META_DEFAULT);
    if !routed {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    if f.always_500 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    if let Some(allowed) = &f.allowed_host
        && host != *allowed
    {
        return (StatusCode::MISDIRECTED_REQUEST, "Invalid Host header").into_response();
    }
    let public = path == "/blueprint/health"
        || (f.public_metadata && path == META_SERVICE)
        || (f.public_resource_level && path == META_RESOURCE)
        || path == META_DEFAULT;
    if !public {
        let reason = match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            None => "missing bearer token",
            Some(v) if v.starts_with("Bearer ") => "invalid token: Signature verification failed",
            Some(_) => "unsupported authorization scheme",
        };
        return unauthorized(&f, &host, reason);
    }
    match (method, path) {
        (Method::GET, "/blueprint/health") if f.health_route => {
            axum::Json(json!({"status": "ok", "service": "blueprint-mcp"})).into_response()
        }
        (Method::GET, META_SERVICE | META_RESOURCE | META_DEFAULT) => {
            axum::Json(f.metadata(&host)).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

/// `_unauthorized` of seed §4.2 ②.
fn unauthorized(f: &Frame, host: &str, reason: &str) -> Response {
    let body = if f.reason_in_body {
        json!({"error": {
            "code": if reason.starts_with("missing") { "MISSING_TOKEN" } else { "INVALID_TOKEN" },
            "message": reason,
            "context": {"request_id": "req-1", "reason": reason},
        }})
    } else {
        json!({"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}})
    };
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if f.www_authenticate {
        let value = format!(
            "Bearer error=\"invalid_token\", error_description=\"{reason}\", resource_metadata=\"{}://{host}{}\"",
            f.scheme, f.resource_metadata_path
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_str(&value).unwrap());
    }
    response
}

async fn serve(frame: Frame) -> Url {
    let app = Router::new().fallback(handle).with_state(Arc::new(frame));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Url::parse(&format!("http://{addr}")).unwrap()
}

/// The same server over TLS, with a throw-away CA (returned as PEM) that no system trusts.
async fn serve_tls(frame: Frame) -> (Url, String) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone()],
            PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let app = Router::new().fallback(handle).with_state(Arc::new(frame));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                }
            });
        }
    });
    (
        Url::parse(&format!("https://{addr}")).unwrap(),
        ca_cert.pem(),
    )
}

/// A probe client that ignores any proxy settings of the machine running the tests.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

async fn probe(frame: Frame) -> Vec<Check> {
    let base = serve(frame).await;
    probe_http(&base, &blueprint(), &client()).await
}

fn check<'a>(checks: &'a [Check], id: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
}

fn status(checks: &[Check], id: &str) -> CheckStatus {
    check(checks, id).status
}

fn fix(checks: &[Check], id: &str) -> String {
    check(checks, id).fix.clone().unwrap_or_default()
}

fn assert_fail_with(checks: &[Check], id: &str, detail_has: &str, fix_has: &str) {
    let c = check(checks, id);
    assert_eq!(c.status, CheckStatus::Fail, "{c:#?}");
    assert!(
        c.detail.contains(detail_has),
        "detail of {id} lacks {detail_has:?}: {c:#?}"
    );
    assert!(
        fix(checks, id).contains(fix_has),
        "fix of {id} lacks {fix_has:?}: {c:#?}"
    );
}

#[tokio::test]
async fn frame_passes_every_probe() {
    let checks = probe(Frame::good()).await;
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["#2", "#3", "#3a", "#3b", "#4", "#5"]);
    for c in &checks {
        assert_eq!(c.status, CheckStatus::Pass, "{c:#?}");
        assert!(c.fix.is_none());
    }
    assert!(
        check(&checks, "#2")
            .detail
            .contains("/blueprint/health → 200 OK")
    );
    // #3 says which identifier it accepted, and that the probed origin differs.
    let meta = &check(&checks, "#3").detail;
    assert!(meta.contains("resource = the App ID URI"), "{meta}");
    assert!(
        meta.contains("/blueprint/mcp: equal only through the public host"),
        "{meta}"
    );
    assert!(meta.contains("scopes_supported has https://axe.axelabs.ai/blueprint/mcp/mcp.access"));
    // #4 followed resource_metadata and judged that document too.
    let challenge = &check(&checks, "#4").detail;
    assert!(
        challenge.contains("→ 401, WWW-Authenticate: Bearer"),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("{META_SERVICE} → 200 OK")),
        "{challenge}"
    );
    // #5 shows the server's reason.
    assert!(
        check(&checks, "#5")
            .detail
            .contains("reason: invalid token: Signature verification failed")
    );

    let mut all = manual_checks(&blueprint());
    all.extend(checks);
    assert_eq!(
        VerifyReport::new("blueprint", all).exit_status(),
        ExitStatus::Success
    );
}

/// The probes use the client they are given; the library's own client works too.
#[tokio::test]
#[allow(clippy::print_stderr)] // the skip note
async fn probe_client_is_usable() {
    if std::env::var_os("HTTP_PROXY").is_some() || std::env::var_os("http_proxy").is_some() {
        eprintln!("note: an HTTP proxy is configured; skipping the probe_client round trip");
        return;
    }
    let base = serve(Frame::good()).await;
    let checks = probe_http(&base, &blueprint(), &probe_client(vec![]).unwrap()).await;
    assert!(
        checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{checks:#?}"
    );
}

/// `--ca-cert`: the extra root is trusted; without it the failure says to pass it.
#[tokio::test]
#[allow(clippy::print_stderr)] // the skip note
async fn tls_with_a_private_ca() {
    let (base, ca_pem) = serve_tls(Frame {
        scheme: "https",
        ..Frame::good()
    })
    .await;

    let untrusting = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let checks = probe_http(&base, &blueprint(), &untrusting).await;
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(&checks, id, "certificate", "--ca-cert");
    }

    if std::env::var_os("HTTPS_PROXY").is_some() || std::env::var_os("https_proxy").is_some() {
        eprintln!("note: an HTTPS proxy is configured; skipping the trusted-root round trip");
        return;
    }
    let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
    let checks = probe_http(&base, &blueprint(), &probe_client(roots).unwrap()).await;
    assert!(
        checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{checks:#?}"
    );
}

/// Behind TLS termination the app sees `http` and builds an `http://` resource_metadata.
#[tokio::test]
async fn resource_metadata_with_the_wrong_scheme_fails_4() {
    let (base, ca_pem) = serve_tls(Frame::good()).await;
    let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tls_certs_merge(roots)
        .build()
        .unwrap();
    let checks = probe_http(&base, &blueprint(), &client).await;
    assert_fail_with(
        &checks,
        "#4",
        "resource_metadata: GET http://127.0.0.1:",
        "resource_metadata says http:// but the service is served over https",
    );
    assert_eq!(status(&checks, "#3"), CheckStatus::Pass);
}

/// Troubleshooting / seed §4.2 ⑤: the metadata behind the auth middleware → 401, so a client
/// cannot find where to log in.
#[tokio::test]
async fn metadata_behind_auth_fails_with_public_paths_fix() {
    let checks = probe(Frame {
        public_metadata: false,
        ..Frame::good()
    })
    .await;
    assert_fail_with(&checks, "#3", "401 Unauthorized", "_PUBLIC_PATHS");
    assert!(fix(&checks, "#3").contains(&format!("`{META_SERVICE}`")));
    // resource_metadata points at the same path: #4 fails on it too.
    assert_fail_with(&checks, "#4", "resource_metadata: GET", "_PUBLIC_PATHS");
    assert_eq!(status(&checks, "#3a"), CheckStatus::Pass);
    assert_eq!(status(&checks, "#2"), CheckStatus::Pass);
    assert_eq!(status(&checks, "#5"), CheckStatus::Pass);
}

/// Troubleshooting, D-ops-23: the resource-level path behind auth made reconnects loop.
#[tokio::test]
async fn resource_level_metadata_behind_auth_fails() {
    let checks = probe(Frame {
        public_resource_level: false,
        ..Frame::good()
    })
    .await;
    assert_fail_with(&checks, "#3a", "401 Unauthorized", "inner.router");
    assert!(fix(&checks, "#3a").contains("Connection has expired"));
    assert_eq!(status(&checks, "#3"), CheckStatus::Pass);
    assert_eq!(status(&checks, "#4"), CheckStatus::Pass);
}

/// Seed §10 #2: every 401 has the same fixed message; the reason is nowhere.
#[tokio::test]
async fn unauthorized_without_reason_fails_5() {
    let checks = probe(Frame {
        reason_in_body: false,
        ..Frame::good()
    })
    .await;
    assert_fail_with(
        &checks,
        "#5",
        r#"{"error":{"code":"UNAUTHORIZED","message":"Unauthorized"}}"#,
        "error.context.reason",
    );
    assert!(
        check(&checks, "#5")
            .detail
            .contains("no error.context.reason")
    );
    assert!(fix(&checks, "#5").contains("§10 #2"));
    // #4 only needs the challenge header.
    assert_eq!(status(&checks, "#4"), CheckStatus::Pass);
}

/// Seed §10 #5: FastMCP's DNS-rebinding guard answers 421 "Invalid Host header".
#[tokio::test]
async fn invalid_host_header_points_at_allowed_hosts() {
    let checks = probe(Frame {
        allowed_host: Some("blueprint-mcp:3000".into()),
        ..Frame::good()
    })
    .await;
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(
            &checks,
            id,
            "421 Misdirected Request: Invalid Host header",
            "BLUEPRINT_MCP_ALLOWED_HOSTS",
        );
        assert!(
            fix(&checks, id).contains("127.0.0.1:"),
            "{:#?}",
            check(&checks, id)
        );
    }
    assert_eq!(status(&checks, "#3b"), CheckStatus::Warn);
}

/// Seed §10 #1 and #6: a 500 on every request.
#[tokio::test]
async fn server_error_everywhere_points_at_docker_logs() {
    let checks = probe(Frame {
        always_500: true,
        ..Frame::good()
    })
    .await;
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(
            &checks,
            id,
            "500 Internal Server Error",
            "docker logs blueprint-mcp",
        );
    }
    // For the bearer request, the seed's two verifier crashes are named.
    assert!(fix(&checks, "#5").contains("httpx.Timeout"));
    assert!(fix(&checks, "#5").contains("DATABASE_URL"));
    let report = VerifyReport::new("blueprint", checks);
    assert_eq!(report.exit_status(), ExitStatus::Differences);
}

#[tokio::test]
async fn missing_www_authenticate_fails_4() {
    let checks = probe(Frame {
        www_authenticate: false,
        ..Frame::good()
    })
    .await;
    assert_fail_with(
        &checks,
        "#4",
        "no WWW-Authenticate header",
        "resource_metadata=",
    );
    assert!(fix(&checks, "#4").contains(&format!("https://axe.axelabs.ai{META_SERVICE}")));
    assert_eq!(status(&checks, "#5"), CheckStatus::Pass);
}

/// The metadata names another service (a copy of frame's with the old value left in).
#[tokio::test]
async fn wrong_resource_in_metadata_fails() {
    let checks = probe(Frame {
        resource: "https://axe.axelabs.ai/frame/mcp".into(),
        ..Frame::good()
    })
    .await;
    for id in ["#3", "#3a", "#3b", "#4"] {
        assert_fail_with(
            &checks,
            id,
            "`resource` is `https://axe.axelabs.ai/frame/mcp`, expected the App ID URI `https://axe.axelabs.ai/blueprint/mcp`",
            "AADSTS9010010",
        );
    }
}

/// RFC 9728 §3.3 alone would accept the URL the client used, but Entra needs the App ID URI
/// (they coincide only when probing through the public host).
#[tokio::test]
async fn resource_equal_to_probed_url_but_not_app_id_uri_fails() {
    let base = serve(Frame {
        resource: "http://{host}/blueprint/mcp".into(),
        ..Frame::good()
    })
    .await;
    let checks = probe_http(&base, &blueprint(), &client()).await;
    assert_fail_with(
        &checks,
        "#3",
        &format!("`resource` is `{base}blueprint/mcp`, expected the App ID URI"),
        "AADSTS9010010",
    );
    assert!(
        check(&checks, "#3")
            .detail
            .contains("it is the probed endpoint's URL")
    );
}

/// A bare scope is read by Entra as a Microsoft Graph scope.
#[tokio::test]
async fn bare_scope_is_not_accepted() {
    let checks = probe(Frame {
        scopes: vec!["mcp.access".into()],
        ..Frame::good()
    })
    .await;
    assert_fail_with(
        &checks,
        "#3",
        "has the bare `mcp.access` but not `https://axe.axelabs.ai/blueprint/mcp/mcp.access`",
        "Microsoft Graph",
    );
}

/// VALIDATORS §b note (1): the rendered tunnel rules do not route the RFC 9728 default location.
/// That is a warning, not a failure, while resource_metadata points at a routed path.
#[tokio::test]
async fn default_location_missing_is_a_warning() {
    let checks = probe(Frame {
        default_location: false,
        ..Frame::good()
    })
    .await;
    let c = check(&checks, "#3b");
    assert_eq!(c.status, CheckStatus::Warn, "{c:#?}");
    assert!(c.detail.starts_with("GET http://"));
    assert!(
        c.detail
            .contains(&format!("{META_DEFAULT} → 404 Not Found")),
        "{c:#?}"
    );
    assert!(
        fix(&checks, "#3b").contains(r"^/\.well-known/oauth-protected-resource/blueprint/mcp$")
    );
    assert!(fix(&checks, "#3b").contains("host.docker.internal:3151"));
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_eq!(
            status(&checks, id),
            CheckStatus::Pass,
            "{:#?}",
            check(&checks, id)
        );
    }
    let report = VerifyReport::new("blueprint", checks);
    assert_eq!(report.exit_status(), ExitStatus::Success);
    assert_eq!(report.summary().warn, 1);
}

/// resource_metadata pointing at the unrouted default location: the challenge leads nowhere.
#[tokio::test]
async fn resource_metadata_pointing_nowhere_fails_4() {
    let checks = probe(Frame {
        default_location: false,
        resource_metadata_path: META_DEFAULT.into(),
        ..Frame::good()
    })
    .await;
    assert_fail_with(
        &checks,
        "#4",
        "resource_metadata: GET",
        "point resource_metadata at a public, routed path",
    );
    assert!(check(&checks, "#4").detail.contains("404 Not Found"));
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let checks = probe(Frame {
        redirect_to: Some("https://elsewhere.example".into()),
        ..Frame::good()
    })
    .await;
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(
            &checks,
            id,
            "301 Moved Permanently (redirect to https://elsewhere.example/",
            "does not follow redirects",
        );
    }

    // A client that follows redirects: the change of URL is still reported.
    let target = serve(Frame::good()).await;
    let base = serve(Frame {
        redirect_to: Some(target.as_str().trim_end_matches('/').to_string()),
        ..Frame::good()
    })
    .await;
    let following = reqwest::Client::builder().no_proxy().build().unwrap();
    let checks = probe_http(&base, &blueprint(), &following).await;
    assert_fail_with(
        &checks,
        "#2",
        &format!("→ 200 OK (redirect to {target}blueprint/health)"),
        "does not follow redirects",
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let base = serve(Frame {
        hang: true,
        ..Frame::good()
    })
    .await;
    let started = std::time::Instant::now();
    let checks = probe_http_with(&base, &blueprint(), &client(), Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "probes run concurrently"
    );
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(
            &checks,
            id,
            "no response within 300 ms",
            "docker ps | grep blueprint-mcp",
        );
    }
    assert_eq!(status(&checks, "#3b"), CheckStatus::Warn);
}

#[tokio::test]
async fn nothing_listening_fails_with_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = Url::parse(&format!("http://{addr}")).unwrap();
    let checks = probe_http(&base, &blueprint(), &client()).await;
    for id in ["#2", "#3", "#3a", "#4", "#5"] {
        assert_fail_with(
            &checks,
            id,
            &format!("http://{addr}/"),
            "cloudflared tunnel info axelabs",
        );
    }
}

/// The command line: `--url` must be an origin; checked before anything is read.
#[test]
fn cli_rejects_a_url_with_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_entraform"))
        .current_dir(dir.path())
        .args([
            "verify",
            "blueprint.yaml",
            "--url",
            "https://axe.axelabs.ai/blueprint/mcp",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has a path; it takes the origin only"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: e.g. --url https://axe.axelabs.ai"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_entraform"))
        .current_dir(dir.path())
        .args([
            "verify",
            "blueprint.yaml",
            "--url",
            "ftp://x",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");
}

// ---------------------------------------------------------------------------------------------
// The tunnel config on this machine (issue 9 §3): #10a and what a health 404 means
// ---------------------------------------------------------------------------------------------

/// A tunnel config with the main app on the host and, when `merged`, blueprint's rendered rules
/// merged in (`entraform render --merge-cloudflared`); otherwise the two rules of before the
/// health rule.
fn tunnel_config(merged: bool) -> String {
    let base = "ingress:\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/mcp(/.*)?$\n    service: http://host.docker.internal:3151\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$\n    service: http://host.docker.internal:3151\n  - hostname: axe.axelabs.ai\n    service: http://host.docker.internal:3100\n  - service: http_status:404\n";
    if !merged {
        return base.to_owned();
    }
    entraform::render::merge::merge_cloudflared_text(
        base,
        std::path::Path::new("config.yml"),
        &blueprint(),
        false,
    )
    .unwrap()
    .text
}

#[test]
fn the_tunnel_check_routes_every_url_of_the_rendered_rules() {
    use entraform::verify::tunnel::{routing, routing_check};
    let d = blueprint();
    let merged = routing(&d, &tunnel_config(true)).unwrap();
    assert!(merged.routes.iter().all(|r| r.to_proxy), "{merged:#?}");
    assert_eq!(merged.routes.len(), 3);
    let c = routing_check(&d, &Ok(merged));
    assert_eq!(c.status, CheckStatus::Pass, "{c:#?}");
    assert!(
        c.detail
            .contains("https://axe.axelabs.ai/blueprint/health → rule #"),
        "{c:#?}"
    );

    // The config of before the health rule: the main app answers /blueprint/health.
    let old = routing(&d, &tunnel_config(false)).unwrap();
    let health = old.route_ending("/blueprint/health").unwrap();
    assert_eq!((health.rule, health.to_proxy), (3, false));
    let c = routing_check(&d, &Ok(old));
    assert_eq!(c.status, CheckStatus::Fail, "{c:#?}");
    let fix = c.fix.unwrap();
    assert!(fix.starts_with("https://axe.axelabs.ai/blueprint/health does not reach http://host.docker.internal:3151"), "{fix}");
    assert!(
        fix.contains("--merge-cloudflared ~/.axe/tunnels/axelabs/config.yml"),
        "{fix}"
    );

    // Not on this machine: skipped with the reason, cloudflared's message for a broken one.
    let c = routing_check(&d, &routing(&d, "tunnel: x\n"));
    assert_eq!(c.status, CheckStatus::Skip, "{c:#?}");
    assert!(
        c.detail.contains("doesn't contain any ingress rules"),
        "{c:#?}"
    );
}

#[tokio::test]
async fn a_health_404_is_the_apps_when_the_tunnel_config_routes_it() {
    use entraform::verify::probes::probe_http_routed;
    use entraform::verify::tunnel::routing;
    let d = blueprint();
    let frame = Frame {
        health_route: false,
        ..Frame::good()
    };
    let base = serve(frame).await;
    // The config has the health rule: the 404 came from the app, not the tunnel.
    let routed = routing(&d, &tunnel_config(true)).unwrap();
    let checks =
        probe_http_routed(&base, &d, &client(), Duration::from_secs(5), Some(&routed)).await;
    let f = fix(&checks, "#2");
    assert_eq!(status(&checks, "#2"), CheckStatus::Fail);
    assert!(f.contains("routes https://axe.axelabs.ai/blueprint/health to the proxy (rule #3), so the 404 is the app's"), "{f}");
    assert!(f.contains("Route(\"/blueprint/health\", health)"), "{f}");
    assert!(
        !f.contains("merge-cloudflared") && !f.contains("add `^/blueprint/health$`"),
        "{f}"
    );

    // A config without it: the tunnel is named as the cause, with the merge that fixes it.
    let old = routing(&d, &tunnel_config(false)).unwrap();
    let checks = probe_http_routed(&base, &d, &client(), Duration::from_secs(5), Some(&old)).await;
    let f = fix(&checks, "#2");
    assert!(f.contains("sends https://axe.axelabs.ai/blueprint/health to rule #3 (http://host.docker.internal:3100), not to the proxy"), "{f}");
    assert!(f.contains("--merge-cloudflared"), "{f}");

    // No config on this machine: both causes, and no claim that the rendered rules lack it.
    let checks = probe_http(&base, &d, &client()).await;
    let f = fix(&checks, "#2");
    assert!(
        f.contains("Route(\"/blueprint/health\", health)")
            && f.contains("adds `^/blueprint/health$`"),
        "{f}"
    );
    assert!(!f.contains("route `/blueprint/mcp…` and"), "{f}");
}
