//! The `command` backend: external programs (`pass`, `secret-tool`, `axe secret`, `bw`, …).
//!
//! - Declared only in defaults.yaml (trusted configuration, reviewed like code): a service
//!   manifest chooses a declaration by name and may set its vault path, nothing else.
//! - No shell: the argv template is run as given, `{path}` (and, for `send`, `{to}`)
//!   substituted inside each argument. A program containing a `/` is resolved against the
//!   manifest's directory (`~/` = home); a bare name is looked up on `PATH`. The child runs in
//!   the manifest's directory.
//! - The secret goes to the child's stdin only (exactly its bytes, no newline), then stdin is
//!   closed. It is never in an argument.
//! - The child's environment is cleared, then given an allow-list ([`env_allowed`]: `PATH`,
//!   `HOME`, locale, `XDG_*`, the D-Bus session, GnuPG and `pass`, and the session variables of
//!   the common vault CLIs) plus the names the declaration lists under `env:`. The operator's
//!   `AZURE_*` credentials never reach it, nor a variable whose value contains the secret.
//! - The child runs in its own process group. On timeout the whole group is killed (a
//!   grandchild too); output that never reached end-of-file (a grandchild still holding the
//!   pipe) is an error, never "absent".
//! - stdout and stderr are captured separately (never mixed with each other or with the
//!   secret) with a timeout, and shown only on failure: control sequences stripped, redacted
//!   ([`super::redact`]).
//! - `get`: exit 0 with output → the value (ONE trailing newline trimmed, nothing else), which
//!   must look like a client secret, else an error that says so (the 270-character incident:
//!   a warning glued to the secret). Exit 0 with empty output → absent. A non-zero exit that
//!   matches the declaration's `missing:` rule → absent; one that does not → a failed read
//!   (a broken or locked vault is not an empty one). Without a rule, a non-zero exit is
//!   [`VaultError::ReadUnsure`]: apply and rotate go on as if nothing were stored (the
//!   read-back must then succeed), `secrets` and `verify` report a failed read.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;

use zeroize::{Zeroize, Zeroizing};

use super::redact::{contains_fragment, excerpt};
use super::{Vault, VaultError};
pub use crate::manifest::vault_decl::{CommandConfig, MissingRule, Preset, env_name_problem};
use crate::secret::{Secret, check_shape};

/// How long a push or get may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this much of each stream is kept (the rest is read and dropped).
const CAPTURE_LIMIT: usize = 256 * 1024;
/// Lines of a failing child's output shown in the error.
const EXCERPT_LINES: usize = 20;
/// After the child exits, how long its output may take to reach end-of-file.
const EOF_GRACE: Duration = Duration::from_secs(2);

impl Preset {
    fn push(self) -> Vec<String> {
        match self {
            Preset::Pass => argv(&["pass", "insert", "--multiline", "--force", "{path}"]),
            Preset::SecretTool => argv(&[
                "secret-tool",
                "store",
                "--label",
                "entraform {path}",
                "service",
                "entraform",
                "path",
                "{path}",
            ]),
        }
    }

    fn get(self) -> Vec<String> {
        match self {
            Preset::Pass => argv(&["pass", "show", "{path}"]),
            Preset::SecretTool => argv(&[
                "secret-tool",
                "lookup",
                "service",
                "entraform",
                "path",
                "{path}",
            ]),
        }
    }

    fn missing(self) -> MissingRule {
        match self {
            Preset::Pass => MissingRule {
                exit: vec![1],
                stderr: Some("is not in the password store".into()),
            },
            Preset::SecretTool => MissingRule {
                exit: vec![1],
                stderr: Some("^$".into()),
            },
        }
    }
}

/// Replace each placeholder in one pass (a value that holds `{to}` is not substituted again).
fn substitute(arg: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    'outer: while !rest.is_empty() {
        for (key, value) in pairs {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_string()).collect()
}

impl CommandConfig {
    /// A declaration of just `push` and `get` (no preset, no rule).
    pub fn new(push: Vec<String>, get: Option<Vec<String>>) -> Self {
        Self {
            push: Some(push),
            get,
            ..Self::default()
        }
    }

