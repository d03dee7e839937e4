//! `--merge-customers` and `--merge-cloudflared` on realistic hand-kept files: comments, order
//! and other entries kept, idempotent, conflicts refused unless forced, a `.bak`, and the
//! cloudflared golden behaviour.

use crate::support::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{CLIENT_ID, blueprint, fixture, read, service};
use entraform::render::cloudflared::{Config, match_rule};
use entraform::render::merge::{
    merge_cloudflared, merge_cloudflared_text, merge_customers, merge_customers_text,
};
use entraform::render::{PLACEHOLDER_CLIENT_ID, RenderError};
use serde_yaml::Value;

/// A copy of a fixture in a temp dir.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::copy(fixture(name), &path).unwrap();
    (dir, path)
}

fn bak(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.bak", path.display()))
}

/// Every line of `before` is still in `after`, in the same order.
fn assert_lines_kept(before: &str, after: &str) {
    let mut after_lines = after.lines();
    for line in before.lines() {
        assert!(
            after_lines.any(|l| l == line),
            "line lost or moved: {line:?}\n--- merged ---\n{after}"
        );
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

// ---------------------------------------------------------------------------------------------
// customers.yaml
// ---------------------------------------------------------------------------------------------

#[test]
fn customers_merge_keeps_everything_and_is_idempotent() {
    let (_dir, path) = copy("customers.yaml");
    let original = read(&path);
    let report = merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap();
    assert!(report.changed);
    assert_eq!(report.backup.as_deref(), Some(bak(&path).as_path()));
    assert_eq!(
        read(&bak(&path)),
        original,
        ".bak holds the previous content"
    );
    assert_eq!(
        report.actions,
        [
            "added azure_apps.axe.blueprint_mcp",
            "added AZURE_BLUEPRINT_MCP_CLIENT_SECRET to services.blueprint.secrets"
        ]
    );
    let merged = read(&path);
    assert_lines_kept(&original, &merged);
    insta::assert_snapshot!("customers.merged.yaml", merged);

    // Semantics: the new entries are there and nothing else changed.
    let mut v = yaml(&merged);
    let app = v["azure_apps"]["axe"]
        .as_mapping_mut()
        .unwrap()
        .remove("blueprint_mcp")
        .expect("azure_apps.axe.blueprint_mcp");
    assert_eq!(
        app,
        yaml(
            r#"{client_id: "482598f7-540c-462c-9dfd-b957651eb804",
                application_id_uri: "https://axe.axelabs.ai/blueprint/mcp",
                scopes: ["https://axe.axelabs.ai/blueprint/mcp/mcp.access"],
                client_secret_env: AZURE_BLUEPRINT_MCP_CLIENT_SECRET}"#
        )
    );
    let secrets = v["services"]["blueprint"]["secrets"]
        .as_sequence_mut()
        .unwrap();
    let ours = secrets.pop().unwrap();
    assert_eq!(
        ours,
        yaml(
            r#"{env: AZURE_BLUEPRINT_MCP_CLIENT_SECRET, vault: blueprint/axe/mcp-client-secret, rotation_external: azure}"#
        )
    );
    assert_eq!(v, yaml(&original), "other entries changed");

    // Second run: nothing to do, nothing written.
    let bak_before = fs::metadata(bak(&path)).unwrap().modified().unwrap();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let again = merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap();
    assert!(!again.changed, "{again:?}");
    assert!(again.actions.is_empty());
    assert_eq!(read(&path), merged);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(
        fs::metadata(bak(&path)).unwrap().modified().unwrap(),
        bak_before
    );
}

#[test]
fn customers_merge_with_unknown_client_id() {
    // No entry yet: a live customers.yaml never gets a placeholder.
    let (_dir, path) = copy("customers.yaml");
    let original = read(&path);
    let err = merge_customers(&path, &blueprint(), None, false).unwrap_err();
    assert!(matches!(err, RenderError::ClientIdUnknown { .. }), "{err}");
    assert!(err.hint().unwrap().contains("entraform apply"));
    assert_eq!(read(&path), original);
    assert!(!bak(&path).exists());

    // An entry with a real id: the id is kept, nothing changes.
    merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap();
    let merged = read(&path);
    let report = merge_customers(&path, &blueprint(), None, false).unwrap();
    assert!(!report.changed);
    assert_eq!(read(&path), merged);
}

#[test]
fn customers_placeholder_is_filled_in_without_force() {
    let text = read(&fixture("customers.yaml")).replace(
        "    # index_mcp:",
        &format!(
            "    blueprint_mcp:\n      client_id: \"{PLACEHOLDER_CLIENT_ID}\"\n      application_id_uri: \"https://axe.axelabs.ai/blueprint/mcp\"\n    # index_mcp:"
        ),
    );
    let merged = merge_customers_text(
        &text,
        Path::new("c.yaml"),
        &blueprint(),
        Some(CLIENT_ID),
        false,
    )
    .unwrap();
    let v = yaml(&merged.text);
    let app = &v["azure_apps"]["axe"]["blueprint_mcp"];
    assert_eq!(app["client_id"], CLIENT_ID);
    assert_eq!(
        app["scopes"][0],
        "https://axe.axelabs.ai/blueprint/mcp/mcp.access"
    );
    assert_eq!(
        app["client_secret_env"],
        "AZURE_BLUEPRINT_MCP_CLIENT_SECRET"
    );
    assert!(
        merged
            .actions
            .iter()
            .any(|a| a.contains("filled in azure_apps.axe.blueprint_mcp.client_id")),
        "{:?}",
        merged.actions
    );
    assert_lines_kept(
        &text.replace(PLACEHOLDER_CLIENT_ID, CLIENT_ID),
        &merged.text,
    );
    // Still the placeholder when the id is unknown: a warning, no change.
    let kept = merge_customers_text(&text, Path::new("c.yaml"), &blueprint(), None, false).unwrap();
    assert!(kept.warnings.iter().any(|w| w.contains("placeholder")));
}

#[test]
fn customers_conflicts_are_refused_unless_forced() {
    let (_dir, path) = copy("customers.yaml");
    merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap();
    // Someone points the entry at another app and another vault path.
    let edited = read(&path)
        .replace(CLIENT_ID, "11111111-2222-3333-4444-555555555555")
        .replace(
            "vault: \"blueprint/axe/mcp-client-secret\"",
            "vault: \"blueprint/old/mcp-client-secret\"",
        );
    fs::write(&path, &edited).unwrap();
    fs::remove_file(bak(&path)).unwrap();

    let err = merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap_err();
    let RenderError::Conflict { conflicts, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(conflicts.len(), 2, "{err}");
    let line_of = |needle: &str| edited.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(conflicts[0].what, "azure_apps.axe.blueprint_mcp.client_id");
    assert_eq!(conflicts[0].line, line_of("11111111-2222"));
    assert_eq!(conflicts[1].what, "services.blueprint.secrets.2.vault");
    assert_eq!(conflicts[1].line, line_of("blueprint/old/"));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("line {}", line_of("11111111-2222"))),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("--force"));
    assert_eq!(read(&path), edited, "a refused merge writes nothing");
    assert!(!bak(&path).exists());

    let report = merge_customers(&path, &blueprint(), Some(CLIENT_ID), true).unwrap();
    assert!(report.changed);
    assert_eq!(read(&bak(&path)), edited);
    let v = yaml(&read(&path));
    assert_eq!(
        v["azure_apps"]["axe"]["blueprint_mcp"]["client_id"],
        CLIENT_ID
    );
    assert_eq!(
        v["services"]["blueprint"]["secrets"][2]["vault"],
        "blueprint/axe/mcp-client-secret"
    );
    assert_lines_kept(
        &edited
            .replace("11111111-2222-3333-4444-555555555555", CLIENT_ID)
            .replace("blueprint/old/", "blueprint/axe/"),
        &read(&path),
    );
    assert!(
        !merge_customers(&path, &blueprint(), Some(CLIENT_ID), false)
            .unwrap()
            .changed
    );
}

