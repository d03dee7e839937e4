//! One function per subcommand: orchestration only (call the stages in order, hand results to
//! the printer).

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;

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
mod sandbox;
mod schema;
mod secrets;
mod send;
mod session;
mod verify;

pub async fn run(cli: Cli, printer: &Printer) -> Result<ExitStatus, Error> {
    let global = cli.global;
    match cli.command {
        Command::Plan(args) => plan::run(args, &global, printer).await,
        Command::Apply(args) => apply::run(args, &global, printer).await,
        Command::Completions(args) => completions::run(args, printer),
        Command::New(args) => new::run(args, &global, printer),
        Command::Explain(args) => explain::run(args, printer),
        Command::Schema(args) => schema::run(args, printer),
        Command::Render(args) => render::run(args, &global, printer),
        Command::Emulator(args) => emulator::run(args, printer).await,
        Command::Verify(args) => verify::run(args, &global, printer).await,
        Command::Rotate(args) => rotate::run(args, &global, printer).await,
        Command::Secrets(args) => secrets::run(args, &global, printer).await,
        Command::Drift(args) => drift::run(args, &global, printer).await,
        Command::Export(args) => export::run(args, &global, printer).await,
        Command::Send(args) => send::run(args, &global, printer).await,
    }
}