    /// `push`, explicit or from the preset.
    pub fn effective_push(&self) -> Option<Vec<String>> {
        self.push.clone().or_else(|| self.preset.map(Preset::push))
    }

    /// `get`, explicit or from the preset.
    pub fn effective_get(&self) -> Option<Vec<String>> {
        self.get.clone().or_else(|| self.preset.map(Preset::get))
    }

    /// `missing`, explicit or from the preset.
    pub fn effective_missing(&self) -> Option<MissingRule> {
        self.missing
            .clone()
            .or_else(|| self.preset.map(Preset::missing))
    }
}

/// Whether the variable `name` reaches a vault command: the allow-list, or one of `extra`
/// (the declaration's `env:`).
pub fn env_allowed(name: &str, extra: &[String]) -> bool {
    // Exact names: the basics a CLI needs, and GnuPG's agent (pass decrypts through it).
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TMPDIR",
        "TZ",
        "DBUS_SESSION_BUS_ADDRESS",
        "GNUPGHOME",
        "GPG_AGENT_INFO",
        "GPG_TTY",
    ];
    // Prefixes: locale, XDG dirs (the Secret Service's runtime dir), and the vault CLIs' own
    // settings and session variables: pass (`PASSWORD_STORE_DIR`), Bitwarden (`BW_SESSION`,
    // `BITWARDENCLI_APPDATA_DIR`), 1Password (`OP_SESSION_<account>`,
    // `OP_SERVICE_ACCOUNT_TOKEN`), HashiCorp Vault (`VAULT_ADDR`, `VAULT_TOKEN`).
    const PREFIXES: &[&str] = &[
        "LC_",
        "XDG_",
        "PASSWORD_STORE_",
        "BW_",
        "BITWARDENCLI_",
        "OP_",
        "VAULT_",
    ];
    if name.starts_with("AZURE_") && name != "AZURE_CONFIG_DIR" {
        return false;
    }
    EXACT.contains(&name)
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || extra.iter().any(|e| e == name)
}

/// External push/get/send commands.
#[derive(Debug, Clone)]
pub struct CommandVault {
    push: Vec<String>,
    get: Option<Vec<String>>,
    missing: Option<(MissingRule, Option<Regex>)>,
    send: Option<Vec<String>>,
    env: Vec<String>,
    dir: PathBuf,
    timeout: Duration,
}

impl CommandVault {
    /// Validate the templates; `base_dir` is the manifest's directory.
    pub fn new(
        push: Vec<String>,
        get: Option<Vec<String>>,
        base_dir: &Path,
    ) -> Result<Self, VaultError> {
        Self::from_config(&CommandConfig::new(push, get), base_dir)
    }

    /// From a declaration (preset filled in); `base_dir` is the manifest's directory.
    pub fn from_config(config: &CommandConfig, base_dir: &Path) -> Result<Self, VaultError> {
        let push = config.effective_push().ok_or_else(|| VaultError::Config {
            backend: "command",
            message: "no `push` command and no `preset`".into(),
            hint: "write `preset: pass` (or `secret-tool`), or `push: [PROGRAM, …, \"{path}\"]`"
                .into(),
        })?;
        let push = resolve_argv(push, base_dir, "push")?;
        let get = config
            .effective_get()
            .map(|g| resolve_argv(g, base_dir, "get"))
            .transpose()?;
        let send = config
            .send
            .clone()
            .map(|s| resolve_argv(s, base_dir, "send"))
            .transpose()?;
        let missing = match config.effective_missing() {
            None => None,
            Some(rule) => {
                let re = rule
                    .stderr
                    .as_deref()
                    .map(|p| {
                        Regex::new(p).map_err(|e| VaultError::Config {
                            backend: "command",
                            message: format!(
                                "`vault.missing.stderr` is not a regular expression: {e}"
                            ),
                            hint:
                                "write a regular expression, e.g. \"is not in the password store\""
                                    .into(),
                        })
                    })
                    .transpose()?;
                Some((rule, re))
            }
        };
        for name in &config.env {
            if let Some(message) = env_name_problem(name) {
                return Err(VaultError::Config {
                    backend: "command",
                    message: format!("`vault.env`: {message}"),
                    hint: "list only the variables the vault CLI itself needs".into(),
                });
            }
        }
        Ok(Self {
            push,
            get,
            missing,
            send,
            env: config.env.clone(),
            dir: base_dir.to_path_buf(),
            timeout: config
                .timeout_seconds
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        })
    }