#[test]
fn customers_merge_into_sparse_files() {
    let d = blueprint();
    let p = Path::new("customers.yaml");
    for (name, text) in [
        ("empty", ""),
        ("only a comment", "# customers\n"),
        ("no newline at the end", "axe:\n  sso: {tenant_id: x}"),
        (
            "empty azure_apps",
            "azure_apps:\nservices:\n  frame:\n    env_file: x\n",
        ),
        (
            "null azure_apps",
            "azure_apps: ~   # none yet\nservices: {}\n",
        ),
        (
            "empty app entry",
            "azure_apps:\n  axe:\n    blueprint_mcp:\nservices:\n  blueprint:\n    secrets:\n",
        ),
        (
            "4-space indent",
            "azure_apps:\n    axe:\n        frame_mcp:\n            client_id: \"x\"\n",
        ),
    ] {
        let merged = match merge_customers_text(text, p, &d, Some(CLIENT_ID), false) {
            Ok(m) => m,
            Err(RenderError::MergeShape { message, .. }) if name == "null azure_apps" => {
                // `services: {}` is a flow mapping: refused with a clear message.
                assert!(message.contains("flow mapping"), "{message}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let v = yaml(&merged.text);
        assert_eq!(
            v["azure_apps"]["axe"]["blueprint_mcp"]["client_id"], CLIENT_ID,
            "{name}:\n{}",
            merged.text
        );
        let secrets = v["services"]["blueprint"]["secrets"].as_sequence().unwrap();
        assert_eq!(secrets.len(), 1, "{name}:\n{}", merged.text);
        assert_lines_kept(text, &merged.text);
        let again = merge_customers_text(&merged.text, p, &d, Some(CLIENT_ID), false).unwrap();
        assert_eq!(again.text, merged.text, "{name}: not idempotent");
        if name == "4-space indent" {
            assert!(
                merged
                    .text
                    .contains("\n        blueprint_mcp:\n            client_id:"),
                "{}",
                merged.text
            );
        }
    }
}

#[test]
fn customers_bad_input_is_named() {
    let p = Path::new("customers.yaml");
    let d = blueprint();
    let err =
        merge_customers_text("azure_apps:\n  axe: [\n", p, &d, Some(CLIENT_ID), false).unwrap_err();
    assert!(matches!(err, RenderError::MergeParse { .. }), "{err}");
    assert!(err.to_string().starts_with("customers.yaml:"), "{err}");

    let err =
        merge_customers_text("azure_apps: {axe: {}}\n", p, &d, Some(CLIENT_ID), false).unwrap_err();
    assert!(
        err.to_string().contains("flow mapping") && err.to_string().contains("customers.yaml:1"),
        "{err}"
    );

    let err = merge_customers_text("- a\n- b\n", p, &d, Some(CLIENT_ID), false).unwrap_err();
    assert!(err.to_string().contains("must be a mapping"), "{err}");

    let err =
        merge_customers_text("azure_apps:\n  axe: 3\n", p, &d, Some(CLIENT_ID), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("`azure_apps.axe` must be a mapping"),
        "{err}"
    );

    let err = merge_customers_text("a: 1\na: 2\n", p, &d, Some(CLIENT_ID), false).unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");

    let err = merge_customers_text("a: 1\n", p, &d, Some("not-a-guid"), false).unwrap_err();
    assert!(matches!(err, RenderError::BadClientId { .. }), "{err}");
}

#[test]
fn customers_merge_keeps_crlf_and_permissions_and_follows_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-customers.yaml");
    let crlf = read(&fixture("customers.yaml")).replace('\n', "\r\n");
    fs::write(&real, &crlf).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("customers.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        merge_customers(&link, &blueprint(), Some(CLIENT_ID), false).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&bak(&real)), crlf);
    }
    #[cfg(not(unix))]
    merge_customers(&real, &blueprint(), Some(CLIENT_ID), false).unwrap();
    let merged = read(&real);
    assert!(merged.contains("blueprint_mcp:\r\n"));
    assert!(
        !merged.replace("\r\n", "").contains('\n'),
        "mixed line endings"
    );
}

#[test]
fn a_second_service_merges_next_to_the_first() {
    let (_dir, path) = copy("customers.yaml");
    merge_customers(&path, &blueprint(), Some(CLIENT_ID), false).unwrap();
    let index = service("index", 3156, Some("9f8e7d6c-5b4a-4392-8170-6a5b4c3d2e1f"));
    merge_customers(&path, &index, index.app_id.as_deref(), false).unwrap();
    let v = yaml(&read(&path));
    assert_eq!(
        v["azure_apps"]["axe"]["index_mcp"]["client_secret_env"],
        "AZURE_INDEX_MCP_CLIENT_SECRET"
    );
    assert_eq!(
        v["services"]["index"]["secrets"][0]["vault"],
        "index/axe/mcp-client-secret"
    );
    assert_eq!(
        v["azure_apps"]["axe"]["blueprint_mcp"]["client_id"],
        CLIENT_ID
    );
}

// ---------------------------------------------------------------------------------------------
// cloudflared
// ---------------------------------------------------------------------------------------------

#[test]
fn cloudflared_merge_inserts_before_the_catch_all() {
    let (_dir, path) = copy("cloudflared-config.yml");
    let original = read(&path);
    let report = merge_cloudflared(&path, &blueprint(), false).unwrap();
    assert!(report.changed);
    assert_eq!(read(&bak(&path)), original);
    let merged = read(&path);
    assert_lines_kept(&original, &merged);
    insta::assert_snapshot!("cloudflared-config.merged.yml", merged);

    // The rules sit right before the catch-all and its comment.
    let catch_all_comment = merged
        .find("  # catch-all: anything else")
        .expect("comment kept");
    let ours = merged.find("^/blueprint/mcp").unwrap();
    assert!(ours < catch_all_comment);
    assert!(merged.find("vault.axelabs.ai").unwrap() < ours);

    let config = Config::parse(&merged, "config.yml").unwrap();
    assert!(config.warnings.is_empty());
    let rules = config.validate().expect("the merged config validates");
    assert_eq!(rules.len(), 10);
    assert!(rules[9].hostname.is_empty() && rules[9].path.is_none());
    for (url, want) in [
        ("https://axe.axelabs.ai/frame/mcp", 0),
        (
            "https://axe.axelabs.ai/hive/.well-known/oauth-protected-resource",
            3,
        ),
        ("https://blueprint.axellc.com/", 4),
        ("https://axe.axelabs.ai/blueprint/mcp", 6),
        ("https://axe.axelabs.ai/blueprint/mcp/", 6),
        ("https://axe.axelabs.ai/blueprint/mcp?x=1", 6),
        ("https://axe.axelabs.ai/blueprint/mcpx", 9),
        (
            "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource",
            7,
        ),
        (
            "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource/x",
            7,
        ),
        // Checklist #2 through the tunnel.
        ("https://axe.axelabs.ai/blueprint/health", 8),
        ("https://axe.axelabs.ai/blueprint/healthz", 9),
        ("https://AXE.axelabs.ai/blueprint/mcp", 9),
    ] {
        assert_eq!(match_rule(&rules, url).unwrap(), want, "{url}");
    }
    // The line numbers point into the merged file.
    assert_eq!(
        merged
            .lines()
            .nth(rules[6].line.unwrap() - 1)
            .unwrap()
            .trim(),
        "- hostname: axe.axelabs.ai"
    );

    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let again = merge_cloudflared(&path, &blueprint(), false).unwrap();
    assert!(!again.changed);
    assert_eq!(read(&path), merged);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}

#[test]
fn cloudflared_conflict_is_refused_unless_forced() {
    let (_dir, path) = copy("cloudflared-config.yml");
    merge_cloudflared(&path, &blueprint(), false).unwrap();
    fs::remove_file(bak(&path)).unwrap();
    let mut moved = blueprint();
    moved.deploy.proxy_port = 3161;
    let before = read(&path);
    let err = merge_cloudflared(&path, &moved, false).unwrap_err();
    let RenderError::Conflict { conflicts, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(conflicts.len(), 3);
    let first_line = before
        .lines()
        .position(|l| l.contains("service: http://host.docker.internal:3151"))
        .unwrap()
        + 1;
    assert_eq!(conflicts[0].line, first_line);
    assert!(conflicts[0].what.contains("ingress rule #7"), "{err}");
    assert!(err.hint().unwrap().contains("--force"));
    assert_eq!(read(&path), before);
    assert!(!bak(&path).exists());

    let report = merge_cloudflared(&path, &moved, true).unwrap();
    assert!(report.changed);
    assert_eq!(read(&bak(&path)), before);
    let after = read(&path);
    assert_eq!(after, before.replace(":3151", ":3161"));
    assert!(!merge_cloudflared(&path, &moved, false).unwrap().changed);
}

/// The config of VALIDATORS.md §b (two rules + another host + catch-all), mutated.
fn golden_config() -> String {
    "ingress:\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/mcp(/.*)?$\n    service: http://host.docker.internal:3151\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$\n    service: http://host.docker.internal:3151\n  - hostname: other.axelabs.ai\n    service: http://localhost:8080\n  - service: http_status:404\n".into()
}

#[test]
fn cloudflared_golden_validation_messages() {
    let ok = golden_config();
    Config::parse(&ok, "config.yml")
        .unwrap()
        .validate()
        .unwrap();
    let no_catch_all = ok.replace("  - service: http_status:404\n", "");
    let catch_all_first = format!(
        "ingress:\n  - service: http_status:404\n{}",
        ok.trim_start_matches("ingress:\n")
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no catch-all last",
            no_catch_all,
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)",
        ),
        (
            "catch-all first",
            catch_all_first,
            "Rule #1 is matching the hostname '', but this will match every hostname, meaning the rules which follow it will never be triggered.",
        ),
        (
            "bad regex",
            ok.replacen("^/blueprint/mcp(/.*)?$", "^/blueprint/mcp(/.*?$", 1),
            "Rule #1 has an invalid regex: ",
        ),
        (
            "service without scheme",
            ok.replacen(
                "http://host.docker.internal:3151",
                "host.docker.internal:3151",
                1,
            ),
            "host.docker.internal:3151 is an invalid address, please make sure it has a scheme and a hostname",
        ),
        (
            "hostname with scheme",
            ok.replacen(
                "hostname: axe.axelabs.ai",
                "hostname: https://axe.axelabs.ai",
                1,
            ),
            "Hostname cannot contain a port",
        ),
        (
            "no ingress",
            "tunnel: x\n".into(),
            "The config file doesn't contain any ingress rules",
        ),
        (
            "YAML syntax error",
            "ingress:\n  - service: [\n".into(),
            "error parsing YAML in config file config.yml",
        ),
    ];
    for (name, text, golden) in cases {
        let err = Config::parse(&text, "config.yml")
            .and_then(|c| c.validate().map(|_| ()))
            .expect_err(name);
        assert!(
            err.message.starts_with(golden),
            "{name}: got {:?}, want {golden:?}",
            err.message
        );
    }
    // Unknown key: a warning (cloudflared exits 0 but prints no OK), the rules still validate.
    let typo = ok.replacen("    path: ^/blueprint/mcp", "    pathz: ^/blueprint/mcp", 1);
    let c = Config::parse(&typo, "config.yml").unwrap();
    assert!(
        c.warnings[0].contains("unused keys detected"),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0].contains("pathz"));
}

