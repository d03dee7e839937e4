use proptest::prelude::*;

use super::probes::{excerpt, parse_challenges};
use super::*;

fn blueprint() -> Desired {
    crate::plan::tests::blueprint()
}

/// A report as a mixed run would produce it, halves appended out of order.
fn mixed_report() -> VerifyReport {
    let mut checks = vec![
        Check::pass(
            "#5",
            probes::TITLE_FAKE_BEARER,
            "POST https://axe.axelabs.ai/blueprint/mcp → 401, reason: invalid token",
        ),
        Check::fail(
            "#3",
            probes::TITLE_METADATA,
            "GET https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource → 401 Unauthorized",
            "the metadata is behind auth: add `/blueprint/.well-known/oauth-protected-resource` to `_PUBLIC_PATHS`",
        ),
        Check::warn(
            "#3b",
            probes::TITLE_METADATA_DEFAULT,
            "GET https://axe.axelabs.ai/.well-known/oauth-protected-resource/blueprint/mcp → 404 Not Found",
            "harmless while resource_metadata points at a routed path\nexpected 200",
        ),
    ];
    checks.extend(manual_checks(&blueprint()));
    checks.push(Check::pass("#2", probes::TITLE_HEALTH, "GET … → 200 OK"));
    VerifyReport::new("blueprint", checks)
}

#[test]
fn checks_are_in_checklist_order() {
    let report = mixed_report();
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "#1", "#2", "#3", "#3b", "#5", "#6", "#7", "#8", "#9", "#10", "#14", "#15", "#16"
        ]
    );
    // Ids without a number go last, in the order given.
    let report = VerifyReport::new(
        "x",
        vec![
            Check::skip("consent", "t", "d"),
            Check::skip("#12", "t", "d"),
            Check::skip("#11", "t", "d"),
        ],
    );
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["#11", "#12", "consent"]);
}

#[test]
fn exit_status_is_differences_only_on_a_failure() {
    let report = mixed_report();
    assert_eq!(report.exit_status(), ExitStatus::Differences);
    assert!(!report.ok());
    let without_fail: Vec<Check> = report
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Fail)
        .cloned()
        .collect();
    let report = VerifyReport::new("blueprint", without_fail);
    assert_eq!(report.exit_status(), ExitStatus::Success);
    assert_eq!(
        report.summary(),
        Summary {
            pass: 2,
            fail: 0,
            warn: 1,
            skip: 0,
            manual: 9
        }
    );
}

#[test]
fn text_report() {
    insta::assert_snapshot!(mixed_report().render_text());
}

#[test]
fn json_report_shape() {
    let value = serde_json::to_value(mixed_report()).unwrap();
    assert_eq!(value["service"], "blueprint");
    assert_eq!(value["ok"], false);
    assert_eq!(
        value["summary"],
        serde_json::json!({"pass": 2, "fail": 1, "warn": 1, "skip": 0, "manual": 9})
    );
    let first = &value["checks"][0];
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "title", "status", "detail", "fix"]
    );
    assert_eq!(first["status"], "manual");
    assert_eq!(value["checks"][1]["status"], "pass");
    assert_eq!(value["checks"][1]["fix"], serde_json::Value::Null);
    assert_eq!(value["checks"][2]["status"], "fail");
    assert_eq!(value["checks"][3]["status"], "warn");
}

#[test]
fn manual_checks_carry_the_real_names() {
    let checks = manual_checks(&blueprint());
    let detail = |id: &str| {
        checks
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.detail.clone())
            .unwrap()
    };
    assert_eq!(detail("#1"), "docker ps | grep blueprint-mcp");
    assert_eq!(
        detail("#6"),
        "docker logs blueprint-mcp 2>&1 | grep 'StreamableHTTP session manager started'"
    );
    assert_eq!(
        detail("#7"),
        "docker logs blueprint-mcp 2>&1 | grep 'discovery/v2.0/keys'"
    );
    assert_eq!(
        detail("#8"),
        "docker exec axelabs-tunnel ping -c1 blueprint-mcp"
    );
    assert_eq!(
        detail("#9"),
        "docker logs axe-blueprint-mcp-proxy 2>&1 | grep blueprint-mcp:3000"
    );
    assert_eq!(detail("#10"), "cloudflared tunnel info axelabs");
    assert_eq!(
        detail("#15"),
        "docker exec blueprint-mcp printenv DATABASE_URL"
    );
    assert_eq!(
        detail("#16"),
        "docker logs blueprint-mcp 2>&1 | grep 'startup probe'"
    );
    assert!(detail("#14").contains("URL https://axe.axelabs.ai/blueprint/mcp"));
    assert!(detail("#14").contains("blueprint/axe/mcp-client-secret"));
    assert!(
        checks
            .iter()
            .all(|c| c.status == CheckStatus::Manual && c.fix.is_some())
    );
    let fix10 = checks
        .iter()
        .find(|c| c.id == "#10")
        .unwrap()
        .fix
        .clone()
        .unwrap();
    assert!(fix10.contains(
        "cloudflared tunnel --config ~/.axe/tunnels/axelabs/config.yml ingress rule https://axe.axelabs.ai/blueprint/mcp"
    ));
    assert!(fix10.contains("http://host.docker.internal:3151"));
}

