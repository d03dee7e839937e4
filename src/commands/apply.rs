use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::apply::{ApplyEnv, StepOutcome, StepResult};
use crate::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use crate::cli::ApplyArgs;
use crate::desired::Desired;
use crate::drift::{DriftSummary, Identity, diff_apps};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::graph::wire::Application;
use crate::graph::{GraphRead, GraphWrite, Lookup};
use crate::printer::Printer;
use crate::sandbox;
use crate::session::{self, Session};
use crate::settings::Settings;

pub async fn run(
    args: ApplyArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let mut desired = crate::manifest::load_service(&args.manifest, settings.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let manifest_dir = session::manifest_dir(&args.manifest);
    let (sandbox, session, vault_base, audit_path, default_out) = if args.sandbox {
        let (sb, session) = sandbox::start(
            &mut desired,
            &args.manifest,
            settings.defaults.as_deref(),
            printer,
        )
        .await?;
        let audit_path = sb.dir.join(audit::AUDIT_FILE);
        let out = sb
            .dir
            .join("out")
            .join(&desired.customer)
            .join(&desired.service);
        (Some(sb), session, PathBuf::from("."), audit_path, out)
    } else {
        // Token for the customer's tenant, its `tid` checked, before the vault or Graph is
        // touched: a foreign tenant costs the token request and nothing else.
        let session = Session::for_service(settings, &desired).await?;
        let out = PathBuf::from("out")
            .join(&desired.customer)
            .join(&desired.service);
        (
            None,
            session,
            manifest_dir.clone(),
            audit::default_path(&manifest_dir),
            out,
        )
    };
    let result = converge(
        &args,
        settings,
        printer,
        &desired,
        &session,
        &vault_base,
        audit_path,
        default_out,
    )
    .await;
    if let Some(sb) = sandbox {
        sb.emulator.shutdown().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn converge(
    args: &ApplyArgs,
    settings: &Settings,
    printer: &Printer,
    desired: &Desired,
    session: &Session,
    vault_base: &Path,
    audit_path: PathBuf,
    default_out: PathBuf,
) -> Result<ExitStatus, Error> {
    let vault = session::open_vault(desired, vault_base)?;
    let mut reference = reference_manifest(desired, &args.manifest, settings);
    // This session is held to the service's tenant: a reference of another customer's tenant
    // is not read here (it would be looked up in the wrong directory); `drift` reads each side
    // in its own tenant.
    if let Some(r) = reference.take_if(|r| !r.tenant_id.eq_ignore_ascii_case(&desired.tenant_id)) {
        printer.status(&format!(
            "the reference {} is in tenant {} (customer {}), not {}: compare with `entraform drift {}`",
            r.service,
            r.tenant_id,
            r.customer,
            desired.tenant_id,
            args.manifest.display()
        ));
    }
    let (state, reference_app) = tokio::join!(
        session::read_state(session, desired, vault.clone()),
        async {
            match &reference {
                Some(r) => find_reference(session, r).await,
                None => Ok(None),
            }
        }
    );
    let (observed, observation) = state?;
    for w in &observed.warnings {
        printer.warn(w);
    }
    let plan = crate::plan::build(desired, &observation, OffsetDateTime::now_utc());
    for w in plan
        .warnings
        .iter()
        .filter(|w| !desired.warnings.contains(w))
    {
        printer.warn(w);
    }
    if !printer.is_json() {
        for line in plan.render_text().lines() {
            printer.status(line);
        }
    }
    if plan.has_changes() && printer.interactive() && !settings.yes && !args.sandbox {
        confirm(&plan, desired)?;
    }

    let progress = |r: &StepResult| {
        printer.status(&format!(
            "  [{}/9] {:<34} {:<7} {}",
            r.number, r.title, r.result, r.detail
        ));
    };
    let env = ApplyEnv {
        desired,
        write: GraphWrite::new(session.client.clone()).with_replication_retry(true),
        auth: &session.auth,
        vault,
        audit_path: Some(audit_path.clone()),
        progress: &progress,
    };
    let report = if plan.has_changes() {
        match crate::apply::execute(
            &env,
            &plan,
            observed.service_principal.as_ref().map(|s| s.id.clone()),
        )
        .await
        {
            Ok(report) => report,
            Err(e) => {
                // Every apply leaves a record, a failed one too (the audit redacts the text).
                let mut record = AuditRecord::new(
                    &desired.tenant_id,
                    &desired.service,
                    AuditAction::Apply,
                    AuditOutcome::Failed,
                );
                record.app_id = plan.app_id.clone();
                record.detail = Some(e.to_string());
                audit::record(&audit_path, &record, |line| printer.warn(line));
                return Err(e.into());
            }
        }
    } else {
        printer.status("No changes: zero writes.");
        unchanged_report(desired, &plan)
    };
    let apply_stats = session.client.stats();

    audit_apply(desired, &plan, &report, &audit_path, printer);

    // The fragments, with the real client id.
    let out = args.out.clone().unwrap_or(default_out);
    let fragments =
        crate::render::render_all(desired, Some(&report.app_id), args.templates.as_deref())?;
    let written = crate::render::write_fragments(&out, &fragments)?;

    // The drift check: the reference was read with `observe`; our app is what the create
    // returned, the observed app when nothing was written, else read again.
    let drift = drift_check(
        session,
        desired,
        &plan,
        &observed,
        &report,
        reference.as_ref(),
        reference_app,
        printer,
    )
    .await;

    let converged = !report
        .steps
        .iter()
        .any(|s| s.result == StepOutcome::Blocked);
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": true,
            "changed": plan.has_changes(),
            "converged": converged,
            "plan": plan,
            "applied": report,
            "fragments": { "out": out, "files": written.files },
            "drift": drift,
            "graph": { "apply": apply_stats, "total": session.client.stats() },
        }));
    } else {
        let text = apply_text(
            desired,
            &plan,
            &report,
            &out,
            &written,
            drift.as_ref(),
            &apply_stats,
        );
        printer.out(&text);
    }
    // A blocked step (consent the operator may not grant) leaves a difference behind: the
    // next `plan` still shows it, so apply says so with exit 3 too.
    Ok(if converged {
        ExitStatus::Success
    } else {
        ExitStatus::Differences
    })
}

