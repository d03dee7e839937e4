//! The process exit codes of the CLI contract (README.md, "Exit codes").

use std::process::ExitCode;

/// What a command reports back to `main`; the one place exit codes are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: in sync / success.
    Success,
    /// 3: differences found (plan has pending changes, drift detected, a verify check failed).
    Differences,
    /// 1: the command reported its result but part of it failed (e.g. one service of `--all`);
    /// the failures are in the result itself.
    Failed,
}

/// 1: the tool failed (bad manifest, Graph error, vault failure, …).
pub const EXIT_ERROR: u8 = 1;
/// 2: usage error (clap's own code for bad flags).
pub const EXIT_USAGE: u8 = 2;
/// 3: differences found.
pub const EXIT_DIFFERENCES: u8 = 3;

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Differences => ExitCode::from(EXIT_DIFFERENCES),
            ExitStatus::Failed => ExitCode::from(EXIT_ERROR),
        }
    }
}
