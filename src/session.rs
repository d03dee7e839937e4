//! What plan, apply, drift, export, rotate, secrets and verify share: the Graph connection (one
//! per customer tenant, held to that tenant), the vault, and reading the live state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::desired::Desired;
use crate::drift::{Snapshot, Target, read_targets};
use crate::graph::wire::Application;
use crate::graph::{
    AuthConfig, ExpectedTenant, GraphClient, GraphError, OperatorCredential, Stats,
};
use crate::observed::{FoundBy, Observed, find_apps, observe};
use crate::plan::{Observation, VaultView};
use crate::secret::Secret;
use crate::settings::Settings;
use crate::vault::{Vault, VaultError};

/// Why a session, a look-up or a vault read could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The flags cannot work (plain `http` to a remote host): a usage error, exit 2.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A tenant's connection or look-up failed (the message names the tenant).
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl SessionError {
    pub fn failed(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        SessionError::Failed {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            SessionError::Usage { hint, .. } | SessionError::Failed { hint, .. } => hint.clone(),
            SessionError::Graph(e) => e.hint(),
            SessionError::Vault(e) => e.hint(),
        }
    }
}

/// An authenticated Graph connection.
pub struct Session {
    pub auth: AuthConfig,
    pub client: GraphClient,
}

impl Session {
    /// From the settings and the environment (`azure_identity`'s chain), in the
    /// credential's own tenant: only for a command that names no customer (`export APP_ID`).
    pub fn from_settings(settings: &Settings) -> Result<Self, SessionError> {
        let auth = auth_config(settings)?;
        let client = GraphClient::from_auth(&auth)?;
        Ok(Session { auth, client })
    }

    /// The operator's credential asked for tokens in `tenant` (the customer's, from
    /// `defaults.yaml`), and a client that refuses any token whose `tid` is another tenant.
    pub fn for_tenant(settings: &Settings, tenant: ExpectedTenant) -> Result<Self, SessionError> {
        Self::for_tenant_with(auth_config(settings)?, tenant)
    }

    /// [`Session::for_tenant`] over a given configuration (and its connection pool).
    fn for_tenant_with(auth: AuthConfig, tenant: ExpectedTenant) -> Result<Self, SessionError> {
        let credential =
            OperatorCredential::for_tenant(&auth, &tenant.tenant_id).map_err(GraphError::from)?;
        let client =
            GraphClient::with_credential(&auth, Arc::new(credential))?.expect_tenant(tenant);
        Ok(Session { auth, client })
    }

    /// [`Session::for_tenant`] for one service's customer, connected: the token is obtained and
    /// its tenant checked before this returns, so a wrong tenant ends the command before any
    /// Graph request, vault read or write.
    pub async fn for_service(settings: &Settings, desired: &Desired) -> Result<Self, SessionError> {
        let session = Self::for_desired(settings, desired)?;
        session.connect().await?;
        Ok(session)
    }

    /// [`Session::for_tenant`] for one service's customer, not yet connected.
    pub fn for_desired(settings: &Settings, desired: &Desired) -> Result<Self, SessionError> {
        Self::for_tenant(settings, expected_of(std::slice::from_ref(desired)))
    }

    /// Get the first token and check its tenant (the token request is the only request).
    pub async fn connect(&self) -> Result<(), SessionError> {
        self.client.connect().await.map_err(SessionError::from)
    }

    /// With an explicit client-secret operator (the sandbox's emulator principal).
    pub fn with_operator(
        auth: AuthConfig,
        tenant: &str,
        client_id: &str,
        secret: &Secret,
    ) -> Result<Self, SessionError> {
        let credential = OperatorCredential::from_env_with(&auth, |k| match k {
            "AZURE_TENANT_ID" => Some(tenant.to_string()),
            "AZURE_CLIENT_ID" => Some(client_id.to_string()),
            "AZURE_CLIENT_SECRET" => Some(secret.expose().to_string()),
            _ => None,
        })
        .map_err(GraphError::from)?;
        let client = GraphClient::with_credential(&auth, Arc::new(credential))?
            .expect_tenant(ExpectedTenant::new(tenant, Vec::new()));
        Ok(Session { auth, client })
    }
}

