//! The observed state: what the tenant holds for one service, found statelessly.
//!
//! The app is found by its pinned `app_id`, else by `uniqueName`, else by App ID URI (an app
//! made by hand is adopted, never duplicated; README.md). All look-ups go in one `$batch` (round
//! trip 1); the grants of the app's service principal are round trip 2. When the keys point at
//! different apps, `observe` stops with an error that names them: it never guesses.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::desired::{Desired, GrantResource, MS_GRAPH_APP_ID};
use crate::graph::wire::{Application, OAuth2PermissionGrant, ServicePrincipal};
use crate::graph::{GraphError, GraphRead, Lookup, Query, SpLookup};

/// Which key found the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// The manifest's pinned `app_id`.
    AppId,
    /// `uniqueName` (an app entraform created, or one whose uniqueName was back-filled).
    UniqueName,
    /// The App ID URI (an app made by hand; adopt it and back-fill its uniqueName).
    IdentifierUri,
}

/// What the tenant holds for one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observed {
    /// The application, when one exists.
    pub app: Option<Application>,
    /// How it was found.
    pub found_by: Option<FoundBy>,
    /// The app's service principal in this tenant.
    pub service_principal: Option<ServicePrincipal>,
    /// Microsoft Graph's service principal (resource of the `User.Read` grant).
    pub graph_sp: Option<ServicePrincipal>,
    /// Service principals of every other resource API the desired grants name, by appId
    /// (Microsoft Graph's included).
    pub resource_sps: BTreeMap<String, ServicePrincipal>,
    /// oauth2PermissionGrants whose client is the app's SP.
    pub grants: Vec<OAuth2PermissionGrant>,
    /// Oddities worth telling the operator that do not stop a plan.
    pub warnings: Vec<String>,
}

/// Read the live state for `desired` (round trip 1: one `$batch` of look-ups; round trip 2,
/// only when the SP exists: its grants).
pub async fn observe(read: &impl GraphRead, desired: &Desired) -> Result<Observed, GraphError> {
    let uri = desired.app.identifier_uri.clone();
    let mut queries = app_queries(desired);
    queries.push(Query::ServicePrincipal(match &desired.app_id {
        Some(pinned) => SpLookup::AppId(pinned.clone()),
        None => SpLookup::ServicePrincipalName(uri.clone()),
    }));
    let mut resources = vec![MS_GRAPH_APP_ID.to_string()];
    for grant in &desired.consent {
        if let GrantResource::App(app_id) = &grant.resource
            && !resources.iter().any(|r| r.eq_ignore_ascii_case(app_id))
        {
            resources.push(app_id.clone());
        }
    }
    for r in &resources {
        queries.push(Query::ServicePrincipal(SpLookup::AppId(r.clone())));
    }

    let mut answers = read.query(queries).await?.into_iter();
    let mut next = || {
        answers
            .next()
            .ok_or_else(|| GraphError::invalid("missing answer"))
    };
    let by_app_id = match &desired.app_id {
        Some(_) => Some(next()?.applications()),
        None => None,
    };
    let by_unique = next()?.applications();
    let by_uri = next()?.applications();
    let sp_candidates = next()?.service_principals();
    let mut resource_sps = BTreeMap::new();
    for r in &resources {
        if let Some(sp) = next()?.service_principals().into_iter().next() {
            resource_sps.insert(r.clone(), sp);
        }
    }

    let mut observed = Observed {
        graph_sp: resource_sps.get(MS_GRAPH_APP_ID).cloned(),
        resource_sps,
        ..Default::default()
    };
    let (app, found_by) = resolve_app(desired, by_app_id, by_unique, by_uri)?;

    let mut sp = None;
    for candidate in sp_candidates {
        let ours = app
            .as_ref()
            .and_then(|a| a.app_id.as_deref())
            .is_some_and(|id| id.eq_ignore_ascii_case(&candidate.app_id));
        if ours {
            sp = Some(candidate);
        } else {
            observed.warnings.push(format!(
                "service principal {} (appId {}) lists the App ID URI {uri} but does not belong to {}",
                candidate.id,
                candidate.app_id,
                match &app {
                    Some(a) => format!("app {}", a.app_id.as_deref().unwrap_or("?")),
                    None => "any app registration of this tenant".into(),
                }
            ));
        }
    }
    // The SP was looked up by servicePrincipalNames; an SP whose names have not caught up with
    // the app's identifierUris yet (sync is not immediate) is found by appId instead.
    if sp.is_none()
        && let Some(app_id) = app.as_ref().and_then(|a| a.app_id.as_deref())
        && desired.app_id.is_none()
    {
        sp = read.get_service_principal_by_app_id(app_id).await?;
    }
    if let Some(sp) = &sp {
        observed.grants = read.list_grants(&sp.id).await?;
    }
    observed.app = app;
    observed.found_by = found_by;
    observed.service_principal = sp;
    Ok(observed)
}

fn describe(app: &Application) -> String {
    format!(
        "{} (appId {}, displayName {:?})",
        app.id.as_deref().unwrap_or("?"),
        app.app_id.as_deref().unwrap_or("?"),
        app.display_name.as_deref().unwrap_or("")
    )
}