/// Ask before writing to the tenant (a terminal without `--yes`).
fn confirm(plan: &crate::plan::Plan, desired: &Desired) -> Result<(), Error> {
    let go = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Apply {} write(s) to tenant {}?",
            plan.actions.len(),
            desired.tenant_id
        ))
        .default(false)
        .interact()
        .map_err(|e| Error::other(format!("cannot prompt: {e}"), Some("pass --yes".into())))?;
    if !go {
        return Err(Error::usage("apply cancelled; nothing was written", None));
    }
    Ok(())
}

/// The report of an apply with nothing to write: every step as the plan found it.
fn unchanged_report(desired: &Desired, plan: &crate::plan::Plan) -> crate::apply::ApplyReport {
    crate::apply::ApplyReport {
        service: desired.service.clone(),
        app_id: plan.app_id.clone().unwrap_or_default(),
        app_object_id: plan.app_object_id.clone().unwrap_or_default(),
        writes: 0,
        steps: plan
            .steps
            .iter()
            .map(|s| StepResult {
                number: s.number,
                title: s.title,
                result: StepOutcome::from(&s.status),
                detail: crate::apply::step_detail(&s.status),
            })
            .collect(),
        secret: None,
        removed_credentials: Vec::new(),
        admin_consent_url: None,
        app: None,
    }
}

/// The audit records of a finished apply: one per removed orphan, one for the apply.
fn audit_apply(
    desired: &Desired,
    plan: &crate::plan::Plan,
    report: &crate::apply::ApplyReport,
    audit_path: &Path,
    printer: &Printer,
) {
    // A removed orphan is a credential event like any other: the audit log accounts for every
    // credential the app holds (docs/rotate.md).
    for key in &report.removed_credentials {
        let mut record = AuditRecord::new(
            &desired.tenant_id,
            &desired.service,
            AuditAction::RemoveSecret,
            AuditOutcome::Success,
        );
        record.app_id = Some(report.app_id.clone());
        record.key_id = Some(key.clone());
        record.hint = plan.actions.iter().find_map(|a| match a {
            crate::plan::Action::RemoveOrphanPassword { key_id, hint } if key_id == key => {
                Some(hint.clone()).filter(|h| !h.is_empty())
            }
            _ => None,
        });
        record.detail = Some(
            "orphan: newer than the vault's secret and never stored (an interrupted run left it)"
                .into(),
        );
        audit::record(audit_path, &record, |line| printer.warn(line));
    }
    let mut record = AuditRecord::new(
        &desired.tenant_id,
        &desired.service,
        AuditAction::Apply,
        if plan.has_changes() {
            AuditOutcome::Success
        } else {
            AuditOutcome::NoChange
        },
    );
    record.app_id = Some(report.app_id.clone());
    record.detail = Some(format!("{} write(s)", report.writes));
    audit::record(audit_path, &record, |line| printer.warn(line));
}

/// The drift check against the reference: the reference as read before the apply; this app
/// as the create returned it (Graph's write responses carry the whole object), as observed when
/// nothing was written, else read again.
#[allow(clippy::too_many_arguments)]
async fn drift_check(
    session: &Session,
    desired: &Desired,
    plan: &crate::plan::Plan,
    observed: &crate::observed::Observed,
    report: &crate::apply::ApplyReport,
    reference: Option<&Desired>,
    reference_app: Result<Option<Application>, Error>,
    printer: &Printer,
) -> Option<DriftSummary> {
    match (reference, reference_app) {
        (None, _) => None,
        (Some(_), Err(e)) => {
            printer.warn(&format!(
                "the drift check against the reference failed: {e}"
            ));
            None
        }
        (Some(r), Ok(theirs)) => {
            let ours = if let Some(app) = &report.app {
                Ok(Some(app.clone()))
            } else if !plan.has_changes() {
                Ok(observed.app.clone())
            } else {
                session
                    .client
                    .find_application(&Lookup::ObjectId(report.app_object_id.clone()))
                    .await
                    .map_err(Error::from)
            };
            match ours {
                Ok(Some(ours)) => Some(drift_summary(desired, r, theirs.as_ref(), &ours)),
                Ok(None) => None,
                Err(e) => {
                    printer.warn(&format!(
                        "the drift check against the reference failed: {e}"
                    ));
                    None
                }
            }
        }
    }
}

