//! Microsoft Graph: wire types, the client, the read trait and the write type.
//!
//! * [`GraphRead`]: read-only look-ups; [`GraphRead::query`] runs independent reads in ONE
//!   round trip (`$batch`), which is what `observe` uses.
//! * [`GraphWrite`]: every mutation the nine steps need. Each is also available as a plain
//!   [`GraphRequest`] in [`requests`], so independent writes can go into one `$batch`.

pub mod auth;
pub mod client;
pub mod error;
pub mod tenant;
pub mod wire;

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use auth::{
    AuthConfig, AuthError, CredentialKind, OperatorCredential, ProveError, prove_secret,
};
pub use client::{
    BatchRequest, BatchResponse, GraphClient, GraphRequest, GraphResponse, RetryPolicy,
    SendFailure, Stats, TokenSource,
};
pub use error::{ApiError, GraphError};
pub use tenant::{ExpectedTenant, TenantError};

use crate::secret::Secret;
use wire::{Application, Collection, OAuth2PermissionGrant, PasswordCredential, ServicePrincipal};

/// How to find an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "value")]
pub enum Lookup {
    /// The object id (`/applications/{id}`).
    ObjectId(String),
    /// The application (client) id, an alternate key.
    AppId(String),
    /// `uniqueName`, an alternate key (set by the upsert).
    UniqueName(String),
    /// An App ID URI in `identifierUris` (how an app made by hand is adopted).
    IdentifierUri(String),
}

/// How to find a service principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "value")]
pub enum SpLookup {
    ObjectId(String),
    /// The appId it represents (alternate key; one SP per appId in a tenant).
    AppId(String),
    /// A value of `servicePrincipalNames` (the appId or one of the app's identifierUris).
    ServicePrincipalName(String),
}

/// One read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Application(Lookup),
    ServicePrincipal(SpLookup),
    /// The oauth2PermissionGrants whose client is this SP (object id).
    GrantsOf(String),
}

/// The answer to one [`Query`]: what was found (empty when absent).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Applications(Vec<Application>),
    ServicePrincipals(Vec<ServicePrincipal>),
    Grants(Vec<OAuth2PermissionGrant>),
}

impl Answer {
    pub fn applications(self) -> Vec<Application> {
        match self {
            Answer::Applications(v) => v,
            _ => Vec::new(),
        }
    }
    pub fn service_principals(self) -> Vec<ServicePrincipal> {
        match self {
            Answer::ServicePrincipals(v) => v,
            _ => Vec::new(),
        }
    }
    pub fn grants(self) -> Vec<OAuth2PermissionGrant> {
        match self {
            Answer::Grants(v) => v,
            _ => Vec::new(),
        }
    }
}

/// Read-only access to the tenant. Implemented by [`GraphClient`]; plan/drift tests can
/// implement it over fixed data.
pub trait GraphRead: Sync {
    /// Run independent reads in one round trip. Answers are in the order of `queries`;
    /// "absent" is an empty answer, never an error.
    fn query(
        &self,
        queries: Vec<Query>,
    ) -> impl Future<Output = Result<Vec<Answer>, GraphError>> + Send;

    /// One application, or `None`. Several matches (impossible for the keys, possible only
    /// for a corrupt tenant) are an error naming them.
    fn find_application(
        &self,
        lookup: &Lookup,
    ) -> impl Future<Output = Result<Option<Application>, GraphError>> + Send {
        async move {
            let answer = self
                .query(vec![Query::Application(lookup.clone())])
                .await?
                .pop()
                .map(Answer::applications)
                .unwrap_or_default();
            at_most_one(answer, &format!("{lookup:?}"), |a| {
                a.id.clone().unwrap_or_default()
            })
        }
    }

