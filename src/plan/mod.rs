//! The plan: what converging one service's nine steps would change, as plain data.
//!
//! `build(desired, observation, now)` is a pure function. It never talks to Graph; apply
//! executes its [`Action`]s, drift reuses [`diff_shapes`] with a reference in place of the
//! desired state.

pub mod shape;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use crate::desired::{Desired, GrantResource, GrantSpec, MS_GRAPH_APP_ID};
use crate::graph::wire::{
    ApiApplication, Application, ImplicitGrantSettings, OAuth2PermissionGrant, PasswordCredential,
    PermissionScope, RequiredResourceAccess, ResourceAccess, ServicePrincipal, WebApplication,
};
pub use crate::vault_view::{VaultView, vault_credential};
pub use shape::{AppShape, ScopeShape};

/// The live state the plan is computed against.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub app: Option<Application>,
    /// How the app was found (`app_id`, `uniqueName`, `identifierUri`).
    pub found_by: Option<String>,
    pub service_principal: Option<ServicePrincipal>,
    pub graph_service_principal: Option<ServicePrincipal>,
    pub grants: Vec<OAuth2PermissionGrant>,
    pub vault: Option<VaultView>,
}

impl Observation {
    /// The plan's view of what `observe` read, plus the vault.
    pub fn from_observed(o: crate::observed::Observed, vault: VaultView) -> Self {
        Observation {
            app: o.app,
            found_by: o.found_by.map(|f| {
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            service_principal: o.service_principal,
            graph_service_principal: o.graph_sp,
            grants: o.grants,
            vault: Some(vault),
        }
    }
}

/// One changed field: `field: old → new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// The state of one of the nine steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StepStatus {
    Ok { detail: String },
    Create { detail: String },
    Update { changes: Vec<FieldChange> },
    Blocked { reason: String },
}

impl StepStatus {
    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Ok { .. } => "ok",
            StepStatus::Create { .. } => "create",
            StepStatus::Update { .. } => "update",
            StepStatus::Blocked { .. } => "blocked",
        }
    }

    pub fn is_change(&self) -> bool {
        matches!(self, StepStatus::Create { .. } | StepStatus::Update { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub number: u8,
    pub title: &'static str,
    #[serde(flatten)]
    pub status: StepStatus,
}

/// A write apply performs, in this order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// PATCH the current scopes with the ones that must change or go set to `isEnabled: false`
    /// (Graph refuses to change or remove an enabled scope:
    /// <https://learn.microsoft.com/graph/api/resources/permissionscope>, `isEnabled`).
    DisableScopes {
        scopes: Vec<PermissionScope>,
    },
    /// Upsert `PATCH /applications(uniqueName=…)` with `Prefer: create-if-missing`.
    CreateApplication {
        unique_name: String,
        body: Application,
    },
    /// PATCH only the properties that differ.
    UpdateApplication {
        body: Application,
    },
    CreateServicePrincipal,
    /// `addPassword` → vault → read-back → token proof; rolled back on any failure.
    AddPassword {
        display_name: String,
        lifetime_days: u32,
    },
    CreateGrant {
        resource: GrantResource,
        resource_sp_id: Option<String>,
        scope: String,
    },
    UpdateGrant {
        grant_id: String,
        scope: String,
    },
    /// A credential entraform made that the vault does not hold (an interrupted run); removed
    /// only after the vault holds a proven secret.
    RemoveOrphanPassword {
        key_id: String,
        hint: String,
    },
}

/// The plan for one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub service: String,
    pub customer: String,
    pub unique_name: String,
    pub app_object_id: Option<String>,
    pub app_id: Option<String>,
    pub found_by: Option<String>,
    pub steps: Vec<Step>,
    pub actions: Vec<Action>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether applying would write anything.
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    pub fn changed_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.status.is_change()).count()
    }

    /// Human-readable plan (stdout of `entraform plan`).
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let found = match (&self.app_id, &self.found_by) {
            (Some(id), Some(by)) => format!("app {id} (found by {by})"),
            (Some(id), None) => format!("app {id}"),
            _ => format!("no app yet (uniqueName {})", self.unique_name),
        };
        let _ = writeln!(
            out,
            "Plan for {} ({}): {found}",
            self.service, self.customer
        );
        for step in &self.steps {
            let head = format!("  {}. {:<34}", step.number, step.title);
            match &step.status {
                StepStatus::Ok { detail } | StepStatus::Create { detail } => {
                    let _ = writeln!(out, "{head} {:<7} {detail}", step.status.label());
                }
                StepStatus::Update { changes } => {
                    let _ = writeln!(out, "{head} update");
                    for c in changes {
                        let _ = writeln!(out, "       {}: {} → {}", c.field, c.old, c.new);
                    }
                }
                StepStatus::Blocked { reason } => {
                    let _ = writeln!(out, "{head} blocked {reason}");
                }
            }
        }
        let n = self.changed_steps();
        if n == 0 && self.actions.is_empty() {
            let _ = writeln!(out, "No changes: the app matches the manifest.");
        } else {
            let _ = writeln!(
                out,
                "{n} step{} would change ({} write{}).",
                if n == 1 { "" } else { "s" },
                self.actions.len(),
                if self.actions.len() == 1 { "" } else { "s" }
            );
        }
        out
    }
}

