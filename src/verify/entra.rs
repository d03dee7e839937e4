//! The Entra half of `verify`: checklist #11 (the app manifest: token version 2, App ID URI in
//! URL form, sign-in audience), #12 (the service principal exists), #13 (the vault's secret:
//! Entra's charset and the 40–50 length band, then a real client-credentials token request with
//! it) and admin consent. One `observe` (a `$batch` plus the grants) and one token request.
//!
//! Without Graph credentials every Graph-backed item fails with the reason and the fix: a
//! verify that cannot look must not look like one that passed.

use std::sync::Arc;
use std::time::Duration;

use crate::desired::{Desired, GrantResource, MS_GRAPH_APP_ID};
use crate::graph::wire::Application;
use crate::graph::{AuthConfig, GraphClient, prove_secret};
use crate::observed::{Observed, observe};
use crate::secret::{SECRET_LEN_MAX, SECRET_LEN_MIN, Secret, check_shape};
use crate::vault::Vault;

use super::Check;

/// How long #13's token request may retry (a secret rotated moments ago takes a few seconds to
/// work:
/// <https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/>);
/// a wrong secret fails after this.
pub const PROVE_DEADLINE: Duration = Duration::from_secs(8);

const T_TOKEN_VERSION: &str = "app manifest: access token version 2";
const T_APP_ID_URI: &str = "app manifest: App ID URI in URL form";
const T_AUDIENCE: &str = "app manifest: sign-in audience";
const T_SP: &str = "service principal exists";
const T_SHAPE: &str = "vault secret: charset and 40–50 length";
const T_TOKEN: &str = "vault secret: token request";
const T_CONSENT: &str = "admin consent granted";

/// Why Graph cannot be read (no credentials, refused, unreachable): message and fix.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub message: String,
    pub fix: String,
}

/// The Graph side: a client and its auth configuration, or why there is none.
pub type GraphAccess<'a> = Result<(&'a GraphClient, &'a AuthConfig), Unavailable>;

/// What the vault holds at the service's path.
enum VaultRead {
    Value(Secret),
    Empty,
    CannotRead,
    Failed {
        message: String,
        fix: Option<String>,
    },
}

async fn read_vault(vault: Result<Arc<dyn Vault>, Unavailable>, path: &str) -> VaultRead {
    let vault = match vault {
        Ok(v) => v,
        Err(u) => {
            return VaultRead::Failed {
                message: u.message,
                fix: Some(u.fix),
            };
        }
    };
    if !vault.can_read() {
        return VaultRead::CannotRead;
    }
    match crate::secret_flow::vault_get(vault, path).await {
        Ok(Some(s)) => VaultRead::Value(s),
        Ok(None) => VaultRead::Empty,
        Err(e) => VaultRead::Failed {
            message: e.to_string(),
            fix: e.hint(),
        },
    }
}

fn fix_apply(step: &str) -> String {
    format!("run `entraform apply MANIFEST` ({step}), then verify again")
}

/// The Entra checks of one service.
pub async fn entra_checks(
    desired: &Desired,
    graph: GraphAccess<'_>,
    vault: Result<Arc<dyn Vault>, Unavailable>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let observed: Result<Observed, Unavailable> = match &graph {
        Ok((client, _)) => observe(*client, desired).await.map_err(|e| Unavailable {
            message: e.to_string(),
            fix: e.hint().unwrap_or_else(|| {
                "check the Graph credentials (AZURE_TENANT_ID, AZURE_CLIENT_ID, \
                 AZURE_CLIENT_SECRET, or `az login`) and --graph-url"
                    .to_string()
            }),
        }),
        Err(u) => Err(u.clone()),
    };

    // #13a needs no Graph: read and check the vault first.
    let vault_read = read_vault(vault, &desired.secret.vault_path).await;
    let secret = shape_check(vault_read, &desired.secret.vault_path, &mut checks);

    let observed = match observed {
        Ok(o) => o,
        Err(u) => {
            let detail = format!("cannot read the tenant: {}", u.message);
            for (id, title) in [
                ("#11", "app manifest"),
                ("#12", T_SP),
                ("#13b", T_TOKEN),
                ("consent", T_CONSENT),
            ] {
                checks.push(Check::fail(id, title, detail.clone(), u.fix.clone()));
            }
            return checks;
        }
    };
    let Some(app) = &observed.app else {
        let detail = format!(
            "no app for {} in tenant {} (looked up by {}uniqueName {} and App ID URI {})",
            desired.service,
            desired.tenant_id,
            desired
                .app_id
                .as_deref()
                .map(|id| format!("app_id {id}, "))
                .unwrap_or_default(),
            desired.unique_name,
            desired.app.identifier_uri
        );
        for (id, title) in [
            ("#11", "app manifest"),
            ("#12", T_SP),
            ("#13b", T_TOKEN),
            ("consent", T_CONSENT),
        ] {
            checks.push(Check::fail(id, title, detail.clone(), fix_apply("step 1")));
        }
        return checks;
    };
    let app_id = app.app_id.clone().unwrap_or_default();

    app_checks(app, desired, &mut checks);
    checks.push(sp_check(&observed, desired, &app_id));

    // #13b: a real token request with the vault's secret.
    checks.push(token_check(secret.as_ref(), &graph, desired, &app_id).await);

    checks.push(consent_check(&observed, desired, &graph, &app_id));
    checks
}

