//! Graph v1.0 routes: applications (with upsert, addPassword/removePassword), service
//! principals, oAuth2PermissionGrants, organization. One entry point, [`handle`], serves both
//! plain requests and the inner requests of `$batch`.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::errors::{Ctx, GraphError, GraphResult};
use super::faults::LostAnswer;
use super::odata::{self, Key};
use super::state::{
    Obj, State, application_prop_names, grant_id, merge, roles, service_principal_prop_names,
};
use super::util::{Headers, Resp, is_guid, now_ms, parse_time, percent_decode, query_pairs};
use super::{Inner, Shared};

/// A Graph request, from the wire or from a `$batch` entry. `path` is relative to `/v1.0`.
#[derive(Debug, Clone)]
pub(crate) struct GraphRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// Serve one Graph request: authenticate, inject faults, route. Returns the response and the
/// fault injected, if any.
pub(crate) fn handle(
    shared: &Shared,
    inner: &mut Inner,
    req: &GraphRequest,
    ctx: &Ctx,
) -> (Resp, Option<&'static str>) {
    let caller = match authenticate(inner, &req.headers) {
        Ok(c) => c,
        Err(e) => return (e.to_resp(ctx), None),
    };
    // Graph serves the directory of the tenant the token was issued in (its `tid`): that is
    // how the one graph.microsoft.com knows which tenant a request is for
    // (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
    if !inner.activate(&caller.tenant_id) {
        return (
            GraphError::unauthenticated("Access token validation failure. Invalid tenant.")
                .to_resp(ctx),
            None,
        );
    }
    if let Some(e) = inner.faults.draw(&req.method, &req.path) {
        let kind = if e.status == 429 { "throttle" } else { "error" };
        return (e.to_resp(ctx), Some(kind));
    }
    let resp = match route(shared, inner, req, &caller) {
        Ok(r) => r,
        Err(e) => e.to_resp(ctx),
    };
    if req.method != "GET" && resp.status < 400 {
        shared.persist(inner);
    }
    // The request ran; its answer may still be lost on the way back.
    match inner.faults.lose_answer(&req.method, &req.path) {
        Some(LostAnswer::GatewayTimeout) => (
            super::faults::gateway_timeout().to_resp(ctx),
            Some("lost_answer"),
        ),
        // The server drops the connection on this kind (a `$batch` sends the 504).
        Some(LostAnswer::Reset) => (super::faults::gateway_timeout().to_resp(ctx), Some(RESET)),
        None => (resp, None),
    }
}

/// The fault kind on which the server closes the connection instead of answering.
pub(crate) const RESET: &str = "reset";

/// Who is calling: the app behind the bearer token and its app roles.
pub(crate) struct Caller {
    pub roles: Vec<String>,
    /// The tenant of the token (`tid`).
    pub tenant_id: String,
}

impl Caller {
    fn has_any(&self, wanted: &[&str]) -> bool {
        self.roles.iter().any(|r| wanted.contains(&r.as_str()))
    }
    fn require(&self, wanted: &[&str]) -> GraphResult<()> {
        if self.has_any(wanted) {
            Ok(())
        } else {
            Err(GraphError::denied())
        }
    }
}

const READ: &[&str] = &[
    roles::APPLICATION_READ_ALL,
    roles::APPLICATION_READWRITE_ALL,
    roles::DIRECTORY_READ_ALL,
    roles::DIRECTORY_READWRITE_ALL,
    roles::GRANT_READWRITE_ALL,
];
const WRITE_APPS: &[&str] = &[
    roles::APPLICATION_READWRITE_ALL,
    roles::DIRECTORY_READWRITE_ALL,
];
const WRITE_GRANTS: &[&str] = &[roles::GRANT_READWRITE_ALL, roles::DIRECTORY_READWRITE_ALL];