    /// Override the time limit of each command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn expand(template: &[String], path: &str) -> Vec<String> {
        template
            .iter()
            .map(|a| substitute(a, &[("{path}", path)]))
            .collect()
    }

    fn expand_send(template: &[String], path: &str, to: &str) -> Vec<String> {
        template
            .iter()
            .map(|a| substitute(a, &[("{path}", path), ("{to}", to)]))
            .collect()
    }

    /// Whether a failing get's exit and stderr match the declared missing-entry rule
    /// (`None`: no rule declared).
    fn is_missing(&self, captured: &Captured) -> Option<bool> {
        let (rule, re) = self.missing.as_ref()?;
        let Some(code) = captured.status.code() else {
            return Some(false);
        };
        let exit_ok = if rule.exit.is_empty() {
            code != 0
        } else {
            rule.exit.contains(&code)
        };
        let stderr = super::redact::strip_controls(&String::from_utf8_lossy(&captured.stderr));
        let stderr_ok = re.as_ref().is_none_or(|re| re.is_match(stderr.trim()));
        Some(exit_ok && stderr_ok)
    }

    fn describe_rule(&self) -> String {
        match &self.missing {
            None => "none".into(),
            Some((rule, _)) => {
                let mut parts = Vec::new();
                if !rule.exit.is_empty() {
                    parts.push(format!("exit {:?}", rule.exit));
                }
                if let Some(s) = &rule.stderr {
                    parts.push(format!("stderr matching {s:?}"));
                }
                parts.join(" and ")
            }
        }
    }
}

fn resolve_argv(
    mut argv: Vec<String>,
    base_dir: &Path,
    which: &str,
) -> Result<Vec<String>, VaultError> {
    let Some(program) = argv.first() else {
        return Err(VaultError::Config {
            backend: "command",
            message: format!("`vault.{which}` is empty"),
            hint: format!(
                "give the command as a list, e.g. `{which}: [axe, secret, {which}, \"{{path}}\", \"-\"]`"
            ),
        });
    };
    if program.trim().is_empty() {
        return Err(VaultError::Config {
            backend: "command",
            message: format!("`vault.{which}` has an empty program name"),
            hint: "the first element is the program to run".into(),
        });
    }
    if program.contains('/') || program.starts_with('~') {
        let resolved = super::resolve_path(Path::new(program), base_dir, "command")?;
        // The child runs in `base_dir`, and a relative program path is looked up from the
        // child's directory on Unix (std::process::Command::current_dir docs): make it
        // absolute, or `manifests/push.sh` becomes `manifests/manifests/push.sh`.
        let resolved = std::path::absolute(&resolved).unwrap_or(resolved);
        argv[0] = resolved.to_string_lossy().into_owned();
    }
    Ok(argv)
}

/// What a finished child left behind.
struct Captured {
    status: ExitStatus,
    stdout: Zeroizing<Vec<u8>>,
    stderr: Zeroizing<Vec<u8>>,
}

enum RunError {
    Spawn(io::Error),
    Io(io::Error),
    /// The deadline passed; the process group was killed. What stderr held by then.
    Timeout(Zeroizing<Vec<u8>>),
    /// The child exited, but its output did not reach end-of-file (a process it started
    /// still held the pipe); the process group was killed.
    Unfinished(ExitStatus, Zeroizing<Vec<u8>>),
}