/// #13a: the vault's value has the shape of an Entra client secret. The secret, when usable.
fn shape_check(vault_read: VaultRead, path: &str, checks: &mut Vec<Check>) -> Option<Secret> {
    match vault_read {
        VaultRead::Value(secret) => match check_shape(&secret) {
            Ok(()) => {
                checks.push(Check::pass(
                    "#13a",
                    T_SHAPE,
                    format!(
                        "{path}: {} characters, Entra's secret alphabet (hint {})",
                        secret.len(),
                        secret.hint()
                    ),
                ));
                Some(secret)
            }
            Err(e) => {
                checks.push(Check::fail(
                    "#13a",
                    T_SHAPE,
                    format!("{path}: {e}"),
                    format!(
                        "store the secret alone ({SECRET_LEN_MIN}–{SECRET_LEN_MAX} characters): \
                         keep the tool's stderr apart when it is piped into the vault, or mint a \
                         new one with `entraform rotate MANIFEST`"
                    ),
                ));
                None
            }
        },
        VaultRead::Empty => {
            checks.push(Check::fail(
                "#13a",
                T_SHAPE,
                format!("the vault holds nothing at {path}"),
                "mint a secret into the vault: `entraform apply MANIFEST` (or `entraform rotate \
                 MANIFEST`)",
            ));
            None
        }
        VaultRead::CannotRead => {
            checks.push(Check::warn(
                "#13a",
                T_SHAPE,
                format!("the vault backend has no `get`; {path} cannot be read back"),
                "add a `get:` command to the vault config so verify can check the secret",
            ));
            None
        }
        VaultRead::Failed { message, fix } => {
            checks.push(Check::fail(
                "#13a",
                T_SHAPE,
                message,
                fix.unwrap_or_else(|| "check the vault backend's configuration".to_string()),
            ));
            None
        }
    }
}

/// #11: the app's token version, App ID URI and audience.
fn app_checks(app: &Application, desired: &Desired, checks: &mut Vec<Check>) {
    let version = app
        .api
        .as_ref()
        .and_then(|a| a.requested_access_token_version);
    checks.push(match version {
        Some(2) => Check::pass(
            "#11a",
            T_TOKEN_VERSION,
            "api.requestedAccessTokenVersion = 2",
        ),
        other => Check::fail(
            "#11a",
            T_TOKEN_VERSION,
            format!(
                "api.requestedAccessTokenVersion = {} (v1 tokens carry the wrong issuer and \
                 audience for the MCP server's validation)",
                other.map_or("null (means 1)".to_string(), |v| v.to_string())
            ),
            fix_apply("step 3"),
        ),
    });
    let uris = app.identifier_uris.clone().unwrap_or_default();
    let want = &desired.app.identifier_uri;
    checks.push(if uris.iter().any(|u| u == want) {
        Check::pass(
            "#11b",
            T_APP_ID_URI,
            format!("identifierUris = [{}]", uris.join(", ")),
        )
    } else {
        Check::fail(
            "#11b",
            T_APP_ID_URI,
            format!(
                "identifierUris = [{}]; expected {want}{}",
                uris.join(", "),
                if uris.iter().any(|u| u.starts_with("api://")) {
                    " (the api:// form is not the URL form the connector uses as audience)"
                } else {
                    ""
                }
            ),
            fix_apply("step 2"),
        )
    });
    let audience = app.sign_in_audience.clone().unwrap_or_default();
    checks.push(if audience == desired.app.sign_in_audience {
        Check::pass("#11c", T_AUDIENCE, format!("signInAudience = {audience}"))
    } else {
        Check::fail(
            "#11c",
            T_AUDIENCE,
            format!(
                "signInAudience = {audience}; expected {}",
                desired.app.sign_in_audience
            ),
            fix_apply("step 1"),
        )
    });
}

