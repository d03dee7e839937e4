//! Drift: the live app against a reference app (frame), through the plan's shape diff.
//!
//! What must differ between two services (their name, host, display name, ids) is replaced by
//! placeholders on both sides before comparing, so "copy frame byte for byte until the diff is
//! empty" becomes an exact, field-by-field comparison (docs/drift.md). The application's properties
//! go through [`crate::plan::compare_shapes`], the very comparison the plan uses (with the
//! reference in place of the desired state); what is not a property of the application (the
//! service principal, admin consent, application permissions, a valid secret) gets its own rows.
//!
//! * [`read`]: batched, bounded look-ups of many apps at once (`drift --all`).
//! * [`reference`]: what `--reference` names, and the file `export` writes.

pub mod read;
pub mod reference;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::desired::{Desired, GRAPH_PERMISSIONS, MS_GRAPH_APP_ID};
use crate::graph::wire::{Application, PasswordCredential};
use crate::plan::{AppShape, FieldChange, ScopeShape, compare_shapes, credential_valid};

pub use read::{MAX_IN_FLIGHT, Target, read_targets};
pub use reference::{REFERENCE_FORMAT, ReferenceError, ReferenceFile, ReferenceSpec};

/// The service-specific values of one side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub service: String,
    pub host: String,
    pub display_name: String,
    /// Object id and appId (replaced wherever they appear, e.g. `api://<appId>`).
    pub ids: Vec<String>,
}

