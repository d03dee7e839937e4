//! Sending one request with bounded, jittered retries (throttling, 5xx, replication delay).

use std::sync::atomic::Ordering;
use std::time::Duration;

use zeroize::Zeroizing;

use super::*;
use crate::graph::auth::jittered;
use crate::graph::error::{ApiError, GraphError};
use crate::graph::wire::ErrorEnvelope;

/// How failed requests are retried. Injectable so tests run fast.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts for throttling (429), 5xx and connection failures (first try included).
    pub max_attempts: u32,
    /// First backoff when Graph gives no `Retry-After`; doubles per attempt.
    pub base_delay: Duration,
    /// Cap of the exponential backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` we wait for; a longer one fails with the 429 (and its hint).
    pub max_retry_after: Duration,
    /// Total time spent waiting out replication delay, for requests that opt in.
    pub replication_budget: Duration,
    /// First backoff of replication retries; doubles up to `max_delay`.
    pub replication_base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            replication_budget: Duration::from_secs(60),
            replication_base_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// Millisecond backoffs (tests, the sandbox emulator). `Retry-After` is still honoured.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(10),
            replication_budget: Duration::from_secs(10),
            replication_base_delay: Duration::from_millis(20),
        }
    }

    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        jittered(exp.min(self.max_delay))
    }

    pub(super) fn replication_backoff(&self, retry: u32) -> Duration {
        let exp = self
            .replication_base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        jittered(exp.min(self.max_delay))
    }
}

/// Where one request stands in its retries.
#[derive(Default)]
struct RetryState {
    /// Attempts counted against `max_attempts` (replication waits give theirs back).
    attempt: u32,
    /// HTTP requests actually sent.
    sent: u32,
    replication_retries: u32,
    replication_waited: Duration,
    /// The token was already refreshed once after a 401.
    refreshed: bool,
}

/// The answer of one exchange, before it is judged.
struct Answer {
    status: u16,
    request_id: Option<String>,
    retry_after: Option<f64>,
    body: Zeroizing<Vec<u8>>,
}

/// The decision after a failed answer.
enum Next {
    RefreshToken,
    Wait(Duration),
    Fail(SendFailure),
}

impl GraphClient {
    pub(super) async fn execute(
        &self,
        req: &GraphRequest,
        count_first: bool,
    ) -> Result<GraphResponse, GraphError> {
        self.execute_reporting(req, count_first)
            .await
            .map_err(|f| f.error)
    }

    pub(super) async fn execute_reporting(
        &self,
        req: &GraphRequest,
        count_first: bool,
    ) -> Result<GraphResponse, SendFailure> {
        if !req.path.starts_with('/') {
            return Err(GraphError::invalid(format!(
                "Graph path must start with '/': {}",
                req.path
            ))
            .into());
        }
        let policy = &self.inner.retry;
        let url = format!("{}{}", self.inner.base, req.path);
        let mut state = RetryState::default();
        loop {
            state.attempt += 1;
            state.sent += 1;
            let counters = &self.inner.counters;
            let _wave = InFlight::enter(counters, state.sent > 1 || count_first);
            let answer = match self.exchange(req, &url, state.attempt).await? {
                Ok(answer) => answer,
                Err(e) => {
                    // A connect error: nothing was sent. Anything else (a timeout, a reset)
                    // may have come after Graph received the whole request.
                    let safe = e.is_connect() || (e.is_timeout() && req.idempotent);
                    if safe && state.attempt < policy.max_attempts {
                        tokio::time::sleep(policy.backoff(state.attempt)).await;
                        continue;
                    }
                    return Err(SendFailure {
                        error: GraphError::Transport {
                            method: req.method.to_string(),
                            path: req.path.clone(),
                            message: error_text(&e),
                        },
                        maybe_done: !e.is_connect(),
                    });
                }
            };
            let status = answer.status;
            if (200..300).contains(&status) {
                return Ok(GraphResponse {
                    status,
                    request_id: answer.request_id,
                    method: req.method.clone(),
                    path: req.path.clone(),
                    body: answer.body,
                });
            }
            let envelope: ErrorEnvelope = serde_json::from_slice(&answer.body).unwrap_or_default();
            let err = api_error_from(
                status,
                envelope,
                answer.request_id,
                answer.retry_after,
                req.method.as_str(),
                &req.path,
            );
            match self.after_error(req, status, err, &mut state) {
                Next::RefreshToken => {
                    self.bearer(true).await?;
                }
                Next::Wait(wait) => tokio::time::sleep(wait).await,
                Next::Fail(failure) => return Err(failure),
            }
        }
    }

