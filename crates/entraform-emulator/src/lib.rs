//! A local, stateful fake of the Entra login endpoint and Microsoft Graph v1.0 (`docs/emulator.md`),
//! faithful to the Graph and identity-platform docs each rule cites: the embedded default for
//! `apply --sandbox`, the target of every integration test, and the ground on which entraform
//! is compared with the real `az`.
//!
//! One port serves everything. With TLS, login/ARM are reached as `https://localhost:PORT` and
//! Graph as `https://127.0.0.1:PORT/v1.0`: two origins, because `az rest` picks the token
//! audience by origin (docs/emulator.md, "The real Azure CLI against it").
//!
//! ```no_run
//! # async fn demo() -> Result<(), entraform_emulator::EmulatorError> {
//! use entraform_emulator::{EmulatorConfig, start};
//! let emu = start(EmulatorConfig::default().tls(true).verified_domain("axelabs.ai")).await?;
//! let graph = emu.graph_url(); // https://127.0.0.1:PORT/v1.0
//! let secret = emu.operator_secret(); // an entraform_secret::Secret
//! # let _ = (graph, secret);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Seed files (`--seed FILE`, [`EmulatorConfig::seed`], `POST /_emulator/seed`):
//!
//! ```json
//! {"applications": [{
//!     "displayName": "Frame MCP", "appId": "optional fixed GUID", "...": "any application JSON",
//!     "servicePrincipal": true,
//!     "passwords": [{"displayName": "hand-made", "secretText": "optional", "endDateTime": "optional"}],
//!     "grants": [{"resourceAppId": "00000003-0000-0000-c000-000000000000", "scope": "User.Read"},
//!                {"resourceAppId": "self", "scope": "mcp.access"}]
//! }]}
//! ```
//! Seeded apps are created as if by hand: no uniqueName unless given, visible at once, and
//! checked by the same rules as a Graph POST. A `grants` entry makes an `AllPrincipals` grant
//! from the app's SP to the SP of `resourceAppId` (`self` = the app itself). A top-level
//! `"tenant": "GUID"` seeds that hosted tenant instead of the first.
//!
//! Several tenants ([`EmulatorConfig::add_tenant`]): each its own directory, operators and login
//! issuer; a multi-tenant operator app registered in the first and consented in the others
//! ([`RunningEmulator::multi_tenant_operator`]); Graph requests served from the tenant of the
//! bearer token's `tid`.

mod access;
mod batch;
mod control;
mod errors;
mod faults;
mod graph;
mod login;
mod odata;
mod rules;
mod server;
mod state;
mod tenants;
mod tls;
mod util;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use faults::{Faults, LostAnswer};
pub use state::{GRAPH_APP_ID, USER_READ_ID};
pub use tenants::MULTI_TENANT_OPERATOR_UNIQUE_NAME;

pub use entraform_secret::Secret;
use faults::FaultState;
use state::State;

/// Why the emulator could not start or an in-process control call failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid listen address '{0}'")]
    Address(String),
    #[error(
        "{0} is not a loopback address: the emulator hands out every secret it issues to anyone who can reach it"
    )]
    Remote(SocketAddr),
    #[error("cannot create the TLS certificates: {0}")]
    Tls(String),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid seed: {0}")]
    Seed(String),
    #[error("invalid state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("invalid faults: {0}")]
    Faults(String),
    #[error("{0}")]
    NotFound(String),
}

impl EmulatorError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            EmulatorError::Bind { .. } => Some(
                "pick another port, or use --listen 127.0.0.1:0 to let the system choose a free one"
                    .into(),
            ),
            EmulatorError::Address(_) => Some("use HOST:PORT, e.g. 127.0.0.1:8443".into()),
            EmulatorError::Remote(_) => Some(
                "listen on 127.0.0.1 (or [::1]), or pass --allow-remote to serve other machines on a network you trust"
                    .into(),
            ),
            EmulatorError::Seed(_) => Some(
                "a seed is {\"applications\": [{...application JSON..., \"servicePrincipal\": true, \"passwords\": [...], \"grants\": [...]}]}; see `entraform emulator --help`"
                    .into(),
            ),
            EmulatorError::State { .. } => Some(
                "the file is not an emulator state file; delete it or point --state elsewhere"
                    .into(),
            ),
            EmulatorError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some("check the path".into())
            }
            EmulatorError::Io { .. } => Some("check the file's permissions and owner".into()),
            EmulatorError::Faults(_) => {
                Some("rates are probabilities between 0 and 1; times are milliseconds".into())
            }
            _ => None,
        }
    }
}

