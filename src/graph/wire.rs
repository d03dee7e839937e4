//! Graph JSON shapes the client reads and writes (`graph/schemas.json`), camelCase on the wire.
//!
//! Reads tolerate everything Graph may add (unknown fields ignored, nulls defaulted); writes
//! send only what they set (`skip_serializing_if`), because a PATCH replaces every collection it
//! names (<https://learn.microsoft.com/graph/api/application-update?view=graph-rest-1.0>).

use serde::{Deserialize, Serialize};

fn is_none<T>(v: &Option<T>) -> bool {
    v.is_none()
}

/// `microsoft.graph.application` (the subset entraform reads or writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Application {
    #[serde(skip_serializing_if = "is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub app_id: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub unique_name: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub sign_in_audience: Option<String>,
    #[serde(skip_serializing_if = "is_none")]
    pub identifier_uris: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_none")]
    pub api: Option<ApiApplication>,
    #[serde(skip_serializing_if = "is_none")]
    pub web: Option<WebApplication>,
    #[serde(skip_serializing_if = "is_none")]
    pub required_resource_access: Option<Vec<RequiredResourceAccess>>,
    /// Read-only through POST/PATCH; listed by GET with `secretText: null`.
    #[serde(skip_serializing)]
    pub password_credentials: Option<Vec<PasswordCredential>>,
    #[serde(skip_serializing)]
    pub created_date_time: Option<String>,
    #[serde(skip_serializing)]
    pub publisher_domain: Option<String>,
}

/// `microsoft.graph.apiApplication`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiApplication {
    /// `null` means 1
    /// (<https://learn.microsoft.com/graph/api/resources/apiapplication?view=graph-rest-1.0>).
    #[serde(skip_serializing_if = "is_none")]
    pub requested_access_token_version: Option<i32>,
    #[serde(skip_serializing_if = "is_none")]
    pub oauth2_permission_scopes: Option<Vec<PermissionScope>>,
}

/// `microsoft.graph.permissionScope`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PermissionScope {
    pub id: String,
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub is_enabled: bool,
    pub admin_consent_display_name: Option<String>,
    pub admin_consent_description: Option<String>,
    pub user_consent_display_name: Option<String>,
    pub user_consent_description: Option<String>,
}

/// `microsoft.graph.webApplication`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebApplication {
    #[serde(skip_serializing_if = "is_none")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_none")]
    pub implicit_grant_settings: Option<ImplicitGrantSettings>,
}

/// `microsoft.graph.implicitGrantSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImplicitGrantSettings {
    pub enable_id_token_issuance: Option<bool>,
    pub enable_access_token_issuance: Option<bool>,
}

/// `microsoft.graph.requiredResourceAccess`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequiredResourceAccess {
    pub resource_app_id: String,
    pub resource_access: Vec<ResourceAccess>,
}

/// `microsoft.graph.resourceAccess`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceAccess {
    pub id: String,
    /// `Scope` or `Role`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `microsoft.graph.passwordCredential` as listed (never with `secretText`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordCredential {
    pub key_id: Option<String>,
    pub display_name: Option<String>,
    pub hint: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
}

/// `microsoft.graph.servicePrincipal` (the subset entraform reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: Option<String>,
    pub oauth2_permission_scopes: Vec<PermissionScope>,
}

/// `microsoft.graph.oAuth2PermissionGrant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OAuth2PermissionGrant {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Object id of the client SP (not the appId).
    pub client_id: String,
    /// `AllPrincipals` or `Principal`.
    pub consent_type: String,
    pub principal_id: Option<String>,
    /// Object id of the resource SP.
    pub resource_id: String,
    /// Space-separated scope values.
    pub scope: String,
}

/// Graph's error envelope `{"error": {...}}` (<https://learn.microsoft.com/graph/errors>).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub inner_error: Option<InnerError>,
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InnerError {
    #[serde(rename = "request-id")]
    pub request_id: Option<String>,
    pub date: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub target: Option<String>,
}

/// A collection response `{"value": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Collection<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}
