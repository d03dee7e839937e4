//! The emulated tenant: applications, service principals, grants and credentials as Graph JSON
//! (`serde_json::Value`, so PATCH merges and unknown-but-valid properties behave like Graph),
//! plus what Graph never shows: secret digests, principals' app roles, visibility times.
//!
//! Secrets are kept only as SHA-256 digests here, so a persisted `--state` file holds no secret.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::util::{iso, new_guid, now_iso};
use crate::Secret;

/// Microsoft Graph's appId (the same in every tenant,
/// <https://learn.microsoft.com/graph/permissions-grant-via-msgraph>).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Delegated `User.Read`.
pub const USER_READ_ID: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";

/// App roles (application permissions) the emulator checks on Graph calls.
pub mod roles {
    pub const APPLICATION_READ_ALL: &str = "Application.Read.All";
    pub const APPLICATION_READWRITE_ALL: &str = "Application.ReadWrite.All";
    pub const GRANT_READWRITE_ALL: &str = "DelegatedPermissionGrant.ReadWrite.All";
    pub const DIRECTORY_READ_ALL: &str = "Directory.Read.All";
    pub const DIRECTORY_READWRITE_ALL: &str = "Directory.ReadWrite.All";
}

/// uniqueNames of the two seeded operator principals.
pub const OPERATOR_UNIQUE_NAME: &str = "entraform-emulator-operator";
pub const LIMITED_OPERATOR_UNIQUE_NAME: &str = "entraform-emulator-operator-limited";

/// One directory object and the moment it becomes visible to reads (replication delay).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Obj {
    pub data: Value,
    /// Unix ms; 0 = always visible.
    #[serde(default)]
    pub visible_at: u64,
}

impl Obj {
    pub fn visible(&self, now: u64) -> bool {
        self.visible_at <= now
    }
    pub fn id(&self) -> &str {
        self.data["id"].as_str().unwrap_or("")
    }
    pub fn app_id(&self) -> &str {
        self.data["appId"].as_str().unwrap_or("")
    }
}

/// A client secret as the login endpoint sees it: its digest, never its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PasswordRecord {
    pub key_id: String,
    pub app_id: String,
    /// Hex SHA-256 of the secret value.
    pub digest: String,
    pub visible_at: u64,
}

/// The whole tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub tenant_id: String,
    pub initial_domain: String,
    pub verified_domains: Vec<String>,
    pub applications: Vec<Obj>,
    pub service_principals: Vec<Obj>,
    pub grants: Vec<Obj>,
    pub passwords: Vec<PasswordRecord>,
    /// appId → application permissions its tokens carry.
    pub roles: BTreeMap<String, Vec<String>>,
}

