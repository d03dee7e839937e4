//! Minting a client secret: `addPassword` → vault (shape check, write, read-back) → a live token
//! request with it → audit. Any failure after `addPassword` removes the new credential again
//! (and puts the vault's previous value back), so no valid secret exists that the vault does
//! not hold (docs/rotate.md). Shared by `apply` and `rotate`.
//!
//! Outcomes that are not known are settled, not guessed:
//! - `addPassword` is sent once. When it may have run although no answer says so (a 5xx, a
//!   timeout, a connection lost after the request went out), the app's credentials are read
//!   and every credential of this attempt (this tool's display name, the end date we sent,
//!   started since the attempt began) is removed, or named with the command that removes it;
//!   the audit log records what was found.
//! - A vault write that failed may have written anyway (a push that exits non-zero or is killed
//!   after updating its store). The rollback reads the vault again and compares: our new
//!   secret there → the previous value goes back; the previous value there → nothing to do;
//!   anything else → someone else changed it meanwhile, and it is left alone, said so.
//! - A vault that cannot be read back gets the new secret only once a token request with it
//!   worked: nothing could later tell a dead secret there from a live one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use crate::graph::wire::PasswordCredential;
use crate::graph::{AuthConfig, GraphError, GraphWrite, SendFailure, prove_secret};
use crate::secret::Secret;
use crate::vault::{StoreReport, Vault, VaultError};

/// How long a new secret may take to work at the token endpoint (replication:
/// <https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>).
pub const PROVE_WINDOW: Duration = Duration::from_secs(90);

/// How far Graph's clock may be behind ours when matching the `startDateTime` of a credential
/// an unanswered `addPassword` may have made.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Reads of the app's credentials when settling an unanswered `addPassword`: a credential just
/// made may take a moment to show in reads (replication).
const SETTLE_READS: u32 = 4;

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

/// Put `previous` back. A failed write may have landed all the same: then the vault is read
/// once more, and holding `previous` counts as put back.
async fn vault_restore(
    vault: Arc<dyn Vault>,
    path: &str,
    previous: Secret,
) -> Result<(), VaultError> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || match vault.put(&path, &previous) {
        Ok(()) => Ok(()),
        Err(e) if vault.can_read() && e.may_have_written() => match vault.get(&path) {
            Ok(Some(now)) if now.same_as(&previous) => Ok(()),
            _ => Err(e),
        },
        Err(e) => Err(e),
    })
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
    audit::record(path, &r, |line| tracing::warn!("{line}"));
}

/// What a failed mint did to the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VaultState {
    /// Nothing was written (refused before writing, or never attempted).
    Untouched,
    /// A write failed in a way that may have changed the vault anyway.
    MaybeWritten,
    /// The write failed its read-back: the vault holds what our write left, not our value.
    Mismatched,
    /// The new secret was written and read back.
    Written,
}

/// Why a mint failed: the vault or Graph refused before anything was minted, or it failed later
/// and the message says what was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A failure after `addPassword` (or before the proof could start), with what was undone.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl MintError {
    pub fn failed(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        MintError::Failed {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            MintError::Vault(e) => e.hint(),
            MintError::Graph(e) => e.hint(),
            MintError::Failed { hint, .. } => hint.clone(),
        }
    }
}

/// Why a mint failed, before the rollback.
struct Failure {
    message: String,
    hint: Option<String>,
    vault: VaultState,
}

/// Mint, store, prove; roll back on any failure.
pub async fn mint(
    write: &GraphWrite,
    auth: &AuthConfig,
    vault: Arc<dyn Vault>,
    target: &MintTarget<'_>,
) -> Result<Minted, MintError> {
    mint_when_ready(write, auth, vault, target, std::future::ready(Ok(()))).await
}

