//! Executing a plan through Graph in as few sequential round trips as Graph allows:
//!
//! 1. disable-first PATCH (only when an enabled scope must change or go)
//! 2. the upsert create, or one PATCH with only what differs
//! 3. the service principal and `addPassword`, concurrently; then vault → read-back → token proof
//! 4. the consent grants in one `$batch`, concurrently with removing orphaned credentials
//!
//! An unchanged manifest reaches none of these (zero writes).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::audit::AuditAction;
use crate::desired::{Desired, GrantResource};
use crate::graph::client::{BatchRequest, BatchResponse};
use crate::graph::wire::{ApiApplication, Application, OAuth2PermissionGrant};
use crate::graph::{AuthConfig, GraphError, GraphWrite, UpsertOutcome};
use crate::plan::{Action, Plan};
use crate::secret_flow::{self, MintError, MintTarget, Minted};
use crate::vault::Vault;

/// What happened to one of the nine steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub number: u8,
    pub title: &'static str,
    pub result: StepOutcome,
    pub detail: String,
}

/// What happened to a step (`ok`, `done`, `blocked` in text and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    /// Nothing to do.
    Ok,
    /// Changed.
    Done,
    /// The operator may not do it (consent); the report says who can.
    Blocked,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Done => "done",
            StepOutcome::Blocked => "blocked",
        }
    }
}