/// Pick the app from the answers of the three look-ups (pinned appId, uniqueName, App ID URI);
/// an error naming both apps when they disagree. Shared with drift's batched look-ups.
pub fn resolve_app(
    desired: &Desired,
    by_app_id: Option<Vec<Application>>,
    by_unique: Vec<Application>,
    by_uri: Vec<Application>,
) -> Result<(Option<Application>, Option<FoundBy>), GraphError> {
    let uri = &desired.app.identifier_uri;
    if by_uri.len() > 1 {
        let ids: Vec<String> = by_uri.iter().filter_map(|a| a.id.clone()).collect();
        return Err(GraphError::Lookup {
            message: format!(
                "{} apps claim the App ID URI {uri}: {}",
                by_uri.len(),
                by_uri.iter().map(describe).collect::<Vec<_>>().join("; ")
            ),
            ids,
            hint: "delete the duplicate in the Entra portal, or pin the right one with `app_id:` in the manifest".into(),
        });
    }
    if let Some(found) = &by_app_id
        && found.is_empty()
    {
        let pinned = desired.app_id.clone().unwrap_or_default();
        return Err(GraphError::Lookup {
            message: format!(
                "the manifest pins app_id {pinned}, but tenant {} has no such application",
                desired.tenant_id
            ),
            ids: vec![pinned],
            hint: "check the customer/tenant of the manifest, or remove `app_id:` to find the app by uniqueName and App ID URI (or create it)".into(),
        });
    }
    let mut found: Vec<(FoundBy, Application)> = Vec::new();
    for (how, apps) in [
        (FoundBy::AppId, by_app_id.unwrap_or_default()),
        (FoundBy::UniqueName, by_unique),
        (FoundBy::IdentifierUri, by_uri),
    ] {
        found.extend(apps.into_iter().map(|a| (how, a)));
    }
    let Some((first_how, first)) = found.first().cloned() else {
        return Ok((None, None));
    };
    let disagree: Vec<&(FoundBy, Application)> =
        found.iter().filter(|(_, a)| a.id != first.id).collect();
    if !disagree.is_empty() {
        let key = |how: FoundBy| match how {
            FoundBy::AppId => format!("app_id {}", desired.app_id.as_deref().unwrap_or("")),
            FoundBy::UniqueName => format!("uniqueName {}", desired.unique_name),
            FoundBy::IdentifierUri => format!("App ID URI {uri}"),
        };
        let mut parts = vec![format!("{} finds {}", key(first_how), describe(&first))];
        parts.extend(
            disagree
                .iter()
                .map(|(how, a)| format!("{} finds {}", key(*how), describe(a))),
        );
        let mut ids: Vec<String> = found.iter().filter_map(|(_, a)| a.id.clone()).collect();
        ids.dedup();
        return Err(GraphError::Lookup {
            message: format!("the look-ups disagree: {}", parts.join("; ")),
            ids,
            hint: "decide which app is the service's: delete or rename the other (remove its identifier URI), or pin the right one with `app_id:` in the manifest".into(),
        });
    }
    Ok((Some(first), Some(first_how)))
}

/// The look-ups that find `desired`'s application: pinned `app_id`, uniqueName, App ID URI (the
/// same keys as [`observe`]), for batching with other services' look-ups.
pub fn app_queries(desired: &Desired) -> Vec<Query> {
    let mut queries = Vec::new();
    if let Some(pinned) = &desired.app_id {
        queries.push(Query::Application(Lookup::AppId(pinned.clone())));
    }
    queries.push(Query::Application(Lookup::UniqueName(
        desired.unique_name.clone(),
    )));
    queries.push(Query::Application(Lookup::IdentifierUri(
        desired.app.identifier_uri.clone(),
    )));
    queries
}

/// The app of each service (or why its look-ups cannot be trusted), from ONE round trip: the
/// look-ups of every service go in one `$batch` (split by 20 and sent concurrently). Results
/// are in the order of `desired`.
#[allow(clippy::type_complexity)]
pub async fn find_apps(
    read: &impl GraphRead,
    desired: &[Desired],
) -> Result<Vec<Result<(Option<Application>, Option<FoundBy>), GraphError>>, GraphError> {
    let per: Vec<Vec<Query>> = desired.iter().map(app_queries).collect();
    let all: Vec<Query> = per.iter().flatten().cloned().collect();
    let mut answers = read.query(all).await?.into_iter();
    let mut out = Vec::with_capacity(desired.len());
    for (d, queries) in desired.iter().zip(&per) {
        let mut mine: Vec<Vec<Application>> = Vec::with_capacity(queries.len());
        for _ in queries {
            mine.push(
                answers
                    .next()
                    .ok_or_else(|| GraphError::invalid("missing answer"))?
                    .applications(),
            );
        }
        let mut mine = mine.into_iter();
        let by_app_id = d.app_id.as_ref().map(|_| mine.next().unwrap_or_default());
        let by_unique = mine.next().unwrap_or_default();
        let by_uri = mine.next().unwrap_or_default();
        out.push(resolve_app(d, by_app_id, by_unique, by_uri));
    }
    Ok(out)
}
