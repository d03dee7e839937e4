//! Test controls under `/_emulator/` and the in-process equivalents: request log, state,
//! reset, faults, seeding, and edits behind the tool's back.
//!
//! | route | what |
//! |---|---|
//! | `GET /_emulator/health` | `{"ok": true}` |
//! | `GET /_emulator/requests`, `DELETE /_emulator/requests` | the request log / clear it |
//! | `GET /_emulator/state` | the tenant (no secret values) |
//! | `POST /_emulator/reset` | back to the start state |
//! | `GET`/`POST /_emulator/faults` | read / merge fault settings |
//! | `POST /_emulator/seed` | load a seed document → `{"appIds": [...]}` |
//! | `PATCH`/`DELETE /_emulator/applications/{id\|appId\|uniqueName}` | edit/delete, no rules |
//! | `PATCH`/`DELETE /_emulator/servicePrincipals/{id\|appId}` | same for SPs |
//! | `PATCH`/`DELETE /_emulator/oauth2PermissionGrants/{id}` | same for grants |
//! | `GET /_emulator/issued-secrets` | every secret value handed out (leak scans in tests) |
//!
//! Every route acts on the first hosted tenant, or on the one `?tenant=GUID` names (404 when
//! the emulator does not host it); the request log and faults are the emulator's, not a tenant's.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::errors::{Ctx, GraphError};
use super::graph;
use super::rules;
use super::state::{Obj, State, application_prop_names, merge};
use super::util::{Headers, Resp, parse_time};
use super::{Inner, Principal, Shared};
use crate::Secret;

#[allow(clippy::too_many_arguments)]
pub(crate) fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    _headers: &Headers,
    body: &[u8],
    ctx: &Ctx,
) -> Resp {
    let tenant = super::util::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v);
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .skip(1)
        .map(super::util::percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let parse = || -> Result<Value, Resp> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|e| {
            GraphError::odata_bad_request(format!("The body is not valid JSON: {e}")).to_resp(ctx)
        })
    };
    let mut inner = shared.lock();
    let inner = &mut *inner;
    let seed_tenant = (method == "POST" && segs.as_slice() == ["seed"])
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
        .and_then(|d| d["tenant"].as_str().map(str::to_string));
    match tenant.or(seed_tenant) {
        Some(t) if !inner.activate(&t) => {
            return GraphError::new(
                404,
                "Request_ResourceNotFound",
                format!("The emulator does not host tenant '{t}'."),
            )
            .to_resp(ctx);
        }
        Some(_) => {}
        None => inner.activate_first(),
    }
    let result: Result<Resp, Resp> = (|| match (method, segs.as_slice()) {
        ("GET", ["health"]) => Ok(Resp::json(200, json!({"ok": true}))),
        ("GET", ["requests"]) => Ok(Resp::json(
            200,
            serde_json::to_value(&inner.log).unwrap_or_default(),
        )),
        ("DELETE", ["requests"]) => {
            inner.log.clear();
            Ok(Resp::empty(204))
        }
        ("GET", ["state"]) => Ok(Resp::json(200, state_json(inner))),
        ("POST", ["reset"]) => {
            reset(inner);
            shared.persist(inner);
            Ok(Resp::empty(204))
        }
        ("GET", ["faults"]) => Ok(Resp::json(
            200,
            serde_json::to_value(&inner.faults.faults).unwrap_or_default(),
        )),
        ("POST", ["faults"]) => {
            let patch = parse()?;
            match inner.faults.update(&patch) {
                Ok(f) => Ok(Resp::json(200, serde_json::to_value(f).unwrap_or_default())),
                Err(e) => Err(
                    GraphError::bad_request(format!("Invalid fault settings: {e}")).to_resp(ctx),
                ),
            }
        }
        ("POST", ["seed"]) => {
            let doc = parse()?;
            match apply_seed(&mut inner.state, &doc, &mut inner.issued) {
                Ok(ids) => {
                    shared.persist(inner);
                    Ok(Resp::json(201, json!({"appIds": ids})))
                }
                Err(e) => Err(GraphError::bad_request(format!("Invalid seed: {e}")).to_resp(ctx)),
            }
        }
        ("GET", ["issued-secrets"]) => Ok(Resp::json(
            200,
            json!(
                inner
                    .issued
                    .iter()
                    .map(|s| s.expose().to_string())
                    .collect::<Vec<_>>()
            ),
        )),
        ("PATCH" | "DELETE", [collection, key]) => {
            let patch = if method == "PATCH" {
                Some(parse()?)
            } else {
                None
            };
            match edit_object(&mut inner.state, collection, key, patch.as_ref()) {
                Ok(()) => {
                    shared.persist(inner);
                    Ok(Resp::empty(204))
                }
                Err(e) => Err(GraphError::new(404, "Request_ResourceNotFound", e).to_resp(ctx)),
            }
        }
        _ => Err(GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!("The emulator has no control endpoint {method} {path}."),
        )
        .to_resp(ctx)),
    })();
    result.unwrap_or_else(|e| e)
}