#[test]
fn cloudflared_merge_refuses_a_config_cloudflared_would_refuse() {
    let p = Path::new("config.yml");
    let d = blueprint();
    let no_catch_all = "ingress:\n  - hostname: a.example.com\n    service: http://localhost:1\n";
    let err = merge_cloudflared_text(no_catch_all, p, &d, false).unwrap_err();
    assert!(
        err.to_string().contains(
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)"
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("config.yml:2:"), "{err}");
    assert!(err.hint().unwrap().contains("http_status:404"));

    let bad_regex = golden_config().replacen("(/.*)?$", "(/.*?$", 1);
    let err = merge_cloudflared_text(&bad_regex, p, &d, true).unwrap_err();
    assert!(
        err.to_string().contains("Rule #1 has an invalid regex"),
        "{err}"
    );

    let err = merge_cloudflared_text("tunnel: x\n", p, &d, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("The config file doesn't contain any ingress rules"),
        "{err}"
    );
}

#[test]
fn cloudflared_merge_refuses_rules_that_are_already_dead() {
    // blueprint's rules are there, but below a hostname-wide rule that catches their URLs: the
    // config never routed blueprint. Refused with the rule that is in the way, not "fixed" by
    // moving lines around.
    let text = "ingress:\n  - hostname: axe.axelabs.ai\n    service: http://localhost:8080\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/mcp(/.*)?$\n    service: http://host.docker.internal:3151\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$\n    service: http://host.docker.internal:3151\n  - service: http_status:404\n";
    let err =
        merge_cloudflared_text(text, Path::new("config.yml"), &blueprint(), false).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("config.yml:2:") && msg.contains("ingress rule #1"),
        "{msg}"
    );
    let hint = err.hint().unwrap();
    assert!(hint.contains("first rule that matches"), "{hint}");
    assert!(hint.contains("delete them and merge again"), "{hint}");
}

