//! Authentication: the operator's credential (through `azure_identity`), the shared HTTP client
//! that trusts an extra CA, and [`prove_secret`], the live client-credentials check of a new
//! client secret.
//!
//! Order of credentials: a client secret from `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/
//! `AZURE_CLIENT_SECRET`, else workload identity (`AZURE_FEDERATED_TOKEN_FILE`), else managed
//! identity, else the developer tools (`az login`, `azd auth login`). Tokens never leave this
//! module except as an `azure_core` `AccessToken` (whose `Debug` is redacted) handed to the Graph
//! client, which sends it as a bearer header and nothing else.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, AzureDeveloperCliCredential,
    AzureDeveloperCliCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use url::Url;

use crate::secret::Secret;

/// The public cloud's login host (the default of `--authority-host`).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// The public cloud's Graph (the default of `--graph-url`).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// Where to authenticate and which Graph to call, plus the HTTP client (one connection pool
/// shared by the credential and the Graph client).
pub struct AuthConfig {
    /// `--authority-host` / `AZURE_AUTHORITY_HOST`; must be `https` (azure_identity refuses
    /// anything else).
    pub authority_host: String,
    /// `--graph-url` / `ENTRAFORM_GRAPH_URL`, e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    /// Extra trusted root certificates (PEM), e.g. the emulator's CA.
    ca_pem: Option<Vec<u8>>,
    http: OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("authority_host", &self.authority_host)
            .field("graph_url", &self.graph_url)
            .field("extra_ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl AuthConfig {
    /// Public-cloud defaults.
    pub fn new(authority_host: impl Into<String>, graph_url: impl Into<String>) -> Self {
        AuthConfig {
            authority_host: authority_host.into(),
            graph_url: graph_url.into(),
            ca_pem: None,
            http: OnceLock::new(),
        }
    }

    /// The same configuration over the same connection pool (one per process, shared by the
    /// sessions of an `--all` run's tenants: no second set of TLS handshakes).
    pub fn share(&self) -> Result<Self, AuthError> {
        let http = self.http_client()?;
        let copy = AuthConfig {
            authority_host: self.authority_host.clone(),
            graph_url: self.graph_url.clone(),
            ca_pem: self.ca_pem.clone(),
            http: OnceLock::new(),
        };
        let _ = copy.http.set(http);
        Ok(copy)
    }

    /// Trust the root certificate(s) of this PEM as well as the system's.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self.http = OnceLock::new();
        self
    }

