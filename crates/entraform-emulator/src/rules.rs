//! The validation Graph applies to application objects (<https://learn.microsoft.com/graph/api/resources/application?view=graph-rest-1.0>), with its status codes
//! and `error.code`s. Each rule is checked on the document as it would be after the write, and
//! against the document before it where the rule is about change (new identifier URIs, enabled
//! scopes).

use serde_json::{Value, json};

use super::errors::{GraphError, GraphResult};
use super::state::{API_PROPS, State, WEB_PROPS};
use super::util::is_guid;

const AUDIENCES: &[&str] = &[
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

fn personal(audience: &str) -> bool {
    matches!(
        audience,
        "AzureADandPersonalMicrosoftAccount" | "PersonalMicrosoftAccount"
    )
}

/// Reject what Graph rejects in a request body before merging it: unknown properties, the
/// wrong JSON type, read-only properties (<https://learn.microsoft.com/graph/api/resources/passwordcredential?view=graph-rest-1.0>
/// for passwordCredentials).
pub(crate) fn check_body(
    body: &Value,
    type_name: &str,
    known: &mut dyn Iterator<Item = &'static str>,
    current: Option<&Value>,
) -> GraphResult<()> {
    let Some(obj) = body.as_object() else {
        return Err(GraphError::odata_bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        ));
    };
    let known: Vec<&str> = known.collect();
    for (k, v) in obj {
        if k.starts_with('@') {
            continue;
        }
        if !known.contains(&k.as_str()) {
            return Err(unknown_property(k, type_name));
        }
        match k.as_str() {
            "passwordCredentials" if v.as_array().is_some_and(|a| !a.is_empty()) => {
                return Err(GraphError::bad_request(
                    "Property 'passwordCredentials' is read-only and cannot be set; use addPassword.",
                ));
            }
            "id" | "appId" | "createdDateTime" | "publisherDomain"
                if type_name == "microsoft.graph.application" || k == "id" =>
            {
                let same = current.is_some_and(|c| c.get(k) == Some(v));
                if !same && !v.is_null() {
                    return Err(GraphError::bad_request(format!(
                        "Property '{k}' is read-only and cannot be set."
                    )));
                }
            }
            _ => {}
        }
    }
    if type_name == "microsoft.graph.application" {
        for (prop, sub) in [("api", API_PROPS), ("web", WEB_PROPS)] {
            if let Some(o) = obj.get(prop) {
                match o {
                    Value::Null => {}
                    Value::Object(m) => {
                        for k in m.keys() {
                            if !k.starts_with('@') && !sub.contains(&k.as_str()) {
                                let t = if prop == "api" {
                                    "microsoft.graph.apiApplication"
                                } else {
                                    "microsoft.graph.webApplication"
                                };
                                return Err(unknown_property(k, t));
                            }
                        }
                    }
                    _ => return Err(GraphError::invalid_value(prop, "Application")),
                }
            }
        }
        for coll in [
            "identifierUris",
            "requiredResourceAccess",
            "tags",
            "appRoles",
            "keyCredentials",
        ] {
            if let Some(v) = obj.get(coll)
                && !v.is_array()
            {
                return Err(GraphError::odata_bad_request(format!(
                    "Cannot convert the literal to the collection type of property '{coll}'; send a JSON array."
                )));
            }
        }
    }
    Ok(())
}

fn unknown_property(name: &str, type_name: &str) -> GraphError {
    GraphError::odata_bad_request(format!(
        "Property '{name}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type or mark the type as open type."
    ))
}

/// Fill every field of a permissionScope / appRole so comparisons see `missing == null`.
fn normalize_entitlements(list: &mut Value, fields: &[&str], collections: &[&str]) {
    if let Some(items) = list.as_array_mut() {
        for item in items {
            if let Some(o) = item.as_object_mut() {
                for f in fields {
                    o.entry(f.to_string()).or_insert(Value::Null);
                }
                for f in collections {
                    o.entry(f.to_string()).or_insert(json!([]));
                }
                // isEnabled is a non-nullable boolean: absent means false.
                if !o["isEnabled"].is_boolean() {
                    o.insert("isEnabled".into(), Value::Bool(false));
                }
                if o["origin"].is_null() {
                    o.insert("origin".into(), json!("Application"));
                }
            }
        }
    }
}

