//! `entraform explain`: what an AADSTS code or a connector message means, who must act, the fix
//! and the command that proves it is fixed. Translated from the seeds (troubleshooting, checklist
//! §7 and §10) and the login endpoint's error codes
//! (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
//!
//! Placeholders in commands: `<service>`, `<customer>`, `<host>` (the customer's public host),
//! `<client-id>`, `<tenant-id>`, `<SERVICE>` (upper-case service name).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::similar::{edit_similarity, trigram_similarity};

/// Who has to do something about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The person who runs entraform and the servers.
    Operator,
    /// The employee adding the connector in claude.ai.
    Employee,
    /// A tenant administrator (consent).
    TenantAdmin,
}

impl Actor {
    pub fn label(self) -> &'static str {
        match self {
            Actor::Operator => "operator",
            Actor::Employee => "employee",
            Actor::TenantAdmin => "tenant admin",
        }
    }
}

/// One explainable error.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Entry {
    /// `AADSTS700016`, or a slug for a message (`invalid-host-header`).
    pub id: &'static str,
    /// The AADSTS number, for codes.
    pub code: Option<u32>,
    pub title: &'static str,
    /// Lower-case fragments of the message as users see it (a number matches as a whole word).
    #[serde(skip)]
    pub patterns: &'static [&'static str],
    /// Who must act, first the one who acts first.
    pub who: &'static [Actor],
    pub cause: &'static str,
    pub fix: &'static str,
    /// A command whose output shows the problem is gone.
    pub verify: &'static str,
    /// Where the seeds describe it.
    pub source: &'static str,
}

use Actor::{Employee, Operator, TenantAdmin};

