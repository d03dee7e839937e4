//! Who may talk to the emulator: the control token that guards `/_emulator/*` (those routes hand
//! out every secret the emulator issued), and the `Host` allow-list that keeps a web page from
//! reaching a loopback emulator through a DNS name it controls (DNS rebinding).
//!
//! - The token is 32 bytes from `rand::rng()`, a CSPRNG seeded from the OS
//!   (<https://docs.rs/rand/0.9/rand/rngs/struct.ThreadRng.html>), hex-encoded. Clients send
//!   `Authorization: Bearer <token>` (the bearer scheme of RFC 6750 §2.1,
//!   <https://www.rfc-editor.org/rfc/rfc6750#section-2.1>); a missing or wrong token gets 401
//!   with `WWW-Authenticate: Bearer realm="entraform-emulator"` (RFC 6750 §3). The comparison
//!   takes the same time wherever the first differing byte is.
//! - A request whose target host is not one of the emulator's own origins gets 421 Misdirected
//!   Request: "the request was directed at a server that is unable or unwilling to produce an
//!   authoritative response for the target URI" (RFC 9110 §15.5.20,
//!   <https://www.rfc-editor.org/rfc/rfc9110#name-421-misdirected-request>); the MCP SDKs answer
//!   a foreign `Host` the same way for the same reason
//!   (<https://github.com/modelcontextprotocol/python-sdk/pull/2315>). An HTTP/1.1 request with
//!   no `Host` at all gets 400 (RFC 9112 §3.2, <https://www.rfc-editor.org/rfc/rfc9112#section-3.2>).

use std::net::{IpAddr, SocketAddr};

use crate::Secret;

/// A fresh control token: 64 hex characters (256 bits) from the OS-seeded CSPRNG.
pub(crate) fn new_control_token() -> Secret {
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let mut hex = String::with_capacity(64);
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    Secret::new(hex)
}

/// Compare without an early exit: the time depends only on the lengths (the token's length is
/// public: always 64).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Why a control request was refused (the message never echoes what was sent).
#[derive(Debug, PartialEq)]
pub(crate) enum TokenProblem {
    Missing,
    Wrong,
}

/// Check an `Authorization` header value against the token.
pub(crate) fn check_control_token(
    expected: &Secret,
    authorization: Option<&str>,
) -> Result<(), TokenProblem> {
    let Some(value) = authorization else {
        return Err(TokenProblem::Missing);
    };
    let value = value.trim();
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let presented = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => return Err(TokenProblem::Missing),
    };
    if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(TokenProblem::Wrong)
    }
}

/// The hosts a request may name: the emulator's own origins on its port.
#[derive(Debug, Clone)]
pub(crate) struct HostPolicy {
    port: u16,
    /// `host[:port]` values accepted as they are (lower case).
    allowed: Vec<String>,
    /// With `--allow-remote` on an unspecified address (0.0.0.0, [::]): any IP literal on the
    /// port. DNS rebinding needs a DNS name, so an IP literal cannot be a rebound name.
    any_ip_literal: bool,
}

impl HostPolicy {
    /// `addr` is the bound socket, `tls` decides the default port a client may leave out.
    pub fn new(addr: SocketAddr, allow_remote: bool, tls: bool) -> Self {
        let port = addr.port();
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
        let mut any_ip_literal = false;
        if allow_remote {
            if addr.ip().is_unspecified() {
                any_ip_literal = true;
            } else {
                names.push(bracket(addr.ip()));
            }
        }
        let default_port = if tls { 443 } else { 80 };
        let mut allowed = Vec::new();
        for n in names {
            allowed.push(format!("{n}:{port}"));
            if port == default_port {
                allowed.push(n);
            }
        }
        HostPolicy {
            port,
            allowed,
            any_ip_literal,
        }
    }

    /// Whether `host` (the request target's authority, `name[:port]`) is one of ours.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self.allowed.contains(&host) {
            return true;
        }
        if self.any_ip_literal {
            let (name, port) = match host.rsplit_once(':') {
                Some((n, p)) if !n.is_empty() && !p.contains(']') => (n, p.parse::<u16>().ok()),
                _ => (host.as_str(), None),
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            return port == Some(self.port) && name.parse::<IpAddr>().is_ok();
        }
        false
    }

    /// The accepted values, for the error message.
    pub fn describe(&self) -> String {
        let mut s = self.allowed.join(", ");
        if self.any_ip_literal {
            s.push_str(&format!(", or any IP address on port {}", self.port));
        }
        s
    }
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_256_bits() {
        let a = new_control_token();
        let b = new_control_token();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn the_token_is_checked_as_a_bearer() {
        let t = Secret::new("ab".repeat(32));
        let good = format!("Bearer {}", "ab".repeat(32));
        assert_eq!(check_control_token(&t, Some(&good)), Ok(()));
        let lower = format!("bearer {}", "ab".repeat(32));
        assert_eq!(check_control_token(&t, Some(&lower)), Ok(()));
        assert_eq!(check_control_token(&t, None), Err(TokenProblem::Missing));
        assert_eq!(
            check_control_token(&t, Some(&"ab".repeat(32))),
            Err(TokenProblem::Missing)
        );
        let wrong = format!("Bearer {}ac", "ab".repeat(31));
        assert_eq!(
            check_control_token(&t, Some(&wrong)),
            Err(TokenProblem::Wrong)
        );
        assert_eq!(
            check_control_token(&t, Some("Bearer ab")),
            Err(TokenProblem::Wrong)
        );
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(constant_time_eq(b"abc", b"abc"));
    }

    #[test]
    fn only_our_own_origins_pass() {
        let p = HostPolicy::new("127.0.0.1:8443".parse().unwrap(), false, true);
        for ok in [
            "localhost:8443",
            "LOCALHOST:8443",
            "127.0.0.1:8443",
            "[::1]:8443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8443",
            "localhost:8444",
            "localhost",
            "127.0.0.1",
            "10.0.0.5:8443",
            "localhost.evil.example:8443",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        // The default port may be left out.
        let p = HostPolicy::new("127.0.0.1:443".parse().unwrap(), false, true);
        assert!(p.allows("localhost") && p.allows("127.0.0.1:443"));
        let p = HostPolicy::new("127.0.0.1:80".parse().unwrap(), false, false);
        assert!(p.allows("127.0.0.1") && !p.allows("evil.example"));
    }

    #[test]
    fn allow_remote_adds_the_listen_address_or_ip_literals() {
        let p = HostPolicy::new("192.168.1.5:8443".parse().unwrap(), true, true);
        assert!(p.allows("192.168.1.5:8443") && p.allows("localhost:8443"));
        assert!(!p.allows("192.168.1.6:8443") && !p.allows("evil.example:8443"));
        let p = HostPolicy::new("0.0.0.0:8443".parse().unwrap(), true, true);
        assert!(p.allows("10.1.2.3:8443") && p.allows("[fe80::1]:8443"));
        assert!(!p.allows("10.1.2.3:9000") && !p.allows("rebound.example:8443"));
        assert!(!p.allows("10.1.2.3"));
        // Without --allow-remote the listen address adds nothing.
        let p = HostPolicy::new("0.0.0.0:8443".parse().unwrap(), false, true);
        assert!(!p.allows("10.1.2.3:8443") && p.allows("127.0.0.1:8443"));
    }
}
