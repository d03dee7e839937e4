//! What plan, apply (and later drift, rotate, secrets) share: the Graph connection, the vault,
//! and reading the live state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::GlobalArgs;
use crate::desired::Desired;
use crate::error::Error;
use crate::graph::{AuthConfig, GraphClient, GraphError, OperatorCredential};
use crate::observed::{Observed, observe};
use crate::plan::{Observation, VaultView};
use crate::secret::Secret;
use crate::vault::Vault;

/// An authenticated Graph connection.
pub struct Session {
    pub auth: AuthConfig,
    pub client: GraphClient,
}

impl Session {
    /// From the global flags and the environment (`azure_identity`'s chain).
    pub fn from_global(global: &GlobalArgs) -> Result<Self, Error> {
        let auth = AuthConfig::from_global(global).map_err(GraphError::from)?;
        let client = GraphClient::from_auth(&auth)?;
        Ok(Session { auth, client })
    }

    /// With an explicit client-secret operator (the sandbox's emulator principal).
    pub fn with_operator(
        auth: AuthConfig,
        tenant: &str,
        client_id: &str,
        secret: &Secret,
    ) -> Result<Self, Error> {
        let credential = OperatorCredential::from_env_with(&auth, |k| match k {
            "AZURE_TENANT_ID" => Some(tenant.to_string()),
            "AZURE_CLIENT_ID" => Some(client_id.to_string()),
            "AZURE_CLIENT_SECRET" => Some(secret.expose().to_string()),
            _ => None,
        })
        .map_err(GraphError::from)?;
        let client = GraphClient::with_credential(&auth, Arc::new(credential))?;
        Ok(Session { auth, client })
    }
}

/// The directory relative vault and audit paths are resolved against.
pub fn manifest_dir(manifest: &Path) -> PathBuf {
    manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn open_vault(desired: &Desired, base_dir: &Path) -> Result<Arc<dyn Vault>, Error> {
    Ok(Arc::from(crate::vault::open(
        &desired.vault,
        base_dir,
        &desired.secret.env,
    )?))
}

/// What the vault holds, by hint (the value is dropped at once).
pub async fn vault_view(vault: Arc<dyn Vault>, path: &str) -> Result<VaultView, Error> {
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
) -> Result<(VaultView, Option<String>), Error> {
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
) -> Result<(Observed, Observation), Error> {
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
