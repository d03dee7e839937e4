use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;

pub fn run(args: CompletionsArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "entraform", &mut buf);
    printer.out(&String::from_utf8_lossy(&buf));
    Ok(ExitStatus::Success)
}
