//! Minting a client secret: `addPassword` → vault (shape check, write, read-back) → a live token
//! request with it → audit. Any failure after `addPassword` removes the new credential again
//! (and puts the vault's previous value back), so no valid secret exists that the vault does
//! not hold (SPEC §5). Shared by `apply` and `rotate`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use crate::error::Error;
use crate::graph::wire::PasswordCredential;
use crate::graph::{AuthConfig, GraphWrite, prove_secret};
use crate::secret::Secret;
use crate::vault::{StoreReport, Vault, VaultError};

/// How long a new secret may take to work at the token endpoint (replication, behavior.md §10).
pub const PROVE_WINDOW: Duration = Duration::from_secs(90);

/// Where a new secret goes and how it is proven.
pub struct MintTarget<'a> {
    pub tenant: &'a str,
    pub service: &'a str,
    pub app_object_id: &'a str,
    pub app_id: &'a str,
    pub display_name: &'a str,
    pub lifetime_days: u32,
    pub vault_path: &'a str,
    pub audit_path: Option<PathBuf>,
    /// What the audit record's action is (`add_secret` for apply, `rotate` for rotate).
    pub action: AuditAction,
}

/// A secret that is in the vault and works (never the value).
#[derive(Debug, Clone, Serialize)]
pub struct Minted {
    pub key_id: String,
    pub hint: String,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    pub vault: StoreReport,
    pub proven: bool,
}

/// Read the vault's current value, for the view the plan needs and for a restore on rollback.
pub async fn vault_get(vault: Arc<dyn Vault>, path: &str) -> Result<Option<Secret>, VaultError> {
    if !vault.can_read() {
        return Ok(None);
    }
    let path = path.to_string();
    tokio::task::spawn_blocking(move || vault.get(&path))
        .await
        .unwrap_or_else(|e| Err(join_error(e)))
}

fn join_error(e: tokio::task::JoinError) -> VaultError {
    VaultError::Backend {
        backend: "vault".into(),
        message: format!("the vault call did not finish: {e}"),
        hint: None,
    }
}

async fn vault_store(
    vault: Arc<dyn Vault>,
    path: &str,
    secret: Secret,
) -> (Secret, Result<StoreReport, VaultError>) {
    let path = path.to_string();
    match tokio::task::spawn_blocking(move || {
        let r = crate::vault::store_verified(&*vault, &path, &secret);
        (secret, r)
    })
    .await
    {
        Ok(pair) => pair,
        Err(e) => (Secret::new(String::new()), Err(join_error(e))),
    }
}

async fn vault_restore(
    vault: Arc<dyn Vault>,
    path: &str,
    previous: Secret,
) -> Result<(), VaultError> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || vault.put(&path, &previous))
        .await
        .unwrap_or_else(|e| Err(join_error(e)))
}

fn record(
    target: &MintTarget<'_>,
    outcome: AuditOutcome,
    cred: &PasswordCredential,
    detail: Option<String>,
) {
    let Some(path) = &target.audit_path else {
        return;
    };
    let mut r = AuditRecord::new(target.tenant, target.service, target.action, outcome);
    r.app_id = Some(target.app_id.to_string());
    r.key_id = cred.key_id.clone();
    r.hint = cred.hint.clone();
    r.detail = detail;
    if let Err(e) = audit::append(path, &r) {
        tracing::warn!("cannot append to the audit log {}: {e}", path.display());
    }
}

/// Mint, store, prove; roll back on any failure.
pub async fn mint(
    write: &GraphWrite,
    auth: &AuthConfig,
    vault: Arc<dyn Vault>,
    target: &MintTarget<'_>,
) -> Result<Minted, Error> {
    mint_when_ready(write, auth, vault, target, std::future::ready(Ok(()))).await
}

