use time::OffsetDateTime;

use crate::cli::PlanArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::session::{self, Session};
use crate::settings::Settings;

pub async fn run(
    args: PlanArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let desired = crate::manifest::load_service(&args.manifest, settings.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let session = Session::for_service(settings, &desired).await?;
    let vault = session::open_vault(&desired, &session::manifest_dir(&args.manifest))?;
    let (observed, observation) = session::read_state(&session, &desired, vault).await?;
    for w in &observed.warnings {
        printer.warn(w);
    }
    let plan = crate::plan::build(&desired, &observation, OffsetDateTime::now_utc());
    for w in plan
        .warnings
        .iter()
        .filter(|w| !desired.warnings.contains(w))
    {
        printer.warn(w);
    }
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": true,
            "changes": plan.has_changes(),
            "plan": plan,
            "graph": session.client.stats(),
        }));
    } else {
        printer.out(&plan.render_text());
    }
    Ok(if plan.has_changes() {
        ExitStatus::Differences
    } else {
        ExitStatus::Success
    })
}
