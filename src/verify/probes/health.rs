//! Checklist #2: the health endpoint.

use reqwest::Method;

use super::*;
use crate::verify::Check;

impl<'a> Target<'a> {
    /// #2: `GET /<service>/health` → 200.
    pub(super) async fn health(&self) -> Check {
        let url = self.url(&format!("{}/health", self.service()));
        match self.send(Method::GET, &url, None).await {
            Err(failed) => self.unreached("#2", TITLE_HEALTH, &failed),
            Ok(seen) if seen.ok_200() => Check::pass("#2", TITLE_HEALTH, seen.summary()),
            Ok(seen) => {
                let specific = match seen.status.as_u16() {
                    401 | 403 => Some(format!(
                        "the auth middleware guards the health path: add `/{}/health` to \
                         `_PUBLIC_PATHS` (seed §4.2 ⑤)",
                        self.service()
                    )),
                    404 => Some(self.health_not_found()),
                    _ => None,
                };
                Check::fail(
                    "#2",
                    TITLE_HEALTH,
                    seen.summary(),
                    self.fix_for(&seen, specific, "200"),
                )
            }
        }
    }

    /// Why `/<service>/health` answered 404: the tunnel (no rule reaches the proxy) or the app
    /// (no route), told apart by the local tunnel config when it was read.
    pub(super) fn health_not_found(&self) -> String {
        let svc = self.service();
        let app = format!("the server needs `Route(\"/{svc}/health\", health)` (seed §4.2 ④)");
        let up = &self.desired.deploy.upstream_host;
        let port = self.desired.deploy.proxy_port;
        let merge = format!(
            "`entraform render MANIFEST --merge-cloudflared {}` adds `^/{svc}/health$` to \
             http://{up}:{port}",
            self.desired.deploy.tunnel_config
        );
        let route = self.routing.and_then(|r| {
            r.route_ending(&format!("/{svc}/health"))
                .map(|route| (r, route))
        });
        match route {
            Some((r, route)) if route.to_proxy => format!(
                "the tunnel config {} routes {} to the proxy (rule #{}), so the 404 is the \
                 app's: {app}",
                r.config, route.url, route.rule
            ),
            Some((r, route)) => format!(
                "the tunnel config {} sends {} to rule #{} ({}), not to the proxy: {merge}",
                r.config, route.url, route.rule, route.service
            ),
            None => format!(
                "the path is not routed: {app}; a 404 from the tunnel instead means no ingress \
                 rule reaches the proxy: {merge}"
            ),
        }
    }
}