impl CommandVault {
    /// Run `argv`, feeding `stdin` (the secret) if given.
    fn run(&self, argv: &[String], stdin: Option<&Secret>) -> Result<Captured, RunError> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.dir)
            .env_clear()
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let passed: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_some_and(|k| env_allowed(k, &self.env)))
            .collect();
        let holding: Vec<std::ffi::OsString> = match stdin {
            Some(secret) => env_holding(passed.iter().map(|(k, v)| (k.clone(), v)), secret),
            None => Vec::new(),
        };
        for (k, v) in &passed {
            if !holding.contains(k) {
                cmd.env(k, v);
            }
        }
        // Its own process group, so that a timeout can stop everything it started.
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let deadline = Instant::now() + self.timeout;
        let mut child = cmd.spawn().map_err(RunError::Spawn)?;

        let (tx, rx) = mpsc::channel();
        spawn_reader(child.stdout.take(), Stream::Out, tx.clone());
        spawn_reader(child.stderr.take(), Stream::Err, tx);

        if let (Some(secret), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A child that exits without reading gives EPIPE; its exit status tells the rest.
            match pipe.write_all(secret.expose().as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    kill_group(&mut child);
                    return Err(RunError::Io(e));
                }
            }
            drop(pipe); // close stdin: EOF for the child
        }

        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(&mut child);
                    let (_, stderr) = collect(&rx, Instant::now() + Duration::from_millis(500));
                    return Err(RunError::Timeout(stderr.unwrap_or_default()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    kill_group(&mut child);
                    return Err(RunError::Io(e));
                }
            }
        };

        // The streams close when the child exits, unless it left a process holding them:
        // then what arrived is not known to be all of it (a `get` cut short must not read as
        // "absent"), so that is an error, and the group is stopped.
        let until = deadline.min(Instant::now() + EOF_GRACE);
        match collect(&rx, until) {
            (Some(stdout), Some(stderr)) => Ok(Captured {
                status,
                stdout,
                stderr,
            }),
            (_, stderr) => {
                kill_group(&mut child);
                let stderr = match stderr {
                    Some(s) => s,
                    None => collect(&rx, Instant::now() + Duration::from_millis(500))
                        .1
                        .unwrap_or_default(),
                };
                Err(RunError::Unfinished(status, stderr))
            }
        }
    }

    fn describe_argv(argv: &[String]) -> String {
        argv.iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The error of a run that did not give a status: spawn, I/O, timeout, unfinished output.
    /// `secret`: what went to its stdin (redacted from what is shown).
    fn run_failure(
        &self,
        e: RunError,
        argv: &[String],
        which: &str,
        secret: Option<&Secret>,
    ) -> (String, String) {
        let shown = Self::describe_argv(argv);
        let stderr_of = |bytes: &[u8]| match excerpt(bytes, secret, EXCERPT_LINES) {
            Some(text) => format!("\n  stderr:\n{text}"),
            None => String::new(),
        };
        match e {
            RunError::Spawn(e) => (
                format!("cannot start `{}`: {e}", argv[0]),
                spawn_hint(&e, which),
            ),
            RunError::Io(e) => (
                format!("`{shown}` failed: {e}"),
                format!("check the {which} command (it must read the secret from stdin)"),
            ),
            RunError::Timeout(stderr) => (
                format!(
                    "`{shown}` did not finish within {} s; it and every process it started \
                     were stopped{}",
                    self.timeout.as_secs_f32(),
                    stderr_of(&stderr)
                ),
                format!(
                    "the {which} command must exit on its own; check that it does not wait for \
                     a prompt, a lock or an unlocked session (or raise `timeout_seconds`)"
                ),
            ),
            RunError::Unfinished(status, stderr) => (
                format!(
                    "`{shown}` exited ({}) but its output did not end: a process it started \
                     still held it, and was stopped; its result is not known{}",
                    status_text(status),
                    stderr_of(&stderr)
                ),
                format!(
                    "the {which} command must not leave a background process holding its \
                     stdout/stderr (redirect a daemon's output, e.g. `>/dev/null 2>&1 &`)"
                ),
            ),
        }
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// A captured stream; `None` when it did not reach end-of-file in time.
type Ended = Option<Zeroizing<Vec<u8>>>;

/// Wait until `until` for both streams' end-of-file (stdout, stderr).
fn collect(rx: &mpsc::Receiver<(Stream, Zeroizing<Vec<u8>>)>, until: Instant) -> (Ended, Ended) {
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let wait = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((Stream::Out, bytes)) => stdout = Some(bytes),
            Ok((Stream::Err, bytes)) => stderr = Some(bytes),
            Err(_) => break,
        }
    }
    (stdout, stderr)
}