/// How to start an emulator. `Default` = plain HTTP on a free loopback port, the tenant of the
/// seeds, no faults; the builder methods adjust one thing each.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA + leaf.
    pub tls: bool,
    /// The (first) tenant id (GUID): the one the export lines name.
    pub tenant_id: String,
    /// The tenant's initial domain (`*.onmicrosoft.com`, always verified).
    pub initial_domain: String,
    /// More tenants hosted beside the first, each its own directory, operators and login
    /// issuer (initial domain `entraformemulator<N>.onmicrosoft.com`, N = 2, 3, …).
    pub extra_tenants: Vec<String>,
    /// Verified custom domains, of every hosted tenant (their subdomains count too,
    /// <https://learn.microsoft.com/entra/identity-platform/identifier-uri-restrictions>).
    pub verified_domains: Vec<String>,
    /// Seed documents (see the module docs), applied in order at start and on reset.
    pub seeds: Vec<Value>,
    /// Initial fault settings.
    pub faults: Faults,
    /// Persist the tenant to this file after every change, and load it at start.
    pub state_file: Option<PathBuf>,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Request bodies above this size get 413.
    pub max_body_bytes: usize,
    /// Export the limited operator (no grant permission) as `AZURE_CLIENT_*` instead.
    pub export_limited_operator: bool,
    /// Allow a non-loopback `listen` address (and accept it as a `Host`).
    pub allow_remote: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            tenant_id: "122fb574-7efa-476a-95b6-bee81bce2cce".into(),
            initial_domain: "entraformemulator.onmicrosoft.com".into(),
            extra_tenants: Vec::new(),
            verified_domains: Vec::new(),
            seeds: Vec::new(),
            faults: Faults::default(),
            state_file: None,
            token_lifetime: Duration::from_secs(3599),
            max_body_bytes: 4 * 1024 * 1024,
            export_limited_operator: false,
            allow_remote: false,
        }
    }
}

impl EmulatorConfig {
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// The first tenant's id.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = tenant_id.into();
        self
    }
    /// Host one more tenant (ignored when it is already hosted).
    pub fn add_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        let t = tenant_id.into();
        if !self.tenant_ids().iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            self.extra_tenants.push(t);
        }
        self
    }
    /// Every hosted tenant, the first one first.
    pub fn tenant_ids(&self) -> Vec<String> {
        let mut all = vec![self.tenant_id.clone()];
        all.extend(self.extra_tenants.iter().cloned());
        all
    }
    pub fn verified_domain(mut self, domain: impl Into<String>) -> Self {
        self.verified_domains.push(domain.into());
        self
    }
    pub fn seed(mut self, doc: Value) -> Self {
        self.seeds.push(doc);
        self
    }
    /// Read a seed file (JSON).
    pub fn seed_file(mut self, path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Io {
            action: "read the seed file",
            path: path.to_path_buf(),
            source,
        })?;
        let doc = serde_json::from_str(&text)
            .map_err(|e| EmulatorError::Seed(format!("{}: {e}", path.display())))?;
        self.seeds.push(doc);
        Ok(self)
    }
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }
    pub fn allow_remote(mut self, on: bool) -> Self {
        self.allow_remote = on;
        self
    }
}

/// One request the emulator answered (bodies are never recorded; secrets never appear).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Order of arrival (1-based; inner `$batch` requests share their batch's number).
    pub seq: u64,
    pub method: String,
    /// The path as received, with repeated slashes collapsed (`/v1.0/applications`).
    pub path: String,
    /// The raw query string; values of secret-looking parameters are `***`.
    pub query: String,
    pub status: u16,
    /// Milliseconds from the emulator's start to the request's arrival.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// Whether this is a `$batch` (its inner requests are in `inner`).
    pub batch: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<RequestRecord>,
    /// The `id` of an inner `$batch` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    pub client_request_id: String,
    pub request_id: String,
    /// `throttle` or `error` when a fault was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// A seeded service principal that can log in (client credentials).
