//! Property test of the cloudflared merge (issue 6, premise changed by issue 9 §3; the
//! customers.yaml merge has its own in `render::merge`): on generated tunnel configs
//! (rules for other services and hosts, hostname-wide rules for blueprint's own host, wildcard
//! hosts, regexes that may or may not overlap blueprint's paths, comments, blank lines, both
//! indent styles, with or without blueprint's rules already there, all three or the two of
//! before the health rule) a merge
//! - refuses only a config without its catch-all, a real conflict (blueprint's hostname and
//!   path pointing at another port; `--force` resolves it), or blueprint's existing rules
//!   sitting below a rule that catches their URLs (they were dead before the merge);
//! - keeps every line, in order;
//! - routes blueprint's three probe URLs to blueprint's proxy, and every other URL to the same
//!   rule as before;
//! - and merging again changes nothing.

use crate::support::common;

use std::path::Path;

use common::blueprint;
use entraform::render::RenderError;
use entraform::render::cloudflared::{Config, Rule as CfRule, match_rule, rule_matches, split_url};
use entraform::render::merge::merge_cloudflared_text;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Rule {
    host: &'static str,
    path: Option<&'static str>,
    port: u16,
    comment: bool,
}

/// blueprint's rules already in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// All three, with this port (3999: a conflict).
    All(u16),
    /// The two rules of before the health rule (an upgrade).
    Two,
}

#[derive(Debug, Clone)]
struct File {
    /// `ingress:\n  - hostname` (true) or `ingress:\n- hostname` (false).
    indented: bool,
    rules: Vec<Rule>,
    existing: Option<Existing>,
    /// Where blueprint's existing rules go among the others.
    existing_at: usize,
    catch_all: bool,
    blank_lines: bool,
}

const MCP: &str = "^/blueprint/mcp(/.*)?$";
const META: &str = "^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$";
const HEALTH: &str = "^/blueprint/health$";
const PROBES: [&str; 3] = [
    "https://axe.axelabs.ai/blueprint/mcp",
    "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource",
    "https://axe.axelabs.ai/blueprint/health",
];

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(vec![
            "axe.axelabs.ai",
            "axe.axelabs.ai",
            "realchoice.axelabs.ai",
            "vault.axelabs.ai",
            "*.axelabs.ai",
        ]),
        prop::option::of(prop::sample::select(vec![
            "^/frame/mcp(/.*)?$",
            "^/hive/mcp(/.*)?$",
            "^/index/\\.well-known/oauth-protected-resource(/.*)?$",
            // Overlap blueprint's paths, or cannot be told apart simply.
            "^/blue",
            "/print",
            "^/(frame|hive)/health$",
        ])),
        3100u16..3200,
        any::<bool>(),
    )
        .prop_map(|(host, path, port, comment)| Rule {
            host,
            path,
            port,
            comment,
        })
}

fn file() -> impl Strategy<Value = File> {
    (
        any::<bool>(),
        prop::collection::vec(rule(), 0..6),
        prop::option::of(prop::sample::select(vec![
            Existing::All(3151),
            Existing::All(3999),
            Existing::Two,
        ])),
        0usize..6,
        prop::bool::weighted(0.9),
        any::<bool>(),
    )
        .prop_map(
            |(indented, rules, existing, existing_at, catch_all, blank_lines)| File {
                indented,
                existing_at: existing_at.min(rules.len()),
                rules,
                existing,
                catch_all,
                blank_lines,
            },
        )
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
        s.push_str(&format!("{item}hostname: {}\n", quote(host)));
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
    for (i, r) in f.rules.iter().enumerate() {
        if i == f.existing_at {
            push_existing(f, &mut push_rule);
        }
        push_rule(r.host, r.path, r.port, r.comment);
    }
    if f.existing_at >= f.rules.len() {
        push_existing(f, &mut push_rule);
    }
    if f.catch_all {
        s.push_str(&format!("{item}service: http_status:404\n"));
    }
    s
}

fn quote(host: &str) -> String {
    if host.starts_with('*') {
        format!("'{host}'")
    } else {
        host.to_owned()
    }
}

fn push_existing(f: &File, push_rule: &mut impl FnMut(&str, Option<&str>, u16, bool)) {
    match f.existing {
        None => {}
        Some(Existing::All(port)) => {
            push_rule("axe.axelabs.ai", Some(MCP), port, true);
            push_rule("axe.axelabs.ai", Some(META), port, false);
            push_rule("axe.axelabs.ai", Some(HEALTH), port, false);
        }
        Some(Existing::Two) => {
            push_rule("axe.axelabs.ai", Some(MCP), 3151, true);
            push_rule("axe.axelabs.ai", Some(META), 3151, false);
        }
    }
}

/// URLs of every host and many paths: blueprint's and others'.
fn urls() -> Vec<String> {
    let mut out = Vec::new();
    for host in [
        "axe.axelabs.ai",
        "realchoice.axelabs.ai",
        "vault.axelabs.ai",
        "x.axelabs.ai",
        "example.com",
    ] {
        for path in [
            "/",
            "/frame/mcp",
            "/frame/mcp/x",
            "/hive/mcp",
            "/hive/health",
            "/index/.well-known/oauth-protected-resource",
            "/blue",
            "/bluex",
            "/print",
            "/x/print",
            "/blueprint",
            "/blueprint/",
            "/blueprint/mcp",
            "/blueprint/mcp/x",
            "/blueprint/mcpx",
            "/blueprint/health",
            "/blueprint/healthz",
            "/blueprint/.well-known/oauth-protected-resource",
            "/blueprint/.well-known/oauth-protected-resource/x",
        ] {
            out.push(format!("https://{host}{path}"));
        }
    }
    out
}

