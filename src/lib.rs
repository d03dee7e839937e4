//! entraform: one YAML manifest per MCP service → a converged Microsoft Entra app registration,
//! its client secret in a vault, and the four deployment fragments.
//!
//! Data flows one way: manifest → desired → observed → plan → apply → outputs; drift reuses the
//! diff with a reference in place of the desired state (docs/drift.md).

pub mod apply;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod credential;
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
pub mod sandbox;
pub mod scaffold;
pub mod secret;
pub mod secret_flow;
pub mod session;
pub mod settings;
pub mod similar;
pub mod vault;
pub mod vault_view;
pub mod verify;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::printer::Printer;
use crate::settings::{LogFilter, Settings};

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
    let settings = Settings::resolve(&cli, |k| std::env::var(k).ok());
    init_tracing(&settings.log_filter);
    let printer = Printer::new(settings.output, settings.verbosity);
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
    match runtime.block_on(commands::run(cli.command, &settings, &printer)) {
        Ok(status) => status.into(),
        Err(err) => {
            printer.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}

/// Logs go to stderr, filtered as the settings say.
fn init_tracing(filter: &LogFilter) {
    use tracing_subscriber::EnvFilter;
    let filter = match filter {
        LogFilter::Env {
            directives,
            default,
        } => EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(default)),
        LogFilter::Default(default) => EnvFilter::new(default),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
