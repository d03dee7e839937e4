//! The customer's tenant, and only that tenant: every token the operator's credential returns is
//! checked for the tenant it was issued in (the `tid` claim) before Graph sees it, so a
//! credential signed in to another directory is refused before anything is read or written.
//!
//! `tid` is "the tenant that the user is signing in to" (Microsoft identity platform, access
//! token claims: <https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference#payload-claims>).
//! Graph's access tokens are JWTs (RFC 7519 §3: three base64url parts; the payload is the
//! second), so reading `tid` costs no round trip. The token's signature is not checked here:
//! Graph checks it; this is a guard against the wrong directory, not an authentication.
//!
//! A token that is not a JWT (or has no `tid`) cannot be checked, and is refused: a careful
//! operator wants the check, and an unverifiable tenant is how writes land in the wrong one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The tenant a client must stay in: the customer's `tenant_id` from `defaults.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTenant {
    /// Directory (tenant) id, a GUID.
    pub tenant_id: String,
    /// The customers of `defaults.yaml` that live in it (named in errors).
    pub customers: Vec<String>,
}

impl ExpectedTenant {
    pub fn new(tenant_id: impl Into<String>, customers: Vec<String>) -> Self {
        ExpectedTenant {
            tenant_id: tenant_id.into(),
            customers,
        }
    }

    fn who(&self) -> String {
        match self.customers.as_slice() {
            [] => "the manifest's customer".to_string(),
            [one] => format!("customer {one}"),
            many => format!("customers {}", many.join(", ")),
        }
    }

    /// Check a bearer token against this tenant.
    pub fn check(&self, token: &str) -> Result<(), TenantError> {
        let actual = token_tenant(token).map_err(|why| TenantError::Unverifiable {
            expected: self.tenant_id.clone(),
            who: self.who(),
            why,
        })?;
        if actual.eq_ignore_ascii_case(&self.tenant_id) {
            Ok(())
        } else {
            Err(TenantError::Mismatch {
                expected: self.tenant_id.clone(),
                actual,
                who: self.who(),
            })
        }
    }
}

/// The operator's token is not for the customer's tenant (or cannot be shown to be).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The token's `tid` names another directory.
    #[error(
        "the operator's token is for tenant {actual}, but {who} is in tenant {expected}: nothing was read or written"
    )]
    Mismatch {
        expected: String,
        actual: String,
        who: String,
    },
    /// The token has no readable `tid`.
    #[error(
        "cannot tell which tenant the operator's token is for ({why}); {who} is in tenant {expected}: nothing was read or written"
    )]
    Unverifiable {
        expected: String,
        who: String,
        why: String,
    },
}

impl TenantError {
    pub fn hint(&self) -> String {
        let expected = match self {
            TenantError::Mismatch { expected, .. } | TenantError::Unverifiable { expected, .. } => {
                expected
            }
        };
        let sign_in = format!(
            "`az login --tenant {expected}`, or set AZURE_TENANT_ID={expected} with AZURE_CLIENT_ID/AZURE_CLIENT_SECRET of an operator app registered (or consented) there"
        );
        match self {
            TenantError::Mismatch { .. } => format!(
                "sign in to the customer's tenant: {sign_in}; a managed identity only gets tokens for its own tenant"
            ),
            TenantError::Unverifiable { .. } => format!(
                "use a credential whose Graph token is a JWT with a `tid` claim (a work or school identity of the customer's tenant): {sign_in}"
            ),
        }
    }

    /// The tenant the operator needed.
    pub fn expected(&self) -> &str {
        match self {
            TenantError::Mismatch { expected, .. } | TenantError::Unverifiable { expected, .. } => {
                expected
            }
        }
    }
}

/// The `tid` claim of a JWT access token, or why there is none.
pub fn token_tenant(token: &str) -> Result<String, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("the token is not a JWT".into());
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| "the token's payload is not base64url".to_string())?;
    let claims: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| "the token's payload is not JSON".to_string())?;
    claims["tid"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "the token carries no tid claim".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(payload.as_bytes())
        )
    }

    const A: &str = "122fb574-7efa-476a-95b6-bee81bce2cce";
    const B: &str = "5a1e7c0d-0b0b-4c4c-9d9d-2e2e2e2e2e2e";

    #[test]
    fn tid_is_read_from_the_payload() {
        assert_eq!(
            token_tenant(&jwt(&format!(r#"{{"tid":"{A}"}}"#))).unwrap(),
            A
        );
        assert!(token_tenant("opaque-token").is_err());
        assert!(
            token_tenant(&jwt(r#"{"aud":"x"}"#))
                .unwrap_err()
                .contains("no tid")
        );
        assert!(token_tenant("a.!!!.c").unwrap_err().contains("base64url"));
    }

    #[test]
    fn a_token_of_another_tenant_is_refused_naming_both_and_the_fix() {
        let expected = ExpectedTenant::new(B, vec!["acme".into()]);
        assert!(
            expected
                .check(&jwt(&format!(r#"{{"tid":"{}"}}"#, B.to_uppercase())))
                .is_ok()
        );
        let err = expected
            .check(&jwt(&format!(r#"{{"tid":"{A}"}}"#)))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(A) && text.contains(B) && text.contains("customer acme"),
            "{text}"
        );
        assert!(err.hint().contains(&format!("az login --tenant {B}")));
        assert!(err.hint().contains("AZURE_TENANT_ID"));
        let opaque = expected.check("not-a-jwt").unwrap_err();
        assert!(matches!(opaque, TenantError::Unverifiable { .. }));
        assert!(opaque.to_string().contains("not a JWT"));
    }
}
