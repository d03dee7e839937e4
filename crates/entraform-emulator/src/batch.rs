//! `POST /v1.0/$batch` (<https://learn.microsoft.com/graph/json-batching>): up to 20 requests, ids unique (case-insensitive),
//! `dependsOn` ordering with 424 for dependents of a failure, each inner request authenticated
//! with the batch's token and subject to faults on its own.

use std::time::Instant;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::errors::{Ctx, GraphError};
use super::graph::{self, GraphRequest};
use super::util::{Headers, ODATA_JSON, Resp, RespBody, redact_query};
use super::{RequestRecord, Shared};

const MAX_REQUESTS: usize = 20;

struct Entry {
    id: String,
    method: String,
    path: String,
    query: String,
    headers: Headers,
    body: Vec<u8>,
    depends_on: Vec<String>,
}

pub(crate) fn handle(
    shared: &Shared,
    headers: &Headers,
    body: &[u8],
    ctx: &Ctx,
) -> (Resp, Vec<RequestRecord>) {
    match run(shared, headers, body, ctx) {
        Ok(r) => r,
        Err(e) => (e.to_resp(ctx), Vec::new()),
    }
}

fn parse(headers: &Headers, body: &[u8]) -> Result<Vec<Entry>, GraphError> {
    let ct = headers.get("content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().contains("json") {
        return Err(GraphError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "The content type '{ct}' is not supported for $batch; send 'application/json'."
            ),
        ));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| {
        GraphError::odata_bad_request("Invalid batch payload format: the body is not valid JSON.")
    })?;
    let requests = doc["requests"].as_array().ok_or_else(|| {
        GraphError::odata_bad_request("Invalid batch payload format: 'requests' must be an array.")
    })?;
    if requests.len() > MAX_REQUESTS {
        return Err(GraphError::odata_bad_request(
            "Number of requests inside batch exceeds the limit.",
        ));
    }
    let mut entries: Vec<Entry> = Vec::new();
    for r in requests {
        let id = r["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                GraphError::odata_bad_request("Every batch request needs a non-empty string 'id'.")
            })?
            .to_string();
        if entries.iter().any(|e| e.id.eq_ignore_ascii_case(&id)) {
            return Err(GraphError::odata_bad_request(format!(
                "Batch request ids must be unique; '{id}' is repeated."
            )));
        }
        let method = r["method"]
            .as_str()
            .ok_or_else(|| {
                GraphError::odata_bad_request(format!("Batch request '{id}' has no 'method'."))
            })?
            .to_ascii_uppercase();
        let url = r["url"].as_str().ok_or_else(|| {
            GraphError::odata_bad_request(format!("Batch request '{id}' has no 'url'."))
        })?;
        // Relative to the version root; an absolute URL is cut back to it.
        let rel = match url.find("/v1.0/") {
            Some(i) if url.starts_with("http") => &url[i + "/v1.0".len()..],
            _ => url,
        };
        let rel = if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("/{rel}")
        };
        let (path, query) = match rel.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (rel, String::new()),
        };
        let mut hs = Vec::new();
        if let Some(h) = r["headers"].as_object() {
            for (k, v) in h {
                hs.push((k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()));
            }
        }
        let hs = Headers(hs);
        let body = match &r["body"] {
            Value::Null => Vec::new(),
            b => {
                let ct = hs.get("content-type").ok_or_else(|| {
                    GraphError::odata_bad_request(format!(
                        "Batch request '{id}' has a body but no Content-Type header."
                    ))
                })?;
                match b {
                    // A non-JSON body travels base64url-encoded
                    // (https://learn.microsoft.com/graph/json-batching).
                    Value::String(s) if !ct.contains("json") => {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(s.trim_end_matches('='))
                            .map_err(|_| {
                                GraphError::odata_bad_request(format!(
                                    "Batch request '{id}' has a body that is not base64url."
                                ))
                            })?
                    }
                    other => serde_json::to_vec(other).unwrap_or_default(),
                }
            }
        };
        let depends_on = match &r["dependsOn"] {
            Value::Null => Vec::new(),
            Value::Array(a) => a
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    GraphError::odata_bad_request(format!(
                        "Batch request '{id}': 'dependsOn' must list ids."
                    ))
                })?,
            _ => {
                return Err(GraphError::odata_bad_request(format!(
                    "Batch request '{id}': 'dependsOn' must be an array."
                )));
            }
        };
        entries.push(Entry {
            id,
            method,
            path,
            query,
            headers: hs,
            body,
            depends_on,
        });
    }
    for e in &entries {
        for d in &e.depends_on {
            if !entries.iter().any(|x| x.id.eq_ignore_ascii_case(d)) {
                return Err(GraphError::odata_bad_request(format!(
                    "Batch request '{}' depends on '{d}', which is not in the batch.",
                    e.id
                )));
            }
        }
    }
    Ok(entries)
}