#[test]
fn cloudflared_merge_layouts() {
    let d = blueprint();
    let p = Path::new("config.yml");
    for (name, text) in [
        (
            "unindented items",
            "ingress:\n- hostname: x.example.com\n  service: http://localhost:1\n- service: http_status:404\n",
        ),
        (
            "catch-all only, no newline at end",
            "ingress:\n  - service: http_status:404",
        ),
        (
            "wide indent",
            "ingress:\n    -   hostname: x.example.com\n        service: http://localhost:1\n    -   service: http_status:404\n",
        ),
        (
            "catch-all with originRequest",
            "ingress:\n  - service: http_status:404\n    originRequest:\n      noTLSVerify: true\n",
        ),
    ] {
        let merged =
            merge_cloudflared_text(text, p, &d, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let config = Config::parse(&merged.text, "c").unwrap();
        let rules = config
            .validate()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", merged.text));
        let n = rules.len();
        assert_eq!(
            match_rule(&rules, "https://axe.axelabs.ai/blueprint/mcp").unwrap(),
            n - 4,
            "{name}:\n{}",
            merged.text
        );
        assert_lines_kept(text, &merged.text);
        let again = merge_cloudflared_text(&merged.text, p, &d, false).unwrap();
        assert_eq!(again.text, merged.text, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Generated customers.yaml files
// ---------------------------------------------------------------------------------------------

mod generated {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct File {
        step: usize,
        /// `key:\n  - item` (true) or `key:\n- item` (false).
        indent_dash: bool,
        /// (customer, [app names]); `axe` may or may not be among them.
        apps: Option<Vec<(String, Vec<String>)>>,
        /// (service, [secret envs]).
        services: Option<Vec<(String, Vec<String>)>>,
        /// Where comment lines go (indices into the generated lines).
        comments: Vec<usize>,
        trailing_newline: bool,
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "axe",
            "realchoice",
            "frame",
            "hive",
            "index",
            "blueprint",
            "zeta",
        ])
        .prop_map(str::to_owned)
    }

    fn file() -> impl Strategy<Value = File> {
        let apps =
            prop::collection::btree_map(name(), prop::collection::btree_set(name(), 0..3), 1..4)
                .prop_map(|m| {
                    m.into_iter()
                        .map(|(c, a)| (c, a.into_iter().filter(|a| a != "blueprint").collect()))
                        .collect::<Vec<(String, Vec<String>)>>()
                });
        let services = prop::collection::btree_map(
            name(),
            prop::collection::btree_set("[A-Z]{2,6}_SECRET", 0..3),
            1..4,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(s, e)| (s, e.into_iter().collect()))
                .collect::<Vec<(String, Vec<String>)>>()
        });
        (
            prop::sample::select(vec![2usize, 4]),
            any::<bool>(),
            prop::option::of(apps),
            prop::option::of(services),
            prop::collection::vec(0usize..40, 0..6),
            any::<bool>(),
        )
            .prop_map(
                |(step, indent_dash, apps, services, comments, trailing_newline)| File {
                    step,
                    indent_dash,
                    apps,
                    services,
                    comments,
                    trailing_newline,
                },
            )
    }

    fn render(f: &File) -> String {
        let pad = |n: usize| " ".repeat(n * f.step);
        let dash = |n: usize| if f.indent_dash { pad(n) } else { pad(n - 1) };
        let mut lines = vec!["# customers".to_owned(), "org: axelabs".to_owned()];
        if let Some(apps) = &f.apps {
            lines.push("azure_apps:".into());
            for (customer, names) in apps {
                if names.is_empty() {
                    lines.push(format!("{}{customer}: {{}}", pad(1)).replace(": {}", ":"));
                    lines.push(format!("{}other: 1", pad(2)));
                    continue;
                }
                lines.push(format!("{}{customer}:", pad(1)));
                for app in names {
                    lines.push(format!("{}{app}_mcp:", pad(2)));
                    lines.push(format!("{}client_id: \"{app}-id\"", pad(3)));
                    lines.push(format!("{}scopes:", pad(3)));
                    lines.push(format!("{}- \"https://x/{app}/mcp/mcp.access\"", dash(4)));
                }
            }
        }
        if let Some(services) = &f.services {
            lines.push("services:".into());
            for (service, envs) in services {
                lines.push(format!("{}{service}:", pad(1)));
                lines.push(format!("{}env_file: \"/Users/axe/{service}/.env\"", pad(2)));
                if envs.is_empty() {
                    continue;
                }
                lines.push(format!("{}secrets:", pad(2)));
                for env in envs {
                    lines.push(format!(
                        "{}- {{ env: {env}, vault: \"{service}/x\" }}",
                        dash(3)
                    ));
                }
            }
        }
        for &at in f.comments.iter().rev() {
            let at = at.min(lines.len());
            // Indent like the next line so the comment reads as part of its block.
            let indent = lines
                .get(at)
                .map(|l| l.len() - l.trim_start().len())
                .unwrap_or(0);
            lines.insert(at, format!("{}# note {at}", " ".repeat(indent)));
        }
        let mut text = lines.join("\n");
        if f.trailing_newline {
            text.push('\n');
        }
        text
    }

    proptest! {
        #[test]
        fn merge_keeps_everything_and_is_idempotent(f in file()) {
            let mut d = blueprint();
            // blueprint's env_file as the generator writes it, so an existing entry agrees.
            d.deploy.env_file = "/Users/axe/blueprint/.env".into();
            let text = render(&f);
            let p = Path::new("customers.yaml");
            let merged = match merge_customers_text(&text, p, &d, Some(CLIENT_ID), false) {
                Ok(m) => m,
                Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
            };
            assert_lines_kept(&text, &merged.text);
            let again = merge_customers_text(&merged.text, p, &d, Some(CLIENT_ID), false).unwrap();
            prop_assert_eq!(&again.text, &merged.text);
            prop_assert!(again.actions.is_empty());

            let v = yaml(&merged.text);
            prop_assert_eq!(&v["azure_apps"]["axe"]["blueprint_mcp"]["client_id"], CLIENT_ID);
            let secrets = v["services"]["blueprint"]["secrets"].as_sequence().unwrap();
            prop_assert_eq!(
                &secrets.last().unwrap()["vault"],
                "blueprint/axe/mcp-client-secret"
            );
            // Everything that was there is still there, unchanged.
            let before = yaml(&text);
            if let Value::Mapping(before) = before {
                for (k, old) in &before {
                    let new = &v[k.as_str().unwrap()];
                    if k == "azure_apps" || k == "services" {
                        let (Value::Mapping(old), Value::Mapping(new)) = (old, new) else {
                            continue;
                        };
                        for (k2, old2) in old {
                            let mut new2 = new[k2].clone();
                            if k == "azure_apps"
                                && k2 == "axe"
                                && let Value::Mapping(m) = &mut new2
                            {
                                m.remove("blueprint_mcp");
                            }
                            if k == "services" && k2 == "blueprint" {
                                if let Some(Value::Sequence(s)) = new2.get_mut("secrets") {
                                    s.pop();
                                }
                                if old2.get("secrets").is_none() {
                                    new2.as_mapping_mut().unwrap().remove("secrets");
                                }
                            }
                            prop_assert_eq!(old2, &new2, "{} {}", k.as_str().unwrap(), k2.as_str().unwrap());
                        }
                    } else {
                        prop_assert_eq!(old, new);
                    }
                }
            }
        }
    }
}

