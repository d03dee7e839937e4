//! Drift: the live app against a reference app (frame), through the plan's shape diff.
//!
//! What must differ between two services (their name, host, display name, ids) is replaced by
//! placeholders on both sides before comparing, so "copy frame byte for byte until the diff is
//! empty" becomes an exact, field-by-field comparison (SPEC §3).

use serde::Serialize;

use crate::graph::wire::Application;
use crate::plan::{AppShape, FieldChange, ScopeShape, diff_shapes};

/// The service-specific values of one side.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub host: String,
    pub display_name: String,
    /// Object id and appId (replaced wherever they appear, e.g. `api://<appId>`).
    pub ids: Vec<String>,
}

impl Identity {
    /// Replace this side's identity in a text with placeholders. Longest values first so
    /// `Blueprint MCP` wins over `blueprint`.
    pub fn normalize(&self, text: &str) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            (self.display_name.as_str(), "{display_name}"),
            (self.host.as_str(), "{host}"),
            (self.service.as_str(), "{service}"),
        ];
        pairs.extend(self.ids.iter().map(|id| (id.as_str(), "{id}")));
        pairs.retain(|(v, _)| !v.is_empty());
        pairs.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for (value, placeholder) in pairs {
            out = replace_ignore_ascii_case(&out, value, placeholder);
        }
        out
    }

    /// A shape with every service-specific value replaced.
    pub fn normalize_shape(&self, shape: &AppShape) -> AppShape {
        let mut s = shape.clone();
        s.display_name = self.normalize(&s.display_name);
        s.identifier_uris = s
            .identifier_uris
            .iter()
            .map(|u| self.normalize(u))
            .collect();
        s.redirect_uris = s.redirect_uris.iter().map(|u| self.normalize(u)).collect();
        s.scopes = s
            .scopes
            .iter()
            .map(|sc| ScopeShape {
                value: self.normalize(&sc.value),
                admin_consent_display_name: self.normalize(&sc.admin_consent_display_name),
                admin_consent_description: self.normalize(&sc.admin_consent_description),
                user_consent_display_name: self.normalize(&sc.user_consent_display_name),
                user_consent_description: self.normalize(&sc.user_consent_description),
                ..sc.clone()
            })
            .collect();
        s.scopes.sort();
        s
    }
}

fn replace_ignore_ascii_case(haystack: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return haystack.to_string();
    }
    let lower_h = haystack.to_ascii_lowercase();
    let lower_n = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(pos) = lower_h[from..].find(&lower_n) {
        let start = from + pos;
        out.push_str(&haystack[last..start]);
        out.push_str(with);
        last = start + needle.len();
        from = last;
    }
    out.push_str(&haystack[last..]);
    out
}

/// One compared field: reference value, this app's value, status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftRow {
    pub field: String,
    pub reference: String,
    pub this_app: String,
    pub status: DriftStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    Same,
    Differs,
    /// Reported, not compared (e.g. secret expiry).
    Info,
}

/// Compare two applications after normalizing each side's identity. Returns the differing
/// fields (empty: no drift).
pub fn diff_apps(
    reference: &Application,
    reference_id: &Identity,
    this: &Application,
    this_id: &Identity,
) -> Vec<FieldChange> {
    let want = reference_id.normalize_shape(&AppShape::from_application(reference));
    let have = this_id.normalize_shape(&AppShape::from_application(this));
    diff_shapes(&want, &have)
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::wire::*;

    fn app(service: &str, display: &str, version: Option<i32>) -> Application {
        Application {
            id: Some(format!("obj-{service}")),
            app_id: Some(format!("app-{service}")),
            display_name: Some(display.into()),
            sign_in_audience: Some("AzureADMyOrg".into()),
            identifier_uris: Some(vec![format!("https://axe.axelabs.ai/{service}/mcp")]),
            api: Some(ApiApplication {
                requested_access_token_version: version,
                oauth2_permission_scopes: Some(vec![PermissionScope {
                    id: format!("scope-{service}"),
                    value: Some("mcp.access".into()),
                    kind: Some("User".into()),
                    is_enabled: true,
                    admin_consent_display_name: Some(format!("Access {display}")),
                    user_consent_display_name: Some(format!("Access {display}")),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }
    }

    fn id(service: &str, display: &str) -> Identity {
        Identity {
            service: service.into(),
            host: "axe.axelabs.ai".into(),
            display_name: display.into(),
            ids: vec![format!("obj-{service}"), format!("app-{service}")],
        }
    }

    #[test]
    fn identical_but_for_identity_is_no_drift() {
        let frame = app("frame", "Frame MCP", Some(2));
        let bp = app("blueprint", "Blueprint MCP", Some(2));
        assert!(
            diff_apps(
                &frame,
                &id("frame", "Frame MCP"),
                &bp,
                &id("blueprint", "Blueprint MCP")
            )
            .is_empty()
        );
    }

    #[test]
    fn token_version_drift_is_named() {
        let frame = app("frame", "Frame MCP", Some(2));
        let bp = app("blueprint", "Blueprint MCP", None);
        let d = diff_apps(
            &frame,
            &id("frame", "Frame MCP"),
            &bp,
            &id("blueprint", "Blueprint MCP"),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "api.requestedAccessTokenVersion");
        assert_eq!((d[0].old.as_str(), d[0].new.as_str()), ("1", "2"));
    }

    #[test]
    fn consent_text_that_names_another_service_is_drift() {
        let frame = app("frame", "Frame MCP", Some(2));
        let mut bp = app("blueprint", "Blueprint MCP", Some(2));
        // copied from frame without renaming: the classic hand-made mistake
        bp.api
            .as_mut()
            .unwrap()
            .oauth2_permission_scopes
            .as_mut()
            .unwrap()[0]
            .admin_consent_display_name = Some("Access Frame MCP".into());
        let d = diff_apps(
            &frame,
            &id("frame", "Frame MCP"),
            &bp,
            &id("blueprint", "Blueprint MCP"),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].field.ends_with("adminConsentDisplayName"));
    }
}