/// Placeholders; never valid service names, hosts or ids, so they cannot collide.
const P_DISPLAY: &str = "{display_name}";
const P_HOST: &str = "{host}";
const P_SERVICE: &str = "{service}";
const P_ID: &str = "{id}";

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replace whole-word occurrences (ASCII case-insensitive) of each needle, longest first, in
/// one pass: a placeholder just written is never searched again.
fn replace_words(text: &str, pairs: &[(String, &'static str)]) -> String {
    let mut pairs: Vec<(String, &str)> = pairs
        .iter()
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, p)| (v.to_ascii_lowercase(), *p))
        .collect();
    pairs.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut last) = (0, 0);
    'scan: while i < text.len() {
        if text.is_char_boundary(i) && !text[..i].chars().next_back().is_some_and(is_word) {
            for (needle, placeholder) in &pairs {
                if lower[i..].starts_with(needle.as_str()) {
                    let end = i + needle.len();
                    if !text[end..].chars().next().is_some_and(is_word) {
                        out.push_str(&text[last..i]);
                        out.push_str(placeholder);
                        i = end;
                        last = end;
                        continue 'scan;
                    }
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

impl Identity {
    /// A service as its manifest describes it, with the ids of its live app.
    pub fn of_desired(d: &Desired, app: Option<&Application>) -> Self {
        Identity {
            service: d.service.clone(),
            host: d.host.clone(),
            display_name: d.display_name.clone(),
            ids: app.map(app_ids).unwrap_or_default(),
        }
    }

    /// The identity an app carries itself (a reference given by appId or as a plain Graph
    /// JSON file): host and service from its App ID URI `https://<host>/<service>/…`, the
    /// display name as it is.
    pub fn infer(app: &Application) -> Self {
        let (host, service) = app
            .identifier_uris
            .iter()
            .flatten()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| u.scheme() == "https")
            .find_map(|u| {
                let host = u.host_str()?.to_string();
                let service = u.path_segments()?.find(|s| !s.is_empty())?.to_string();
                Some((host, service))
            })
            .unwrap_or_default();
        Identity {
            service,
            host,
            display_name: app.display_name.clone().unwrap_or_default(),
            ids: app_ids(app),
        }
    }

    fn pairs(&self) -> Vec<(String, &'static str)> {
        let mut pairs = vec![
            (self.display_name.clone(), P_DISPLAY),
            (self.host.clone(), P_HOST),
            (self.service.clone(), P_SERVICE),
        ];
        pairs.extend(self.ids.iter().map(|id| (id.clone(), P_ID)));
        pairs
    }

    /// Replace this side's identity in a text (consent texts, display name) with placeholders:
    /// whole words only, longest value first, so `Blueprint MCP` wins over `blueprint` and a
    /// service called `auth` leaves `auth_callback` alone.
    pub fn normalize(&self, text: &str) -> String {
        replace_words(text, &self.pairs())
    }

    /// Replace this side's identity in prose the templates fill with the display name
    /// (consent texts, the display name itself): the display name, host and ids, but not the
    /// bare service name. A service may be called like a word of the fixed text (`allows`,
    /// `the`, `access`), and replacing that word on one side only would show drift between two
    /// apps that differ only in identity (found by `tests/drift_props.rs`).
    pub fn normalize_text(&self, text: &str) -> String {
        let pairs: Vec<(String, &'static str)> = self
            .pairs()
            .into_iter()
            .filter(|(_, p)| *p != P_SERVICE)
            .collect();
        replace_words(text, &pairs)
    }

    /// Replace this side's identity in a URI: the host (or an id, `api://<appId>`), and the
    /// first whole path segment equal to the service name under this side's own host or id. The
    /// connector callbacks (`https://claude.ai/api/mcp/…`) are the same for every service and
    /// must stay as they are even when a service is called `claude` or `api`.
    pub fn normalize_uri(&self, uri: &str) -> String {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return self.normalize(uri);
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let exact = |part: &str| -> String {
            let eq = |v: &str| !v.is_empty() && part.eq_ignore_ascii_case(v);
            if eq(&self.host) {
                P_HOST.into()
            } else if eq(&self.service) {
                P_SERVICE.into()
            } else if self.ids.iter().any(|id| eq(id)) {
                P_ID.into()
            } else {
                part.to_string()
            }
        };
        let authority = exact(authority);
        // The service names one segment (`https://<host>/<service>/mcp`): the first that
        // matches, so a service called `mcp` keeps the fixed `/mcp` after it.
        let mut service_left = authority == P_HOST || authority == P_ID;
        let path: Vec<String> = path
            .split('/')
            .map(|segment| match exact(segment) {
                s if s == P_SERVICE && !service_left => segment.to_string(),
                s => {
                    if s == P_SERVICE {
                        service_left = false;
                    }
                    s
                }
            })
            .collect();
        format!("{scheme}://{authority}{}", path.join("/"))
    }

    /// A shape with every service-specific value replaced. Scope values (`mcp.access`) are
    /// not touched: the checklist wants them identical.
    pub fn normalize_shape(&self, shape: &AppShape) -> AppShape {
        let mut s = shape.clone();
        s.display_name = self.normalize_text(&s.display_name);
        s.identifier_uris = s
            .identifier_uris
            .iter()
            .map(|u| self.normalize_uri(u))
            .collect();
        s.redirect_uris = s
            .redirect_uris
            .iter()
            .map(|u| self.normalize_uri(u))
            .collect();
        s.scopes = s
            .scopes
            .iter()
            .map(|sc| ScopeShape {
                admin_consent_display_name: self.normalize_text(&sc.admin_consent_display_name),
                admin_consent_description: self.normalize_text(&sc.admin_consent_description),
                user_consent_display_name: self.normalize_text(&sc.user_consent_display_name),
                user_consent_description: self.normalize_text(&sc.user_consent_description),
                ..sc.clone()
            })
            .collect();
        s.scopes.sort();
        s
    }
}

fn app_ids(app: &Application) -> Vec<String> {
    [app.id.clone(), app.app_id.clone()]
        .into_iter()
        .flatten()
        .collect()
}

/// A service principal, as far as drift needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpSummary {
    pub id: String,
    pub app_id: String,
}

/// One oauth2PermissionGrant of the app's SP, with the resource named portably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantSummary {
    /// `self` (the app's own SP), the resource's appId, or `sp:<objectId>` when the resource
    /// SP could not be read.
    pub resource: String,
    /// `AllPrincipals` (admin consent) or `Principal`.
    pub consent_type: String,
    /// Space-separated scope values.
    pub scope: String,
}

/// What is read beside the application: its SP and the SP's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Related {
    pub service_principal: Option<SpSummary>,
    pub grants: Vec<GrantSummary>,
}