/// The settings' Graph and login addresses; plain `http` to anything but this machine is a
/// usage error (exit 2), since the token (and at login the secret) would travel in clear.
fn auth_config(settings: &Settings) -> Result<AuthConfig, SessionError> {
    for (flag, raw) in [
        ("--graph-url", &settings.graph_url),
        ("--authority-host", &settings.authority_host),
    ] {
        if let Ok(url) = url::Url::parse(raw)
            && let Err(crate::graph::AuthError::Config { message, hint }) =
                crate::graph::auth::plain_http_only_on_loopback(flag, &url)
        {
            return Err(SessionError::Usage {
                message,
                hint: Some(hint),
            });
        }
    }
    Ok(settings.auth_config().map_err(GraphError::from)?)
}

/// The tenant of these services (all of one tenant) with their customers named.
fn expected_of(desired: &[Desired]) -> ExpectedTenant {
    let mut customers: Vec<String> = desired.iter().map(|d| d.customer.clone()).collect();
    customers.sort();
    customers.dedup();
    ExpectedTenant::new(
        desired
            .first()
            .map(|d| d.tenant_id.clone())
            .unwrap_or_default(),
        customers,
    )
}

/// The tenants of these services, each with its customers named, in order of appearance.
pub fn tenants_of(desired: &[Desired]) -> Vec<ExpectedTenant> {
    group_by_tenant(desired)
        .into_iter()
        .map(|(_, idx)| expected_of(&idx.iter().map(|&i| desired[i].clone()).collect::<Vec<_>>()))
        .collect()
}

/// The services of each tenant: indices into `desired`, tenants in order of first appearance
/// (tenant ids compared case-insensitively).
pub fn group_by_tenant(desired: &[Desired]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, d) in desired.iter().enumerate() {
        let key = d.tenant_id.to_ascii_lowercase();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups
}

/// A failure shared by every service of one tenant (the token could not be obtained, its
/// tenant was wrong, or the tenant's batched look-up failed).
#[derive(Debug, Clone)]
pub struct TenantFailure {
    pub message: String,
    pub hint: Option<String>,
}

impl TenantFailure {
    fn new(tenant: &ExpectedTenant, err: &SessionError) -> Self {
        let customers = if tenant.customers.is_empty() {
            String::new()
        } else {
            format!(" (customer {})", tenant.customers.join(", "))
        };
        TenantFailure {
            message: format!("tenant {}{customers}: {err}", tenant.tenant_id),
            hint: err.hint(),
        }
    }

    /// The error one service of the tenant reports.
    pub fn to_error(&self) -> SessionError {
        SessionError::failed(self.message.clone(), self.hint.clone())
    }
}

/// One connected session per tenant of an `--all` run (tenants connect in parallel).
pub struct Tenants {
    sessions: BTreeMap<String, Result<Arc<Session>, TenantFailure>>,
}

impl Tenants {
    /// A session per tenant of `desired`, each connected (token obtained, `tid` checked)
    /// concurrently. A tenant that cannot be reached is recorded, not fatal: only its own
    /// services fail. Configuration errors (flags, CA file) are the same for every tenant and
    /// end the command.
    pub async fn connect(
        settings: &Settings,
        wanted: Vec<ExpectedTenant>,
    ) -> Result<Self, SessionError> {
        Self::connect_with(settings, wanted, false).await
    }

    /// [`Tenants::connect`] for a run on one manifest: any tenant that cannot be reached ends
    /// the command with its own typed error (the same error, kind and hint as for one session).
    pub async fn connect_all_or_fail(
        settings: &Settings,
        wanted: Vec<ExpectedTenant>,
    ) -> Result<Self, SessionError> {
        Self::connect_with(settings, wanted, true).await
    }

