//! One function per subcommand: orchestration only (call the stages in order, hand results to
//! the printer).

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;

mod completions;
mod emulator;
mod explain;
mod new;
mod render;
mod schema;

pub async fn run(cli: Cli, printer: &Printer) -> Result<ExitStatus, Error> {
    let global = cli.global;
    match cli.command {
        Command::Completions(args) => completions::run(args, printer),
        Command::New(args) => new::run(args, &global, printer),
        Command::Explain(args) => explain::run(args, printer),
        Command::Schema(args) => schema::run(args, printer),
        Command::Render(args) => render::run(args, &global, printer),
        Command::Emulator(args) => emulator::run(args, printer).await,
    }
}
