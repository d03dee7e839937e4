//! A password credential's dates and state, decided once for every command: its dates parsed
//! from Graph's RFC 3339 strings, whether it is valid (started and not expired), and which one is
//! in use (the valid one the vault holds; when the vault cannot be read back, the newest valid one
//! this tool made). plan, apply, rotate, secrets and drift all ask here, so they cannot disagree.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::graph::wire::PasswordCredential;
use crate::vault_view::VaultView;

/// A Graph date-time (`startDateTime`, `endDateTime`); `None` when absent or unparseable.
pub fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// When `c` starts working.
pub fn start_of(c: &PasswordCredential) -> Option<OffsetDateTime> {
    parse_time(c.start_date_time.as_deref())
}

/// When `c` stops working.
pub fn end_of(c: &PasswordCredential) -> Option<OffsetDateTime> {
    parse_time(c.end_date_time.as_deref())
}

/// Whether `c` works at `now` (started, not expired). A credential without dates counts as valid.
pub fn is_valid(c: &PasswordCredential, now: OffsetDateTime) -> bool {
    end_of(c).is_none_or(|end| end > now) && start_of(c).is_none_or(|start| start <= now)
}

/// Whether entraform made `c`: its displayName is the manifest's secret display name.
pub fn is_ours(c: &PasswordCredential, marker: &str) -> bool {
    c.display_name.as_deref() == Some(marker)
}

/// The credential the vault's secret belongs to (by hint; the newest if several share it).
pub fn vault_credential<'a>(
    creds: &'a [PasswordCredential],
    vault: &VaultView,
) -> Option<&'a PasswordCredential> {
    let VaultView::Holds { hint } = vault else {
        return None;
    };
    creds
        .iter()
        .filter(|c| c.hint.as_deref() == Some(hint.as_str()))
        .max_by_key(|c| start_of(c))
}

/// The credential in use: the valid one the vault holds; when the vault cannot be read back,
/// the newest valid credential entraform made (`marker` is its display name).
pub fn current<'a>(
    creds: &'a [PasswordCredential],
    marker: &str,
    vault: &VaultView,
    now: OffsetDateTime,
) -> Option<&'a PasswordCredential> {
    match vault {
        VaultView::Unreadable => creds
            .iter()
            .filter(|c| is_ours(c, marker) && is_valid(c, now))
            .max_by_key(|c| start_of(c)),
        _ => vault_credential(creds, vault).filter(|c| is_valid(c, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cred(key: &str, start: &str, end: &str) -> PasswordCredential {
        PasswordCredential {
            key_id: Some(key.into()),
            display_name: Some("entraform hive".into()),
            hint: Some("abc".into()),
            start_date_time: Some(start.into()),
            end_date_time: Some(end.into()),
        }
    }

    #[test]
    fn valid_means_started_and_not_expired() {
        let now = datetime!(2026-12-01 0:00 UTC);
        assert!(is_valid(
            &cred("a", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            now
        ));
        assert!(!is_valid(
            &cred("b", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            now
        ));
        // Not started yet (a credential with a future startDateTime does not work yet).
        assert!(!is_valid(
            &cred("c", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"),
            now
        ));
    }

    #[test]
    fn without_read_back_the_newest_valid_of_ours_is_in_use_whatever_the_order() {
        let now = datetime!(2026-12-01 0:00 UTC);
        let newer = cred("new", "2026-11-01T00:00:00Z", "2028-11-01T00:00:00Z");
        let older = cred("old", "2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z");
        // Graph does not promise an order: the newest wins, not the last listed.
        let creds = vec![newer.clone(), older.clone()];
        let in_use = current(&creds, "entraform hive", &VaultView::Unreadable, now);
        assert_eq!(in_use.and_then(|c| c.key_id.as_deref()), Some("new"));
    }
}
