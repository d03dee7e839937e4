//! Checklist #4 and #5: a request without a bearer and one with a fake bearer must both be refused with 401.

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::*;
use crate::verify::Check;

impl<'a> Target<'a> {
    /// #4: `POST /<service>/mcp` without a token → 401 with `WWW-Authenticate: Bearer …
    /// resource_metadata="…"`, and that URL serves the metadata.
    pub(super) async fn no_bearer(&self) -> Check {
        let (id, title) = ("#4", TITLE_NO_BEARER);
        let seen = match self.send(Method::POST, &self.endpoint, None).await {
            Err(failed) => return self.unreached(id, title, &failed),
            Ok(seen) => seen,
        };
        let header_fix = format!(
            "every 401 must carry `WWW-Authenticate: Bearer resource_metadata=\"{}\"` (RFC 9728 \
             §5.1; seed §4.2 ②): it is how claude.ai finds where to log in",
            self.expected_resource_metadata()
        );
        if seen.status != StatusCode::UNAUTHORIZED || seen.redirect.is_some() {
            return self.not_refused(&seen, &header_fix);
        }
        let values: Vec<String> = seen
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.is_empty() {
            return Check::fail(
                id,
                title,
                format!("{}; no WWW-Authenticate header", seen.summary()),
                header_fix,
            );
        }
        let challenges: Vec<Challenge> = values.iter().flat_map(|v| parse_challenges(v)).collect();
        let shown = excerpt(&values.join(", "));
        let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        else {
            return Check::fail(
                id,
                title,
                format!(
                    "{}; WWW-Authenticate: {shown} has no Bearer challenge",
                    seen.summary()
                ),
                header_fix,
            );
        };
        let Some(metadata_ref) = bearer.param("resource_metadata") else {
            return Check::fail(
                id,
                title,
                format!(
                    "{}; WWW-Authenticate: {shown} has no resource_metadata",
                    seen.summary()
                ),
                header_fix,
            );
        };
        let metadata_url = match self.endpoint.join(metadata_ref) {
            Ok(url) => url,
            Err(err) => {
                return Check::fail(
                    id,
                    title,
                    format!(
                        "401, WWW-Authenticate: {shown}; resource_metadata is not a URL: {err}"
                    ),
                    header_fix,
                );
            }
        };
        let head = format!(
            "{} {} → 401, WWW-Authenticate: {shown}",
            seen.method, seen.url
        );
        self.follow_resource_metadata(&metadata_url, head).await
    }

    /// #4 when the answer was not a plain 401.
    fn not_refused(&self, seen: &Seen, header_fix: &str) -> Check {
        let (id, title) = ("#4", TITLE_NO_BEARER);
        let specific = match seen.status.as_u16() {
            200..=299 => Some(format!(
                "the MCP endpoint answers without a token: the JWT auth middleware must guard \
                 `/{}/mcp` (seed §4.2 ⑤)",
                self.service()
            )),
            403 => Some(format!(
                "answer a missing token with 401, not 403: {header_fix}"
            )),
            404 => Some(format!(
                "the endpoint is not routed: `Mount(\"/{svc}\", app=mcp_app)` (seed §4.2 ④) \
                 and the tunnel rule `^/{svc}/mcp(/.*)?$` (entraform render)",
                svc = self.service()
            )),
            _ => None,
        };
        Check::fail(
            id,
            title,
            seen.summary(),
            self.fix_for(seen, specific, "401"),
        )
    }

