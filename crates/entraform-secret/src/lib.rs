//! The one type that holds a secret value, shared by entraform and its emulator (the emulator
//! hands out the very values the tool then stores and compares, so both name the same type).
//!
//! It zeroizes its memory on drop, prints as `***` through both `Debug` and `Display`, and is
//! neither `Clone` nor `Serialize`: the only way to read the value is [`Secret::expose`], so
//! every place a secret leaves this type is greppable.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A secret value (client secret, access token). Zeroized on drop; shown as `***`.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap a value. The caller's copy should be the one moved in (no extra copies).
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The raw value. Call only where the value must leave the process: the vault writer,
    /// a token request body, a child's stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in characters (safe to report).
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entra's `hint`: the first three characters (Graph returns it for every credential, so
    /// it is not secret; it is how a vault entry is matched to a credential).
    pub fn hint(&self) -> String {
        self.0.chars().take(3).collect()
    }

    /// SHA-256 of the value, for read-back comparison without printing anything.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Constant-shape comparison through digests.
    pub fn same_as(&self, other: &Secret) -> bool {
        self.digest() == other.digest()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("abc~DEF.ghi_jkl-0123456789abcdefghijklmnop".into());
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.hint(), "abc");
    }
}
