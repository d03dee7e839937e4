//! Checklist #3: the protected-resource metadata document (RFC 9728) at the service path, the resource-level path and the default location.

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::*;
use crate::verify::{Check, env_prefix};

impl<'a> Target<'a> {
    /// Fetch and judge a metadata document.
    pub(super) async fn metadata(&self, url: &Url) -> Metadata {
        let seen = match self.send(Method::GET, url, None).await {
            Err(failed) => return Metadata::Unreached(failed),
            Ok(seen) => seen,
        };
        if !seen.ok_200() {
            return Metadata::Unexpected(seen);
        }
        match self.judge_document(&seen.body) {
            Ok(notes) => Metadata::Valid { seen, notes },
            Err(problems) => Metadata::Invalid { seen, problems },
        }
    }

    /// The metadata document's `resource`, `scopes_supported` and `authorization_servers`
    /// (see the module docs for what is accepted and why).
    pub(super) fn judge_document(&self, body: &str) -> Result<String, Vec<Problem>> {
        let app_id_uri = self.app_id_uri();
        let prefix = env_prefix(self.service());
        let doc: Value = match serde_json::from_str(body) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Err(vec![Problem {
                    what: format!("the body is not a JSON object: {}", excerpt(body)),
                    fix: format!(
                        "serve the RFC 9728 document here (Route(\"/{}/{WELL_KNOWN}\", \
                         oauth_protected_resource), seed §4.2 ④)",
                        self.service()
                    ),
                }]);
            }
        };
        let mut problems = Vec::new();
        let mut notes = Vec::new();

        let resource_fix = format!(
            "serve the App ID URI as `resource` ({prefix}_MCP_APP_ID_URI={app_id_uri}): claude.ai \
             sends it to Entra as the token request's resource, and Entra rejects a resource that \
             does not prefix the scopes (AADSTS9010010)"
        );
        match doc.get("resource") {
            Some(Value::String(resource)) if resource == app_id_uri => {
                let mut note = "resource = the App ID URI".to_string();
                if self.endpoint.as_str() != app_id_uri {
                    // RFC 9728 §3.3 wants the URL the client used; through the public host
                    // that is the App ID URI.
                    note.push_str(&format!(
                        " (not the probed {}: equal only through the public host)",
                        self.endpoint
                    ));
                }
                notes.push(note);
            }
            Some(Value::String(resource)) => {
                let mut what = format!(
                    "`resource` is `{}`, expected the App ID URI `{app_id_uri}`",
                    excerpt(resource)
                );
                if resource == self.endpoint.as_str() {
                    what.push_str(
                        " (it is the probed endpoint's URL; make the App ID URI that URL)",
                    );
                } else if resource.trim_end_matches('/') == app_id_uri.trim_end_matches('/') {
                    what.push_str(" (they differ only by a trailing slash; RFC 9728 §3.3 wants them identical)");
                }
                problems.push(Problem {
                    what,
                    fix: resource_fix,
                });
            }
            _ => problems.push(Problem {
                what: "no `resource` string (RFC 9728 §2: REQUIRED)".into(),
                fix: resource_fix,
            }),
        }

        let wanted: Vec<String> = self
            .desired
            .app
            .scopes
            .iter()
            .map(|s| format!("{app_id_uri}/{}", s.value))
            .collect();
        let listed: Vec<&str> = doc
            .get("scopes_supported")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scope_fix = format!(
            "list {} in `scopes_supported`: claude.ai requests the scopes it finds there",
            quote_list(&wanted)
        );
        if doc
            .get("scopes_supported")
            .and_then(Value::as_array)
            .is_none()
        {
            problems.push(Problem {
                what: "no `scopes_supported` array".into(),
                fix: scope_fix,
            });
        } else {
            for (full, scope) in wanted.iter().zip(&self.desired.app.scopes) {
                if listed.contains(&full.as_str()) {
                    notes.push(format!("scopes_supported has {full}"));
                } else if listed.contains(&scope.value.as_str()) {
                    problems.push(Problem {
                        what: format!(
                            "`scopes_supported` has the bare `{}` but not `{full}`",
                            scope.value
                        ),
                        fix: format!(
                            "list the full scope `{full}`: Entra reads a scope without a resource \
                             prefix as a Microsoft Graph scope, so the token would not be for this \
                             app (https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc)"
                        ),
                    });
                } else {
                    problems.push(Problem {
                        what: format!(
                            "`scopes_supported` ({}) does not list `{full}`",
                            excerpt(&quote_list(&listed))
                        ),
                        fix: scope_fix.clone(),
                    });
                }
            }
        }

        let tenant = &self.desired.tenant_id;
        let servers: Vec<&str> = doc
            .get("authorization_servers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let server_fix = format!(
            "serve `\"authorization_servers\": [\"https://login.microsoftonline.com/{tenant}/v2.0\"]` \
             (the MCP authorization spec requires at least one)"
        );
        if servers.is_empty() {
            problems.push(Problem {
                what: "no `authorization_servers`".into(),
                fix: server_fix,
            });
        } else if let Some(server) = servers.iter().find(|s| s.contains(tenant.as_str())) {
            notes.push(format!("authorization server {server}"));
        } else {
            problems.push(Problem {
                what: format!(
                    "`authorization_servers` ({}) does not name the tenant {tenant}",
                    excerpt(&quote_list(&servers))
                ),
                fix: server_fix,
            });
        }

        if problems.is_empty() {
            Ok(notes.join("; "))
        } else {
            Err(problems)
        }
    }

    /// A metadata check from a fetch outcome. `unreachable_is_warning` is for the RFC 9728
    /// default location, which the rendered tunnel rules do not route.
    pub(super) fn metadata_check(
        &self,
        id: &str,
        title: &str,
        outcome: Metadata,
        on_unexpected: impl FnOnce(&Seen) -> Option<String>,
        unreachable_is_warning: Option<&str>,
    ) -> Check {
        match outcome {
            Metadata::Valid { seen, notes } => Check::pass(
                id,
                title,
                format!(
                    "{} {} → {}: {notes}",
                    seen.method,
                    seen.url,
                    status_text(seen.status)
                ),
            ),
            Metadata::Invalid { seen, problems } => invalid_check(id, title, &seen, &problems),
            Metadata::Unexpected(seen) => {
                let advice = on_unexpected(&seen).or_else(|| self.common_fix(&seen));
                match unreachable_is_warning {
                    Some(why) => {
                        let fix = match advice {
                            Some(advice) => format!("{why}\n{advice}"),
                            None => why.to_string(),
                        };
                        Check::warn(id, title, seen.summary(), fix)
                    }
                    None => {
                        let fix = self.fix_for(&seen, advice, "200 with the metadata document");
                        Check::fail(id, title, seen.summary(), fix)
                    }
                }
            }
            Metadata::Unreached(failed) => {
                let fix = self.unreached_fix(&failed);
                match unreachable_is_warning {
                    Some(why) => Check::warn(
                        id,
                        title,
                        failed.summary(self.timeout),
                        format!("{why}\n{fix}"),
                    ),
                    None => Check::fail(id, title, failed.summary(self.timeout), fix),
                }
            }
        }
    }

    /// #3: `GET /<service>/.well-known/oauth-protected-resource`.
    pub(super) async fn metadata_service_path(&self) -> Check {
        let path = format!("{}/{WELL_KNOWN}", self.service());
        let outcome = self.metadata(&self.url(&path)).await;
        self.metadata_check(
            "#3",
            TITLE_METADATA,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the metadata is behind auth: add `/{path}` to `_PUBLIC_PATHS` (seed §4.2 ⑤); \
                     a client cannot log in without reading it first"
                )),
                404 => Some(format!(
                    "the path is not routed: the server needs `Route(\"/{path}\", \
                     oauth_protected_resource)` (seed §4.2 ④) and the tunnel the rule \
                     `^/{svc}/\\.well-known/oauth-protected-resource(/.*)?$` (entraform render)",
                    svc = self.service()
                )),
                _ => None,
            },
            None,
        )
    }

    /// #3a: `GET /<service>/mcp/.well-known/oauth-protected-resource`.
    pub(super) async fn metadata_resource_level(&self) -> Check {
        let path = format!("{}/mcp/{WELL_KNOWN}", self.service());
        let outcome = self.metadata(&self.url(&path)).await;
        self.metadata_check(
            "#3a",
            TITLE_METADATA_RESOURCE,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the resource-level metadata is behind auth, so claude.ai's reconnect loops on \
                     \"Connection has expired\": add `/{path}` to `_PUBLIC_PATHS` and to \
                     `inner.router` (troubleshooting: D-ops-23)"
                )),
                404 => Some(format!(
                    "the path is not routed: serve the metadata at `/{path}` too, public \
                     (troubleshooting: D-ops-23)"
                )),
                _ => None,
            },
            None,
        )
    }

    /// #3b: `GET /.well-known/oauth-protected-resource/<service>/mcp`, where RFC 9728 §3.1 puts
    /// the metadata of `https://<host>/<service>/mcp`. Unreachable is a warning: clients that
    /// follow `resource_metadata` (#4) never ask here.
    pub(super) async fn metadata_default_location(&self) -> Check {
        let mut url = self.root.clone();
        url.set_path(&format!("/{WELL_KNOWN}{}", self.endpoint.path()));
        let outcome = self.metadata(&url).await;
        let rule = format!(
            "^/\\.well-known/oauth-protected-resource{}$",
            regex::escape(self.endpoint.path())
        );
        let why = format!(
            "a client that builds the metadata URL itself (RFC 9728 §3.1) looks here; harmless \
             while WWW-Authenticate's resource_metadata (#4) points at a routed path. To serve \
             it: a tunnel rule `{rule}` to http://{}:{} and a public route for the path",
            self.desired.deploy.upstream_host, self.desired.deploy.proxy_port
        );
        self.metadata_check(
            "#3b",
            TITLE_METADATA_DEFAULT,
            outcome,
            |seen| match seen.status.as_u16() {
                401 | 403 => Some(format!(
                    "the path is behind auth: add `{}` to `_PUBLIC_PATHS`",
                    url.path()
                )),
                _ => None,
            },
            Some(&why),
        )
    }
}
