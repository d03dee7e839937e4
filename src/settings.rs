//! Resolved settings: the global flags and the environment, merged once before any command runs
//! (uv's `Args → Settings`). Everything below the commands takes these, never the clap types.
//!
//! Precedence for each value: command-line flag > environment variable > default. clap applies
//! the flags' own `env =` variables while parsing; [`Settings::resolve`] adds the ones clap does
//! not know about (`RUST_LOG`).

use std::path::PathBuf;

use crate::cli::Cli;
use crate::graph::{AuthConfig, AuthError};
use crate::printer::{OutputFormat, Verbosity};

/// The settings every command runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--defaults` / `ENTRAFORM_DEFAULTS`: organisation defaults (default: `defaults.yaml`
    /// beside the service manifest).
    pub defaults: Option<PathBuf>,
    /// `--graph-url` / `ENTRAFORM_GRAPH_URL`.
    pub graph_url: String,
    /// `--authority-host` / `AZURE_AUTHORITY_HOST`.
    pub authority_host: String,
    /// `--ca-cert` / `ENTRAFORM_CA_CERT`: an extra root certificate (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
    /// `--output`: the result format on stdout.
    pub output: OutputFormat,
    /// `--yes`: never prompt.
    pub yes: bool,
    /// `--quiet` / `--verbose`: how much goes to stderr.
    pub verbosity: Verbosity,
    /// The log filter: `RUST_LOG` when set, otherwise from the number of `-v`.
    pub log_filter: LogFilter,
}

/// Which log lines reach stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFilter {
    /// `RUST_LOG`, as given (the default below applies if it does not parse).
    Env {
        directives: String,
        default: &'static str,
    },
    /// No `RUST_LOG`: `-v` → info, `-vv` → debug, default warn.
    Default(&'static str),
}

impl Settings {
    /// Merge the parsed command line with the environment (`env` looks a variable up).
    pub fn resolve(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Self {
        let global = &cli.global;
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let default = match global.verbose {
            0 => "warn",
            1 => "entraform=info",
            _ => "entraform=debug",
        };
        let log_filter = match env("RUST_LOG") {
            Some(directives) => LogFilter::Env {
                directives,
                default,
            },
            None => LogFilter::Default(default),
        };
        Settings {
            defaults: global.defaults.clone(),
            graph_url: global.graph_url.clone(),
            authority_host: global.authority_host.clone(),
            ca_cert: global.ca_cert.clone(),
            output: global.output.into(),
            yes: global.yes,
            verbosity,
            log_filter,
        }
    }

    /// Where to authenticate and which Graph to call (`--authority-host`, `--graph-url`), trusting
    /// `--ca-cert` as well as the system's roots.
    pub fn auth_config(&self) -> Result<AuthConfig, AuthError> {
        let cfg = AuthConfig::new(self.authority_host.clone(), self.graph_url.clone());
        match &self.ca_cert {
            Some(path) => cfg.with_ca_file(path),
            None => Ok(cfg),
        }
    }
}
