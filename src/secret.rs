//! The one type that holds a secret value ([`Secret`], in the `entraform-secret` crate the
//! emulator shares) and the shape an Entra client secret must have before it is stored.

pub use entraform_secret::Secret;

/// Entra's client-secret alphabet as observed in `addPassword` responses: ASCII letters, digits
/// and `~ . _ -` (checklist #13 says a stored secret is 40–50 characters; anything else means
/// something was glued to it, like the 270-character stderr incident).
pub const SECRET_CHARSET_EXTRA: &[char] = &['~', '.', '_', '-'];
/// Inclusive length band of checklist #13.
pub const SECRET_LEN_MIN: usize = 40;
/// Inclusive length band of checklist #13.
pub const SECRET_LEN_MAX: usize = 50;

/// Why a value cannot be a client secret. Never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretShapeError {
    #[error(
        "the secret is {len} characters long, outside the 40–50 band of a client secret{extra}"
    )]
    Length { len: usize, extra: &'static str },
    #[error(
        "the secret contains whitespace or a control character at position {position} (was stderr or a newline mixed in?)"
    )]
    Whitespace { position: usize },
    #[error(
        "the secret contains a character outside Entra's secret alphabet at position {position}"
    )]
    Charset { position: usize },
}

/// Check a value against the shape of an Entra client secret, before it is written anywhere.
pub fn check_shape(secret: &Secret) -> Result<(), SecretShapeError> {
    let value = secret.expose();
    for (position, c) in value.chars().enumerate() {
        if c.is_whitespace() || c.is_control() {
            return Err(SecretShapeError::Whitespace { position });
        }
        if !(c.is_ascii_alphanumeric() || SECRET_CHARSET_EXTRA.contains(&c)) {
            return Err(SecretShapeError::Charset { position });
        }
    }
    let len = secret.len();
    if !(SECRET_LEN_MIN..=SECRET_LEN_MAX).contains(&len) {
        let extra = if len > 200 {
            " (a value this long usually has a tool's stderr glued to it)"
        } else {
            ""
        };
        return Err(SecretShapeError::Length { len, extra });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rules() {
        let ok = Secret::new("abc~DEF.ghi_jkl-0123456789abcdefghijklmnop".into());
        assert_eq!(check_shape(&ok), Ok(()));
        let short = Secret::new("abc".into());
        assert!(matches!(
            check_shape(&short),
            Err(SecretShapeError::Length { len: 3, .. })
        ));
        let glued = Secret::new(format!("{}\nWARNING: something", ok.expose()));
        assert!(matches!(
            check_shape(&glued),
            Err(SecretShapeError::Whitespace { position: 42 })
        ));
        let long = Secret::new("a".repeat(270));
        let err = check_shape(&long).unwrap_err().to_string();
        assert!(err.contains("270") && err.contains("stderr"), "{err}");
        let bad = Secret::new(format!("{}$", &ok.expose()[..41]));
        assert!(matches!(
            check_shape(&bad),
            Err(SecretShapeError::Charset { position: 41 })
        ));
    }
}
