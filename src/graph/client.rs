//! The Microsoft Graph HTTP client: one reqwest connection pool, a cached bearer token, bounded
//! jittered retries, `$batch`, and counters of HTTP requests and sequential round trips.
//!
//! Logging: one `debug` line per HTTP exchange with method, path, status, request-id and time.
//! Bodies are never logged (an `addPassword` response carries a client secret), and response
//! bytes are zeroized when dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroizing;

use super::auth::{AuthConfig, OperatorCredential, jittered};
use super::error::{ApiError, GraphError};
use super::tenant::ExpectedTenant;
use super::wire::{Collection, ErrorEnvelope};
use crate::secret::Secret;

/// `$batch` accepts at most 20 requests (<https://learn.microsoft.com/graph/json-batching>).
pub const BATCH_LIMIT: usize = 20;

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

    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        jittered(exp.min(self.max_delay))
    }

    fn replication_backoff(&self, retry: u32) -> Duration {
        let exp = self
            .replication_base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        jittered(exp.min(self.max_delay))
    }
}

/// Counters read by tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// HTTP requests sent to Graph (each `$batch` POST is one; retries included).
    pub http_requests: u64,
    /// Sequential waves of Graph requests a caller waited for: a single request is one;
    /// requests in flight at the same time (the POSTs of one split `$batch`, concurrent sends)
    /// together are one; every retry wave is one more.
    pub round_trips: u64,
    /// Token requests that went to the credential (cache misses).
    pub token_requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    http_requests: AtomicU64,
    round_trips: AtomicU64,
    /// Requests (or `$batch` waves) under way: a new one starts a round trip only when nothing
    /// else is in flight, so concurrent requests count as the one wait they are.
    in_flight: AtomicU64,
    token_requests: AtomicU64,
}

/// Marks one request (or `$batch` wave) as in flight for the round-trip count.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn enter(counters: &'a Counters, counts: bool) -> Self {
        let before = counters.in_flight.fetch_add(1, Ordering::SeqCst);
        if counts && before == 0 {
            counters.round_trips.fetch_add(1, Ordering::Relaxed);
        }
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where bearer tokens come from.
pub enum TokenSource {
    /// The operator's credential and the Graph scope (`<graph origin>/.default`).
    Credential {
        credential: Arc<OperatorCredential>,
        scope: String,
    },
    /// A fixed token (tests, or a token obtained elsewhere).
    Static(Secret),
}

struct CachedToken {
    token: Secret,
    expires_on: time::OffsetDateTime,
}

/// One Graph request, relative to the version root (`/applications?$filter=…`).
#[derive(Debug, Clone)]
pub struct GraphRequest {
    pub method: Method,
    /// Starts with `/`; query already encoded (see [`odata_quote`], [`encode_query_value`]).
    pub path: String,
    /// JSON body. Request bodies never carry secrets.
    pub body: Option<Value>,
    /// Extra headers (e.g. `Prefer: create-if-missing`).
    pub headers: Vec<(String, String)>,
    /// Retry 404 `Request_ResourceNotFound` / 400 `NoBackingApplicationObject` (replication delay
    /// after a create) within the policy's budget.
    pub replication_retry: bool,
    /// The response carries a secret (`addPassword`): never batched, body zeroized, not logged.
    pub sensitive: bool,
    /// Whether repeating the request after a 500/502 is safe (default: not for POST).
    pub idempotent: bool,
    /// Never re-sent once it may have reached Graph (`addPassword`: a second call mints a
    /// second secret). Retried only after a 429 or 503, which Graph documents as "not served,
    /// repeat after a delay" (<https://learn.microsoft.com/graph/errors>), or a failure to
    /// connect; never after a 504 (a gateway gave up waiting: the request may have run), a
    /// timeout, or a connection lost after the request was written.
    pub at_most_once: bool,
}