/// Like [`mint`], but the token proof first waits for `ready`: apply creates the app's service
/// principal concurrently, and Entra refuses a token to an app with no service principal in
/// the tenant (AADSTS7000229). If `ready` fails, the new credential is rolled back like any
/// other failure.
pub async fn mint_when_ready(
    write: &GraphWrite,
    auth: &AuthConfig,
    vault: Arc<dyn Vault>,
    target: &MintTarget<'_>,
    ready: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<Minted, Error> {
    // Read what the vault holds now first: if the new secret fails, it goes back.
    // A read that failed and may only mean "no such entry" (no missing-entry rule declared)
    // is taken as an empty vault: the read-back after the push decides (VaultError::may_be_absent).
    let previous = match vault_get(vault.clone(), target.vault_path).await {
        Ok(previous) => previous,
        Err(e) if e.may_be_absent() => None,
        Err(e) => return Err(e.into()),
    };
    let end = OffsetDateTime::now_utc() + time::Duration::days(i64::from(target.lifetime_days));
    let (cred, secret) = write
        .add_password(target.app_object_id, target.display_name, end)
        .await?;
    let key_id = cred.key_id.clone().unwrap_or_default();

    let (secret, stored) = vault_store(vault.clone(), target.vault_path, secret).await;
    let failure: Option<(String, Option<String>, bool)> = match &stored {
        Err(e) => {
            let wrote = matches!(
                e.stage(),
                crate::vault::VaultStage::Read | crate::vault::VaultStage::Verify
            );
            Some((
                format!("storing the new secret failed: {e}"),
                e.hint(),
                wrote,
            ))
        }
        Ok(report) => match (ready.await, auth.graph_scope()) {
            (Err(e), _) => Some((
                format!(
                    "the new secret was stored ({}) but cannot be proven: {e}",
                    report.backend
                ),
                e.hint(),
                true,
            )),
            (Ok(()), Err(e)) => {
                let e = Error::from(crate::graph::GraphError::from(e));
                Some((
                    format!(
                        "the new secret was stored ({}) but cannot be proven: {e}",
                        report.backend
                    ),
                    e.hint(),
                    true,
                ))
            }
            (Ok(()), Ok(scope)) => {
                let deadline = tokio::time::Instant::now() + PROVE_WINDOW;
                match prove_secret(
                    auth,
                    target.tenant,
                    target.app_id,
                    &secret,
                    &scope,
                    deadline,
                )
                .await
                {
                    Ok(()) => None,
                    Err(e) => Some((
                        format!(
                            "the new secret was stored ({}) but a token request with it failed: {e}",
                            report.backend
                        ),
                        e.hint(),
                        true,
                    )),
                }
            }
        },
    };
    drop(secret);

    let Some((message, hint, vault_written)) = failure else {
        let Ok(report) = stored else {
            unreachable!("failure is None only when stored is Ok")
        };
        record(target, AuditOutcome::Success, &cred, None);
        return Ok(Minted {
            key_id,
            hint: cred.hint.clone().unwrap_or_default(),
            start_date_time: cred.start_date_time.clone(),
            end_date_time: cred.end_date_time.clone(),
            vault: report,
            proven: true,
        });
    };

    // Roll back: the credential first (no valid secret outside the vault), then the vault.
    let mut notes = Vec::new();
    let removed = write.remove_password(target.app_object_id, &key_id).await;
    match &removed {
        Ok(()) => notes.push(format!(
            "the new credential (keyId {key_id}) was removed again"
        )),
        Err(e) => notes.push(format!(
            "removing the new credential failed ({e}); remove keyId {key_id} by hand: \
             az ad app credential delete --id {} --key-id {key_id}",
            target.app_id
        )),
    }
    if vault_written {
        match previous {
            Some(prev) => match vault_restore(vault, target.vault_path, prev).await {
                Ok(()) => notes.push("the vault's previous secret was put back".into()),
                Err(e) => notes.push(format!("putting the vault's previous secret back failed: {e}")),
            },
            None => notes.push(format!(
                "the vault path {} now holds a secret of a removed credential; the next apply replaces it",
                target.vault_path
            )),
        }
    }
    record(
        target,
        if removed.is_ok() {
            AuditOutcome::RolledBack
        } else {
            AuditOutcome::RollbackFailed
        },
        &cred,
        Some(message.clone()),
    );
    Err(Error::other(
        // A vault's captured output ends the message in an indented block: the notes go on a
        // line of their own, not glued to the vault's last line.
        if message.contains('\n') {
            format!("{message}\n{}", notes.join("; "))
        } else {
            format!("{message}; {}", notes.join("; "))
        },
        hint,
    ))
}