#[test]
fn customers_scopes_and_empty_values() {
    let d = blueprint();
    let p = Path::new("customers.yaml");
    let text = "azure_apps:\n  axe:\n    blueprint_mcp:\n      client_id:\n      scopes:\n        - \"https://old/mcp.access\"\n      note: keep me\n";
    let err = merge_customers_text(text, p, &d, Some(CLIENT_ID), false).unwrap_err();
    let RenderError::Conflict { conflicts, .. } = &err else {
        panic!("{err}");
    };
    // The empty client_id is filled in, not a conflict; the other scope list is.
    assert_eq!(conflicts.len(), 1, "{err}");
    assert_eq!(conflicts[0].line, 6);
    assert_eq!(conflicts[0].what, "azure_apps.axe.blueprint_mcp.scopes");

    let merged = merge_customers_text(text, p, &d, Some(CLIENT_ID), true).unwrap();
    let v = yaml(&merged.text);
    let app = &v["azure_apps"]["axe"]["blueprint_mcp"];
    assert_eq!(app["client_id"], CLIENT_ID);
    assert_eq!(
        app["scopes"][0],
        "https://axe.axelabs.ai/blueprint/mcp/mcp.access"
    );
    assert_eq!(app["scopes"].as_sequence().unwrap().len(), 1);
    assert_eq!(app["note"], "keep me");
    assert!(merged.text.contains("      note: keep me\n"));
    let again = merge_customers_text(&merged.text, p, &d, Some(CLIENT_ID), false).unwrap();
    assert_eq!(again.text, merged.text);
}

