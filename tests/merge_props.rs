//! Property test of the cloudflared merge (issue 6; the customers.yaml merge has its own in
//! `tests/render_merge.rs`): on generated tunnel configs (rules for other services and hosts,
//! comments, blank lines, both indent styles, with or without blueprint's rules already there)
//! a merge either refuses with a named reason or keeps every line, puts blueprint's two rules
//! before the catch-all so their probe URLs route to them, and merging again changes nothing.

mod common;

use std::path::Path;

use common::blueprint;
use entraform::render::RenderError;
use entraform::render::cloudflared::{Config, match_rule};
use entraform::render::merge::merge_cloudflared_text;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Rule {
    host: &'static str,
    path: Option<String>,
    port: u16,
    comment: bool,
}

#[derive(Debug, Clone)]
struct File {
    /// `ingress:\n  - hostname` (true) or `ingress:\n- hostname` (false).
    indented: bool,
    rules: Vec<Rule>,
    /// blueprint's rules already present: none, the same, or with another port (a conflict).
    existing: Option<u16>,
    catch_all: bool,
    blank_lines: bool,
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(vec![
            "axe.axelabs.ai",
            "realchoice.axelabs.ai",
            "vault.axelabs.ai",
        ]),
        prop::option::of(prop::sample::select(vec![
            "frame", "hive", "index", "blue", "print",
        ])),
        3100u16..3200,
        any::<bool>(),
    )
        .prop_map(|(host, svc, port, comment)| Rule {
            host,
            path: svc.map(|s| format!("^/{s}/mcp(/.*)?$")),
            port,
            comment,
        })
}

fn file() -> impl Strategy<Value = File> {
    (
        any::<bool>(),
        prop::collection::vec(rule(), 0..6),
        prop::option::of(prop::sample::select(vec![3151u16, 3151, 3999])),
        prop::bool::weighted(0.9),
        any::<bool>(),
    )
        .prop_map(|(indented, rules, existing, catch_all, blank_lines)| File {
            indented,
            rules,
            existing,
            catch_all,
            blank_lines,
        })
}

fn render(f: &File) -> String {
    let (item, field) = if f.indented {
        ("  - ", "    ")
    } else {
        ("- ", "  ")
    };
    let mut s = String::from(
        "# the axelabs tunnel\ntunnel: 6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f\ncredentials-file: /etc/cloudflared/x.json\n\ningress:\n",
    );
    let mut push_rule = |host: &str, path: Option<&str>, port: u16, comment: bool| {
        if comment {
            s.push_str(&format!("{}# {host}\n", &item[..item.len() - 2]));
        }
        s.push_str(&format!("{item}hostname: {host}\n"));
        if let Some(p) = path {
            s.push_str(&format!("{field}path: {p}\n"));
        }
        s.push_str(&format!(
            "{field}service: http://host.docker.internal:{port}\n"
        ));
        if f.blank_lines {
            s.push('\n');
        }
    };
    for r in &f.rules {
        push_rule(r.host, r.path.as_deref(), r.port, r.comment);
    }
    if let Some(port) = f.existing {
        push_rule("axe.axelabs.ai", Some("^/blueprint/mcp(/.*)?$"), port, true);
        push_rule(
            "axe.axelabs.ai",
            Some("^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$"),
            port,
            false,
        );
    }
    if f.catch_all {
        s.push_str(&format!("{item}service: http_status:404\n"));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cloudflared_merge_keeps_everything_routes_and_is_idempotent(f in file()) {
        let d = blueprint();
        let text = render(&f);
        let p = Path::new("config.yml");
        let shadowed = f.rules.iter().any(|r| r.host == "axe.axelabs.ai" && r.path.is_none());
        let result = match merge_cloudflared_text(&text, p, &d, false) {
            Err(RenderError::Conflict { .. }) => {
                // Only an existing rule with another port conflicts; --force resolves it.
                prop_assert_eq!(f.existing, Some(3999), "{}", text);
                merge_cloudflared_text(&text, p, &d, true)
            }
            other => other,
        };
        let merged = match result {
            Ok(m) => m,
            Err(RenderError::Cloudflared { message, .. }) => {
                // Refused only for a config without its catch-all, or with a rule for the whole
                // host before blueprint's (it would catch blueprint's URLs first).
                prop_assert!(!f.catch_all || shadowed, "{}\n---\n{}", message, text);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
        };
        // Every line is still there, in order (a forced merge replaces the port lines only).
        let mut after = merged.text.lines();
        for line in text.lines() {
            if f.existing == Some(3999) && line.ends_with(":3999") {
                continue;
            }
            prop_assert!(after.any(|l| l == line), "line lost or moved: {:?}\n{}", line, merged.text);
        }
        // The probe URLs route to blueprint's port.
        let config = Config::parse(&merged.text, "config.yml").unwrap();
        let rules = config.validate().unwrap();
        for url in [
            "https://axe.axelabs.ai/blueprint/mcp",
            "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource",
        ] {
            let i = match_rule(&rules, url).unwrap();
            prop_assert_eq!(&rules[i].service, "http://host.docker.internal:3151", "{}\n{}", url, merged.text);
        }
        // Idempotent.
        let again = merge_cloudflared_text(&merged.text, p, &d, false).unwrap();
        prop_assert_eq!(&again.text, &merged.text);
        prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
        if f.existing == Some(3151) {
            prop_assert_eq!(&merged.text, &text, "already there: nothing to do");
        }
    }
}

/// Found by `bench/fuzz.sh` (merge_customers): a node with an anchor or a tag made yamlpath
/// panic (`unexpected feature kind: anchor`), killing the process; an edit through an alias
/// failed the merge's self-check with "this is a bug". Each is now a named refusal.
#[test]
fn anchors_tags_and_aliases_are_refused_not_a_panic() {
    use entraform::render::merge::merge_customers_text;
    let d = blueprint();
    let p = Path::new("customers.yaml");
    let crash = include_str!("../fuzz/seeds/merge_customers/crash-anchor-root.yaml");
    let crash2 = include_str!("../fuzz/seeds/merge_customers/crash-comment-node.yaml");
    for (text, says) in [
        (crash, "anchor, alias or tag"),
        (crash2, "opens with a comment"),
        (
            "--- &root\nservices:\n  frame:\n    env_file: x\n",
            "`&root`",
        ),
        ("services: !!map\n  frame:\n    env_file: x\n", "`!!map`"),
        (
            "common: &c\n  env_file: x\nservices:\n  blueprint: *c\n",
            "YAML alias",
        ),
    ] {
        for force in [false, true] {
            match merge_customers_text(text, p, &d, Some(common::CLIENT_ID), force) {
                Err(RenderError::MergeShape { message, .. }) => {
                    assert!(message.contains(says), "{text:?}: {message}")
                }
                Err(RenderError::Conflict { .. }) if !force => {}
                other => panic!("{text:?} (force {force}): {other:?}"),
            }
        }
    }
}