fn spawn_reader<R: Read + Send + 'static>(
    pipe: Option<R>,
    which: Stream,
    tx: mpsc::Sender<(Stream, Zeroizing<Vec<u8>>)>,
) {
    let Some(mut pipe) = pipe else {
        let _ = tx.send((which, Zeroizing::new(Vec::new())));
        return;
    };
    std::thread::spawn(move || {
        // Sized once so the buffer never reallocates (a reallocation would leave an
        // un-zeroized copy of what a `get` printed).
        let mut out = Zeroizing::new(Vec::with_capacity(CAPTURE_LIMIT));
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = CAPTURE_LIMIT - out.len();
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        buf.zeroize();
        let _ = tx.send((which, out));
    });
}

/// Stop the child and everything in its process group (it was started with
/// `process_group(0)`, so the group id is its pid). `rustix::process::kill_process_group` is
/// a safe wrapper of `kill(-pgid, SIGKILL)` (the crate forbids `unsafe`; rustix is already in
/// the dependency tree through keyring's D-Bus stack). The group id stays reserved while any
/// member lives, so it cannot name someone else's processes.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Names of the variables whose value contains the secret (they are removed from the child's
/// environment; normally there are none, the secret is never put in the environment).
pub(crate) fn env_holding<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl IntoIterator<Item = (K, V)>,
    secret: &Secret,
) -> Vec<K> {
    let needle = secret.expose().as_bytes();
    if needle.is_empty() {
        return Vec::new();
    }
    vars.into_iter()
        .filter(|(_, v)| {
            v.as_ref()
                .as_encoded_bytes()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|(k, _)| k)
        .collect()
}

fn status_text(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status}"),
    }
}

/// The failing child's streams, redacted, for an error message.
fn output_report(captured: &Captured, secret: Option<&Secret>, show_stdout: bool) -> String {
    let mut parts = Vec::new();
    match excerpt(&captured.stderr, secret, EXCERPT_LINES) {
        Some(text) => parts.push(format!("\n  stderr:\n{text}")),
        None => parts.push("\n  stderr: (empty)".into()),
    }
    if show_stdout {
        if let Some(text) = excerpt(&captured.stdout, secret, EXCERPT_LINES) {
            parts.push(format!("\n  stdout:\n{text}"));
        }
    } else if !captured.stdout.is_empty() {
        parts.push(format!(
            "\n  stdout: {} bytes, not shown (it may hold a secret)",
            captured.stdout.len()
        ));
    }
    parts.concat()
}

impl Vault for CommandVault {
    fn describe(&self) -> String {
        format!("command `{}`", Self::describe_argv(&self.push))
    }