    /// Trust the root certificate(s) in this PEM file.
    pub fn with_ca_file(self, path: &Path) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|e| AuthError::Config {
            message: format!("cannot read the CA certificate {}: {e}", path.display()),
            hint:
                "pass a PEM file with --ca-cert / ENTRAFORM_CA_CERT (the emulator prints its path)"
                    .into(),
        })?;
        Ok(self.with_ca_pem(pem))
    }

    /// The Graph base URL, checked.
    pub fn graph_base(&self) -> Result<Url, AuthError> {
        let url = Url::parse(&self.graph_url).map_err(|e| AuthError::Config {
            message: format!("--graph-url {:?} is not a URL: {e}", self.graph_url),
            hint: format!("use e.g. {DEFAULT_GRAPH_URL}"),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(AuthError::Config {
                message: format!("--graph-url {:?} is not an http(s) URL", self.graph_url),
                hint: format!("use e.g. {DEFAULT_GRAPH_URL}"),
            });
        }
        plain_http_only_on_loopback("--graph-url", &url)?;
        Ok(url)
    }

    /// The token scope for Graph: `<graph origin>/.default` (`https://graph.microsoft.com/.default`
    /// for the public cloud; the emulator's Graph origin for the emulator).
    pub fn graph_scope(&self) -> Result<String, AuthError> {
        Ok(format!(
            "{}/.default",
            self.graph_base()?.origin().ascii_serialization()
        ))
    }

    /// The authority host, checked the way azure_identity will check it, but with a fix attached.
    pub fn authority_url(&self) -> Result<Url, AuthError> {
        let url = Url::parse(&self.authority_host).map_err(|e| AuthError::Config {
            message: format!(
                "--authority-host {:?} is not a URL: {e}",
                self.authority_host
            ),
            hint: format!("use e.g. {DEFAULT_AUTHORITY_HOST}"),
        })?;
        plain_http_only_on_loopback("--authority-host", &url)?;
        if url.scheme() != "https" {
            return Err(AuthError::Config {
                message: format!(
                    "--authority-host {:?} is not https; azure_identity only talks to https authorities",
                    self.authority_host
                ),
                hint: "run the emulator with --tls and pass its CA with --ca-cert".into(),
            });
        }
        Ok(url)
    }

    /// The one HTTP client (connection pool) of the process, trusting the extra CA if any.
    pub fn http_client(&self) -> Result<reqwest::Client, AuthError> {
        if let Some(c) = self.http.get() {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("entraform/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(100))
            .tcp_nodelay(true);
        if let Some(pem) = &self.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| AuthError::Config {
                    message: format!("the CA certificate is not valid PEM: {e}"),
                    hint: "pass the emulator's CA file (PEM) with --ca-cert".into(),
                })?;
            if certs.is_empty() {
                return Err(AuthError::Config {
                    message: "the CA certificate file holds no certificate".into(),
                    hint: "pass the emulator's CA file (PEM) with --ca-cert".into(),
                });
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| AuthError::Config {
            message: format!("cannot build the HTTP client: {e}"),
            hint: "check --ca-cert".into(),
        })?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    /// azure_core client options: our transport (shared pool, extra CA) and the authority host
    /// (`CloudConfiguration::Custom`; when `cloud` is set azure_identity ignores
    /// `AZURE_AUTHORITY_HOST`, so the flag's value is the one used).
    fn client_options(&self, retry: bool) -> Result<ClientOptions, AuthError> {
        self.authority_url()?;
        let http = self.http_client()?;
        let mut custom = CustomConfiguration::default();
        custom.authority_host = self.authority_host.trim_end_matches('/').to_string();
        let mut options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            cloud: Some(Arc::new(CloudConfiguration::Custom(custom))),
            ..Default::default()
        };
        options.retry = if retry {
            // azure_core's default retries for a minute (8 attempts): an authority that does not
            // answer would keep the operator waiting that long before the error names it.
            RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: 3,
                max_total_elapsed: time::Duration::seconds(10),
                ..Default::default()
            })
        } else {
            RetryOptions::none()
        };
        Ok(options)
    }
}

/// Whether a URL's host is a loopback address: `127.0.0.0/8`, `::1` or `localhost` (RFC 6761
/// §6.3 reserves `localhost` for loopback).
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
        }
        None => false,
    }
}

/// Plain `http` carries the bearer token (and, at the token endpoint, the client secret) in
/// clear: allowed only to this machine (an emulator without `--tls`), never across a network.
pub fn plain_http_only_on_loopback(flag: &str, url: &Url) -> Result<(), AuthError> {
    if url.scheme() == "http" && !is_loopback_host(url) {
        return Err(AuthError::Config {
            message: format!(
                "{flag} {url} is plain http to a host that is not this machine; the bearer token would cross the network unencrypted"
            ),
            hint: format!(
                "use https (e.g. {}), or plain http only for a local emulator on 127.0.0.1, ::1 or localhost",
                if flag == "--graph-url" {
                    DEFAULT_GRAPH_URL
                } else {
                    DEFAULT_AUTHORITY_HOST
                }
            ),
        });
    }
    Ok(())
}

/// Which credential authenticated (or will try) the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    DeveloperTools,
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialKind::ClientSecret => "client secret (AZURE_CLIENT_SECRET)",
            CredentialKind::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            CredentialKind::ManagedIdentity => "managed identity",
            CredentialKind::DeveloperTools => "developer tools (az / azd login)",
        })
    }
}