#[test]
fn manual_checks_follow_the_manifest() {
    let mut d = blueprint();
    d.service = "my-svc".into();
    d.deploy.container_name = "my-svc-mcp".into();
    d.deploy.proxy_name = "axe-my-svc-mcp-proxy".into();
    d.deploy.tunnel_config = "/srv/tunnels/realchoice/config.yml".into();
    d.deploy.uses_postgres = false;
    let checks = manual_checks(&d);
    let find = |id: &str| checks.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        find("#8").detail,
        "docker exec realchoice-tunnel ping -c1 my-svc-mcp"
    );
    assert_eq!(find("#10").detail, "cloudflared tunnel info realchoice");
    assert_eq!(find("#15").status, CheckStatus::Skip);
    assert_eq!(find("#16").status, CheckStatus::Skip);

    // No directory to name the tunnel after: a placeholder the operator is told to replace.
    d.deploy.tunnel_config = "config.yml".into();
    let checks = manual_checks(&d);
    let c10 = checks.iter().find(|c| c.id == "#10").unwrap();
    assert_eq!(c10.detail, "cloudflared tunnel info TUNNEL");
    assert!(c10.fix.as_ref().unwrap().contains("replace TUNNEL"));
}

#[test]
fn shell_words_are_quoted_when_needed() {
    assert_eq!(sh("blueprint-mcp"), "blueprint-mcp");
    assert_eq!(sh("a b"), "'a b'");
    assert_eq!(sh("it's"), r"'it'\''s'");
    assert_eq!(sh(""), "''");
}

#[test]
fn unprobed_items_name_the_flag() {
    let checks = unprobed_checks(&blueprint());
    assert_eq!(checks.len(), 4);
    for c in checks {
        assert_eq!(c.status, CheckStatus::Skip);
        assert!(c.detail.contains("--url https://axe.axelabs.ai"));
    }
}

#[test]
fn challenges_parse() {
    let c = parse_challenges(
        r#"Bearer error="invalid_token", error_description="The token \"x\" expired", resource_metadata="https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource""#,
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].scheme, "Bearer");
    assert_eq!(c[0].param("ERROR"), Some("invalid_token"));
    assert_eq!(
        c[0].param("error_description"),
        Some(r#"The token "x" expired"#)
    );
    assert_eq!(
        c[0].param("resource_metadata"),
        Some("https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource")
    );

    let c = parse_challenges(r#"Basic realm="x, y", bearer resource_metadata=https://h/m"#);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].param("realm"), Some("x, y"));
    assert_eq!(c[1].scheme, "bearer");
    // Not a token as RFC 9110 wants, but sent by real servers: read to the next comma or space.
    assert_eq!(c[1].param("resource_metadata"), Some("https://h/m"));

    assert!(parse_challenges("").is_empty());
    assert_eq!(parse_challenges("Bearer").len(), 1);
    assert!(
        parse_challenges("Bearer")
            .first()
            .unwrap()
            .params
            .is_empty()
    );
}

#[test]
fn excerpts_are_one_line_and_short() {
    assert_eq!(excerpt("  a\n\tb  \r\n c "), "a b c");
    let long = "é".repeat(500);
    let cut = excerpt(&long);
    assert_eq!(cut.chars().count(), 200);
    assert!(cut.ends_with('…'));
    assert_eq!(excerpt(&"x".repeat(200)).chars().count(), 200);
}

proptest! {
    #[test]
    fn challenge_parser_never_panics(value in "\\PC{0,80}") {
        let _ = parse_challenges(&value);
    }

    #[test]
    fn quoted_resource_metadata_round_trips(url in "[ -~]{0,60}") {
        let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
        let header = format!("Bearer error=\"invalid_token\", resource_metadata=\"{quoted}\"");
        let challenges = parse_challenges(&header);
        prop_assert_eq!(challenges.len(), 1);
        prop_assert_eq!(challenges[0].param("resource_metadata"), Some(url.as_str()));
    }

    #[test]
    fn excerpt_is_bounded(text in "\\PC{0,400}") {
        let cut = excerpt(&text);
        prop_assert!(cut.chars().count() <= 200);
        prop_assert!(!cut.contains('\n'));
    }
}

#[test]
fn blue_green_asks_for_both_colours_healthy() {
    let mut d = blueprint();
    d.deploy.blue_green = Some(crate::desired::BlueGreenSpec {
        active: "green".into(),
        blue_port: 3152,
        green_port: 3153,
    });
    let checks = manual_checks(&d);
    let c1 = checks.iter().find(|c| c.id == "#1").unwrap();
    let expect = c1.fix.as_deref().unwrap();
    assert!(
        expect.contains("blueprint-mcp-blue` and `blueprint-mcp-green` are listed"),
        "{expect}"
    );
    assert!(
        expect.contains("{{json .State.Health}}' blueprint-mcp-green"),
        "{expect}"
    );
}