/// The tenant as JSON, without secret values or digests.
pub(crate) fn state_json(inner: &Inner) -> Value {
    let s = &inner.state;
    let now = super::util::now_ms();
    let list = |objs: &[Obj]| Value::Array(objs.iter().map(|o| o.data.clone()).collect());
    let replicating: Vec<Value> = s
        .applications
        .iter()
        .chain(&s.service_principals)
        .chain(&s.grants)
        .filter(|o| !o.visible(now))
        .map(|o| json!({"id": o.id(), "visibleInMs": o.visible_at - now}))
        .collect();
    json!({
        "tenantId": s.tenant_id,
        "tenants": inner.order,
        "initialDomain": s.initial_domain,
        "verifiedDomains": s.verified_domains,
        "applications": list(&s.applications),
        "servicePrincipals": list(&s.service_principals),
        "oauth2PermissionGrants": list(&s.grants),
        "passwords": s.passwords.iter().map(|p| json!({"keyId": p.key_id, "appId": p.app_id,
            "visibleInMs": p.visible_at.saturating_sub(now)})).collect::<Vec<_>>(),
        "roles": s.roles,
        "replicating": replicating,
        "faults": inner.faults.faults,
    })
}

pub(crate) fn reset(inner: &mut Inner) {
    let mut initial = inner.initial.clone().into_iter();
    if let Some(first) = initial.next() {
        inner.state = first;
        inner.parked = initial.collect();
    }
    let f = inner.initial_faults.clone();
    inner.faults.set(f, true);
    inner.log.clear();
    inner.seq = 0;
}

/// Edit (merge `patch`) or delete (`None`) an object, bypassing every rule and the replication
/// delay: the way to create drift "by hand" in a test.
pub(crate) fn edit_object(
    state: &mut State,
    collection: &str,
    key: &str,
    patch: Option<&Value>,
) -> Result<(), String> {
    match collection {
        "applications" => {
            let i = ["id", "appId", "uniqueName"]
                .iter()
                .find_map(|k| state.app_index_by(k, key, None))
                .ok_or_else(|| format!("no application with id, appId or uniqueName '{key}'"))?;
            match patch {
                Some(p) => {
                    merge(&mut state.applications[i].data, p);
                    state.sync_sp(i);
                }
                None => state.remove_application(i),
            }
        }
        "servicePrincipals" => {
            let i = ["id", "appId"]
                .iter()
                .find_map(|k| state.sp_index_by(k, key, None))
                .ok_or_else(|| format!("no service principal with id or appId '{key}'"))?;
            match patch {
                Some(p) => merge(&mut state.service_principals[i].data, p),
                None => state.remove_service_principal(i),
            }
        }
        "oauth2PermissionGrants" => {
            let i = state
                .grant_index(key, None)
                .ok_or_else(|| format!("no permission grant with id '{key}'"))?;
            match patch {
                Some(p) => merge(&mut state.grants[i].data, p),
                None => {
                    state.grants.remove(i);
                }
            }
        }
        other => return Err(format!("unknown collection '{other}'")),
    }
    Ok(())
}