/// One side of a comparison: the application, and (unless only the shape was read, or a plain
/// Graph JSON file was given) its SP and grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub application: Application,
    pub related: Option<Related>,
}

/// One compared field: reference value, this app's value, status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftRow {
    pub field: String,
    pub reference: String,
    pub this_app: String,
    pub status: DriftStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    Same,
    Differs,
    /// Reported, not compared (e.g. secret expiry).
    Info,
}

impl DriftStatus {
    pub fn label(self) -> &'static str {
        match self {
            DriftStatus::Same => "same",
            DriftStatus::Differs => "DIFFERS",
            DriftStatus::Info => "info",
        }
    }
}

fn row(field: impl Into<String>, reference: String, this_app: String, same: bool) -> DriftRow {
    DriftRow {
        field: field.into(),
        reference,
        this_app,
        status: if same {
            DriftStatus::Same
        } else {
            DriftStatus::Differs
        },
    }
}

/// Compare two applications after normalizing each side's identity. Returns the differing
/// fields of the application's properties (empty: no drift), as `old` = this app, `new` = the
/// reference (what converging to the reference would change).
pub fn diff_apps(
    reference: &Application,
    reference_id: &Identity,
    this: &Application,
    this_id: &Identity,
) -> Vec<FieldChange> {
    shape_rows(reference, reference_id, this, this_id)
        .into_iter()
        .filter(|r| r.status == DriftStatus::Differs)
        .map(|r| FieldChange {
            field: r.field,
            old: r.this_app,
            new: r.reference,
        })
        .collect()
}

/// The application's properties, field by field: the plan's comparison with the reference as
/// the wanted side.
fn shape_rows(
    reference: &Application,
    reference_id: &Identity,
    this: &Application,
    this_id: &Identity,
) -> Vec<DriftRow> {
    let want = reference_id.normalize_shape(&AppShape::from_application(reference));
    let have = this_id.normalize_shape(&AppShape::from_application(this));
    compare_shapes(&want, &have)
        .into_iter()
        .map(|c| row(c.field, c.want, c.have, c.same))
        .collect()
}

fn resource_label(resource: &str) -> String {
    if resource.eq_ignore_ascii_case(MS_GRAPH_APP_ID) {
        "Microsoft Graph".into()
    } else {
        resource.to_string()
    }
}

/// Admin-consent scopes by resource, as sorted sets.
fn admin_grants(related: &Related) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for g in related
        .grants
        .iter()
        .filter(|g| g.consent_type == "AllPrincipals")
    {
        out.entry(resource_label(&g.resource))
            .or_default()
            .extend(g.scope.split_whitespace().map(str::to_string));
    }
    out
}