struct Candidate {
    kind: CredentialKind,
    credential: Arc<dyn TokenCredential>,
    /// A bound on the first attempt (IMDS on a machine that is not in Azure can hang).
    probe_timeout: Option<Duration>,
}

/// The operator's credential: one or more `azure_identity` credentials tried in order; the
/// first that yields a token is kept for the rest of the process.
pub struct OperatorCredential {
    candidates: Vec<Candidate>,
    chosen: Mutex<Option<usize>>,
    /// The login authority the secret-based credentials talk to (named in their errors).
    authority: Option<String>,
    /// The tenant tokens are requested for (the customer's), when one was given.
    tenant: Option<String>,
    /// The credential's own tenant (`AZURE_TENANT_ID`), when set.
    home: Option<String>,
}

impl std::fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCredential")
            .field("candidates", &self.kinds())
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl OperatorCredential {
    /// Pick the credential from the process environment.
    pub fn from_env(cfg: &AuthConfig) -> Result<Self, AuthError> {
        Self::from_env_with(cfg, process_env)
    }

    /// Pick the credential from the process environment, asking every token for `tenant` (the
    /// customer's tenant of `defaults.yaml`) rather than the credential's default one.
    pub fn for_tenant(cfg: &AuthConfig, tenant: &str) -> Result<Self, AuthError> {
        Self::from_env_for(cfg, Some(tenant), process_env)
    }

    /// Pick the credential from an environment given as a lookup function (testable).
    pub fn from_env_with(
        cfg: &AuthConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        Self::from_env_for(cfg, None, env)
    }

    /// The credential of `env`, asked for tokens in `tenant` when given: the client secret's
    /// tenant (a multi-tenant operator app gets a token wherever it is consented), the
    /// workload identity's tenant, `az`/`azd --tenant`. A managed identity cannot choose: its
    /// tokens are checked afterwards (`GraphClient` compares the token's `tid`).
    pub fn from_env_for(
        cfg: &AuthConfig,
        tenant: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthError> {
        let wrap = |e: azure_core::Error| AuthError::from_azure("building the credential", &e);
        let home = env("AZURE_TENANT_ID");
        let client = env("AZURE_CLIENT_ID");
        let home_tenant = home.clone();
        let wanted = tenant.map(str::to_string).or_else(|| home.clone());
        let mut candidates = Vec::new();
        if env("AZURE_CLIENT_SECRET").is_some() {
            let secret = env("AZURE_CLIENT_SECRET").unwrap_or_default();
            let (Some(_), Some(client), Some(wanted)) = (home, client, wanted.clone()) else {
                return Err(AuthError::Config {
                    message: "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not"
                        .into(),
                    hint: "set all three (tenant GUID, application (client) id, secret value), or unset AZURE_CLIENT_SECRET to use `az login`".into(),
                });
            };
            let options = ClientSecretCredentialOptions {
                client_options: cfg.client_options(true)?,
            };
            let credential = ClientSecretCredential::new(
                &wanted,
                client,
                azure_core::credentials::Secret::new(secret),
                Some(options),
            )
            .map_err(wrap)?;
            candidates.push(Candidate {
                kind: CredentialKind::ClientSecret,
                credential,
                probe_timeout: None,
            });
        } else if let Some(file) = env("AZURE_FEDERATED_TOKEN_FILE") {
            let mut options = WorkloadIdentityCredentialOptions {
                client_id: client,
                tenant_id: wanted.clone(),
                token_file_path: Some(PathBuf::from(file)),
                ..Default::default()
            };
            options.credential_options.client_options = cfg.client_options(true)?;
            let credential = WorkloadIdentityCredential::new(Some(options)).map_err(wrap)?;
            candidates.push(Candidate {
                kind: CredentialKind::WorkloadIdentity,
                credential,
                probe_timeout: None,
            });
        } else {
            let hosted = env("IDENTITY_ENDPOINT").is_some() || env("MSI_ENDPOINT").is_some();
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client.map(UserAssignedId::ClientId),
                client_options: cfg.client_options(hosted)?,
            };
            let credential = ManagedIdentityCredential::new(Some(options)).map_err(wrap)?;
            candidates.push(Candidate {
                kind: CredentialKind::ManagedIdentity,
                credential,
                // Outside Azure the IMDS address may swallow packets; do not make every
                // `az login` user wait for a TCP timeout.
                probe_timeout: (!hosted).then_some(Duration::from_secs(1)),
            });
            // Only the customer's tenant is passed to the tools (`az login` users with several
            // tenants get the right one); without one they use their default tenant.
            let az = AzureCliCredential::new(Some(AzureCliCredentialOptions {
                tenant_id: tenant.map(str::to_string),
                ..Default::default()
            }))
            .map_err(wrap)?;
            let azd = AzureDeveloperCliCredential::new(Some(AzureDeveloperCliCredentialOptions {
                tenant_id: tenant.map(str::to_string),
                ..Default::default()
            }))
            .map_err(wrap)?;
            // `DeveloperToolsCredential` (az, then azd) has no tenant option, but
            // `AzureCliCredentialOptions::tenant_id` (`az account get-access-token --tenant T`)
            // and `AzureDeveloperCliCredentialOptions::tenant_id` (`azd auth token --tenant-id
            // T`) do (https://docs.rs/azure_identity/1.0.0/azure_identity/struct.AzureCliCredentialOptions.html):
            // the same two tools, in the same order, each a candidate of the chain.
            for credential in [az as Arc<dyn TokenCredential>, azd] {
                candidates.push(Candidate {
                    kind: CredentialKind::DeveloperTools,
                    credential,
                    probe_timeout: None,
                });
            }
        }
        Ok(OperatorCredential {
            candidates,
            chosen: Mutex::new(None),
            authority: Some(cfg.authority_host.clone()),
            tenant: tenant.map(str::to_string),
            home: home_tenant,
        })
    }

    /// The tenant tokens are asked for, when one was given.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Wrap any `azure_core` credential (e.g. one built by an embedding program).
    pub fn from_credential(kind: CredentialKind, credential: Arc<dyn TokenCredential>) -> Self {
        OperatorCredential {
            candidates: vec![Candidate {
                kind,
                credential,
                probe_timeout: None,
            }],
            chosen: Mutex::new(None),
            authority: None,
            tenant: None,
            home: None,
        }
    }

    /// The credentials that will be tried, in order.
    pub fn kinds(&self) -> Vec<CredentialKind> {
        let mut kinds: Vec<CredentialKind> = self.candidates.iter().map(|c| c.kind).collect();
        kinds.dedup();
        kinds
    }

    /// The credential that produced the last token, once one did.
    pub fn chosen(&self) -> Option<CredentialKind> {
        let chosen = *self.chosen.lock().unwrap_or_else(|p| p.into_inner());
        chosen.map(|i| self.candidates[i].kind)
    }

    /// How a candidate is named in errors: the secret-based ones say which authority they asked.
    fn context(&self, kind: CredentialKind) -> String {
        match (kind, &self.authority) {
            (CredentialKind::ClientSecret | CredentialKind::WorkloadIdentity, Some(a)) => {
                format!("{kind} at {a}")
            }
            _ => kind.to_string(),
        }
    }

    /// A token for `scope`. Tries each candidate until one works (then sticks to it). With a
    /// tenant, a failure says which tenant the token was asked for.
    pub async fn get_token(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let result = self.get_token_inner(scope).await;
        match (&self.tenant, result) {
            (Some(tenant), Err(e)) if !matches!(e, AuthError::Config { .. }) => {
                Err(AuthError::InTenant {
                    tenant: tenant.clone(),
                    home: self.home.clone(),
                    source: Box::new(e),
                })
            }
            (_, r) => r,
        }
    }

    async fn get_token_inner(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let chosen = *self.chosen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = chosen {
            let c = &self.candidates[i];
            return c
                .credential
                .get_token(&[scope], None)
                .await
                .map_err(|e| AuthError::from_azure(&self.context(c.kind), &e));
        }
        let mut failures = Vec::new();
        let scopes = [scope];
        for (i, c) in self.candidates.iter().enumerate() {
            let attempt = c.credential.get_token(&scopes, None);
            let result = match c.probe_timeout {
                Some(t) => match tokio::time::timeout(t, attempt).await {
                    Ok(r) => r.map_err(|e| AuthError::from_azure(&self.context(c.kind), &e)),
                    Err(_) => Err(AuthError::Credential {
                        message: format!("{}: no answer within {t:?}", c.kind),
                        aadsts: None,
                        status: None,
                    }),
                },
                None => attempt
                    .await
                    .map_err(|e| AuthError::from_azure(&self.context(c.kind), &e)),
            };
            match result {
                Ok(token) => {
                    *self.chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                    tracing::debug!(credential = %c.kind, "authenticated");
                    return Ok(token);
                }
                Err(e) if self.candidates.len() == 1 => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(AuthError::NoCredential {
            tried: failures.join("\n  "),
        })
    }
}

/// AADSTS codes that mean "not in this tenant": tenant not found (90002), application not
/// found in the directory (700016), no service principal in the tenant (7000229), the resource
/// not in the tenant (500011) (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
const TENANT_CODES: &[u32] = &[90002, 700016, 7000229, 500011];

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Why no token could be obtained. Never contains a secret (token endpoint error descriptions
/// do not echo the secret).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Bad configuration (flags, environment, CA file).
    #[error("{message}")]
    Config { message: String, hint: String },
    /// A credential asked the login endpoint (or a tool) and was refused.
    #[error("{message}")]
    Credential {
        message: String,
        /// The `AADSTS` code in the answer, when there was one.
        aadsts: Option<u32>,
        /// HTTP status of the token endpoint, when known.
        status: Option<u16>,
    },
    /// No credential in the chain produced a token.
    #[error("no credential worked; tried:\n  {tried}")]
    NoCredential { tried: String },
    /// A token asked for a given tenant (the customer's) could not be obtained.
    #[error("{source} (the token was asked for the customer's tenant {tenant}{})", .home.as_ref().filter(|h| !h.eq_ignore_ascii_case(tenant)).map(|h| format!("; the operator's AZURE_TENANT_ID is {h}")).unwrap_or_default())]
    InTenant {
        tenant: String,
        /// The credential's own tenant (`AZURE_TENANT_ID`), when set.
        home: Option<String>,
        source: Box<AuthError>,
    },
}

impl AuthError {
    /// Map an azure_core error: keep its text, pull out the `AADSTS` code (observed with
    /// azure_identity 1.0: when the description has escaped characters, such as the `\r\n`
    /// before "Trace ID", it reports a serde error that still embeds the AADSTS text, so the
    /// code is read from the text, not the structure).
    pub fn from_azure(context: &str, err: &azure_core::Error) -> Self {
        let text = error_chain_text(err);
        AuthError::Credential {
            message: format!("{context}: {}", describe(&text)),
            aadsts: aadsts_code(&text),
            status: azure_status(err),
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuthError::Config { hint, .. } => Some(hint.clone()),
            AuthError::Credential {
                aadsts: Some(code), ..
            } => Some(aadsts_hint(*code)),
            AuthError::Credential { .. } => Some(
                "check the credential (AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, or `az login`) and --authority-host"
                    .into(),
            ),
            AuthError::NoCredential { .. } => Some(
                "log in with `az login` (or `azd auth login`), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                    .into(),
            ),
            // A refusal that is about the tenant (not found, app not there, SP not there), or
            // no answer from a tool: say how to get a token for that tenant. A wrong or
            // expired secret keeps its own fix.
            AuthError::InTenant { tenant, source, .. }
                if source
                    .aadsts()
                    .is_none_or(|c| TENANT_CODES.contains(&c)) =>
            {
                Some(format!(
                    "{}; the token was asked for the customer's tenant {tenant}: `az login --tenant {tenant}`, or an operator app (AZURE_CLIENT_ID) registered or consented in {tenant}",
                    source.hint().unwrap_or_default().trim_end_matches('.')
                ))
            }
            AuthError::InTenant { source, .. } => source.hint(),
        }
    }

    /// The AADSTS code, when the login endpoint gave one.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            AuthError::Credential { aadsts, .. } => *aadsts,
            AuthError::InTenant { source, .. } => source.aadsts(),
            _ => None,
        }
    }
}

