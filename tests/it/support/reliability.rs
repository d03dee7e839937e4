//! Shared by `reliability::kill`, `reliability::leak_audit` and `bad_inputs`: the binary as
//! a child process with the environment `harness::Harness::run` uses (plus a `TMPDIR`
//! of the test's own), and the secret scanner.

use std::collections::HashSet;
use std::path::Path;

use entraform::emulator::RunningEmulator;
use entraform::secret::Secret;

use crate::support::bin::Bin;
pub use crate::support::files_under;

/// The shortest run of a secret that counts as a leak: a truncated or wrapped secret still is.
pub const LEAK_WINDOW: usize = 12;

/// The binary pointed at `emu`, run in `cwd`, signed in as its full operator, with trace logs
/// and `TMPDIR` under `tmp` (so its temp files are scanned too). Not yet started.
pub fn command(
    emu: &RunningEmulator,
    ca: &Path,
    cwd: &Path,
    tmp: &Path,
    args: &[&str],
) -> tokio::process::Command {
    std::fs::create_dir_all(tmp).unwrap();
    Bin::new(emu, ca, cwd, args)
        .full_operator(emu)
        .trace()
        .env("TMPDIR", tmp)
        .command()
}

/// Finds any [`LEAK_WINDOW`]-byte run of any known secret, and anything shaped like an Entra
/// client secret (`abc1Q~` + 34 characters) even when nobody told us its value (the sandbox's
/// in-process emulator issues secrets the test cannot ask for).
pub struct Scanner {
    windows: HashSet<Vec<u8>>,
    hints: Vec<(Vec<u8>, String)>,
    count: usize,
    shape: regex::bytes::Regex,
}

/// One leak: where, which secret (by hint, never the value), and the offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub place: String,
    pub hint: String,
    pub offset: usize,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {}: a secret (hint {})",
            self.place, self.offset, self.hint
        )
    }
}

impl Scanner {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut windows = HashSet::new();
        let mut hints = Vec::new();
        let mut count = 0;
        for s in secrets {
            let bytes = s.expose().as_bytes();
            if bytes.len() < LEAK_WINDOW {
                continue;
            }
            count += 1;
            for w in bytes.windows(LEAK_WINDOW) {
                windows.insert(w.to_vec());
                hints.push((w.to_vec(), s.hint()));
            }
        }
        Scanner {
            windows,
            hints,
            count,
            shape: regex::bytes::Regex::new(r"[A-Za-z0-9]{3}[1-9]Q~[A-Za-z0-9~._-]{34}").unwrap(),
        }
    }

    /// How many secrets it looks for.
    pub fn secrets(&self) -> usize {
        self.count
    }

    /// Every leak in `haystack` (at most one per secret window start run).
    pub fn scan(&self, place: &str, haystack: &[u8]) -> Vec<Leak> {
        let mut out = Vec::new();
        if haystack.len() >= LEAK_WINDOW {
            let mut i = 0;
            while i + LEAK_WINDOW <= haystack.len() {
                let w = &haystack[i..i + LEAK_WINDOW];
                if self.windows.contains(w) {
                    let hint = self
                        .hints
                        .iter()
                        .find(|(win, _)| win.as_slice() == w)
                        .map(|(_, h)| h.clone())
                        .unwrap_or_default();
                    out.push(Leak {
                        place: place.to_string(),
                        hint,
                        offset: i,
                    });
                    i += LEAK_WINDOW; // one report per run
                    continue;
                }
                i += 1;
            }
        }
        for m in self.shape.find_iter(haystack) {
            if !out
                .iter()
                .any(|l| l.offset <= m.start() && m.start() < l.offset + 64)
            {
                out.push(Leak {
                    place: place.to_string(),
                    hint: String::from_utf8_lossy(&m.as_bytes()[..3]).into_owned(),
                    offset: m.start(),
                });
            }
        }
        out
    }
}
