//! One function per subcommand: orchestration only (call the stages in order, hand results to
//! the printer).

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;

mod completions;
mod verify;

pub async fn run(cli: Cli, printer: &Printer) -> Result<ExitStatus, Error> {
    let global = cli.global;
    match cli.command {
        Command::Completions(args) => completions::run(args, printer),
        Command::Render(_) | Command::New(_) | Command::Explain(_) | Command::Schema(_) => {
            let _ = &global;
            Err(Error::other("not implemented yet", None))
        }
        Command::Emulator(_) => Err(Error::other("not implemented yet", None)),
        Command::Verify(args) => verify::run(args, &global, printer).await,
    }
}
