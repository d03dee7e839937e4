use time::macros::datetime;

use super::*;
use crate::desired::*;

/// blueprint as the example manifest lowers it (unit tests run from the crate root).
pub(crate) fn blueprint() -> Desired {
    crate::manifest::load_service(std::path::Path::new("manifests/blueprint.yaml"), None)
        .expect("the example manifest loads")
}

const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

fn sp(id: &str, app_id: &str) -> ServicePrincipal {
    ServicePrincipal {
        id: id.into(),
        app_id: app_id.into(),
        ..Default::default()
    }
}

fn cred(key: &str, hint: &str, start: &str, end: &str, name: &str) -> PasswordCredential {
    PasswordCredential {
        key_id: Some(key.into()),
        display_name: Some(name.into()),
        hint: Some(hint.into()),
        start_date_time: Some(start.into()),
        end_date_time: Some(end.into()),
    }
}

/// The live app exactly as a fresh apply leaves it.
fn converged() -> Observation {
    let d = blueprint();
    let Action::CreateApplication { body, .. } =
        build(&d, &Observation::default(), NOW).actions[0].clone()
    else {
        panic!("fresh plan starts with a create");
    };
    let mut app = body;
    app.id = Some("obj-1".into());
    app.app_id = Some("app-1".into());
    app.unique_name = Some(d.unique_name.clone());
    app.password_credentials = Some(vec![cred(
        "k1",
        "abc",
        "2026-11-01T00:00:00Z",
        "2028-11-01T00:00:00Z",
        "entraform blueprint",
    )]);
    Observation {
        app: Some(app),
        found_by: Some("uniqueName".into()),
        service_principal: Some(sp("sp-1", "app-1")),
        graph_service_principal: Some(sp("graph-sp", MS_GRAPH_APP_ID)),
        grants: vec![
            OAuth2PermissionGrant {
                id: "g1".into(),
                client_id: "sp-1".into(),
                consent_type: "AllPrincipals".into(),
                principal_id: None,
                resource_id: "graph-sp".into(),
                scope: "User.Read".into(),
            },
            OAuth2PermissionGrant {
                id: "g2".into(),
                client_id: "sp-1".into(),
                consent_type: "AllPrincipals".into(),
                principal_id: None,
                resource_id: "sp-1".into(),
                scope: "mcp.access".into(),
            },
        ],
        vault: Some(VaultView::Holds { hint: "abc".into() }),
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::DisableScopes { .. } => "disable_scopes",
            Action::CreateApplication { .. } => "create_application",
            Action::UpdateApplication { .. } => "update_application",
            Action::CreateServicePrincipal => "create_service_principal",
            Action::AddPassword { .. } => "add_password",
            Action::CreateGrant { .. } => "create_grant",
            Action::UpdateGrant { .. } => "update_grant",
            Action::RemoveOrphanPassword { .. } => "remove_orphan_password",
        })
        .collect()
}

#[test]
fn fresh_tenant_creates_everything_in_one_upsert() {
    let obs = Observation {
        graph_service_principal: Some(sp("graph-sp", MS_GRAPH_APP_ID)),
        ..Default::default()
    };
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(
        kinds(&plan),
        [
            "create_application",
            "create_service_principal",
            "add_password",
            "create_grant",
            "create_grant"
        ]
    );
    assert!(
        plan.steps.iter().all(|s| s.status.label() == "create"),
        "{}",
        plan.render_text()
    );
    let Action::CreateApplication { body, unique_name } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(unique_name, "axe-blueprint-mcp");
    let json = serde_json::to_value(body).unwrap();
    assert_eq!(
        json["identifierUris"][0],
        "https://axe.axelabs.ai/blueprint/mcp"
    );
    assert_eq!(json["api"]["requestedAccessTokenVersion"], 2);
    assert_eq!(
        json["api"]["oauth2PermissionScopes"][0]["value"],
        "mcp.access"
    );
    assert_eq!(json["api"]["oauth2PermissionScopes"][0]["isEnabled"], true);
    assert_eq!(
        json["web"]["implicitGrantSettings"]["enableIdTokenIssuance"],
        true
    );
    assert_eq!(
        json["requiredResourceAccess"][0]["resourceAccess"][0]["id"],
        USER_READ_SCOPE_ID
    );
    assert!(
        json.get("passwordCredentials").is_none(),
        "never sent on create"
    );
    insta::assert_snapshot!(plan.render_text());
}