    fn put(&self, path: &str, secret: &Secret) -> Result<(), VaultError> {
        let argv = Self::expand(&self.push, path);
        let shown = Self::describe_argv(&argv);
        let fail = |reason: String, hint: String| VaultError::WriteFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason,
            hint,
        };
        let captured = match self.run(&argv, Some(secret)) {
            Ok(c) => c,
            Err(e) => {
                let (reason, hint) = self.run_failure(e, &argv, "push", Some(secret));
                return Err(fail(reason, hint));
            }
        };
        if !captured.status.success() {
            return Err(fail(
                format!(
                    "`{shown}` failed with {}{}",
                    status_text(captured.status),
                    output_report(&captured, Some(secret), true)
                ),
                "fix the push command (its output above is redacted); the secret goes on its \
                 stdin, so it must accept `-`/stdin input"
                    .into(),
            ));
        }
        if contains_fragment(&captured.stderr, secret)
            || contains_fragment(&captured.stdout, secret)
        {
            tracing::warn!(
                "the vault push command `{shown}` echoed (part of) the secret on its output; \
                 nothing was shown, but check that tool's own logs"
            );
        }
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let Some(template) = &self.get else {
            return Ok(None);
        };
        let argv = Self::expand(template, path);
        let shown = Self::describe_argv(&argv);
        let backend = format!("command `{}`", Self::describe_argv(template));
        let fail = |reason: String, hint: String| VaultError::ReadFailed {
            backend: backend.clone(),
            path: path.to_owned(),
            reason,
            hint,
        };
        let captured = match self.run(&argv, None) {
            Ok(c) => c,
            Err(e) => {
                let (reason, hint) = self.run_failure(e, &argv, "get", None);
                return Err(fail(reason, hint));
            }
        };
        if !captured.status.success() {
            let reason = format!(
                "`{shown}` failed with {}{}",
                status_text(captured.status),
                output_report(&captured, None, false)
            );
            return match self.is_missing(&captured) {
                Some(true) => Ok(None),
                Some(false) => Err(fail(
                    reason,
                    format!(
                        "this is not the vault's missing-entry rule ({}), so the vault is taken \
                         to be broken or locked, not empty; fix it (run the get command by \
                         hand) or correct `missing:`",
                        self.describe_rule()
                    ),
                )),
                None => Err(VaultError::ReadUnsure {
                    backend: backend.clone(),
                    path: path.to_owned(),
                    reason,
                    hint: "the vault declares no missing-entry rule, so a failing get cannot be \
                           told from a missing entry: add `missing: {exit: [CODE], stderr: \
                           \"TEXT\"}` with what the CLI prints for an entry that does not exist \
                           (or use a `preset`)"
                        .into(),
                }),
            };
        }
        let Captured { mut stdout, .. } = captured;
        // ONE trailing newline, as `echo`/`print` add; anything else is part of the output
        // and must fail the shape check rather than be silently cleaned up.
        if stdout.last() == Some(&b'\n') {
            stdout.pop();
            if stdout.last() == Some(&b'\r') {
                stdout.pop();
            }
        }
        if stdout.is_empty() {
            return Ok(None);
        }
        // Copied once into an exactly-sized buffer; the capture buffer is zeroized on drop.
        let value = match std::str::from_utf8(&stdout) {
            Ok(text) => Secret::new(text.to_owned()),
            Err(_) => {
                return Err(VaultError::ReadShape {
                    backend,
                    path: path.to_owned(),
                    source: crate::secret::SecretShapeError::Charset { position: 0 },
                    hint: "the get command printed bytes that are not UTF-8 text; it must print \
                           only the secret"
                        .into(),
                });
            }
        };
        if let Err(source) = check_shape(&value) {
            return Err(VaultError::ReadShape {
                backend,
                path: path.to_owned(),
                source,
                hint: format!(
                    "`{shown}` must print only the secret on stdout. Is its stderr mixed in \
                     (`2>&1`, a wrapper that merges streams)? A warning glued to the secret is \
                     how a 270-character \"secret\" got into the vault once"
                ),
            });
        }
        Ok(Some(value))
    }

    fn can_read(&self) -> bool {
        self.get.is_some()
    }

    fn can_send(&self) -> bool {
        self.send.is_some()
    }

    fn send(&self, path: &str, to: &str, secret: &Secret) -> Result<(), VaultError> {
        let Some(template) = &self.send else {
            return Err(VaultError::Config {
                backend: "command",
                message: format!("{} has no `send:` command", self.describe()),
                hint: "add `send: [PROGRAM, …, \"{path}\", \"{to}\"]` to the vault's declaration \
                       in defaults.yaml (the secret goes on its stdin)"
                    .into(),
            });
        };
        let argv = Self::expand_send(template, path, to);
        let shown = Self::describe_argv(&argv);
        let backend = format!("command `{}`", Self::describe_argv(template));
        let fail = |message: String, hint: String| VaultError::Backend {
            backend: backend.clone(),
            message,
            hint: Some(hint),
        };
        let captured = match self.run(&argv, Some(secret)) {
            Ok(c) => c,
            Err(e) => {
                let (reason, hint) = self.run_failure(e, &argv, "send", Some(secret));
                return Err(fail(reason, hint));
            }
        };
        if !captured.status.success() {
            // Its stdout may hold a link to the secret (a Bitwarden Send URL): never shown.
            return Err(fail(
                format!(
                    "`{shown}` failed with {}{}",
                    status_text(captured.status),
                    output_report(&captured, Some(secret), false)
                ),
                "fix the send command (its stderr above is redacted); run it by hand with the \
                 secret on stdin to see why it fails"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn spawn_hint(e: &io::Error, which: &str) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!(
            "install the program or fix `vault.{which}[0]` (a bare name is looked up on PATH; \
             a relative path is taken from the manifest's directory)"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("make `vault.{which}[0]` executable (chmod +x)")
        }
        _ => format!("check `vault.{which}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_holding_finds_values_containing_the_secret() {
        let s = Secret::new("Abc8Q~xYz.0123456789_abcdefghij-KLMNOPQRSTU".into());
        let vars = vec![
            ("HOME", "/home/op".to_string()),
            ("LEAK", s.expose().to_string()),
            ("WRAPPED", format!("x={}", s.expose())),
            ("PART", s.expose()[..20].to_string()),
        ];
        assert_eq!(env_holding(vars, &s), vec!["LEAK", "WRAPPED"]);
    }

    #[test]
    fn path_is_substituted_inside_each_argument_only() {
        let argv = CommandVault::expand(
            &[
                "push".into(),
                "{path}".into(),
                "--to={path}".into(),
                "-".into(),
            ],
            "a b/c;d",
        );
        assert_eq!(argv, vec!["push", "a b/c;d", "--to=a b/c;d", "-"]);
    }

    #[test]
    fn send_substitutes_in_one_pass() {
        let argv = CommandVault::expand_send(
            &["send".into(), "{path}".into(), "--to={to}".into()],
            "svc/axe/x",
            "{path}@example.com",
        );
        assert_eq!(argv, vec!["send", "svc/axe/x", "--to={path}@example.com"]);
    }

    #[test]
    fn the_allow_list_keeps_azure_credentials_out() {
        assert!(env_allowed("PATH", &[]));
        assert!(env_allowed("LC_ALL", &[]));
        assert!(env_allowed("PASSWORD_STORE_DIR", &[]));
        assert!(env_allowed("BW_SESSION", &[]));
        assert!(env_allowed("OP_SESSION_my", &[]));
        assert!(env_allowed("VAULT_TOKEN", &[]));
        assert!(!env_allowed("AZURE_CLIENT_SECRET", &[]));
        assert!(!env_allowed(
            "AZURE_CLIENT_SECRET",
            &["AZURE_CLIENT_SECRET".into()]
        ));
        assert!(!env_allowed("GITHUB_TOKEN", &[]));
        assert!(env_allowed("AXE_PROFILE", &["AXE_PROFILE".into()]));
        assert!(env_name_problem("AZURE_CLIENT_SECRET").is_some());
        assert!(env_name_problem("AZURE_CONFIG_DIR").is_none());
        assert!(env_name_problem("1X").is_some());
    }

    #[test]
    fn presets_fill_what_is_not_written() {
        let c = CommandConfig {
            preset: Some(Preset::Pass),
            get: Some(argv(&["my-pass", "show", "{path}"])),
            ..CommandConfig::default()
        };
        assert_eq!(c.effective_push().unwrap()[0], "pass");
        assert_eq!(c.effective_get().unwrap()[0], "my-pass");
        assert_eq!(c.effective_missing().unwrap().exit, vec![1]);
        assert!(CommandConfig::default().effective_push().is_none());
    }

    #[test]
    fn empty_templates_are_rejected() {
        assert!(matches!(
            CommandVault::new(vec![], None, Path::new(".")),
            Err(VaultError::Config { .. })
        ));
        assert!(matches!(
            CommandVault::new(vec!["x".into()], Some(vec![" ".into()]), Path::new(".")),
            Err(VaultError::Config { .. })
        ));
        let v = CommandVault::new(
            vec!["./push.sh".into(), "{path}".into()],
            None,
            Path::new("/m"),
        )
        .unwrap();
        assert_eq!(v.push[0], "/m/push.sh");
        assert!(!v.can_read());
    }
}
