//! The `dotenv` backend: `KEY=value` in a `.env` file (KEY = the service's secret env name,
//! e.g. `AZURE_BLUEPRINT_MCP_CLIENT_SECRET`). The vault path is not used: the file holds one
//! value per key.
//!
//! Upsert rules: the first assignment of KEY (optionally `export KEY=…`) is replaced in place,
//! keeping its `export ` prefix and its line ending; later assignments of the same KEY are
//! removed (a stale duplicate line is exactly the kind of leftover the seeds' incident log
//! warns about, and some readers take the last one); every other byte of the file — comments,
//! blank lines, other keys, a missing final newline — stays as it was. Without an assignment
//! the line is appended. The write is atomic with mode 0600 ([`super::atomic`]).
//!
//! Quoting: Entra's alphabet (`A–Z a–z 0–9 ~ . _ -`) needs none in Compose's env-file syntax
//! (<https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/#env-file-syntax>),
//! so the value is written bare — except a leading `~`, which a shell that sources the file
//! would tilde-expand in an assignment; then (and for any other character outside that
//! alphabet) it is written in single quotes, which Compose, python-dotenv and sh all read
//! literally. A value that cannot be single-quoted (a `'`, a newline) is refused.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{Vault, VaultError};
use crate::secret::Secret;

/// A `.env` file holding one key.
#[derive(Debug, Clone)]
pub struct DotenvVault {
    path: PathBuf,
    key: String,
}

impl DotenvVault {
    /// `path` must already be resolved; `key` is the env name to upsert.
    pub fn new(path: PathBuf, key: &str) -> Result<Self, VaultError> {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(VaultError::Config {
                backend: "dotenv",
                message: format!("`{key}` is not a valid environment variable name"),
                hint: "the secret env name must match [A-Za-z_][A-Za-z0-9_]*".into(),
            });
        }
        Ok(Self {
            path,
            key: key.to_owned(),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Split into lines, each keeping its `\n`.
fn lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content.split_inclusive(|b| *b == b'\n')
}

/// If `line` assigns `key`, the byte offset where its value starts and whether it had `export`.
fn assignment<'a>(line: &'a [u8], key: &str) -> Option<(usize, &'a [u8])> {
    let start = line.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let mut rest = &line[start..];
    let mut offset = start;
    if let Some(after) = rest.strip_prefix(b"export")
        && after.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
    {
        let spaces = after
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        offset += 6 + spaces;
        rest = &after[spaces..];
    }
    let after_key = rest.strip_prefix(key.as_bytes())?;
    let spaces = after_key
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    if after_key.get(spaces) != Some(&b'=') {
        return None;
    }
    let value_start = offset + key.len() + spaces + 1;
    Some((value_start, &line[..start]))
}

/// The line ending of `line` (`\r\n`, `\n`, or none).
fn ending(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else if line.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

fn bare_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '~' | '.' | '_' | '-')
}

/// Append the value as written in the file (bare or single-quoted).
fn push_value(out: &mut Vec<u8>, value: &str) -> Result<(), &'static str> {
    if value.chars().any(|c| c == '\'' || c.is_control()) {
        return Err(
            "the value contains a quote or a control character, which a .env line cannot hold",
        );
    }
    if value.chars().all(bare_ok) && !value.starts_with('~') && !value.is_empty() {
        out.extend_from_slice(value.as_bytes());
    } else {
        out.push(b'\'');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\'');
    }
    Ok(())
}

/// Parse the value part of an assignment line (after `=`), into a zeroizing buffer.
fn parse_value(raw: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut raw = raw;
    while let Some(r) = raw.strip_suffix(b"\n").or_else(|| raw.strip_suffix(b"\r")) {
        raw = r;
    }
    let lead = raw.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    let raw = &raw[lead..];
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
    match raw.first() {
        Some(b'\'') => {
            let body = &raw[1..];
            let end = body.iter().position(|b| *b == b'\'').unwrap_or(body.len());
            out.extend_from_slice(&body[..end]);
        }
        Some(b'"') => {
            let mut escaped = false;
            for &b in &raw[1..] {
                match (escaped, b) {
                    (true, b'n') => out.push(b'\n'),
                    (true, other) => out.push(other),
                    (false, b'\\') => {
                        escaped = true;
                        continue;
                    }
                    (false, b'"') => break,
                    (false, other) => out.push(other),
                }
                escaped = false;
            }
        }
        _ => {
            // Unquoted: a ` #` starts a comment; surrounding blanks are not part of the value.
            let mut end = raw.len();
            for i in 1..raw.len() {
                if raw[i] == b'#' && matches!(raw[i - 1], b' ' | b'\t') {
                    end = i;
                    break;
                }
            }
            let value = &raw[..end];
            let trail = value
                .iter()
                .rev()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            out.extend_from_slice(&value[..value.len() - trail]);
        }
    }
    out
}

