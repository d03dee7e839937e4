//! One Graph request and its answer.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::graph::error::GraphError;

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
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) body: Zeroizing<Vec<u8>>,
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