    /// The SP of an appId, or `None`.
    fn get_service_principal_by_app_id(
        &self,
        app_id: &str,
    ) -> impl Future<Output = Result<Option<ServicePrincipal>, GraphError>> + Send {
        async move {
            let answer = self
                .query(vec![Query::ServicePrincipal(SpLookup::AppId(
                    app_id.to_string(),
                ))])
                .await?
                .pop()
                .map(Answer::service_principals)
                .unwrap_or_default();
            at_most_one(
                answer,
                &format!("service principal of appId {app_id}"),
                |s| s.id.clone(),
            )
        }
    }

    /// The grants whose client is the SP with this object id.
    fn list_grants(
        &self,
        client_sp_id: &str,
    ) -> impl Future<Output = Result<Vec<OAuth2PermissionGrant>, GraphError>> + Send {
        async move {
            Ok(self
                .query(vec![Query::GrantsOf(client_sp_id.to_string())])
                .await?
                .pop()
                .map(Answer::grants)
                .unwrap_or_default())
        }
    }
}

fn at_most_one<T>(
    mut items: Vec<T>,
    what: &str,
    id: impl Fn(&T) -> String,
) -> Result<Option<T>, GraphError> {
    if items.len() > 1 {
        let ids: Vec<String> = items.iter().map(id).collect();
        return Err(GraphError::Lookup {
            message: format!("{what} matches {} objects: {}", ids.len(), ids.join(", ")),
            ids,
            hint: "remove the duplicate in the Entra portal, or pin the right one with app_id"
                .into(),
        });
    }
    Ok(items.pop())
}

impl GraphRead for GraphClient {
    async fn query(&self, queries: Vec<Query>) -> Result<Vec<Answer>, GraphError> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<BatchRequest> = queries
            .iter()
            .enumerate()
            .map(|(i, q)| BatchRequest::new((i + 1).to_string(), requests::read(q)))
            .collect();
        // A single read needs no `$batch` envelope; the round trip is the same.
        let responses = if batch.len() == 1 {
            let req = &batch[0].request;
            vec![match self.send(req).await {
                Ok(resp) => {
                    let body: Value = if resp.is_empty() {
                        Value::Null
                    } else {
                        resp.json()?
                    };
                    BatchResponse {
                        id: "1".into(),
                        status: resp.status,
                        headers: Default::default(),
                        body: Some(body),
                        method: req.method.to_string(),
                        path: req.path.clone(),
                    }
                }
                Err(e) if e.is_not_found() => {
                    return Ok(vec![empty_answer(&queries[0])]);
                }
                Err(e) => return Err(e),
            }]
        } else {
            self.batch(batch).await?
        };
        let mut answers = Vec::with_capacity(queries.len());
        for (q, resp) in queries.iter().zip(responses) {
            answers.push(self.answer(q, resp).await?);
        }
        Ok(answers)
    }
}

fn empty_answer(q: &Query) -> Answer {
    match q {
        Query::Application(_) => Answer::Applications(Vec::new()),
        Query::ServicePrincipal(_) => Answer::ServicePrincipals(Vec::new()),
        Query::GrantsOf(_) => Answer::Grants(Vec::new()),
    }
}

impl GraphClient {
    /// Turn one inner response into an answer; follows `@odata.nextLink` when Graph pages.
    async fn answer(&self, q: &Query, resp: BatchResponse) -> Result<Answer, GraphError> {
        let collection = requests::is_collection(q);
        let path = resp.path.clone();
        let Some(body) = resp.into_json::<Value>()? else {
            return Ok(empty_answer(q));
        };
        async fn items<T: serde::de::DeserializeOwned>(
            client: &GraphClient,
            body: Value,
            collection: bool,
            path: &str,
        ) -> Result<Vec<T>, GraphError> {
            let decode = |e: serde_json::Error| GraphError::Decode {
                method: "GET".into(),
                path: path.to_string(),
                message: e.to_string(),
            };
            if collection {
                let page: Collection<T> = serde_json::from_value(body).map_err(decode)?;
                client.rest_of_collection(page).await
            } else {
                Ok(vec![serde_json::from_value(body).map_err(decode)?])
            }
        }
        Ok(match q {
            Query::Application(_) => {
                Answer::Applications(items(self, body, collection, &path).await?)
            }
            Query::ServicePrincipal(_) => {
                Answer::ServicePrincipals(items(self, body, collection, &path).await?)
            }
            Query::GrantsOf(_) => Answer::Grants(items(self, body, collection, &path).await?),
        })
    }
}

