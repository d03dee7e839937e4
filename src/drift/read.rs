//! Reading many apps at once: every look-up of every target goes into one set of `$batch`
//! requests (chunks of 20, at most [`MAX_IN_FLIGHT`] in flight), so checking fifty services
//! costs a constant handful of round trips, not one per service.
//!
//! Waves: (1) every app look-up (pinned appId, uniqueName, App ID URI) plus each app's SP by
//! its App ID URI and Microsoft Graph's SP; (2) the grants of every SP found, and the SP by
//! appId where the App ID URI did not find it (names sync late); (3) grants of those, and the
//! SPs of grant resources not known yet. Waves 3 is usually empty and costs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::desired::{Desired, MS_GRAPH_APP_ID};
use crate::graph::client::BATCH_LIMIT;
use crate::graph::wire::{Application, OAuth2PermissionGrant, ServicePrincipal};
use crate::graph::{Answer, GraphError, GraphRead, Lookup, Query, SpLookup};

use super::{GrantSummary, Related, Snapshot, SpSummary};

/// At most this many `$batch` requests in flight at once (8 × 20 = 160 look-ups per round
/// trip): enough for fifty services in one wave, few enough not to invite throttling
/// (<https://learn.microsoft.com/graph/throttling>).
pub const MAX_IN_FLIGHT: usize = 8;

/// One app to read.
#[derive(Debug, Clone)]
pub enum Target {
    /// Found statelessly like apply: the pinned `app_id`, else `uniqueName`, else the App ID
    /// URI (all three asked at once; disagreeing answers are an error naming both apps).
    Manifest(Box<Desired>),
    /// By application (client) id.
    AppId(String),
    /// By object id.
    ObjectId(String),
}

/// Run independent reads, chunked by 20, at most [`MAX_IN_FLIGHT`] chunks concurrently.
/// Answers are in the order of `queries`.
pub async fn run_queries<R>(reader: &R, queries: Vec<Query>) -> Result<Vec<Answer>, GraphError>
where
    R: GraphRead + Clone + Send + 'static,
{
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for (i, chunk) in queries.chunks(BATCH_LIMIT).enumerate() {
        let (reader, chunk, permits) = (reader.clone(), chunk.to_vec(), permits.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, reader.query(chunk).await)
        });
    }
    let mut parts = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, answers) =
            joined.map_err(|e| GraphError::invalid(format!("a look-up task failed: {e}")))?;
        parts.push((i, answers?));
    }
    parts.sort_by_key(|(i, _)| *i);
    Ok(parts.into_iter().flat_map(|(_, a)| a).collect())
}

/// Collects queries and hands back their answers by slot.
#[derive(Default)]
struct Wave {
    queries: Vec<Query>,
}

impl Wave {
    fn push(&mut self, q: Query) -> usize {
        self.queries.push(q);
        self.queries.len() - 1
    }

    async fn run<R>(self, reader: &R) -> Result<Vec<Option<Answer>>, GraphError>
    where
        R: GraphRead + Clone + Send + 'static,
    {
        Ok(run_queries(reader, self.queries)
            .await?
            .into_iter()
            .map(Some)
            .collect())
    }
}

fn take(answers: &mut [Option<Answer>], slot: Option<usize>) -> Option<Answer> {
    slot.and_then(|i| answers.get_mut(i).and_then(Option::take))
}

#[derive(Default)]
struct Slots {
    by_app_id: Option<usize>,
    by_unique: Option<usize>,
    by_uri: Option<usize>,
    by_object: Option<usize>,
    sp: Option<usize>,
}

/// Per target while reading.
struct Progress {
    app: Result<Option<Application>, GraphError>,
    sp: Option<ServicePrincipal>,
    grants: Vec<OAuth2PermissionGrant>,
}

