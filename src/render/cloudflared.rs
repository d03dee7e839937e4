//! A small model of cloudflared's ingress rules: parse a tunnel config, validate it like
//! `cloudflared tunnel ingress validate`, and find the rule a URL goes to like
//! `cloudflared tunnel ingress rule URL`.
//!
//! It mirrors cloudflared's `ingress/ingress.go` (`validateIngress`, `validateHostname`,
//! `Rule.Matches`, `matchHost`) for the parts our configs use, and its messages are the ones
//! recorded from cloudflared 2025.9.0 (the golden table in the project's validator notes).
//! See: <https://github.com/cloudflare/cloudflared/blob/master/ingress/ingress.go>

use regex::Regex;
use serde_yaml::Value;

/// Keys cloudflared knows on an ingress rule (`config.UnvalidatedIngressRule`).
const RULE_KEYS: &[&str] = &["hostname", "path", "service", "originRequest"];

/// A config's ingress list, as written (before validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<RawRule>,
    /// `Warning: unused keys detected …` lines (cloudflared prints them and does not print OK).
    pub warnings: Vec<String>,
}

/// One `ingress:` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRule {
    pub hostname: String,
    pub path: String,
    pub service: String,
    /// 1-based line of the item in the file, when known.
    pub line: Option<usize>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub hostname: String,
    pub path: Option<Regex>,
    pub service: String,
    pub line: Option<usize>,
}

/// Why a config or URL was refused; `message` is cloudflared's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IngressError {
    pub message: String,
    /// 0-based index of the rule at fault, when there is one.
    pub rule: Option<usize>,
}

impl IngressError {
    fn new(message: impl Into<String>, rule: Option<usize>) -> Self {
        Self {
            message: message.into(),
            rule,
        }
    }
}

/// The message of a config without a catch-all last rule.
pub const LAST_RULE_NOT_CATCH_ALL: &str =
    "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)";
/// The message of a config without `ingress:`.
pub const NO_INGRESS_RULES: &str = "The config file doesn't contain any ingress rules";

impl Config {
    /// Parse a config file's text. `name` is used in the YAML error like cloudflared does.
    pub fn parse(text: &str, name: &str) -> Result<Self, IngressError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| {
            IngressError::new(
                format!("error parsing YAML in config file {name}: {e}"),
                None,
            )
        })?;
        let lines = item_lines(text);
        let items = match doc.get("ingress") {
            Some(Value::Sequence(items)) if !items.is_empty() => items,
            _ => return Err(IngressError::new(NO_INGRESS_RULES, None)),
        };
        let mut rules = Vec::with_capacity(items.len());
        let mut warnings = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Value::Mapping(map) = item else {
                return Err(IngressError::new(
                    format!(
                        "error parsing YAML in config file {name}: ingress item #{} is not a mapping",
                        i + 1
                    ),
                    Some(i),
                ));
            };
            let text_of = |key: &str| -> Result<String, IngressError> {
                match map.get(key) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(Value::Number(n)) => Ok(n.to_string()),
                    Some(Value::Bool(b)) => Ok(b.to_string()),
                    Some(_) => Err(IngressError::new(
                        format!(
                            "error parsing YAML in config file {name}: ingress rule #{} `{key}` must be a string",
                            i + 1
                        ),
                        Some(i),
                    )),
                }
            };
            for key in map.keys() {
                let key = key.as_str().unwrap_or("?");
                if !RULE_KEYS.contains(&key) {
                    warnings.push(format!(
                        "Warning: unused keys detected in your config file. Here is a list of unused keys:\n{key}: field {key} not found in type config.UnvalidatedIngressRule"
                    ));
                }
            }
            rules.push(RawRule {
                hostname: text_of("hostname")?,
                path: text_of("path")?,
                service: text_of("service")?,
                line: lines.get(i).copied(),
            });
        }
        Ok(Config { rules, warnings })
    }

    /// `cloudflared tunnel ingress validate`: the first problem, in cloudflared's order and words.
    pub fn validate(&self) -> Result<Vec<Rule>, IngressError> {
        let total = self.rules.len();
        let mut out = Vec::with_capacity(total);
        for (i, r) in self.rules.iter().enumerate() {
            validate_service(&r.service).map_err(|m| IngressError::new(m, Some(i)))?;
            validate_hostname(r, i, total)?;
            let path = if r.path.is_empty() {
                None
            } else {
                // cloudflared compiles with Go's RE2 `regexp`; the regex crate takes the same
                // syntax for the patterns used here.
                Some(Regex::new(&r.path).map_err(|e| {
                    IngressError::new(
                        format!("Rule #{} has an invalid regex: {e}", i + 1),
                        Some(i),
                    )
                })?)
            };
            out.push(Rule {
                hostname: r.hostname.clone(),
                path,
                service: r.service.clone(),
                line: r.line,
            });
        }
        if out.is_empty() {
            return Err(IngressError::new(NO_INGRESS_RULES, None));
        }
        Ok(out)
    }
}