/// Application permissions (`Role` entries of requiredResourceAccess), named where known.
fn app_permissions(app: &Application) -> Vec<String> {
    let mut out: Vec<String> = app
        .required_resource_access
        .iter()
        .flatten()
        .flat_map(|r| {
            r.resource_access
                .iter()
                .filter(|a| a.kind == "Role")
                .map(move |a| {
                    GRAPH_PERMISSIONS
                        .iter()
                        .find(|(_, k, id)| *k == "Role" && id.eq_ignore_ascii_case(&a.id))
                        .map(|(v, _, _)| v.to_string())
                        .unwrap_or_else(|| format!("{}:{}", r.resource_app_id, a.id))
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn show_list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

fn end_time(c: &PasswordCredential) -> Option<OffsetDateTime> {
    crate::credential::end_of(c)
}

/// Valid credentials, and the latest expiry among them.
fn secrets(app: &Application, now: OffsetDateTime) -> (usize, Option<OffsetDateTime>, bool) {
    let creds = app.password_credentials.clone().unwrap_or_default();
    let valid: Vec<&PasswordCredential> =
        creds.iter().filter(|c| credential_valid(c, now)).collect();
    let never = valid.iter().any(|c| end_time(c).is_none());
    (
        valid.len(),
        valid.iter().filter_map(|c| end_time(c)).max(),
        never,
    )
}

fn show_valid(n: usize) -> String {
    match n {
        0 => "no valid secret".into(),
        1 => "1 valid secret".into(),
        n => format!("{n} valid secrets"),
    }
}

fn show_expiry(
    (n, latest, never): (usize, Option<OffsetDateTime>, bool),
    now: OffsetDateTime,
) -> String {
    if n == 0 {
        return "-".into();
    }
    if never {
        return "never expires".into();
    }
    match latest {
        Some(end) => format!(
            "{} ({} days left)",
            end.date(),
            (end - now).whole_days().max(0)
        ),
        None => "-".into(),
    }
}

/// Every compared row of `this` against `reference`. Rows that need the SP and grants are
/// emitted only when both sides carry them.
pub fn compare(
    reference: &Snapshot,
    reference_id: &Identity,
    this: &Snapshot,
    this_id: &Identity,
    now: OffsetDateTime,
) -> Vec<DriftRow> {
    let mut rows = shape_rows(
        &reference.application,
        reference_id,
        &this.application,
        this_id,
    );
    if let (Some(r), Some(t)) = (&reference.related, &this.related) {
        let present =
            |sp: &Option<SpSummary>| if sp.is_some() { "present" } else { "(absent)" }.to_string();
        rows.push(row(
            "servicePrincipal",
            present(&r.service_principal),
            present(&t.service_principal),
            r.service_principal.is_some() == t.service_principal.is_some(),
        ));
        let (rg, tg) = (admin_grants(r), admin_grants(t));
        let resources: BTreeSet<&String> = rg.keys().chain(tg.keys()).collect();
        let show = |g: Option<&BTreeSet<String>>| match g {
            Some(s) if !s.is_empty() => s.iter().cloned().collect::<Vec<_>>().join(" "),
            _ => "(none)".to_string(),
        };
        if resources.is_empty() {
            rows.push(row(
                "oauth2PermissionGrants (admin consent)",
                "(none)".into(),
                "(none)".into(),
                true,
            ));
        }
        for res in resources {
            let (a, b) = (rg.get(res), tg.get(res));
            rows.push(row(
                format!("oauth2PermissionGrants[{res}]"),
                show(a),
                show(b),
                a == b,
            ));
        }
    }
    // A connector app must have no application permissions, whatever the reference has: they
    // belong to a different app (the Mail.Send trap: docs/manifests.md).
    let (rp, tp) = (
        app_permissions(&reference.application),
        app_permissions(&this.application),
    );
    rows.push(row(
        "applicationPermissions (Role)",
        show_list(&rp),
        if tp.is_empty() {
            show_list(&tp)
        } else {
            format!("{} (a connector app must have none)", show_list(&tp))
        },
        tp.is_empty(),
    ));
    let (rs, ts) = (
        secrets(&reference.application, now),
        secrets(&this.application, now),
    );
    rows.push(row(
        "passwordCredentials (valid secret)",
        show_valid(rs.0),
        show_valid(ts.0),
        ts.0 > 0,
    ));
    rows.push(DriftRow {
        field: "passwordCredentials (latest expiry)".into(),
        reference: show_expiry(rs, now),
        this_app: show_expiry(ts, now),
        status: DriftStatus::Info,
    });
    rows
}

/// Which reference a report compares against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferenceInfo {
    /// The service name (manifest, file) or the appId given.
    pub name: String,
    /// `manifest`, `app_id` or `file`.
    pub source: &'static str,
    /// The reference app's appId.
    pub app_id: Option<String>,
}

/// The drift of one service against its reference.
///
/// JSON shape (`--output json`), stable: `{"service", "app_id": string|null, "reference":
/// {"name", "source", "app_id"}, "ok": bool, "differences": n, "rows": [{"field",
/// "reference", "this_app", "status": "same"|"differs"|"info"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    pub service: String,
    pub app_id: Option<String>,
    pub reference: ReferenceInfo,
    pub ok: bool,
    pub differences: usize,
    pub rows: Vec<DriftRow>,
}

impl DriftReport {
    pub fn new(
        service: impl Into<String>,
        app_id: Option<String>,
        reference: ReferenceInfo,
        rows: Vec<DriftRow>,
    ) -> Self {
        let differences = rows
            .iter()
            .filter(|r| r.status == DriftStatus::Differs)
            .count();
        DriftReport {
            service: service.into(),
            app_id,
            reference,
            ok: differences == 0,
            differences,
            rows,
        }
    }

    /// The report of a service whose app does not exist.
    pub fn missing(service: impl Into<String>, reference: ReferenceInfo) -> Self {
        Self::new(
            service,
            None,
            reference,
            vec![row(
                "application",
                "present".into(),
                "(absent: run `entraform apply`)".into(),
                false,
            )],
        )
    }

    pub fn differing(&self) -> impl Iterator<Item = &DriftRow> {
        self.rows
            .iter()
            .filter(|r| r.status == DriftStatus::Differs)
    }

    /// The table: field | reference | this app | status, then a summary line.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "drift {} ({}) against {} ({})\n\n",
            self.service,
            self.app_id.as_deref().unwrap_or("no app"),
            self.reference.name,
            self.reference.app_id.as_deref().unwrap_or("?"),
        );
        let header = ["FIELD", "REFERENCE", "THIS APP", "STATUS"];
        let cells: Vec<[&str; 4]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.field.as_str(),
                    r.reference.as_str(),
                    r.this_app.as_str(),
                    r.status.label(),
                ]
            })
            .collect();
        out.push_str(&table(&header, &cells));
        if self.ok {
            let _ = writeln!(
                out,
                "\n{}: no drift from {}.",
                self.service, self.reference.name
            );
        } else {
            let fields: Vec<&str> = self.differing().map(|r| r.field.as_str()).collect();
            let _ = writeln!(
                out,
                "\n{}: {} field{} differ{} from {}: {}",
                self.service,
                self.differences,
                if self.differences == 1 { "" } else { "s" },
                if self.differences == 1 { "s" } else { "" },
                self.reference.name,
                fields.join(", ")
            );
        }
        out
    }
}

