//! One function per subcommand: orchestration only (call the stages in order, hand results to
//! the printer).

use crate::cli::Command;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::settings::Settings;

mod apply;
mod completions;
mod drift;
mod emulator;
mod explain;
mod export;
mod new;
mod plan;
mod render;
mod rotate;
mod schema;
mod secrets;
mod send;
mod targets;
mod verify;

pub async fn run(
    command: Command,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    match command {
        Command::Plan(args) => plan::run(args, settings, printer).await,
        Command::Apply(args) => apply::run(args, settings, printer).await,
        Command::Completions(args) => completions::run(args, printer),
        Command::New(args) => new::run(args, settings, printer),
        Command::Explain(args) => explain::run(args, printer),
        Command::Schema(args) => schema::run(args, printer),
        Command::Render(args) => render::run(args, settings, printer),
        Command::Emulator(args) => emulator::run(args, printer).await,
        Command::Verify(args) => verify::run(args, settings, printer).await,
        Command::Rotate(args) => rotate::run(args, settings, printer).await,
        Command::Secrets(args) => secrets::run(args, settings, printer).await,
        Command::Drift(args) => drift::run(args, settings, printer).await,
        Command::Export(args) => export::run(args, settings, printer).await,
        Command::Send(args) => send::run(args, settings, printer).await,
    }
}
