//! Several tenants in one emulator: the multi-tenant operator app.
//!
//! A multi-tenant app (`signInAudience: AzureADMultipleOrgs`) has one application object, in its
//! home tenant, and a service principal in every tenant where it is consented; the client
//! credentials grant then works in each of those tenants with the same client id and secret,
//! and the token's `tid` is the tenant the request named
//! (<https://learn.microsoft.com/entra/identity-platform/application-model#application-object>,
//! <https://learn.microsoft.com/entra/identity-platform/howto-convert-app-to-be-multi-tenant>).
//! A tenant without its service principal answers AADSTS700016 (the app "was not found in the
//! directory"), as for any app that is not consented there.

use serde_json::json;

use super::Principal;
use super::control::ensure_operator;
use super::state::{Obj, State};

/// uniqueName of the multi-tenant operator app (in its home tenant, the first one).
pub const MULTI_TENANT_OPERATOR_UNIQUE_NAME: &str = "entraform-emulator-operator-multitenant";

/// Register the multi-tenant operator in `home` and consent it (a service principal with
/// `roles`) in each of `others`.
pub(crate) fn ensure_multi_tenant_operator(
    home: &mut State,
    others: &mut [State],
    roles: Vec<String>,
) -> Principal {
    let p = ensure_operator(
        home,
        MULTI_TENANT_OPERATOR_UNIQUE_NAME,
        "entraform emulator operator (multi-tenant)",
        roles.clone(),
    );
    let Some(i) = home.app_index_by("appId", &p.client_id, None) else {
        return p;
    };
    home.applications[i].data["signInAudience"] = json!("AzureADMultipleOrgs");
    let app = home.applications[i].data.clone();
    for other in others {
        if other.sp_index_by("appId", &p.client_id, None).is_none() {
            let mut sp = other.new_service_principal(&app, &json!({}));
            // The SP of a foreign app names the app's home tenant as its owner.
            sp["appOwnerOrganizationId"] = json!(home.tenant_id);
            other.service_principals.push(Obj {
                data: sp,
                visible_at: 0,
            });
        }
        other.roles.insert(p.client_id.clone(), roles.clone());
    }
    p
}

/// The tenant holding the application object of `app_id` for a token request in `requested`:
/// `requested` itself, or — for a multi-tenant app with a service principal in `requested` —
/// its home tenant among `others`.
pub(crate) fn home_of<'a>(
    requested: &'a State,
    others: &'a [State],
    app_id: &str,
    now: u64,
) -> Option<&'a State> {
    if requested.app_index_by("appId", app_id, Some(now)).is_some() {
        return Some(requested);
    }
    requested.sp_index_by("appId", app_id, Some(now))?;
    others.iter().find(|s| {
        s.app_index_by("appId", app_id, Some(now)).is_some_and(|i| {
            matches!(
                s.applications[i].data["signInAudience"].as_str(),
                Some("AzureADMultipleOrgs" | "AzureADandPersonalMicrosoftAccount")
            )
        })
    })
}