/// The text report of an apply.
fn apply_text(
    desired: &Desired,
    plan: &crate::plan::Plan,
    report: &crate::apply::ApplyReport,
    out: &Path,
    written: &crate::render::WriteReport,
    drift: Option<&DriftSummary>,
    apply_stats: &crate::graph::Stats,
) -> String {
    let mut text = format!(
        "{} {} ({}): app {} (client id)\n",
        if plan.has_changes() {
            "Applied"
        } else {
            "Unchanged"
        },
        desired.service,
        desired.customer,
        report.app_id
    );
    for s in &report.steps {
        text.push_str(&format!("  {}. {:<34} {}\n", s.number, s.title, s.result));
    }
    if let Some(m) = &report.secret {
        text.push_str(&format!(
            "Secret: keyId {} (hint {}) stored in {} at {}{}\n",
            m.key_id,
            m.hint,
            m.vault.backend,
            m.vault.path,
            if m.vault.verified {
                ", read back and proven"
            } else {
                ", proven"
            }
        ));
    }
    if !report.removed_credentials.is_empty() {
        text.push_str(&format!(
            "Removed orphaned credentials: {}\n",
            report.removed_credentials.join(", ")
        ));
    }
    if let Some(url) = &report.admin_consent_url {
        text.push_str(&format!("Admin consent needed: {url}\n"));
    }
    let changed = written.files.iter().filter(|f| f.changed).count();
    text.push_str(&format!(
        "Fragments: {} ({} file(s), {} changed)\n",
        out.display(),
        written.files.len(),
        changed
    ));
    match drift {
        Some(d) if !d.found => text.push_str(&format!(
            "Drift against {}: the reference app was not found\n",
            d.reference
        )),
        Some(d) if d.differences.is_empty() => {
            text.push_str(&format!("Drift against {}: none\n", d.reference))
        }
        Some(d) => {
            text.push_str(&format!(
                "Drift against {}: {} field(s) differ\n",
                d.reference,
                d.differences.len()
            ));
            for c in &d.differences {
                // `new` is the reference's value, `old` this app's.
                text.push_str(&format!(
                    "  {}: {} (reference) vs {} (this app)\n",
                    c.field, c.new, c.old
                ));
            }
        }
        None => {}
    }
    text.push_str(&format!(
        "Graph: {} request(s), {} sequential round trip(s)\n",
        apply_stats.http_requests, apply_stats.round_trips
    ));
    text
}

/// The reference service's manifest (beside this one), unless it is this service itself.
fn reference_manifest(desired: &Desired, manifest: &Path, settings: &Settings) -> Option<Desired> {
    let reference = desired.reference.as_ref()?;
    let path = session::manifest_dir(manifest).join(format!("{reference}.yaml"));
    let r = crate::manifest::load_service(&path, settings.defaults.as_deref()).ok()?;
    (r.service != desired.service).then_some(r)
}

/// Find the reference app (one `$batch`, sent concurrently with `observe` so it costs no
/// round trip of its own), statelessly, exactly as `observe` finds an app.
async fn find_reference(session: &Session, r: &Desired) -> Result<Option<Application>, Error> {
    let found = crate::observed::find_apps(&session.client, std::slice::from_ref(r)).await?;
    match found.into_iter().next() {
        Some(result) => Ok(result?.0),
        None => Ok(None),
    }
}

/// Compare the converged app with its reference, both already read.
fn drift_summary(
    desired: &Desired,
    reference: &Desired,
    theirs: Option<&Application>,
    ours: &Application,
) -> DriftSummary {
    let name = desired.reference.clone().unwrap_or_default();
    let Some(theirs) = theirs else {
        return DriftSummary {
            reference: name,
            found: false,
            differences: vec![],
        };
    };
    let identity = |d: &Desired, a: &Application| Identity {
        service: d.service.clone(),
        host: d.host.clone(),
        display_name: d.display_name.clone(),
        ids: [a.id.clone(), a.app_id.clone()]
            .into_iter()
            .flatten()
            .collect(),
    };
    let differences = diff_apps(
        theirs,
        &identity(reference, theirs),
        ours,
        &identity(desired, ours),
    );
    DriftSummary {
        reference: name,
        found: true,
        differences,
    }
}
