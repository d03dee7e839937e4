//! Graph's error envelope (<https://learn.microsoft.com/graph/errors>) and the codes the emulator answers with.

use serde_json::{Value, json};

use super::util::{Resp, inner_error_date};

/// The ids echoed in every Graph response and error (`request-id`, `client-request-id`).
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub request_id: String,
    pub client_request_id: String,
}

impl Ctx {
    pub fn new(client_request_id: Option<&str>) -> Self {
        let request_id = super::util::new_guid();
        let client_request_id = client_request_id
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        Ctx {
            request_id,
            client_request_id,
        }
    }
}

/// One Graph error: status, `error.code`, `error.message`, optional `details`.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(String, String)>,
    /// Extra members of `innerError` (throttling puts `code`/`status`
    /// there, <https://learn.microsoft.com/graph/throttling>).
    pub inner: Vec<(String, Value)>,
}

/// The `WWW-Authenticate` header Graph sends with a 401 (<https://learn.microsoft.com/graph/errors>).
pub(crate) const WWW_AUTHENTICATE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

impl GraphError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            inner: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Request_BadRequest", message)
    }

    /// Malformed JSON, unknown properties, unsupported segments: the OData layer's `BadRequest`.
    pub fn odata_bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn denied() -> Self {
        Self::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn unauthenticated(message: &str) -> Self {
        let mut e = Self::new(401, "InvalidAuthenticationToken", message);
        e.headers
            .push(("WWW-Authenticate".into(), WWW_AUTHENTICATE.into()));
        e
    }

    pub fn invalid_value(property: &str, resource: &str) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{resource}'."
        ))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    pub fn with_detail(mut self, code: &str, target: &str) -> Self {
        self.details.push(json!({
            "code": code,
            "message": self.message,
            "target": target,
        }));
        self
    }

    /// The envelope with the request's ids.
    pub fn to_resp(&self, ctx: &Ctx) -> Resp {
        let mut inner = serde_json::Map::new();
        inner.insert("date".into(), Value::String(inner_error_date()));
        inner.insert("request-id".into(), Value::String(ctx.request_id.clone()));
        inner.insert(
            "client-request-id".into(),
            Value::String(ctx.client_request_id.clone()),
        );
        for (k, v) in &self.inner {
            inner.insert(k.clone(), v.clone());
        }
        let mut error = serde_json::Map::new();
        error.insert("code".into(), Value::String(self.code.to_string()));
        error.insert("message".into(), Value::String(self.message.clone()));
        if !self.details.is_empty() {
            error.insert("details".into(), Value::Array(self.details.clone()));
        }
        error.insert("innerError".into(), Value::Object(inner));
        let mut resp = Resp::json(self.status, json!({ "error": Value::Object(error) }));
        resp.headers.extend(self.headers.iter().cloned());
        resp
    }
}

pub(crate) type GraphResult<T> = Result<T, GraphError>;
