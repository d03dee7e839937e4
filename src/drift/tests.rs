use super::*;
use crate::graph::wire::*;

fn app(service: &str, display: &str, version: Option<i32>) -> Application {
    Application {
        id: Some(format!("obj-{service}")),
        app_id: Some(format!("app-{service}")),
        display_name: Some(display.into()),
        sign_in_audience: Some("AzureADMyOrg".into()),
        identifier_uris: Some(vec![format!("https://axe.axelabs.ai/{service}/mcp")]),
        api: Some(ApiApplication {
            requested_access_token_version: version,
            oauth2_permission_scopes: Some(vec![PermissionScope {
                id: format!("scope-{service}"),
                value: Some("mcp.access".into()),
                kind: Some("User".into()),
                is_enabled: true,
                admin_consent_display_name: Some(format!("Access {display}")),
                user_consent_display_name: Some(format!("Access {display}")),
                ..Default::default()
            }]),
        }),
        web: Some(WebApplication {
            redirect_uris: Some(vec![
                "https://claude.ai/api/mcp/auth_callback".into(),
                "https://claude.com/api/mcp/auth_callback".into(),
            ]),
            implicit_grant_settings: Some(ImplicitGrantSettings {
                enable_id_token_issuance: Some(true),
                enable_access_token_issuance: None,
            }),
        }),
        password_credentials: Some(vec![PasswordCredential {
            key_id: Some("k".into()),
            end_date_time: Some("2099-01-01T00:00:00Z".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn id(service: &str, display: &str) -> Identity {
    Identity {
        service: service.into(),
        host: "axe.axelabs.ai".into(),
        display_name: display.into(),
        ids: vec![format!("obj-{service}"), format!("app-{service}")],
    }
}

fn snap(a: Application, sp: bool, grants: &[(&str, &str)]) -> Snapshot {
    Snapshot {
        application: a,
        related: Some(Related {
            service_principal: sp.then(|| SpSummary {
                id: "sp".into(),
                app_id: "app".into(),
            }),
            grants: grants
                .iter()
                .map(|(r, s)| GrantSummary {
                    resource: r.to_string(),
                    consent_type: "AllPrincipals".into(),
                    scope: s.to_string(),
                })
                .collect(),
        }),
    }
}

const GRANTS: &[(&str, &str)] = &[
    ("00000003-0000-0000-c000-000000000000", "User.Read"),
    ("self", "mcp.access"),
];

fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-06-01 00:00 UTC)
}

#[test]
fn identical_but_for_identity_is_no_drift() {
    let frame = app("frame", "Frame MCP", Some(2));
    let bp = app("blueprint", "Blueprint MCP", Some(2));
    assert!(
        diff_apps(
            &frame,
            &id("frame", "Frame MCP"),
            &bp,
            &id("blueprint", "Blueprint MCP")
        )
        .is_empty()
    );
    let rows = compare(
        &snap(frame, true, GRANTS),
        &id("frame", "Frame MCP"),
        &snap(bp, true, GRANTS),
        &id("blueprint", "Blueprint MCP"),
        now(),
    );
    assert!(
        rows.iter().all(|r| r.status != DriftStatus::Differs),
        "{rows:#?}"
    );
    let fields: Vec<&str> = rows.iter().map(|r| r.field.as_str()).collect();
    for f in [
        "signInAudience",
        "identifierUris",
        "api.requestedAccessTokenVersion",
        "api.oauth2PermissionScopes[mcp.access].type",
        "api.oauth2PermissionScopes[mcp.access].isEnabled",
        "api.oauth2PermissionScopes[mcp.access].adminConsentDisplayName",
        "web.redirectUris",
        "requiredResourceAccess",
        "web.implicitGrantSettings.enableIdTokenIssuance",
        "servicePrincipal",
        "oauth2PermissionGrants[Microsoft Graph]",
        "oauth2PermissionGrants[self]",
        "applicationPermissions (Role)",
        "passwordCredentials (valid secret)",
        "passwordCredentials (latest expiry)",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let expiry = rows.iter().find(|r| r.status == DriftStatus::Info).unwrap();
    assert!(expiry.this_app.starts_with("2099-01-01 ("), "{expiry:?}");
}

#[test]
fn token_version_drift_is_named() {
    let frame = app("frame", "Frame MCP", Some(2));
    let bp = app("blueprint", "Blueprint MCP", None);
    let d = diff_apps(
        &frame,
        &id("frame", "Frame MCP"),
        &bp,
        &id("blueprint", "Blueprint MCP"),
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field, "api.requestedAccessTokenVersion");
    // old = this app, new = the reference
    assert_eq!((d[0].old.as_str(), d[0].new.as_str()), ("1", "2"));
}

#[test]
fn consent_text_that_names_another_service_is_drift() {
    let frame = app("frame", "Frame MCP", Some(2));
    let mut bp = app("blueprint", "Blueprint MCP", Some(2));
    // copied from frame without renaming: the classic hand-made mistake
    bp.api
        .as_mut()
        .unwrap()
        .oauth2_permission_scopes
        .as_mut()
        .unwrap()[0]
        .admin_consent_display_name = Some("Access Frame MCP".into());
    let d = diff_apps(
        &frame,
        &id("frame", "Frame MCP"),
        &bp,
        &id("blueprint", "Blueprint MCP"),
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].field.ends_with("adminConsentDisplayName"));
}

#[test]
fn normalization_is_word_and_segment_aware() {
    let claude = Identity {
        service: "claude".into(),
        host: "axe.axelabs.ai".into(),
        display_name: "Claude MCP".into(),
        ids: vec!["1234".into()],
    };
    // the connector callbacks are the same for every service
    assert_eq!(
        claude.normalize_uri("https://claude.ai/api/mcp/auth_callback"),
        "https://claude.ai/api/mcp/auth_callback"
    );
    assert_eq!(
        claude.normalize_uri("https://axe.axelabs.ai/claude/mcp"),
        "https://{host}/{service}/mcp"
    );
    assert_eq!(claude.normalize_uri("api://1234"), "api://{id}");
    let auth = Identity {
        service: "auth".into(),
        ..claude.clone()
    };
    assert_eq!(
        auth.normalize("auth_callback for auth"),
        "auth_callback for {service}"
    );
    // placeholders are not searched again, and longer values win
    let host = Identity {
        service: "host".into(),
        ..claude.clone()
    };
    assert_eq!(
        host.normalize("Access Claude MCP on host"),
        "Access {display_name} on {service}"
    );
}

#[test]
fn missing_sp_grants_app_permissions_and_secret_are_rows() {
    let frame = app("frame", "Frame MCP", Some(2));
    let mut bp = app("blueprint", "Blueprint MCP", Some(2));
    bp.required_resource_access = Some(vec![RequiredResourceAccess {
        resource_app_id: MS_GRAPH_APP_ID.into(),
        resource_access: vec![ResourceAccess {
            id: "b633e1c5-b582-4048-a93e-9f11b44c7e96".into(),
            kind: "Role".into(),
        }],
    }]);
    bp.password_credentials = Some(vec![PasswordCredential {
        end_date_time: Some("2020-01-01T00:00:00Z".into()),
        ..Default::default()
    }]);
    let rows = compare(
        &snap(frame, true, GRANTS),
        &id("frame", "Frame MCP"),
        &snap(bp, false, &[]),
        &id("blueprint", "Blueprint MCP"),
        now(),
    );
    let differs: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == DriftStatus::Differs)
        .map(|r| r.field.as_str())
        .collect();
    assert_eq!(
        differs,
        [
            "requiredResourceAccess",
            "servicePrincipal",
            "oauth2PermissionGrants[Microsoft Graph]",
            "oauth2PermissionGrants[self]",
            "applicationPermissions (Role)",
            "passwordCredentials (valid secret)",
        ]
    );
    let perms = rows
        .iter()
        .find(|r| r.field == "applicationPermissions (Role)")
        .unwrap();
    assert!(perms.this_app.starts_with("Mail.Send"), "{perms:?}");
}

#[test]
fn report_text_names_each_differing_field() {
    let frame = app("frame", "Frame MCP", Some(2));
    let bp = app("blueprint", "Blueprint MCP", None);
    let rows = compare(
        &snap(frame, true, GRANTS),
        &id("frame", "Frame MCP"),
        &snap(bp, true, GRANTS),
        &id("blueprint", "Blueprint MCP"),
        now(),
    );
    let report = DriftReport::new(
        "blueprint",
        Some("app-blueprint".into()),
        ReferenceInfo {
            name: "frame".into(),
            source: "manifest",
            app_id: Some("app-frame".into()),
        },
        rows,
    );
    assert!(!report.ok);
    assert_eq!(report.differences, 1);
    insta::assert_snapshot!(report.render_text());
}

#[test]
fn reference_spec_parsing() {
    let dir = std::path::Path::new("manifests");
    assert_eq!(
        ReferenceSpec::parse("frame", dir).unwrap(),
        ReferenceSpec::Manifest(dir.join("frame.yaml"))
    );
    assert_eq!(
        ReferenceSpec::parse("6D2F7A30-51C4-4B8E-9A3E-8F6B1C2D4E51", dir).unwrap(),
        ReferenceSpec::AppId("6d2f7a30-51c4-4b8e-9a3e-8f6b1c2d4e51".into())
    );
    assert_eq!(
        ReferenceSpec::parse("refs/frame.json", dir).unwrap(),
        ReferenceSpec::File("refs/frame.json".into())
    );
    assert_eq!(
        ReferenceSpec::parse("other/frame.yaml", dir).unwrap(),
        ReferenceSpec::Manifest("other/frame.yaml".into())
    );
    let err = ReferenceSpec::parse("Not A Name", dir).unwrap_err();
    assert_eq!(crate::error::Error::from(err).exit_code(), 2);
}

#[test]
fn reference_file_round_trips_without_secret_material() {
    let mut frame = app("frame", "Frame MCP", Some(2));
    frame.password_credentials = Some(vec![PasswordCredential {
        key_id: Some("k1".into()),
        display_name: Some("x".into()),
        hint: Some("abc".into()),
        start_date_time: Some("2026-01-01T00:00:00Z".into()),
        end_date_time: Some("2099-01-01T00:00:00Z".into()),
    }]);
    let s = snap(frame, true, GRANTS);
    let file = ReferenceFile::from_snapshot(&s, &id("frame", "Frame MCP"));
    let json = file.to_json();
    assert!(
        !json.contains("hint") && !json.contains("secretText"),
        "{json}"
    );
    let back: ReferenceFile = serde_json::from_str(&json).unwrap();
    let (snapshot, identity) = back.to_snapshot().unwrap();
    assert_eq!(identity.service, "frame");
    assert!(identity.ids.contains(&"app-frame".to_string()));
    assert_eq!(snapshot.related, s.related);
    assert_eq!(snapshot.application.app_id.as_deref(), Some("app-frame"));
    let creds = snapshot.application.password_credentials.unwrap();
    assert_eq!(creds[0].hint, None);
    assert_eq!(creds[0].key_id.as_deref(), Some("k1"));
}

#[test]
fn identity_is_inferred_from_the_app_id_uri() {
    let frame = app("frame", "Frame MCP", Some(2));
    let i = Identity::infer(&frame);
    assert_eq!(
        (i.service.as_str(), i.host.as_str(), i.display_name.as_str()),
        ("frame", "axe.axelabs.ai", "Frame MCP")
    );
}

#[test]
fn table_cells_wrap_at_spaces_and_cut_long_words() {
    assert_eq!(wrap("a b c", 3), ["a b", "c"]);
    assert_eq!(wrap("", 3), [""]);
    assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
    let t = table(&["F", "R", "S"], &[["f", "x y", "same"]]);
    assert_eq!(t, "F  R    S\nf  x y  same\n");
}