/// Load a seed document (format in the module docs of `emulator`). Returns the appIds.
pub(crate) fn apply_seed(
    state: &mut State,
    doc: &Value,
    issued: &mut Vec<Secret>,
) -> Result<Vec<String>, String> {
    let apps = doc["applications"]
        .as_array()
        .ok_or("the document needs an \"applications\" array")?;
    if let Some(extra) = doc.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "applications" | "verifiedDomains" | "tenant"))
    }) {
        return Err(format!("unknown top-level key '{extra}'"));
    }
    if let Some(domains) = doc["verifiedDomains"].as_array() {
        for d in domains.iter().filter_map(Value::as_str) {
            if !state
                .verified_domains
                .iter()
                .any(|x| x.eq_ignore_ascii_case(d))
            {
                state.verified_domains.push(d.to_string());
            }
        }
    }
    let mut ids = Vec::new();
    for (n, entry) in apps.iter().enumerate() {
        ids.push(seed_application(state, n, entry, issued)?);
    }
    Ok(ids)
}

/// One entry of a seed's `applications` (number `n`): the app, its SP, passwords and grants.
/// Returns its appId.
fn seed_application(
    state: &mut State,
    n: usize,
    entry: &Value,
    issued: &mut Vec<Secret>,
) -> Result<String, String> {
    let mut body: Map<String, Value> = entry
        .as_object()
        .cloned()
        .ok_or_else(|| format!("applications[{n}] is not an object"))?;
    let with_sp = match body.remove("servicePrincipal") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(format!(
                "applications[{n}].servicePrincipal must be true or false"
            ));
        }
    };
    let passwords = body.remove("passwords").unwrap_or(json!([]));
    let grants = body.remove("grants").unwrap_or(json!([]));
    let fixed_id = body.remove("id");
    let fixed_app_id = body.remove("appId");
    let created = body.remove("createdDateTime");
    body.remove("publisherDomain");
    let body = Value::Object(body);
    let ctx = |e: GraphError| format!("applications[{n}]: {} ({})", e.message, e.code);
    rules::check_body(
        &body,
        "microsoft.graph.application",
        &mut application_prop_names(),
        None,
    )
    .map_err(ctx)?;
    let mut app = state.new_application(&body);
    for (k, v) in [
        ("id", fixed_id),
        ("appId", fixed_app_id),
        ("createdDateTime", created),
    ] {
        if let Some(v) = v {
            if k != "createdDateTime" && !v.as_str().is_some_and(super::util::is_guid) {
                return Err(format!("applications[{n}].{k} must be a GUID"));
            }
            app[k] = v;
        }
    }
    let app_id = app["appId"].as_str().unwrap_or("").to_string();
    if state.app_index_by("appId", &app_id, None).is_some()
        || state
            .app_index_by("id", app["id"].as_str().unwrap_or(""), None)
            .is_some()
    {
        return Err(format!(
            "applications[{n}]: an application with that id or appId already exists"
        ));
    }
    if let Some(u) = app["uniqueName"].as_str()
        && state.app_index_by("uniqueName", u, None).is_some()
    {
        return Err(format!(
            "applications[{n}]: uniqueName '{u}' is already used"
        ));
    }
    rules::validate_application(state, None, &mut app).map_err(ctx)?;
    state.applications.push(Obj {
        data: app.clone(),
        visible_at: 0,
    });
    let ai = state.applications.len() - 1;
    if with_sp {
        let sp = state.new_service_principal(&app, &json!({}));
        state.service_principals.push(Obj {
            data: sp,
            visible_at: 0,
        });
    }
    seed_passwords(state, n, ai, &passwords, issued)?;
    seed_grants(state, n, &app_id, &grants)?;
    Ok(app_id)
}