pub(crate) fn digest_hex(secret: &Secret) -> String {
    secret.digest().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new client secret: 40 characters of Entra's alphabet, shaped like the current format
/// (three characters, a digit, `Q~`, then 34 more;
/// <https://learn.microsoft.com/graph/api/application-addpassword?view=graph-rest-1.0>).
pub(crate) fn generate_secret() -> Secret {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const FULL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(40);
    for _ in 0..3 {
        s.push(ALNUM[rng.random_range(0..ALNUM.len())] as char);
    }
    s.push(char::from(b'0' + rng.random_range(1..10u8)));
    s.push_str("Q~");
    for _ in 0..34 {
        s.push(FULL[rng.random_range(0..FULL.len())] as char);
    }
    Secret::new(s)
}

/// Top-level properties of `microsoft.graph.application` (non-navigation; `[]` = collection),
/// from the v1.0 metadata (graph/schemas.json). Unknown names in a body are rejected, as Graph does.
/// `logo` is left out: a stream property, never inline in JSON (set with `PUT /logo`).
const APPLICATION_PROPS: &str = "id deletedDateTime addIns[] api appId applicationTemplateId appRoles[] authenticationBehaviors certification createdByAppId createdDateTime defaultRedirectUri description disabledByMicrosoftStatus displayName groupMembershipClaims identifierUris[] info isDeviceOnlyAuthSupported isDisabled isFallbackPublicClient keyCredentials[] managerApplications[] nativeAuthenticationApisEnabled notes oauth2RequirePostResponse optionalClaims parentalControlSettings passwordCredentials[] publicClient publisherDomain requestSignatureVerification requiredResourceAccess[] samlMetadataUrl serviceManagementReference servicePrincipalLockConfiguration signInAudience spa tags[] tokenEncryptionKeyId uniqueName verifiedPublisher web";
const SERVICE_PRINCIPAL_PROPS: &str = "id deletedDateTime accountEnabled addIns[] alternativeNames[] appDescription appDisplayName appId applicationTemplateId appOwnerOrganizationId appRoleAssignmentRequired appRoles[] createdByAppId customSecurityAttributes description disabledByMicrosoftStatus displayName homepage info isDisabled keyCredentials[] loginUrl logoutUrl notes notificationEmailAddresses[] oauth2PermissionScopes[] passwordCredentials[] preferredSingleSignOnMode preferredTokenSigningKeyThumbprint replyUrls[] resourceSpecificApplicationPermissions[] samlSingleSignOnSettings servicePrincipalNames[] servicePrincipalType signInAudience tags[] tokenEncryptionKeyId verifiedPublisher";
pub(crate) const API_PROPS: &[&str] = &[
    "acceptMappedClaims",
    "knownClientApplications",
    "oauth2PermissionScopes",
    "preAuthorizedApplications",
    "requestedAccessTokenVersion",
];
pub(crate) const WEB_PROPS: &[&str] = &[
    "homePageUrl",
    "implicitGrantSettings",
    "logoutUrl",
    "redirectUris",
    "redirectUriSettings",
];

fn props(list: &'static str) -> impl Iterator<Item = (&'static str, bool)> {
    list.split(' ').map(|p| match p.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (name_of(p), false),
    })
}

fn name_of(p: &'static str) -> &'static str {
    p
}

pub(crate) fn application_prop_names() -> impl Iterator<Item = &'static str> {
    props(APPLICATION_PROPS).map(|(n, _)| n)
}

pub(crate) fn service_principal_prop_names() -> impl Iterator<Item = &'static str> {
    props(SERVICE_PRINCIPAL_PROPS).map(|(n, _)| n)
}

/// Every property null, every collection empty (Graph sends all of them,
/// <https://learn.microsoft.com/graph/api/application-list?view=graph-rest-1.0>).
fn skeleton(list: &'static str) -> Map<String, Value> {
    props(list)
        .map(|(name, coll)| (name.to_string(), if coll { json!([]) } else { Value::Null }))
        .collect()
}