const SCOPE_FIELDS: &[&str] = &[
    "adminConsentDescription",
    "adminConsentDisplayName",
    "id",
    "isEnabled",
    "origin",
    "type",
    "userConsentDescription",
    "userConsentDisplayName",
    "value",
];
const ROLE_FIELDS: &[&str] = &[
    "description",
    "displayName",
    "id",
    "isEnabled",
    "origin",
    "value",
];

/// Validate (and normalize) an application document as it would be stored.
/// `old` is the stored document for an update, `None` for a create.
pub(crate) fn validate_application(
    state: &State,
    old: Option<&Value>,
    new: &mut Value,
) -> GraphResult<()> {
    // displayName: required, ≤120 characters (<https://learn.microsoft.com/graph/api/resources/application?view=graph-rest-1.0>).
    match new["displayName"].as_str() {
        Some(n) if !n.trim().is_empty() => {
            if n.chars().count() > 120 {
                return Err(GraphError::invalid_value("displayName", "Application"));
            }
        }
        _ => {
            return Err(GraphError::bad_request(
                "Property 'displayName' is required and cannot be null or empty.",
            ));
        }
    }

    if !new["oauth2RequirePostResponse"].is_boolean() {
        return Err(GraphError::invalid_value(
            "oauth2RequirePostResponse",
            "Application",
        ));
    }

    let audience = new["signInAudience"]
        .as_str()
        .unwrap_or("AzureADMyOrg")
        .to_string();
    if !AUDIENCES.contains(&audience.as_str()) {
        return Err(GraphError::invalid_value("signInAudience", "Application"));
    }

    // Token version vs audience (<https://learn.microsoft.com/entra/identity-platform/supported-accounts-validation>).
    let version = &new["api"]["requestedAccessTokenVersion"];
    let v = match version {
        Value::Null => 1,
        Value::Number(n) if n.as_i64() == Some(1) || n.as_i64() == Some(2) => {
            n.as_i64().unwrap_or(1)
        }
        _ => return Err(GraphError::invalid_value("api", "Application")),
    };
    if personal(&audience) && v != 2 {
        return Err(GraphError::new(
            400,
            "InvalidAccessTokenVersion",
            "One or more properties contains invalid values.",
        ));
    }

    check_identifier_uris(state, old, new, v, &audience)?;

    // Scopes and app roles.
    normalize_entitlements(&mut new["api"]["oauth2PermissionScopes"], SCOPE_FIELDS, &[]);
    normalize_entitlements(&mut new["appRoles"], ROLE_FIELDS, &["allowedMemberTypes"]);
    check_scopes(&new["api"]["oauth2PermissionScopes"], personal(&audience))?;
    check_roles(&new["appRoles"])?;
    if let Some(old) = old {
        let mut old_scopes = old["api"]["oauth2PermissionScopes"].clone();
        normalize_entitlements(&mut old_scopes, SCOPE_FIELDS, &[]);
        enabled_entitlements_kept(&old_scopes, &new["api"]["oauth2PermissionScopes"])?;
        let mut old_roles = old["appRoles"].clone();
        normalize_entitlements(&mut old_roles, ROLE_FIELDS, &["allowedMemberTypes"]);
        enabled_entitlements_kept(&old_roles, &new["appRoles"])?;
    }

    check_redirect_uris(&new["web"]["redirectUris"], "web", &audience)?;
    check_redirect_uris(&new["spa"]["redirectUris"], "spa", &audience)?;
    check_required_resource_access(&new["requiredResourceAccess"])?;

    if let Some(tags) = new["tags"].as_array() {
        let mut seen = Vec::new();
        for t in tags {
            let Some(t) = t.as_str() else {
                return Err(GraphError::invalid_value("tags", "Application"));
            };
            if t.is_empty()
                || t.len() > 256
                || t.chars().any(char::is_whitespace)
                || seen.contains(&t)
            {
                return Err(GraphError::invalid_value("tags", "Application"));
            }
            seen.push(t);
        }
    }
    Ok(())
}