/// The text of an azure_core error and every cause under it.
fn error_chain_text(err: &azure_core::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push('\n');
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

fn azure_status(err: &azure_core::Error) -> Option<u16> {
    if let Some(s) = err.http_status() {
        return Some(u16::from(s));
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(e) = cause.downcast_ref::<azure_core::Error>()
            && let Some(s) = e.http_status()
        {
            return Some(u16::from(s));
        }
        source = cause.source();
    }
    None
}

/// The login endpoint's own sentence (`AADSTS…: …`) when the text has one, without the trace
/// lines and the serde noise around it; else the first lines of the text.
fn describe(text: &str) -> String {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re =
        RE.get_or_init(|| regex::Regex::new(r#"AADSTS\d+:[^"\r\n\\]*"#).expect("static regex"));
    match re.find(text) {
        Some(m) => m.as_str().trim().to_string(),
        None => first_lines(text, 3),
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `AADSTS<digits>` code in a text.
pub fn aadsts_code(text: &str) -> Option<u32> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"AADSTS(\d{4,9})").expect("static regex"));
    re.captures(text).and_then(|c| c[1].parse().ok())
}

/// A short name for the AADSTS codes this tool meets (the full story is `entraform explain`).
pub fn aadsts_summary(code: u32) -> Option<&'static str> {
    Some(match code {
        7000215 => "invalid client secret",
        7000222 => "the client secret has expired",
        7000229 => "the application has no service principal in the tenant",
        7000218 => "no client secret or assertion was sent",
        700016 => "application not found in the directory",
        90002 => "tenant not found",
        70011 => "invalid scope",
        500011 => "resource principal not found in the tenant",
        65001 => "consent has not been granted",
        50011 => "redirect URI mismatch",
        9010010 => "the resource parameter does not match the requested scopes",
        9001023 => "client credentials cannot use /common or /consumers",
        _ => return None,
    })
}

fn aadsts_hint(code: u32) -> String {
    let what = aadsts_summary(code)
        .map(|s| format!("{s}; "))
        .unwrap_or_default();
    format!("AADSTS{code}: {what}see `entraform explain {code}`")
}

/// A new client secret did not prove itself with a live token request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProveError {
    /// The login endpoint refused it (after retrying through replication delay, if that applied).
    #[error("the token request with the new secret was refused{}: {detail}", .aadsts.map(|c| format!(" with {}", short(c))).unwrap_or_default())]
    Rejected {
        aadsts: Option<u32>,
        status: Option<u16>,
        /// The login endpoint's description (never the secret).
        detail: String,
        attempts: u32,
    },
    /// No answer from the login endpoint before the deadline.
    #[error(
        "the token request with the new secret got no answer after {attempts} attempt(s): {detail}"
    )]
    Unreachable { detail: String, attempts: u32 },
    /// Configuration problem (authority host, CA, tenant id format).
    #[error(transparent)]
    Config(AuthError),
}

