//! `apply --sandbox`: an in-process emulator seeded like the org's tenant, and a file vault, all
//! under `.entraform/sandbox/` so a newcomer sees every step work with no tenant.
//!
//! The emulator's tenant is kept in `.entraform/sandbox/tenant.json` (digests only, no secret
//! values), so a second run is a no-op exactly as against a real tenant.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::desired::Desired;
use crate::error::Error;
use crate::graph::AuthConfig;
use crate::printer::Printer;
use crate::session::Session;
use crate::vault::VaultConfig;
use entraform_emulator::{EmulatorConfig, RunningEmulator};

pub const SANDBOX_DIR: &str = ".entraform/sandbox";

pub struct Sandbox {
    pub emulator: RunningEmulator,
    pub dir: PathBuf,
}

fn emu_err(e: entraform_emulator::EmulatorError) -> Error {
    let hint = e.hint();
    Error::other(format!("the sandbox emulator failed: {e}"), hint)
}

/// The application JSON of a service as its manifest describes it (for seeding).
fn app_json(d: &Desired, app_id: Option<&str>) -> Value {
    let a = &d.app;
    let mut app = json!({
        "displayName": d.display_name,
        "signInAudience": a.sign_in_audience,
        "identifierUris": [a.identifier_uri],
        "api": {
            "requestedAccessTokenVersion": a.requested_access_token_version,
            "oauth2PermissionScopes": a.scopes.iter().map(|s| json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "value": s.value,
                "type": s.kind,
                "isEnabled": true,
                "adminConsentDisplayName": s.admin_consent_display_name,
                "adminConsentDescription": s.admin_consent_description,
                "userConsentDisplayName": s.user_consent_display_name,
                "userConsentDescription": s.user_consent_description,
            })).collect::<Vec<_>>(),
        },
        "web": {
            "redirectUris": a.redirect_uris,
            "implicitGrantSettings": {
                "enableIdTokenIssuance": a.enable_id_token_issuance,
                "enableAccessTokenIssuance": a.enable_access_token_issuance,
            },
        },
        "requiredResourceAccess": a.required_resource_access.iter().map(|r| json!({
            "resourceAppId": r.resource_app_id,
            "resourceAccess": r.access.iter().map(|p| json!({"id": p.id, "type": p.kind})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "servicePrincipal": true,
        "passwords": [{"displayName": format!("{} (az ad app credential reset)", d.service)}],
        "grants": d.consent.iter().map(|g| json!({
            "resourceAppId": match &g.resource {
                crate::desired::GrantResource::SelfApp => "self".to_string(),
                crate::desired::GrantResource::App(id) => id.clone(),
            },
            "scope": g.scope,
        })).collect::<Vec<_>>(),
    });
    if let Some(id) = app_id {
        app["appId"] = json!(id);
    }
    app
}

/// A pinned app as the checklist's first `az` commands leave it: created, SP made, App ID URI
/// set, and nothing else (token version 1, no scope, no redirect URIs, no consent).
fn hand_made_app_json(d: &Desired, app_id: &str) -> Value {
    json!({
        "displayName": d.display_name,
        "appId": app_id,
        "signInAudience": "AzureADMyOrg",
        "identifierUris": [d.app.identifier_uri],
        "servicePrincipal": true,
        "passwords": [{"displayName": format!("{} (az ad app credential reset)", d.service)}],
    })
}

/// The seed documents: the reference app in its customer's tenant, the pinned app in the
/// service's; each names its `tenant`.
fn seed_docs(
    desired: &Desired,
    manifest: &Path,
    defaults: Option<&Path>,
    printer: &Printer,
) -> Vec<Value> {
    let mut apps = Vec::new();
    let mut reference_doc = None;
    if let Some(reference) = &desired.reference {
        let path = crate::session::manifest_dir(manifest).join(format!("{reference}.yaml"));
        match crate::manifest::load_service(&path, defaults) {
            Ok(r) if r.service != desired.service => {
                printer.status(&format!(
                    "sandbox: seeding the reference app {} as made by hand (no uniqueName)",
                    r.display_name
                ));
                if r.tenant_id.eq_ignore_ascii_case(&desired.tenant_id) {
                    apps.push(app_json(&r, r.app_id.as_deref()));
                } else {
                    reference_doc = Some(json!({
                        "tenant": r.tenant_id,
                        "applications": [app_json(&r, r.app_id.as_deref())],
                    }));
                }
            }
            Ok(_) => {}
            Err(e) => printer.warn(&format!(
                "sandbox: the reference {reference} cannot be loaded from {} ({e}); seeding without it",
                path.display()
            )),
        }
    }
    if let Some(pinned) = &desired.app_id {
        printer.status(&format!(
            "sandbox: the manifest pins app_id {pinned}; seeding it as left by the checklist's first az commands"
        ));
        apps.push(hand_made_app_json(desired, pinned));
    }
    // The sandbox tenant verifies the customer host's parent domain, so v1 apps made by hand
    // may carry https App ID URIs on it (<https://learn.microsoft.com/entra/identity-platform/identifier-uri-restrictions>).
    let parent = desired
        .host
        .split_once('.')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut domains = desired.verified_domains.clone();
    if !parent.is_empty() && !domains.contains(&parent) {
        domains.push(parent);
    }
    let mut docs = vec![json!({
        "tenant": desired.tenant_id,
        "verifiedDomains": domains,
        "applications": apps,
    })];
    docs.extend(reference_doc);
    docs
}

/// One tenant per distinct `customers.<c>.tenant_id` of the defaults file, in the file's
/// customer order (stable from run to run, whichever service runs), the service's included.
fn sandbox_tenants(desired: &Desired, manifest: &Path, defaults: Option<&Path>) -> Vec<String> {
    let mut tenants: Vec<String> = Vec::new();
    let path = crate::manifest::defaults_path(manifest, defaults);
    if let Ok(loaded) = crate::manifest::load_defaults(&path) {
        for c in loaded.defaults.customers.values() {
            if !tenants.iter().any(|t| t.eq_ignore_ascii_case(&c.tenant_id)) {
                tenants.push(c.tenant_id.clone());
            }
        }
    }
    if !tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&desired.tenant_id))
    {
        tenants.push(desired.tenant_id.clone());
    }
    tenants
}