/// Execution order respecting `dependsOn`; a cycle fails the whole batch.
fn order(entries: &[Entry]) -> Result<Vec<usize>, GraphError> {
    let mut done: Vec<usize> = Vec::new();
    while done.len() < entries.len() {
        let next = (0..entries.len()).find(|&i| {
            !done.contains(&i)
                && entries[i]
                    .depends_on
                    .iter()
                    .all(|d| done.iter().any(|&j| entries[j].id.eq_ignore_ascii_case(d)))
        });
        match next {
            Some(i) => done.push(i),
            None => {
                return Err(GraphError::odata_bad_request(
                    "The dependsOn references of the batch form a cycle.",
                ));
            }
        }
    }
    Ok(done)
}

fn run(
    shared: &Shared,
    headers: &Headers,
    body: &[u8],
    ctx: &Ctx,
) -> Result<(Resp, Vec<RequestRecord>), GraphError> {
    {
        let inner = shared.lock();
        graph::authenticate(&inner, headers)?;
    }
    let entries = parse(headers, body)?;
    let order = order(&entries)?;
    let mut statuses: Vec<Option<u16>> = vec![None; entries.len()];
    let mut responses: Vec<Option<Value>> = vec![None; entries.len()];
    let mut records = Vec::new();
    for i in order {
        let e = &entries[i];
        let t0 = Instant::now();
        let start_ms = (t0 - shared.started).as_secs_f64() * 1000.0;
        let inner_ctx = Ctx::new(Some(
            e.headers
                .get("client-request-id")
                .unwrap_or(&ctx.client_request_id),
        ));
        let failed_dep = e.depends_on.iter().any(|d| {
            entries
                .iter()
                .position(|x| x.id.eq_ignore_ascii_case(d))
                .and_then(|j| statuses[j])
                .is_some_and(|s| s >= 400)
        });
        let (resp, fault) = if failed_dep {
            (
                GraphError::new(
                    424,
                    "FailedDependency",
                    "The request was not executed because a request it depends on failed.",
                )
                .to_resp(&inner_ctx),
                None,
            )
        } else {
            let mut hs = e.headers.0.clone();
            hs.retain(|(k, _)| k != "authorization");
            if let Some(a) = headers.get("authorization") {
                hs.push(("authorization".into(), a.to_string()));
            }
            let req = GraphRequest {
                method: e.method.clone(),
                path: e.path.clone(),
                query: e.query.clone(),
                headers: Headers(hs),
                body: e.body.clone(),
            };
            let mut inner = shared.lock();
            graph::handle(shared, &mut inner, &req, &inner_ctx)
        };
        statuses[i] = Some(resp.status);
        responses[i] = Some(entry_json(&e.id, &resp));
        records.push(RequestRecord {
            seq: 0,
            method: e.method.clone(),
            path: format!("/v1.0{}", e.path),
            query: redact_query(&e.query),
            status: resp.status,
            start_ms,
            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
            batch: false,
            inner: Vec::new(),
            batch_id: Some(e.id.clone()),
            client_request_id: inner_ctx.client_request_id.clone(),
            request_id: inner_ctx.request_id.clone(),
            fault: fault.map(str::to_string),
        });
    }
    let responses: Vec<Value> = responses.into_iter().flatten().collect();
    Ok((Resp::json(200, json!({ "responses": responses })), records))
}

fn entry_json(id: &str, resp: &Resp) -> Value {
    let mut headers = Map::new();
    headers.insert("Cache-Control".into(), json!("no-cache"));
    headers.insert("x-ms-resource-unit".into(), json!("1"));
    match &resp.body {
        RespBody::Json(_) => {
            headers.insert("Content-Type".into(), json!(ODATA_JSON));
            headers.insert("OData-Version".into(), json!("4.0"));
        }
        RespBody::Text(_, ct) => {
            headers.insert("Content-Type".into(), json!(ct));
        }
        RespBody::Empty => {}
    }
    for (k, v) in &resp.headers {
        headers.insert(k.clone(), json!(v));
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("status".into(), json!(resp.status));
    out.insert("headers".into(), Value::Object(headers));
    match &resp.body {
        RespBody::Json(v) => {
            out.insert("body".into(), v.clone());
        }
        RespBody::Text(t, _) => {
            out.insert("body".into(), json!(t));
        }
        RespBody::Empty => {}
    }
    Value::Object(out)
}
