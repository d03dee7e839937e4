//! The `command` backend: external programs (e.g. `axe secret push {path} -`).
//!
//! - No shell: the argv template is run as given, `{path}` substituted inside each argument.
//!   A program containing a `/` is resolved against the manifest's directory (`~/` = home); a
//!   bare name is looked up on `PATH`. The child runs in the manifest's directory.
//! - The secret goes to the child's stdin only (exactly its bytes, no newline), then stdin is
//!   closed. It is never in an argument; the child's environment is the parent's minus any
//!   variable whose value contains the secret.
//! - stdout and stderr are captured separately (never mixed with each other or with the
//!   secret) with a timeout, and shown only on failure, redacted ([`super::redact`]).
//! - `get`: exit 0 with output → the value (ONE trailing newline trimmed, nothing else), which
//!   must look like a client secret, else an error that says so (the 270-character incident:
//!   a warning glued to the secret). Exit 0 with empty output → absent. A non-zero exit is an
//!   error, not "absent": tools disagree on how they report a missing entry, and treating a
//!   broken or locked vault as empty would make `secrets` and verification lie.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use super::redact::{contains_fragment, excerpt};
use super::{Vault, VaultError};
use crate::secret::{Secret, check_shape};

/// How long a push or get may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this much of each stream is kept (the rest is read and dropped).
const CAPTURE_LIMIT: usize = 256 * 1024;
/// Lines of a failing child's output shown in the error.
const EXCERPT_LINES: usize = 20;

/// External push/get commands.
#[derive(Debug, Clone)]
pub struct CommandVault {
    push: Vec<String>,
    get: Option<Vec<String>>,
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
        let push = resolve_argv(push, base_dir, "push")?;
        let get = get.map(|g| resolve_argv(g, base_dir, "get")).transpose()?;
        Ok(Self {
            push,
            get,
            dir: base_dir.to_path_buf(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Override the time limit of each command.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn expand(template: &[String], path: &str) -> Vec<String> {
        template.iter().map(|a| a.replace("{path}", path)).collect()
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
    Timeout,
}

impl CommandVault {
    /// Run `argv`, feeding `stdin` (the secret) if given.
    fn run(&self, argv: &[String], stdin: Option<&Secret>) -> Result<Captured, RunError> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&self.dir)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(secret) = stdin {
            for key in env_holding(std::env::vars_os(), secret) {
                cmd.env_remove(key);
            }
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
                    kill(&mut child);
                    return Err(RunError::Io(e));
                }
            }
            drop(pipe); // close stdin: EOF for the child
        }

        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill(&mut child);
                    return Err(RunError::Timeout);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    kill(&mut child);
                    return Err(RunError::Io(e));
                }
            }
        };

        // The streams close when the child exits (unless it left a grandchild holding them:
        // then take what arrived by the deadline).
        let mut stdout = Zeroizing::new(Vec::new());
        let mut stderr = Zeroizing::new(Vec::new());
        for _ in 0..2 {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(200));
            match rx.recv_timeout(wait) {
                Ok((Stream::Out, bytes)) => stdout = bytes,
                Ok((Stream::Err, bytes)) => stderr = bytes,
                Err(_) => break,
            }
        }
        Ok(Captured {
            status,
            stdout,
            stderr,
        })
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
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
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

fn kill(child: &mut Child) {
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
            Err(RunError::Spawn(e)) => {
                return Err(fail(
                    format!("cannot start `{}`: {e}", argv[0]),
                    spawn_hint(&e, "push"),
                ));
            }
            Err(RunError::Io(e)) => {
                return Err(fail(
                    format!("`{shown}` failed: {e}"),
                    "check that the push command reads the secret from stdin".into(),
                ));
            }
            Err(RunError::Timeout) => {
                return Err(fail(
                    format!(
                        "`{shown}` did not finish within {} s and was stopped",
                        self.timeout.as_secs_f32()
                    ),
                    "the push command must read the secret from stdin and exit; check that it \
                     does not wait for a prompt or a lock"
                        .into(),
                ));
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
            Err(RunError::Spawn(e)) => {
                return Err(fail(
                    format!("cannot start `{}`: {e}", argv[0]),
                    spawn_hint(&e, "get"),
                ));
            }
            Err(RunError::Io(e)) => {
                return Err(fail(
                    format!("`{shown}` failed: {e}"),
                    "check the get command".into(),
                ));
            }
            Err(RunError::Timeout) => {
                return Err(fail(
                    format!(
                        "`{shown}` did not finish within {} s and was stopped",
                        self.timeout.as_secs_f32()
                    ),
                    "the get command must print the secret and exit; check that it does not \
                     wait for a prompt or a lock"
                        .into(),
                ));
            }
        };
        if !captured.status.success() {
            return Err(fail(
                format!(
                    "`{shown}` failed with {}{}",
                    status_text(captured.status),
                    output_report(&captured, None, false)
                ),
                "a get command must exit 0: printing the secret, or nothing when the entry does \
                 not exist. Run it by hand to see why it fails"
                    .into(),
            ));
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
