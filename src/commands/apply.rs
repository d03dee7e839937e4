use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::apply::{ApplyEnv, StepResult};
use crate::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use crate::cli::{ApplyArgs, GlobalArgs};
use crate::commands::sandbox;
use crate::commands::session::{self, Session};
use crate::desired::Desired;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::graph::GraphWrite;
use crate::printer::Printer;

pub async fn run(
    args: ApplyArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let mut desired = crate::manifest::load_service(&args.manifest, global.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let manifest_dir = session::manifest_dir(&args.manifest);
    let (sandbox, session, vault_base, audit_path, default_out) = if args.sandbox {
        let (sb, session) = sandbox::start(
            &mut desired,
            &args.manifest,
            global.defaults.as_deref(),
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
        let session = Session::from_global(global)?;
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
        global,
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
    global: &GlobalArgs,
    printer: &Printer,
    desired: &Desired,
    session: &Session,
    vault_base: &Path,
    audit_path: PathBuf,
    default_out: PathBuf,
) -> Result<ExitStatus, Error> {
    let vault = session::open_vault(desired, vault_base)?;
    let (observed, observation) = session::read_state(session, desired, vault.clone()).await?;
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
    if plan.has_changes() && printer.interactive() && !global.yes && !args.sandbox {
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
        crate::apply::execute(
            &env,
            &plan,
            observed.service_principal.as_ref().map(|s| s.id.clone()),
        )
        .await?
    } else {
        printer.status("No changes: zero writes.");
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
                    result: s.status.label(),
                    detail: String::new(),
                })
                .collect(),
            secret: None,
            removed_credentials: Vec::new(),
            admin_consent_url: None,
        }
    };
    let apply_stats = session.client.stats();

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
    if let Err(e) = audit::append(&audit_path, &record) {
        printer.warn(&format!(
            "cannot append to the audit log {}: {e}",
            audit_path.display()
        ));
    }

    // The fragments, with the real client id.
    let out = args.out.clone().unwrap_or(default_out);
    let fragments =
        crate::render::render_all(desired, Some(&report.app_id), args.templates.as_deref())?;
    let written = crate::render::write_fragments(&out, &fragments)?;

    let drift = crate::drift::check_after_apply(
        &session.client,
        desired,
        &args.manifest,
        global.defaults.as_deref(),
        &report.app_object_id,
    )
    .await;
    let drift = match drift {
        Ok(d) => d,
        Err(e) => {
            printer.warn(&format!(
                "the drift check against the reference failed: {e}"
            ));
            None
        }
    };

    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": true,
            "changed": plan.has_changes(),
            "plan": plan,
            "applied": report,
            "fragments": { "out": out, "files": written.files },
            "drift": drift,
            "graph": { "apply": apply_stats, "total": session.client.stats() },
        }));
    } else {
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
        match &drift {
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
        printer.out(&text);
    }
    Ok(ExitStatus::Success)
}
