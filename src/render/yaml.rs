//! Writing YAML scalars that every parser reads back as the same string.
//!
//! The files we write are read by serde_yaml (YAML 1.2), Go's yaml.v3 (cloudflared, compose) and
//! Python (customers.yaml readers), some of which still apply YAML 1.1 rules (`yes`/`on` are
//! booleans, `3151:80` is a base-60 number). So a value is written plain only when it is
//! unambiguous for all of them; otherwise it is quoted.

/// Words YAML 1.1 or 1.2 read as booleans or null.
const SPECIAL_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

/// Plain when safe, else single-quoted (no escapes needed: regexes keep their backslashes
/// readable), else double-quoted.
pub(crate) fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_owned()
    } else if can_single_quote(s) {
        format!("'{s}'")
    } else {
        double_quoted(s)
    }
}

/// Always double-quoted. YAML's double-quoted style accepts JSON's string escapes.
pub(crate) fn double_quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

fn can_single_quote(s: &str) -> bool {
    !s.contains('\'') && s.chars().all(|c| !c.is_control())
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || matches!(first, '/' | '.' | '_' | '~')) {
        return false;
    }
    if SPECIAL_WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'/' | b'@' | b'~' | b'+')
            // `a:b` is fine in a plain scalar; `a: b` and a trailing `:` are not.
            || (b == b':' && i + 1 < bytes.len() && bytes[i + 1] != b' ');
        if !ok {
            return false;
        }
    }
    // Last word on it: the 1.2 parser must give back this exact string (not a number, a float
    // like `.5`, `.inf`, …).
    matches!(
        serde_yaml::from_str::<serde_yaml::Value>(s),
        Ok(serde_yaml::Value::String(ref v)) if v == s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_when_unambiguous() {
        for plain in [
            "axe.axelabs.ai",
            "blueprint-mcp",
            "mcp/Dockerfile",
            "../.env",
            "~/.axe/blueprint-mcp-proxy",
            "caddy:2",
            "http://host.docker.internal:3151",
            "AZURE_BLUEPRINT_MCP_CLIENT_SECRET",
        ] {
            assert_eq!(scalar(plain), plain);
        }
        assert_eq!(scalar("^/blueprint/mcp(/.*)?$"), "'^/blueprint/mcp(/.*)?$'");
        assert_eq!(scalar("3151:80"), "'3151:80'");
        assert_eq!(scalar("yes"), "'yes'");
        assert_eq!(scalar("On"), "'On'");
        assert_eq!(scalar(".5"), "'.5'");
        assert_eq!(scalar(".inf"), "'.inf'");
        assert_eq!(scalar(""), "''");
        assert_eq!(scalar("a: b"), "'a: b'");
        assert_eq!(scalar("a:"), "'a:'");
        assert_eq!(scalar("it's"), "\"it's\"");
        assert_eq!(scalar("x\ny"), "\"x\\ny\"");
        assert_eq!(double_quoted(r"a\b"), r#""a\\b""#);
    }

    #[test]
    fn everything_round_trips() {
        for s in [
            "^/x/\\.well-known/oauth-protected-resource(/.*)?$",
            "${A:-https://h/x}",
            "*star",
            "&anchor",
            "{x}",
            "- dash",
            "# hash",
            "a #b",
            "0123",
            "1e3",
            "null",
            "it's",
            "tab\there",
        ] {
            for text in [scalar(s), double_quoted(s)] {
                let v: serde_yaml::Value = serde_yaml::from_str(&format!("k: {text}")).unwrap();
                assert_eq!(v["k"].as_str(), Some(s), "{text}");
                let v: serde_yaml::Value = serde_yaml::from_str(&format!("[{text}]")).unwrap();
                assert_eq!(v[0].as_str(), Some(s), "flow {text}");
            }
        }
    }
}