// ---------------------------------------------------------------------------------------------
// cloudflared: a tunnel that already routes other things (issue 9 §3)
// ---------------------------------------------------------------------------------------------

/// The rule (hostname, path, service) each URL goes to.
fn routes(text: &str, urls: &[&str]) -> Vec<(String, Option<String>, String)> {
    let rules = Config::parse(text, "config.yml")
        .unwrap()
        .validate()
        .unwrap();
    urls.iter()
        .map(|url| {
            let r = &rules[match_rule(&rules, url).unwrap()];
            (
                r.hostname.clone(),
                r.path.as_ref().map(|p| p.as_str().to_owned()),
                r.service.clone(),
            )
        })
        .collect()
}

const SHARED_HOST_URLS: &[&str] = &[
    "https://axe.axelabs.ai/",
    "https://axe.axelabs.ai/frame/mcp",
    "https://axe.axelabs.ai/frame/.well-known/oauth-protected-resource",
    "https://axe.axelabs.ai/docs/intro",
    "https://axe.axelabs.ai/hive/mcp/x",
    "https://axe.axelabs.ai/blueprint",
    "https://axe.axelabs.ai/blueprint/app",
    "https://axe.axelabs.ai/blueprint/mcpx",
    "https://axe.axelabs.ai/index/mcp",
    "https://vault.axelabs.ai/",
    "https://other.example.com/blueprint/mcp",
];

