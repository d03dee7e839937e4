//! What the local tunnel config routes: the half of checklist #10 a file can answer. Each URL
//! the service's ingress rules route (`render::ingress_rules`: the MCP endpoint, its metadata,
//! its health endpoint) is looked up in the config with the cloudflared model of
//! [`crate::render::cloudflared`] (first rule that matches wins, as `cloudflared tunnel ingress
//! rule URL` answers).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Check;
use crate::desired::Desired;
use crate::render::cloudflared::{Config, match_rule};
use crate::render::ingress_rules;

pub(crate) const TITLE_TUNNEL_CONFIG: &str = "tunnel config routes the service's URLs";

/// Where the tunnel config sends each of the service's URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelRouting {
    /// The config as the manifest names it (`~/.axe/tunnels/axelabs/config.yml`).
    pub config: String,
    pub routes: Vec<Route>,
}

/// One URL and the rule it reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub url: String,
    /// 1-based, as cloudflared numbers rules in its messages.
    pub rule: usize,
    pub service: String,
    /// The rule's service is the service's proxy (`http://<upstream_host>:<proxy_port>`).
    pub to_proxy: bool,
}

impl TunnelRouting {
    /// The route of the URL whose path ends with `suffix` (`/blueprint/health`).
    pub fn route_ending(&self, suffix: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.url.ends_with(suffix))
    }
}

/// The tunnel config's path on this machine: `~/` is the home directory, a relative path is
/// relative to the manifest's directory.
pub fn config_path(desired: &Desired, manifest_dir: &Path) -> Option<PathBuf> {
    let raw = desired.deploy.tunnel_config.as_str();
    if let Some(rest) = raw.strip_prefix("~/") {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
        return Some(PathBuf::from(home).join(rest));
    }
    let path = PathBuf::from(raw);
    Some(if path.is_absolute() {
        path
    } else {
        manifest_dir.join(path)
    })
}

/// Route the service's URLs through the config `text`. `Err` says why it could not be read as
/// cloudflared would (cloudflared's own message).
pub fn routing(desired: &Desired, text: &str) -> Result<TunnelRouting, String> {
    let name = &desired.deploy.tunnel_config;
    let config = Config::parse(text, name).map_err(|e| e.message)?;
    let rules = config.validate().map_err(|e| e.message)?;
    let proxy = format!(
        "http://{}:{}",
        desired.deploy.upstream_host, desired.deploy.proxy_port
    );
    let routes = ingress_rules(desired)
        .into_iter()
        .map(|w| {
            let i = match_rule(&rules, &w.probe_url).map_err(|e| e.message)?;
            Ok(Route {
                url: w.probe_url,
                rule: i + 1,
                service: rules[i].service.clone(),
                to_proxy: rules[i].service.trim_end_matches('/') == proxy,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TunnelRouting {
        config: name.clone(),
        routes,
    })
}

/// `#10a`: pass when every URL reaches the proxy, fail naming those that do not, skip when the
/// config is not on this machine (`unavailable` says why).
pub fn routing_check(desired: &Desired, routing: &Result<TunnelRouting, String>) -> Check {
    let cfg = &desired.deploy.tunnel_config;
    let merge = format!(
        "`entraform render {} --merge-cloudflared {cfg}` puts the service's rules above the first rule that catches them",
        desired.source.display()
    );
    match routing {
        Err(why) => Check::skip(
            "#10a",
            TITLE_TUNNEL_CONFIG,
            format!("{cfg} not checked: {why}"),
        ),
        Ok(r) => {
            let lines: Vec<String> = r
                .routes
                .iter()
                .map(|route| format!("{} → rule #{} ({})", route.url, route.rule, route.service))
                .collect();
            let wrong: Vec<String> = r
                .routes
                .iter()
                .filter(|route| !route.to_proxy)
                .map(|route| route.url.clone())
                .collect();
            if wrong.is_empty() {
                Check::pass("#10a", TITLE_TUNNEL_CONFIG, lines.join("; "))
            } else {
                Check::fail(
                    "#10a",
                    TITLE_TUNNEL_CONFIG,
                    lines.join("; "),
                    format!(
                        "{} {} not reach http://{}:{}: {merge}",
                        wrong.join(", "),
                        if wrong.len() == 1 { "does" } else { "do" },
                        desired.deploy.upstream_host,
                        desired.deploy.proxy_port
                    ),
                )
            }
        }
    }
}