/// Bearer tokens must be ones this emulator issued, unexpired, for Graph
/// (<https://learn.microsoft.com/graph/errors>).
pub(crate) fn authenticate(inner: &Inner, headers: &Headers) -> GraphResult<Caller> {
    let auth = headers.get("authorization").unwrap_or("").trim();
    if auth.is_empty() {
        return Err(GraphError::unauthenticated("Access token is empty."));
    }
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => {
            return Err(GraphError::unauthenticated(
                "CompactToken parsing failed with error code: 80049217",
            ));
        }
    };
    if token.is_empty() {
        return Err(GraphError::unauthenticated("Access token is empty."));
    }
    if token.split('.').count() != 3 {
        return Err(GraphError::unauthenticated(
            "CompactToken parsing failed with error code: 80049217",
        ));
    }
    let Some(info) = inner.tokens.get(token) else {
        return Err(GraphError::unauthenticated(
            "Access token validation failure. Invalid signature.",
        ));
    };
    if info.expires_ms <= now_ms() {
        return Err(GraphError::unauthenticated(
            "Access token has expired or is not yet valid.",
        ));
    }
    if info.audience != "graph" {
        return Err(GraphError::unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let _ = &info.app_id;
    Ok(Caller {
        roles: info.roles.clone(),
        tenant_id: info.tenant_id.clone(),
    })
}

fn parse_body(req: &GraphRequest, required: bool) -> GraphResult<Value> {
    let text = std::str::from_utf8(&req.body).unwrap_or("");
    if text.trim().is_empty() {
        if required {
            return Err(GraphError::odata_bad_request(
                "Empty Payload. JSON content expected.",
            ));
        }
        return Ok(json!({}));
    }
    let ct = req.headers.get("content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().contains("json") {
        return Err(GraphError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "The content type '{ct}' is not supported for this request; send 'application/json'."
            ),
        ));
    }
    serde_json::from_str(text).map_err(|_| {
        GraphError::odata_bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })
}

fn route(
    shared: &Shared,
    inner: &mut Inner,
    req: &GraphRequest,
    caller: &Caller,
) -> GraphResult<Resp> {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let Some(first) = segs.first() else {
        let sets: Vec<Value> = COLLECTIONS
            .iter()
            .map(|c| c.set)
            .chain(["organization"])
            .map(|set| json!({"name": set, "kind": "EntitySet", "url": set}))
            .collect();
        return Ok(Resp::json(
            200,
            json!({"@odata.context": CONTEXT, "value": sets}),
        ));
    };
    let (collection, mut key) = odata::parse_segment(first)?;
    let mut rest = &segs[1..];
    if key.is_none() && !rest.is_empty() && !is_action(&rest[0]) {
        key = Some(Key::Id(rest[0].clone()));
        rest = &rest[1..];
    }
    if let Some(c) = COLLECTIONS.iter().find(|c| c.set == collection) {
        return serve(c, shared, inner, req, caller, key, rest);
    }
    match collection.as_str() {
        "organization" if req.method == "GET" => {
            caller.require(READ)?;
            Ok(Resp::json(200, organization(&inner.state)))
        }
        "organization" => Err(GraphError::method_not_allowed()),
        "$batch" => Err(GraphError::odata_bad_request(
            "A $batch request cannot be nested inside another $batch request.",
        )),
        other => Err(GraphError::odata_bad_request(format!(
            "Resource not found for the segment '{other}'."
        ))),
    }
}

fn is_action(seg: &str) -> bool {
    let s = seg.strip_prefix("microsoft.graph.").unwrap_or(seg);
    matches!(s, "addPassword" | "removePassword" | "$count")
}

fn action(seg: &str) -> &str {
    seg.strip_prefix("microsoft.graph.").unwrap_or(seg)
}

fn organization(state: &State) -> Value {
    let mut domains = vec![
        json!({"capabilities": "Email, OfficeCommunicationsOnlineUserId", "isDefault": state.verified_domains.is_empty(), "isInitial": true, "name": state.initial_domain, "type": "Managed"}),
    ];
    for (i, d) in state.verified_domains.iter().enumerate() {
        domains.push(json!({"capabilities": "Email", "isDefault": i == 0, "isInitial": false, "name": d, "type": "Managed"}));
    }
    json!({
        "@odata.context": format!("{CONTEXT}#organization"),
        "value": [{"id": state.tenant_id, "displayName": "entraform emulator", "tenantType": "AAD", "verifiedDomains": domains}],
    })
}

// ---------------------------------------------------------------------------------------------
// Collections: list with $filter / $select / $top / $count / paging

struct ListSpec {
    set: &'static str,
    type_name: &'static str,
    props: Vec<&'static str>,
}