/// #12: the app's service principal.
fn sp_check(observed: &Observed, desired: &Desired, app_id: &str) -> Check {
    match &observed.service_principal {
        Some(sp) => Check::pass(
            "#12",
            T_SP,
            format!("service principal {} for appId {app_id}", sp.id),
        ),
        None => Check::fail(
            "#12",
            T_SP,
            format!(
                "appId {app_id} has no service principal in tenant {}",
                desired.tenant_id
            ),
            format!(
                "{} (or `az ad sp create --id {app_id}`)",
                fix_apply("step 1")
            ),
        ),
    }
}

/// #13b: a real token request with the vault's secret.
async fn token_check(
    secret: Option<&Secret>,
    graph: &GraphAccess<'_>,
    desired: &Desired,
    app_id: &str,
) -> Check {
    match (secret, graph) {
        (None, _) => Check::skip(
            "#13b",
            T_TOKEN,
            "not attempted: the vault holds no usable secret (see #13a)",
        ),
        (Some(_), Err(u)) => Check::fail("#13b", T_TOKEN, u.message.clone(), u.fix.clone()),
        (Some(secret), Ok((_, auth))) => match auth.graph_scope() {
            Err(e) => Check::fail("#13b", T_TOKEN, e.to_string(), e.hint().unwrap_or_default()),
            Ok(scope) => {
                let deadline = tokio::time::Instant::now() + PROVE_DEADLINE;
                match prove_secret(auth, &desired.tenant_id, app_id, secret, &scope, deadline).await
                {
                    Ok(()) => Check::pass(
                        "#13b",
                        T_TOKEN,
                        format!(
                            "client-credentials token issued to appId {app_id} with the vault's secret"
                        ),
                    ),
                    Err(e) => Check::fail(
                        "#13b",
                        T_TOKEN,
                        format!("with the vault's secret for appId {app_id}: {e}"),
                        e.hint().unwrap_or_else(|| {
                            "the vault's secret is not a valid secret of this app: rotate it \
                             (`entraform rotate MANIFEST`)"
                                .to_string()
                        }),
                    ),
                }
            }
        },
    }
}

/// Admin consent: every AllPrincipals grant the manifest asks for, with all its scopes.
fn consent_check(
    observed: &Observed,
    desired: &Desired,
    graph: &GraphAccess<'_>,
    app_id: &str,
) -> Check {
    let mut granted = Vec::new();
    let mut missing = Vec::new();
    for spec in &desired.consent {
        let (resource_sp, name) = match &spec.resource {
            GrantResource::SelfApp => (observed.service_principal.as_ref(), "this app".to_string()),
            GrantResource::App(id) => (
                observed.resource_sps.get(id),
                if id.eq_ignore_ascii_case(MS_GRAPH_APP_ID) {
                    "Microsoft Graph".to_string()
                } else {
                    id.clone()
                },
            ),
        };
        let have: Vec<&str> = resource_sp
            .map(|rsp| {
                observed
                    .grants
                    .iter()
                    .filter(|g| {
                        g.consent_type == "AllPrincipals"
                            && g.resource_id.eq_ignore_ascii_case(&rsp.id)
                    })
                    .flat_map(|g| g.scope.split_whitespace())
                    .collect()
            })
            .unwrap_or_default();
        let lacking: Vec<&str> = spec
            .scope
            .split_whitespace()
            .filter(|s| !have.contains(s))
            .collect();
        if lacking.is_empty() {
            granted.push(format!("{} on {name}", spec.scope));
        } else {
            missing.push(format!("{} on {name}", lacking.join(" ")));
        }
    }
    if missing.is_empty() {
        Check::pass(
            "consent",
            T_CONSENT,
            format!("tenant-wide (AllPrincipals): {}", granted.join("; ")),
        )
    } else {
        let url = graph
            .as_ref()
            .map(|(_, auth)| {
                crate::desired::admin_consent_url(&auth.authority_host, desired, app_id)
            })
            .unwrap_or_default();
        Check::fail(
            "consent",
            T_CONSENT,
            format!("not granted tenant-wide: {}", missing.join("; ")),
            format!("{}; or have a tenant admin open {url}", fix_apply("step 9")),
        )
    }
}