/// The token request with the new secret, once `ready` (the SP exists).
async fn prove(
    auth: &AuthConfig,
    target: &MintTarget<'_>,
    secret: &Secret,
    ready: impl std::future::Future<Output = Result<(), MintError>>,
) -> Result<(), (String, Option<String>)> {
    if let Err(e) = ready.await {
        return Err((format!("cannot be proven: {e}"), e.hint()));
    }
    let scope = match auth.graph_scope() {
        Ok(scope) => scope,
        Err(e) => {
            let e = MintError::from(GraphError::from(e));
            return Err((format!("cannot be proven: {e}"), e.hint()));
        }
    };
    let deadline = tokio::time::Instant::now() + PROVE_WINDOW;
    prove_secret(auth, target.tenant, target.app_id, secret, &scope, deadline)
        .await
        .map_err(|e| (format!("a token request with it failed: {e}"), e.hint()))
}

fn store_failure(e: &VaultError, prefix: &str) -> Failure {
    Failure {
        message: format!("{prefix}storing the new secret failed: {e}"),
        hint: e.hint(),
        vault: if matches!(e, VaultError::Mismatch { .. }) {
            VaultState::Mismatched
        } else if e.may_have_written() {
            VaultState::MaybeWritten
        } else {
            VaultState::Untouched
        },
    }
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
    ready: impl std::future::Future<Output = Result<(), MintError>>,
) -> Result<Minted, MintError> {
    // Read what the vault holds now first: if the new secret fails, it goes back.
    // A read that failed and may only mean "no such entry" (no missing-entry rule declared)
    // is taken as an empty vault: the read-back after the push decides (VaultError::may_be_absent).
    let previous = match vault_get(vault.clone(), target.vault_path).await {
        Ok(previous) => previous,
        Err(e) if e.may_be_absent() => None,
        Err(e) => return Err(e.into()),
    };
    let began = OffsetDateTime::now_utc();
    // Whole seconds: the end date is how an unanswered attempt's credential is recognised.
    let end = began + time::Duration::days(i64::from(target.lifetime_days));
    let end = end.replace_nanosecond(0).unwrap_or(end);
    let (cred, secret) = match write
        .add_password(target.app_object_id, target.display_name, end)
        .await
    {
        Ok(pair) => pair,
        Err(SendFailure {
            error,
            maybe_done: true,
        }) => return Err(settle_unanswered_add(write, target, began, end, error).await),
        Err(SendFailure { error, .. }) => return Err(error.into()),
    };
    let key_id = cred.key_id.clone().unwrap_or_default();

    let (secret, outcome) = if vault.can_read() {
        let (secret, stored) = vault_store(vault.clone(), target.vault_path, secret).await;
        let outcome = match stored {
            Err(e) => Err(store_failure(&e, "")),
            Ok(report) => match prove(auth, target, &secret, ready).await {
                Ok(()) => Ok(report),
                Err((why, hint)) => Err(Failure {
                    message: format!("the new secret was stored ({}) but {why}", report.backend),
                    hint,
                    vault: VaultState::Written,
                }),
            },
        };
        (secret, outcome)
    } else {
        // No read-back: a secret written and then found dead could never be told from a live
        // one, so the vault gets it only once it works.
        match prove(auth, target, &secret, ready).await {
            Err((why, hint)) => (
                secret,
                Err(Failure {
                    message: format!(
                        "the new secret {why}; the vault was not written (it cannot be read \
                         back, so a secret goes there only once it works)"
                    ),
                    hint,
                    vault: VaultState::Untouched,
                }),
            ),
            Ok(()) => {
                let (secret, stored) = vault_store(vault.clone(), target.vault_path, secret).await;
                let outcome = stored.map_err(|e| store_failure(&e, "the new secret works, but "));
                (secret, outcome)
            }
        }
    };

    let failure = match outcome {
        Ok(report) => {
            drop(secret);
            record(target, AuditOutcome::Success, &cred, None);
            return Ok(Minted {
                key_id,
                hint: cred.hint.clone().unwrap_or_default(),
                start_date_time: cred.start_date_time.clone(),
                end_date_time: cred.end_date_time.clone(),
                vault: report,
                proven: true,
            });
        }
        Err(f) => f,
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
    if let Some(note) =
        settle_vault(vault, target.vault_path, failure.vault, previous, &secret).await
    {
        notes.push(note);
    }
    drop(secret);
    let message = failure.message;
    record(
        target,
        if removed.is_ok() {
            AuditOutcome::RolledBack
        } else {
            AuditOutcome::RollbackFailed
        },
        &cred,
        Some(format!("{message}; {}", notes.join("; "))),
    );
    Err(MintError::failed(
        // A vault's captured output ends the message in an indented block: the notes go on a
        // line of their own, not glued to the vault's last line.
        if message.contains('\n') {
            format!("{message}\n{}", notes.join("; "))
        } else {
            format!("{message}; {}", notes.join("; "))
        },
        failure.hint,
    ))
}

/// Put the vault back after a failed mint, if it changed and nobody else changed it since.
/// Returns what was done, for the error message (None: nothing to say).
async fn settle_vault(
    vault: Arc<dyn Vault>,
    path: &str,
    state: VaultState,
    previous: Option<Secret>,
    written: &Secret,
) -> Option<String> {
    if state == VaultState::Untouched {
        return None;
    }
    if !vault.can_read() {
        return Some(format!(
            "the vault at {path} may now hold the secret of the removed credential (the push \
             failed after it may have written, and this vault cannot be read back to check); \
             run apply again to store a working one"
        ));
    }
    // What is there now decides: compare it with what we wrote before restoring anything.
    let now = vault_get(vault.clone(), path).await;
    enum Found {
        Ours,
        Previous,
        Empty,
        Other,
        NotASecret,
        Unreadable(VaultError),
    }
    let found = match now {
        Ok(Some(v)) if v.same_as(written) => Found::Ours,
        Ok(Some(v)) if previous.as_ref().is_some_and(|p| v.same_as(p)) => Found::Previous,
        // A failed read-back: what is there is what our write left.
        Ok(Some(_)) if state == VaultState::Mismatched => Found::Ours,
        Ok(Some(_)) => Found::Other,
        Ok(None) => Found::Empty,
        // Not a client secret: a write cut short or glued output, nobody's valid secret.
        Err(VaultError::ReadShape { .. }) => Found::NotASecret,
        Err(e) => Found::Unreadable(e),
    };
    let restore = |prev: Secret, why: &'static str| {
        let vault = vault.clone();
        async move {
            match vault_restore(vault, path, prev).await {
                Ok(()) => format!("{why}; the vault's previous secret was put back"),
                Err(e) => format!("{why}; putting the vault's previous secret back failed: {e}"),
            }
        }
    };
    Some(match (found, previous) {
        (Found::Ours, Some(prev)) => restore(prev, "the vault held the new secret").await,
        (Found::NotASecret, Some(prev)) => {
            restore(prev, "the vault held a value that is not a client secret").await
        }
        (Found::Empty, Some(prev)) => restore(prev, "the vault entry was empty").await,
        (Found::Unreadable(e), Some(prev)) => {
            // Cannot compare; the previous value is the one known to have worked.
            match vault_restore(vault.clone(), path, prev).await {
                Ok(()) => format!(
                    "the vault could not be read to check what it holds ({e}); the vault's \
                     previous secret was put back"
                ),
                Err(e2) => format!(
                    "the vault could not be read to check what it holds ({e}), and putting \
                     the previous secret back failed: {e2}"
                ),
            }
        }
        (Found::Previous, _) => "the vault still holds its previous secret".into(),
        (Found::Other, _) => format!(
            "the vault at {path} was changed by someone else meanwhile (it holds neither the \
             previous secret nor the new one): it was left alone; check who wrote it \
             (`entraform secrets` shows whether it matches a credential)"
        ),
        (Found::Ours | Found::NotASecret, None) => format!(
            "the vault path {path} now holds a secret of a removed credential; the next apply \
             replaces it"
        ),
        (Found::Empty, None) => return None,
        (Found::Unreadable(e), None) => format!(
            "the vault could not be read to check what it holds ({e}); it may hold a secret of \
             a removed credential, which the next apply replaces"
        ),
    })
}