fn list(shared: &Shared, items: &[Obj], req: &GraphRequest, spec: &ListSpec) -> GraphResult<Resp> {
    let now = now_ms();
    let q = query_pairs(&req.query);
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let filter = match get("$filter") {
        Some(f) => {
            let e = odata::parse_filter(f)?;
            let mut used = Vec::new();
            odata::filter_properties(&e, &mut used);
            for p in used {
                if !spec.props.contains(&p.as_str()) {
                    return Err(GraphError::new(
                        400,
                        "Request_UnsupportedQuery",
                        format!(
                            "Unsupported or invalid query filter clause specified for property '{p}' of resource '{}'.",
                            spec.type_name.trim_start_matches("microsoft.graph.")
                        ),
                    ));
                }
            }
            Some(e)
        }
        None => None,
    };
    if get("$search").is_some() && req.headers.get("consistencylevel").is_none() {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    let select = parse_select(get("$select"), spec)?;
    let top = match get("$top") {
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|t| (1..=999).contains(t))
            .ok_or_else(|| {
                GraphError::odata_bad_request(format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                ))
            })?,
        None => 100,
    };
    let skip = get("$skiptoken")
        .and_then(|t| t.strip_prefix("emu-"))
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let matched: Vec<&Obj> = items
        .iter()
        .filter(|o| o.visible(now))
        .filter(|o| filter.as_ref().is_none_or(|f| odata::eval(f, &o.data)))
        .collect();
    let page: Vec<Value> = matched
        .iter()
        .skip(skip)
        .take(top)
        .map(|o| match &select {
            Some(fields) => odata::select(&o.data, fields),
            None => o.data.clone(),
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert(
        "@odata.context".into(),
        json!(match &select {
            Some(f) => format!("{CONTEXT}#{}({})", spec.set, f.join(",")),
            None => format!("{CONTEXT}#{}", spec.set),
        }),
    );
    if get("$count").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
        out.insert("@odata.count".into(), json!(matched.len()));
    }
    if skip + top < matched.len() {
        let kept: Vec<String> = req
            .query
            .split('&')
            .filter(|p| {
                !p.is_empty()
                    && !p.to_ascii_lowercase().starts_with("%24skiptoken")
                    && !p.to_ascii_lowercase().starts_with("$skiptoken")
            })
            .map(str::to_string)
            .collect();
        let mut qs = kept.join("&");
        if !qs.is_empty() {
            qs.push('&');
        }
        qs.push_str(&format!("$skiptoken=emu-{}", skip + top));
        out.insert(
            "@odata.nextLink".into(),
            json!(format!("{}{}?{qs}", shared.graph_url(), req.path)),
        );
    }
    out.insert("value".into(), Value::Array(page));
    Ok(Resp::json(200, Value::Object(out)))
}

fn parse_select(select: Option<&str>, spec: &ListSpec) -> GraphResult<Option<Vec<String>>> {
    let Some(s) = select else { return Ok(None) };
    let fields: Vec<String> = s
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    for f in &fields {
        if !spec.props.contains(&f.as_str()) {
            return Err(GraphError::odata_bad_request(format!(
                "Could not find a property named '{f}' on type '{}'.",
                spec.type_name
            )));
        }
    }
    Ok(Some(fields))
}

fn entity(
    set: &str,
    data: &Value,
    req: &GraphRequest,
    spec: &ListSpec,
    status: u16,
) -> GraphResult<Resp> {
    let q = query_pairs(&req.query);
    let select = parse_select(
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
            .map(|(_, v)| v.as_str()),
        spec,
    )?;
    let mut out = serde_json::Map::new();
    match &select {
        Some(f) => {
            out.insert(
                "@odata.context".into(),
                json!(format!("{CONTEXT}#{set}({})/$entity", f.join(","))),
            );
            if let Value::Object(m) = odata::select(data, f) {
                out.extend(m);
            }
        }
        None => {
            out.insert(
                "@odata.context".into(),
                json!(format!("{CONTEXT}#{set}/$entity")),
            );
            if let Value::Object(m) = data {
                out.extend(m.clone());
            }
        }
    }
    Ok(Resp::json(status, Value::Object(out)))
}

// ---------------------------------------------------------------------------------------------
// The route table: one entry per entity set, one router ([`serve`]) for all of them

