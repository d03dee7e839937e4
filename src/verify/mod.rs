//! `entraform verify`: the deployment checklist of the seed (`mcp-server-checklist` §8, #1–#16)
//! as one report.
//!
//! Two halves feed the same [`VerifyReport`]: the HTTP probes #2–#5 ([`probes`]) and the Entra
//! checks #11–#13 + consent (added by the command on top of this). The items only a shell on the
//! Docker host can check (#1, #6–#10, #15, #16) and the claude.ai registration (#14) become
//! [`CheckStatus::Manual`] checks carrying the exact command with the service's real names
//! ([`manual_checks`]).

use std::path::Path;

use serde::Serialize;

use crate::desired::Desired;
use crate::exit::ExitStatus;

pub mod entra;
pub mod probes;
pub mod tunnel;

/// The outcome of one checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Checked and right.
    Pass,
    /// Checked and wrong: `verify` exits 3.
    Fail,
    /// Checked; not what the standards recommend, but nothing breaks because of it.
    Warn,
    /// Not checked (no `--url`, or the item does not apply to this service).
    Skip,
    /// Only a person on the Docker host (or in claude.ai) can check it: `detail` is the exact
    /// command to run and `fix` what its output must show.
    Manual,
}

impl CheckStatus {
    fn label(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Warn => "warn",
            CheckStatus::Skip => "skip",
            CheckStatus::Manual => "manual",
        }
    }
}

/// One checklist item.
///
/// For `Pass`/`Fail`/`Warn`/`Skip`, `detail` says what was seen (URL, status, header, body
/// excerpt) and `fix` what to change. For `Manual`, `detail` is the exact command and `fix` what
/// its output must show (and what to do when it does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The checklist number, `#2`; a letter suffix for sub-items (`#3a`).
    pub id: String,
    pub title: String,
    pub status: CheckStatus,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            id: id.into(),
            title: title.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }

    pub fn pass(id: &str, title: &str, detail: impl Into<String>) -> Self {
        Check::new(id, title, CheckStatus::Pass, detail, None)
    }

    pub fn fail(id: &str, title: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(id, title, CheckStatus::Fail, detail, Some(fix.into()))
    }

    pub fn warn(id: &str, title: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(id, title, CheckStatus::Warn, detail, Some(fix.into()))
    }

    pub fn skip(id: &str, title: &str, detail: impl Into<String>) -> Self {
        Check::new(id, title, CheckStatus::Skip, detail, None)
    }

    pub fn manual(
        id: &str,
        title: &str,
        command: impl Into<String>,
        expect: impl Into<String>,
    ) -> Self {
        Check::new(id, title, CheckStatus::Manual, command, Some(expect.into()))
    }

    /// Sort key: the number after `#`, then the suffix; ids without a number sort last.
    fn order(&self) -> (u32, String) {
        let rest = self.id.strip_prefix('#').unwrap_or(&self.id);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse() {
            Ok(n) => (n, rest[digits.len()..].to_string()),
            Err(_) => (u32::MAX, String::new()),
        }
    }
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
    pub manual: usize,
}

/// The result of `entraform verify` for one service.
///
/// JSON shape (`--output json`), stable:
/// `{"service": "blueprint", "ok": bool, "summary": {"pass", "fail", "warn", "skip", "manual"},
///   "checks": [{"id", "title", "status", "detail", "fix"}]}` — `status` is one of
/// `pass|fail|warn|skip|manual`, `fix` is a string or null, checks are in checklist order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub service: String,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// A report with the checks in checklist order (stable for equal ids), whatever order the
    /// halves produced them in.
    pub fn new(service: impl Into<String>, mut checks: Vec<Check>) -> Self {
        checks.sort_by_cached_key(Check::order);
        VerifyReport {
            service: service.into(),
            checks,
        }
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for check in &self.checks {
            match check.status {
                CheckStatus::Pass => s.pass += 1,
                CheckStatus::Fail => s.fail += 1,
                CheckStatus::Warn => s.warn += 1,
                CheckStatus::Skip => s.skip += 1,
                CheckStatus::Manual => s.manual += 1,
            }
        }
        s
    }

    /// No check failed (warnings, skips and manual items do not count against it).
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(|c| c.status == CheckStatus::Fail)
    }

    /// 3 (differences) when any check failed, else 0.
    pub fn exit_status(&self) -> ExitStatus {
        if self.ok() {
            ExitStatus::Success
        } else {
            ExitStatus::Differences
        }
    }

    /// The human table: one row per check, what was seen and the fix indented under it, and a
    /// summary line.
    pub fn render_text(&self) -> String {
        let id_width = self
            .checks
            .iter()
            .map(|c| c.id.chars().count())
            .max()
            .unwrap_or(2)
            .max(2);
        let indent = " ".repeat(id_width + 2 + 6 + 2);
        let mut out = format!("verify {}\n\n", self.service);
        out.push_str(&format!("{:<id_width$}  {:<6}  CHECK\n", "ID", "STATUS"));
        for check in &self.checks {
            out.push_str(&format!(
                "{:<id_width$}  {:<6}  {}\n",
                check.id,
                check.status.label(),
                check.title
            ));
            let (detail_label, fix_label) = match check.status {
                CheckStatus::Manual => ("run:    ", "expect: "),
                _ => ("", "fix: "),
            };
            push_block(&mut out, &indent, detail_label, &check.detail);
            if let Some(fix) = &check.fix {
                push_block(&mut out, &indent, fix_label, fix);
            }
        }
        let s = self.summary();
        out.push_str(&format!(
            "\n{}: {} passed, {} failed, {} warning{}, {} to check by hand, {} skipped\n",
            self.service,
            s.pass,
            s.fail,
            s.warn,
            if s.warn == 1 { "" } else { "s" },
            s.manual,
            s.skip
        ));
        out
    }
}

