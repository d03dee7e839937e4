//! Redaction of a child's output before it may appear in an error.
//!
//! Two rules, applied together:
//! - with a known secret: every occurrence of the secret, and of any substring of it at least
//!   [`MIN_FRAGMENT`] characters long, becomes `***` (a tool may print part of its input, e.g.
//!   a truncated preview);
//! - always: every run of at least [`SHAPE_RUN`] characters of Entra's secret alphabet becomes
//!   `***` — that is anything long enough to contain a client secret, so output of a command
//!   whose secret we do not know (a failing `get`) cannot leak one either. GUIDs (36) survive.
//!
//! [`excerpt`] also strips terminal control sequences ([`strip_controls`]) — a vault CLI's
//! output must not move the cursor, retitle the window or hide text on the operator's
//! terminal. They are stripped before the redaction runs, so a secret split by escape codes is
//! still masked and the text shown holds neither.

use std::collections::HashSet;

use crate::secret::{SECRET_CHARSET_EXTRA, SECRET_LEN_MIN, Secret};

/// Shortest fragment of a known secret that is redacted.
pub const MIN_FRAGMENT: usize = 8;
/// Shortest run of secret-alphabet characters that is redacted even without a known secret.
pub const SHAPE_RUN: usize = SECRET_LEN_MIN;

/// The mask.
pub const MASK: &str = "***";

fn in_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || SECRET_CHARSET_EXTRA.contains(&c)
}

/// Redact `text` (see the module docs). Consecutive redacted characters collapse into one `***`.
pub fn redact(text: &str, secret: Option<&Secret>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = vec![false; chars.len()];

    if let Some(secret) = secret {
        let secret_chars: Vec<char> = secret.expose().chars().collect();
        if secret_chars.len() >= MIN_FRAGMENT {
            // Every MIN_FRAGMENT-window of the secret; any longer fragment in the text is a
            // chain of overlapping windows, so marking each matching window masks all of it.
            let windows: HashSet<&[char]> = secret_chars.windows(MIN_FRAGMENT).collect();
            for start in 0..chars.len().saturating_sub(MIN_FRAGMENT - 1) {
                if windows.contains(&chars[start..start + MIN_FRAGMENT]) {
                    masked[start..start + MIN_FRAGMENT].fill(true);
                }
            }
        } else if !secret_chars.is_empty() {
            // A short value (not a real client secret): mask exact occurrences only.
            for start in 0..chars.len().saturating_sub(secret_chars.len() - 1) {
                if chars[start..start + secret_chars.len()] == secret_chars[..] {
                    masked[start..start + secret_chars.len()].fill(true);
                }
            }
        }
    }

    let mut run_start = None;
    for i in 0..=chars.len() {
        let alpha = i < chars.len() && in_alphabet(chars[i]);
        match (alpha, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                if i - start >= SHAPE_RUN {
                    masked[start..i].fill(true);
                }
                run_start = None;
            }
            _ => {}
        }
    }

    let mut out = String::with_capacity(text.len());
    let mut previous_masked = false;
    for (c, m) in chars.iter().zip(&masked) {
        if *m {
            if !previous_masked {
                out.push_str(MASK);
            }
        } else {
            out.push(*c);
        }
        previous_masked = *m;
    }
    out
}

/// `text` without terminal control sequences: ESC sequences (CSI `ESC [ … final`, OSC/DCS/
/// APC/PM/SOS strings up to BEL or `ESC \\`, other `ESC` + intermediates + final), the C1 CSI
/// (U+009B), and every other C0/C1 control character and DEL, except newline and tab.
/// (ECMA-48 §5.3–5.6: <https://ecma-international.org/publications-and-standards/standards/ecma-48/>.)
pub fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let csi = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        // parameters and intermediates 0x20–0x3F, then one final byte 0x40–0x7E
        while chars
            .next_if(|c| ('\u{20}'..='\u{3f}').contains(c))
            .is_some()
        {}
        chars.next_if(|c| ('\u{40}'..='\u{7e}').contains(c));
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\u{1b}' => match chars.peek().copied() {
                Some('[') => {
                    chars.next();
                    csi(&mut chars);
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    // a control string: up to BEL, ST (`ESC \\`) or the C1 ST
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' || n == '\u{9c}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                Some(_) => {
                    while chars
                        .next_if(|c| ('\u{20}'..='\u{2f}').contains(c))
                        .is_some()
                    {}
                    chars.next_if(|c| ('\u{30}'..='\u{7e}').contains(c));
                }
                None => {}
            },
            '\u{9b}' => csi(&mut chars),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether `bytes` contain the secret or a fragment of it of at least [`MIN_FRAGMENT`] bytes.
