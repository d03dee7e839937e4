//! `entraform rotate MANIFEST` / `rotate --all DIR`: a new client secret through the shared mint
//! flow (addPassword → vault → read-back → token proof, rolled back on any failure), then each
//! manifest's policy (`secret.held_by`) decides what happens to the older secrets:
//!
//! - `people` (every connector app by default): people typed the secret into claude.ai, so
//!   nothing is pruned on a schedule; the output says who must get the new secret, and
//!   `rotate --prune-old` (which mints nothing) removes the old ones once they have it
//!   (`rotation::select_prune_old`).
//! - `machines`: the older secrets whose successor has outlived the overlap are pruned
//!   (`rotation::select_prunable`).
//!
//! Graph cost: one `$batch` of app look-ups for all services; per service, addPassword, then the
//! removals (one request, or one `$batch` for several). `--all` runs services concurrently
//! (at most [`CONCURRENCY`] at a time) and reports one row per service.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use crate::cli::RotateArgs;
use crate::commands::targets::{ErrorInfo, targets};
use crate::desired::Desired;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::graph::client::BatchRequest;
use crate::graph::wire::{Application, PasswordCredential};
use crate::graph::{GraphError, GraphWrite};
use crate::manifest::model::HeldBy;
use crate::observed::FoundBy;
use crate::plan::VaultView;
use crate::printer::Printer;
use crate::rotation::{self, CredentialRef, Due, KeepReason, Kept, PrunePolicy};
use crate::secret_flow::{self, MintTarget, Minted};
use crate::session::{self, Session};
use crate::settings::Settings;

/// How many services `--all` rotates at once (each holds a vault call and a token proof).
pub const CONCURRENCY: usize = 4;

/// What rotate decided for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new secret is in the vault and proven.
    Rotated,
    /// `--if-expiring-within`: the secret in use outlives the window; no new secret. Also
    /// `--prune-old` with nothing to remove.
    Skipped,
    /// `--prune-old`: no new secret, old ones removed.
    Pruned,
    /// Something failed; `error` says what (a new secret was rolled back, or pruning failed).
    Failed,
}

/// One service's rotation (never a value).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRotation {
    pub service: String,
    pub customer: String,
    pub app_id: Option<String>,
    pub outcome: Outcome,
    /// The manifest's `secret.held_by`: which pruning policy applied.
    pub policy: HeldBy,
    /// Why it rotated or skipped.
    pub reason: String,
    /// Who must now get the new secret, and how (people-held secrets, after a rotation).
    pub hand_off: Option<String>,
    /// The new secret (keyId, hint, dates, where it was stored).
    pub secret: Option<Minted>,
    /// Credentials removed.
    pub pruned: Vec<CredentialRef>,
    /// Credentials kept, with why.
    pub kept: Vec<Kept>,
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Clone)]
struct Options {
    if_expiring_within: Option<u32>,
    policy: PrunePolicy,
    overlap_days: u32,
    prune_old: bool,
}