/// Read every target: its application and, with `related`, its SP and grants. The outer error
/// is a failure of Graph itself; the inner one a look-up that cannot be decided for that
/// target (several apps claim its keys).
pub async fn read_targets<R>(
    reader: &R,
    targets: &[Target],
    related: bool,
) -> Result<Vec<Result<Option<Snapshot>, GraphError>>, GraphError>
where
    R: GraphRead + Clone + Send + 'static,
{
    // Wave 1: the apps, each app's SP where a key finds it directly, Microsoft Graph's SP.
    let mut wave = Wave::default();
    let slots = wave_one(&mut wave, targets, related);
    let graph_slot = related.then(|| {
        wave.push(Query::ServicePrincipal(SpLookup::AppId(
            MS_GRAPH_APP_ID.to_string(),
        )))
    });
    let mut answers = wave.run(reader).await?;

    let mut known: BTreeMap<String, String> = BTreeMap::new(); // SP object id → appId
    if let Some(sp) = take(&mut answers, graph_slot)
        .map(Answer::service_principals)
        .and_then(|v| v.into_iter().next())
    {
        known.insert(sp.id.to_ascii_lowercase(), sp.app_id);
    }
    let mut progress: Vec<Progress> = Vec::with_capacity(targets.len());
    for (t, s) in targets.iter().zip(&slots) {
        let mut apps = |slot| {
            take(&mut answers, slot)
                .map(Answer::applications)
                .unwrap_or_default()
        };
        let app = match t {
            Target::Manifest(d) => {
                let by_app_id = s.by_app_id.map(|_| apps(s.by_app_id));
                let by_unique = apps(s.by_unique);
                let by_uri = apps(s.by_uri);
                crate::observed::resolve_app(d, by_app_id, by_unique, by_uri).map(|(a, _)| a)
            }
            Target::AppId(id) => at_most_one(apps(s.by_app_id), &format!("appId {id}")),
            Target::ObjectId(_) => Ok(apps(s.by_object).into_iter().next()),
        };
        let sp_candidates = take(&mut answers, s.sp)
            .map(Answer::service_principals)
            .unwrap_or_default();
        let sp = match &app {
            Ok(Some(a)) => sp_candidates.into_iter().find(|sp| {
                a.app_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&sp.app_id))
            }),
            _ => None,
        };
        progress.push(Progress {
            app,
            sp,
            grants: Vec::new(),
        });
    }

    if related {
        read_related(reader, &mut progress, &mut known).await?;
    }

    Ok(progress
        .into_iter()
        .map(|p| {
            let sp = p.sp;
            p.app.map(|app| {
                app.map(|application| Snapshot {
                    application,
                    related: related.then(|| summarize(sp.as_ref(), &p.grants, &known)),
                })
            })
        })
        .collect())
}

/// Wave 1's queries of each target: its app by every key it has, and (with `related`) its SP
/// where a key finds it directly.
fn wave_one(wave: &mut Wave, targets: &[Target], related: bool) -> Vec<Slots> {
    let mut slots = Vec::with_capacity(targets.len());
    for t in targets {
        let mut s = Slots::default();
        match t {
            Target::Manifest(d) => {
                if let Some(pinned) = &d.app_id {
                    s.by_app_id =
                        Some(wave.push(Query::Application(Lookup::AppId(pinned.clone()))));
                }
                s.by_unique = Some(wave.push(Query::Application(Lookup::UniqueName(
                    d.unique_name.clone(),
                ))));
                s.by_uri = Some(wave.push(Query::Application(Lookup::IdentifierUri(
                    d.app.identifier_uri.clone(),
                ))));
                if related {
                    s.sp = Some(wave.push(Query::ServicePrincipal(match &d.app_id {
                        Some(pinned) => SpLookup::AppId(pinned.clone()),
                        None => SpLookup::ServicePrincipalName(d.app.identifier_uri.clone()),
                    })));
                }
            }
            Target::AppId(id) => {
                s.by_app_id = Some(wave.push(Query::Application(Lookup::AppId(id.clone()))));
                if related {
                    s.sp = Some(wave.push(Query::ServicePrincipal(SpLookup::AppId(id.clone()))));
                }
            }
            Target::ObjectId(id) => {
                s.by_object = Some(wave.push(Query::Application(Lookup::ObjectId(id.clone()))));
            }
        }
        slots.push(s);
    }
    slots
}