impl From<&crate::plan::StepStatus> for StepOutcome {
    /// What a step the apply did not touch reports: as the plan found it (a pending change
    /// counts as done only once written, so this is for plans without changes).
    fn from(status: &crate::plan::StepStatus) -> Self {
        match status {
            crate::plan::StepStatus::Blocked { .. } => StepOutcome::Blocked,
            s if s.is_change() => StepOutcome::Done,
            _ => StepOutcome::Ok,
        }
    }
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad` so that `{:<7}` aligns the text columns as the string did.
        f.pad(self.as_str())
    }
}

/// The outcome of an apply (no secret values).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub service: String,
    pub app_id: String,
    pub app_object_id: String,
    pub writes: usize,
    pub steps: Vec<StepResult>,
    pub secret: Option<Minted>,
    pub removed_credentials: Vec<String>,
    pub admin_consent_url: Option<String>,
    /// The application as the create returned it (not serialized; the drift check reuses it
    /// instead of reading a just-created object again).
    #[serde(skip)]
    pub app: Option<Application>,
}

/// Everything apply talks to.
pub struct ApplyEnv<'a> {
    pub desired: &'a Desired,
    pub write: GraphWrite,
    pub auth: &'a AuthConfig,
    pub vault: Arc<dyn Vault>,
    pub audit_path: Option<PathBuf>,
    /// Called when a step finishes (progress display).
    pub progress: &'a (dyn Fn(&StepResult) + Sync),
}

fn graph_err(e: GraphError) -> ApplyError {
    ApplyError::from(e)
}

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Minting, storing or proving the new secret failed (what was rolled back is said).
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The writes did not leave the app in a usable state.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl ApplyError {
    fn failed(message: impl Into<String>) -> Self {
        ApplyError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ApplyError::Graph(e) => e.hint(),
            ApplyError::Mint(e) => e.hint(),
            ApplyError::Failed { hint, .. } => hint.clone(),
        }
    }
}

/// Execute `plan`. `observed_sp_id` is the app's SP when it exists already.
pub async fn execute(
    env: &ApplyEnv<'_>,
    plan: &Plan,
    observed_sp_id: Option<String>,
) -> Result<ApplyReport, ApplyError> {
    let d = env.desired;
    let write = &env.write;
    let mut steps: Vec<StepResult> = Vec::new();
    let mut done = |number: u8, result: StepOutcome, detail: String| {
        let title = plan
            .steps
            .iter()
            .find(|s| s.number == number)
            .map(|s| s.title)
            .unwrap_or("");
        let r = StepResult {
            number,
            title,
            result,
            detail,
        };
        (env.progress)(&r);
        steps.push(r);
    };
    let mut app_object_id = plan.app_object_id.clone();
    let mut app_id = plan.app_id.clone();
    let mut created: Option<Application> = None;

    // 1. Disable what must change, so Graph accepts the change (Graph refuses to change or
    // remove an enabled scope: <https://learn.microsoft.com/graph/api/resources/permissionscope>).
    disable_scopes(write, plan, app_object_id.as_deref()).await?;

    // 2. Create or update the application (steps 1–7 in one request).
    write_application(write, plan, &mut app_object_id, &mut app_id, &mut created).await?;
    let (Some(app_object_id), Some(app_id)) = (app_object_id, app_id) else {
        return Err(ApplyError::failed(
            "the application has no id after the write",
        ));
    };
    for step in plan.steps.iter().filter(|s| (1..=7).contains(&s.number)) {
        let result = if step.status.is_change() {
            StepOutcome::Done
        } else {
            StepOutcome::Ok
        };
        done(step.number, result, step_detail(&step.status));
    }

    // 3. Service principal and secret, concurrently.
    let wants_sp = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateServicePrincipal));
    let mint_action = plan.actions.iter().find_map(|a| match a {
        Action::AddPassword {
            display_name,
            lifetime_days,
        } => Some((display_name, *lifetime_days)),
        _ => None,
    });
    // The token proof of the new secret waits for the SP (no SP, no token: AADSTS7000229);
    // addPassword and the vault write do not.
    let (sp_done, sp_ready) = tokio::sync::watch::channel::<Option<Result<(), String>>>(None);
    let sp_future = async {
        let r = if wants_sp {
            Some(write.create_service_principal(&app_id).await)
        } else {
            None
        };
        let outcome = match &r {
            Some(Err(e)) => Err(e.to_string()),
            _ => Ok(()),
        };
        let _ = sp_done.send(Some(outcome));
        r
    };
    let ready = wait_for_sp(sp_ready);
    let mint_future = async {
        match mint_action {
            Some((display_name, lifetime_days)) => {
                let target = MintTarget {
                    tenant: &d.tenant_id,
                    service: &d.service,
                    app_object_id: &app_object_id,
                    app_id: &app_id,
                    display_name,
                    lifetime_days,
                    vault_path: &d.secret.vault_path,
                    audit_path: env.audit_path.clone(),
                    action: AuditAction::AddSecret,
                };
                Some(
                    secret_flow::mint_when_ready(
                        write,
                        env.auth,
                        env.vault.clone(),
                        &target,
                        ready,
                    )
                    .await,
                )
            }
            None => None,
        }
    };
    // The grants need only the SP: they go out as soon as it exists, while the new secret is
    // still being stored and proven (one latency less on a fresh apply).
    let sp_and_grants = async {
        let sp = sp_future.await;
        let sp_id = match &sp {
            Some(Ok(created)) => created.id.clone(),
            Some(Err(_)) => return (sp, Ok(Vec::new())),
            None => observed_sp_id.clone().unwrap_or_default(),
        };
        let requests = grant_requests(plan, &sp_id);
        let grants = if requests.is_empty() {
            Ok(Vec::new())
        } else {
            write.client().batch(requests).await
        };
        (sp, grants)
    };
    let ((sp_result, grant_responses), mint_result) = tokio::join!(sp_and_grants, mint_future);
    // A failed mint first: its error says what was rolled back (and carries the SP's error
    // when that is why it failed).
    let minted = match mint_result {
        Some(r) => Some(r?),
        None => None,
    };
    if let Some(r) = sp_result {
        r.map_err(graph_err)?;
    }
    let (result, detail) = secret_outcome(plan, minted.as_ref());
    done(8, result, detail);

    // 4. Orphaned credentials go only once the vault holds a proven secret.
    let removed = remove_orphans(write, plan, &app_object_id).await?;
    let grant_responses = grant_responses.map_err(graph_err)?;
    let denied = consent_denied(&grant_responses)?;
    let (result, detail, admin_consent) =
        consent_outcome(env, plan, &app_id, denied, grant_responses.is_empty());
    done(9, result, detail);

    Ok(ApplyReport {
        service: d.service.clone(),
        app_id,
        app_object_id,
        writes: plan.actions.len(),
        steps,
        secret: minted,
        removed_credentials: removed,
        admin_consent_url: admin_consent,
        app: created,
    })
}

/// Step 1 of [`execute`]: PATCH the scopes that must change or go to `isEnabled: false`.
async fn disable_scopes(
    write: &GraphWrite,
    plan: &Plan,
    app_object_id: Option<&str>,
) -> Result<(), ApplyError> {
    for action in &plan.actions {
        if let Action::DisableScopes { scopes } = action {
            let id = app_object_id.unwrap_or_default();
            let body = Application {
                api: Some(ApiApplication {
                    oauth2_permission_scopes: Some(scopes.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            write
                .patch_application(id, &body)
                .await
                .map_err(graph_err)?;
        }
    }
    Ok(())
}

/// Step 2 of [`execute`]: the create (an upsert) or the update of the application; the ids of
/// the app written, and the app itself when it was created.
async fn write_application(
    write: &GraphWrite,
    plan: &Plan,
    app_object_id: &mut Option<String>,
    app_id: &mut Option<String>,
    created: &mut Option<Application>,
) -> Result<(), ApplyError> {
    for action in &plan.actions {
        match action {
            Action::CreateApplication { unique_name, body } => {
                match write
                    .upsert_application(unique_name, body, true)
                    .await
                    .map_err(graph_err)?
                {
                    UpsertOutcome::Created(app) => {
                        *app_object_id = app.id.clone();
                        *app_id = app.app_id.clone();
                        *created = Some(*app);
                    }
                    // Someone created it between our read and this write: the upsert updated it.
                    UpsertOutcome::Updated => {
                        let app = crate::graph::GraphRead::find_application(
                            write.client(),
                            &crate::graph::Lookup::UniqueName(unique_name.clone()),
                        )
                        .await
                        .map_err(graph_err)?
                        .ok_or_else(|| {
                            ApplyError::failed("the upserted app cannot be read back")
                        })?;
                        *app_object_id = app.id.clone();
                        *app_id = app.app_id.clone();
                    }
                }
            }
            Action::UpdateApplication { body } => {
                let id = app_object_id.clone().unwrap_or_default();
                update_with_retry(write, &id, body).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Step 4 of [`execute`]: remove the orphaned credentials of the plan (gone already counts).
async fn remove_orphans(
    write: &GraphWrite,
    plan: &Plan,
    app_object_id: &str,
) -> Result<Vec<String>, ApplyError> {
    let orphans: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RemoveOrphanPassword { key_id, .. } => Some(key_id.clone()),
            _ => None,
        })
        .collect();
    let mut removed = Vec::new();
    for key in &orphans {
        match write.remove_password(app_object_id, key).await {
            Ok(()) => removed.push(key.clone()),
            Err(e) if e.is_not_found() => removed.push(key.clone()),
            Err(e) => return Err(graph_err(e)),
        }
    }
    Ok(removed)
}

/// Whether the grants were refused for lack of rights (a 409 means granted already); any other
/// failure is an error.
fn consent_denied(grant_responses: &[BatchResponse]) -> Result<bool, ApplyError> {
    let mut denied = false;
    for resp in grant_responses {
        if let Some(err) = resp.error() {
            if err.status == 409 {
                continue; // already granted: converged
            }
            if err.status == 403 || err.code == "Authorization_RequestDenied" {
                denied = true;
                continue;
            }
            return Err(GraphError::from(err).into());
        }
    }
    Ok(denied)
}

/// Resolves once the service principal step has ended: `Ok` when the SP exists.
async fn wait_for_sp(
    mut rx: tokio::sync::watch::Receiver<Option<Result<(), String>>>,
) -> Result<(), MintError> {
    let outcome = rx.wait_for(Option::is_some).await.map(|v| v.clone());
    match outcome {
        Ok(Some(Ok(()))) => Ok(()),
        Ok(Some(Err(e))) => Err(MintError::failed(
            format!(
                "creating the app's service principal failed ({e}), and without one no token can be requested"
            ),
            None,
        )),
        _ => Err(MintError::failed(
            "the service principal step ended without an answer",
            None,
        )),
    }
}

/// Step 8's line: the new secret, or what the plan found.
fn secret_outcome(plan: &Plan, minted: Option<&Minted>) -> (StepOutcome, String) {
    let secret_step = plan.steps.iter().find(|s| s.number == 8);
    match minted {
        Some(m) => (
            StepOutcome::Done,
            format!(
                "keyId {} (hint {}) → {} ({}), proven with a token request",
                m.key_id,
                m.hint,
                m.vault.backend,
                if m.vault.verified {
                    "read back"
                } else {
                    "write-only vault"
                }
            ),
        ),
        None => (
            StepOutcome::Ok,
            secret_step
                .map(|s| step_detail(&s.status))
                .unwrap_or_default(),
        ),
    }
}

/// Step 9's line: refused for lack of rights (with the admin-consent URL), or what the plan
/// wanted, done or found.
fn consent_outcome(
    env: &ApplyEnv<'_>,
    plan: &Plan,
    app_id: &str,
    denied: bool,
    no_writes: bool,
) -> (StepOutcome, String, Option<String>) {
    let consent_step = plan.steps.iter().find(|s| s.number == 9);
    let planned = || {
        consent_step
            .map(|s| step_detail(&s.status))
            .unwrap_or_default()
    };
    if denied {
        let url = crate::desired::admin_consent_url(&env.auth.authority_host, env.desired, app_id);
        let detail = format!(
            "the operator may not grant tenant-wide consent (needs DelegatedPermissionGrant.ReadWrite.All \
             or the Cloud Application Administrator role); a tenant admin opens: {url}"
        );
        (StepOutcome::Blocked, detail, Some(url))
    } else if no_writes {
        (StepOutcome::Ok, planned(), None)
    } else {
        (StepOutcome::Done, planned(), None)
    }
}

/// The consent writes of `plan` for the app's SP `sp_id`, as one `$batch`.
fn grant_requests(plan: &Plan, sp_id: &str) -> Vec<BatchRequest> {
    let mut out = Vec::new();
    for action in &plan.actions {
        let req = match action {
            Action::CreateGrant {
                resource,
                resource_sp_id,
                scope,
            } => {
                let resource_id = match resource {
                    GrantResource::SelfApp => sp_id.to_string(),
                    GrantResource::App(_) => resource_sp_id.clone().unwrap_or_default(),
                };
                let grant = OAuth2PermissionGrant {
                    client_id: sp_id.to_string(),
                    consent_type: "AllPrincipals".into(),
                    resource_id,
                    scope: scope.clone(),
                    ..Default::default()
                };
                crate::graph::requests::create_grant(&grant).replication_retry(true)
            }
            Action::UpdateGrant { grant_id, scope } => {
                crate::graph::requests::update_grant_scope(grant_id, scope)
            }
            _ => continue,
        };
        out.push(BatchRequest::new((out.len() + 1).to_string(), req));
    }
    out
}

/// A PATCH right after a disable-first PATCH can still meet the enabled scope on another
/// replica; retry that one refusal briefly (Terraform's azuread provider polls the same way).
async fn update_with_retry(
    write: &GraphWrite,
    id: &str,
    body: &Application,
) -> Result<(), ApplyError> {
    let mut delay = Duration::from_millis(200);
    for attempt in 0..6 {
        match write.patch_application(id, body).await {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < 5
                    && e.api()
                        .is_some_and(|a| a.code == "CannotDeleteOrUpdateEnabledEntitlement") =>
            {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns")
}

/// One line describing a planned step (`field: old → new; …` for an update).
pub fn step_detail(status: &crate::plan::StepStatus) -> String {
    use crate::plan::StepStatus;
    match status {
        StepStatus::Ok { detail } | StepStatus::Create { detail } => detail.clone(),
        StepStatus::Update { changes } => changes
            .iter()
            .map(|c| format!("{}: {} → {}", c.field, c.old, c.new))
            .collect::<Vec<_>>()
            .join("; "),
        StepStatus::Blocked { reason } => reason.clone(),
    }
}