/// One entity set. Every set answers the same shapes — `GET`/`POST` on the set, `GET`/`PATCH`/
/// `DELETE` on one object, `POST` actions on one object — and its entry says who may write, how
/// an object is found, and what each write does.
struct Collection {
    set: &'static str,
    type_name: &'static str,
    props: fn() -> Vec<&'static str>,
    /// The roles a write needs (every read needs one of [`READ`]).
    write: &'static [&'static str],
    items: fn(&State) -> &[Obj],
    /// Find a visible object by a property (`id` or an alternate key).
    index_by: fn(&State, &str, &str, Option<u64>) -> Option<usize>,
    /// The alternate keys (`/set(appId='…')`). A set without any refuses one before anything
    /// else is looked at.
    alt_keys: &'static [&'static str],
    /// Whether an `id` that is not a GUID is refused with 400 (rather than not found).
    guid_ids: bool,
    /// Whether `GET /{set}/$count` is served.
    count: bool,
    create: fn(&mut Inner, Value) -> GraphResult<Value>,
    /// `PATCH` on one object, after the role check and the body parse.
    update: fn(&mut Inner, &GraphRequest, &Key, Value, &ListSpec) -> GraphResult<Resp>,
    delete: fn(&mut State, usize),
    /// `POST /{set}/{key}/{action}`: the action's name and what it does with the object found.
    actions: &'static [(&'static str, Action)],
}

/// An action on one object: (state, the object's index, the request) → the response.
type Action = fn(&mut Inner, usize, &GraphRequest) -> GraphResult<Resp>;

impl Collection {
    fn spec(&self) -> ListSpec {
        ListSpec {
            set: self.set,
            type_name: self.type_name,
            props: (self.props)(),
        }
    }
}

const APPLICATIONS: Collection = Collection {
    set: "applications",
    type_name: "microsoft.graph.application",
    props: || application_prop_names().collect(),
    write: WRITE_APPS,
    items: |s| s.applications.as_slice(),
    index_by: State::app_index_by,
    alt_keys: &["appId", "uniqueName"],
    guid_ids: true,
    count: true,
    create: |inner, body| create_application(inner, body, None),
    update: patch_application,
    delete: State::remove_application,
    actions: &[
        ("addPassword", |inner, i, req| {
            let body = parse_body(req, false)?;
            add_password(inner, i, &body)
        }),
        ("removePassword", |inner, i, req| {
            let body = parse_body(req, true)?;
            remove_password(&mut inner.state, i, &body)
        }),
    ],
};

const SERVICE_PRINCIPALS: Collection = Collection {
    set: "servicePrincipals",
    type_name: "microsoft.graph.servicePrincipal",
    props: || service_principal_prop_names().collect(),
    write: WRITE_APPS,
    items: |s| s.service_principals.as_slice(),
    index_by: State::sp_index_by,
    alt_keys: &["appId"],
    guid_ids: true,
    count: false,
    create: |inner, body| create_service_principal(inner, &body),
    update: update_service_principal,
    delete: State::remove_service_principal,
    actions: &[],
};

const GRANTS: Collection = Collection {
    set: "oauth2PermissionGrants",
    type_name: "microsoft.graph.oAuth2PermissionGrant",
    props: || {
        vec![
            "id",
            "clientId",
            "consentType",
            "principalId",
            "resourceId",
            "scope",
        ]
    },
    write: WRITE_GRANTS,
    items: |s| s.grants.as_slice(),
    index_by: |s, _, id, now| s.grant_index(id, now),
    alt_keys: &[],
    guid_ids: false,
    count: false,
    create: |inner, body| create_grant(inner, &body),
    update: update_grant,
    delete: |s, i| {
        s.grants.remove(i);
    },
    actions: &[],
};

const COLLECTIONS: &[&Collection] = &[&APPLICATIONS, &SERVICE_PRINCIPALS, &GRANTS];

fn segment_not_found(seg: &str) -> GraphError {
    GraphError::odata_bad_request(format!("Resource not found for the segment '{seg}'."))
}

