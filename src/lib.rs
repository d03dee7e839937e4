//! entraform: one YAML manifest per MCP service → a converged Microsoft Entra app registration,
//! its client secret in a vault, and the four deployment fragments.
//!
//! Data flows one way: manifest → desired → observed → plan → apply → outputs; drift reuses the
//! diff with a reference in place of the desired state (SPEC §1).

pub mod apply;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod desired;
pub mod drift;
pub use entraform_emulator as emulator;
pub mod error;
pub mod exit;
pub mod explain;
pub mod graph;
pub mod manifest;
pub mod observed;
pub mod plan;
pub mod printer;
pub mod render;
pub mod rotation;
pub mod scaffold;
pub mod secret;
pub mod secret_flow;
pub mod similar;
pub mod vault;
pub mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::printer::{Printer, Verbosity};

/// Parse, run, map to an exit code. The only place the process outcome is decided.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::EXIT_USAGE
            } else {
                0
            });
        }
    };
    let verbosity = if cli.global.quiet {
        Verbosity::Quiet
    } else if cli.global.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    init_tracing(cli.global.verbose);
    let printer = Printer::new(cli.global.output, verbosity);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            printer.error(&error::Error::other(
                format!("cannot start the async runtime: {e}"),
                None,
            ));
            return ExitCode::from(exit::EXIT_ERROR);
        }
    };
    match runtime.block_on(commands::run(cli, &printer)) {
        Ok(status) => status.into(),
        Err(err) => {
            printer.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}

/// Logs go to stderr. `RUST_LOG` wins; otherwise `-v` → info, `-vv` → debug, default warn.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "entraform=info",
        _ => "entraform=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
