//! Property tests of the drift normalization (issue 6): two apps that differ only in their
//! identity (service name, host, display name, ids) show no drift, and changing one field of
//! one of them shows exactly that field. Service names are drawn from the manifest rule
//! `[a-z][a-z0-9-]{1,30}`, weighted towards names that also occur inside the fixed texts of an
//! app (`api`, `mcp`, `access`, `claude`, `auth`, …), where a careless normalization would
//! rewrite text that is the same for every service. Display names are `<Service> MCP` (the
//! default) or `<Service> Server`; a display name that is itself a phrase of the fixed consent
//! text (`ai connector` inside `claude.ai connector`) is ambiguous by nature and left out.

use entraform::drift::{Identity, diff_apps};
use entraform::graph::wire::Application;
use proptest::prelude::*;
use serde_json::{Value, json};

const GRAPH: &str = "00000003-0000-0000-c000-000000000000";
const USER_READ: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";

#[derive(Debug, Clone)]
struct Side {
    service: String,
    host: String,
    display_name: String,
    object_id: String,
    app_id: String,
}

fn title(service: &str) -> String {
    let mut c = service.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "frame", "hive", "blueprint", "index", "api", "mcp", "access", "claude", "auth",
            "callback", "com", "ai", "axe", "user", "read", "graph", "allows", "connector",
            "signed", "in", "on", "your", "the", "to", "of", "well-known",
        ])
        .prop_map(str::to_string),
        2 => "[a-z][a-z0-9-]{1,30}",
    ]
}

fn side() -> impl Strategy<Value = Side> {
    (
        service(),
        prop::sample::select(vec![
            "axe.axelabs.ai",
            "realchoice.axelabs.ai",
            "mcp.example.com",
        ]),
        any::<bool>(),
        guid(),
        guid(),
    )
        .prop_map(|(service, host, titled, object_id, app_id)| Side {
            display_name: if titled {
                format!("{} MCP", title(&service))
            } else {
                format!("{} Server", title(&service))
            },
            service,
            host: host.to_string(),
            object_id,
            app_id,
        })
}

fn identity(s: &Side) -> Identity {
    Identity {
        service: s.service.clone(),
        host: s.host.clone(),
        display_name: s.display_name.clone(),
        ids: vec![s.object_id.clone(), s.app_id.clone()],
    }
}

/// An app as `apply` makes it for `s`: every service-specific value from the identity, the
/// rest the same for every service.
fn app(s: &Side, scope_id: &str) -> Value {
    let d = &s.display_name;
    json!({
        "id": s.object_id,
        "appId": s.app_id,
        "displayName": d,
        "uniqueName": format!("axe-{}-mcp", s.service),
        "signInAudience": "AzureADMyOrg",
        "identifierUris": [format!("https://{}/{}/mcp", s.host, s.service)],
        "api": {
            "requestedAccessTokenVersion": 2,
            "oauth2PermissionScopes": [{
                "id": scope_id,
                "value": "mcp.access",
                "type": "User",
                "isEnabled": true,
                "adminConsentDisplayName": format!("Access {d}"),
                "adminConsentDescription": format!("Allows the claude.ai connector to call {d} on behalf of the signed-in user."),
                "userConsentDisplayName": format!("Access {d}"),
                "userConsentDescription": format!("Allows the claude.ai connector to call {d} on your behalf."),
            }],
        },
        "web": {
            "redirectUris": [
                "https://claude.ai/api/mcp/auth_callback",
                "https://claude.com/api/mcp/auth_callback",
            ],
            "implicitGrantSettings": {"enableIdTokenIssuance": true, "enableAccessTokenIssuance": false},
        },
        "requiredResourceAccess": [
            {"resourceAppId": GRAPH, "resourceAccess": [{"id": USER_READ, "type": "Scope"}]}
        ],
    })
}

fn parse(v: &Value) -> Application {
    serde_json::from_value(v.clone()).expect("a valid application")
}

/// One change of a field that is the same for every service, and the field drift must name.
fn mutate(v: &mut Value, which: usize) -> &'static str {
    match which {
        0 => {
            v["api"]["requestedAccessTokenVersion"] = json!(1);
            "api.requestedAccessTokenVersion"
        }
        1 => {
            v["web"]["implicitGrantSettings"]["enableIdTokenIssuance"] = json!(false);
            "web.implicitGrantSettings.enableIdTokenIssuance"
        }
        2 => {
            v["signInAudience"] = json!("AzureADMultipleOrgs");
            "signInAudience"
        }
        3 => {
            v["web"]["redirectUris"].as_array_mut().unwrap().pop();
            "web.redirectUris"
        }
        _ => {
            v["requiredResourceAccess"] = json!([]);
            "requiredResourceAccess"
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apps_that_differ_only_in_identity_show_no_drift(
        a in side(), b in side(), sa in guid(), sb in guid()
    ) {
        let (ra, rb) = (parse(&app(&a, &sa)), parse(&app(&b, &sb)));
        let d = diff_apps(&ra, &identity(&a), &rb, &identity(&b));
        prop_assert!(d.is_empty(), "{a:?} vs {b:?}: {d:#?}");
    }

    #[test]
    fn one_changed_field_is_exactly_that_field(
        a in side(), b in side(), sa in guid(), sb in guid(), which in 0usize..5
    ) {
        let mut vb = app(&b, &sb);
        let field = mutate(&mut vb, which);
        let d = diff_apps(&parse(&app(&a, &sa)), &identity(&a), &parse(&vb), &identity(&b));
        let fields: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
        prop_assert_eq!(fields, vec![field], "{:?} vs {:?}: {:#?}", a, b, d);
    }
}

/// The minimal failing inputs the properties found before the fix, pinned.
#[test]
fn services_named_like_fixed_words_show_no_drift() {
    let side = |service: &str, n: u8| Side {
        service: service.into(),
        host: "axe.axelabs.ai".into(),
        display_name: format!("{} MCP", title(service)),
        object_id: format!("{n}0000000-0000-4000-8000-000000000000"),
        app_id: format!("{n}1111111-1111-4111-8111-111111111111"),
    };
    let frame = side("frame", 1);
    // `api` is a path segment of the connector callbacks, `mcp` the last segment of every App
    // ID URI, `allows` the first word of the consent descriptions.
    for name in ["api", "mcp", "allows"] {
        let other = side(name, 2);
        for (a, b) in [(&frame, &other), (&other, &frame)] {
            let d = diff_apps(
                &parse(&app(a, "30000000-0000-4000-8000-000000000000")),
                &identity(a),
                &parse(&app(b, "40000000-0000-4000-8000-000000000000")),
                &identity(b),
            );
            assert!(d.is_empty(), "{} vs {}: {d:#?}", a.service, b.service);
        }
    }
}