fn short(code: u32) -> String {
    match aadsts_summary(code) {
        Some(s) => format!("AADSTS{code}: {s} (see `entraform explain {code}`)"),
        None => format!("AADSTS{code} (see `entraform explain {code}`)"),
    }
}

impl ProveError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ProveError::Rejected {
                aadsts: Some(code), ..
            } => Some(aadsts_hint(*code)),
            ProveError::Rejected { .. } => {
                Some("check the tenant id, the application (client) id and the secret".into())
            }
            ProveError::Unreachable { .. } => Some(
                "check the network and --authority-host (and --ca-cert for an emulator)".into(),
            ),
            ProveError::Config(e) => e.hint(),
        }
    }

    /// The AADSTS code of a refusal.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            ProveError::Rejected { aadsts, .. } => *aadsts,
            _ => None,
        }
    }
}

/// Codes that mean "not replicated yet" for a just-created app, service principal or secret
/// (<https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
/// A new SP replicates like any directory object, and until it does the token endpoint answers
/// AADSTS7000229 ("missing service principal"); callers prove a secret only once the SP was
/// created (`secret_flow::mint_when_ready`).
const REPLICATION_CODES: &[u32] = &[7000215, 700016, 7000229];

/// Prove a client secret works: a client-credentials token request through
/// `ClientSecretCredential` for `scope` (e.g. `AuthConfig::graph_scope()`), retried with
/// jittered backoff while the answer is AADSTS7000215/700016/7000229 (a new secret, app or SP takes a few
/// seconds to replicate), a 5xx, or no answer, until `deadline`. Any other refusal fails at once.
///
/// The secret is copied once into `azure_core`'s secret type for the request (the credential
/// type requires it) and dropped when this returns.
pub async fn prove_secret(
    cfg: &AuthConfig,
    tenant: &str,
    client_id: &str,
    secret: &Secret,
    scope: &str,
    deadline: tokio::time::Instant,
) -> Result<(), ProveError> {
    let options = ClientSecretCredentialOptions {
        // Our loop does the retrying; azure_core's would add its own waits on 5xx.
        client_options: cfg.client_options(false).map_err(ProveError::Config)?,
    };
    let credential = ClientSecretCredential::new(
        tenant,
        client_id.to_string(),
        azure_core::credentials::Secret::new(secret.expose().to_string()),
        Some(options),
    )
    .map_err(|e| ProveError::Config(AuthError::from_azure("building the credential", &e)))?;
    let mut attempts = 0u32;
    let mut delay = Duration::from_millis(250);
    loop {
        attempts += 1;
        let err = match credential.get_token(&[scope], None).await {
            Ok(_token) => {
                tracing::debug!(attempts, "new secret proven with a token request");
                return Ok(());
            }
            Err(e) => e,
        };
        let text = error_chain_text(&err);
        let aadsts = aadsts_code(&text);
        let status = azure_status(&err);
        let detail = describe(&text);
        let retryable = match aadsts {
            Some(code) => REPLICATION_CODES.contains(&code),
            None => status.is_none_or(|s| s >= 500 || s == 429),
        };
        tracing::debug!(
            attempts,
            ?aadsts,
            ?status,
            retryable,
            "token request with the new secret failed"
        );
        let now = tokio::time::Instant::now();
        if !retryable || now + delay > deadline {
            return Err(if aadsts.is_none() && status.is_none() {
                ProveError::Unreachable { detail, attempts }
            } else {
                ProveError::Rejected {
                    aadsts,
                    status,
                    detail,
                    attempts,
                }
            });
        }
        tokio::time::sleep(jittered(delay)).await;
        delay = (delay * 2).min(Duration::from_secs(4));
    }
}