    async fn connect_with(
        settings: &Settings,
        wanted: Vec<ExpectedTenant>,
        strict: bool,
    ) -> Result<Self, SessionError> {
        let base = auth_config(settings)?;
        let mut set = tokio::task::JoinSet::new();
        for expected in wanted {
            let key = expected.tenant_id.to_ascii_lowercase();
            let auth = base.share().map_err(GraphError::from)?;
            let session = Arc::new(Session::for_tenant_with(auth, expected.clone())?);
            set.spawn(async move {
                let result = match session.connect().await {
                    Ok(()) => Ok(session),
                    Err(e) => Err((expected, e)),
                };
                (key, result)
            });
        }
        let mut sessions = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            let (key, result) = joined.map_err(|e| {
                SessionError::failed(
                    format!("a tenant connection did not finish: {e}"),
                    None::<String>,
                )
            })?;
            let result = match result {
                Ok(s) => Ok(s),
                Err((_, e)) if strict => return Err(e),
                Err((expected, e)) => Err(TenantFailure::new(&expected, &e)),
            };
            sessions.insert(key, result);
        }
        Ok(Tenants { sessions })
    }

    /// The session of a tenant, or why there is none.
    pub fn get(&self, tenant: &str) -> Result<Arc<Session>, TenantFailure> {
        match self.sessions.get(&tenant.to_ascii_lowercase()) {
            Some(Ok(s)) => Ok(Arc::clone(s)),
            Some(Err(f)) => Err(f.clone()),
            None => Err(TenantFailure {
                message: format!("tenant {tenant}: not connected"),
                hint: None,
            }),
        }
    }

    /// Say on stderr which tenants could not be reached, and the fix.
    pub fn warn_failures(&self, printer: &crate::printer::Printer) {
        for f in self.failures() {
            printer.warn(&f.message);
            if let Some(h) = &f.hint {
                printer.status(&format!("  hint: {h}"));
            }
        }
    }

    /// The tenants that could not be reached.
    pub fn failures(&self) -> Vec<&TenantFailure> {
        self.sessions
            .values()
            .filter_map(|r| r.as_ref().err())
            .collect()
    }

    /// Graph counters over all tenants: requests added up; round trips the largest of any
    /// tenant (tenants run in parallel, so that is what the run waited for).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in self.sessions.values().filter_map(|r| r.as_ref().ok()) {
            let st = s.client.stats();
            total.http_requests += st.http_requests;
            total.token_requests += st.token_requests;
            total.round_trips = total.round_trips.max(st.round_trips);
        }
        total
    }
}

/// What one service's app look-up found.
pub type Found = (Option<Application>, Option<FoundBy>);

/// One service's look-up, with the session of its tenant.
pub type FoundIn = Result<(Arc<Session>, Found), SessionError>;

/// The app of every service, each tenant's look-ups in its own `$batch` under its own
/// session, tenants in parallel. A failed tenant (or its failed batch) fails only its services.
pub async fn find_apps_by_tenant(tenants: &Tenants, desired: &[Desired]) -> Vec<FoundIn> {
    let mut set = tokio::task::JoinSet::new();
    for (key, idx) in group_by_tenant(desired) {
        let group: Vec<Desired> = idx.iter().map(|&i| desired[i].clone()).collect();
        let session = tenants.get(&key);
        set.spawn(async move {
            let results: Vec<FoundIn> = match session {
                Err(f) => group.iter().map(|_| Err(f.to_error())).collect(),
                Ok(session) => match find_apps(&session.client, &group).await {
                    Ok(per) => per
                        .into_iter()
                        .map(|r| {
                            r.map(|f| (Arc::clone(&session), f))
                                .map_err(SessionError::from)
                        })
                        .collect(),
                    Err(e) => {
                        let f = TenantFailure::new(&expected_of(&group), &SessionError::from(e));
                        group.iter().map(|_| Err(f.to_error())).collect()
                    }
                },
            };
            (idx, results)
        });
    }
    in_order(set, desired.len(), "the tenant's look-up did not finish").await
}

/// One tenant's task: the indices of the services it covered, and their results.
type TenantResults<T> = (Vec<usize>, Vec<Result<T, SessionError>>);

/// The per-tenant results of `set` put back in the order of the services (each task returns
/// the indices it covered and their results); a slot no task filled fails with `unfinished`.
async fn in_order<T: 'static>(
    mut set: tokio::task::JoinSet<TenantResults<T>>,
    len: usize,
    unfinished: &'static str,
) -> Vec<Result<T, SessionError>> {
    let mut out: Vec<Option<Result<T, SessionError>>> = (0..len).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((idx, results)) = joined {
            for (i, r) in idx.into_iter().zip(results) {
                out[i] = Some(r);
            }
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SessionError::failed(unfinished, None::<String>))))
        .collect()
}