pub async fn run(
    args: RotateArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let single = args.all.is_none();
    let (desired, base) = targets(
        args.manifest.as_deref(),
        args.all.as_deref(),
        settings,
        printer,
    )?;
    let opts = Options {
        if_expiring_within: args.if_expiring_within,
        policy: PrunePolicy {
            overlap: time::Duration::days(i64::from(args.overlap_days)),
            prune_foreign: args.prune_foreign,
        },
        overlap_days: args.overlap_days,
        prune_old: args.prune_old,
    };
    // One session per customer tenant, connected in parallel (token + `tid` check); a tenant
    // that cannot be reached fails only its own services.
    let wanted = session::tenants_of(&desired);
    let tenants = if single {
        session::Tenants::connect_all_or_fail(settings, wanted).await?
    } else {
        session::Tenants::connect(settings, wanted).await?
    };
    let apps = session::find_apps_by_tenant(&tenants, &desired).await;

    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, (d, found)) in desired.iter().cloned().zip(apps).enumerate() {
        let semaphore = Arc::clone(&semaphore);
        let base = base.clone();
        let opts = opts.clone();
        let printer = printer.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let result = match found {
                Ok((session, app)) => {
                    rotate_one(&session, &d, Ok(app), &opts, &base, &printer).await
                }
                Err(e) => Err(e.into()),
            };
            (i, d, result)
        });
    }
    let mut results: Vec<(usize, Desired, Result<ServiceRotation, Error>)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => {
                return Err(Error::other(
                    format!("a rotation task did not finish: {e}"),
                    None::<String>,
                ));
            }
        }
    }
    results.sort_by_key(|(i, _, _)| *i);

    // One manifest: a failure before anything was kept is the command's error (with its hint).
    if single
        && let Some((_, _, Err(_))) = results.first()
        && let Some((_, _, Err(e))) = results.pop()
    {
        return Err(e);
    }
    let reports: Vec<ServiceRotation> = results
        .into_iter()
        .map(|(_, d, r)| {
            r.map_err(|e| {
                if e.to_string().starts_with(&format!("{}:", d.service)) {
                    e
                } else {
                    prefix(&d.service, e)
                }
            })
            .unwrap_or_else(|e| ServiceRotation {
                service: d.service.clone(),
                customer: d.customer.clone(),
                app_id: None,
                outcome: Outcome::Failed,
                policy: d.secret.held_by,
                reason: "the rotation failed".into(),
                hand_off: None,
                secret: None,
                pruned: Vec::new(),
                kept: Vec::new(),
                error: Some(ErrorInfo::from(&e)),
            })
        })
        .collect();
    let failed: Vec<&ServiceRotation> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": failed.is_empty(),
            "overlap_days": opts.overlap_days,
            "if_expiring_within": opts.if_expiring_within,
            "prune_foreign": opts.policy.prune_foreign,
            "prune_old": opts.prune_old,
            "services": reports,
            "graph": tenants.stats(),
        }));
    } else {
        printer.out(&render_text(&reports));
    }
    if failed.is_empty() {
        return Ok(ExitStatus::Success);
    }
    for r in &failed {
        if let Some(e) = &r.error {
            if e.message.starts_with(&format!("{}:", r.service)) {
                printer.warn(&e.message);
            } else {
                printer.warn(&format!("{}: {}", r.service, e.message));
            }
            if let Some(h) = &e.hint {
                printer.status(&format!("  hint: {h}"));
            }
        }
    }
    printer.status(&format!(
        "{} of {} service(s) failed: {}",
        failed.len(),
        reports.len(),
        failed
            .iter()
            .map(|r| r.service.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(ExitStatus::Failed)
}

fn audit_record(
    d: &Desired,
    app_id: &str,
    action: AuditAction,
    outcome: AuditOutcome,
    cred: Option<&CredentialRef>,
    detail: String,
) -> AuditRecord {
    let mut r = AuditRecord::new(&d.tenant_id, &d.service, action, outcome);
    r.app_id = Some(app_id.to_string());
    if let Some(c) = cred {
        r.key_id = Some(c.key_id.clone());
        r.hint = Some(c.hint.clone()).filter(|h| !h.is_empty());
    }
    r.detail = Some(detail);
    r
}

async fn rotate_one(
    session: &Session,
    d: &Desired,
    found: Result<(Option<Application>, Option<FoundBy>), Error>,
    opts: &Options,
    base: &Path,
    printer: &Printer,
) -> Result<ServiceRotation, Error> {
    let (app, object_id, app_id) = existing_app(d, found)?;
    let marker = d.secret.display_name.as_str();
    let vault = session::open_vault(d, base)?;
    let (view, warning) =
        session::vault_view_before_mint(Arc::clone(&vault), &d.secret.vault_path).await?;
    if let Some(w) = warning {
        printer.warn(&format!("{}: {w}", d.service));
    }
    let mut creds: Vec<PasswordCredential> = app.password_credentials.clone().unwrap_or_default();
    let audit_path = audit::default_path(base);
    let write = GraphWrite::new(session.client.clone());

    // Decided before minting: the new credential is newer than the vault's old one too.
    let orphaned = rotation::orphans(&creds, marker, &view, OffsetDateTime::now_utc());
    let due = rotation::due(
        &creds,
        marker,
        &view,
        opts.if_expiring_within,
        OffsetDateTime::now_utc(),
    );
    let mut report = ServiceRotation {
        service: d.service.clone(),
        customer: d.customer.clone(),
        app_id: Some(app_id.clone()),
        outcome: Outcome::Skipped,
        policy: d.secret.held_by,
        reason: String::new(),
        hand_off: None,
        secret: None,
        pruned: Vec::new(),
        kept: Vec::new(),
        error: None,
    };
    if opts.prune_old {
        let ids = (object_id.as_str(), app_id.as_str());
        return Ok(prune_old(d, &creds, &view, &write, ids, &audit_path, printer, report).await);
    }
    // Which keyId the vault holds once this run is done (never pruned).
    let protected: Option<String> = match &due {
        Due::Rotate { reason } => {
            let ids = (object_id.as_str(), app_id.as_str());
            let minted = mint_new(
                session,
                d,
                &write,
                &vault,
                ids,
                &audit_path,
                reason,
                printer,
            )
            .await?;
            creds.push(new_credential(&minted, marker));
            report.outcome = Outcome::Rotated;
            report.reason = reason.clone();
            let key = minted.key_id.clone();
            report.secret = Some(minted);
            Some(key)
        }
        Due::Skip { key_id, days_left } => {
            report.reason = format!(
                "the secret in use (keyId {key_id}) is valid for {days_left} more day(s), beyond {} day(s)",
                opts.if_expiring_within.unwrap_or(0)
            );
            printer.status(&format!("{}: {}; no new secret", d.service, report.reason));
            let record = audit_record(
                d,
                &app_id,
                AuditAction::Rotate,
                AuditOutcome::NoChange,
                None,
                report.reason.clone(),
            );
            audit::record(&audit_path, &record, |line| printer.warn(line));
            match &view {
                VaultView::Holds { .. } => {
                    rotation::vault_held(&creds, &view).and_then(|c| c.key_id.clone())
                }
                // `due` skips only when a credential is in use; with an unreadable vault it is
                // an assumption, and an assumption is no ground for removing anything.
                _ => {
                    report.kept = rotation::keep_all(&creds, marker, KeepReason::VaultUnreadable);
                    return Ok(report);
                }
            }
        }
    };

    let mut plan = prune_plan(d, &creds, protected.as_deref(), opts);
    if d.secret.held_by == HeldBy::People
        && let Some(m) = &report.secret
    {
        report.hand_off = Some(hand_off(d, m));
    }
    // An interrupted run's orphans go now, overlap or not (no valid secret the vault does not
    // hold: docs/rotate.md).
    for o in &orphaned {
        if protected.as_deref() != Some(o.key_id.as_str())
            && !plan.remove.iter().any(|r| r.key_id == o.key_id)
        {
            plan.keep.retain(|k| k.credential.key_id != o.key_id);
            plan.remove.push(o.clone());
        }
    }
    report.kept = plan.keep;
    if plan.remove.is_empty() {
        return Ok(report);
    }
    announce_removals(d, &plan.remove, &orphaned, printer);
    let detail = |cred: &CredentialRef| {
        if orphaned.iter().any(|o| o.key_id == cred.key_id) {
            "orphan: newer than the vault's secret and never stored (an interrupted run left it)"
                .to_string()
        } else {
            format!(
                "pruned: a newer secret has existed for at least {} day(s)",
                opts.overlap_days
            )
        }
    };
    remove_and_audit(
        d,
        &write,
        &object_id,
        &app_id,
        plan.remove,
        &audit_path,
        printer,
        &mut report,
        detail,
    )
    .await;
    Ok(report)
}

/// The app rotate works on, with its object id and appId: it must exist.
fn existing_app(
    d: &Desired,
    found: Result<(Option<Application>, Option<FoundBy>), Error>,
) -> Result<(Application, String, String), Error> {
    let (app, _) = found?;
    let Some(app) = app else {
        return Err(Error::other(
            format!(
                "{}: no application in tenant {} (looked up by {}uniqueName {} and App ID URI {})",
                d.service,
                d.tenant_id,
                d.app_id
                    .as_deref()
                    .map(|a| format!("app_id {a}, "))
                    .unwrap_or_default(),
                d.unique_name,
                d.app.identifier_uri
            ),
            Some(
                "rotate replaces the secret of an existing app; create the app with `entraform apply MANIFEST` first"
                    .to_string(),
            ),
        ));
    };
    let (Some(object_id), Some(app_id)) = (app.id.clone(), app.app_id.clone()) else {
        return Err(Error::other(
            format!("{}: Graph returned the app without its ids", d.service),
            None::<String>,
        ));
    };
    Ok((app, object_id, app_id))
}

/// What to tell whoever holds the secret when people hold it.
fn hand_off(d: &Desired, m: &Minted) -> String {
    let manifest = d.source.display();
    format!(
        "whoever added the {} connector in claude.ai must now get the new secret (keyId {}, \
         hint {}): they enter it in the connector's Advanced settings (OAuth Client Secret). \
         Hand it over from the vault without showing it: `entraform send {manifest} --to \
         PERSON`. The old secret stays valid until `entraform rotate {manifest} \
         --prune-old` (or its own expiry)",
        d.service, m.key_id, m.hint
    )
}

/// Mint the new secret into the vault (the same flow as `apply`).
#[allow(clippy::too_many_arguments)]
async fn mint_new(
    session: &Session,
    d: &Desired,
    write: &GraphWrite,
    vault: &Arc<dyn crate::vault::Vault>,
    (object_id, app_id): (&str, &str),
    audit_path: &Path,
    reason: &str,
    printer: &Printer,
) -> Result<Minted, Error> {
    let marker = d.secret.display_name.as_str();
    printer.status(&format!(
        "{}: {reason}; minting a new secret → {}",
        d.service,
        vault.describe()
    ));
    let target = MintTarget {
        tenant: &d.tenant_id,
        service: &d.service,
        app_object_id: object_id,
        app_id,
        display_name: marker,
        lifetime_days: d.secret.lifetime_days,
        vault_path: &d.secret.vault_path,
        audit_path: Some(audit_path.to_path_buf()),
        action: AuditAction::Rotate,
    };
    secret_flow::mint(write, &session.auth, Arc::clone(vault), &target)
        .await
        .map_err(|e| prefix(&d.service, e.into()))
}

/// The app's new credential as Graph lists it, from what the mint returned.
fn new_credential(minted: &Minted, marker: &str) -> PasswordCredential {
    PasswordCredential {
        key_id: Some(minted.key_id.clone()),
        display_name: Some(marker.to_string()),
        hint: Some(minted.hint.clone()),
        start_date_time: minted.start_date_time.clone(),
        end_date_time: minted.end_date_time.clone(),
    }
}

/// `--prune-old`: remove this tool's secrets the vault no longer holds, once it holds a valid
/// one.
#[allow(clippy::too_many_arguments)]
async fn prune_old(
    d: &Desired,
    creds: &[PasswordCredential],
    view: &VaultView,
    write: &GraphWrite,
    (object_id, app_id): (&str, &str),
    audit_path: &Path,
    printer: &Printer,
    mut report: ServiceRotation,
) -> ServiceRotation {
    let marker = d.secret.display_name.as_str();
    let now = OffsetDateTime::now_utc();
    let held = match view {
        VaultView::Unreadable => {
            report.reason = "--prune-old: the vault cannot be read back, so which secret it holds is not known; nothing is pruned".into();
            report.kept = rotation::keep_all(creds, marker, KeepReason::VaultUnreadable);
            return report;
        }
        _ => rotation::vault_held(creds, view)
            .filter(|c| rotation::is_valid(c, now))
            .and_then(|c| c.key_id.clone()),
    };
    let Some(held) = held else {
        report.reason = "--prune-old: the vault holds no valid credential of the app; nothing is pruned (run `entraform rotate` first)".into();
        report.kept = rotation::keep_all(creds, marker, KeepReason::VaultHoldsNone);
        return report;
    };
    let plan = rotation::select_prune_old(creds, marker, &held, now);
    report.reason = format!(
        "--prune-old: removing this tool's secrets the vault no longer holds (it holds keyId {held})"
    );
    report.kept = plan.keep;
    if plan.remove.is_empty() {
        report.reason = format!("--prune-old: nothing to remove (the vault holds keyId {held})");
        return report;
    }
    report.outcome = Outcome::Pruned;
    printer.status(&format!(
        "{}: pruning {} old secret(s) the vault no longer holds: {}",
        d.service,
        plan.remove.len(),
        plan.remove
            .iter()
            .map(|c| c.key_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let detail = "pruned with --prune-old: the vault holds a newer secret".to_string();
    remove_and_audit(
        d,
        write,
        object_id,
        app_id,
        plan.remove,
        audit_path,
        printer,
        &mut report,
        |_| detail.clone(),
    )
    .await;
    report
}

/// What the schedule removes: by the policy when machines hold the secret, nothing when people
/// may hold any of them.
fn prune_plan(
    d: &Desired,
    creds: &[PasswordCredential],
    protected: Option<&str>,
    opts: &Options,
) -> rotation::PrunePlan {
    let marker = d.secret.display_name.as_str();
    match d.secret.held_by {
        HeldBy::Machines => rotation::select_prunable(
            creds,
            marker,
            protected,
            opts.policy,
            OffsetDateTime::now_utc(),
        ),
        // People may hold any of them: nothing goes on a schedule (orphans below still do).
        HeldBy::People => {
            let mut plan = rotation::PrunePlan::default();
            for k in rotation::keep_all(creds, marker, KeepReason::HeldByPeople) {
                let reason = if protected == Some(k.credential.key_id.as_str()) {
                    KeepReason::InVault
                } else if !k.credential.by_entraform {
                    KeepReason::Foreign
                } else {
                    KeepReason::HeldByPeople
                };
                plan.keep.push(Kept { reason, ..k });
            }
            plan
        }
    }
}

/// Say which orphans and which older secrets go.
fn announce_removals(
    d: &Desired,
    remove: &[CredentialRef],
    orphaned: &[CredentialRef],
    printer: &Printer,
) {
    let (orphan_keys, older_keys): (Vec<&CredentialRef>, Vec<&CredentialRef>) = remove
        .iter()
        .partition(|c| orphaned.iter().any(|o| o.key_id == c.key_id));
    let keys = |v: &[&CredentialRef]| {
        v.iter()
            .map(|c| c.key_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !orphan_keys.is_empty() {
        printer.status(&format!(
            "{}: removing {} orphaned secret(s) an interrupted run left (newer than the vault's, never stored): {}",
            d.service,
            orphan_keys.len(),
            keys(&orphan_keys)
        ));
    }
    if !older_keys.is_empty() {
        printer.status(&format!(
            "{}: pruning {} older secret(s): {}",
            d.service,
            older_keys.len(),
            keys(&older_keys)
        ));
    }
}

/// Remove `remove`, one audit record each (`detail` says why it went), and record the outcome
/// in `report` (pruned, or failed with the keyIds left).
#[allow(clippy::too_many_arguments)]
async fn remove_and_audit(
    d: &Desired,
    write: &GraphWrite,
    object_id: &str,
    app_id: &str,
    remove: Vec<CredentialRef>,
    audit_path: &Path,
    printer: &Printer,
    report: &mut ServiceRotation,
    detail: impl Fn(&CredentialRef) -> String,
) {
    let results = remove_all(write, object_id, &remove).await;
    let mut failures = Vec::new();
    for (cred, result) in remove.into_iter().zip(results) {
        let (outcome, detail) = match &result {
            Ok(()) => (AuditOutcome::Success, detail(&cred)),
            Err(e) => (AuditOutcome::Failed, format!("pruning failed: {e}")),
        };
        let record = audit_record(
            d,
            app_id,
            AuditAction::RemoveSecret,
            outcome,
            Some(&cred),
            detail,
        );
        audit::record(audit_path, &record, |line| printer.warn(line));
        match result {
            Ok(()) => report.pruned.push(cred),
            Err(e) => failures.push(format!("keyId {}: {e}", cred.key_id)),
        }
    }
    if !failures.is_empty() {
        report.outcome = Outcome::Failed;
        report.error = Some(ErrorInfo {
            message: format!(
                "{}: {}removing {} older secret(s) failed: {}",
                d.service,
                if report.secret.is_some() {
                    "the new secret is in the vault and proven, but "
                } else {
                    ""
                },
                failures.len(),
                failures.join("; ")
            ),
            hint: Some(format!(
                "run the rotation again (pruning is idempotent), or remove them by hand: az ad app credential delete --id {app_id} --key-id KEYID"
            )),
        });
    }
}

fn prefix(service: &str, e: Error) -> Error {
    let hint = e.hint();
    Error::other(format!("{service}: {e}"), hint)
}

/// `removePassword` for each credential: one request, or one `$batch` for several. A keyId
/// already gone counts as removed.
async fn remove_all(
    write: &GraphWrite,
    object_id: &str,
    creds: &[CredentialRef],
) -> Vec<Result<(), GraphError>> {
    if let [one] = creds {
        return vec![match write.remove_password(object_id, &one.key_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }];
    }
    let batch: Vec<BatchRequest> = creds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            BatchRequest::new(
                (i + 1).to_string(),
                crate::graph::requests::remove_password(object_id, &c.key_id),
            )
        })
        .collect();
    match write.client().batch(batch).await {
        Ok(responses) => responses
            .into_iter()
            .map(|r| match r.error() {
                None => Ok(()),
                Some(e) if e.is_not_found() => Ok(()),
                Some(e) => Err(GraphError::from(e)),
            })
            .collect(),
        Err(e) => creds
            .iter()
            .map(|_| Err(GraphError::invalid(format!("the $batch failed: {e}"))))
            .collect(),
    }
}

fn render_text(reports: &[ServiceRotation]) -> String {
    let headers = [
        "SERVICE",
        "RESULT",
        "HELD BY",
        "NEW KEY ID",
        "HINT",
        "EXPIRES",
        "PRUNED",
        "KEPT",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let (key, hint, expires) = match &r.secret {
                Some(m) => (
                    m.key_id.clone(),
                    m.hint.clone(),
                    m.end_date_time
                        .as_deref()
                        .map(|s| s.get(..10).unwrap_or(s).to_string())
                        .unwrap_or_else(|| "never".into()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            vec![
                r.service.clone(),
                match r.outcome {
                    Outcome::Rotated => "rotated",
                    Outcome::Skipped => "skipped",
                    Outcome::Pruned => "pruned",
                    Outcome::Failed => "FAILED",
                }
                .into(),
                r.policy.as_str().into(),
                key,
                hint,
                expires,
                r.pruned.len().to_string(),
                r.kept.len().to_string(),
            ]
        })
        .collect();
    let mut out = crate::printer::table(&headers, &rows);
    for r in reports {
        out.push('\n');
        out.push_str(&format!("{} ({}): {}\n", r.service, r.customer, r.reason));
        if let Some(m) = &r.secret {
            out.push_str(&format!(
                "  new secret keyId {} (hint {}) → {} at {}{}\n",
                m.key_id,
                m.hint,
                m.vault.backend,
                m.vault.path,
                if m.vault.verified {
                    ", read back and proven with a token request"
                } else {
                    ", proven with a token request"
                }
            ));
        }
        if let Some(h) = &r.hand_off {
            out.push_str(&format!("  next: {h}\n"));
        }
        for c in &r.pruned {
            out.push_str(&format!(
                "  pruned keyId {} (hint {}, {:?})\n",
                c.key_id, c.hint, c.display_name
            ));
        }
        for k in &r.kept {
            out.push_str(&format!(
                "  kept   keyId {} (hint {}, {:?}): {}\n",
                k.credential.key_id,
                k.credential.hint,
                k.credential.display_name,
                k.reason.describe()
            ));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {}\n", e.message));
        }
    }
    out
}