/// Serve a request on one entity set: the set itself, one object (by key), or an action on it.
fn serve(
    c: &Collection,
    shared: &Shared,
    inner: &mut Inner,
    req: &GraphRequest,
    caller: &Caller,
    key: Option<Key>,
    rest: &[String],
) -> GraphResult<Resp> {
    let spec = c.spec();
    let m = req.method.as_str();
    let Some(key) = key else {
        if let Some(seg) = rest.first() {
            if c.count && action(seg) == "$count" && m == "GET" {
                caller.require(READ)?;
                return Ok(count(c, &inner.state));
            }
            return Err(segment_not_found(seg));
        }
        return match m {
            "GET" => {
                caller.require(READ)?;
                list(shared, (c.items)(&inner.state), req, &spec)
            }
            "POST" => {
                caller.require(c.write)?;
                let body = parse_body(req, true)?;
                (c.create)(inner, body).and_then(|obj| entity(c.set, &obj, req, &spec, 201))
            }
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    if c.actions.is_empty()
        && let Some(seg) = rest.first()
    {
        return Err(segment_not_found(seg));
    }
    if c.alt_keys.is_empty()
        && let Key::Alt(prop, _) = &key
    {
        return Err(alt_key_error(prop, c.type_name));
    }
    match (rest.first().map(|s| action(s)), m) {
        (None, "GET") => {
            caller.require(READ)?;
            let i = find(c, &inner.state, &key)?;
            entity(c.set, &(c.items)(&inner.state)[i].data, req, &spec, 200)
        }
        (None, "PATCH") => {
            caller.require(c.write)?;
            let body = parse_body(req, true)?;
            (c.update)(inner, req, &key, body, &spec)
        }
        (None, "DELETE") => {
            caller.require(c.write)?;
            let i = find(c, &inner.state, &key)?;
            (c.delete)(&mut inner.state, i);
            Ok(Resp::empty(204))
        }
        (None, _) => Err(GraphError::method_not_allowed()),
        (Some(seg), _) => match c.actions.iter().find(|(name, _)| *name == seg) {
            Some((_, run)) if m == "POST" => {
                caller.require(c.write)?;
                let i = find(c, &inner.state, &key)?;
                run(inner, i, req)
            }
            Some(_) if rest.len() == 1 => Err(GraphError::method_not_allowed()),
            _ => Err(segment_not_found(seg)),
        },
    }
}

/// `GET /{set}/$count`: the visible objects, as plain text.
fn count(c: &Collection, state: &State) -> Resp {
    let now = now_ms();
    let n = (c.items)(state).iter().filter(|o| o.visible(now)).count();
    Resp {
        status: 200,
        headers: Vec::new(),
        body: super::util::RespBody::Text(n.to_string(), "text/plain"),
    }
}

/// Find an object by path key among visible objects; 404 otherwise.
fn find(c: &Collection, state: &State, key: &Key) -> GraphResult<usize> {
    let now = Some(now_ms());
    match key {
        Key::Id(id) => {
            if c.guid_ids && !is_guid(id) {
                return Err(GraphError::bad_request(format!(
                    "Invalid object identifier '{id}'."
                )));
            }
            (c.index_by)(state, "id", id, now).ok_or_else(|| GraphError::not_found(id))
        }
        Key::Alt(prop, v) if c.alt_keys.contains(&prop.as_str()) => {
            (c.index_by)(state, prop, v, now).ok_or_else(|| GraphError::not_found(v))
        }
        Key::Alt(prop, _) => Err(alt_key_error(prop, c.type_name)),
    }
}

fn alt_key_error(prop: &str, type_name: &str) -> GraphError {
    GraphError::odata_bad_request(format!(
        "The key property '{prop}' is not an alternate key of type '{type_name}'."
    ))
}

// ---------------------------------------------------------------------------------------------
// Applications

/// PATCH an application by key: the upsert for `uniqueName`, else an update of the one found.
fn patch_application(
    inner: &mut Inner,
    req: &GraphRequest,
    key: &Key,
    body: Value,
    spec: &ListSpec,
) -> GraphResult<Resp> {
    if let Key::Alt(prop, name) = key
        && prop == "uniqueName"
    {
        return upsert(inner, req, name, body, spec);
    }
    let i = find(&APPLICATIONS, &inner.state, key)?;
    update_application(&mut inner.state, i, &body)?;
    Ok(Resp::empty(204))
}

/// POST /applications, and the create branch of the upsert.
fn create_application(
    inner: &mut Inner,
    body: Value,
    unique_name: Option<&str>,
) -> GraphResult<Value> {
    super::rules::check_body(
        &body,
        "microsoft.graph.application",
        &mut application_prop_names(),
        None,
    )?;
    let mut body = body;
    if let Some(u) = unique_name {
        body["uniqueName"] = json!(u);
    }
    if let Some(u) = body.get("uniqueName").and_then(Value::as_str)
        && inner.state.app_index_by("uniqueName", u, None).is_some()
    {
        return Err(GraphError::new(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "Another object with the same value for property uniqueName already exists.",
        ));
    }
    let mut app = inner.state.new_application(&body);
    super::rules::validate_application(&inner.state, None, &mut app)?;
    let visible_at = now_ms() + inner.faults.faults.replication_delay_ms;
    inner.state.applications.push(Obj {
        data: app.clone(),
        visible_at,
    });
    Ok(app)
}

/// PATCH an application: merge, validate against the old document, store, sync its SP.
pub(crate) fn update_application(state: &mut State, i: usize, body: &Value) -> GraphResult<()> {
    let old = state.applications[i].data.clone();
    super::rules::check_body(
        body,
        "microsoft.graph.application",
        &mut application_prop_names(),
        Some(&old),
    )?;
    if let Some(u) = body.get("uniqueName") {
        match (old["uniqueName"].as_str(), u.as_str()) {
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {}
            (Some(_), _) => {
                return Err(GraphError::bad_request(
                    "Property 'uniqueName' is immutable once set.",
                ));
            }
            (None, Some(b)) => {
                if state.app_index_by("uniqueName", b, None).is_some() {
                    return Err(GraphError::new(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property uniqueName already exists.",
                    ));
                }
            }
            (None, None) => {}
        }
    }
    let mut new = old.clone();
    merge(&mut new, body);
    super::rules::validate_application(state, Some(&old), &mut new)?;
    state.applications[i].data = new;
    state.sync_sp(i);
    Ok(())
}

/// `PATCH /applications(uniqueName='…')`
/// (<https://learn.microsoft.com/graph/api/application-upsert?view=graph-rest-1.0>): update → 204; missing with
/// `Prefer: create-if-missing` → 201; missing without it → 404.
fn upsert(
    inner: &mut Inner,
    req: &GraphRequest,
    name: &str,
    body: Value,
    spec: &ListSpec,
) -> GraphResult<Resp> {
    if let Some(u) = body.get("uniqueName").and_then(Value::as_str)
        && !u.eq_ignore_ascii_case(name)
    {
        return Err(GraphError::bad_request(
            "The uniqueName in the body does not match the one in the URL.",
        ));
    }
    // The write goes to the primary: an app still replicating is found, never duplicated.
    if let Some(i) = inner.state.app_index_by("uniqueName", name, None) {
        update_application(&mut inner.state, i, &body)?;
        return Ok(Resp::empty(204));
    }
    let create = req.headers.get("prefer").is_some_and(|p| {
        p.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("create-if-missing"))
    });
    if !create {
        return Err(GraphError::not_found(name));
    }
    let app = create_application(inner, body, Some(name))?;
    entity("applications", &app, req, spec, 201)
}

fn add_password(inner: &mut Inner, i: usize, body: &Value) -> GraphResult<Resp> {
    let cred = &body["passwordCredential"];
    if !(cred.is_null() || cred.is_object()) {
        return Err(GraphError::invalid_value(
            "passwordCredential",
            "Application",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let start = match cred["startDateTime"].as_str() {
        Some(s) => parse_time(s)
            .ok_or_else(|| GraphError::invalid_value("startDateTime", "passwordCredential"))?,
        None => now,
    };
    let end = match cred["endDateTime"].as_str() {
        Some(s) => parse_time(s)
            .ok_or_else(|| GraphError::invalid_value("endDateTime", "passwordCredential"))?,
        None => start + time::Duration::days(730),
    };
    if end <= start {
        return Err(GraphError::bad_request(
            "The endDateTime of a password credential must be later than its startDateTime.",
        ));
    }
    let app = &inner.state.applications[i].data;
    let audience = app["signInAudience"].as_str().unwrap_or("");
    let count = app["passwordCredentials"].as_array().map_or(0, Vec::len);
    if matches!(
        audience,
        "AzureADandPersonalMicrosoftAccount" | "PersonalMicrosoftAccount"
    ) && count >= 2
    {
        return Err(GraphError::bad_request(
            "An application with a personal Microsoft account audience can have at most two client secrets.",
        ));
    }
    let visible_at = now_ms() + inner.faults.faults.replication_delay_ms;
    let (mut cred, secret) =
        inner
            .state
            .add_password(i, cred["displayName"].clone(), start, end, None, visible_at);
    cred["secretText"] = json!(secret.expose());
    inner.issued.push(secret);
    let mut out = serde_json::Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!("{CONTEXT}#microsoft.graph.passwordCredential")),
    );
    if let Value::Object(m) = cred {
        out.extend(m);
    }
    Ok(Resp::json(200, Value::Object(out)))
}

fn remove_password(state: &mut State, i: usize, body: &Value) -> GraphResult<Resp> {
    let key_id = body["keyId"]
        .as_str()
        .filter(|k| is_guid(k))
        .ok_or_else(|| GraphError::bad_request("Property 'keyId' is required and must be a GUID."))?
        .to_lowercase();
    let app = &mut state.applications[i];
    let app_id = app.app_id().to_string();
    let list = app.data["passwordCredentials"].as_array_mut();
    let Some(list) = list else {
        return Err(GraphError::not_found(&key_id));
    };
    let before = list.len();
    list.retain(|c| c["keyId"].as_str().map(str::to_lowercase).as_deref() != Some(key_id.as_str()));
    if list.len() == before {
        return Err(GraphError::bad_request(format!(
            "No password credential with keyId '{key_id}' exists on application '{app_id}'."
        )));
    }
    state
        .passwords
        .retain(|p| !(p.app_id == app_id && p.key_id.to_lowercase() == key_id));
    Ok(Resp::empty(204))
}

// ---------------------------------------------------------------------------------------------
// Service principals

/// PATCH a service principal: check the body against the stored one, merge.
fn update_service_principal(
    inner: &mut Inner,
    _req: &GraphRequest,
    key: &Key,
    body: Value,
    _spec: &ListSpec,
) -> GraphResult<Resp> {
    let i = find(&SERVICE_PRINCIPALS, &inner.state, key)?;
    let old = inner.state.service_principals[i].data.clone();
    super::rules::check_body(
        &body,
        "microsoft.graph.servicePrincipal",
        &mut service_principal_prop_names(),
        Some(&old),
    )?;
    merge(&mut inner.state.service_principals[i].data, &body);
    Ok(Resp::empty(204))
}

fn create_service_principal(inner: &mut Inner, body: &Value) -> GraphResult<Value> {
    super::rules::check_body(
        body,
        "microsoft.graph.servicePrincipal",
        &mut service_principal_prop_names(),
        None,
    )?;
    let app_id = body["appId"]
        .as_str()
        .ok_or_else(|| GraphError::bad_request("Property 'appId' is required."))?
        .to_string();
    // One SP per appId, checked on the primary
    // (<https://learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals?view=graph-rest-1.0>).
    if inner.state.sp_index_by("appId", &app_id, None).is_some() {
        return Err(GraphError::new(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."
            ),
        ));
    }
    // An app still replicating (or none at all) has no backing object yet
    // (<https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
    let Some(ai) = inner.state.app_index_by("appId", &app_id, Some(now_ms())) else {
        return Err(GraphError::bad_request(format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        ))
        .with_detail("NoBackingApplicationObject", "appId"));
    };
    let mut body = body.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("appId");
    }
    let sp = inner
        .state
        .new_service_principal(&inner.state.applications[ai].data.clone(), &body);
    let visible_at = now_ms() + inner.faults.faults.replication_delay_ms;
    inner.state.service_principals.push(Obj {
        data: sp.clone(),
        visible_at,
    });
    Ok(sp)
}

