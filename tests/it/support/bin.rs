//! The one definition of how the tests start the binary against the in-process emulator: a
//! cleared environment (only `PATH`, a `HOME` of the test's own, `USER` and `NO_COLOR` kept or
//! set), the emulator's authority, Graph URL and CA, and — unless the test wants none — an
//! operator's credentials. The harnesses (`harness::Harness`, `world::World`,
//! `fixture::Fixture`, `reliability::command`) add only what is theirs.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

use entraform::emulator::RunningEmulator;

use crate::support::BIN;

/// `entraform ARGS`, not yet started.
pub struct Bin {
    cmd: tokio::process::Command,
}

impl Bin {
    /// The binary run in `cwd` against `emu` (its CA certificate in `ca`), without credentials
    /// and without logs.
    pub fn new(emu: &RunningEmulator, ca: &Path, cwd: &Path, args: &[&str]) -> Self {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", cwd.join("home"))
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("AZURE_AUTHORITY_HOST", emu.authority_host())
            .env("ENTRAFORM_GRAPH_URL", emu.graph_url())
            .env("ENTRAFORM_CA_CERT", ca)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Bin { cmd }
    }

    /// Signed in to the emulator's tenant as the principal `client_id` with `secret`.
    pub fn operator(mut self, emu: &RunningEmulator, client_id: &str, secret: &str) -> Self {
        self.cmd
            .env("AZURE_TENANT_ID", emu.tenant_id())
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_CLIENT_SECRET", secret);
        self
    }

    /// Signed in as the emulator's full operator.
    pub fn full_operator(self, emu: &RunningEmulator) -> Self {
        let secret = emu.operator_secret();
        self.operator(emu, emu.operator_client_id(), secret.expose())
    }

    /// With `RUST_LOG=trace` (every log line, for the secret scans).
    pub fn trace(self) -> Self {
        self.env("RUST_LOG", "trace")
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn command(self) -> tokio::process::Command {
        self.cmd
    }
}