/// Deep merge as Graph's PATCH does: objects merge property by property, everything else
/// (collections included) is replaced whole
/// (<https://learn.microsoft.com/graph/api/application-update?view=graph-rest-1.0>).
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if k.starts_with('@') {
                    continue;
                }
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl State {
    pub fn new(tenant_id: &str, initial_domain: &str, verified_domains: &[String]) -> Self {
        let mut state = State {
            tenant_id: tenant_id.to_string(),
            initial_domain: initial_domain.to_string(),
            verified_domains: verified_domains.to_vec(),
            applications: Vec::new(),
            service_principals: Vec::new(),
            grants: Vec::new(),
            passwords: Vec::new(),
            roles: BTreeMap::new(),
        };
        state.service_principals.push(Obj {
            data: graph_service_principal(tenant_id),
            visible_at: 0,
        });
        state
    }

    /// All domains identifier URIs may use (initial + verified).
    pub fn domains(&self) -> Vec<String> {
        let mut d = vec![self.initial_domain.clone()];
        d.extend(self.verified_domains.iter().cloned());
        d
    }

    pub fn app_index_by(&self, key: &str, value: &str, now: Option<u64>) -> Option<usize> {
        self.applications.iter().position(|o| {
            o.data[key]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
                && now.is_none_or(|n| o.visible(n))
        })
    }

    pub fn sp_index_by(&self, key: &str, value: &str, now: Option<u64>) -> Option<usize> {
        self.service_principals.iter().position(|o| {
            o.data[key]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
                && now.is_none_or(|n| o.visible(n))
        })
    }

    pub fn grant_index(&self, id: &str, now: Option<u64>) -> Option<usize> {
        self.grants
            .iter()
            .position(|o| o.id() == id && now.is_none_or(|n| o.visible(n)))
    }

    /// A new application from a POST/upsert body (already validated by the caller).
    pub fn new_application(&self, body: &Value) -> Value {
        let mut app = Value::Object(skeleton(APPLICATION_PROPS));
        merge(&mut app, &application_defaults(&self.initial_domain));
        merge(&mut app, body);
        app["id"] = json!(new_guid());
        app["appId"] = json!(new_guid());
        app["createdDateTime"] = json!(now_iso());
        app["publisherDomain"] = json!(self.initial_domain);
        app["passwordCredentials"] = json!([]);
        app
    }

    /// The service principal of an application (its mirrored properties in sync).
    pub fn new_service_principal(&self, app: &Value, body: &Value) -> Value {
        let mut sp = Value::Object(skeleton(SERVICE_PRINCIPAL_PROPS));
        merge(
            &mut sp,
            &json!({
                "accountEnabled": true,
                "appOwnerOrganizationId": self.tenant_id,
                "appRoleAssignmentRequired": false,
                "servicePrincipalType": "Application",
                "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null,
                         "supportUrl": null, "termsOfServiceUrl": null},
                "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
            }),
        );
        merge(&mut sp, body);
        sp["id"] = json!(new_guid());
        sync_sp_from_app(&mut sp, app);
        sp
    }

    /// Keep an application's SP mirror in step (immediate here;
    /// <https://learn.microsoft.com/graph/api/resources/applications-api-overview>).
    pub fn sync_sp(&mut self, app_index: usize) {
        let app = self.applications[app_index].data.clone();
        let app_id = app["appId"].as_str().unwrap_or("").to_string();
        if let Some(i) = self.sp_index_by("appId", &app_id, None) {
            sync_sp_from_app(&mut self.service_principals[i].data, &app);
        }
    }

    /// Add a password credential; returns the credential as `addPassword` answers and the value.
    pub fn add_password(
        &mut self,
        app_index: usize,
        display_name: Value,
        start: OffsetDateTime,
        end: OffsetDateTime,
        secret: Option<Secret>,
        visible_at: u64,
    ) -> (Value, Secret) {
        let secret = secret.unwrap_or_else(generate_secret);
        let key_id = new_guid();
        let cred = json!({
            "customKeyIdentifier": null,
            "displayName": display_name,
            "endDateTime": iso(end),
            "hint": secret.hint(),
            "keyId": key_id,
            "secretText": null,
            "startDateTime": iso(start),
        });
        let app = &mut self.applications[app_index];
        let app_id = app.app_id().to_string();
        if let Some(list) = app.data["passwordCredentials"].as_array_mut() {
            list.push(cred.clone());
        } else {
            app.data["passwordCredentials"] = json!([cred.clone()]);
        }
        self.passwords.push(PasswordRecord {
            key_id,
            app_id,
            digest: digest_hex(&secret),
            visible_at,
        });
        (cred, secret)
    }

    /// Remove an application and what hangs off it (its SP, that SP's grants, its secrets).
    pub fn remove_application(&mut self, index: usize) {
        let app = self.applications.remove(index);
        let app_id = app.app_id().to_string();
        self.passwords.retain(|p| p.app_id != app_id);
        if let Some(i) = self.sp_index_by("appId", &app_id, None) {
            self.remove_service_principal(i);
        }
    }

    pub fn remove_service_principal(&mut self, index: usize) {
        let sp = self.service_principals.remove(index);
        let id = sp.id().to_string();
        self.grants.retain(|g| {
            g.data["clientId"].as_str() != Some(id.as_str())
                && g.data["resourceId"].as_str() != Some(id.as_str())
        });
    }
}