/// Widest a value column gets before its text wraps (at `, ` or a space).
const WRAP: usize = 44;

/// Break a cell into lines of at most `max` characters at spaces (a longer word is cut).
fn wrap(cell: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut rest = cell;
    while !rest.is_empty() {
        // the next token, with the separator it ends in
        let cut = rest.find(' ').map(|i| i + 1).unwrap_or(rest.len());
        let (mut token, tail) = rest.split_at(cut);
        if !line.is_empty() && line.chars().count() + token.trim_end().chars().count() > max {
            lines.push(line.trim_end().to_string());
            line.clear();
        }
        // a single token wider than a line (an id list without spaces) is cut hard
        while token.trim_end().chars().count() > max {
            let at = token
                .char_indices()
                .nth(max)
                .map(|(i, _)| i)
                .unwrap_or(token.len());
            lines.push(token[..at].to_string());
            token = &token[at..];
        }
        line.push_str(token);
        rest = tail;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// A plain text table; the middle columns wrap at [`WRAP`], the last column is not padded.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[&str; N]]) -> String {
    let split = |r: &[&str; N]| -> Vec<Vec<String>> {
        r.iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 || i + 1 == N {
                    vec![c.to_string()]
                } else {
                    wrap(c, WRAP)
                }
            })
            .collect()
    };
    let all: Vec<Vec<Vec<String>>> = std::iter::once(header)
        .chain(rows.iter())
        .map(split)
        .collect();
    let mut widths = [0usize; N];
    for r in &all {
        for (w, lines) in widths.iter_mut().zip(r) {
            for l in lines {
                *w = (*w).max(l.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in &all {
        let height = r.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            let mut line = String::new();
            for (i, (lines, w)) in r.iter().zip(widths.iter()).enumerate() {
                let c = lines.get(k).map(String::as_str).unwrap_or("");
                if i + 1 == N {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// The drift check apply ends with (its `--output json` key `drift`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftSummary {
    pub reference: String,
    pub found: bool,
    /// `old` = this app, `new` = the reference.
    pub differences: Vec<FieldChange>,
}

#[cfg(test)]
mod tests;