/// A seeded app's `passwords` (the app is `applications[n]`, index `ai`).
fn seed_passwords(
    state: &mut State,
    n: usize,
    ai: usize,
    passwords: &Value,
    issued: &mut Vec<Secret>,
) -> Result<(), String> {
    for (k, p) in passwords
        .as_array()
        .ok_or(format!("applications[{n}].passwords must be an array"))?
        .iter()
        .enumerate()
    {
        let now = OffsetDateTime::now_utc();
        let time_of = |f: &str| -> Result<Option<OffsetDateTime>, String> {
            match p[f].as_str() {
                Some(s) => parse_time(s).map(Some).ok_or(format!(
                    "applications[{n}].passwords[{k}].{f} is not an RFC 3339 time"
                )),
                None => Ok(None),
            }
        };
        let start = time_of("startDateTime")?.unwrap_or(now);
        let end = time_of("endDateTime")?.unwrap_or(start + time::Duration::days(730));
        let secret = p["secretText"].as_str().map(|s| Secret::new(s.to_string()));
        let (_, secret) = state.add_password(ai, p["displayName"].clone(), start, end, secret, 0);
        issued.push(secret);
    }
    Ok(())
}

/// A seeded app's `grants`: `AllPrincipals` grants from its SP (the app is `applications[n]`).
fn seed_grants(state: &mut State, n: usize, app_id: &str, grants: &Value) -> Result<(), String> {
    for (k, g) in grants
        .as_array()
        .ok_or(format!("applications[{n}].grants must be an array"))?
        .iter()
        .enumerate()
    {
        let client = state
            .sp_index_by("appId", app_id, None)
            .map(|i| state.service_principals[i].id().to_string())
            .ok_or(format!(
                "applications[{n}].grants needs \"servicePrincipal\": true"
            ))?;
        let resource_app = match g["resourceAppId"].as_str() {
            Some("self") => app_id.to_string(),
            Some(r) => r.to_string(),
            None => {
                return Err(format!(
                    "applications[{n}].grants[{k}].resourceAppId is missing"
                ));
            }
        };
        let resource = state
            .sp_index_by("appId", &resource_app, None)
            .map(|i| state.service_principals[i].id().to_string())
            .ok_or(format!(
                "applications[{n}].grants[{k}]: no service principal for appId {resource_app}"
            ))?;
        let scope = g["scope"]
            .as_str()
            .ok_or(format!("applications[{n}].grants[{k}].scope is missing"))?;
        graph::seed_grant(state, &client, &resource, scope)
            .map_err(|e| format!("applications[{n}].grants[{k}]: {e}"))?;
    }
    Ok(())
}

/// Create (or find) an operator principal with its SP and roles, and give it a fresh secret.
pub(crate) fn ensure_operator(
    state: &mut State,
    unique_name: &str,
    display_name: &str,
    roles: Vec<String>,
) -> Principal {
    let i = match state.app_index_by("uniqueName", unique_name, None) {
        Some(i) => i,
        None => {
            let app = state.new_application(&json!({
                "displayName": display_name,
                "uniqueName": unique_name,
                "notes": "Seeded by the entraform emulator: the principal the exported AZURE_CLIENT_* log in as.",
            }));
            state.applications.push(Obj {
                data: app,
                visible_at: 0,
            });
            state.applications.len() - 1
        }
    };
    let app = state.applications[i].data.clone();
    let app_id = app["appId"].as_str().unwrap_or("").to_string();
    if state.sp_index_by("appId", &app_id, None).is_none() {
        let sp = state.new_service_principal(&app, &json!({}));
        state.service_principals.push(Obj {
            data: sp,
            visible_at: 0,
        });
    }
    // A restart with --state cannot know the old secret (only its digest is kept): replace it.
    state.passwords.retain(|p| p.app_id != app_id);
    state.applications[i].data["passwordCredentials"] = json!([]);
    let now = OffsetDateTime::now_utc();
    let (_, secret) = state.add_password(
        i,
        json!("entraform emulator"),
        now,
        now + time::Duration::days(730),
        None,
        0,
    );
    state.roles.insert(app_id.clone(), roles.clone());
    Principal {
        client_id: app_id,
        roles,
        secret,
    }
}
