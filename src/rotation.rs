//! The pure half of `rotate` and `secrets`: which credential is the one in use, what a listing
//! row says about each credential, whether a rotation is due, and which older credentials may
//! be pruned. No I/O; the commands feed it what Graph and the vault said.
//!
//! Pruning rule (issue 5): a credential C may go when a newer, valid entraform credential S (its
//! successor) has existed for at least the overlap (so every consumer has had that long to pick
//! S up). Never pruned: the credential the vault holds, the newest credential, one entraform did
//! not make (unless `prune_foreign`), or one whose removal would leave no valid credential.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::graph::wire::PasswordCredential;
use crate::vault_view::VaultView;

pub use crate::credential::{current, is_ours, is_valid};
use crate::credential::{end_of, start_of};

/// Whole days from `now` to the credential's end (negative once expired for a day or more;
/// `None` = no end).
pub fn days_left(c: &PasswordCredential, now: OffsetDateTime) -> Option<i64> {
    // Truncated toward zero: "709 days left" until 710 have passed, "expired 3 days ago".
    end_of(c).map(|end| (end - now).whole_days())
}

/// The credential the vault holds (by hint; the newest if several share the hint).
pub fn vault_held<'a>(
    creds: &'a [PasswordCredential],
    vault: &VaultView,
) -> Option<&'a PasswordCredential> {
    crate::credential::vault_credential(creds, vault)
}

/// Why `--if-expiring-within` lets a rotation go ahead, or why it skips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Due {
    /// Rotate: `reason` says why.
    Rotate { reason: String },
    /// Skip: the secret in use expires after the window.
    Skip { key_id: String, days_left: i64 },
}

/// Whether a rotation is due with `--if-expiring-within within_days` (`None`: always).
pub fn due(
    creds: &[PasswordCredential],
    marker: &str,
    vault: &VaultView,
    within_days: Option<u32>,
    now: OffsetDateTime,
) -> Due {
    let Some(days) = within_days else {
        return Due::Rotate {
            reason: "rotation requested".into(),
        };
    };
    let Some(c) = current(creds, marker, vault, now) else {
        return Due::Rotate {
            reason: match vault {
                VaultView::Holds { hint } => format!(
                    "the vault's secret (hint {hint}) matches no valid credential of the app"
                ),
                VaultView::Empty => "the vault holds no secret".into(),
                VaultView::Unreadable => "no valid credential made by entraform".into(),
                VaultView::Unknown => {
                    "the vault's read failed and is taken as holding nothing usable".into()
                }
            },
        };
    };
    let key_id = c.key_id.clone().unwrap_or_default();
    match end_of(c) {
        Some(end) if end <= now + time::Duration::days(i64::from(days)) => Due::Rotate {
            reason: format!(
                "the secret in use (keyId {key_id}) expires in {} day(s), within {days}",
                days_left(c, now).unwrap_or(0).max(0)
            ),
        },
        _ => Due::Skip {
            days_left: days_left(c, now).unwrap_or(i64::MAX),
            key_id,
        },
    }
}

/// One row of `entraform secrets` (never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    pub key_id: String,
    pub hint: String,
    pub display_name: String,
    /// startDateTime (RFC 3339), as Graph reports it.
    pub created: Option<String>,
    /// endDateTime (RFC 3339).
    pub expires: Option<String>,
    /// Whole days until it expires; negative once expired.
    pub days_left: Option<i64>,
    pub valid: bool,
    /// Whether the vault holds it (by hint); `None` when the vault cannot be read back.
    pub in_vault: Option<bool>,
    /// Made by entraform (displayName is the manifest's secret display name).
    pub by_entraform: bool,
}