const BLUEPRINT_URLS: &[&str] = &[
    "https://axe.axelabs.ai/blueprint/mcp",
    "https://axe.axelabs.ai/blueprint/mcp/x",
    "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource",
    "https://axe.axelabs.ai/blueprint/health",
];

#[test]
fn cloudflared_merge_goes_above_a_hostname_wide_rule_for_the_same_host() {
    // The main app behind its own proxy takes every path of axe.axelabs.ai: blueprint's rules
    // go right above it (and its comment), below the rules that cannot catch their URLs.
    let (_dir, path) = copy("cloudflared-shared-host.yml");
    let original = read(&path);
    let report = merge_cloudflared(&path, &blueprint(), false).unwrap();
    assert!(report.changed);
    assert_eq!(read(&bak(&path)), original);
    let merged = read(&path);
    assert_lines_kept(&original, &merged);
    insta::assert_snapshot!("cloudflared-shared-host.merged.yml", merged);
    let ours = merged
        .find("  # blueprint MCP (added by entraform)")
        .unwrap();
    assert!(merged.find("path: '^/hive/mcp(/.*)?$'").unwrap() < ours);
    assert!(ours < merged.find("  # the main app").unwrap());
    assert!(
        report.actions.iter().any(|a| a
            == "placed before ingress rule #5 (hostname axe.axelabs.ai, all paths → http://host.docker.internal:3100), the first rule that could match their URLs"),
        "{:?}",
        report.actions
    );
    // Every URL of the others goes where it went; blueprint's go to blueprint.
    assert_eq!(
        routes(&merged, SHARED_HOST_URLS),
        routes(&original, SHARED_HOST_URLS)
    );
    for (_, _, service) in routes(&merged, BLUEPRINT_URLS) {
        assert_eq!(service, "http://host.docker.internal:3151");
    }
    // Before the merge they went to the main app.
    for (_, _, service) in routes(&original, BLUEPRINT_URLS) {
        assert_eq!(service, "http://host.docker.internal:3100");
    }
    let again = merge_cloudflared(&path, &blueprint(), false).unwrap();
    assert!(!again.changed, "{again:?}");
    assert_eq!(read(&path), merged);
}

#[test]
fn cloudflared_merge_of_several_services_in_turn() {
    let (_dir, path) = copy("cloudflared-shared-host.yml");
    let original = read(&path);
    let index = service("index", 3161, None);
    merge_cloudflared(&path, &blueprint(), false).unwrap();
    let after_blueprint = read(&path);
    merge_cloudflared(&path, &index, false).unwrap();
    let merged = read(&path);
    assert_lines_kept(&after_blueprint, &merged);
    // index's group goes below blueprint's (they cannot catch each other's URLs) and above the
    // main app.
    let bp = merged.find("# blueprint MCP").unwrap();
    let ix = merged.find("# index MCP").unwrap();
    assert!(bp < ix && ix < merged.find("# the main app").unwrap());
    let others: Vec<&str> = SHARED_HOST_URLS
        .iter()
        .copied()
        .filter(|u| !u.contains("/index/"))
        .collect();
    assert_eq!(routes(&merged, &others), routes(&original, &others));
    for (_, _, service) in routes(&merged, BLUEPRINT_URLS) {
        assert_eq!(service, "http://host.docker.internal:3151");
    }
    for url in [
        "https://axe.axelabs.ai/index/mcp",
        "https://axe.axelabs.ai/index/health",
    ] {
        assert_eq!(
            routes(&merged, &[url])[0].2,
            "http://host.docker.internal:3161"
        );
    }
    // Both again: nothing to do.
    for d in [blueprint(), index] {
        let again = merge_cloudflared_text(&merged, Path::new("c.yml"), &d, false).unwrap();
        assert_eq!(again.text, merged);
    }
}