fn sync_sp_from_app(sp: &mut Value, app: &Value) {
    let app_id = app["appId"].clone();
    let mut names = vec![app_id.clone()];
    if let Some(uris) = app["identifierUris"].as_array() {
        names.extend(uris.iter().cloned());
    }
    sp["appId"] = app_id;
    sp["appDisplayName"] = app["displayName"].clone();
    sp["displayName"] = app["displayName"].clone();
    sp["servicePrincipalNames"] = Value::Array(names);
    sp["signInAudience"] = app["signInAudience"].clone();
    sp["oauth2PermissionScopes"] = app["api"]["oauth2PermissionScopes"]
        .as_array()
        .map(|a| Value::Array(a.clone()))
        .unwrap_or_else(|| json!([]));
    sp["appRoles"] = app["appRoles"].clone();
    sp["replyUrls"] = app["web"]["redirectUris"]
        .as_array()
        .map(|a| Value::Array(a.clone()))
        .unwrap_or_else(|| json!([]));
    sp["tags"] = app["tags"].clone();
}

/// What a bare `{"displayName": …}` POST produces besides nulls and empty collections
/// (`AzureADMyOrg`, token version null, implicit grants off;
/// <https://learn.microsoft.com/graph/api/application-post-applications?view=graph-rest-1.0>).
fn application_defaults(publisher_domain: &str) -> Value {
    json!({
        "signInAudience": "AzureADMyOrg",
        "publisherDomain": publisher_domain,
        "oauth2RequirePostResponse": false,
        "api": {"acceptMappedClaims": null, "knownClientApplications": [],
                "oauth2PermissionScopes": [], "preAuthorizedApplications": [],
                "requestedAccessTokenVersion": null},
        "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null,
                 "supportUrl": null, "termsOfServiceUrl": null},
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "publicClient": {"redirectUris": []},
        "spa": {"redirectUris": []},
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
        "web": {"homePageUrl": null, "logoutUrl": null, "redirectUris": [], "redirectUriSettings": [],
                "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false}},
    })
}

/// The Microsoft Graph service principal every tenant has
/// (<https://learn.microsoft.com/graph/permissions-grant-via-msgraph>).
fn graph_service_principal(tenant_id: &str) -> Value {
    let _ = tenant_id;
    let scope = |id: &str, value: &str, kind: &str, admin: &str, user: &str| {
        json!({
            "adminConsentDescription": format!("Allows the app to {}.", admin.to_lowercase()),
            "adminConsentDisplayName": admin,
            "id": id,
            "isEnabled": true,
            "type": kind,
            "userConsentDescription": format!("Allows the app to {}.", user.to_lowercase()),
            "userConsentDisplayName": user,
            "value": value,
        })
    };
    let role = |id: &str, value: &str, name: &str| {
        json!({
            "allowedMemberTypes": ["Application"],
            "description": format!("Allows the app to {} without a signed-in user.", name.to_lowercase()),
            "displayName": name,
            "id": id,
            "isEnabled": true,
            "origin": "Application",
            "value": value,
        })
    };
    let mut sp = Value::Object(skeleton(SERVICE_PRINCIPAL_PROPS));
    merge(
        &mut sp,
        &json!({
            "id": new_guid(),
            "accountEnabled": true,
            "appDisplayName": "Microsoft Graph",
            "appId": GRAPH_APP_ID,
            "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
            "appRoleAssignmentRequired": false,
            "displayName": "Microsoft Graph",
            "servicePrincipalNames": [GRAPH_APP_ID, "https://graph.microsoft.com", "https://graph.microsoft.com/", "https://canary.graph.microsoft.com"],
            "servicePrincipalType": "Application",
            "signInAudience": "AzureADMultipleOrgs",
            "oauth2PermissionScopes": [
                scope(USER_READ_ID, "User.Read", "User", "Sign in and read user profile", "Sign in and read your profile"),
                scope("a154be20-db9c-4678-8ab7-66f6cc099a59", "User.Read.All", "Admin", "Read all users' full profiles", "Read all users' full profiles"),
                scope("5f8c59db-677d-491f-a6b8-5f174b11ec1d", "Group.Read.All", "Admin", "Read all groups", "Read all groups"),
                scope("37f7f235-527c-4136-accd-4a02d197296e", "openid", "User", "Sign users in", "Sign in as you"),
                scope("64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", "email", "User", "View users' email address", "View your email address"),
                scope("14dad69e-099b-42c9-810b-d002981feec1", "profile", "User", "View users' basic profile", "View your basic profile"),
                scope("7427e0e9-2fba-42fe-b0c0-848c9e6a8182", "offline_access", "User", "Maintain access to data you have given it access to", "Maintain access to data you have given it access to"),
            ],
            "appRoles": [
                role("df021288-bdef-4463-88db-98f22de89214", "User.Read.All", "Read all users' full profiles"),
                role("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", roles::APPLICATION_READWRITE_ALL, "Read and write all applications"),
                role("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", roles::APPLICATION_READ_ALL, "Read all applications"),
                role("8e8e4742-1d95-4f68-9d56-6ee75648c72a", roles::GRANT_READWRITE_ALL, "Manage all delegated permission grants"),
                role("7ab1d382-f21e-4acd-a863-ba3e13f7da61", roles::DIRECTORY_READ_ALL, "Read directory data"),
                role("19dbc75e-c2e2-444c-a770-ec69d8559fc7", roles::DIRECTORY_READWRITE_ALL, "Read and write directory data"),
            ],
            "info": {"logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null,
                     "supportUrl": null, "termsOfServiceUrl": null},
            "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null},
        }),
    );
    sp
}

