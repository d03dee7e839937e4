use time::OffsetDateTime;

use crate::cli::{GlobalArgs, PlanArgs};
use crate::commands::session::{self, Session};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;

pub async fn run(
    args: PlanArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let desired = crate::manifest::load_service(&args.manifest, global.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let session = Session::for_service(global, &desired).await?;
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