#[derive(Debug)]
pub struct Principal {
    pub client_id: String,
    /// The app roles its tokens carry.
    pub roles: Vec<String>,
    secret: Secret,
}

impl Principal {
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

/// An access token the emulator issued (tokens live in memory only).
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub app_id: String,
    /// The tenant it was issued in (its `tid`): Graph serves that tenant's directory.
    pub tenant_id: String,
    pub roles: Vec<String>,
    /// `graph`, `arm` or an application's appId.
    pub audience: String,
    pub expires_ms: u64,
}

/// The public addresses of a running emulator.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    /// `https://localhost:PORT` (TLS) or `http://127.0.0.1:PORT`.
    pub authority: String,
    /// Graph origin: `https://127.0.0.1:PORT`.
    pub graph_origin: String,
}

impl Urls {
    /// The two origins for a server on `ip:port`: with TLS, login/ARM on `localhost` and Graph
    /// on the IP (two origins, because `az rest` picks the token audience by origin).
    fn new(ip: IpAddr, port: u16, tls: bool) -> Self {
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        if tls {
            Urls {
                authority: format!("https://localhost:{port}"),
                graph_origin: format!("https://{host}:{port}"),
            }
        } else {
            Urls {
                authority: format!("http://{host}:{port}"),
                graph_origin: format!("http://{host}:{port}"),
            }
        }
    }
}

pub(crate) struct Inner {
    /// The tenant the request being served is for (see [`Inner::activate`]).
    pub state: State,
    /// The other hosted tenants, while `state` holds one.
    pub parked: Vec<State>,
    /// Hosted tenant ids, the first (exported) one first.
    pub order: Vec<String>,
    /// What `reset` returns to (after seeds and operators), one per tenant in `order`.
    pub initial: Vec<State>,
    pub faults: FaultState,
    pub initial_faults: Faults,
    pub log: Vec<RequestRecord>,
    pub seq: u64,
    pub tokens: HashMap<String, TokenInfo>,
    pub issued: Vec<Secret>,
}

impl Inner {
    /// Make `tenant` (its id, or one of its domains) the tenant `state` holds; false when the
    /// emulator does not host it. Every route that reads or writes a directory activates the
    /// tenant it serves first (Graph: the bearer token's `tid`; login: the URL's tenant).
    pub fn activate(&mut self, tenant: &str) -> bool {
        let wanted = tenant.to_ascii_lowercase();
        let hosts = |s: &State| {
            s.tenant_id.eq_ignore_ascii_case(&wanted)
                || s.domains().iter().any(|d| d.eq_ignore_ascii_case(&wanted))
        };
        if hosts(&self.state) {
            return true;
        }
        match self.parked.iter().position(hosts) {
            Some(i) => {
                std::mem::swap(&mut self.state, &mut self.parked[i]);
                true
            }
            None => false,
        }
    }

    /// The first (exported) tenant: the default of the control endpoints.
    pub fn activate_first(&mut self) {
        if let Some(first) = self.order.first().cloned() {
            self.activate(&first);
        }
    }

    /// Every tenant, in `order`.
    pub fn tenants(&self) -> Vec<&State> {
        let mut all: Vec<&State> = std::iter::once(&self.state).chain(&self.parked).collect();
        all.sort_by_key(|s| {
            self.order
                .iter()
                .position(|t| t.eq_ignore_ascii_case(&s.tenant_id))
                .unwrap_or(usize::MAX)
        });
        all
    }
}

/// What `--state` holds: one tenant (the original format), or several.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StateFile {
    Many { tenants: Vec<State> },
    One(Box<State>),
}

pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    pub urls: Urls,
    pub started: Instant,
    pub token_lifetime: Duration,
    pub state_file: Option<PathBuf>,
    pub max_body: usize,
    /// Guards `/_emulator/*` (see `access`).
    pub control_token: Secret,
    /// The `Host` values the emulator answers to.
    pub hosts: access::HostPolicy,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent JSON behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.urls.graph_origin)
    }

    /// Write the tenants to `--state` (temp file in the same directory + rename): one tenant
    /// as before, several as `{"tenants": [...]}`.
    pub fn persist(&self, inner: &Inner) {
        let Some(path) = &self.state_file else { return };
        let tenants = inner.tenants();
        let bytes = match tenants.as_slice() {
            [one] => serde_json::to_vec_pretty(one),
            many => serde_json::to_vec_pretty(&serde_json::json!({ "tenants": many })),
        }
        .unwrap_or_default();
        if let Err(e) = write_atomic(path, &bytes) {
            tracing::warn!("cannot save the emulator state to {}: {e}", path.display());
        }
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The two seeded operators of one tenant.
#[derive(Debug)]
struct TenantOperators {
    tenant_id: String,
    operator: Principal,
    limited: Principal,
}

/// The tenant a seed document is for: its `"tenant"` key, else the first tenant.
fn seed_tenant(doc: &Value, first: &str) -> String {
    doc["tenant"].as_str().unwrap_or(first).to_string()
}

/// A running emulator. Dropping it without [`RunningEmulator::shutdown`] stops it too.
pub struct RunningEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    operator: Principal,
    limited: Principal,
    /// The operators of the tenants after the first.
    other_operators: Vec<TenantOperators>,
    /// The multi-tenant operator app (only when more than one tenant is hosted).
    multi: Option<Principal>,
    export_limited: bool,
    ca_pem: Option<String>,
    ca_path: Mutex<Option<PathBuf>>,
    /// The private directory of [`RunningEmulator::write_ca_cert_private`], removed on drop.
    tls_dir: Mutex<Option<tempfile::TempDir>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .field("tls", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Start an emulator on `config.listen` and return once it accepts connections.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    config.faults.validate().map_err(EmulatorError::Faults)?;
    if !config.listen.ip().is_loopback() && !config.allow_remote {
        return Err(EmulatorError::Remote(config.listen));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
    // Advertise loopback when listening on all interfaces.
    let ip: IpAddr = if addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let tls = if config.tls {
        Some(tls::generate(Some(ip))?)
    } else {
        None
    };
    let urls = Urls::new(ip, addr.port(), tls.is_some());

    // The tenants: from --state if it exists, else fresh; then seeds (fresh only) and operators.
    let ids = config.tenant_ids();
    let mut issued = Vec::new();
    let mut states = tenant_states(&config, &ids, &mut issued)?;
    let (operators, multi) = add_operators(&mut states, &config, &mut issued);
    let mut states = states.into_iter();
    let state = states
        .next()
        .ok_or_else(|| EmulatorError::Seed("no tenant".into()))?;
    let parked: Vec<State> = states.collect();
    let mut initial = vec![state.clone()];
    initial.extend(parked.iter().cloned());
    let mut operators = operators.into_iter();
    let first = operators
        .next()
        .ok_or_else(|| EmulatorError::Seed("no tenant".into()))?;
    let operator = first.operator;
    let limited = first.limited;
    let other_operators: Vec<TenantOperators> = operators.collect();

    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            initial,
            state,
            parked,
            order: ids.clone(),
            faults: FaultState::new(config.faults.clone()),
            initial_faults: config.faults.clone(),
            log: Vec::new(),
            seq: 0,
            tokens: HashMap::new(),
            issued,
        }),
        urls,
        started: Instant::now(),
        token_lifetime: config.token_lifetime,
        state_file: config.state_file.clone(),
        max_body: config.max_body_bytes,
        control_token: access::new_control_token(),
        hosts: access::HostPolicy::new(addr, config.allow_remote, config.tls),
    });
    {
        let inner = shared.lock();
        shared.persist(&inner);
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let task = tokio::spawn(server::serve(
        listener,
        tls.map(|t| t.acceptor),
        shared.clone(),
        stop_rx,
    ));
    Ok(RunningEmulator {
        shared,
        addr,
        operator,
        limited,
        other_operators,
        multi,
        export_limited: config.export_limited_operator,
        ca_pem,
        ca_path: Mutex::new(None),
        tls_dir: Mutex::new(None),
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// The hosted tenants, in order: each from the `--state` file if it is there, else fresh with
/// the seeds that name it applied (the secrets they set go to `issued`).
fn tenant_states(
    config: &EmulatorConfig,
    ids: &[String],
    issued: &mut Vec<Secret>,
) -> Result<Vec<State>, EmulatorError> {
    let loaded = match &config.state_file {
        Some(path) if path.exists() => Some(load_state_file(path)?),
        _ => None,
    };
    let mut states: Vec<State> = Vec::with_capacity(ids.len());
    for (n, tid) in ids.iter().enumerate() {
        let from_file = loaded
            .as_ref()
            .and_then(|l| l.iter().find(|s| s.tenant_id.eq_ignore_ascii_case(tid)))
            .cloned();
        let fresh = from_file.is_none();
        let mut s = from_file.unwrap_or_else(|| {
            let domain = if n == 0 {
                config.initial_domain.clone()
            } else {
                format!("entraformemulator{}.onmicrosoft.com", n + 1)
            };
            State::new(tid, &domain, &config.verified_domains)
        });
        if fresh {
            for doc in &config.seeds {
                if seed_tenant(doc, &ids[0]).eq_ignore_ascii_case(tid) {
                    control::apply_seed(&mut s, doc, issued).map_err(EmulatorError::Seed)?;
                }
            }
        }
        states.push(s);
    }
    for doc in &config.seeds {
        let t = seed_tenant(doc, &ids[0]);
        if !ids.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
            return Err(EmulatorError::Seed(format!(
                "the seed names tenant {t}, which the emulator does not host (add it with --tenant)"
            )));
        }
    }
    Ok(states)
}

/// The tenants a `--state` file holds (one, in the old format, or several).
fn load_state_file(path: &Path) -> Result<Vec<State>, EmulatorError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Io {
        action: "read the state file",
        path: path.to_path_buf(),
        source,
    })?;
    let file: StateFile = serde_json::from_str(&text).map_err(|e| EmulatorError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(match file {
        StateFile::Many { tenants } => tenants,
        StateFile::One(s) => vec![*s],
    })
}

/// Every tenant's verified domains, operator and limited operator; with several tenants, the
/// multi-tenant operator. Their secrets go to `issued`.
fn add_operators(
    states: &mut [State],
    config: &EmulatorConfig,
    issued: &mut Vec<Secret>,
) -> (Vec<TenantOperators>, Option<Principal>) {
    let mut operators = Vec::with_capacity(states.len());
    for state in states.iter_mut() {
        for d in &config.verified_domains {
            if !state
                .verified_domains
                .iter()
                .any(|x| x.eq_ignore_ascii_case(d))
            {
                state.verified_domains.push(d.clone());
            }
        }
        let operator = control::ensure_operator(
            state,
            state::OPERATOR_UNIQUE_NAME,
            "entraform emulator operator",
            vec![
                state::roles::APPLICATION_READWRITE_ALL.to_string(),
                state::roles::GRANT_READWRITE_ALL.to_string(),
            ],
        );
        let limited = control::ensure_operator(
            state,
            state::LIMITED_OPERATOR_UNIQUE_NAME,
            "entraform emulator operator (no grant permission)",
            vec![state::roles::APPLICATION_READWRITE_ALL.to_string()],
        );
        issued.push(Secret::new(operator.secret.expose().to_string()));
        issued.push(Secret::new(limited.secret.expose().to_string()));
        operators.push(TenantOperators {
            tenant_id: state.tenant_id.clone(),
            operator,
            limited,
        });
    }
    // The multi-tenant operator app: registered in the first tenant, consented (a service
    // principal with the same app roles) in every other one.
    let multi = (states.len() > 1).then(|| {
        let (home, others) = states.split_at_mut(1);
        let p = tenants::ensure_multi_tenant_operator(
            &mut home[0],
            others,
            vec![
                state::roles::APPLICATION_READWRITE_ALL.to_string(),
                state::roles::GRANT_READWRITE_ALL.to_string(),
            ],
        );
        issued.push(Secret::new(p.secret.expose().to_string()));
        p
    });
    (operators, multi)
}

impl RunningEmulator {
    /// The socket it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Login/ARM base: `https://localhost:PORT` (TLS) or `http://127.0.0.1:PORT`.
    pub fn authority_host(&self) -> String {
        self.shared.urls.authority.clone()
    }
    /// Graph base including the version: `https://127.0.0.1:PORT/v1.0`.
    pub fn graph_url(&self) -> String {
        self.shared.graph_url()
    }
    /// Controls base: `https://127.0.0.1:PORT/_emulator`.
    pub fn control_url(&self) -> String {
        format!("{}/_emulator", self.shared.urls.graph_origin)
    }
    /// The token `/_emulator/*` needs over HTTP, as `Authorization: Bearer <token>` (random per
    /// start; the in-process methods need none).
    pub fn control_token(&self) -> &Secret {
        &self.shared.control_token
    }
    /// The token endpoint of the tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.shared.urls.authority,
            self.tenant_id()
        )
    }
    /// The first tenant (the one the export lines name).
    pub fn tenant_id(&self) -> String {
        self.shared.lock().order[0].clone()
    }
    /// Every hosted tenant, the first one first.
    pub fn tenant_ids(&self) -> Vec<String> {
        self.shared.lock().order.clone()
    }
    /// The token endpoint of a hosted (or any) tenant.
    pub fn token_url_for(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.urls.authority)
    }
    /// The privileged operator of one hosted tenant (its app is registered only there).
    pub fn tenant_operator(&self, tenant: &str) -> Option<&Principal> {
        if self.tenant_id().eq_ignore_ascii_case(tenant) {
            return Some(&self.operator);
        }
        self.other_operators
            .iter()
            .find(|o| o.tenant_id.eq_ignore_ascii_case(tenant))
            .map(|o| &o.operator)
    }
    /// The limited operator of one hosted tenant.
    pub fn tenant_limited_operator(&self, tenant: &str) -> Option<&Principal> {
        if self.tenant_id().eq_ignore_ascii_case(tenant) {
            return Some(&self.limited);
        }
        self.other_operators
            .iter()
            .find(|o| o.tenant_id.eq_ignore_ascii_case(tenant))
            .map(|o| &o.limited)
    }
    /// The multi-tenant operator app (registered in the first tenant, consented in every
    /// other hosted one, same client id and secret everywhere): only with several tenants.
    pub fn multi_tenant_operator(&self) -> Option<&Principal> {
        self.multi.as_ref()
    }
    /// The privileged operator (Application.ReadWrite.All + DelegatedPermissionGrant.ReadWrite.All).
    pub fn operator(&self) -> &Principal {
        &self.operator
    }
    pub fn operator_client_id(&self) -> &str {
        &self.operator.client_id
    }
    pub fn operator_secret(&self) -> &Secret {
        &self.operator.secret
    }
    /// A second operator lacking DelegatedPermissionGrant.ReadWrite.All: its grant writes get
    /// 403 `Authorization_RequestDenied` (to test the admin-consent fallback).
    pub fn limited_operator(&self) -> &Principal {
        &self.limited
    }
    /// The CA certificate (PEM) with `--tls`.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }
    /// Write the CA certificate (PEM) to a file, atomically.
    pub fn write_ca_cert(&self, path: &Path) -> Result<(), EmulatorError> {
        let pem = self.ca_pem.as_deref().ok_or_else(|| {
            EmulatorError::NotFound("the emulator runs without TLS; there is no CA".into())
        })?;
        write_atomic(path, pem.as_bytes()).map_err(|source| EmulatorError::Io {
            action: "write the CA certificate",
            path: path.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        *self.ca_path.lock().unwrap_or_else(|p| p.into_inner()) = Some(abs);
        Ok(())
    }
    /// Write the CA certificate into a fresh private directory (mode 0700, created exclusively
    /// under the system temp dir with a random name) and return the file's path. The directory
    /// is removed when the emulator is shut down or dropped.
    pub fn write_ca_cert_private(&self) -> Result<PathBuf, EmulatorError> {
        let io_err = |source| EmulatorError::Io {
            action: "create a private directory in",
            path: std::env::temp_dir(),
            source,
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("entraform-emulator-").rand_bytes(12);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = builder.tempdir().map_err(io_err)?;
        // The mode passed to mkdir is narrowed by the umask, never widened; set it exactly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(io_err)?;
        }
        let path = dir.path().join("ca.pem");
        self.write_ca_cert(&path)?;
        *self.tls_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir);
        Ok(path)
    }
    /// The shell `export` lines of docs/emulator.md (they contain the operator's secret and the control
    /// token, on purpose: they are meant for `eval` in a test shell). `ENTRAFORM_CA_CERT` names
    /// the file of the last [`RunningEmulator::write_ca_cert`].
    pub fn export_lines(&self) -> String {
        let ca_path = self
            .ca_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // With several tenants the exported principal is the multi-tenant operator: its client
        // id works in every hosted tenant, so `--all` runs over customers in any of them.
        let p = match (&self.multi, self.export_limited) {
            (_, true) => &self.limited,
            (Some(multi), false) => multi,
            (None, false) => &self.operator,
        };
        let mut s = format!(
            "export AZURE_AUTHORITY_HOST={}\nexport ENTRAFORM_GRAPH_URL={}\nexport AZURE_TENANT_ID={}\nexport AZURE_CLIENT_ID={}\nexport ENTRAFORM_EMULATOR_CONTROL_TOKEN={}\nexport AZURE_CLIENT_SECRET='{}'\n",
            self.authority_host(),
            self.graph_url(),
            self.tenant_id(),
            p.client_id,
            self.shared.control_token.expose(),
            p.secret.expose()
        );
        if let Some(path) = ca_path.filter(|_| self.ca_pem.is_some()) {
            s.push_str(&format!(
                "export ENTRAFORM_CA_CERT={}\n",
                shell_quote(&path.to_string_lossy())
            ));
        }
        s
    }
    /// The request log so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }
    /// The whole tenant as JSON (what `GET /_emulator/state` answers; no secret values).
    pub fn state_json(&self) -> Value {
        let mut inner = self.shared.lock();
        inner.activate_first();
        control::state_json(&inner)
    }
    /// One hosted tenant as JSON (`GET /_emulator/state?tenant=GUID`).
    pub fn tenant_state_json(&self, tenant: &str) -> Option<Value> {
        let mut inner = self.shared.lock();
        inner.activate(tenant).then(|| control::state_json(&inner))
    }
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.faults.clone()
    }
    /// Replace the fault settings (a changed `rng_seed` restarts the random sequence).
    pub fn set_faults(&self, faults: Faults) -> Result<(), EmulatorError> {
        faults.validate().map_err(EmulatorError::Faults)?;
        self.shared.lock().faults.set(faults, false);
        Ok(())
    }
    /// Load a seed document (see the module docs); returns the appIds it created.
    pub fn seed_app(&self, doc: &Value) -> Result<Vec<String>, EmulatorError> {
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let first = inner.order[0].clone();
        let tenant = seed_tenant(doc, &first);
        if !inner.activate(&tenant) {
            return Err(EmulatorError::Seed(format!(
                "the seed names tenant {tenant}, which the emulator does not host"
            )));
        }
        let ids = control::apply_seed(&mut inner.state, doc, &mut inner.issued)
            .map_err(EmulatorError::Seed)?;
        self.shared.persist(inner);
        Ok(ids)
    }
    /// Edit an application behind the tool's back (no rules, no replication delay): `key` is
    /// its id, appId or uniqueName; `patch` is merged as Graph's PATCH would.
    pub fn edit_app(&self, key: &str, patch: &Value) -> Result<(), EmulatorError> {
        let tenant = self.tenant_id();
        self.edit_app_in(&tenant, key, patch)
    }
    /// [`RunningEmulator::edit_app`] in one hosted tenant.
    pub fn edit_app_in(&self, tenant: &str, key: &str, patch: &Value) -> Result<(), EmulatorError> {
        let mut inner = self.shared.lock();
        if !inner.activate(tenant) {
            return Err(EmulatorError::NotFound(format!(
                "the emulator does not host tenant {tenant}"
            )));
        }
        control::edit_object(&mut inner.state, "applications", key, Some(patch))
            .map_err(EmulatorError::NotFound)?;
        self.shared.persist(&inner);
        Ok(())
    }
    /// Every secret value the emulator knows of: handed out by `addPassword`, seeded, and the
    /// operators' (so tests can scan outputs for leaks).
    pub fn issued_secrets(&self) -> Vec<Secret> {
        self.shared
            .lock()
            .issued
            .iter()
            .map(|s| Secret::new(s.expose().to_string()))
            .collect()
    }
    /// Back to the state right after start (seeds and operators), faults as configured, empty
    /// request log. Issued tokens stay valid.
    pub fn reset(&self) {
        let mut inner = self.shared.lock();
        control::reset(&mut inner);
        self.shared.persist(&inner);
    }
    /// Stop listening and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