/// (hostname, path, service) of the rule a URL goes to.
fn route(rules: &[CfRule], url: &str) -> (String, Option<String>, String) {
    let r = &rules[match_rule(rules, url).unwrap()];
    (
        r.hostname.clone(),
        r.path.as_ref().map(|p| p.as_str().to_owned()),
        r.service.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cloudflared_merge_keeps_everything_routes_and_is_idempotent(f in file()) {
        let d = blueprint();
        let text = render(&f);
        let p = Path::new("config.yml");
        let conflict = f.existing == Some(Existing::All(3999));
        let result = match merge_cloudflared_text(&text, p, &d, false) {
            Err(RenderError::Conflict { .. }) => {
                // Only an existing rule with another port conflicts; --force resolves it.
                prop_assert!(conflict, "{}", text);
                merge_cloudflared_text(&text, p, &d, true)
            }
            other => {
                // A conflicting rule that is also dead is refused as dead (below).
                prop_assert!(
                    !conflict || !f.catch_all || matches!(other, Err(RenderError::Cloudflared { .. })),
                    "a conflict was not refused:\n{}",
                    text
                );
                other
            }
        };
        let before = Config::parse(&text, "config.yml").ok().and_then(|c| c.validate().ok());
        let merged = match result {
            Ok(m) => m,
            Err(RenderError::Cloudflared { message, .. }) => {
                // Refused only for a config without its catch-all, or when blueprint's rules
                // that are already there are dead (a rule above them catches their URLs).
                let dead = f.existing.is_some() && before.as_ref().is_some_and(|rules| {
                    PROBES[..2].iter().any(|url| {
                        route(rules, url).1.as_deref() != Some(if url.ends_with("/mcp") { MCP } else { META })
                    })
                });
                prop_assert!(!f.catch_all || dead, "{}\n---\n{}", message, text);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
        };
        let before = before.expect("a config that merged was valid");
        // Every line is still there, in order (a forced merge replaces the port lines only).
        let mut after = merged.text.lines();
        for line in text.lines() {
            if conflict && line.ends_with(":3999") {
                continue;
            }
            prop_assert!(after.any(|l| l == line), "line lost or moved: {:?}\n{}", line, merged.text);
        }
        let config = Config::parse(&merged.text, "config.yml").unwrap();
        let rules = config.validate().unwrap();
        // The probe URLs route to blueprint's port.
        for url in PROBES {
            prop_assert_eq!(route(&rules, url).2, "http://host.docker.internal:3151", "{}\n{}", url, merged.text);
        }
        // Every URL that none of blueprint's rules matches goes where it went before.
        let ours: Vec<CfRule> = [MCP, META, HEALTH]
            .iter()
            .map(|path| CfRule {
                hostname: "axe.axelabs.ai".into(),
                path: Some(regex::Regex::new(path).unwrap()),
                service: String::new(),
                line: None,
            })
            .collect();
        for url in urls() {
            let (host, path) = split_url(&url).unwrap();
            if ours.iter().any(|r| rule_matches(r, &host, &path)) {
                prop_assert_eq!(route(&rules, &url).2, "http://host.docker.internal:3151", "{}\n{}", url, merged.text);
            } else {
                prop_assert_eq!(route(&before, &url), route(&rules, &url), "{} changed hands\n{}", url, merged.text);
            }
        }
        // Idempotent.
        let again = merge_cloudflared_text(&merged.text, p, &d, false).unwrap();
        prop_assert_eq!(&again.text, &merged.text);
        prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
        if f.existing == Some(Existing::All(3151)) {
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
    let crash = include_str!("../../../fuzz/seeds/merge_customers/crash-anchor-root.yaml");
    let crash2 = include_str!("../../../fuzz/seeds/merge_customers/crash-comment-node.yaml");
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

/// The fuzz target's property on its seeds, on stable Rust: a merge either refuses with a
/// named reason or gives a text that merges again to itself with nothing to do.
#[test]
fn the_fuzz_seeds_merge_idempotently() {
    let d = blueprint();
    let p = Path::new("config.yml");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/merge_cloudflared");
    let mut merged_some = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for force in [false, true] {
            let Ok(merged) = merge_cloudflared_text(&text, p, &d, force) else {
                continue;
            };
            merged_some += 1;
            let again = merge_cloudflared_text(&merged.text, p, &d, false)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(again.text, merged.text, "{}", path.display());
            assert!(
                again.actions.is_empty(),
                "{}: {:?}",
                path.display(),
                again.actions
            );
            let config = Config::parse(&merged.text, "c").unwrap();
            let rules = config.validate().unwrap();
            for url in PROBES {
                assert_eq!(
                    route(&rules, url).2,
                    "http://host.docker.internal:3151",
                    "{}",
                    path.display()
                );
            }
        }
    }
    assert!(merged_some >= 8, "{merged_some}");
}