fn check_identifier_uris(
    state: &State,
    old: Option<&Value>,
    new: &Value,
    version: i64,
    audience: &str,
) -> GraphResult<()> {
    let Some(uris) = new["identifierUris"].as_array() else {
        return Ok(());
    };
    let old_uris: Vec<String> = old
        .and_then(|o| o["identifierUris"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let app_id = new["appId"].as_str().unwrap_or("").to_lowercase();
    let tenant = state.tenant_id.to_lowercase();
    let domains = state.domains();
    let mut seen: Vec<String> = Vec::new();
    let invalid = || GraphError::invalid_value("identifierUris", "Application");
    for uri in uris {
        let Some(uri) = uri.as_str() else {
            return Err(invalid());
        };
        let lower = uri.to_lowercase();
        if seen.contains(&lower) {
            return Err(invalid());
        }
        seen.push(lower.clone());
        // Only URIs this write adds are checked against the format/domain policies; existing
        // ones are grandfathered (<https://learn.microsoft.com/entra/identity-platform/identifier-uri-restrictions>, "newly added URIs").
        if old_uris.contains(&lower) {
            continue;
        }
        if uri.ends_with('/') || uri.len() > 255 || uri.contains('*') {
            return Err(invalid());
        }
        if personal(audience)
            && (uri.contains('?') || uri.contains('#') || lower.starts_with("urn:"))
        {
            return Err(invalid());
        }
        let parsed = url::Url::parse(uri).map_err(|_| invalid())?;
        match parsed.scheme() {
            "https" | "http" => {
                let host = parsed.host_str().unwrap_or("").to_lowercase();
                let on_verified = domains.iter().any(|d| {
                    let d = d.to_lowercase();
                    host == d || host.ends_with(&format!(".{d}"))
                });
                // Layer 1: http(s) URIs must sit on a verified domain unless tokens are v2.
                if !on_verified && version != 2 {
                    return Err(GraphError::new(
                        400,
                        "HostNameNotOnVerifiedDomain",
                        format!(
                            "Values of identifierUris property must use a verified domain of the organization or its subdomain: '{uri}'"
                        ),
                    ));
                }
            }
            "api" => {
                let host = parsed.host_str().unwrap_or("").to_lowercase();
                let first_path = parsed
                    .path()
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_lowercase();
                // A GUID right after api:// must be the appId or the tenant id.
                if is_guid(&host) && host != app_id && host != tenant {
                    return Err(invalid());
                }
                let mentions = |s: &str| s == app_id || s == tenant;
                // Layer 2 (default tenant policy, 2025): v1 apps add only URIs that contain a
                // verified domain, the tenant id or the app id.
                if version != 2 && !mentions(&host) && !mentions(&first_path) {
                    return Err(GraphError::bad_request(format!(
                        "Failed to add identifier URI {uri}. All newly added URIs must contain a tenant verified domain, tenant ID, or app ID, as per the default tenant policy of your organization. See https://aka.ms/identifier-uri-addition-error for more information on this error."
                    )));
                }
            }
            "urn" => {}
            _ => return Err(invalid()),
        }
    }
    // Unique in the tenant (<https://learn.microsoft.com/entra/identity-platform/identifier-uri-restrictions>), checked against every other application.
    let own_id = new["id"].as_str().unwrap_or("");
    for other in &state.applications {
        if other.id() == own_id {
            continue;
        }
        if let Some(theirs) = other.data["identifierUris"].as_array()
            && theirs
                .iter()
                .filter_map(|u| u.as_str())
                .any(|u| seen.contains(&u.to_lowercase()))
        {
            return Err(GraphError::bad_request(
                "Another object with the same value for property identifierUris already exists.",
            )
            .with_detail("ObjectConflict", "identifierUris"));
        }
    }
    Ok(())
}

fn scope_value_ok(v: &str, personal: bool) -> bool {
    const EXTRA: &str = ":!#$%&'()*+,-./;<=>?@[]^_{|}~`";
    let max = if personal { 40 } else { 120 };
    !v.is_empty()
        && v.chars().count() <= max
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || EXTRA.contains(c))
}

fn check_scopes(scopes: &Value, personal: bool) -> GraphResult<()> {
    let Some(items) = scopes.as_array() else {
        return Ok(());
    };
    let invalid = || GraphError::invalid_value("api", "Application");
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for s in items {
        let id = s["id"]
            .as_str()
            .filter(|i| is_guid(i))
            .ok_or_else(invalid)?;
        if ids.contains(&id.to_lowercase()) {
            return Err(invalid());
        }
        ids.push(id.to_lowercase());
        let value = s["value"].as_str().ok_or_else(invalid)?;
        if !scope_value_ok(value, personal) {
            return Err(invalid());
        }
        if values.contains(&value.to_lowercase()) {
            return Err(GraphError::bad_request(format!(
                "Permission (scope or role) value '{value}' is used more than once."
            )));
        }
        values.push(value.to_lowercase());
        if !matches!(s["type"].as_str(), Some("User") | Some("Admin")) {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_roles(roles: &Value) -> GraphResult<()> {
    let Some(items) = roles.as_array() else {
        return Ok(());
    };
    let invalid = || GraphError::invalid_value("appRoles", "Application");
    let mut ids = Vec::new();
    for r in items {
        let id = r["id"]
            .as_str()
            .filter(|i| is_guid(i))
            .ok_or_else(invalid)?;
        if ids.contains(&id.to_lowercase()) {
            return Err(invalid());
        }
        ids.push(id.to_lowercase());
    }
    Ok(())
}

/// An enabled scope/role can be neither removed nor changed; it must be disabled first, in an
/// earlier request (<https://learn.microsoft.com/graph/api/resources/permissionscope?view=graph-rest-1.0>).
fn enabled_entitlements_kept(old: &Value, new: &Value) -> GraphResult<()> {
    let err = || {
        GraphError::new(
            400,
            "CannotDeleteOrUpdateEnabledEntitlement",
            "Permission (scope or role) cannot be deleted or updated unless disabled first.",
        )
    };
    let new_items = new.as_array().cloned().unwrap_or_default();
    for o in old.as_array().into_iter().flatten() {
        if o["isEnabled"] != Value::Bool(true) {
            continue;
        }
        let id = o["id"].as_str().unwrap_or("").to_lowercase();
        let Some(n) = new_items
            .iter()
            .find(|n| n["id"].as_str().map(str::to_lowercase).as_deref() == Some(id.as_str()))
        else {
            return Err(err());
        };
        let mut a = o.clone();
        let mut b = n.clone();
        for x in [&mut a, &mut b] {
            if let Some(m) = x.as_object_mut() {
                m.remove("isEnabled");
                m.remove("origin");
                if let Some(id) = m.get_mut("id")
                    && let Some(s) = id.as_str()
                {
                    *id = Value::String(s.to_lowercase());
                }
            }
        }
        if a != b {
            return Err(err());
        }
    }
    Ok(())
}

fn check_redirect_uris(list: &Value, property: &str, audience: &str) -> GraphResult<()> {
    let Some(items) = list.as_array() else {
        return Ok(());
    };
    let invalid = || GraphError::invalid_value(property, "Application");
    let max = if personal(audience) { 100 } else { 256 };
    if items.len() > max {
        return Err(invalid());
    }
    for u in items {
        let s = u.as_str().ok_or_else(invalid)?;
        if s.len() > 256
            || s.chars()
                .any(|c| "!$'(),;".contains(c) || c.is_whitespace())
        {
            return Err(invalid());
        }
        let parsed = url::Url::parse(s).map_err(|_| invalid())?;
        let host = parsed.host_str().unwrap_or("");
        let ok = match parsed.scheme() {
            "https" => !host.is_empty(),
            // Loopback is the one place http is allowed (<https://learn.microsoft.com/entra/identity-platform/reply-url>).
            "http" => host == "localhost" || host == "127.0.0.1" || host == "[::1]",
            _ => false,
        };
        if !ok || (personal(audience) && parsed.query().is_some()) {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_required_resource_access(list: &Value) -> GraphResult<()> {
    let Some(items) = list.as_array() else {
        return Ok(());
    };
    let invalid = || GraphError::invalid_value("requiredResourceAccess", "Application");
    if items.len() > 50 {
        return Err(invalid());
    }
    let mut total = 0;
    for rra in items {
        rra["resourceAppId"]
            .as_str()
            .filter(|g| is_guid(g))
            .ok_or_else(invalid)?;
        let access = rra["resourceAccess"].as_array().ok_or_else(invalid)?;
        for a in access {
            a["id"]
                .as_str()
                .filter(|g| is_guid(g))
                .ok_or_else(invalid)?;
            if !matches!(a["type"].as_str(), Some("Scope") | Some("Role")) {
                return Err(invalid());
            }
            total += 1;
        }
    }
    if total > 400 {
        return Err(invalid());
    }
    Ok(())
}