// ---------------------------------------------------------------------------------------------
// oAuth2PermissionGrants

/// PATCH a grant: only `scope` may change (to scopes the resource publishes); the other
/// properties may be repeated unchanged.
fn update_grant(
    inner: &mut Inner,
    _req: &GraphRequest,
    key: &Key,
    body: Value,
    _spec: &ListSpec,
) -> GraphResult<Resp> {
    let i = find(&GRANTS, &inner.state, key)?;
    let obj = body
        .as_object()
        .ok_or_else(|| GraphError::odata_bad_request("Expected a JSON object."))?;
    for k in obj.keys() {
        match k.as_str() {
            "scope" => {}
            "clientId" | "consentType" | "principalId" | "resourceId" | "id" => {
                if obj[k] != inner.state.grants[i].data[k] {
                    return Err(GraphError::bad_request(format!(
                        "Property '{k}' of a permission grant cannot be changed; delete the grant and create a new one."
                    )));
                }
            }
            k if k.starts_with('@') => {}
            other => {
                return Err(GraphError::odata_bad_request(format!(
                    "Property '{other}' does not exist on type 'microsoft.graph.oAuth2PermissionGrant'."
                )));
            }
        }
    }
    if let Some(scope) = obj.get("scope") {
        let s = scope
            .as_str()
            .ok_or_else(|| GraphError::invalid_value("scope", "OAuth2PermissionGrant"))?;
        let resource = inner.state.grants[i].data["resourceId"]
            .as_str()
            .unwrap_or("")
            .to_string();
        check_grant_scopes(&inner.state, &resource, s)?;
        inner.state.grants[i].data["scope"] = json!(s);
    }
    Ok(Resp::empty(204))
}