/// The result of the upsert `PATCH /applications(uniqueName='…')`.
#[derive(Debug, Clone, PartialEq)]
pub enum UpsertOutcome {
    /// 201: a new app (the full object as Graph returned it; trust it rather than re-reading,
    /// replication may hide it for a while).
    Created(Box<Application>),
    /// 204: an existing app was updated.
    Updated,
}

/// The mutations of the nine steps. Every method is one HTTP request (plus a read for the
/// idempotent paths noted below).
#[derive(Debug, Clone)]
pub struct GraphWrite {
    client: GraphClient,
    replication_retry: bool,
}

impl GraphWrite {
    pub fn new(client: GraphClient) -> Self {
        GraphWrite {
            client,
            replication_retry: false,
        }
    }

    /// A writer that retries 404 `Request_ResourceNotFound` / 400 `NoBackingApplicationObject`
    /// (replication delay) within the retry policy's budget. Use it for writes that target an
    /// object created moments ago.
    pub fn with_replication_retry(&self, on: bool) -> Self {
        GraphWrite {
            client: self.client.clone(),
            replication_retry: on,
        }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    fn send_req(&self, req: GraphRequest) -> GraphRequest {
        req.replication_retry(self.replication_retry)
    }

    /// `PATCH /applications(uniqueName='…')`, with `Prefer: create-if-missing` when `create`.
    /// `app` carries the properties to set (`displayName` is required to create); read-only
    /// keys (`id`, `appId`, `uniqueName`) are not sent.
    pub async fn upsert_application(
        &self,
        unique_name: &str,
        app: &Application,
        create: bool,
    ) -> Result<UpsertOutcome, GraphError> {
        let resp = self
            .client
            .send(&self.send_req(requests::upsert_application(unique_name, app, create)))
            .await?;
        if resp.status == 201 {
            Ok(UpsertOutcome::Created(Box::new(resp.json()?)))
        } else {
            Ok(UpsertOutcome::Updated)
        }
    }

    /// `PATCH /applications/{id}`: only the properties present in `app` change (collections
    /// are replaced whole). `uniqueName` is sent when set (the one-time back-fill of an adopted
    /// app, as <https://github.com/microsoftgraph/msgraph-bicep-types/issues/196> advises).
    pub async fn patch_application(
        &self,
        object_id: &str,
        app: &Application,
    ) -> Result<(), GraphError> {
        self.client
            .send(&self.send_req(requests::patch_application(object_id, app)))
            .await
            .map(drop)
    }

    /// `DELETE /applications/{id}` (soft delete; also removes its SP in the home tenant).
    pub async fn delete_application(&self, object_id: &str) -> Result<(), GraphError> {
        self.client
            .send(&self.send_req(GraphRequest::delete(format!(
                "/applications/{}",
                requests::encode_key(object_id)
            ))))
            .await
            .map(drop)
    }

    /// `POST /applications/{id}/addPassword`. The secret goes from the response bytes straight
    /// into a [`Secret`]; the bytes are zeroized and nothing is logged. Never re-sent once it
    /// may have reached Graph (a second call would mint a second secret): a failure says
    /// whether the credential may exist all the same ([`SendFailure::maybe_done`]), and the
    /// caller reconciles ([`crate::secret_flow`]).
    pub async fn add_password(
        &self,
        app_object_id: &str,
        display_name: &str,
        end: time::OffsetDateTime,
    ) -> Result<(PasswordCredential, Secret), SendFailure> {
        let req = self.send_req(requests::add_password(app_object_id, display_name, end)?);
        let resp = self.client.send_reporting(&req).await?;
        // A 2xx: the credential exists, whatever the body holds.
        let created = |error: GraphError| SendFailure {
            error,
            maybe_done: true,
        };
        let (credential, secret) = resp.json::<AddedPassword>().map_err(created)?.split();
        let secret = secret.ok_or_else(|| {
            created(GraphError::Decode {
                method: "POST".into(),
                path: req.path.clone(),
                message: "addPassword answered without secretText".into(),
            })
        })?;
        Ok((credential, secret))
    }

    /// The app's password credentials as Graph lists them now (`GET /applications/{id}
    /// ?$select=passwordCredentials`); used to settle an `addPassword` of unknown outcome.
    pub async fn password_credentials(
        &self,
        app_object_id: &str,
    ) -> Result<Vec<PasswordCredential>, GraphError> {
        let path = format!(
            "/applications/{}?$select=id,passwordCredentials",
            requests::encode_key(app_object_id)
        );
        let app: Application = self
            .client
            .send(&GraphRequest::get(path).replication_retry(true))
            .await?
            .json()?;
        Ok(app.password_credentials.unwrap_or_default())
    }

    /// `POST /applications/{id}/removePassword`.
    pub async fn remove_password(
        &self,
        app_object_id: &str,
        key_id: &str,
    ) -> Result<(), GraphError> {
        self.client
            .send(&self.send_req(requests::remove_password(app_object_id, key_id)))
            .await
            .map(drop)
    }

    /// `POST /servicePrincipals {appId}`; when one exists already (409
    /// `Request_MultipleObjectsWithSameKeyValue`) it is read and returned instead.
    pub async fn create_service_principal(
        &self,
        app_id: &str,
    ) -> Result<ServicePrincipal, GraphError> {
        match self
            .client
            .send(&self.send_req(requests::create_service_principal(app_id)))
            .await
        {
            Ok(resp) => resp.json(),
            Err(e)
                if e.api().is_some_and(|a| {
                    a.status == 409 && a.code == "Request_MultipleObjectsWithSameKeyValue"
                }) =>
            {
                let path =
                    requests::read(&Query::ServicePrincipal(SpLookup::AppId(app_id.into()))).path;
                let resp = self
                    .client
                    .send(&GraphRequest::get(path).replication_retry(true))
                    .await?;
                resp.json()
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /oauth2PermissionGrants`.
    pub async fn create_grant(
        &self,
        grant: &OAuth2PermissionGrant,
    ) -> Result<OAuth2PermissionGrant, GraphError> {
        self.client
            .send(&self.send_req(requests::create_grant(grant)))
            .await?
            .json()
    }

    /// `PATCH /oauth2PermissionGrants/{id} {scope}` (the scope string is replaced, not merged).
    pub async fn update_grant_scope(&self, grant_id: &str, scope: &str) -> Result<(), GraphError> {
        self.client
            .send(&self.send_req(requests::update_grant_scope(grant_id, scope)))
            .await
            .map(drop)
    }

    /// `DELETE /oauth2PermissionGrants/{id}`.
    pub async fn delete_grant(&self, grant_id: &str) -> Result<(), GraphError> {
        self.client
            .send(&self.send_req(requests::delete_grant(grant_id)))
            .await
            .map(drop)
    }
}

/// The `addPassword` response: the listed credential plus the one-time `secretText`. Fields
/// are spelled out (no `#[serde(flatten)]`, which would buffer a copy of the secret).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddedPassword {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    hint: Option<String>,
    #[serde(default)]
    start_date_time: Option<String>,
    #[serde(default)]
    end_date_time: Option<String>,
    #[serde(default, deserialize_with = "secret_from_string")]
    secret_text: Option<Secret>,
}

impl AddedPassword {
    fn split(self) -> (PasswordCredential, Option<Secret>) {
        (
            PasswordCredential {
                key_id: self.key_id,
                display_name: self.display_name,
                hint: self.hint,
                start_date_time: self.start_date_time,
                end_date_time: self.end_date_time,
            },
            self.secret_text,
        )
    }
}

fn secret_from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    // The String is moved into the zeroizing Secret, not copied.
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

/// Every Graph request of the tool as plain data, to send alone or in a `$batch`.
pub mod requests {
    use super::*;

    /// An alternate-key or object-id value in a URL path: `'` doubled by the caller's quoting,
    /// everything outside the unreserved set percent-encoded.
    pub fn encode_key(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~'".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn key(value: &str) -> String {
        encode_key(&client::odata_quote(value))
    }

    fn filter(expr: &str) -> String {
        format!("$filter={}", client::encode_query_value(expr))
    }

    pub(super) fn is_collection(q: &Query) -> bool {
        matches!(
            q,
            Query::Application(Lookup::IdentifierUri(_))
                | Query::ServicePrincipal(SpLookup::ServicePrincipalName(_))
                | Query::GrantsOf(_)
        )
    }

    /// The GET for a query.
    pub fn read(q: &Query) -> GraphRequest {
        let path = match q {
            Query::Application(Lookup::ObjectId(id)) => format!("/applications/{}", encode_key(id)),
            Query::Application(Lookup::AppId(id)) => format!("/applications(appId={})", key(id)),
            Query::Application(Lookup::UniqueName(n)) => {
                format!("/applications(uniqueName={})", key(n))
            }
            Query::Application(Lookup::IdentifierUri(uri)) => format!(
                "/applications?{}",
                filter(&format!(
                    "identifierUris/any(x:x eq {})",
                    client::odata_quote(uri)
                ))
            ),
            Query::ServicePrincipal(SpLookup::ObjectId(id)) => {
                format!("/servicePrincipals/{}", encode_key(id))
            }
            Query::ServicePrincipal(SpLookup::AppId(id)) => {
                format!("/servicePrincipals(appId={})", key(id))
            }
            Query::ServicePrincipal(SpLookup::ServicePrincipalName(n)) => format!(
                "/servicePrincipals?{}",
                filter(&format!(
                    "servicePrincipalNames/any(x:x eq {})",
                    client::odata_quote(n)
                ))
            ),
            Query::GrantsOf(sp) => format!(
                "/oauth2PermissionGrants?{}",
                filter(&format!("clientId eq {}", client::odata_quote(sp)))
            ),
        };
        GraphRequest::get(path)
    }

    fn writable(app: &Application, keep_unique_name: bool) -> Value {
        let mut app = app.clone();
        app.id = None;
        app.app_id = None;
        if !keep_unique_name {
            app.unique_name = None;
        }
        serde_json::to_value(app).unwrap_or(Value::Null)
    }

    pub fn upsert_application(unique_name: &str, app: &Application, create: bool) -> GraphRequest {
        let req = GraphRequest::patch(
            format!("/applications(uniqueName={})", key(unique_name)),
            writable(app, false),
        );
        if create {
            req.header("Prefer", "create-if-missing")
        } else {
            req
        }
    }

    pub fn patch_application(object_id: &str, app: &Application) -> GraphRequest {
        GraphRequest::patch(
            format!("/applications/{}", encode_key(object_id)),
            writable(app, true),
        )
    }

    /// Sensitive: its response carries the secret (never batched).
    pub fn add_password(
        app_object_id: &str,
        display_name: &str,
        end: time::OffsetDateTime,
    ) -> Result<GraphRequest, GraphError> {
        let end = end
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                GraphError::invalid(format!("cannot format the secret's end date: {e}"))
            })?;
        Ok(GraphRequest::post(
            format!("/applications/{}/addPassword", encode_key(app_object_id)),
            json!({"passwordCredential": {"displayName": display_name, "endDateTime": end}}),
        )
        .sensitive()
        .at_most_once())
    }

    pub fn remove_password(app_object_id: &str, key_id: &str) -> GraphRequest {
        let mut req = GraphRequest::post(
            format!("/applications/{}/removePassword", encode_key(app_object_id)),
            json!({"keyId": key_id}),
        );
        // Removing the same keyId twice cannot remove anything else.
        req.idempotent = true;
        req
    }

    pub fn create_service_principal(app_id: &str) -> GraphRequest {
        GraphRequest::post("/servicePrincipals", json!({"appId": app_id}))
    }

    pub fn create_grant(grant: &OAuth2PermissionGrant) -> GraphRequest {
        let mut body = json!({
            "clientId": grant.client_id,
            "consentType": grant.consent_type,
            "resourceId": grant.resource_id,
            "scope": grant.scope,
        });
        if let Some(p) = &grant.principal_id {
            body["principalId"] = Value::String(p.clone());
        }
        GraphRequest::post("/oauth2PermissionGrants", body)
    }

    pub fn update_grant_scope(grant_id: &str, scope: &str) -> GraphRequest {
        GraphRequest::patch(
            format!("/oauth2PermissionGrants/{}", encode_key(grant_id)),
            json!({"scope": scope}),
        )
    }

    pub fn delete_grant(grant_id: &str) -> GraphRequest {
        GraphRequest::delete(format!("/oauth2PermissionGrants/{}", encode_key(grant_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_paths() {
        let p = |q: Query| requests::read(&q).path;
        assert_eq!(
            p(Query::Application(Lookup::UniqueName(
                "axe-blueprint-mcp".into()
            ))),
            "/applications(uniqueName='axe-blueprint-mcp')"
        );
        assert_eq!(
            p(Query::Application(Lookup::IdentifierUri(
                "https://axe.axelabs.ai/blueprint/mcp".into()
            ))),
            "/applications?$filter=identifierUris/any(x:x%20eq%20%27https://axe.axelabs.ai/blueprint/mcp%27)"
        );
        assert_eq!(
            p(Query::ServicePrincipal(SpLookup::AppId(
                crate::desired::MS_GRAPH_APP_ID.into()
            ))),
            "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')"
        );
        assert_eq!(
            p(Query::GrantsOf(
                "b0d9b9e3-0ecf-4bfd-8dab-9273dd055a94".into()
            )),
            "/oauth2PermissionGrants?$filter=clientId%20eq%20%27b0d9b9e3-0ecf-4bfd-8dab-9273dd055a94%27"
        );
    }

    #[test]
    fn upsert_sends_no_read_only_keys() {
        let app = Application {
            id: Some("obj".into()),
            app_id: Some("app".into()),
            unique_name: Some("axe-x-mcp".into()),
            display_name: Some("X MCP".into()),
            ..Default::default()
        };
        let r = requests::upsert_application("axe-x-mcp", &app, true);
        assert_eq!(r.body.as_ref().unwrap(), &json!({"displayName": "X MCP"}));
        assert!(
            r.headers
                .contains(&("Prefer".into(), "create-if-missing".into()))
        );
        let r = requests::upsert_application("axe-x-mcp", &app, false);
        assert!(r.headers.is_empty());
        let p = requests::patch_application("obj", &app);
        assert_eq!(
            p.body.unwrap(),
            json!({"displayName": "X MCP", "uniqueName": "axe-x-mcp"})
        );
    }

    #[test]
    fn add_password_is_sensitive_and_parses_into_a_secret() {
        let end = time::macros::datetime!(2028-05-01 00:00 UTC);
        let r = requests::add_password("obj", "entraform", end).unwrap();
        assert!(r.sensitive);
        assert_eq!(
            r.body.unwrap()["passwordCredential"]["endDateTime"],
            "2028-05-01T00:00:00Z"
        );
        let added: AddedPassword = serde_json::from_str(
            r#"{"keyId":"f0b0b335-1d71-4883-8f98-567911bfdca6","hint":"abc","displayName":"entraform",
                "secretText":"abc~DEF.ghi_jkl-0123456789abcdefghijklmnop","endDateTime":"2028-05-01T00:00:00Z"}"#,
        )
        .unwrap();
        let (cred, s) = added.split();
        assert_eq!(cred.hint.as_deref(), Some("abc"));
        let s = s.unwrap();
        assert_eq!(s.len(), 42);
        assert_eq!(format!("{s:?}"), "***");
    }
}
