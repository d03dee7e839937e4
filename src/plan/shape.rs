//! A normalized, comparable view of an application's properties (steps 1–7).
//!
//! Both the desired state and a live `Application` are lowered to an [`AppShape`]; the plan and
//! the drift check compare shapes, never raw JSON. Normalizing here (sets sorted, nulls folded to
//! their documented meaning) is what keeps a re-run from flapping.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::desired::Desired;
use crate::graph::wire::{Application, PermissionScope, RequiredResourceAccess};

/// One exposed scope as compared (the id is identity, not content).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ScopeShape {
    pub value: String,
    pub kind: String,
    pub enabled: bool,
    pub admin_consent_display_name: String,
    pub admin_consent_description: String,
    pub user_consent_display_name: String,
    pub user_consent_description: String,
}

/// The compared properties of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppShape {
    pub display_name: String,
    pub sign_in_audience: String,
    pub identifier_uris: BTreeSet<String>,
    /// `null` is folded to 1, its documented meaning
    /// (<https://learn.microsoft.com/graph/api/resources/apiapplication?view=graph-rest-1.0>).
    pub requested_access_token_version: i32,
    pub scopes: Vec<ScopeShape>,
    pub redirect_uris: BTreeSet<String>,
    /// `(resourceAppId, [(type, id)])`, sorted.
    pub required_resource_access: Vec<(String, Vec<(String, String)>)>,
    pub enable_id_token_issuance: bool,
    pub enable_access_token_issuance: bool,
}

impl ScopeShape {
    pub fn from_wire(s: &PermissionScope) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        ScopeShape {
            value: text(&s.value),
            kind: text(&s.kind),
            enabled: s.is_enabled,
            admin_consent_display_name: text(&s.admin_consent_display_name),
            admin_consent_description: text(&s.admin_consent_description),
            user_consent_display_name: text(&s.user_consent_display_name),
            user_consent_description: text(&s.user_consent_description),
        }
    }
}

pub fn normalize_rra(rra: &[RequiredResourceAccess]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = rra
        .iter()
        .map(|r| {
            let mut access: Vec<(String, String)> = r
                .resource_access
                .iter()
                .map(|a| (a.kind.clone(), a.id.to_ascii_lowercase()))
                .collect();
            access.sort();
            access.dedup();
            (r.resource_app_id.to_ascii_lowercase(), access)
        })
        .filter(|(_, access)| !access.is_empty())
        .collect();
    out.sort();
    out
}

impl AppShape {
    /// The shape the desired state asks for.
    pub fn from_desired(d: &Desired) -> Self {
        let app = &d.app;
        let mut scopes: Vec<ScopeShape> = app
            .scopes
            .iter()
            .map(|s| ScopeShape {
                value: s.value.clone(),
                kind: s.kind.clone(),
                enabled: true,
                admin_consent_display_name: s.admin_consent_display_name.clone(),
                admin_consent_description: s.admin_consent_description.clone(),
                user_consent_display_name: s.user_consent_display_name.clone(),
                user_consent_description: s.user_consent_description.clone(),
            })
            .collect();
        scopes.sort();
        let rra: Vec<RequiredResourceAccess> = app
            .required_resource_access
            .iter()
            .map(|r| RequiredResourceAccess {
                resource_app_id: r.resource_app_id.clone(),
                resource_access: r
                    .access
                    .iter()
                    .map(|p| crate::graph::wire::ResourceAccess {
                        id: p.id.clone(),
                        kind: p.kind.clone(),
                    })
                    .collect(),
            })
            .collect();
        AppShape {
            display_name: d.display_name.clone(),
            sign_in_audience: app.sign_in_audience.clone(),
            identifier_uris: BTreeSet::from([app.identifier_uri.clone()]),
            requested_access_token_version: app.requested_access_token_version,
            scopes,
            redirect_uris: app.redirect_uris.iter().cloned().collect(),
            required_resource_access: normalize_rra(&rra),
            enable_id_token_issuance: app.enable_id_token_issuance,
            enable_access_token_issuance: app.enable_access_token_issuance,
        }
    }

    /// The shape of a live (or exported) application.
    pub fn from_application(a: &Application) -> Self {
        let api = a.api.clone().unwrap_or_default();
        let web = a.web.clone().unwrap_or_default();
        let implicit = web.implicit_grant_settings.clone().unwrap_or_default();
        let mut scopes: Vec<ScopeShape> = api
            .oauth2_permission_scopes
            .unwrap_or_default()
            .iter()
            .map(ScopeShape::from_wire)
            .collect();
        scopes.sort();
        AppShape {
            display_name: a.display_name.clone().unwrap_or_default(),
            sign_in_audience: a
                .sign_in_audience
                .clone()
                .unwrap_or_else(|| "AzureADMyOrg".into()),
            identifier_uris: a
                .identifier_uris
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            requested_access_token_version: api.requested_access_token_version.unwrap_or(1),
            scopes,
            redirect_uris: web.redirect_uris.unwrap_or_default().into_iter().collect(),
            required_resource_access: normalize_rra(
                a.required_resource_access.as_deref().unwrap_or_default(),
            ),
            enable_id_token_issuance: implicit.enable_id_token_issuance.unwrap_or(false),
            enable_access_token_issuance: implicit.enable_access_token_issuance.unwrap_or(false),
        }
    }
}