/// Each scope value must be a scope the resource SP publishes
/// (<https://learn.microsoft.com/graph/api/oauth2permissiongrant-update?view=graph-rest-1.0>).
fn check_grant_scopes(state: &State, resource_sp_id: &str, scope: &str) -> GraphResult<()> {
    if scope.len() > 3850 {
        return Err(GraphError::invalid_value("scope", "OAuth2PermissionGrant"));
    }
    let Some(ri) = state.sp_index_by("id", resource_sp_id, None) else {
        return Err(GraphError::not_found(resource_sp_id));
    };
    let published: Vec<String> = state.service_principals[ri].data["oauth2PermissionScopes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["isEnabled"] == Value::Bool(true))
                .filter_map(|s| s["value"].as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    for value in scope.split_whitespace() {
        if !published.contains(&value.to_lowercase()) {
            return Err(GraphError::bad_request(format!(
                "The scope '{value}' is not a published, enabled permission of the resource service principal '{resource_sp_id}'."
            )));
        }
    }
    Ok(())
}

pub(crate) fn create_grant(inner: &mut Inner, body: &Value) -> GraphResult<Value> {
    let obj = body
        .as_object()
        .ok_or_else(|| GraphError::odata_bad_request("Expected a JSON object."))?;
    for k in obj.keys() {
        if !k.starts_with('@')
            && ![
                "clientId",
                "consentType",
                "principalId",
                "resourceId",
                "scope",
                "startTime",
                "expiryTime",
            ]
            .contains(&k.as_str())
        {
            return Err(GraphError::odata_bad_request(format!(
                "Property '{k}' does not exist on type 'microsoft.graph.oAuth2PermissionGrant'."
            )));
        }
    }
    let need = |k: &str| -> GraphResult<String> {
        obj.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::bad_request(format!("Property '{k}' is required.")))
    };
    let client_id = need("clientId")?;
    let resource_id = need("resourceId")?;
    let consent_type = need("consentType")?;
    let scope = obj
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for (k, v) in [("clientId", &client_id), ("resourceId", &resource_id)] {
        if !is_guid(v) {
            return Err(GraphError::invalid_value(k, "OAuth2PermissionGrant"));
        }
    }
    let principal = match (consent_type.as_str(), obj.get("principalId")) {
        ("AllPrincipals", None | Some(Value::Null)) => None,
        ("AllPrincipals", Some(_)) => {
            return Err(GraphError::bad_request(
                "principalId must be null when consentType is AllPrincipals.",
            ));
        }
        ("Principal", Some(Value::String(p))) if is_guid(p) => Some(p.clone()),
        ("Principal", _) => {
            return Err(GraphError::bad_request(
                "principalId is required when consentType is Principal.",
            ));
        }
        _ => {
            return Err(GraphError::invalid_value(
                "consentType",
                "OAuth2PermissionGrant",
            ));
        }
    };
    let now = Some(now_ms());
    // Both ends must be SPs a read can see (a just-created SP may not be yet,
    // <https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
    for id in [&client_id, &resource_id] {
        if inner.state.sp_index_by("id", id, now).is_none() {
            return Err(GraphError::not_found(id));
        }
    }
    check_grant_scopes(&inner.state, &resource_id, &scope)?;
    let id = grant_id(&client_id, &resource_id, principal.as_deref());
    if inner.state.grant_index(&id, None).is_some() {
        return Err(GraphError::new(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "Permission entry already exists.",
        ));
    }
    let grant = json!({
        "clientId": client_id,
        "consentType": consent_type,
        "id": id,
        "principalId": principal,
        "resourceId": resource_id,
        "scope": scope,
    });
    let visible_at = now_ms() + inner.faults.faults.replication_delay_ms;
    inner.state.grants.push(Obj {
        data: grant.clone(),
        visible_at,
    });
    Ok(grant)
}

/// Used by seeding: make an AllPrincipals grant directly (no caller, no faults).
pub(crate) fn seed_grant(
    state: &mut State,
    client_sp: &str,
    resource_sp: &str,
    scope: &str,
) -> Result<(), String> {
    check_grant_scopes(state, resource_sp, scope).map_err(|e| e.message)?;
    let id = grant_id(client_sp, resource_sp, None);
    if state.grant_index(&id, None).is_some() {
        return Ok(());
    }
    state.grants.push(Obj {
        data: json!({"clientId": client_sp, "consentType": "AllPrincipals", "id": id,
                     "principalId": null, "resourceId": resource_sp, "scope": scope}),
        visible_at: 0,
    });
    Ok(())
}