#[test]
fn missing_graph_service_principal_blocks_consent() {
    let plan = build(&blueprint(), &Observation::default(), NOW);
    assert_eq!(plan.steps[8].status.label(), "blocked");
}

#[test]
fn converged_app_plans_zero_writes() {
    let plan = build(&blueprint(), &converged(), NOW);
    assert!(plan.actions.is_empty(), "{:#?}", plan.actions);
    assert!(!plan.has_changes());
    assert!(
        plan.steps.iter().all(|s| s.status.label() == "ok"),
        "{}",
        plan.render_text()
    );
    insta::assert_snapshot!(plan.render_text());
}

#[test]
fn redirect_order_is_not_a_change() {
    let mut obs = converged();
    let web = obs.app.as_mut().unwrap().web.as_mut().unwrap();
    web.redirect_uris.as_mut().unwrap().reverse();
    assert!(build(&blueprint(), &obs, NOW).actions.is_empty());
}

#[test]
fn changed_scope_is_disabled_first_and_keeps_its_id() {
    let mut obs = converged();
    let scopes = obs
        .app
        .as_mut()
        .unwrap()
        .api
        .as_mut()
        .unwrap()
        .oauth2_permission_scopes
        .as_mut()
        .unwrap();
    let old_id = scopes[0].id.clone();
    scopes[0].admin_consent_display_name = Some("Access Old Name".into());
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(kinds(&plan), ["disable_scopes", "update_application"]);
    let Action::DisableScopes { scopes } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(scopes.len(), 1);
    assert!(!scopes[0].is_enabled);
    assert_eq!(
        scopes[0].admin_consent_display_name.as_deref(),
        Some("Access Old Name"),
        "only isEnabled changes"
    );
    let Action::UpdateApplication { body } = &plan.actions[1] else {
        unreachable!()
    };
    let new = &body
        .api
        .as_ref()
        .unwrap()
        .oauth2_permission_scopes
        .as_ref()
        .unwrap()[0];
    assert_eq!(new.id, old_id);
    assert!(new.is_enabled);
    assert!(
        body.identifier_uris.is_none() && body.web.is_none(),
        "only what differs is sent"
    );
    let step4 = &plan.steps[3];
    assert_eq!(step4.status.label(), "update");
    insta::assert_snapshot!(plan.render_text());
}

#[test]
fn hand_made_app_is_adopted_with_unique_name_backfilled() {
    let mut obs = converged();
    let app = obs.app.as_mut().unwrap();
    app.unique_name = None;
    app.api.as_mut().unwrap().requested_access_token_version = None;
    obs.found_by = Some("identifierUri".into());
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(kinds(&plan), ["update_application"]);
    let Action::UpdateApplication { body } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(body.unique_name.as_deref(), Some("axe-blueprint-mcp"));
    assert_eq!(
        body.api.as_ref().unwrap().requested_access_token_version,
        Some(2)
    );
    let text = plan.render_text();
    assert!(
        text.contains("api.requestedAccessTokenVersion: 1 → 2"),
        "{text}"
    );
    assert!(
        text.contains("uniqueName: (none) → axe-blueprint-mcp"),
        "{text}"
    );
}

#[test]
fn secret_not_in_vault_is_minted_and_orphans_removed() {
    let mut obs = converged();
    obs.app
        .as_mut()
        .unwrap()
        .password_credentials
        .as_mut()
        .unwrap()
        .extend([
            // made by entraform after the held one: an interrupted run
            cred(
                "k2",
                "zzz",
                "2026-11-20T00:00:00Z",
                "2028-11-20T00:00:00Z",
                "entraform blueprint",
            ),
            // made by hand: never touched
            cred(
                "k3",
                "hhh",
                "2026-11-20T00:00:00Z",
                "2028-11-20T00:00:00Z",
                "by hand",
            ),
        ]);
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(kinds(&plan), ["remove_orphan_password"]);
    assert!(
        matches!(&plan.actions[0], Action::RemoveOrphanPassword { key_id, .. } if key_id == "k2")
    );

    obs.vault = Some(VaultView::Empty);
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(
        kinds(&plan),
        [
            "add_password",
            "remove_orphan_password",
            "remove_orphan_password"
        ]
    );
}

#[test]
fn expired_vault_secret_gets_a_new_one() {
    let mut obs = converged();
    obs.app
        .as_mut()
        .unwrap()
        .password_credentials
        .as_mut()
        .unwrap()[0]
        .end_date_time = Some("2026-11-01T00:00:00Z".into());
    let plan = build(&blueprint(), &obs, NOW);
    assert!(kinds(&plan).contains(&"add_password"));
}