/// `label` + text, every line indented, continuation lines aligned under the text.
fn push_block(out: &mut String, indent: &str, label: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    let pad = " ".repeat(label.chars().count());
    for (i, line) in text.lines().enumerate() {
        let lead = if i == 0 { label } else { pad.as_str() };
        out.push_str(indent);
        out.push_str(lead);
        out.push_str(line);
        out.push('\n');
    }
}

impl Serialize for VerifyReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Doc<'a> {
            service: &'a str,
            ok: bool,
            summary: Summary,
            checks: &'a [Check],
        }
        Doc {
            service: &self.service,
            ok: self.ok(),
            summary: self.summary(),
            checks: &self.checks,
        }
        .serialize(serializer)
    }
}

/// `SERVICE` as it appears in env names: `blueprint` → `BLUEPRINT`, `my-svc` → `MY_SVC`.
pub(crate) fn env_prefix(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// The cloudflared tunnel's name: the directory holding its config
/// (`~/.axe/tunnels/axelabs/config.yml` → `axelabs`).
pub fn tunnel_name(desired: &Desired) -> Option<String> {
    Path::new(&desired.deploy.tunnel_config)
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "~" && *n != ".")
        .map(str::to_owned)
}

/// Quote a word for a POSIX shell when it needs it (names here are normally plain).
fn sh(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,~".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The checklist items only a shell on the Docker host (or a person in claude.ai) can check:
/// #1, #6–#10, #14–#16, each with the exact command for this service. #15/#16 are about the
/// database and are skipped for a service that does not use postgres.
pub fn manual_checks(desired: &Desired) -> Vec<Check> {
    let container = sh(&desired.deploy.container_name);
    let proxy = sh(&desired.deploy.proxy_name);
    let upstream = format!(
        "{}:{}",
        desired.deploy.container_name, desired.deploy.container_port
    );
    let (tunnel, tunnel_note) = match tunnel_name(desired) {
        Some(t) => (t, String::new()),
        None => (
            "TUNNEL".to_string(),
            format!(
                "\n(the tunnel name could not be read from the tunnel config path `{}`: \
                 replace TUNNEL with it)",
                desired.deploy.tunnel_config
            ),
        ),
    };
    // The tunnel's container is named `<tunnel>-tunnel` on the hosts of the seed (`axelabs-tunnel`).
    let tunnel_container = sh(&format!("{tunnel}-tunnel"));
    let networks = desired.deploy.networks.join(", ");
    let endpoint = format!("https://{}/{}/mcp", desired.host, desired.service);

    // With blue/green, `grep <service>-mcp` lists both colours, and both must be healthy: a
    // swap moves the alias to the passive one.
    let (inspect, colours) = match &desired.deploy.blue_green {
        Some(bg) => (
            sh(&format!("{}-{}", desired.deploy.container_name, bg.active)),
            format!(
                " Blue/green: both `{0}-blue` and `{0}-green` are listed and both must be healthy \
                 (the alias is on {1}; a swap moves it to the other).",
                desired.deploy.container_name, bg.active
            ),
        ),
        None => (container.clone(), String::new()),
    };
    let mut checks = vec![
        Check::manual(
            "#1",
            "container healthy",
            format!("docker ps | grep {container}"),
            format!(
                "`Up … (healthy)`. Unhealthy: `docker inspect --format '{{{{json .State.Health}}}}' \
                 {inspect}`; a Python image needs the curl healthcheck, not a leftover \
                 `node -e fetch(...)` one (seed §5 ③).{colours}"
            ),
        ),
        Check::manual(
            "#6",
            "boot log: session manager started",
            format!("docker logs {container} 2>&1 | grep 'StreamableHTTP session manager started'"),
            "one line. Missing (or \"Task group is not initialized\" in the log): the Starlette \
             lifespan must forward FastMCP's `mcp_app.router.lifespan_context` (seed §4.2 ①)."
                .to_string(),
        ),
        Check::manual(
            "#7",
            "JWKS fetch succeeded",
            format!("docker logs {container} 2>&1 | grep 'discovery/v2.0/keys'"),
            "after the first authenticated call: `GET …/discovery/v2.0/keys \"HTTP/1.1 200 OK\"`. \
             A 500 instead: `httpx.Timeout` needs all four arguments (seed §4.1 ①)."
                .to_string(),
        ),
        Check::manual(
            "#8",
            "container DNS alias reachable from the tunnel",
            format!(
                "docker exec {tunnel_container} ping -c1 {}",
                sh(&desired.deploy.container_name)
            ),
            format!(
                "a reply. None: give the mcp service the network alias `{}` and join the shared \
                 network ({networks}) the tunnel is on (seed §5 ②).{tunnel_note}",
                desired.deploy.container_name
            ),
        ),
        Check::manual(
            "#9",
            "Caddy reaches the backend",
            format!("docker logs {proxy} 2>&1 | grep {}", sh(&upstream)),
            format!(
                "requests proxied to upstream `{upstream}`. Dial errors: the container is down \
                 or not on the proxy's network (`docker ps | grep {container}`)."
            ),
        ),
        Check::manual(
            "#10",
            "cloudflared ingress routes the service",
            format!("cloudflared tunnel info {}", sh(&tunnel)),
            format!(
                "the tunnel is connected and serves `{host}`. To see the rule a URL hits: \
                 `cloudflared tunnel --config {cfg} ingress rule {endpoint}` must match \
                 `http://{up}:{port}` (render with `--merge-cloudflared` to add the service's rules; #10a checks the local config).{tunnel_note}",
                host = desired.host,
                cfg = sh(&desired.deploy.tunnel_config),
                up = desired.deploy.upstream_host,
                port = desired.deploy.proxy_port,
            ),
        ),
        Check::manual(
            "#14",
            "claude.ai connector registration",
            format!(
                "claude.ai → Settings → Connectors → Add custom connector: URL {endpoint}, \
                 Client ID = the appId of the app `{}`, Client Secret = the vault's `{}`",
                desired.unique_name, desired.secret.vault_path
            ),
            "after the Microsoft login and consent, the connector lists the server's tools. \
             A message instead: `entraform explain \"<message>\"`."
                .to_string(),
        ),
    ];
    if desired.deploy.uses_postgres {
        checks.push(Check::manual(
            "#15",
            "DATABASE_URL is postgres",
            format!("docker exec {container} printenv DATABASE_URL"),
            format!(
                "`postgresql://…` or `postgresql+asyncpg://…`. A SQLite `file:./…` is a stale line in \
                 `{}`: remove it so the compose default applies (seed §10 #6).",
                desired.deploy.env_file
            ),
        ));
        checks.push(Check::manual(
            "#16",
            "startup probe passed",
            format!("docker logs {container} 2>&1 | grep 'startup probe'"),
            "`startup probe: DB reachable, schema accessible`. Missing: run `SELECT 1` in the \
             lifespan and raise on failure, so a broken database fails the healthcheck instead \
             of every request (seed §8 #16)."
                .to_string(),
        ));
    } else {
        let why = "the manifest says this service does not use postgres";
        checks.push(Check::skip("#15", "DATABASE_URL is postgres", why));
        checks.push(Check::skip("#16", "startup probe passed", why));
    }
    checks
}

/// What the HTTP items say when `--url` was not given.
pub fn unprobed_checks(desired: &Desired) -> Vec<Check> {
    let why = format!(
        "not probed: pass --url https://{} to run the HTTP probes",
        desired.host
    );
    [
        ("#2", probes::TITLE_HEALTH),
        ("#3", probes::TITLE_METADATA),
        ("#4", probes::TITLE_NO_BEARER),
        ("#5", probes::TITLE_FAKE_BEARER),
    ]
    .into_iter()
    .map(|(id, title)| Check::skip(id, title, why.clone()))
    .collect()
}

#[cfg(test)]
mod tests;