/// The table.
pub static ENTRIES: &[Entry] = &[
    Entry {
        id: "AADSTS700016",
        code: Some(700016),
        title: "Application not found in the directory",
        patterns: &[
            "application with identifier",
            "was not found in the directory",
            "application not found",
        ],
        who: &[Employee, Operator],
        cause: "The client id sent to Microsoft is not an app of that tenant: a typo in the connector's Client ID (e.g. another service's GUID pasted from the vault), or the operator has not registered the app for this customer yet.",
        fix: "Employee: copy the Client ID again from the operator's message (customers.yaml `azure_apps.<customer>.<service>_mcp.client_id`). Operator: if no app exists for the customer, run `entraform apply manifests/<service>.yaml`.",
        verify: "az ad app show --id <client-id> --query appId -o tsv   (or: entraform verify manifests/<service>.yaml)",
        source: "troubleshooting: AADSTS700016",
    },
    Entry {
        id: "AADSTS9010010",
        code: Some(9010010),
        title: "Resource parameter does not match the requested scopes",
        patterns: &[
            "doesn't match with the requested scopes",
            "does not match with the requested scopes",
            "resource parameter provided in the request",
        ],
        who: &[Operator],
        cause: "The app's Application ID URI and the prefix of the requested scope differ (the scope must be `<App ID URI>/mcp.access`, with the App ID URI `https://<host>/<service>/mcp`). An Azure configuration problem; the employee can do nothing.",
        fix: "Make identifierUris and the scope agree: `entraform plan manifests/<service>.yaml` shows the difference, `entraform apply` fixes it; make sure customers.yaml lists the scope `https://<host>/<service>/mcp/mcp.access`.",
        verify: "entraform drift manifests/<service>.yaml",
        source: "troubleshooting: AADSTS9010010",
    },
    Entry {
        id: "AADSTS7000218",
        code: Some(7000218),
        title: "The request has no client secret",
        patterns: &[
            "'client_assertion' or 'client_secret'",
            "must contain the following parameter: 'client_assertion'",
            "missing client_secret",
            "missing client secret",
        ],
        who: &[Employee, Operator],
        cause: "claude.ai sent no OAuth Client Secret: the Advanced section of the connector was left empty (a confidential web app requires one; public client flows are off).",
        fix: "Employee: enter the secret the operator sent in the connector's Advanced → OAuth Client Secret field. Lost it? Ask the operator to send it again (`axe secret send`).",
        verify: "Reconnect the connector; operator: entraform secrets manifests/<service>.yaml shows a live secret the vault holds",
        source: "troubleshooting: AADSTS7000218",
    },
    Entry {
        id: "AADSTS65001",
        code: Some(65001),
        title: "No user or admin consent",
        patterns: &[
            "has not consented",
            "not consented to use the application",
            "consent_required",
        ],
        who: &[Employee, TenantAdmin],
        cause: "The user did not accept the consent screen at first sign-in, or a scope needs admin consent that was never granted (step 9: User.Read on Microsoft Graph and mcp.access on the app itself).",
        fix: "Employee: connect again and press Accept on the consent screen. If no consent screen appears, a tenant admin grants consent: `entraform apply manifests/<service>.yaml` (step 9) or the admin-consent URL that `entraform plan` prints when step 9 is blocked.",
        verify: "entraform verify manifests/<service>.yaml   (the consent check)",
        source: "troubleshooting: AADSTS65001; checklist §1 step 9",
    },
    Entry {
        id: "AADSTS50011",
        code: Some(50011),
        title: "Redirect URI mismatch",
        patterns: &[
            "reply url specified in the request does not match",
            "does not match the reply urls",
            "redirect uri mismatch",
            "redirect_uri mismatch",
        ],
        who: &[Operator],
        cause: "The app's web.redirectUris lack the callback claude.ai used: both https://claude.ai/api/mcp/auth_callback and https://claude.com/api/mcp/auth_callback must be registered.",
        fix: "Keep both callbacks in `redirect_uris` of manifests/defaults.yaml and run `entraform apply manifests/<service>.yaml`.",
        verify: "entraform plan manifests/<service>.yaml   (step 5 shows ok)",
        source: "troubleshooting: AADSTS50011; checklist §1 step 5",
    },
    Entry {
        id: "AADSTS7000215",
        code: Some(7000215),
        title: "Invalid client secret",
        patterns: &[
            "invalid client secret",
            "client secret value, not the client secret id",
        ],
        who: &[Operator, Employee],
        cause: "The secret sent is not a valid secret of the app: mistyped, the secret's ID pasted instead of its value, or a corrupted vault entry (e.g. stderr glued to it, the 270-character secret).",
        fix: "Operator: check the vault entry (40-50 characters); if it is wrong, `entraform rotate manifests/<service>.yaml` writes a fresh secret straight into the vault. Employee: paste the new value into the connector.",
        verify: "entraform verify manifests/<service>.yaml   (#13: charset, length and a real token request)",
        source: "https://learn.microsoft.com/entra/identity-platform/reference-error-codes; checklist §8 #13",
    },
    Entry {
        id: "AADSTS7000222",
        code: Some(7000222),
        title: "Client secret expired",
        patterns: &[
            "invalidclientsecretexpiredkeysprovided",
            "client secret keys are expired",
            "secret keys are expired",
            "client secret expired",
        ],
        who: &[Operator],
        cause: "Every secret the connector could use is past its endDateTime (secrets live two years).",
        fix: "entraform rotate manifests/<service>.yaml   (new secret → vault → verified; old ones pruned after the overlap), then send the new value to the employees.",
        verify: "entraform secrets manifests/<service>.yaml   (days left > 0)",
        source: "https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
    },
    Entry {
        id: "AADSTS500011",
        code: Some(500011),
        title: "Resource principal not found in the tenant",
        patterns: &[
            "resource principal named",
            "wasn't found in the tenant",
            "was not found in the tenant named",
        ],
        who: &[Operator],
        cause: "The app has no service principal in the tenant: `az ad app create` does not create one (checklist §1 step 1), so tokens for its App ID URI cannot be issued.",
        fix: "entraform apply manifests/<service>.yaml   (step 1 creates the service principal)",
        verify: "az ad sp list --filter \"appId eq '<client-id>'\" --query \"[].id\" -o tsv   (non-empty; checklist #12)",
        source: "checklist §1 step 1, §8 #12",
    },
    Entry {
        id: "AADSTS90002",
        code: Some(90002),
        title: "Tenant not found",
        patterns: &[
            "invalidtenantname",
            "tenant name wasn't found",
            "tenant not found",
        ],
        who: &[Operator],
        cause: "The tenant in the login URL does not exist: a wrong `tenant_id` for the customer in manifests/defaults.yaml, or a wrong tenant in the server's AZURE_AD_TENANT_ID.",
        fix: "Correct `customers.<customer>.tenant_id` in manifests/defaults.yaml (Entra ID → Overview → Tenant ID) and re-render: `entraform render manifests/<service>.yaml`.",
        verify: "curl -s https://login.microsoftonline.com/<tenant-id>/v2.0/.well-known/openid-configuration | jq -r .issuer",
        source: "https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
    },
    Entry {
        id: "AADSTS70011",
        code: Some(70011),
        title: "Invalid scope",
        patterns: &[
            "provided value for the input parameter 'scope'",
            "invalid_scope",
        ],
        who: &[Operator],
        cause: "The requested scope is malformed or names an API the tenant does not know: it must be `https://<host>/<service>/mcp/mcp.access` (or `<App ID URI>/.default` for client credentials).",
        fix: "Fix the scope in customers.yaml (`entraform render manifests/<service>.yaml --merge-customers …` writes it) and check the app exposes mcp.access: `entraform plan manifests/<service>.yaml`.",
        verify: "entraform drift manifests/<service>.yaml",
        source: "https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
    },
    Entry {
        id: "invalid-host-header",
        code: None,
        title: "421 Misdirected Request: Invalid Host header",
        patterns: &["invalid host header", "misdirected request", "421"],
        who: &[Operator],
        cause: "FastMCP's DNS-rebinding guard rejects the public host because <SERVICE>_MCP_ALLOWED_HOSTS is not set (checklist §4.2 ③).",
        fix: "Set <SERVICE>_MCP_ALLOWED_HOSTS=<service>-mcp:*,localhost:*,127.0.0.1:*,host.docker.internal:*,<host> (the rendered compose fragment has it) and recreate the container: docker compose up -d --force-recreate mcp.",
        verify: "docker exec <service>-mcp printenv <SERVICE>_MCP_ALLOWED_HOSTS; curl -s -o /dev/null -w '%{http_code}\\n' -X POST https://<host>/<service>/mcp   (401, not 421)",
        source: "checklist §4.2 ③, §7, §10 layer 5",
    },
    Entry {
        id: "task-group-not-initialized",
        code: None,
        title: "Task group is not initialized",
        patterns: &[
            "task group is not initialized",
            "task group not initialized",
            "task group",
        ],
        who: &[Operator],
        cause: "Starlette's Mount does not run the FastMCP app's lifespan, so the StreamableHTTP session manager never started (checklist §4.2 ①).",
        fix: "Forward the lifespan: wrap the app's lifespan with `mcp_app.router.lifespan_context(app)` exactly as frame's http_server.py does, then redeploy.",
        verify: "docker logs <service>-mcp 2>&1 | grep 'StreamableHTTP session manager started'",
        source: "checklist §4.2 ①, §7, §10 layer 4",
    },
    Entry {
        id: "audience-mismatch",
        code: None,
        title: "Audience doesn't match",
        patterns: &[
            "audience doesn't match",
            "audience does not match",
            "invalid audience",
        ],
        who: &[Operator],
        cause: "The token verifier accepts a single audience; v2 access tokens carry the client id GUID as `aud`, not the App ID URI (checklist §4.1 ②).",
        fix: "Verify with audience=[client_id, app_id_uri] (a list) as frame's auth_oidc.py does, and keep requestedAccessTokenVersion = 2 (`entraform plan` step 3).",
        verify: "curl -s -X POST https://<host>/<service>/mcp -H 'Authorization: Bearer <a real token>' | jq .error.context.reason   (no audience error)",
        source: "checklist §4.1 ②, §7, §10 layer 3",
    },
    Entry {
        id: "integration-unavailable",
        code: None,
        title: "The integration may not be available right now due to a temporary error",
        patterns: &[
            "integration may not be available",
            "due to a temporary error",
        ],
        who: &[Operator],
        cause: "The MCP server answered 500: an exception in the server, e.g. httpx.Timeout built with two arguments (ValueError since httpx 0.28) or a stale SQLite DATABASE_URL in .env.",
        fix: "Read the traceback and fix the code or the env: use the 4-argument httpx.Timeout, remove stale lines from .env.",
        verify: "docker logs <service>-mcp --since 5m 2>&1 | grep -iE 'error|exception|traceback' | head -30   (empty)",
        source: "checklist §7, §9, §10 layer 1",
    },
    Entry {
        id: "rejected-credentials",
        code: None,
        title: "The integration rejected the credentials, so the connection was reverted",
        patterns: &["rejected the credentials", "connection was reverted"],
        who: &[Operator],
        cause: "The MCP server answered 401 to claude.ai's token: most often the audience check (single audience instead of [client_id, app_id_uri]) or an issuer mismatch.",
        fix: "Read the 401 reason in the server log (the body and log must carry `reason`, checklist §4.2 ②) and fix the verifier accordingly.",
        verify: "docker logs <service>-mcp --since 5m 2>&1 | grep 'reason='",
        source: "checklist §7, §10 layers 2-3",
    },
    Entry {
        id: "authorization-failed",
        code: None,
        title: "Authorization with the MCP server failed",
        patterns: &["authorization with the mcp server failed"],
        who: &[Employee, Operator],
        cause: "Microsoft sign-in or the step after it failed. If the address bar has `entra_aadsts_code=`, that code is the cause; without one, the server itself failed silently (blueprint 2026-05-22: a stale DATABASE_URL made every Bearer request a 500).",
        fix: "Employee: send the operator the full address bar (error_code, entra_aadsts_code, entra_trace_id); `entraform explain <that URL>` explains the code. Operator: check the server's env and logs.",
        verify: "docker exec <service>-mcp printenv DATABASE_URL   (postgresql://…, not file:./…); curl -sS https://<host>/<service>/health",
        source: "troubleshooting; checklist §10 layer 6",
    },
    Entry {
        id: "could-not-reach",
        code: None,
        title: "Couldn't reach the MCP server",
        patterns: &[
            "couldn't reach the mcp server",
            "could not reach the mcp server",
            "couldnt reach",
        ],
        who: &[Employee, Operator],
        cause: "claude.ai cannot reach the server: a typo in the URL (it must end with /mcp), the host of another customer (axe → axe.axelabs.ai, realchoice → realchoice.axelabs.ai), a stale cached connector, or the server or tunnel is down.",
        fix: "Employee: check the URL is https://<host>/<service>/mcp; delete the connector and add it again in a private window. If the health check fails, tell the operator (tunnel ingress, Caddy, container).",
        verify: "curl -sS https://<host>/<service>/health   (200 {\"status\":\"ok\"})",
        source: "troubleshooting: Couldn't reach the MCP server",
    },
    Entry {
        id: "mcp-client-invalid",
        code: None,
        title: "error_code=mcp_client_invalid",
        patterns: &["mcp_client_invalid"],
        who: &[Employee, Operator],
        cause: "Anthropic could not use the token Microsoft returned to call the server; the real cause is the `entra_aadsts_code` in the same URL.",
        fix: "Look up the entra_aadsts_code (`entraform explain '<the whole URL>'`). Without one, send the full URL to the operator.",
        verify: "entraform explain '<the whole URL>'",
        source: "troubleshooting: mcp_client_invalid",
    },
    Entry {
        id: "connection-expired",
        code: None,
        title: "Connection has expired. You can reconnect to re-authenticate (loops after Reconnect)",
        patterns: &[
            "connection has expired",
            "reconnect to re-authenticate",
            "oauth-protected-resource",
        ],
        who: &[Operator],
        cause: "The resource-level RFC 9728 metadata path /<service>/mcp/.well-known/oauth-protected-resource answers 401 because it is missing from the server's unauthenticated allowlist, so the connector cannot read the OAuth challenge metadata and sign-in loops (no AADSTS code).",
        fix: "Add the resource-level path to the middleware's public paths and to the router (frame D-ops-23), and keep the cloudflared rule for /<service>/.well-known/oauth-protected-resource.",
        verify: "curl -sS -o /dev/null -w '%{http_code}\\n' https://<host>/<service>/mcp/.well-known/oauth-protected-resource   (200)",
        source: "troubleshooting: reconnect still 401 (RFC 9728 metadata path)",
    },
    Entry {
        id: "secret-270-characters",
        code: None,
        title: "A 270-character client secret in the vault",
        patterns: &["270", "270-character", "270 characters", "270자"],
        who: &[Operator],
        cause: "stderr of `az ad app credential reset` was piped into `axe secret push` together with the password, so the vault holds a warning glued to the secret; a real secret is 40-50 characters.",
        fix: "entraform rotate manifests/<service>.yaml: the new secret goes from the Graph response straight to the vault's stdin, checked (charset, 40-50 characters) and read back; nothing else is ever mixed in.",
        verify: "axe secret get <service>/<customer>/mcp-client-secret -n | wc -c   (40-50; or entraform verify manifests/<service>.yaml)",
        source: "checklist §1 step 8, §8 #13",
    },
    Entry {
        id: "bitwarden-send-gone",
        code: None,
        title: "This Send has been deleted / Send not found",
        patterns: &["this send has been deleted", "send not found"],
        who: &[Employee, Operator],
        cause: "The one-time Bitwarden Send link with the secret was already opened once (-a 1), expired after a day (-d 1), or was deleted.",
        fix: "Employee: ask the operator for a new link, naming your e-mail and the service. Operator: axe secret send <ENV> --service <service> --to <local-part>.",
        verify: "Open the new link once, in the browser you will use",
        source: "troubleshooting: Bitwarden Send URL",
    },
    Entry {
        id: "vault-email-verification",
        code: None,
        title: "Your provider does not send email verification status",
        patterns: &[
            "does not send email verification status",
            "sso_allow_unknown_email_verification",
        ],
        who: &[Operator],
        cause: "Entra id_tokens carry no email_verified claim and Vaultwarden refuses the SSO login by default.",
        fix: "Set SSO_ALLOW_UNKNOWN_EMAIL_VERIFICATION: \"true\" on axe-vaultwarden and recreate it (docker compose up -d --force-recreate axe-vaultwarden).",
        verify: "Log in at https://<host>/vault/#/sso with the organisation identifier",
        source: "troubleshooting: Vault email verification status",
    },
];