    /// One HTTP exchange: the request sent with a bearer token, the whole answer read. `Ok(Err)`
    /// when nothing came back (the caller decides about a retry); `Err` when the status line
    /// came but the body could not be read.
    async fn exchange(
        &self,
        req: &GraphRequest,
        url: &str,
        attempt: u32,
    ) -> Result<Result<Answer, reqwest::Error>, SendFailure> {
        let method_s = req.method.to_string();
        let counters = &self.inner.counters;
        let token = self.bearer(false).await?;
        counters.http_requests.fetch_add(1, Ordering::Relaxed);
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), url)
            .bearer_auth(token.as_str())
            .header("client-request-id", &client_request_id);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let started = std::time::Instant::now();
        let result = builder.send().await;
        drop(token);
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(method = %method_s, path = %req.path, attempt, error = %e, "Graph request failed");
                return Ok(Err(e));
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id");
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        let body = match resp.bytes().await {
            Ok(b) => Zeroizing::new(Vec::from(b)),
            Err(e) => {
                return Err(SendFailure {
                    error: GraphError::Transport {
                        method: method_s,
                        path: req.path.clone(),
                        message: format!("reading the response: {}", error_text(&e)),
                    },
                    // The status line came: a 2xx ran, an error status did not.
                    maybe_done: (200..300).contains(&status) || status >= 500,
                });
            }
        };
        tracing::debug!(
            method = %method_s,
            path = %req.path,
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            client_request_id = %client_request_id,
            attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Graph"
        );
        Ok(Ok(Answer {
            status,
            request_id,
            retry_after,
            body,
        }))
    }

    /// What to do after a non-2xx answer: refresh the token once after a 401, wait and repeat
    /// a transient failure the request allows repeating (or a replication delay within its own
    /// budget), or fail.
    fn after_error(
        &self,
        req: &GraphRequest,
        status: u16,
        err: ApiError,
        state: &mut RetryState,
    ) -> Next {
        let policy = &self.inner.retry;
        if status == 401
            && !state.refreshed
            && matches!(self.inner.tokens, TokenSource::Credential { .. })
        {
            // A cached token the service no longer accepts: get a new one once.
            state.refreshed = true;
            return Next::RefreshToken;
        }
        let maybe_done = status >= 500 || status == 408;
        let repeatable = if req.at_most_once {
            matches!(status, 429 | 503)
        } else {
            req.idempotent || matches!(status, 429 | 503 | 504)
        };
        if err.is_transient() && repeatable && state.attempt < policy.max_attempts {
            let wait = match err.retry_after {
                Some(secs) => {
                    let wait = Duration::from_secs_f64(secs);
                    if wait > policy.max_retry_after {
                        return Next::Fail(SendFailure {
                            error: err.into(),
                            maybe_done,
                        });
                    }
                    wait
                }
                None => policy.backoff(state.attempt),
            };
            tracing::debug!(status, wait_ms = wait.as_millis() as u64, "retrying");
            return Next::Wait(wait);
        }
        if req.replication_retry
            && err.is_replication_delay()
            && state.replication_waited < policy.replication_budget
        {
            state.replication_retries += 1;
            let wait = policy.replication_backoff(state.replication_retries);
            state.replication_waited += wait;
            tracing::debug!(code = %err.code, wait_ms = wait.as_millis() as u64, "waiting for replication");
            // Replication retries have their own budget, not the throttling attempts.
            state.attempt -= 1;
            return Next::Wait(wait);
        }
        Next::Fail(SendFailure {
            error: err.into(),
            maybe_done,
        })
    }
}

pub(super) fn api_error_from(
    status: u16,
    envelope: ErrorEnvelope,
    header_request_id: Option<String>,
    retry_after: Option<f64>,
    method: &str,
    path: &str,
) -> ApiError {
    let body = envelope.error;
    let mut err = ApiError::new(status, body.code, body.message, method, path);
    err.detail_codes = body.details.into_iter().map(|d| d.code).collect();
    err.request_id = header_request_id.or_else(|| body.inner_error.and_then(|i| i.request_id));
    err.retry_after = retry_after;
    // Hints may depend on detail codes too.
    if err.hint.is_none() && err.has_code("NoBackingApplicationObject") {
        err.hint = ApiError::new(status, "NoBackingApplicationObject", "", method, path).hint;
    }
    err
}

/// `Retry-After` in (possibly fractional) seconds, e.g. `2.128`
/// (<https://learn.microsoft.com/graph/throttling>). HTTP-date
/// values are not used by Graph and are ignored (the backoff applies).
pub fn parse_retry_after(v: &str) -> Option<f64> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs)
}

pub(super) fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
