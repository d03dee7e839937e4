//! The Microsoft Graph HTTP client: one reqwest connection pool, a cached bearer token, bounded
//! jittered retries, `$batch`, and counters of HTTP requests and sequential round trips.
//!
//! Logging: one `debug` line per HTTP exchange with method, path, status, request-id and time.
//! Bodies are never logged (an `addPassword` response carries a client secret), and response
//! bytes are zeroized when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::auth::{AuthConfig, OperatorCredential};
use super::error::GraphError;
use super::tenant::ExpectedTenant;
use super::wire::Collection;
use crate::secret::Secret;

mod batch;
mod request;
mod retry;

pub use batch::{BATCH_LIMIT, BatchRequest, BatchResponse};
#[cfg(test)]
use batch::{batch_entry, chunk};
pub use request::{GraphRequest, GraphResponse, SendFailure};
use retry::api_error_from;
pub use retry::{RetryPolicy, parse_retry_after};

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

    /// The operator's client: credential from the environment (see
    /// [`OperatorCredential::from_env`]), the shared pool of
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
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::batch::validate_batch;
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
