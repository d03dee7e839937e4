//! The HTTP(S) server: accept loop (TCP_NODELAY, optional TLS), one axum fallback handler that
//! routes by path, the `Host` and control-token checks (`access`), latency injection, and the
//! request log.
//!
//! Responses go out in one write (`writev(false)` flattens head and body into one buffer, and
//! TCP_NODELAY stops Nagle holding it): a response split in two writes stalls ~40 ms on the
//! client's delayed ACK (docs/emulator.md, "The real Azure CLI against it").

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::access::{self, TokenProblem};
use super::errors::{Ctx, GraphError};
use super::util::{Headers, ODATA_JSON, Resp, RespBody, redact_query};
use super::{RequestRecord, Shared, batch, control, graph, login};

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let app = Router::new().fallback(handle).with_state(shared);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = TowerToHyperService::new(app);
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.writev(false);
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// `//metadata/endpoints` → `/metadata/endpoints` (az doubles the slash; docs/emulator.md).
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev = false;
    for c in path.chars() {
        if c == '/' {
            if !prev {
                out.push(c);
            }
            prev = true;
        } else {
            out.push(c);
            prev = false;
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Graph,
    Login,
    Control,
    Other,
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let t0 = Instant::now();
    let start_ms = (t0 - shared.started).as_secs_f64() * 1000.0;
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = collapse_slashes(parts.uri.path());
    let query = parts.uri.query().unwrap_or("").to_string();
    let headers = Headers(
        parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    );
    let ctx = Ctx::new(headers.get("client-request-id"));
    let kind = if path.starts_with("/_emulator") {
        Kind::Control
    } else if path == "/v1.0" || path.starts_with("/v1.0/") {
        Kind::Graph
    } else if path.contains("/oauth2/")
        || path.contains("/.well-known/")
        || path.contains("/discovery/")
    {
        Kind::Login
    } else {
        Kind::Other
    };

    // The target host: the absolute-form URI's authority if any, else `Host` (RFC 9112 §3.2.2).
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| headers.get("host").map(str::to_string));
    if let Some(refused) = check_host(&shared, host.as_deref(), &method, &path, &ctx) {
        return to_response(refused, &ctx, kind);
    }
    if kind == Kind::Control
        && let Err(problem) =
            access::check_control_token(&shared.control_token, headers.get("authorization"))
    {
        return to_response(token_refused(problem, &ctx), &ctx, kind);
    }

    if kind != Kind::Control {
        let latency = shared.lock().faults.faults.latency_ms;
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
    }

    let body = match axum::body::to_bytes(body, shared.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let resp = GraphError::new(
                413,
                "Request_EntityTooLarge",
                format!(
                    "The request body exceeds the limit of {} bytes.",
                    shared.max_body
                ),
            )
            .to_resp(&ctx);
            if kind != Kind::Control {
                record(
                    &shared,
                    &method,
                    &path,
                    &query,
                    &ctx,
                    &resp,
                    t0,
                    start_ms,
                    Vec::new(),
                    None,
                );
            }
            return to_response(resp, &ctx, kind);
        }
    };

    let mut inner_records = Vec::new();
    let mut fault = None;
    let resp = match kind {
        Kind::Control => {
            let resp = control::handle(&shared, &method, &path, &query, &headers, &body, &ctx);
            return to_response(resp, &ctx, kind);
        }
        Kind::Graph => {
            let sub = &path["/v1.0".len()..];
            if sub == "/$batch" {
                if method == "POST" {
                    let (resp, inner) = batch::handle(&shared, &headers, &body, &ctx);
                    inner_records = inner;
                    resp
                } else {
                    GraphError::method_not_allowed().to_resp(&ctx)
                }
            } else {
                let req = graph::GraphRequest {
                    method: method.clone(),
                    path: if sub.is_empty() {
                        "/".into()
                    } else {
                        sub.to_string()
                    },
                    query: query.clone(),
                    headers: headers.clone(),
                    body: body.to_vec(),
                };
                let mut inner = shared.lock();
                let (resp, f) = graph::handle(&shared, &mut inner, &req, &ctx);
                fault = f;
                resp
            }
        }
        Kind::Login | Kind::Other => {
            login::handle(&shared, &method, &path, &query, &headers, &body, &ctx)
        }
    };
    let is_batch = path == "/v1.0/$batch";
    let reset = fault == Some(graph::RESET);
    let log_resp = resp.clone();
    record(
        &shared,
        &method,
        &path,
        &query,
        &ctx,
        &log_resp,
        t0,
        start_ms,
        if is_batch { inner_records } else { Vec::new() },
        fault,
    );
    if reset {
        return Response::new(Body::new(Reset));
    }
    to_response(resp, &ctx, kind)
}

