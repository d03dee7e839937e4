//! `$batch` (<https://learn.microsoft.com/graph/json-batching>): chunks of at most 20, answers
//! correlated by id, throttled inner requests re-batched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;
use crate::graph::error::{ApiError, GraphError};
use crate::graph::wire::ErrorEnvelope;

/// `$batch` accepts at most 20 requests (<https://learn.microsoft.com/graph/json-batching>).
pub const BATCH_LIMIT: usize = 20;
/// One request of a `$batch`, with a caller-chosen id (unique, case-insensitively).
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub id: String,
    pub request: GraphRequest,
    /// Ids of requests in the same `$batch` that must run first (`dependsOn`). A dependency
    /// must land in the same 20-request chunk.
    pub depends_on: Vec<String>,
}

impl BatchRequest {
    pub fn new(id: impl Into<String>, request: GraphRequest) -> Self {
        BatchRequest {
            id: id.into(),
            request,
            depends_on: Vec::new(),
        }
    }
}

/// One inner response of a `$batch`, correlated to its request by `id`.
#[derive(Debug, Clone)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub method: String,
    pub path: String,
}

impl BatchResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The Graph error of a failed inner request.
    pub fn error(&self) -> Option<ApiError> {
        if self.is_success() {
            return None;
        }
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let envelope: ErrorEnvelope = self
            .body
            .clone()
            .and_then(|b| serde_json::from_value(b).ok())
            .unwrap_or_default();
        Some(api_error_from(
            self.status,
            envelope,
            header("request-id"),
            header("retry-after").as_deref().and_then(parse_retry_after),
            &self.method,
            &self.path,
        ))
    }

    /// 2xx → the parsed body (`None` for 204), 404 → `None`, anything else → the Graph error.
    pub fn into_json<T: DeserializeOwned>(self) -> Result<Option<T>, GraphError> {
        if let Some(err) = self.error() {
            return if err.is_not_found() {
                Ok(None)
            } else {
                Err(err.into())
            };
        }
        match self.body {
            None => Ok(None),
            Some(body) => serde_json::from_value(body)
                .map(Some)
                .map_err(|e| GraphError::Decode {
                    method: self.method,
                    path: self.path,
                    message: e.to_string(),
                }),
        }
    }
}

impl GraphClient {
    /// Run independent requests through `$batch`: split into chunks of at most 20 (sent
    /// concurrently), correlate answers by id, re-batch only the inner requests that were
    /// throttled or failed on the server side (and, where they opted in, those hit by
    /// replication delay). Answers come back in the order of `reqs`; inner failures are
    /// answers (see [`BatchResponse::error`]), not an `Err`.
    pub async fn batch(&self, reqs: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, GraphError> {
        validate_batch(&reqs)?;
        let order: Vec<String> = reqs.iter().map(|r| r.id.to_ascii_lowercase()).collect();
        let mut results: HashMap<String, BatchResponse> = HashMap::new();
        let mut pending = reqs;
        let policy = self.inner.retry.clone();
        let mut wave = 0u32;
        let mut replication_waited = Duration::ZERO;
        while !pending.is_empty() {
            wave += 1;
            let chunks = chunk(&pending)?;
            let _wave = InFlight::enter(&self.inner.counters, true);
            let mut set = tokio::task::JoinSet::new();
            for (i, chunk) in chunks.into_iter().enumerate() {
                let client = self.clone();
                set.spawn(async move { (i, client.post_batch(chunk).await) });
            }
            let mut answers = Vec::new();
            while let Some(joined) = set.join_next().await {
                let (i, answer) = joined
                    .map_err(|e| GraphError::invalid(format!("a $batch task failed: {e}")))?;
                answers.push((i, answer?));
            }
            answers.sort_by_key(|(i, _)| *i);
            let by_id: HashMap<String, &BatchRequest> = pending
                .iter()
                .map(|r| (r.id.to_ascii_lowercase(), r))
                .collect();
            let mut retry_ids: HashSet<String> = HashSet::new();
            let mut wait = Duration::ZERO;
            let mut replication = false;
            for (_, responses) in answers {
                for resp in responses {
                    let key = resp.id.to_ascii_lowercase();
                    let Some(req) = by_id.get(&key) else {
                        return Err(GraphError::Decode {
                            method: "POST".into(),
                            path: "/$batch".into(),
                            message: format!("answer for unknown request id {:?}", resp.id),
                        });
                    };
                    let err = resp.error();
                    let transient = err.as_ref().is_some_and(|e| {
                        e.is_transient()
                            && (req.request.idempotent || matches!(e.status, 429 | 503 | 504))
                    });
                    if transient && wave < policy.max_attempts {
                        let e = err.as_ref().expect("transient implies error");
                        let w = match e.retry_after {
                            Some(secs) => Duration::from_secs_f64(secs),
                            None => policy.backoff(wave),
                        };
                        if w <= policy.max_retry_after {
                            wait = wait.max(w);
                            retry_ids.insert(key);
                            continue;
                        }
                    }
                    let replicating = req.request.replication_retry
                        && err.as_ref().is_some_and(ApiError::is_replication_delay)
                        && replication_waited < policy.replication_budget;
                    if replicating {
                        replication = true;
                        wait = wait.max(policy.replication_backoff(wave));
                        retry_ids.insert(key);
                        continue;
                    }
                    results.insert(key, resp);
                }
            }
            // A request that failed only because its dependency will be retried is retried too.
            for req in &pending {
                let key = req.id.to_ascii_lowercase();
                if results.get(&key).is_some_and(|r| r.status == 424)
                    && req
                        .depends_on
                        .iter()
                        .any(|d| retry_ids.contains(&d.to_ascii_lowercase()))
                {
                    results.remove(&key);
                    retry_ids.insert(key);
                }
            }
            for req in &pending {
                let key = req.id.to_ascii_lowercase();
                if !results.contains_key(&key) && !retry_ids.contains(&key) {
                    return Err(GraphError::Decode {
                        method: "POST".into(),
                        path: "/$batch".into(),
                        message: format!("no answer for request id {:?}", req.id),
                    });
                }
            }
            pending = pending
                .into_iter()
                .filter(|r| retry_ids.contains(&r.id.to_ascii_lowercase()))
                .map(|mut r| {
                    // Dependencies that already succeeded are done; keep only those retried.
                    r.depends_on
                        .retain(|d| retry_ids.contains(&d.to_ascii_lowercase()));
                    r
                })
                .collect();
            if !pending.is_empty() {
                if replication {
                    replication_waited += wait;
                }
                tracing::debug!(
                    retrying = pending.len(),
                    wait_ms = wait.as_millis() as u64,
                    "re-batching"
                );
                tokio::time::sleep(wait).await;
            }
        }
        order
            .into_iter()
            .map(|k| {
                results.remove(&k).ok_or_else(|| GraphError::Decode {
                    method: "POST".into(),
                    path: "/$batch".into(),
                    message: format!("no answer for request id {k:?}"),
                })
            })
            .collect()
    }

    /// POST one chunk (≤ 20) to `/$batch`; the POST itself is retried like any request.
    pub(super) async fn post_batch(
        &self,
        chunk: Vec<BatchRequest>,
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let meta: HashMap<String, (String, String)> = chunk
            .iter()
            .map(|r| {
                (
                    r.id.to_ascii_lowercase(),
                    (r.request.method.to_string(), r.request.path.clone()),
                )
            })
            .collect();
        let requests: Vec<Value> = chunk.iter().map(batch_entry).collect();
        let mut outer = GraphRequest::post("/$batch", serde_json::json!({ "requests": requests }));
        outer.idempotent = chunk.iter().all(|r| r.request.idempotent);
        let resp = self.execute(&outer, false).await?;
        #[derive(serde::Deserialize)]
        struct Wire {
            responses: Vec<WireInner>,
        }
        #[derive(serde::Deserialize)]
        struct WireInner {
            id: String,
            status: u16,
            #[serde(default)]
            headers: BTreeMap<String, Value>,
            #[serde(default)]
            body: Option<Value>,
        }
        let wire: Wire = resp.json()?;
        Ok(wire
            .responses
            .into_iter()
            .map(|r| {
                let (method, path) = meta
                    .get(&r.id.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default();
                BatchResponse {
                    id: r.id,
                    status: r.status,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k, v)
                        })
                        .collect(),
                    body: r.body.filter(|b| !b.is_null()),
                    method,
                    path,
                }
            })
            .collect())
    }
}