pub fn contains_fragment(bytes: &[u8], secret: &Secret) -> bool {
    let needle = secret.expose().as_bytes();
    let width = MIN_FRAGMENT.min(needle.len());
    if width == 0 {
        return false;
    }
    let windows: HashSet<&[u8]> = needle.windows(width).collect();
    bytes.windows(width).any(|w| windows.contains(w))
}

/// A child's captured stream, redacted and cut to its last `max_lines` lines / `max_chars`
/// characters, indented for an error message. Empty output gives `None`.
pub fn excerpt(bytes: &[u8], secret: Option<&Secret>, max_lines: usize) -> Option<String> {
    const MAX_CHARS: usize = 2000;
    let text = strip_controls(&String::from_utf8_lossy(bytes));
    let text = text.trim_end();
    if text.trim().is_empty() {
        return None;
    }
    let redacted = redact(text, secret);
    let lines: Vec<&str> = redacted.lines().collect();
    let skipped = lines.len().saturating_sub(max_lines);
    let mut out = String::new();
    if skipped > 0 {
        out.push_str(&format!("    | … ({skipped} earlier lines)\n"));
    }
    for line in &lines[skipped..] {
        let line: String = if line.chars().count() > MAX_CHARS {
            let cut: String = line.chars().take(MAX_CHARS).collect();
            format!("{cut} …")
        } else {
            (*line).to_owned()
        };
        out.push_str("    | ");
        out.push_str(&line);
        out.push('\n');
    }
    Some(out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "Abc8Q~xYz.0123456789_abcdefghij-KLMNOPQRSTU";

    #[test]
    fn masks_the_secret_and_its_fragments() {
        let s = Secret::new(S.into());
        assert_eq!(redact(&format!("got {S} here"), Some(&s)), "got *** here");
        // a 10-char fragment from the middle, glued to other text
        let frag = &S[10..20];
        let out = redact(&format!("value=[{frag}]!"), Some(&s));
        assert_eq!(out, "value=[***]!");
        // 7 characters are not enough to mask
        let short = &S[0..7];
        assert_eq!(redact(short, Some(&s)), short);
        // two overlapping fragments
        let out = redact(&format!("{}:{}", &S[0..12], &S[5..30]), Some(&s));
        assert_eq!(out, "***:***");
    }

    #[test]
    fn masks_secret_shaped_runs_without_a_secret() {
        let out = redact(
            &format!("error: token {S}, tenant 7f0c5a35-5c2a-4d8e-9b8b-1b7c9f1c2a11"),
            None,
        );
        assert_eq!(
            out,
            "error: token ***, tenant 7f0c5a35-5c2a-4d8e-9b8b-1b7c9f1c2a11"
        );
    }

    #[test]
    fn strips_terminal_control_sequences() {
        let text = "\u{1b}[31mred\u{1b}[0m \u{1b}]0;pwned\u{7}title \u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\ \u{1b}(Bcharset \u{9b}2Jc1 bell\u{7} cr\r del\u{7f} keep\ttab\nline";
        assert_eq!(
            strip_controls(text),
            "red title link charset c1 bell cr del keep\ttab\nline"
        );
        // stripped before redaction: escape codes inside a secret do not save it
        let s = Secret::new(S.into());
        let split = format!("{}\u{1b}[0m{}", &S[..20], &S[20..]);
        let out = excerpt(split.as_bytes(), Some(&s), 5).unwrap();
        assert_eq!(out, "    | ***");
        let out = excerpt("\u{1b}[2J\u{1b}[Hfake prompt".as_bytes(), None, 5).unwrap();
        assert_eq!(out, "    | fake prompt");
    }

    #[test]
    fn excerpt_keeps_the_tail() {
        let text = (1..=30)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let out = excerpt(text.as_bytes(), None, 5).unwrap();
        assert!(out.starts_with("    | … (25 earlier lines)"), "{out}");
        assert!(out.ends_with("    | line 30"), "{out}");
        assert_eq!(excerpt(b"  \n", None, 5), None);
    }
}