impl GraphRequest {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = method != Method::POST;
        GraphRequest {
            method,
            path: path.into(),
            body: None,
            headers: Vec::new(),
            replication_retry: false,
            sensitive: false,
            idempotent,
            at_most_once: false,
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).body(body)
    }
    pub fn patch(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PATCH, path).body(body)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn replication_retry(mut self, on: bool) -> Self {
        self.replication_retry = on;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    /// See [`GraphRequest::at_most_once`].
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self.idempotent = false;
        self
    }
}

/// A request that failed, and whether Graph may have carried it out all the same.
#[derive(Debug)]
pub struct SendFailure {
    pub error: GraphError,
    /// The request may have reached Graph and run: a 5xx, a 408, a timeout, a connection lost
    /// after the request was written, or a 2xx whose body could not be read. `false` means
    /// Graph certainly did nothing (it refused the request, or it was never sent).
    pub maybe_done: bool,
}

impl From<GraphError> for SendFailure {
    fn from(error: GraphError) -> Self {
        SendFailure {
            error,
            maybe_done: false,
        }
    }
}

/// A successful (2xx) answer.
pub struct GraphResponse {
    pub status: u16,
    pub request_id: Option<String>,
    method: Method,
    path: String,
    body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for GraphResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphResponse")
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl GraphResponse {
    /// Parse the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::Decode {
            method: self.method.to_string(),
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Whether the body is empty (204).
    pub fn is_empty(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }
}

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

struct Inner {
    http: reqwest::Client,
    base: String,
    tokens: TokenSource,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    retry: RetryPolicy,
    counters: Counters,
    /// Every token must be for this tenant (checked before the token is sent anywhere).
    expected: Option<ExpectedTenant>,
}

/// The Graph client. Cheap to clone (one shared pool, token cache and counters).
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.inner.base)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client over `http` for the Graph version root `graph_url` (e.g.
    /// `https://graph.microsoft.com/v1.0`).
    pub fn new(
        http: reqwest::Client,
        graph_url: &str,
        tokens: TokenSource,
    ) -> Result<Self, GraphError> {
        let parsed = url::Url::parse(graph_url).map_err(|e| {
            GraphError::invalid(format!("--graph-url {graph_url:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(GraphError::invalid(format!(
                "--graph-url {graph_url:?} is not an http(s) URL"
            )));
        }
        super::auth::plain_http_only_on_loopback("--graph-url", &parsed)?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                base: graph_url.trim_end_matches('/').to_string(),
                tokens,
                cache: tokio::sync::Mutex::new(None),
                retry: RetryPolicy::default(),
                counters: Counters::default(),
                expected: None,
            }),
        })
    }

    /// The operator's client: credential from the environment (SPEC §3), the shared pool of
    /// `cfg`, tokens for `cfg.graph_scope()`.
    pub fn from_auth(cfg: &AuthConfig) -> Result<Self, GraphError> {
        let credential = OperatorCredential::from_env(cfg)?;
        Self::with_credential(cfg, Arc::new(credential))
    }

    /// A client that authenticates with a given credential.
    pub fn with_credential(
        cfg: &AuthConfig,
        credential: Arc<OperatorCredential>,
    ) -> Result<Self, GraphError> {
        let scope = cfg.graph_scope()?;
        let http = cfg.http_client()?;
        Self::new(
            http,
            &cfg.graph_url,
            TokenSource::Credential { credential, scope },
        )
    }

    /// Replace the retry policy (call before cloning the client).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.inner_mut().retry = retry;
        self
    }

    /// Refuse every token that is not for `tenant` (its `tid` claim), before it is sent to
    /// Graph (call before cloning the client).
    pub fn expect_tenant(mut self, tenant: ExpectedTenant) -> Self {
        self.inner_mut().expected = Some(tenant);
        self
    }

    /// The tenant this client is held to, if any.
    pub fn expected_tenant(&self) -> Option<&ExpectedTenant> {
        self.inner.expected.as_ref()
    }

    /// Get (and check) the first token now: a credential or tenant problem surfaces before
    /// any Graph request, vault read or write. Costs the token request only.
    pub async fn connect(&self) -> Result<(), GraphError> {
        self.bearer(false).await.map(drop)
    }

    /// The inner state, copied first when the client was already cloned (the copy starts with
    /// an empty token cache and fresh counters).
    fn inner_mut(&mut self) -> &mut Inner {
        if Arc::get_mut(&mut self.inner).is_none() {
            let old = &self.inner;
            self.inner = Arc::new(Inner {
                http: old.http.clone(),
                base: old.base.clone(),
                tokens: match &old.tokens {
                    TokenSource::Credential { credential, scope } => TokenSource::Credential {
                        credential: credential.clone(),
                        scope: scope.clone(),
                    },
                    TokenSource::Static(s) => {
                        TokenSource::Static(Secret::new(s.expose().to_string()))
                    }
                },
                cache: tokio::sync::Mutex::new(None),
                retry: old.retry.clone(),
                counters: Counters::default(),
                expected: old.expected.clone(),
            });
        }
        Arc::get_mut(&mut self.inner).expect("just made unique")
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The Graph version root this client talks to.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            http_requests: c.http_requests.load(Ordering::Relaxed),
            round_trips: c.round_trips.load(Ordering::Relaxed),
            token_requests: c.token_requests.load(Ordering::Relaxed),
        }
    }

    /// A bearer token, from the cache unless it expires within five minutes.
    async fn bearer(&self, force_refresh: bool) -> Result<Zeroizing<String>, GraphError> {
        match &self.inner.tokens {
            TokenSource::Static(s) => {
                if let Some(expected) = &self.inner.expected {
                    expected.check(s.expose())?;
                }
                Ok(Zeroizing::new(s.expose().to_string()))
            }
            TokenSource::Credential { credential, scope } => {
                let mut cache = self.inner.cache.lock().await;
                let fresh_enough = |c: &CachedToken| {
                    c.expires_on > time::OffsetDateTime::now_utc() + time::Duration::minutes(5)
                };
                if !force_refresh && let Some(c) = cache.as_ref().filter(|c| fresh_enough(c)) {
                    return Ok(Zeroizing::new(c.token.expose().to_string()));
                }
                self.inner
                    .counters
                    .token_requests
                    .fetch_add(1, Ordering::Relaxed);
                let token = credential.get_token(scope).await?;
                if let Some(expected) = &self.inner.expected {
                    expected.check(token.token.secret())?;
                }
                let value = Zeroizing::new(token.token.secret().to_string());
                *cache = Some(CachedToken {
                    token: Secret::new(token.token.secret().to_string()),
                    expires_on: token.expires_on,
                });
                Ok(value)
            }
        }
    }

    /// Send one request with retries. 2xx → the response; anything else → `GraphError::Api`.
    pub async fn send(&self, req: &GraphRequest) -> Result<GraphResponse, GraphError> {
        self.execute(req, true).await
    }

    /// Like [`GraphClient::send`], but a failure says whether Graph may have carried the
    /// request out (see [`SendFailure::maybe_done`]): for requests that are not repeatable.
    pub async fn send_reporting(&self, req: &GraphRequest) -> Result<GraphResponse, SendFailure> {
        self.execute_reporting(req, true).await
    }

    /// GET a JSON object; 404 → `None`.
    pub async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, GraphError> {
        match self.send(&GraphRequest::get(path)).await {
            Ok(resp) => resp.json().map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a collection, following `@odata.nextLink` (each page is one more round trip).
    pub async fn get_collection<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, GraphError> {
        let page: Collection<T> = self.send(&GraphRequest::get(path)).await?.json()?;
        self.rest_of_collection(page).await
    }

    /// Append the pages after `first`.
    pub async fn rest_of_collection<T: DeserializeOwned>(
        &self,
        first: Collection<T>,
    ) -> Result<Vec<T>, GraphError> {
        let mut items = first.value;
        let mut next = first.next_link;
        while let Some(link) = next {
            let path = link
                .strip_prefix(&self.inner.base)
                .ok_or_else(|| {
                    GraphError::invalid(format!(
                        "Graph returned a next page outside {}: {link}",
                        self.inner.base
                    ))
                })?
                .to_string();
            let page: Collection<T> = self.send(&GraphRequest::get(path)).await?.json()?;
            items.extend(page.value);
            next = page.next_link;
        }
        Ok(items)
    }

    async fn execute(
        &self,
        req: &GraphRequest,
        count_first: bool,
    ) -> Result<GraphResponse, GraphError> {
        self.execute_reporting(req, count_first)
            .await
            .map_err(|f| f.error)
    }

    async fn execute_reporting(
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
        let method_s = req.method.to_string();
        let mut attempt = 0u32;
        let mut sent = 0u32;
        let mut replication_retries = 0u32;
        let mut replication_waited = Duration::ZERO;
        let mut refreshed = false;
        loop {
            attempt += 1;
            sent += 1;
            let counters = &self.inner.counters;
            let _wave = InFlight::enter(counters, sent > 1 || count_first);
            let token = self.bearer(false).await?;
            counters.http_requests.fetch_add(1, Ordering::Relaxed);
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let mut builder = self
                .inner
                .http
                .request(req.method.clone(), &url)
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
                    // A connect error: nothing was sent. Anything else (a timeout, a reset)
                    // may have come after Graph received the whole request.
                    let safe = e.is_connect() || (e.is_timeout() && req.idempotent);
                    if safe && attempt < policy.max_attempts {
                        tokio::time::sleep(policy.backoff(attempt)).await;
                        continue;
                    }
                    return Err(SendFailure {
                        error: GraphError::Transport {
                            method: method_s,
                            path: req.path.clone(),
                            message: error_text(&e),
                        },
                        maybe_done: !e.is_connect(),
                    });
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
            if (200..300).contains(&status) {
                return Ok(GraphResponse {
                    status,
                    request_id,
                    method: req.method.clone(),
                    path: req.path.clone(),
                    body,
                });
            }
            let envelope: ErrorEnvelope = serde_json::from_slice(&body).unwrap_or_default();
            let err = api_error_from(
                status,
                envelope,
                request_id,
                retry_after,
                &method_s,
                &req.path,
            );
            if status == 401
                && !refreshed
                && matches!(self.inner.tokens, TokenSource::Credential { .. })
            {
                // A cached token the service no longer accepts: get a new one once.
                refreshed = true;
                self.bearer(true).await?;
                continue;
            }
            let maybe_done = status >= 500 || status == 408;
            let repeatable = if req.at_most_once {
                matches!(status, 429 | 503)
            } else {
                req.idempotent || matches!(status, 429 | 503 | 504)
            };
            if err.is_transient() && repeatable && attempt < policy.max_attempts {
                let wait = match err.retry_after {
                    Some(secs) => {
                        let wait = Duration::from_secs_f64(secs);
                        if wait > policy.max_retry_after {
                            return Err(SendFailure {
                                error: err.into(),
                                maybe_done,
                            });
                        }
                        wait
                    }
                    None => policy.backoff(attempt),
                };
                tracing::debug!(status, wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            if req.replication_retry
                && err.is_replication_delay()
                && replication_waited < policy.replication_budget
            {
                replication_retries += 1;
                let wait = policy.replication_backoff(replication_retries);
                replication_waited += wait;
                tracing::debug!(code = %err.code, wait_ms = wait.as_millis() as u64, "waiting for replication");
                tokio::time::sleep(wait).await;
                // Replication retries have their own budget, not the throttling attempts.
                attempt -= 1;
                continue;
            }
            return Err(SendFailure {
                error: err.into(),
                maybe_done,
            });
        }
    }

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
    async fn post_batch(&self, chunk: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, GraphError> {
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

fn batch_entry(r: &BatchRequest) -> Value {
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

fn validate_batch(reqs: &[BatchRequest]) -> Result<(), GraphError> {
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
fn chunk(reqs: &[BatchRequest]) -> Result<Vec<Vec<BatchRequest>>, GraphError> {
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

fn api_error_from(
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

/// `Retry-After` in (possibly fractional) seconds, e.g. `2.128` (behavior.md §9). HTTP-date
/// values are not used by Graph and are ignored (the backoff applies).
pub fn parse_retry_after(v: &str) -> Option<f64> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs)
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An OData string literal: `'…'` with `'` doubled.
pub fn odata_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Percent-encode a query value (an OData `$filter` expression) so it survives as one URL
/// component, both on the wire and inside a `$batch` `url`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~()/:,$@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str) -> BatchRequest {
        BatchRequest::new(id, GraphRequest::get(format!("/applications/{id}")))
    }

    #[test]
    fn retry_after_is_fractional_seconds() {
        assert_eq!(parse_retry_after("2.128"), Some(2.128));
        assert_eq!(parse_retry_after(" 10 "), Some(10.0));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn filters_are_quoted_and_encoded() {
        let f = format!(
            "identifierUris/any(x:x eq {})",
            odata_quote("https://axe.axelabs.ai/o'brien/mcp")
        );
        assert_eq!(
            encode_query_value(&f),
            "identifierUris/any(x:x%20eq%20%27https://axe.axelabs.ai/o%27%27brien/mcp%27)"
        );
    }

    #[test]
    fn batches_split_at_twenty_and_keep_dependencies_together() {
        let reqs: Vec<_> = (0..45).map(|i| req(&i.to_string())).collect();
        let chunks = chunk(&reqs).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![20, 20, 5]
        );
        let mut split = reqs.clone();
        split[20].depends_on.push("19".into());
        assert!(chunk(&split).is_err());
        let mut dup = vec![req("a"), req("A")];
        assert!(validate_batch(&dup).is_err());
        dup[1] = req("b");
        dup[1].request.sensitive = true;
        assert!(
            validate_batch(&dup)
                .unwrap_err()
                .to_string()
                .contains("must not be batched")
        );
    }

    #[test]
    fn batch_entries_carry_content_type_with_a_body() {
        let r = BatchRequest::new(
            "1",
            GraphRequest::patch("/applications/x", serde_json::json!({"displayName": "a"}))
                .header("Prefer", "create-if-missing"),
        );
        let e = batch_entry(&r);
        assert_eq!(e["headers"]["Content-Type"], "application/json");
        assert_eq!(e["headers"]["Prefer"], "create-if-missing");
        assert_eq!(e["method"], "PATCH");
        assert!(e.get("dependsOn").is_none());
    }

    #[test]
    fn inner_errors_map_with_request_id_and_retry_after() {
        let r = BatchResponse {
            id: "1".into(),
            status: 429,
            headers: [("Retry-After".to_string(), "2.5".to_string())].into(),
            body: Some(
                serde_json::json!({"error": {"code": "TooManyRequests", "message": "Please retry again later.",
                "innerError": {"request-id": "rid-1"}}}),
            ),
            method: "GET".into(),
            path: "/applications".into(),
        };
        let e = r.error().unwrap();
        assert_eq!((e.status, e.code.as_str()), (429, "TooManyRequests"));
        assert_eq!(e.request_id.as_deref(), Some("rid-1"));
        assert_eq!(e.retry_after, Some(2.5));
        let nf = BatchResponse {
            status: 404,
            headers: BTreeMap::new(),
            body: Some(
                serde_json::json!({"error": {"code": "Request_ResourceNotFound", "message": "x"}}),
            ),
            ..r
        };
        assert!(nf.into_json::<Value>().unwrap().is_none());
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy::default();
        for n in 1..40 {
            assert!(p.backoff(n) <= p.max_delay);
        }
        assert!(p.backoff(1) >= p.base_delay / 2);
    }
}