/// Every credential of an app, oldest first.
pub fn describe(
    creds: &[PasswordCredential],
    marker: &str,
    vault: &VaultView,
    now: OffsetDateTime,
) -> Vec<CredentialInfo> {
    let held = vault_held(creds, vault).and_then(|c| c.key_id.clone());
    let mut rows: Vec<(Option<OffsetDateTime>, CredentialInfo)> = creds
        .iter()
        .map(|c| {
            let key_id = c.key_id.clone().unwrap_or_default();
            let in_vault = match vault {
                VaultView::Unreadable | VaultView::Unknown => None,
                _ => Some(held.as_deref() == Some(key_id.as_str())),
            };
            (
                start_of(c),
                CredentialInfo {
                    hint: c.hint.clone().unwrap_or_default(),
                    display_name: c.display_name.clone().unwrap_or_default(),
                    created: c.start_date_time.clone(),
                    expires: c.end_date_time.clone(),
                    days_left: days_left(c, now),
                    valid: is_valid(c, now),
                    in_vault,
                    by_entraform: is_ours(c, marker),
                    key_id,
                },
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key_id.cmp(&b.1.key_id)));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Why a credential stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum KeepReason {
    /// The vault holds it.
    InVault,
    /// It is the newest credential of the app.
    Newest,
    /// entraform did not make it (`--prune-foreign` removes it).
    Foreign,
    /// No newer valid entraform credential exists.
    NoSuccessor,
    /// Its successor is younger than the overlap; prunable from `after` on.
    InOverlap { successor: String, after: String },
    /// Removing it would leave the app without a valid credential.
    LastValid,
    /// The vault cannot be read back, so which credential is in use is only assumed; nothing
    /// is pruned on an assumption (a rotation, which knows what it stored, prunes).
    VaultUnreadable,
    /// People may hold it (typed into a connector): only `rotate --prune-old` removes it.
    HeldByPeople,
    /// `--prune-old`: the vault holds no valid credential of the app, so which one people
    /// should have is not known; nothing is removed.
    VaultHoldsNone,
}

impl KeepReason {
    /// A short phrase for text output.
    pub fn describe(&self) -> String {
        match self {
            KeepReason::InVault => "the vault holds it".into(),
            KeepReason::Newest => "newest credential".into(),
            KeepReason::Foreign => {
                "not made by entraform (--prune-foreign removes it once replaced)".into()
            }
            KeepReason::NoSuccessor => "no newer entraform credential".into(),
            KeepReason::InOverlap { successor, after } => {
                format!(
                    "overlap: successor {successor} is younger than the window; prunable after {after}"
                )
            }
            KeepReason::LastValid => "the last valid credential".into(),
            KeepReason::VaultUnreadable => {
                "the vault cannot be read back; only a rotation prunes".into()
            }
            KeepReason::HeldByPeople => {
                "people may still use it (typed into a connector); `rotate --prune-old` removes it once they have the new one".into()
            }
            KeepReason::VaultHoldsNone => {
                "the vault holds no valid credential of the app; nothing is pruned".into()
            }
        }
    }
}

/// A credential and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialRef {
    pub key_id: String,
    pub hint: String,
    pub display_name: String,
    pub by_entraform: bool,
}

impl CredentialRef {
    fn of(c: &PasswordCredential, marker: &str) -> Self {
        CredentialRef {
            key_id: c.key_id.clone().unwrap_or_default(),
            hint: c.hint.clone().unwrap_or_default(),
            display_name: c.display_name.clone().unwrap_or_default(),
            by_entraform: is_ours(c, marker),
        }
    }
}

/// A credential that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    #[serde(flatten)]
    pub credential: CredentialRef,
    #[serde(flatten)]
    pub reason: KeepReason,
}

/// What pruning would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrunePlan {
    pub remove: Vec<CredentialRef>,
    pub keep: Vec<Kept>,
}

/// The knobs of [`select_prunable`].
#[derive(Debug, Clone, Copy)]
pub struct PrunePolicy {
    /// How long a successor must have existed.
    pub overlap: time::Duration,
    /// Also remove credentials entraform did not make.
    pub prune_foreign: bool,
}