/// The directory relative vault and audit paths are resolved against (the manifest's own).
pub use crate::drift::reference::manifest_dir;

pub fn open_vault(desired: &Desired, base_dir: &Path) -> Result<Arc<dyn Vault>, SessionError> {
    Ok(Arc::from(crate::vault::open(
        &desired.vault,
        base_dir,
        &desired.secret.env,
    )?))
}

/// What the vault holds, by hint (the value is dropped at once).
pub async fn vault_view(vault: Arc<dyn Vault>, path: &str) -> Result<VaultView, SessionError> {
    if !vault.can_read() {
        return Ok(VaultView::Unreadable);
    }
    Ok(match crate::secret_flow::vault_get(vault, path).await? {
        Some(secret) => VaultView::Holds {
            hint: secret.hint(),
        },
        None => VaultView::Empty,
    })
}

/// What the vault holds, as apply, rotate and plan (which predicts apply) see it before minting:
/// a failed read that may only mean "no such entry" (a `get` that failed and the vault
/// declares no missing-entry rule) is taken as an empty vault, with a warning showing the
/// (redacted) failure; the read-back after the push must still succeed. `secrets` and `verify`
/// use [`vault_view`], where such a read is the failed read it is.
/// The second value is the warning to print when the read was taken as empty.
pub async fn vault_view_before_mint(
    vault: Arc<dyn Vault>,
    path: &str,
) -> Result<(VaultView, Option<String>), SessionError> {
    if !vault.can_read() {
        return Ok((VaultView::Unreadable, None));
    }
    match crate::secret_flow::vault_get(vault, path).await {
        Ok(Some(secret)) => Ok((
            VaultView::Holds {
                hint: secret.hint(),
            },
            None,
        )),
        Ok(None) => Ok((VaultView::Empty, None)),
        Err(e) if e.may_be_absent() => Ok((VaultView::Unknown, Some(taken_as_empty(&e)))),
        Err(e) => Err(e.into()),
    }
}

/// The warning of a failed read taken as "nothing usable stored".
fn taken_as_empty(e: &crate::vault::VaultError) -> String {
    format!(
        "{e}\n  taken as: the vault holds nothing usable at this path (a new secret is written \
         and must then read back)\nhint: {}",
        e.hint().unwrap_or_default()
    )
}

/// Read Graph and the vault concurrently (the vault read is local, so it costs no round trip).
pub async fn read_state(
    session: &Session,
    desired: &Desired,
    vault: Arc<dyn Vault>,
) -> Result<(Observed, Observation), SessionError> {
    let (observed, view) = tokio::join!(
        observe(&session.client, desired),
        vault_view_before_mint(vault, &desired.secret.vault_path)
    );
    let mut observed = observed?;
    let (view, warning) = view?;
    observed.warnings.extend(warning);
    let observation = Observation::from_observed(observed.clone(), view);
    Ok((observed, observation))
}

/// Read drift targets, each in its own tenant (`tenant_of[i]` for `targets[i]`): one batched
/// read per tenant under that tenant's session, tenants in parallel. A failed tenant (or its
/// failed read) fails only its own targets.
pub async fn read_targets_by_tenant(
    tenants: &Tenants,
    targets: &[Target],
    tenant_of: &[String],
    related: bool,
) -> Vec<Result<Option<Snapshot>, SessionError>> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, t) in tenant_of.iter().enumerate() {
        let key = t.to_ascii_lowercase();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (key, idx) in groups {
        let group: Vec<Target> = idx.iter().map(|&i| targets[i].clone()).collect();
        let session = tenants.get(&key);
        set.spawn(async move {
            let results: Vec<Result<Option<Snapshot>, SessionError>> = match session {
                Err(f) => group.iter().map(|_| Err(f.to_error())).collect(),
                Ok(session) => match read_targets(&session.client, &group, related).await {
                    Ok(per) => per
                        .into_iter()
                        .map(|r| r.map_err(SessionError::from))
                        .collect(),
                    Err(e) => {
                        let f = TenantFailure {
                            message: format!("tenant {key}: {e}"),
                            hint: e.hint(),
                        };
                        group.iter().map(|_| Err(f.to_error())).collect()
                    }
                },
            };
            (idx, results)
        });
    }
    in_order(set, targets.len(), "the tenant's read did not finish").await
}