static CODE_IN_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:aadsts\s*[:#-]?\s*|entra_aadsts_code=)(\d{4,8})").expect("valid regex")
});
static BARE_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4,8}$").expect("valid regex"));

/// What a query resolved to.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The entries that explain it (a code first, then messages).
    Found(Vec<&'static Entry>),
    /// Nothing matched: the closest entries, and the AADSTS code if the query held one.
    NotFound {
        code: Option<u32>,
        closest: Vec<&'static Entry>,
    },
}

/// Curly quotes → straight, lower case, single spaces.
fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201c}' | '\u{201d}' => '"',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn codes_in(query: &str) -> Vec<u32> {
    let trimmed = query.trim();
    if BARE_CODE.is_match(trimmed) {
        return trimmed.parse().ok().into_iter().collect();
    }
    let mut out = Vec::new();
    for c in CODE_IN_TEXT.captures_iter(query) {
        if let Ok(n) = c[1].parse::<u32>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

fn pattern_matches(norm: &str, words: &[&str], pattern: &str) -> bool {
    if pattern.chars().all(|c| c.is_ascii_digit()) {
        words.contains(&pattern)
    } else {
        norm.contains(pattern)
    }
}

/// Explain a code or a message.
pub fn explain(query: &str) -> Lookup {
    let norm = normalize(query);
    let words: Vec<&str> = norm
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    // An entry's own id (`could-not-reach`, `aadsts700016`), as the suggestions print them.
    if let Some(e) = ENTRIES
        .iter()
        .find(|e| e.id.to_lowercase() == norm.replace(' ', "-"))
    {
        return Lookup::Found(vec![e]);
    }
    let codes = codes_in(query);
    let mut found: Vec<&'static Entry> = Vec::new();
    for code in &codes {
        if let Some(e) = ENTRIES.iter().find(|e| e.code == Some(*code)) {
            found.push(e);
        }
    }
    for e in ENTRIES {
        if !found.iter().any(|f| f.id == e.id)
            && e.patterns.iter().any(|p| pattern_matches(&norm, &words, p))
        {
            found.push(e);
        }
    }
    if !found.is_empty() {
        return Lookup::Found(found);
    }
    Lookup::NotFound {
        code: codes.first().copied(),
        closest: closest(&norm, codes.first().copied(), 3),
    }
}

/// The `n` entries most similar to `norm` (by trigrams on ids, titles and message fragments,
/// and by edit distance between AADSTS numbers).
pub fn closest(norm: &str, code: Option<u32>, n: usize) -> Vec<&'static Entry> {
    let digits: String = match code {
        Some(c) => c.to_string(),
        None => norm.chars().filter(char::is_ascii_digit).collect(),
    };
    let mut scored: Vec<(f64, usize)> = ENTRIES
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut score = trigram_similarity(norm, e.title)
                .max(trigram_similarity(norm, &e.id.replace('-', " ")));
            for p in e.patterns {
                score = score.max(trigram_similarity(norm, p));
            }
            if let (Some(c), false) = (e.code, digits.is_empty()) {
                score = score.max(edit_similarity(&digits, &c.to_string()));
            }
            (score, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(n)
        .map(|(_, i)| &ENTRIES[i])
        .collect()
}

/// An entry as text for a terminal.
pub fn render_text(e: &Entry) -> String {
    let who = e
        .who
        .iter()
        .map(|a| a.label())
        .collect::<Vec<_>>()
        .join(", then ");
    format!(
        "{}: {}\n  who acts: {who}\n  cause:    {}\n  fix:      {}\n  verify:   {}\n  source:   {}\n",
        e.id, e.title, e.cause, e.fix, e.verify, e.source
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(l: &Lookup) -> Vec<&'static str> {
        match l {
            Lookup::Found(v) => v.iter().map(|e| e.id).collect(),
            Lookup::NotFound { .. } => vec![],
        }
    }

    #[test]
    fn every_entry_is_reachable_by_its_id_or_code() {
        for e in ENTRIES {
            assert_eq!(ids(&explain(e.id)), vec![e.id]);
            let q = match e.code {
                Some(c) => c.to_string(),
                None => e.patterns[0].to_string(),
            };
            assert_eq!(ids(&explain(&q)).first(), Some(&e.id), "{q}");
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = ENTRIES.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn code_from_url_and_message() {
        let url = "https://claude.ai/customize/connectors?x=1&error_code=mcp_client_invalid&entra_aadsts_code=65001&entra_trace_id=abc";
        assert_eq!(
            ids(&explain(url)),
            vec!["AADSTS65001", "mcp-client-invalid"]
        );
        assert_eq!(
            ids(&explain("AADSTS7000215: Invalid client secret provided.")),
            vec!["AADSTS7000215"]
        );
        assert_eq!(
            ids(&explain("421 Invalid Host header: axe.axelabs.ai")),
            vec!["invalid-host-header"]
        );
        // A number inside another number is not a match.
        assert!(matches!(explain("port 14212"), Lookup::NotFound { .. }));
    }

    #[test]
    fn unknown_gets_three_closest() {
        match explain("70016") {
            Lookup::NotFound { code, closest } => {
                assert_eq!(code, Some(70016));
                assert_eq!(closest.len(), 3);
                assert_eq!(closest[0].id, "AADSTS700016");
            }
            other => panic!("{other:?}"),
        }
        match explain("invalid hots") {
            Lookup::NotFound { closest, .. } => assert_eq!(closest[0].id, "invalid-host-header"),
            other => panic!("{other:?}"),
        }
    }
}