/// Waves 2–4 of [`read_targets`]: the grants of the SPs found, the SPs the App ID URI missed
/// (and their grants), and the resource SPs the grants name that are not known yet.
async fn read_related<R>(
    reader: &R,
    progress: &mut [Progress],
    known: &mut BTreeMap<String, String>,
) -> Result<(), GraphError>
where
    R: GraphRead + Clone + Send + 'static,
{
    // Wave 2: grants of the SPs found; the SP by appId where the App ID URI missed it.
    let mut wave = Wave::default();
    let mut grant_slots = vec![None; progress.len()];
    let mut sp_slots = vec![None; progress.len()];
    for (i, p) in progress.iter().enumerate() {
        match (&p.app, &p.sp) {
            (_, Some(sp)) => grant_slots[i] = Some(wave.push(Query::GrantsOf(sp.id.clone()))),
            (Ok(Some(app)), None) => {
                if let Some(app_id) = &app.app_id {
                    sp_slots[i] =
                        Some(wave.push(Query::ServicePrincipal(SpLookup::AppId(app_id.clone()))));
                }
            }
            _ => {}
        }
    }
    let mut answers = wave.run(reader).await?;
    for (i, p) in progress.iter_mut().enumerate() {
        if let Some(g) = take(&mut answers, grant_slots[i]) {
            p.grants = g.grants();
        }
        if let Some(sp) = take(&mut answers, sp_slots[i])
            .map(Answer::service_principals)
            .and_then(|v| v.into_iter().next())
        {
            p.sp = Some(sp);
        }
    }

    // Wave 3: grants of the SPs found late.
    let mut wave = Wave::default();
    let mut late = vec![None; progress.len()];
    for (i, p) in progress.iter().enumerate() {
        if let (Some(sp), Some(_)) = (&p.sp, sp_slots[i]) {
            late[i] = Some(wave.push(Query::GrantsOf(sp.id.clone())));
        }
    }
    let mut answers = wave.run(reader).await?;
    for (i, p) in progress.iter_mut().enumerate() {
        if let Some(g) = take(&mut answers, late[i]) {
            p.grants = g.grants();
        }
    }

    // Name grant resources portably (by appId): Microsoft Graph's and the targets' own SPs
    // are known; any other resource SP is read (wave 4, rare).
    for p in progress.iter() {
        if let Some(sp) = &p.sp {
            known.insert(sp.id.to_ascii_lowercase(), sp.app_id.clone());
        }
    }
    let mut unknown: Vec<String> = progress
        .iter()
        .flat_map(|p| p.grants.iter().map(|g| g.resource_id.to_ascii_lowercase()))
        .filter(|id| !known.contains_key(id))
        .collect();
    unknown.sort();
    unknown.dedup();
    let mut wave = Wave::default();
    let slots: Vec<(String, usize)> = unknown
        .into_iter()
        .map(|id| {
            let slot = wave.push(Query::ServicePrincipal(SpLookup::ObjectId(id.clone())));
            (id, slot)
        })
        .collect();
    let mut answers = wave.run(reader).await?;
    for (id, slot) in slots {
        if let Some(sp) = take(&mut answers, Some(slot))
            .map(Answer::service_principals)
            .and_then(|v| v.into_iter().next())
        {
            known.insert(id, sp.app_id);
        }
    }
    Ok(())
}

fn summarize(
    sp: Option<&ServicePrincipal>,
    grants: &[OAuth2PermissionGrant],
    known: &BTreeMap<String, String>,
) -> Related {
    let own = sp.map(|s| s.id.to_ascii_lowercase());
    let mut grants: Vec<GrantSummary> = grants
        .iter()
        .map(|g| {
            let rid = g.resource_id.to_ascii_lowercase();
            let resource = if Some(&rid) == own.as_ref() {
                "self".to_string()
            } else {
                known
                    .get(&rid)
                    .map(|app_id| app_id.to_ascii_lowercase())
                    .unwrap_or_else(|| format!("sp:{rid}"))
            };
            let mut scopes: Vec<&str> = g.scope.split_whitespace().collect();
            scopes.sort_unstable();
            scopes.dedup();
            GrantSummary {
                resource,
                consent_type: g.consent_type.clone(),
                scope: scopes.join(" "),
            }
        })
        .collect();
    grants.sort_by(|a, b| {
        (&a.resource, &a.consent_type, &a.scope).cmp(&(&b.resource, &b.consent_type, &b.scope))
    });
    Related {
        service_principal: sp.map(|s| SpSummary {
            id: s.id.clone(),
            app_id: s.app_id.clone(),
        }),
        grants,
    }
}

fn at_most_one(mut apps: Vec<Application>, what: &str) -> Result<Option<Application>, GraphError> {
    if apps.len() > 1 {
        let ids: Vec<String> = apps.iter().filter_map(|a| a.id.clone()).collect();
        return Err(GraphError::Lookup {
            message: format!(
                "{what} matches {} applications: {}",
                ids.len(),
                ids.join(", ")
            ),
            ids,
            hint: "remove the duplicate in the Entra portal".into(),
        });
    }
    Ok(apps.pop())
}
