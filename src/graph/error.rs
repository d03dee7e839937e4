//! Errors of the Graph layer: what Graph said (status, `error.code`, message, request-id), what
//! we asked (method, path), and what the user should do about it (`hint()`).
//!
//! Branch only on `code`, never on `message`: Microsoft says messages may change at any time
//! (<https://learn.microsoft.com/graph/errors>).

use std::fmt;

/// A failure talking to Microsoft Graph or to the login endpoint. Never contains a secret:
/// request and response bodies are not kept, only the error envelope's code and message.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with a non-success status and (usually) an error envelope.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The request did not get an HTTP answer (connection, TLS, timeout).
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// A token for Graph could not be obtained.
    #[error("cannot get a token for Microsoft Graph: {0}")]
    Auth(#[from] super::auth::AuthError),
    /// The operator's token is for another tenant than the customer's (nothing was sent).
    #[error(transparent)]
    Tenant(#[from] super::tenant::TenantError),
    /// Graph answered 2xx with a body we could not read.
    #[error("{method} {path}: unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
    /// A request we refused to send (bad batch, sensitive request in a batch, bad URL).
    #[error("{message}")]
    Invalid { message: String },
    /// The tenant's objects do not identify one app unambiguously (stateless lookup found
    /// different apps by different keys, or a pinned app is missing). Never guessed around.
    #[error("{message}")]
    Lookup {
        message: String,
        /// The object ids involved (so the user can inspect them).
        ids: Vec<String>,
        hint: String,
    },
}

/// Graph's answer to one failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (for a `$batch` inner response, the inner status).
    pub status: u16,
    /// `error.code` (e.g. `Request_ResourceNotFound`); empty when there was no envelope.
    pub code: String,
    /// `error.message` (Graph's words; may change, do not branch on it).
    pub message: String,
    /// `error.details[].code` (e.g. `NoBackingApplicationObject`).
    pub detail_codes: Vec<String>,
    /// `request-id` header or `innerError.request-id`: what Microsoft support asks for.
    pub request_id: Option<String>,
    /// `Retry-After` in seconds, when Graph sent one.
    pub retry_after: Option<f64>,
    /// The request that failed.
    pub method: String,
    pub path: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Microsoft Graph {} {} → {}",
            self.method, self.path, self.status
        )?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request-id {id})")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Build from the parts of a response; fills `hint` from the code.
    pub fn new(
        status: u16,
        code: impl Into<String>,
        message: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        let mut err = ApiError {
            status,
            code: code.into(),
            message: message.into(),
            detail_codes: Vec::new(),
            request_id: None,
            retry_after: None,
            method: method.into(),
            path: path.into(),
            hint: None,
        };
        err.hint = hint_for(&err);
        err
    }

    /// Whether `code` or one of the detail codes equals `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code == code || self.detail_codes.iter().any(|c| c == code)
    }

    /// 404 `Request_ResourceNotFound` (or a bare 404): the object is absent.
    pub fn is_not_found(&self) -> bool {
        self.status == 404 && (self.code.is_empty() || self.code == "Request_ResourceNotFound")
    }

    /// The transient errors of directory replication right after a create
    /// (<https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
    pub fn is_replication_delay(&self) -> bool {
        (self.status == 404 && self.has_code("Request_ResourceNotFound"))
            || (self.status == 400 && self.has_code("NoBackingApplicationObject"))
    }

    /// Throttling or a server-side failure: worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
    }
}