fn show_set(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "[]".into()
    } else {
        format!("[{}]", set.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

fn show_rra(rra: &[(String, Vec<(String, String)>)]) -> String {
    if rra.is_empty() {
        return "[]".into();
    }
    let parts: Vec<String> = rra
        .iter()
        .map(|(app, access)| {
            let a: Vec<String> = access.iter().map(|(k, id)| format!("{k}:{id}")).collect();
            format!("{app}{{{}}}", a.join(","))
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn show_scope(s: &ScopeShape) -> String {
    format!(
        "{} ({}, {}, \"{}\")",
        s.value,
        s.kind,
        if s.enabled { "enabled" } else { "disabled" },
        s.admin_consent_display_name
    )
}

/// One compared field of two shapes: the live (`have`) and the wanted (`want`) value as shown
/// to the user, and whether they are equal (decided on the typed values, not the text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldComparison {
    /// The step (1–7) the field belongs to.
    pub step: u8,
    pub field: String,
    pub have: String,
    pub want: String,
    pub same: bool,
}

/// Every compared field of two shapes, in a fixed order, equal or not. `want` is the desired
/// (or reference) side, `have` the live side. The plan keeps the differing ones
/// ([`diff_shapes`]); drift shows them all (field | reference | this app | status).
pub fn compare_shapes(want: &AppShape, have: &AppShape) -> Vec<FieldComparison> {
    let mut out = Vec::new();
    let mut push = |step: u8, field: &str, same: bool, have: String, want: String| {
        out.push(FieldComparison {
            step,
            field: field.into(),
            have,
            want,
            same,
        });
    };
    // One row per plain field: equal or not, both sides shown with `$show`.
    macro_rules! field {
        ($step:expr, $name:expr, $field:ident, $show:expr) => {
            push(
                $step,
                $name,
                want.$field == have.$field,
                $show(&have.$field),
                $show(&want.$field),
            )
        };
    }
    field!(1, "displayName", display_name, String::clone);
    field!(1, "signInAudience", sign_in_audience, String::clone);
    field!(2, "identifierUris", identifier_uris, show_set);
    let version = "api.requestedAccessTokenVersion";
    field!(
        3,
        version,
        requested_access_token_version,
        ToString::to_string
    );
    let values: BTreeSet<&String> = want
        .scopes
        .iter()
        .chain(have.scopes.iter())
        .map(|s| &s.value)
        .collect();
    for value in values {
        let w = want.scopes.iter().find(|s| &s.value == value);
        let h = have.scopes.iter().find(|s| &s.value == value);
        let field = format!("api.oauth2PermissionScopes[{value}]");
        match (h, w) {
            (Some(h), Some(w)) => {
                for (name, old, new) in [
                    ("type", &h.kind, &w.kind),
                    (
                        "adminConsentDisplayName",
                        &h.admin_consent_display_name,
                        &w.admin_consent_display_name,
                    ),
                    (
                        "adminConsentDescription",
                        &h.admin_consent_description,
                        &w.admin_consent_description,
                    ),
                    (
                        "userConsentDisplayName",
                        &h.user_consent_display_name,
                        &w.user_consent_display_name,
                    ),
                    (
                        "userConsentDescription",
                        &h.user_consent_description,
                        &w.user_consent_description,
                    ),
                ] {
                    push(
                        4,
                        &format!("{field}.{name}"),
                        old == new,
                        format!("{old:?}"),
                        format!("{new:?}"),
                    );
                }
                push(
                    4,
                    &format!("{field}.isEnabled"),
                    h.enabled == w.enabled,
                    h.enabled.to_string(),
                    w.enabled.to_string(),
                );
            }
            (None, Some(w)) => push(4, &field, false, "(absent)".into(), show_scope(w)),
            (Some(h), None) => push(4, &field, false, show_scope(h), "(absent)".into()),
            (None, None) => {}
        }
    }
    field!(5, "web.redirectUris", redirect_uris, show_set);
    let rra = "requiredResourceAccess";
    field!(6, rra, required_resource_access, show_rra);
    let grants = "web.implicitGrantSettings";
    let id_tokens = format!("{grants}.enableIdTokenIssuance");
    field!(7, &id_tokens, enable_id_token_issuance, ToString::to_string);
    let access_tokens = format!("{grants}.enableAccessTokenIssuance");
    field!(
        7,
        &access_tokens,
        enable_access_token_issuance,
        ToString::to_string
    );
    out
}

/// Field-by-field differences between two shapes, grouped by step (2–7; 1 for the app's own
/// names): the differing rows of [`compare_shapes`]. `want` is the desired (or reference)
/// side, `have` the live side.
pub fn diff_shapes(want: &AppShape, have: &AppShape) -> Vec<(u8, FieldChange)> {
    compare_shapes(want, have)
        .into_iter()
        .filter(|c| !c.same)
        .map(|c| {
            (
                c.step,
                FieldChange {
                    field: c.field,
                    old: c.have,
                    new: c.want,
                },
            )
        })
        .collect()
}

const STEP_TITLES: [&str; 9] = [
    "application + service principal",
    "identifierUris (App ID URI)",
    "access token version 2",
    "oauth2PermissionScopes",
    "web.redirectUris",
    "requiredResourceAccess",
    "implicit grant: ID tokens",
    "client secret → vault",
    "tenant admin consent",
];

/// The scopes a write must send: desired scopes, keeping the id of an existing scope with the
/// same value, and (when something enabled must change or go) the disable-first array.
fn plan_scopes(
    desired: &Desired,
    existing: &[PermissionScope],
    new_scope_id: &mut dyn FnMut() -> String,
) -> (Vec<PermissionScope>, Option<Vec<PermissionScope>>) {
    let mut final_scopes = Vec::new();
    let mut must_disable: BTreeSet<String> = BTreeSet::new();
    for spec in &desired.app.scopes {
        let current = existing
            .iter()
            .find(|s| s.value.as_deref() == Some(spec.value.as_str()));
        let id = current
            .map(|s| s.id.clone())
            .unwrap_or_else(&mut *new_scope_id);
        let scope = PermissionScope {
            id,
            value: Some(spec.value.clone()),
            kind: Some(spec.kind.clone()),
            is_enabled: true,
            admin_consent_display_name: Some(spec.admin_consent_display_name.clone()),
            admin_consent_description: non_empty(&spec.admin_consent_description),
            user_consent_display_name: Some(spec.user_consent_display_name.clone()),
            user_consent_description: non_empty(&spec.user_consent_description),
        };
        if let Some(current) = current
            && current.is_enabled
            && ScopeShape::from_wire(current) != ScopeShape::from_wire(&scope)
        {
            must_disable.insert(current.id.clone());
        }
        final_scopes.push(scope);
    }
    for current in existing {
        let kept = final_scopes.iter().any(|s| s.id == current.id);
        if !kept && current.is_enabled {
            must_disable.insert(current.id.clone());
        }
    }
    let disable = (!must_disable.is_empty()).then(|| {
        existing
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if must_disable.contains(&s.id) {
                    s.is_enabled = false;
                }
                s
            })
            .collect()
    });
    (final_scopes, disable)
}

/// An optional text Graph should store as `null` when empty (as an app made by hand has it).
fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

fn desired_rra(desired: &Desired) -> Vec<RequiredResourceAccess> {
    desired
        .app
        .required_resource_access
        .iter()
        .map(|r| RequiredResourceAccess {
            resource_app_id: r.resource_app_id.clone(),
            resource_access: r
                .access
                .iter()
                .map(|p| ResourceAccess {
                    id: p.id.clone(),
                    kind: p.kind.clone(),
                })
                .collect(),
        })
        .collect()
}

/// The full application body of a create (steps 1–7 in one upsert).
fn create_body(desired: &Desired, scopes: Vec<PermissionScope>) -> Application {
    Application {
        display_name: Some(desired.display_name.clone()),
        sign_in_audience: Some(desired.app.sign_in_audience.clone()),
        identifier_uris: Some(vec![desired.app.identifier_uri.clone()]),
        api: Some(ApiApplication {
            requested_access_token_version: Some(desired.app.requested_access_token_version),
            oauth2_permission_scopes: Some(scopes),
        }),
        web: Some(WebApplication {
            redirect_uris: Some(desired.app.redirect_uris.clone()),
            implicit_grant_settings: Some(ImplicitGrantSettings {
                enable_id_token_issuance: Some(desired.app.enable_id_token_issuance),
                enable_access_token_issuance: Some(desired.app.enable_access_token_issuance),
            }),
        }),
        required_resource_access: Some(desired_rra(desired)),
        ..Application::default()
    }
}

/// The PATCH body carrying only what differs between `want` and `have`.
fn update_body(
    desired: &Desired,
    want: &AppShape,
    have: &AppShape,
    scopes: Vec<PermissionScope>,
    backfill_unique_name: bool,
) -> Option<Application> {
    let mut body = Application::default();
    let mut any = false;
    if backfill_unique_name {
        body.unique_name = Some(desired.unique_name.clone());
        any = true;
    }
    if want.display_name != have.display_name {
        body.display_name = Some(desired.display_name.clone());
        any = true;
    }
    if want.sign_in_audience != have.sign_in_audience {
        body.sign_in_audience = Some(desired.app.sign_in_audience.clone());
        any = true;
    }
    if want.identifier_uris != have.identifier_uris {
        body.identifier_uris = Some(vec![desired.app.identifier_uri.clone()]);
        any = true;
    }
    let mut api = ApiApplication::default();
    if want.requested_access_token_version != have.requested_access_token_version {
        api.requested_access_token_version = Some(desired.app.requested_access_token_version);
    }
    if want.scopes != have.scopes {
        api.oauth2_permission_scopes = Some(scopes);
    }
    if api != ApiApplication::default() {
        body.api = Some(api);
        any = true;
    }
    let mut web = WebApplication::default();
    if want.redirect_uris != have.redirect_uris {
        web.redirect_uris = Some(desired.app.redirect_uris.clone());
    }
    if want.enable_id_token_issuance != have.enable_id_token_issuance
        || want.enable_access_token_issuance != have.enable_access_token_issuance
    {
        web.implicit_grant_settings = Some(ImplicitGrantSettings {
            enable_id_token_issuance: Some(desired.app.enable_id_token_issuance),
            enable_access_token_issuance: Some(desired.app.enable_access_token_issuance),
        });
    }
    if web != WebApplication::default() {
        body.web = Some(web);
        any = true;
    }
    if want.required_resource_access != have.required_resource_access {
        body.required_resource_access = Some(desired_rra(desired));
        any = true;
    }
    any.then_some(body)
}

fn parse_time(s: &Option<String>) -> Option<OffsetDateTime> {
    crate::credential::parse_time(s.as_deref())
}

/// Whether a credential is currently valid (started, not expired: [`crate::credential::is_valid`]).
pub fn credential_valid(c: &PasswordCredential, now: OffsetDateTime) -> bool {
    crate::credential::is_valid(c, now)
}

/// Build the plan, with fresh random ids for new scopes. [`build_with`] is the pure core.
pub fn build(desired: &Desired, obs: &Observation, now: OffsetDateTime) -> Plan {
    build_with(desired, obs, now, &mut || uuid::Uuid::new_v4().to_string())
}

/// Build the plan. Pure: same inputs and the same `new_scope_id` answers, same plan.
/// `new_scope_id` names each scope the app does not have yet.
pub fn build_with(
    desired: &Desired,
    obs: &Observation,
    now: OffsetDateTime,
    new_scope_id: &mut dyn FnMut() -> String,
) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut warnings = desired.warnings.clone();
    let existing_scopes: Vec<PermissionScope> = obs
        .app
        .as_ref()
        .and_then(|a| a.api.as_ref())
        .and_then(|api| api.oauth2_permission_scopes.clone())
        .unwrap_or_default();
    let scopes = plan_scopes(desired, &existing_scopes, new_scope_id);
    match &obs.app {
        None => plan_create(desired, scopes.0, &mut steps, &mut actions),
        Some(app) => plan_update(
            desired,
            obs,
            app,
            scopes,
            &mut warnings,
            &mut steps,
            &mut actions,
        ),
    }
    steps.push(plan_secret(desired, obs, now, &mut actions));
    steps.push(plan_consent(desired, obs, &mut actions));
    Plan {
        service: desired.service.clone(),
        customer: desired.customer.clone(),
        unique_name: desired.unique_name.clone(),
        app_object_id: obs.app.as_ref().and_then(|a| a.id.clone()),
        app_id: obs.app.as_ref().and_then(|a| a.app_id.clone()),
        found_by: obs.found_by.clone(),
        steps,
        actions,
        warnings,
    }
}

/// Steps 1–7 when the app does not exist: one create with everything in it.
fn plan_create(
    desired: &Desired,
    scopes: Vec<PermissionScope>,
    steps: &mut Vec<Step>,
    actions: &mut Vec<Action>,
) {
    steps.push(Step {
        number: 1,
        title: STEP_TITLES[0],
        status: StepStatus::Create {
            detail: format!("application {} + service principal", desired.unique_name),
        },
    });
    let detail = |s: String| StepStatus::Create { detail: s };
    let a = &desired.app;
    let details = [
        a.identifier_uri.clone(),
        a.requested_access_token_version.to_string(),
        a.scopes
            .iter()
            .map(|s| s.value.clone())
            .collect::<Vec<_>>()
            .join(", "),
        a.redirect_uris.join(", "),
        a.required_resource_access
            .iter()
            .flat_map(|r| r.access.iter().map(|p| p.value.clone()))
            .collect::<Vec<_>>()
            .join(", "),
        a.enable_id_token_issuance.to_string(),
    ];
    for (i, d) in details.into_iter().enumerate() {
        steps.push(Step {
            number: i as u8 + 2,
            title: STEP_TITLES[i + 1],
            status: detail(d),
        });
    }
    actions.push(Action::CreateApplication {
        unique_name: desired.unique_name.clone(),
        body: create_body(desired, scopes),
    });
    actions.push(Action::CreateServicePrincipal);
}

/// Steps 1–7 against an existing app: the differing fields per step, one update.
fn plan_update(
    desired: &Desired,
    obs: &Observation,
    app: &Application,
    (scopes, disable_first): (Vec<PermissionScope>, Option<Vec<PermissionScope>>),
    warnings: &mut Vec<String>,
    steps: &mut Vec<Step>,
    actions: &mut Vec<Action>,
) {
    let want = AppShape::from_desired(desired);
    let have = AppShape::from_application(app);
    let mut by_step: Vec<Vec<FieldChange>> = vec![Vec::new(); 10];
    for (step, change) in diff_shapes(&want, &have) {
        by_step[step as usize].push(change);
    }
    let backfill = app.unique_name.is_none();
    if backfill {
        by_step[1].push(FieldChange {
            field: "uniqueName".into(),
            old: "(none)".into(),
            new: desired.unique_name.clone(),
        });
    } else if app.unique_name.as_deref() != Some(desired.unique_name.as_str()) {
        warnings.push(format!(
            "the app's uniqueName is {:?}, not {:?}; uniqueName is immutable, so it is kept \
             (the app is still found by {})",
            app.unique_name.as_deref().unwrap_or_default(),
            desired.unique_name,
            obs.found_by.as_deref().unwrap_or("its App ID URI"),
        ));
    }
    let sp_missing = obs.service_principal.is_none();
    for n in 1..=7u8 {
        let changes = std::mem::take(&mut by_step[n as usize]);
        let status = if n == 1 && sp_missing && changes.is_empty() {
            StepStatus::Create {
                detail: "service principal".into(),
            }
        } else if !changes.is_empty() {
            StepStatus::Update { changes }
        } else {
            StepStatus::Ok {
                detail: ok_detail(n, desired),
            }
        };
        steps.push(Step {
            number: n,
            title: STEP_TITLES[n as usize - 1],
            status,
        });
    }
    if let Some(disable) = disable_first {
        actions.push(Action::DisableScopes { scopes: disable });
    }
    if let Some(body) = update_body(desired, &want, &have, scopes, backfill) {
        actions.push(Action::UpdateApplication { body });
    }
    if sp_missing {
        actions.push(Action::CreateServicePrincipal);
    }
}

/// Step 8: the secret. A new one unless the vault holds a valid credential of the app; the
/// credentials entraform made that the vault does not hold and that are newer than the one it
/// does are removed.
fn plan_secret(
    desired: &Desired,
    obs: &Observation,
    now: OffsetDateTime,
    actions: &mut Vec<Action>,
) -> Step {
    let creds: Vec<PasswordCredential> = obs
        .app
        .as_ref()
        .and_then(|a| a.password_credentials.clone())
        .unwrap_or_default();
    let vault = obs.vault.clone().unwrap_or(VaultView::Empty);
    let ours = |c: &PasswordCredential| {
        c.display_name.as_deref() == Some(desired.secret.display_name.as_str())
    };
    let held = vault_credential(&creds, &vault).filter(|c| credential_valid(c, now));
    let secret_status = secret_status(desired, &creds, &vault, held, now);
    if secret_status.is_change() {
        actions.push(Action::AddPassword {
            display_name: desired.secret.display_name.clone(),
            lifetime_days: desired.secret.lifetime_days,
        });
    }
    // Credentials entraform made that the vault does not hold and that are newer than the one it
    // does: only an interrupted run leaves those (every valid secret of the app is one the
    // vault holds; see docs/rotate.md).
    if matches!(vault, VaultView::Holds { .. } | VaultView::Empty) {
        let held_start = held.and_then(|c| parse_time(&c.start_date_time));
        for c in creds.iter().filter(|c| ours(c)) {
            let is_held = held.is_some_and(|h| h.key_id == c.key_id);
            let newer = match (held_start, parse_time(&c.start_date_time)) {
                (Some(h), Some(s)) => s > h,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !is_held && newer {
                actions.push(Action::RemoveOrphanPassword {
                    key_id: c.key_id.clone().unwrap_or_default(),
                    hint: c.hint.clone().unwrap_or_default(),
                });
            }
        }
    }
    Step {
        number: 8,
        title: STEP_TITLES[7],
        status: secret_status,
    }
}

/// Step 8's status: what the vault holds (or is taken to hold) against the app's credentials.
fn secret_status(
    desired: &Desired,
    creds: &[PasswordCredential],
    vault: &VaultView,
    held: Option<&PasswordCredential>,
    now: OffsetDateTime,
) -> StepStatus {
    match (vault, held) {
        (_, Some(c)) => StepStatus::Ok {
            detail: format!(
                "vault holds keyId {} (hint {}), expires {}",
                c.key_id.as_deref().unwrap_or("?"),
                c.hint.as_deref().unwrap_or("?"),
                c.end_date_time.as_deref().unwrap_or("never")
            ),
        },
        (VaultView::Unreadable, None) => {
            // The same "in use" as rotate and secrets: the newest valid one this tool made.
            match crate::credential::current(
                creds,
                &desired.secret.display_name,
                &VaultView::Unreadable,
                now,
            ) {
                Some(c) => StepStatus::Ok {
                    detail: format!(
                        "the vault cannot be read back; assuming it holds keyId {} (hint {})",
                        c.key_id.as_deref().unwrap_or("?"),
                        c.hint.as_deref().unwrap_or("?")
                    ),
                },
                None => StepStatus::Create {
                    detail: "new client secret → vault".into(),
                },
            }
        }
        (VaultView::Holds { hint }, None) => StepStatus::Create {
            detail: format!(
                "the vault's secret (hint {hint}) matches no valid credential of the app; new client secret → vault"
            ),
        },
        (VaultView::Empty, None) => StepStatus::Create {
            detail: format!("new client secret → vault {}", desired.secret.vault_path),
        },
        (VaultView::Unknown, None) => StepStatus::Create {
            detail: format!(
                "the vault's read failed (see the warning), taken as holding nothing usable: new client secret → vault {}",
                desired.secret.vault_path
            ),
        },
    }
}

/// Step 9: the AllPrincipals grants, created or brought to the wanted scopes.
fn plan_consent(desired: &Desired, obs: &Observation, actions: &mut Vec<Action>) -> Step {
    let sp = obs.service_principal.as_ref();
    let mut grant_changes = Vec::new();
    let mut grant_blocked = None;
    for spec in &desired.consent {
        let resource_sp = match &spec.resource {
            GrantResource::SelfApp => sp.map(|s| s.id.clone()),
            GrantResource::App(id) if id.eq_ignore_ascii_case(MS_GRAPH_APP_ID) => {
                match &obs.graph_service_principal {
                    Some(g) => Some(g.id.clone()),
                    None => {
                        grant_blocked = Some(
                            "the Microsoft Graph service principal was not found in the tenant"
                                .to_string(),
                        );
                        continue;
                    }
                }
            }
            GrantResource::App(id) => {
                grant_blocked = Some(format!("grants on app {id} are not supported"));
                continue;
            }
        };
        let existing = match (sp, &resource_sp) {
            (Some(sp), Some(res)) => obs.grants.iter().find(|g| {
                g.client_id == sp.id && &g.resource_id == res && g.consent_type == "AllPrincipals"
            }),
            _ => None,
        };
        let resource_name = match &spec.resource {
            GrantResource::SelfApp => desired.display_name.clone(),
            GrantResource::App(_) => "Microsoft Graph".into(),
        };
        match existing {
            None => {
                grant_changes.push(format!("{} on {resource_name}", spec.scope));
                actions.push(Action::CreateGrant {
                    resource: spec.resource.clone(),
                    resource_sp_id: resource_sp.clone(),
                    scope: spec.scope.clone(),
                });
            }
            Some(g) => {
                if let Some((what, action)) = update_grant(desired, spec, g, &resource_name) {
                    grant_changes.push(what);
                    actions.push(action);
                }
            }
        }
    }
    let consent_status = if let Some(reason) = grant_blocked {
        StepStatus::Blocked { reason }
    } else if grant_changes.is_empty() {
        StepStatus::Ok {
            detail: desired
                .consent
                .iter()
                .map(|g| g.scope.clone())
                .collect::<Vec<_>>()
                .join(" + ")
                + " granted for all users",
        }
    } else {
        StepStatus::Create {
            detail: format!("grant {}", grant_changes.join(", ")),
        }
    };
    Step {
        number: 9,
        title: STEP_TITLES[8],
        status: consent_status,
    }
}

/// An existing grant brought to the wanted scopes: what changes and the update, if anything
/// does.
fn update_grant(
    desired: &Desired,
    spec: &GrantSpec,
    g: &OAuth2PermissionGrant,
    resource_name: &str,
) -> Option<(String, Action)> {
    let have: BTreeSet<&str> = g.scope.split_whitespace().collect();
    let missing: Vec<&str> = spec
        .scope
        .split_whitespace()
        .filter(|s| !have.contains(s))
        .collect();
    // On the app's own SP, a value that is no longer one of its scopes is gone
    // after this apply (renamed or removed; Graph refuses a grant of an
    // unpublished scope). Any other value someone consented to is kept.
    let stale: Vec<&str> = match &spec.resource {
        GrantResource::SelfApp => g
            .scope
            .split_whitespace()
            .filter(|v| !desired.app.scopes.iter().any(|s| s.value == *v))
            .collect(),
        GrantResource::App(_) => Vec::new(),
    };
    if missing.is_empty() && stale.is_empty() {
        return None;
    }
    let mut scope: Vec<&str> = g
        .scope
        .split_whitespace()
        .filter(|v| !stale.contains(v))
        .collect();
    scope.extend(missing.iter());
    let mut what = Vec::new();
    if !missing.is_empty() {
        what.push(format!("{} on {resource_name}", missing.join(" ")));
    }
    if !stale.is_empty() {
        what.push(format!(
            "drop the removed {} on {resource_name}",
            stale.join(" ")
        ));
    }
    Some((
        what.join(", "),
        Action::UpdateGrant {
            grant_id: g.id.clone(),
            scope: scope.join(" "),
        },
    ))
}

fn ok_detail(step: u8, d: &Desired) -> String {
    match step {
        1 => format!("{} ({})", d.display_name, d.app.sign_in_audience),
        2 => d.app.identifier_uri.clone(),
        3 => d.app.requested_access_token_version.to_string(),
        4 => d
            .app
            .scopes
            .iter()
            .map(|s| s.value.clone())
            .collect::<Vec<_>>()
            .join(", "),
        5 => format!("{} URIs", d.app.redirect_uris.len()),
        6 => d
            .app
            .required_resource_access
            .iter()
            .flat_map(|r| r.access.iter().map(|p| p.value.clone()))
            .collect::<Vec<_>>()
            .join(", "),
        7 => "enabled".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