/// Whether the tenant already holds a seed app: same appId, or an App ID URI in common.
fn in_tenant(tenant: &Value, app: &Value) -> bool {
    let uris = |a: &Value| -> Vec<String> {
        a["identifierUris"]
            .as_array()
            .map(|u| {
                u.iter()
                    .filter_map(|x| x.as_str().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wanted = uris(app);
    tenant["applications"]
        .as_array()
        .map(|apps| {
            apps.iter().any(|t| {
                (app["appId"].is_string() && t["appId"] == app["appId"])
                    || uris(t).iter().any(|u| wanted.contains(u))
            })
        })
        .unwrap_or(false)
}

/// Start the sandbox and point `desired` at its file vault.
pub async fn start(
    desired: &mut Desired,
    manifest: &Path,
    defaults: Option<&Path>,
    printer: &Printer,
) -> Result<(Sandbox, Session), Error> {
    let dir = PathBuf::from(SANDBOX_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let state = dir.join("tenant.json");
    let tenants = sandbox_tenants(desired, manifest, defaults);
    let mut config = EmulatorConfig::default()
        .tls(true)
        .tenant(tenants[0].clone())
        .state_file(state.clone());
    for t in tenants.into_iter().skip(1) {
        config = config.add_tenant(t);
    }
    let docs = seed_docs(desired, manifest, defaults, printer);
    for d in docs[0]["verifiedDomains"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(d) = d.as_str() {
            config = config.verified_domain(d);
        }
    }
    let reuse = state.exists();
    if !reuse {
        for doc in &docs {
            config = config.seed(doc.clone());
        }
    } else {
        printer.status(&format!(
            "sandbox: reusing the tenant in {}",
            state.display()
        ));
    }
    let emulator = entraform_emulator::start(config).await.map_err(emu_err)?;
    if reuse {
        // The tenant was made for another manifest: add what this one expects to find there
        // (its pinned app, its reference) unless it is there already.
        for doc in &docs {
            let tid = doc["tenant"].as_str().unwrap_or_default();
            let tenant = emulator.tenant_state_json(tid).unwrap_or_default();
            let missing: Vec<Value> = doc["applications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| !in_tenant(&tenant, a))
                .collect();
            if !missing.is_empty() {
                emulator
                    .seed_app(&json!({ "tenant": tid, "applications": missing }))
                    .map_err(emu_err)?;
            }
        }
    }
    let hosted = emulator.tenant_ids();
    if hosted.len() > 1 {
        printer.status(&format!(
            "sandbox: {} tenants, one per customer tenant of the defaults: {}",
            hosted.len(),
            hosted.join(", ")
        ));
    }
    let auth = AuthConfig::new(emulator.authority_host(), emulator.graph_url()).with_ca_pem(
        emulator
            .ca_cert_pem()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
    );
    // The operator of the service's own tenant (every hosted tenant has one).
    let operator = emulator
        .tenant_operator(&desired.tenant_id)
        .ok_or_else(|| {
            Error::other(
                "the sandbox does not host the service's tenant",
                None::<String>,
            )
        })?;
    let session = Session::with_operator(
        auth,
        &desired.tenant_id,
        &operator.client_id,
        operator.secret(),
    )?;
    desired.vault = VaultConfig::File {
        path: dir.join("vault.json"),
    };
    printer.status(&format!(
        "sandbox: emulator at {} (Graph {}), file vault {}",
        emulator.authority_host(),
        emulator.graph_url(),
        dir.join("vault.json").display()
    ));
    Ok((Sandbox { emulator, dir }, session))
}