pub(super) fn batch_entry(r: &BatchRequest) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert("id".into(), Value::String(r.id.clone()));
    entry.insert("method".into(), Value::String(r.request.method.to_string()));
    entry.insert("url".into(), Value::String(r.request.path.clone()));
    let mut headers: serde_json::Map<String, Value> = r
        .request
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(body) = &r.request.body {
        // `headers` with Content-Type is required when a body is present.
        headers
            .entry("Content-Type")
            .or_insert_with(|| Value::String("application/json".into()));
        entry.insert("body".into(), body.clone());
    }
    if !headers.is_empty() {
        entry.insert("headers".into(), Value::Object(headers));
    }
    if !r.depends_on.is_empty() {
        entry.insert(
            "dependsOn".into(),
            Value::Array(r.depends_on.iter().cloned().map(Value::String).collect()),
        );
    }
    Value::Object(entry)
}

pub(super) fn validate_batch(reqs: &[BatchRequest]) -> Result<(), GraphError> {
    let mut seen = HashSet::new();
    for r in reqs {
        if r.id.is_empty() {
            return Err(GraphError::invalid("a $batch request id is empty"));
        }
        if !seen.insert(r.id.to_ascii_lowercase()) {
            return Err(GraphError::invalid(format!(
                "duplicate $batch request id {:?} (ids are compared case-insensitively)",
                r.id
            )));
        }
        if r.request.sensitive {
            return Err(GraphError::invalid(format!(
                "{} {} returns a secret and must not be batched",
                r.request.method, r.request.path
            )));
        }
        if !r.request.path.starts_with('/') {
            return Err(GraphError::invalid(format!(
                "Graph path must start with '/': {}",
                r.request.path
            )));
        }
    }
    for r in reqs {
        for d in &r.depends_on {
            if !seen.contains(&d.to_ascii_lowercase()) {
                return Err(GraphError::invalid(format!(
                    "$batch request {:?} depends on unknown id {d:?}",
                    r.id
                )));
            }
        }
    }
    Ok(())
}

/// Consecutive chunks of at most 20; a dependency must be in the same chunk.
pub(super) fn chunk(reqs: &[BatchRequest]) -> Result<Vec<Vec<BatchRequest>>, GraphError> {
    let chunks: Vec<Vec<BatchRequest>> = reqs.chunks(BATCH_LIMIT).map(<[_]>::to_vec).collect();
    for c in &chunks {
        let ids: HashSet<String> = c.iter().map(|r| r.id.to_ascii_lowercase()).collect();
        for r in c {
            if let Some(d) = r
                .depends_on
                .iter()
                .find(|d| !ids.contains(&d.to_ascii_lowercase()))
            {
                return Err(GraphError::invalid(format!(
                    "$batch request {:?} depends on {d:?}, which falls in another chunk of {BATCH_LIMIT}; keep dependent requests together",
                    r.id
                )));
            }
        }
    }
    Ok(chunks)
}