    /// The rest of #4: the URL `resource_metadata` names must serve the metadata document.
    async fn follow_resource_metadata(&self, metadata_url: &Url, head: String) -> Check {
        let (id, title) = ("#4", TITLE_NO_BEARER);
        let mut point_fix = format!(
            "point resource_metadata at a public, routed path: `{}` (seed §4.2 ②)",
            self.expected_resource_metadata()
        );
        if metadata_url.scheme() != self.endpoint.scheme() {
            // Behind Caddy/cloudflared the app sees plain HTTP; a URL built from the request
            // gets the wrong scheme.
            point_fix = format!(
                "resource_metadata says {}:// but the service is served over {}: build the URL \
                 from the App ID URI, not from the request the proxy forwarded; {point_fix}",
                metadata_url.scheme(),
                self.endpoint.scheme()
            );
        }
        match self.metadata(metadata_url).await {
            Metadata::Valid { seen: doc, notes } => Check::pass(
                id,
                title,
                format!(
                    "{head}; GET {} → {}: {notes}",
                    doc.url,
                    status_text(doc.status)
                ),
            ),
            Metadata::Invalid {
                seen: doc,
                problems,
            } => {
                let mut check = invalid_check(id, title, &doc, &problems);
                check.detail = format!("{head}; {}", check.detail);
                check
            }
            Metadata::Unexpected(doc) => {
                let specific = match doc.status.as_u16() {
                    401 | 403 => Some(format!(
                        "the metadata that resource_metadata names is behind auth: add `{}` to \
                         `_PUBLIC_PATHS`",
                        doc.url.path()
                    )),
                    _ if metadata_url.scheme() != self.endpoint.scheme() => Some(point_fix),
                    404 => Some(point_fix),
                    _ => None,
                };
                let fix = self.fix_for(&doc, specific, "200 with the metadata document");
                Check::fail(
                    id,
                    title,
                    format!("{head}; resource_metadata: {}", doc.summary()),
                    fix,
                )
            }
            Metadata::Unreached(failed) => Check::fail(
                id,
                title,
                format!(
                    "{head}; resource_metadata: {}",
                    failed.summary(self.timeout)
                ),
                format!("{point_fix}\n{}", self.unreached_fix(&failed)),
            ),
        }
    }

    /// #5: `POST /<service>/mcp` with a fake bearer → 401 whose JSON body says why
    /// (`error.context.reason`, seed §4.2 ②, §10 #2).
    pub(super) async fn fake_bearer(&self) -> Check {
        let (id, title) = ("#5", TITLE_FAKE_BEARER);
        let seen = match self
            .send(Method::POST, &self.endpoint, Some(FAKE_BEARER))
            .await
        {
            Err(failed) => return self.unreached(id, title, &failed),
            Ok(seen) => seen,
        };
        let container = &self.desired.deploy.container_name;
        let reason_fix = "`_unauthorized` must put the reason in the log and in the body as \
                          error.message and error.context.reason: `{\"error\": {\"code\": …, \
                          \"message\": <reason>, \"context\": {\"request_id\": …, \"reason\": \
                          <reason>}}}` (seed §4.2 ②, §10 #2); with one fixed message every 401 \
                          looks the same and the cause stays hidden";
        if seen.status != StatusCode::UNAUTHORIZED || seen.redirect.is_some() {
            let specific = match seen.status.as_u16() {
                200..=299 => Some(format!(
                    "the server ACCEPTED a fake token: check the JWT verification in \
                     auth_oidc.py (signature, audience, issuer; seed §4.1) and `docker logs {container}`"
                )),
                403 => Some(format!(
                    "answer an invalid token with 401, not 403; {reason_fix}"
                )),
                500 if !seen.body.contains("Task group is not initialized") => Some(format!(
                    "the token verifier crashes instead of answering 401: `docker logs {container} \
                     --since 5m 2>&1 | grep -iE 'error|exception|traceback'`; seen before: a \
                     2-argument httpx.Timeout (seed §10 #1), a stale DATABASE_URL making every \
                     Bearer request a 500 (§10 #6, check #15)"
                )),
                _ => None,
            };
            return Check::fail(
                id,
                title,
                seen.summary(),
                self.fix_for(&seen, specific, "401"),
            );
        }
        let body: Option<Value> = serde_json::from_str(&seen.body).ok();
        let error = body.as_ref().and_then(|b| b.get("error"));
        let reason = error
            .and_then(|e| e.pointer("/context/reason"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
        match (reason, message) {
            (Some(reason), Some(message)) => {
                let mut detail = format!(
                    "{} {} → 401, reason: {}",
                    seen.method,
                    seen.url,
                    excerpt(reason)
                );
                if message != reason {
                    detail.push_str(&format!(" (error.message: {})", excerpt(message)));
                }
                Check::pass(id, title, detail)
            }
            (Some(_), None) => Check::fail(
                id,
                title,
                format!(
                    "{}; error.context.reason is there but error.message is not",
                    seen.summary()
                ),
                reason_fix,
            ),
            (None, _) => {
                let what = if body.is_none() {
                    "the body is not JSON"
                } else {
                    "no error.context.reason in the body"
                };
                Check::fail(id, title, format!("{}; {what}", seen.summary()), reason_fix)
            }
        }
    }
}