/// 421 for a host that is not ours, 400 for none (see `access` for the why and the sources).
fn check_host(
    shared: &Shared,
    host: Option<&str>,
    method: &str,
    path: &str,
    ctx: &Ctx,
) -> Option<Resp> {
    match host {
        Some(h) if shared.hosts.allows(h) => None,
        Some(h) => {
            tracing::warn!("refused {method} {path}: Host {h:?} is not this emulator's origin");
            Some(
                GraphError::new(
                    421,
                    "MisdirectedRequest",
                    format!(
                        "The emulator answers only to its own origin; the request names host {h:?}. Use one of: {} (a foreign name is refused so a web page cannot reach the emulator by DNS rebinding; --allow-remote adds the listen address).",
                        shared.hosts.describe()
                    ),
                )
                .to_resp(ctx),
            )
        }
        None => Some(
            GraphError::bad_request(format!(
                "The request has no Host header; HTTP/1.1 requires one. Use one of: {}.",
                shared.hosts.describe()
            ))
            .to_resp(ctx),
        ),
    }
}

/// 401 for a control request without the token (the message never echoes what was sent).
fn token_refused(problem: TokenProblem, ctx: &Ctx) -> Resp {
    let what = match problem {
        TokenProblem::Missing => "need the control token",
        TokenProblem::Wrong => "need the control token, and the one sent does not match",
    };
    let mut e = GraphError::new(
        401,
        "Unauthorized",
        format!(
            "The /_emulator/ controls {what}: send 'Authorization: Bearer <token>' with the value of ENTRAFORM_EMULATOR_CONTROL_TOKEN from the emulator's export lines (a new one at each start)."
        ),
    );
    e.headers.push((
        "WWW-Authenticate".into(),
        "Bearer realm=\"entraform-emulator\"".into(),
    ));
    e.to_resp(ctx)
}

/// A body that fails at once: hyper then closes the connection instead of finishing the
/// answer, so the client sees its request go unanswered (fault `lostAnswer: reset`).
struct Reset;

impl hyper::body::Body for Reset {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other(
            "injected fault: connection reset",
        ))))
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    ctx: &Ctx,
    resp: &Resp,
    t0: Instant,
    start_ms: f64,
    mut inner: Vec<RequestRecord>,
    fault: Option<&'static str>,
) {
    let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut guard = shared.lock();
    guard.seq += 1;
    let seq = guard.seq;
    for r in &mut inner {
        r.seq = seq;
    }
    let batch = path == "/v1.0/$batch";
    tracing::info!(
        "{method} {path} -> {} in {duration_ms:.1} ms{}",
        resp.status,
        fault
            .map(|f| format!(" (injected {f})"))
            .unwrap_or_default()
    );
    guard.log.push(RequestRecord {
        seq,
        method: method.to_string(),
        path: path.to_string(),
        query: redact_query(query),
        status: resp.status,
        start_ms,
        duration_ms,
        batch,
        inner,
        batch_id: None,
        client_request_id: ctx.client_request_id.clone(),
        request_id: ctx.request_id.clone(),
        fault: fault.map(str::to_string),
    });
}

fn to_response(resp: Resp, ctx: &Ctx, kind: Kind) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let (bytes, content_type) = match &resp.body {
        RespBody::Empty => (Vec::new(), None),
        RespBody::Json(v) => (
            serde_json::to_vec(v).unwrap_or_default(),
            Some(if kind == Kind::Graph {
                ODATA_JSON
            } else {
                "application/json; charset=utf-8"
            }),
        ),
        RespBody::Text(t, ct) => (t.clone().into_bytes(), Some(*ct)),
    };
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if let Some(ct) = content_type
        && !has("content-type")
    {
        builder = builder.header("Content-Type", ct);
    }
    match kind {
        Kind::Graph => {
            builder = builder
                .header("Cache-Control", "no-cache")
                .header("request-id", &ctx.request_id)
                .header("client-request-id", &ctx.client_request_id)
                .header("x-ms-resource-unit", "1");
            if content_type.is_some() {
                builder = builder.header("OData-Version", "4.0");
            }
        }
        Kind::Login | Kind::Other => {
            builder = builder
                .header("Cache-Control", "no-store, no-cache")
                .header("x-ms-request-id", &ctx.request_id);
        }
        Kind::Control => {
            builder = builder
                .header("request-id", &ctx.request_id)
                .header("client-request-id", &ctx.client_request_id);
        }
    }
    for (k, v) in &resp.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn collapses() {
        assert_eq!(
            super::collapse_slashes("//metadata//endpoints"),
            "/metadata/endpoints"
        );
        assert_eq!(super::collapse_slashes(""), "/");
    }
}