/// 1-based lines of the items of `ingress:` (for messages).
fn item_lines(text: &str) -> Vec<usize> {
    let Ok(doc) = yamlpath::Document::new(text) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for i in 0.. {
        let route = yamlpath::Route::from(vec![
            yamlpath::Component::from("ingress"),
            yamlpath::Component::from(i),
        ]);
        match doc.query_pretty(&route) {
            Ok(feature) => lines.push(feature.location.point_span.0.0 + 1),
            Err(_) => break,
        }
    }
    lines
}

/// The service checks of `validateIngress` for the kinds our configs use.
fn validate_service(service: &str) -> Result<(), String> {
    if let Some(code) = service.strip_prefix("http_status:") {
        let code: i64 = code
            .parse()
            .map_err(|e| format!("invalid HTTP status code: {e}"))?;
        if !(100..=999).contains(&code) {
            return Err(format!("invalid HTTP status code: {code}"));
        }
        return Ok(());
    }
    if service.starts_with("unix:")
        || service.starts_with("unix+tls:")
        || matches!(
            service,
            "hello_world" | "hello-world" | "socks-proxy" | "bastion" | "warp-routing"
        )
    {
        return Ok(());
    }
    let invalid = || {
        format!("{service} is an invalid address, please make sure it has a scheme and a hostname")
    };
    let Some((scheme, rest)) = service.split_once("://") else {
        return Err(invalid());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if scheme.is_empty() || host_of(authority).is_empty() {
        return Err(invalid());
    }
    let path = &rest[authority.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    if !path.is_empty() {
        return Err(format!(
            "{service} is an invalid address, ingress rules don't support proxying to a different path on the origin service. The path will be the same as the eyeball request's path"
        ));
    }
    Ok(())
}

fn validate_hostname(r: &RawRule, index: usize, total: usize) -> Result<(), IngressError> {
    // Go's net.SplitHostPort succeeds on `host:port` (one colon, or a bracketed IPv6 host):
    // cloudflared then refuses the hostname. That is also what `https://host` trips over.
    if split_host_port_ok(&r.hostname) {
        return Err(IngressError::new(
            "Hostname cannot contain a port",
            Some(index),
        ));
    }
    if r.hostname.rfind('*').is_some_and(|i| i > 0) {
        return Err(IngressError::new(
            "Hostname patterns can have at most one wildcard character (\"*\") and it can only be used for subdomains, e.g. \"*.example.com\"",
            Some(index),
        ));
    }
    let catch_all = is_catch_all(&r.hostname, &r.path);
    let last = index + 1 == total;
    if last && !catch_all {
        return Err(IngressError::new(LAST_RULE_NOT_CATCH_ALL, Some(index)));
    }
    if !last && catch_all {
        return Err(IngressError::new(
            format!(
                "Rule #{} is matching the hostname '{}', but this will match every hostname, meaning the rules which follow it will never be triggered.",
                index + 1,
                r.hostname
            ),
            Some(index),
        ));
    }
    Ok(())
}

/// A rule that matches every URL.
pub fn is_catch_all(hostname: &str, path: &str) -> bool {
    (hostname.is_empty() || hostname == "*") && path.is_empty()
}

fn split_host_port_ok(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        // `[v6]:port`
        return rest
            .split_once(']')
            .is_some_and(|(_, tail)| tail.starts_with(':') && !tail[1..].contains(':'));
    }
    s.matches(':').count() == 1 && !s.contains('[') && !s.contains(']')
}

/// Host of `user@host:port` (the port and userinfo removed; case kept, as Go's url does).
fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// Split a request URL like Go's `url.Parse` for what matching needs: (hostname, path).
/// The host keeps its case: cloudflared's rule matching is case-sensitive (recorded: `AXE.…`
/// goes to the catch-all).
pub fn split_url(url: &str) -> Result<(String, String), IngressError> {
    let no_host = || {
        IngressError::new(
            format!("{url} doesn't have a hostname, consider adding a scheme"),
            None,
        )
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(no_host());
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(no_host());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_of(authority);
    if host.is_empty() {
        return Err(no_host());
    }
    let path = rest[authority.len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    Ok((host.to_owned(), percent_decode(path)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `Rule.Matches`: hostname (exact, or `*.suffix`, or any) and path regex (unanchored search).
pub fn rule_matches(rule: &Rule, hostname: &str, path: &str) -> bool {
    let path_ok = rule.path.as_ref().is_none_or(|re| re.is_match(path));
    host_matches(&rule.hostname, hostname) && path_ok
}

/// `matchHost`: a rule's hostname (exact, `*.suffix`, or empty/`*` for any) against a request's.
pub fn host_matches(rule_hostname: &str, hostname: &str) -> bool {
    rule_hostname.is_empty()
        || rule_hostname == "*"
        || rule_hostname == hostname
        || rule_hostname
            .strip_prefix('*')
            .is_some_and(|suffix| suffix.starts_with('.') && hostname.ends_with(suffix))
}

/// The literal text every path a regex matches must start with, when the regex is anchored
/// (`^/frame/mcp(/.*)?$` → `/frame/mcp`). `None` when that cannot be told simply (no `^`, an
/// alternation, flags): the caller must then assume the regex may match anything.
pub fn anchored_literal_prefix(regex: &str) -> Option<String> {
    let rest = regex.strip_prefix('^')?;
    if regex.contains('|') {
        return None;
    }
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => break,
            other => other,
        };
        // A quantifier after a literal makes that character optional (`a?`, `a*`, `a{0,1}`).
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(literal);
    }
    Some(out)
}

/// `cloudflared tunnel ingress rule URL`: the 0-based index of the first rule the URL matches.
pub fn match_rule(rules: &[Rule], url: &str) -> Result<usize, IngressError> {
    let (host, path) = split_url(url)?;
    rules
        .iter()
        .position(|r| rule_matches(r, &host, &path))
        // Unreachable for a validated list (its last rule matches everything).
        .ok_or_else(|| IngressError::new(LAST_RULE_NOT_CATCH_ALL, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split_like_go() {
        assert!(split_host_port_ok("https://axe.axelabs.ai"));
        assert!(split_host_port_ok("axe.axelabs.ai:443"));
        assert!(split_host_port_ok("[::1]:80"));
        assert!(!split_host_port_ok("axe.axelabs.ai"));
        assert!(!split_host_port_ok(""));
        assert!(!split_host_port_ok("a:b:c"));
    }

    #[test]
    fn urls_split_like_go() {
        assert_eq!(
            split_url("https://AXE.axelabs.ai/blueprint/mcp?x=1#f").unwrap(),
            ("AXE.axelabs.ai".into(), "/blueprint/mcp".into())
        );
        assert_eq!(
            split_url("https://u@h:8443").unwrap(),
            ("h".into(), String::new())
        );
        assert_eq!(
            split_url("http://h/a%2Fb").unwrap(),
            ("h".into(), "/a/b".into())
        );
        let err = split_url("axe.axelabs.ai/blueprint/mcp").unwrap_err();
        assert_eq!(
            err.message,
            "axe.axelabs.ai/blueprint/mcp doesn't have a hostname, consider adding a scheme"
        );
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(
            anchored_literal_prefix(r"^/frame/mcp(/.*)?$").as_deref(),
            Some("/frame/mcp")
        );
        assert_eq!(
            anchored_literal_prefix(r"^/my\-svc/\.well-known/x(/.*)?$").as_deref(),
            Some("/my-svc/.well-known/x")
        );
        assert_eq!(
            anchored_literal_prefix(r"^/blueprint/health$").as_deref(),
            Some("/blueprint/health")
        );
        assert_eq!(anchored_literal_prefix(r"^/ab?c").as_deref(), Some("/a"));
        assert_eq!(anchored_literal_prefix(r"^/a\d").as_deref(), Some("/a"));
        assert_eq!(anchored_literal_prefix(r"/frame/mcp"), None);
        assert_eq!(anchored_literal_prefix(r"^/(frame|hive)/mcp"), None);
        assert_eq!(anchored_literal_prefix(r"(?i)^/frame"), None);
    }

    #[test]
    fn services() {
        assert!(validate_service("http://host.docker.internal:3151").is_ok());
        assert!(validate_service("http_status:404").is_ok());
        assert!(validate_service("http_status:abc").is_err());
        assert!(validate_service("http_status:42").is_err());
        assert_eq!(
            validate_service("host.docker.internal:3151").unwrap_err(),
            "host.docker.internal:3151 is an invalid address, please make sure it has a scheme and a hostname"
        );
        assert!(
            validate_service("http://h:1/sub")
                .unwrap_err()
                .contains("don't support proxying to a different path")
        );
    }
}