/// The id Graph gives a grant: unpadded base64url of the little-endian GUID bytes of
/// clientId + resourceId (+ principalId),
/// <https://learn.microsoft.com/graph/api/oauth2permissiongrant-post?view=graph-rest-1.0>.
pub(crate) fn grant_id(client_id: &str, resource_id: &str, principal_id: Option<&str>) -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(48);
    for g in [Some(client_id), Some(resource_id), principal_id]
        .into_iter()
        .flatten()
    {
        let u = uuid::Uuid::parse_str(g).unwrap_or_default();
        bytes.extend_from_slice(&u.to_bytes_le());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ids_match_microsofts_examples() {
        // The documented AllPrincipals example
        // (https://learn.microsoft.com/graph/api/oauth2permissiongrant-post?view=graph-rest-1.0).
        assert_eq!(
            grant_id(
                "b0d9b9e3-0ecf-4bfd-8dab-9273dd055a94",
                "7ea9e944-71ce-443d-811c-71e8047b557a",
                None
            ),
            "47nZsM8O_UuNq5Jz3QValETpqX7OcT1EgRxx6AR7VXo"
        );
    }

    #[test]
    fn secrets_have_entra_shape() {
        for _ in 0..50 {
            let s = generate_secret();
            assert_eq!(s.len(), 40);
            // The alphabet the tool's `secret::check_shape` accepts (it refuses anything else
            // before a vault write, so an emulator secret outside it would fail every apply).
            assert!(
                s.expose()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "~._-".contains(c))
            );
            assert_eq!(&s.expose()[4..6], "Q~");
        }
    }

    #[test]
    fn patch_replaces_collections_and_merges_objects() {
        let mut app = json!({"web": {"redirectUris": ["a", "b"], "implicitGrantSettings": {"enableIdTokenIssuance": false, "enableAccessTokenIssuance": false}}});
        merge(
            &mut app,
            &json!({"web": {"redirectUris": ["c"], "implicitGrantSettings": {"enableIdTokenIssuance": true}}}),
        );
        assert_eq!(
            app,
            json!({"web": {"redirectUris": ["c"], "implicitGrantSettings": {"enableIdTokenIssuance": true, "enableAccessTokenIssuance": false}}})
        );
    }
}