/// `d` scaled by a random factor in [0.5, 1.0] ("equal jitter").
pub(crate) fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_code_is_read_from_text_even_inside_a_serde_error() {
        let quirk = "ClientSecretCredential authentication failed. invalid type: string \"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: x\", expected a borrowed string at line 1 column 200";
        assert_eq!(aadsts_code(quirk), Some(7000215));
        assert_eq!(
            aadsts_code("AADSTS700016: Application with identifier"),
            Some(700016)
        );
        assert_eq!(aadsts_code("no code here"), None);
        assert_eq!(
            describe(quirk),
            "AADSTS7000215: Invalid client secret provided."
        );
    }

    #[test]
    fn prove_error_names_code_and_explain() {
        let e = ProveError::Rejected {
            aadsts: Some(7000215),
            status: Some(401),
            detail: "Invalid client secret provided.".into(),
            attempts: 3,
        };
        let s = e.to_string();
        assert!(
            s.contains("AADSTS7000215: invalid client secret (see `entraform explain 7000215`)"),
            "{s}"
        );
        assert!(e.hint().unwrap().contains("entraform explain 7000215"));
    }

    #[test]
    fn graph_scope_is_the_graph_origin() {
        let cfg = AuthConfig::new(DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL);
        assert_eq!(
            cfg.graph_scope().unwrap(),
            "https://graph.microsoft.com/.default"
        );
        let emu = AuthConfig::new("https://localhost:8443", "https://127.0.0.1:8443/v1.0");
        assert_eq!(
            emu.graph_scope().unwrap(),
            "https://127.0.0.1:8443/.default"
        );
    }

    #[test]
    fn plain_http_is_allowed_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080/v1.0",
            "http://127.8.9.10/v1.0",
            "http://[::1]:80/v1.0",
            "http://localhost:1/v1.0",
            "https://graph.example.com/v1.0",
        ] {
            let url = Url::parse(ok).unwrap();
            assert!(
                plain_http_only_on_loopback("--graph-url", &url).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://graph.example.com/v1.0",
            "http://10.0.0.5/v1.0",
            "http://[::2]/v1.0",
            "http://localhost.example.com/v1.0",
            "http://128.0.0.1/v1.0",
        ] {
            let url = Url::parse(bad).unwrap();
            let err = plain_http_only_on_loopback("--graph-url", &url).unwrap_err();
            assert!(err.to_string().contains("plain http"), "{bad}: {err}");
            assert!(err.hint().unwrap().contains("127.0.0.1"), "{bad}");
        }
        let cfg = AuthConfig::new(DEFAULT_AUTHORITY_HOST, "http://graph.example.com/v1.0");
        assert!(cfg.graph_scope().is_err());
        let cfg = AuthConfig::new("http://login.example.com", DEFAULT_GRAPH_URL);
        assert!(
            cfg.authority_url()
                .unwrap_err()
                .to_string()
                .contains("not this machine")
        );
    }

    #[test]
    fn plain_http_authority_is_refused_with_the_fix() {
        let cfg = AuthConfig::new("http://127.0.0.1:1", DEFAULT_GRAPH_URL);
        let err = cfg.authority_url().unwrap_err();
        assert!(err.hint().unwrap().contains("--tls"));
    }

    #[test]
    fn credential_order_follows_the_environment() {
        let cfg = AuthConfig::new(DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL);
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let secret = OperatorCredential::from_env_with(
            &cfg,
            env(&[
                ("AZURE_TENANT_ID", "122fb574-7efa-476a-95b6-bee81bce2cce"),
                ("AZURE_CLIENT_ID", "c0ffee00-0000-0000-0000-000000000001"),
                ("AZURE_CLIENT_SECRET", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(secret.kinds(), vec![CredentialKind::ClientSecret]);
        let missing = OperatorCredential::from_env_with(&cfg, env(&[("AZURE_CLIENT_SECRET", "x")]));
        assert!(matches!(missing, Err(AuthError::Config { .. })));
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "eyJ.fake.jwt").unwrap();
        let path = token.path().to_string_lossy().to_string();
        let wi = OperatorCredential::from_env_with(&cfg, |k: &str| match k {
            "AZURE_TENANT_ID" => Some("122fb574-7efa-476a-95b6-bee81bce2cce".into()),
            "AZURE_CLIENT_ID" => Some("c0ffee00-0000-0000-0000-000000000001".into()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some(path.clone()),
            _ => None,
        })
        .unwrap();
        assert_eq!(wi.kinds(), vec![CredentialKind::WorkloadIdentity]);
        let dev = OperatorCredential::from_env_with(&cfg, env(&[])).unwrap();
        assert_eq!(
            dev.kinds(),
            vec![
                CredentialKind::ManagedIdentity,
                CredentialKind::DeveloperTools
            ]
        );
    }
}