/// `addPassword` may have run although no answer said so: find this attempt's credentials
/// (this tool's display name, the end date sent, started since the attempt began), remove
/// them, and say what was done. Never sends `addPassword` again.
async fn settle_unanswered_add(
    write: &GraphWrite,
    target: &MintTarget<'_>,
    began: OffsetDateTime,
    end: OffsetDateTime,
    error: GraphError,
) -> MintError {
    let hint = error.hint();
    let policy = write.client().retry_policy().clone();
    let parse = |s: Option<&String>| crate::credential::parse_time(s.map(String::as_str));
    let ours = |c: &PasswordCredential| {
        c.display_name.as_deref() == Some(target.display_name)
            && parse(c.end_date_time.as_ref())
                .is_some_and(|e| (e - end).abs() < time::Duration::seconds(1))
            && parse(c.start_date_time.as_ref()).is_none_or(|s| s >= began - CLOCK_SKEW)
    };
    let mut found: Vec<PasswordCredential> = Vec::new();
    let mut read_error = None;
    let mut wait = policy.replication_base_delay;
    for read in 1..=SETTLE_READS {
        match write.password_credentials(target.app_object_id).await {
            Ok(creds) => {
                read_error = None;
                found = creds.into_iter().filter(|c| ours(c)).collect();
                if !found.is_empty() {
                    break;
                }
            }
            Err(e) => read_error = Some(e),
        }
        if read < SETTLE_READS {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(policy.max_delay);
        }
    }
    let list = format!("az ad app credential list --id {}", target.app_id);
    let mut notes = Vec::new();
    if let Some(e) = &read_error {
        notes.push(format!(
            "reading the app's credentials to settle it failed too ({e}); look for a credential \
             named {:?} created just now with `{list}` and remove it with `az ad app credential \
             delete --id {} --key-id KEYID`",
            target.display_name, target.app_id
        ));
        append_failed(
            target,
            format!(
                "addPassword's outcome is unknown ({error}); the app's credentials could not be \
             read to settle it: {e}"
            ),
        );
    } else if found.is_empty() {
        notes.push(
            "no credential of this attempt exists on the app: nothing was minted, nothing to \
             undo"
                .to_string(),
        );
        append_failed(
            target,
            format!(
                "addPassword's outcome was unknown ({error}); the app's credentials were read: \
             none of this attempt"
            ),
        );
    }
    for cred in &found {
        let key_id = cred.key_id.clone().unwrap_or_default();
        let removed = match write.remove_password(target.app_object_id, &key_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        let detail = format!(
            "addPassword's outcome was unknown ({error}); the credential it made was found \
             on the app"
        );
        match removed {
            Ok(()) => {
                notes.push(format!(
                    "it had made a credential (keyId {key_id}), which was removed again"
                ));
                record(
                    target,
                    AuditOutcome::RolledBack,
                    cred,
                    Some(format!("{detail} and removed")),
                );
            }
            Err(e) => {
                notes.push(format!(
                    "it had made a credential (keyId {key_id}) and removing it failed ({e}); \
                     remove it by hand: az ad app credential delete --id {} --key-id {key_id}",
                    target.app_id
                ));
                record(
                    target,
                    AuditOutcome::RollbackFailed,
                    cred,
                    Some(format!("{detail}; removing it failed: {e}")),
                );
            }
        }
    }
    MintError::failed(
        format!(
            "addPassword got no usable answer ({error}), so it may have run; it was not sent \
             again. The app's credentials were read to settle it: {}",
            notes.join("; ")
        ),
        hint.or_else(|| Some("run the command again once Graph answers".into())),
    )
}

/// An audit record of a failed attempt that made no credential this run knows of.
fn append_failed(target: &MintTarget<'_>, detail: String) {
    let mut r = AuditRecord::new(
        target.tenant,
        target.service,
        target.action,
        AuditOutcome::Failed,
    );
    r.app_id = Some(target.app_id.to_string());
    r.detail = Some(detail);
    append(target, &r);
}

fn append(target: &MintTarget<'_>, r: &AuditRecord) {
    let Some(path) = &target.audit_path else {
        return;
    };
    audit::record(path, r, |line| tracing::warn!("{line}"));
}