/// The fix for the error codes an operator of this tool meets.
fn hint_for(err: &ApiError) -> Option<String> {
    let h = match (err.status, err.code.as_str()) {
        (_, "Authorization_RequestDenied") | (403, _) => {
            if err.path.contains("oauth2PermissionGrants") {
                "the signed-in identity may not grant consent: give it the Graph application permission \
                 DelegatedPermissionGrant.ReadWrite.All (or the Privileged Role Administrator / Cloud \
                 Application Administrator role), or have an admin open the admin-consent URL"
            } else {
                "the signed-in identity lacks permission: give it the Graph application permission \
                 Application.ReadWrite.All (admin-consented), or the Cloud Application Administrator / \
                 Application Administrator directory role"
            }
        }
        (_, "HostNameNotOnVerifiedDomain") => {
            "the App ID URI's host is not a verified domain of the tenant: verify the domain in Entra \
             (Custom domain names), set api.requestedAccessTokenVersion to 2 in the same request, or \
             use an `api://` identifier URI"
        }
        (_, "InvalidAuthenticationToken") | (401, _) => {
            "the access token was refused: log in again (`az login`, or check AZURE_TENANT_ID / \
             AZURE_CLIENT_ID / AZURE_CLIENT_SECRET) and check that --graph-url and --authority-host \
             point at the same cloud"
        }
        (_, "CannotDeleteOrUpdateEnabledEntitlement") => {
            "an enabled scope cannot be changed or removed: disable it first (isEnabled: false) in \
             one PATCH, then change or remove it in a second one"
        }
        (_, "InvalidAccessTokenVersion") => {
            "this sign-in audience needs api.requestedAccessTokenVersion = 2; send both in the same PATCH"
        }
        (_, "Request_MultipleObjectsWithSameKeyValue") => {
            "the object already exists (same key); read it and update it instead of creating it"
        }
        (_, "Directory_QuotaExceeded") => {
            "the identity has hit the directory-object quota (250 for non-admins, deleted objects \
             count for 30 days): purge deleted apps or use an admin identity"
        }
        (_, "NoBackingApplicationObject") => {
            "the application is not visible yet (directory replication) or does not exist: retry in a \
             few seconds"
        }
        (429, _) | (_, "TooManyRequests") => {
            "Microsoft Graph is throttling this app+tenant: wait a minute and run again"
        }
        (404, _) => "the object does not exist (or was just created and has not replicated yet)",
        (500..=599, _) => "Microsoft Graph failed on its side: run again in a minute",
        _ => return None,
    };
    Some(h.to_string())
}

impl GraphError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            GraphError::Api(e) => e.hint.clone(),
            GraphError::Transport { .. } => Some(
                "check the network and --graph-url; for a TLS emulator pass its CA with --ca-cert"
                    .into(),
            ),
            GraphError::Auth(e) => e.hint(),
            GraphError::Tenant(e) => Some(e.hint()),
            GraphError::Decode { .. } => {
                Some("check that --graph-url points at Microsoft Graph v1.0".into())
            }
            GraphError::Invalid { .. } => None,
            GraphError::Lookup { hint, .. } => Some(hint.clone()),
        }
    }

    /// The Graph error, when Graph answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            GraphError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is Graph's "object absent".
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(ApiError::is_not_found)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        GraphError::Invalid {
            message: message.into(),
        }
    }
}

impl From<ApiError> for GraphError {
    fn from(e: ApiError) -> Self {
        GraphError::Api(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_everything_needed_for_support() {
        let mut e = ApiError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            "PATCH",
            "/applications(uniqueName='axe-blueprint-mcp')",
        );
        e.request_id = Some("93b6f17e-c05d-4f45-ad2a-6665c708d8a0".into());
        let s = e.to_string();
        assert!(s.contains("403 Authorization_RequestDenied"), "{s}");
        assert!(s.contains("PATCH /applications(uniqueName="), "{s}");
        assert!(s.contains("request-id 93b6f17e"), "{s}");
        assert!(e.hint.unwrap().contains("Application.ReadWrite.All"));
    }

    #[test]
    fn hints_follow_the_code() {
        let grant = ApiError::new(
            403,
            "Authorization_RequestDenied",
            "",
            "POST",
            "/oauth2PermissionGrants",
        );
        assert!(
            grant
                .hint
                .unwrap()
                .contains("DelegatedPermissionGrant.ReadWrite.All")
        );
        let host = ApiError::new(
            400,
            "HostNameNotOnVerifiedDomain",
            "",
            "PATCH",
            "/applications/x",
        );
        assert!(host.hint.unwrap().contains("api://"));
        let ent = ApiError::new(
            400,
            "CannotDeleteOrUpdateEnabledEntitlement",
            "",
            "PATCH",
            "/applications/x",
        );
        assert!(ent.hint.unwrap().contains("disable it first"));
        let tok = ApiError::new(
            401,
            "InvalidAuthenticationToken",
            "",
            "GET",
            "/applications",
        );
        assert!(tok.hint.unwrap().contains("az login"));
        assert_eq!(
            ApiError::new(400, "Request_BadRequest", "", "GET", "/x").hint,
            None
        );
    }

    #[test]
    fn classification() {
        let nf = ApiError::new(404, "Request_ResourceNotFound", "", "GET", "/x");
        assert!(nf.is_not_found() && nf.is_replication_delay() && !nf.is_transient());
        let mut nb = ApiError::new(400, "Request_BadRequest", "", "POST", "/servicePrincipals");
        assert!(!nb.is_replication_delay());
        nb.detail_codes.push("NoBackingApplicationObject".into());
        assert!(nb.is_replication_delay());
        assert!(ApiError::new(503, "", "", "GET", "/x").is_transient());
        assert!(!ApiError::new(400, "x", "", "GET", "/x").is_transient());
    }
}