/// Every credential kept for the same reason, oldest first.
pub fn keep_all(creds: &[PasswordCredential], marker: &str, reason: KeepReason) -> Vec<Kept> {
    let mut order: Vec<&PasswordCredential> = creds.iter().collect();
    order.sort_by_key(|c| start_of(c));
    order
        .into_iter()
        .map(|c| Kept {
            credential: CredentialRef::of(c, marker),
            reason: reason.clone(),
        })
        .collect()
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Decide, for every credential, whether it is pruned. `protected` is the keyId the vault
/// holds (after a rotation: the new one). Credentials without a start time sort oldest.
pub fn select_prunable(
    creds: &[PasswordCredential],
    marker: &str,
    protected: Option<&str>,
    policy: PrunePolicy,
    now: OffsetDateTime,
) -> PrunePlan {
    let newest = creds
        .iter()
        .max_by_key(|c| start_of(c))
        .and_then(|c| c.key_id.clone());
    let mut plan = PrunePlan::default();
    let mut removed: Vec<&PasswordCredential> = Vec::new();
    let mut order: Vec<&PasswordCredential> = creds.iter().collect();
    order.sort_by_key(|c| start_of(c));
    for c in order {
        let key = c.key_id.as_deref();
        let keep = |reason| Kept {
            credential: CredentialRef::of(c, marker),
            reason,
        };
        if key.is_some() && key == protected {
            plan.keep.push(keep(KeepReason::InVault));
            continue;
        }
        if key.is_some() && key == newest.as_deref() {
            plan.keep.push(keep(KeepReason::Newest));
            continue;
        }
        let start = start_of(c);
        // Successors: newer, valid, made by entraform. The oldest one decides when C may go.
        let oldest_successor = creds
            .iter()
            .filter(|s| s.key_id != c.key_id && is_ours(s, marker) && is_valid(s, now))
            .filter_map(|s| {
                let s_start = start_of(s)?;
                start.is_none_or(|cs| s_start > cs).then_some((s_start, s))
            })
            .min_by_key(|(t, _)| *t);
        let Some((s_start, s)) = oldest_successor else {
            plan.keep.push(keep(KeepReason::NoSuccessor));
            continue;
        };
        // A successor "started" in the future (clock skew) has age zero.
        let age = (now - s_start).max(time::Duration::ZERO);
        if age < policy.overlap {
            plan.keep.push(keep(KeepReason::InOverlap {
                successor: s.key_id.clone().unwrap_or_default(),
                after: fmt_time(s_start + policy.overlap),
            }));
            continue;
        }
        if !is_ours(c, marker) && !policy.prune_foreign {
            plan.keep.push(keep(KeepReason::Foreign));
            continue;
        }
        removed.push(c);
        plan.remove.push(CredentialRef::of(c, marker));
    }
    keep_last_valid(&mut plan, creds, &removed, marker, now);
    plan
}

/// Never leave zero valid credentials: put back the newest valid one of those `removed`.
fn keep_last_valid(
    plan: &mut PrunePlan,
    creds: &[PasswordCredential],
    removed: &[&PasswordCredential],
    marker: &str,
    now: OffsetDateTime,
) {
    let remaining_valid = creds
        .iter()
        .filter(|c| is_valid(c, now) && !removed.iter().any(|r| r.key_id == c.key_id))
        .count();
    if remaining_valid == 0
        && let Some(back) = removed
            .iter()
            .filter(|c| is_valid(c, now))
            .max_by_key(|c| start_of(c))
    {
        let key = back.key_id.clone().unwrap_or_default();
        plan.remove.retain(|r| r.key_id != key);
        plan.keep.push(Kept {
            credential: CredentialRef::of(back, marker),
            reason: KeepReason::LastValid,
        });
    }
}

/// `rotate --prune-old`: remove every credential entraform made except the one the vault holds
/// (`held`), never one entraform did not make, and never the last valid one.
pub fn select_prune_old(
    creds: &[PasswordCredential],
    marker: &str,
    held: &str,
    now: OffsetDateTime,
) -> PrunePlan {
    let mut plan = PrunePlan::default();
    let mut order: Vec<&PasswordCredential> = creds.iter().collect();
    order.sort_by_key(|c| start_of(c));
    let mut removed: Vec<&PasswordCredential> = Vec::new();
    for c in order {
        let keep = |reason| Kept {
            credential: CredentialRef::of(c, marker),
            reason,
        };
        if c.key_id.as_deref() == Some(held) {
            plan.keep.push(keep(KeepReason::InVault));
        } else if !is_ours(c, marker) {
            plan.keep.push(keep(KeepReason::Foreign));
        } else {
            removed.push(c);
            plan.remove.push(CredentialRef::of(c, marker));
        }
    }
    keep_last_valid(&mut plan, creds, &removed, marker, now);
    plan
}

/// Credentials only an interrupted run leaves: made by entraform, not the one the vault holds,
/// and newer than it. No consumer can have read them from the vault, so no overlap applies;
/// they are removed at once (the same rule `plan` uses for `apply`). Only decided when the
/// vault holds a valid credential: with an empty, mismatched or unreadable vault, which secret
/// is in use is not known and the overlap rule alone decides.
pub fn orphans(
    creds: &[PasswordCredential],
    marker: &str,
    vault: &VaultView,
    now: OffsetDateTime,
) -> Vec<CredentialRef> {
    let Some(held) = vault_held(creds, vault).filter(|c| is_valid(c, now)) else {
        return Vec::new();
    };
    let Some(held_start) = start_of(held) else {
        return Vec::new();
    };
    creds
        .iter()
        .filter(|c| is_ours(c, marker) && c.key_id != held.key_id)
        .filter(|c| start_of(c).is_some_and(|s| s > held_start))
        .map(|c| CredentialRef::of(c, marker))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &str = "entraform hive";

    fn at(days_ago: i64, now: OffsetDateTime) -> String {
        fmt_time(now - time::Duration::days(days_ago))
    }

    fn cred(key: &str, name: &str, started_days_ago: i64, ends_in_days: i64) -> PasswordCredential {
        let now = now();
        PasswordCredential {
            key_id: Some(key.into()),
            display_name: Some(name.into()),
            hint: Some(key[..3.min(key.len())].into()),
            start_date_time: Some(at(started_days_ago, now)),
            end_date_time: Some(at(-ends_in_days, now)),
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-03-01 12:00 UTC)
    }

    fn policy(days: i64, foreign: bool) -> PrunePolicy {
        PrunePolicy {
            overlap: time::Duration::days(days),
            prune_foreign: foreign,
        }
    }

    fn removed(p: &PrunePlan) -> Vec<&str> {
        p.remove.iter().map(|r| r.key_id.as_str()).collect()
    }

    fn reason<'a>(p: &'a PrunePlan, key: &str) -> &'a KeepReason {
        &p.keep
            .iter()
            .find(|k| k.credential.key_id == key)
            .unwrap_or_else(|| panic!("{key} not kept: {p:?}"))
            .reason
    }

    #[test]
    fn fresh_rotation_prunes_nothing_within_the_overlap() {
        let creds = [cred("old", MARK, 300, 400), cred("new", MARK, 0, 730)];
        let p = select_prunable(&creds, MARK, Some("new"), policy(7, false), now());
        assert!(p.remove.is_empty(), "{p:?}");
        assert!(
            matches!(reason(&p, "old"), KeepReason::InOverlap { successor, .. } if successor == "new")
        );
        assert_eq!(reason(&p, "new"), &KeepReason::InVault);
    }

    #[test]
    fn a_successor_older_than_the_overlap_prunes_its_predecessors_only() {
        let creds = [
            cred("aaa", MARK, 400, 300),
            cred("bbb", MARK, 10, 720),
            cred("ccc", MARK, 0, 730),
        ];
        let p = select_prunable(&creds, MARK, Some("ccc"), policy(7, false), now());
        assert_eq!(removed(&p), ["aaa"]);
        assert!(matches!(reason(&p, "bbb"), KeepReason::InOverlap { .. }));
        // With overlap 0 both go, the vault's stays.
        let p = select_prunable(&creds, MARK, Some("ccc"), policy(0, false), now());
        assert_eq!(removed(&p), ["aaa", "bbb"]);
    }

    #[test]
    fn foreign_credentials_stay_unless_asked() {
        let creds = [
            cred("az1", "frame (az)", 400, 300),
            cred("new", MARK, 30, 700),
        ];
        let p = select_prunable(&creds, MARK, Some("new"), policy(7, false), now());
        assert!(p.remove.is_empty());
        assert_eq!(reason(&p, "az1"), &KeepReason::Foreign);
        let p = select_prunable(&creds, MARK, Some("new"), policy(7, true), now());
        assert_eq!(removed(&p), ["az1"]);
    }

    #[test]
    fn the_newest_and_the_vaults_are_never_pruned() {
        // The vault holds the older one; the newest is an orphan: neither goes.
        let creds = [cred("vlt", MARK, 100, 600), cred("orf", MARK, 50, 680)];
        let p = select_prunable(&creds, MARK, Some("vlt"), policy(0, true), now());
        assert!(p.remove.is_empty(), "{p:?}");
        assert_eq!(reason(&p, "orf"), &KeepReason::Newest);
    }

    #[test]
    fn a_foreign_successor_does_not_count() {
        let creds = [
            cred("our", MARK, 400, 300),
            cred("frn", "by hand", 100, 600),
            cred("new", MARK, 0, 730),
        ];
        let p = select_prunable(&creds, MARK, Some("new"), policy(7, true), now());
        // our's only entraform successor is `new` (age 0): in overlap. frn likewise.
        assert!(p.remove.is_empty(), "{p:?}");
    }

    #[test]
    fn never_leaves_zero_valid_credentials() {
        // Expired successor does not count; an expired newest is kept; the valid older one is
        // the last valid credential.
        let creds = [cred("val", MARK, 400, 100), cred("exp", MARK, 200, -1)];
        let p = select_prunable(&creds, MARK, None, policy(0, false), now());
        assert!(p.remove.is_empty(), "{p:?}");
        assert_eq!(reason(&p, "val"), &KeepReason::NoSuccessor);
    }

    #[test]
    fn orphans_are_newer_than_the_vaults_and_ours_only() {
        let creds = [
            cred("old", MARK, 300, 400),
            cred("vlt", MARK, 100, 600),
            cred("orf", MARK, 1, 729),
            cred("frn", "by hand", 1, 729),
        ];
        let held = VaultView::Holds { hint: "vlt".into() };
        let o = orphans(&creds, MARK, &held, now());
        assert_eq!(
            o.iter().map(|c| c.key_id.as_str()).collect::<Vec<_>>(),
            ["orf"]
        );
        // Not knowing which secret is in use decides nothing.
        assert!(orphans(&creds, MARK, &VaultView::Empty, now()).is_empty());
        assert!(orphans(&creds, MARK, &VaultView::Unreadable, now()).is_empty());
        let stale = VaultView::Holds { hint: "zzz".into() };
        assert!(orphans(&creds, MARK, &stale, now()).is_empty());
    }

    #[test]
    fn prune_old_keeps_the_vaults_foreign_ones_and_the_last_valid() {
        let creds = [
            cred("old", MARK, 300, 400),
            cred("exp", MARK, 800, -3),
            cred("frn", "by hand", 200, 500),
            cred("vlt", MARK, 1, 729),
        ];
        let p = select_prune_old(&creds, MARK, "vlt", now());
        assert_eq!(removed(&p), ["exp", "old"]);
        assert_eq!(reason(&p, "vlt"), &KeepReason::InVault);
        assert_eq!(reason(&p, "frn"), &KeepReason::Foreign);
        // The vault holds an expired one: the newest valid one of ours stays.
        let creds = [cred("vlt", MARK, 800, -3), cred("new", MARK, 1, 729)];
        let p = select_prune_old(&creds, MARK, "vlt", now());
        assert!(p.remove.is_empty(), "{p:?}");
        assert_eq!(reason(&p, "new"), &KeepReason::LastValid);
    }

    #[test]
    fn expired_predecessors_go() {
        let creds = [cred("exp", MARK, 800, -70), cred("cur", MARK, 60, 670)];
        let p = select_prunable(&creds, MARK, Some("cur"), policy(7, false), now());
        assert_eq!(removed(&p), ["exp"]);
    }

    #[test]
    fn due_follows_the_secret_in_use() {
        let vault = VaultView::Holds { hint: "cur".into() };
        let creds = [cred("cur", MARK, 700, 20), cred("orf", MARK, 1, 729)];
        // The vault's secret expires in 20 days even though a newer one exists.
        assert!(matches!(
            due(&creds, MARK, &vault, Some(30), now()),
            Due::Rotate { .. }
        ));
        assert_eq!(
            due(&creds, MARK, &vault, Some(10), now()),
            Due::Skip {
                key_id: "cur".into(),
                days_left: 20
            }
        );
        assert!(matches!(
            due(&creds, MARK, &VaultView::Empty, Some(10), now()),
            Due::Rotate { .. }
        ));
        assert!(matches!(
            due(&creds, MARK, &vault, None, now()),
            Due::Rotate { .. }
        ));
        // An unreadable vault: the newest valid entraform credential is assumed in use.
        assert!(matches!(
            due(&creds, MARK, &VaultView::Unreadable, Some(30), now()),
            Due::Skip { key_id, .. } if key_id == "orf"
        ));
    }

    #[test]
    fn describe_marks_the_vaults_credential_and_sorts_oldest_first() {
        let creds = [cred("new", MARK, 1, 729), cred("az1", "by hand", 400, -5)];
        let rows = describe(
            &creds,
            MARK,
            &VaultView::Holds { hint: "new".into() },
            now(),
        );
        assert_eq!(rows[0].key_id, "az1");
        assert_eq!(rows[0].in_vault, Some(false));
        assert!(!rows[0].valid && !rows[0].by_entraform);
        assert_eq!(rows[0].days_left, Some(-5));
        assert_eq!(rows[1].in_vault, Some(true));
        assert_eq!(rows[1].days_left, Some(729));
        let rows = describe(&creds, MARK, &VaultView::Unreadable, now());
        assert!(rows.iter().all(|r| r.in_vault.is_none()));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const MARK: &str = "entraform svc";

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-03-01 12:00 UTC)
    }

    prop_compose! {
        fn credential(i: usize)(
            started in 0i64..900,
            lifetime in 1i64..800,
            ours in any::<bool>(),
        ) -> PasswordCredential {
            let start = now() - time::Duration::days(started) + time::Duration::seconds(i as i64);
            PasswordCredential {
                key_id: Some(format!("k{i}")),
                display_name: Some(if ours { MARK.into() } else { "by hand".into() }),
                hint: Some(format!("h{i}")),
                start_date_time: Some(fmt_time(start)),
                end_date_time: Some(fmt_time(start + time::Duration::days(lifetime))),
            }
        }
    }

    fn creds() -> impl Strategy<Value = Vec<PasswordCredential>> {
        (1usize..7).prop_flat_map(|n| (0..n).map(credential).collect::<Vec<_>>())
    }

    proptest! {
        /// `--prune-old`: never the vault's, never a foreign one, a valid one always remains.
        #[test]
        fn prune_old_keeps_its_promises(creds in creds(), held in 0usize..8) {
            let held = creds.get(held).and_then(|c| c.key_id.clone()).unwrap_or_default();
            let p = select_prune_old(&creds, MARK, &held, now());
            prop_assert_eq!(p.remove.len() + p.keep.len(), creds.len());
            prop_assert!(!p.remove.iter().any(|r| r.key_id == held));
            prop_assert!(p.remove.iter().all(|r| r.by_entraform));
            let gone = |c: &PasswordCredential| p.remove.iter().any(|r| Some(&r.key_id) == c.key_id.as_ref());
            let valid_before = creds.iter().filter(|c| is_valid(c, now())).count();
            let valid_after = creds.iter().filter(|c| is_valid(c, now()) && !gone(c)).count();
            prop_assert!(valid_before == 0 || valid_after >= 1);
        }

        /// The guarantees of issue 5, whatever the credentials: the vault's and the newest
        /// stay, foreign ones stay without the flag, and a valid credential always remains.
        #[test]
        fn pruning_keeps_its_promises(
            creds in creds(),
            protect in 0usize..8,
            overlap in 0i64..30,
            foreign in any::<bool>(),
        ) {
            let protected = creds.get(protect).and_then(|c| c.key_id.clone());
            let p = select_prunable(
                &creds,
                MARK,
                protected.as_deref(),
                PrunePolicy { overlap: time::Duration::days(overlap), prune_foreign: foreign },
                now(),
            );
            prop_assert_eq!(p.remove.len() + p.keep.len(), creds.len());
            let gone = |c: &PasswordCredential| p.remove.iter().any(|r| Some(&r.key_id) == c.key_id.as_ref());
            if let Some(key) = &protected {
                prop_assert!(!p.remove.iter().any(|r| &r.key_id == key));
            }
            let newest = creds.iter().max_by_key(|c| start_of(c)).unwrap();
            prop_assert!(!gone(newest));
            if !foreign {
                prop_assert!(p.remove.iter().all(|r| r.by_entraform));
            }
            let valid_before = creds.iter().filter(|c| is_valid(c, now())).count();
            let valid_after = creds.iter().filter(|c| is_valid(c, now()) && !gone(c)).count();
            prop_assert!(valid_before == 0 || valid_after >= 1);
            // Everything removed has a valid entraform successor at least `overlap` old.
            for r in &p.remove {
                let c = creds.iter().find(|c| c.key_id.as_ref() == Some(&r.key_id)).unwrap();
                prop_assert!(creds.iter().any(|s| is_ours(s, MARK)
                    && is_valid(s, now())
                    && start_of(s) > start_of(c)
                    && now() - start_of(s).unwrap() >= time::Duration::days(overlap)));
            }
        }
    }
}