#[test]
fn cloudflared_merge_adds_the_health_rule_to_an_existing_group() {
    // A config merged before the health rule existed: the new rule joins blueprint's group.
    let text = "ingress:\n  # blueprint MCP (added by entraform)\n  - hostname: axe.axelabs.ai\n    path: '^/blueprint/mcp(/.*)?$'\n    service: http://host.docker.internal:3151\n  - hostname: axe.axelabs.ai\n    path: '^/blueprint/\\.well-known/oauth-protected-resource(/.*)?$'\n    service: http://host.docker.internal:3151\n  # the main app\n  - hostname: axe.axelabs.ai\n    service: http://host.docker.internal:3100\n  - service: http_status:404\n";
    let merged = merge_cloudflared_text(text, Path::new("c.yml"), &blueprint(), false).unwrap();
    assert_eq!(
        merged.text,
        text.replace(
            "  # the main app\n",
            "  - hostname: axe.axelabs.ai\n    path: '^/blueprint/health$'\n    service: http://host.docker.internal:3151\n  # the main app\n"
        )
    );
    assert_eq!(
        merged.actions,
        [
            "added ingress rule axe.axelabs.ai ^/blueprint/health$ -> http://host.docker.internal:3151"
        ]
    );
}

#[test]
fn cloudflared_merge_goes_to_the_top_when_in_doubt() {
    // A regex that is not anchored could match anything: the rules go above it, here at the
    // top of `ingress:` (above the comment that belongs to that rule).
    let text = "tunnel: x\ningress:\n  # legacy: any path with /mcp in it\n  - hostname: axe.axelabs.ai\n    path: /mcp\n    service: http://localhost:9000\n  - hostname: other.axelabs.ai\n    service: http://localhost:8080\n  - service: http_status:404\n";
    let merged = merge_cloudflared_text(text, Path::new("c.yml"), &blueprint(), false).unwrap();
    assert!(
        merged
            .text
            .starts_with("tunnel: x\ningress:\n  # blueprint MCP (added by entraform)\n  - hostname: axe.axelabs.ai\n    path: '^/blueprint/mcp(/.*)?$'\n"),
        "{}",
        merged.text
    );
    assert_lines_kept(text, &merged.text);
    // The legacy rule routed blueprint's endpoint until now: the operator is told.
    assert!(
        merged.warnings.iter().any(|w| w.contains("ingress rule #1")
            && w.contains("https://axe.axelabs.ai/blueprint/mcp")
            && w.contains("take it now")),
        "{:?}",
        merged.warnings
    );
    let urls = [
        "https://axe.axelabs.ai/x/mcp",
        "https://other.axelabs.ai/blueprint/mcp",
    ];
    assert_eq!(routes(&merged.text, &urls), routes(text, &urls));
}

#[test]
fn cloudflared_real_conflict_on_a_shared_host_is_refused_unless_forced() {
    // The same hostname and path pointing somewhere else is the one thing refused.
    let (_dir, path) = copy("cloudflared-shared-host.yml");
    let text = read(&path).replace(
        "  # the main app",
        "  - hostname: axe.axelabs.ai\n    path: ^/blueprint/mcp(/.*)?$\n    service: http://host.docker.internal:3999   # old port\n  # the main app",
    );
    fs::write(&path, &text).unwrap();
    let err = merge_cloudflared(&path, &blueprint(), false).unwrap_err();
    let RenderError::Conflict { conflicts, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(conflicts.len(), 1, "{err}");
    assert!(conflicts[0].what.contains("ingress rule #5"), "{err}");
    assert_eq!(read(&path), text);
    assert!(!bak(&path).exists());

    let report = merge_cloudflared(&path, &blueprint(), true).unwrap();
    let merged = read(&path);
    assert!(merged.contains("service: http://host.docker.internal:3151   # old port"));
    assert_eq!(read(&bak(&path)), text);
    for (_, _, service) in routes(&merged, BLUEPRINT_URLS) {
        assert_eq!(service, "http://host.docker.internal:3151");
    }
    assert!(report.actions.iter().any(|a| a.contains("--force")));
    assert!(
        !merge_cloudflared(&path, &blueprint(), false)
            .unwrap()
            .changed
    );
}

#[test]
fn cloudflared_merge_refuses_rules_that_are_dead_for_some_of_their_urls() {
    // An unanchored legacy rule above blueprint's catches /blueprint/mcp/… sub-paths (not the
    // probe URL itself): refused by name, not reported as an internal error.
    let text = "ingress:\n  - hostname: axe.axelabs.ai\n    path: /mcp/\n    service: http://localhost:9000\n  - hostname: axe.axelabs.ai\n    path: ^/blueprint/mcp(/.*)?$\n    service: http://host.docker.internal:3151\n  - service: http_status:404\n";
    let err =
        merge_cloudflared_text(text, Path::new("config.yml"), &blueprint(), false).unwrap_err();
    assert!(matches!(err, RenderError::Cloudflared { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("config.yml:2: ingress rule #1") && msg.contains("/blueprint/mcp/"),
        "{msg}"
    );
}