#[test]
fn missing_scope_in_grant_is_added_without_dropping_others() {
    let mut obs = converged();
    obs.grants[0].scope = "openid".into();
    let plan = build(&blueprint(), &obs, NOW);
    assert_eq!(
        plan.actions,
        vec![Action::UpdateGrant {
            grant_id: "g1".into(),
            scope: "openid User.Read".into()
        }]
    );
}

#[test]
fn a_renamed_scope_leaves_the_grant_on_the_app_itself() {
    // The app's own scope goes from mcp.access to mcp.use: Graph refuses a grant of a scope
    // that is no longer published, so the old value is dropped from the self grant while any
    // other value (someone's consent on another resource) stays.
    let mut d = blueprint();
    d.app.scopes[0].value = "mcp.use".into();
    d.consent[1].scope = "mcp.use".into();
    let mut obs = converged();
    obs.grants[0].scope = "openid User.Read".into();
    let plan = build(&d, &obs, NOW);
    assert_eq!(
        kinds(&plan),
        ["disable_scopes", "update_application", "update_grant"]
    );
    assert_eq!(
        plan.actions[2],
        Action::UpdateGrant {
            grant_id: "g2".into(),
            scope: "mcp.use".into()
        }
    );
    let step9 = &plan.steps[8];
    assert_eq!(step9.status.label(), "create");
}

#[test]
fn drift_diff_names_each_field() {
    let want = AppShape::from_desired(&blueprint());
    let mut app = converged().app.unwrap();
    app.api.as_mut().unwrap().requested_access_token_version = Some(1);
    app.web.as_mut().unwrap().redirect_uris =
        Some(vec!["https://claude.ai/api/mcp/auth_callback".into()]);
    let have = AppShape::from_application(&app);
    let fields: Vec<String> = diff_shapes(&want, &have)
        .into_iter()
        .map(|(_, c)| c.field)
        .collect();
    assert_eq!(
        fields,
        ["api.requestedAccessTokenVersion", "web.redirectUris"]
    );
}

#[test]
fn new_scope_ids_come_from_the_generator() {
    let obs = Observation::default();
    let mut n = 0;
    let mut counter = || {
        n += 1;
        format!("00000000-0000-0000-0000-{n:012}")
    };
    let plan = build_with(&blueprint(), &obs, NOW, &mut counter);
    let Action::CreateApplication { body, .. } = &plan.actions[0] else {
        panic!("expected a create first: {:?}", plan.actions[0]);
    };
    let ids: Vec<&str> = body
        .api
        .as_ref()
        .and_then(|a| a.oauth2_permission_scopes.as_ref())
        .map(|s| s.iter().map(|s| s.id.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["00000000-0000-0000-0000-000000000001"]);
    let again = build_with(&blueprint(), &obs, NOW, &mut || {
        "00000000-0000-0000-0000-000000000001".to_string()
    });
    assert_eq!(plan, again, "same inputs and ids, same plan");
}

#[test]
fn without_read_back_the_plan_assumes_the_newest_valid_secret_like_rotate() {
    // Graph does not promise an order for passwordCredentials; plan and rotate must name the
    // same credential in use (crate::credential::current), not whichever is listed last.
    let mut obs = converged();
    obs.vault = Some(VaultView::Unreadable);
    obs.app.as_mut().unwrap().password_credentials = Some(vec![
        cred(
            "newest",
            "abc",
            "2026-11-01T00:00:00Z",
            "2028-11-01T00:00:00Z",
            "entraform blueprint",
        ),
        cred(
            "older",
            "def",
            "2026-01-01T00:00:00Z",
            "2028-01-01T00:00:00Z",
            "entraform blueprint",
        ),
        // Not started yet: it does not work, so it cannot be the one in use.
        cred(
            "future",
            "ghi",
            "2030-01-01T00:00:00Z",
            "2032-01-01T00:00:00Z",
            "entraform blueprint",
        ),
    ]);
    let plan = build(&blueprint(), &obs, NOW);
    let step8 = plan.steps.iter().find(|s| s.number == 8).unwrap();
    let text = format!("{:?}", step8.status);
    assert!(text.contains("keyId newest"), "{text}");
    assert!(
        !kinds(&plan).contains(&"add_password"),
        "{:?}",
        kinds(&plan)
    );
}