impl Vault for DotenvVault {
    fn describe(&self) -> String {
        format!("dotenv {} ({})", self.path.display(), self.key)
    }

    fn put(&self, path: &str, secret: &Secret) -> Result<(), VaultError> {
        let fail = |reason: String, hint: String| VaultError::WriteFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason,
            hint,
        };
        // Other writers of the same .env wait (no lost update); best effort, as for `file`.
        let _lock = super::atomic::lock_beside(&self.path).ok();
        let old = self.read().map_err(|e| {
            fail(
                format!("cannot read {}: {e}", self.path.display()),
                "check the path and its permissions (`vault.path`)".into(),
            )
        })?;
        let old: &[u8] = old.as_deref().map(Vec::as_slice).unwrap_or_default();
        // Sized up front so the buffer holding the secret never reallocates.
        let mut out = Zeroizing::new(Vec::with_capacity(
            old.len() + self.key.len() + secret.expose().len() + 16,
        ));
        let mut done = false;
        for line in lines(old) {
            match assignment(line, &self.key) {
                Some((value_start, _)) if !done => {
                    out.extend_from_slice(&line[..value_start]);
                    push_value(&mut out, secret.expose()).map_err(|why| {
                        fail(why.into(), "store a client secret from addPassword".into())
                    })?;
                    out.extend_from_slice(ending(line));
                    done = true;
                }
                Some(_) => {
                    tracing::warn!(
                        "{}: removed a duplicate {} line",
                        self.path.display(),
                        self.key
                    );
                }
                None => out.extend_from_slice(line),
            }
        }
        if !done {
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(self.key.as_bytes());
            out.push(b'=');
            push_value(&mut out, secret.expose())
                .map_err(|why| fail(why.into(), "store a client secret from addPassword".into()))?;
            out.push(b'\n');
        }
        super::atomic::write_atomic(&self.path, &out).map_err(|e| {
            fail(
                format!("cannot write {}: {e}", self.path.display()),
                "check that the directory exists and is writable; the file was left as it was"
                    .into(),
            )
        })
    }

    fn get(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let content = self.read().map_err(|e| VaultError::ReadFailed {
            backend: self.describe(),
            path: path.to_owned(),
            reason: format!("cannot read {}: {e}", self.path.display()),
            hint: "check the path and its permissions (`vault.path`)".into(),
        })?;
        let Some(content) = content else {
            return Ok(None);
        };
        // The last assignment wins, as when the file is sourced or loaded by Compose.
        let Some((line, value_start)) = lines(&content)
            .filter_map(|line| assignment(line, &self.key).map(|(v, _)| (line, v)))
            .last()
        else {
            return Ok(None);
        };
        let value = parse_value(&line[value_start..]);
        if value.is_empty() {
            return Ok(None);
        }
        match std::str::from_utf8(&value) {
            Ok(text) => Ok(Some(Secret::new(text.to_owned()))),
            Err(_) => Err(VaultError::ReadShape {
                backend: self.describe(),
                path: path.to_owned(),
                source: crate::secret::SecretShapeError::Charset { position: 0 },
                hint: format!(
                    "the {} line in {} is not UTF-8 text; store the secret again",
                    self.key,
                    self.path.display()
                ),
            }),
        }
    }

    fn can_read(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_assignments() {
        assert_eq!(assignment(b"KEY=v\n", "KEY").map(|x| x.0), Some(4));
        assert_eq!(
            assignment(b"  export KEY = v\n", "KEY").map(|x| x.0),
            Some(14)
        );
        assert_eq!(assignment(b"KEYS=v\n", "KEY"), None);
        assert_eq!(assignment(b"# KEY=v\n", "KEY"), None);
        assert_eq!(assignment(b"exportKEY=v\n", "KEY"), None);
    }

    #[test]
    fn parses_values() {
        assert_eq!(&parse_value(b"abc\n")[..], b"abc");
        assert_eq!(&parse_value(b" abc  # note\r\n")[..], b"abc");
        assert_eq!(&parse_value(b"'a b#c'\n")[..], b"a b#c");
        assert_eq!(&parse_value(b"\"a\\\"b\"\n")[..], b"a\"b");
        assert_eq!(&parse_value(b"a#b\n")[..], b"a#b");
    }

    #[test]
    fn quotes_only_when_needed() {
        let mut out = Vec::new();
        push_value(&mut out, "abc~DEF.ghi_jkl-0").unwrap();
        assert_eq!(out, b"abc~DEF.ghi_jkl-0");
        out.clear();
        push_value(&mut out, "~abc").unwrap();
        assert_eq!(out, b"'~abc'");
        out.clear();
        push_value(&mut out, "a$b").unwrap();
        assert_eq!(out, b"'a$b'");
        assert!(push_value(&mut out, "a'b").is_err());
        assert!(push_value(&mut out, "a\nb").is_err());
    }
}
