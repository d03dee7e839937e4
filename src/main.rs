//! Thin entry point: parse the command line, run it, map the outcome to an exit code.
//! Nothing else in the crate exits the process.

use std::process::ExitCode;

fn main() -> ExitCode {
    entraform::main_entry()
}
