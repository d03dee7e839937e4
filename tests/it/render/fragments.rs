//! The four rendered fragments: exact shapes (snapshots), parseable YAML with the right values,
//! determinism, and the real validators (caddy, Docker Compose v2, the cloudflared model).

use crate::support::common;

use std::fs;
use std::process::Command;

use common::{CLIENT_ID, blueprint, read, run, tool};
use entraform::render::cloudflared::{Config, match_rule};
use entraform::render::{
    FRAGMENT_NAMES, Fragment, PLACEHOLDER_CLIENT_ID, RenderError, render_all, write_fragments,
};
use serde_yaml::Value;

fn fragment<'a>(fragments: &'a [Fragment], name: &str) -> &'a str {
    &fragments
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fragment {name}"))
        .content
}

fn rendered() -> Vec<Fragment> {
    render_all(&blueprint(), Some(CLIENT_ID), None).expect("render")
}

#[test]
fn renders_the_four_fragments_in_order() {
    let names: Vec<_> = rendered().iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "customers.entry.yaml",
            "cloudflared.ingress.yaml",
            "Caddyfile",
            "compose.mcp.yaml"
        ]
    );
    assert_eq!(names, FRAGMENT_NAMES);
}

#[test]
fn snapshots() {
    for f in rendered() {
        insta::assert_snapshot!(f.name, f.content);
    }
    let mut no_pg = blueprint();
    no_pg.deploy.uses_postgres = false;
    let f = render_all(&no_pg, None, None).unwrap();
    insta::assert_snapshot!(
        "customers.entry.yaml-client-id-unknown",
        fragment(&f, "customers.entry.yaml")
    );
    insta::assert_snapshot!(
        "compose.mcp.yaml-no-postgres",
        fragment(&f, "compose.mcp.yaml")
    );
}

#[test]
fn customers_entry_has_the_values() {
    let d = blueprint();
    let f = rendered();
    let v: Value = serde_yaml::from_str(fragment(&f, "customers.entry.yaml")).unwrap();
    let app = &v["azure_apps"]["axe"]["blueprint_mcp"];
    assert_eq!(app["client_id"], CLIENT_ID);
    assert_eq!(
        app["application_id_uri"],
        "https://axe.axelabs.ai/blueprint/mcp"
    );
    assert_eq!(
        app["scopes"],
        serde_yaml::from_str::<Value>("[https://axe.axelabs.ai/blueprint/mcp/mcp.access]").unwrap()
    );
    assert_eq!(
        app["client_secret_env"],
        "AZURE_BLUEPRINT_MCP_CLIENT_SECRET"
    );
    let svc = &v["services"]["blueprint"];
    assert_eq!(svc["env_file"], "/Users/axe/blueprint/.env");
    let secret = &svc["secrets"][0];
    assert_eq!(secret["env"], "AZURE_BLUEPRINT_MCP_CLIENT_SECRET");
    // The vault path is the one string the vault push uses.
    assert_eq!(secret["vault"].as_str(), Some(d.secret.vault_path.as_str()));
    assert_eq!(secret["rotation_external"], "azure");
    assert_eq!(svc["secrets"].as_sequence().unwrap().len(), 1);
}

#[test]
fn vault_path_comes_only_from_the_desired_state() {
    let mut d = blueprint();
    d.secret.vault_path = "elsewhere/x/y".into();
    let f = render_all(&d, Some(CLIENT_ID), None).unwrap();
    let v: Value = serde_yaml::from_str(fragment(&f, "customers.entry.yaml")).unwrap();
    assert_eq!(
        v["services"]["blueprint"]["secrets"][0]["vault"],
        "elsewhere/x/y"
    );
    assert!(!fragment(&f, "customers.entry.yaml").contains("blueprint/axe/mcp-client-secret"));
}

#[test]
fn unknown_client_id_renders_a_loud_placeholder() {
    let f = render_all(&blueprint(), None, None).unwrap();
    let text = fragment(&f, "customers.entry.yaml");
    let v: Value = serde_yaml::from_str(text).unwrap();
    assert_eq!(
        v["azure_apps"]["axe"]["blueprint_mcp"]["client_id"],
        PLACEHOLDER_CLIENT_ID
    );
    assert!(text.contains("entraform apply"), "{text}");
    assert!(uuid::Uuid::parse_str(PLACEHOLDER_CLIENT_ID).is_err());
}

#[test]
fn a_client_id_that_is_not_a_guid_is_refused() {
    let err = render_all(&blueprint(), Some("482598f7-typo"), None).unwrap_err();
    assert!(matches!(err, RenderError::BadClientId { .. }), "{err}");
    assert!(err.hint().unwrap().contains("app_id"));
}

#[test]
fn compose_fragment_has_the_values() {
    let f = rendered();
    let v: Value = serde_yaml::from_str(fragment(&f, "compose.mcp.yaml")).unwrap();
    let mcp = &v["services"]["mcp"];
    assert_eq!(mcp["container_name"], "blueprint-mcp");
    assert_eq!(mcp["env_file"], "../.env");
    assert_eq!(mcp["build"]["context"], "..");
    assert_eq!(mcp["build"]["dockerfile"], "mcp/Dockerfile");
    let env: Vec<&str> = mcp["environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "BLUEPRINT_MCP_PORT=3000",
            "BLUEPRINT_MCP_APP_ID_URI=${BLUEPRINT_MCP_APP_ID_URI:-https://axe.axelabs.ai/blueprint/mcp}",
            "AZURE_AD_TENANT_ID=${AZURE_AD_TENANT_ID:-122fb574-7efa-476a-95b6-bee81bce2cce}",
            "BLUEPRINT_MCP_ALLOWED_HOSTS=blueprint-mcp:*,localhost:*,127.0.0.1:*,host.docker.internal:*,axe.axelabs.ai",
            "BLUEPRINT_MCP_ALLOWED_ORIGINS=https://axe.axelabs.ai,https://claude.ai,https://claude.com",
        ]
    );
    assert_eq!(
        mcp["networks"]["default"]["aliases"],
        serde_yaml::from_str::<Value>("[blueprint-mcp]").unwrap()
    );
    assert!(
        mcp["networks"]
            .as_mapping()
            .unwrap()
            .contains_key("artemis")
    );
    assert_eq!(
        mcp["healthcheck"]["test"],
        serde_yaml::from_str::<Value>(r#"["CMD","curl","-fsS","http://127.0.0.1:3000/health"]"#)
            .unwrap()
    );
    assert_eq!(mcp["healthcheck"]["interval"], "30s");
    assert_eq!(mcp["healthcheck"]["timeout"], "5s");
    assert_eq!(mcp["healthcheck"]["retries"], 3);
    assert_eq!(mcp["healthcheck"]["start_period"], "10s");
    assert_eq!(
        mcp["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    let proxy = &v["services"]["mcp-proxy"];
    assert_eq!(proxy["container_name"], "axe-blueprint-mcp-proxy");
    assert_eq!(proxy["image"], "caddy:2");
    // A string, not YAML 1.1's base-60 number.
    assert_eq!(proxy["ports"][0], "3151:80");
    assert_eq!(
        proxy["volumes"][0],
        "~/.axe/blueprint-mcp-proxy/Caddyfile:/etc/caddy/Caddyfile:ro"
    );
    assert_eq!(
        proxy["networks"],
        serde_yaml::from_str::<Value>("[default, artemis]").unwrap()
    );
    assert_eq!(
        proxy["depends_on"],
        serde_yaml::from_str::<Value>("[mcp]").unwrap()
    );

    let mut no_pg = blueprint();
    no_pg.deploy.uses_postgres = false;
    let f = render_all(&no_pg, Some(CLIENT_ID), None).unwrap();
    let v: Value = serde_yaml::from_str(fragment(&f, "compose.mcp.yaml")).unwrap();
    assert!(v["services"]["mcp"].get("depends_on").is_none());
}

#[test]
fn caddyfile_shape() {
    let f = rendered();
    let caddy = fragment(&f, "Caddyfile");
    assert!(caddy.contains("\treverse_proxy blueprint-mcp:3000 {\n"));
    assert!(caddy.contains("\t\tlb_try_duration 5s\n\t\tlb_try_interval 250ms\n"));
    assert!(caddy.contains("\t\theader_up Host {http.request.host}\n"));
    assert!(caddy.contains("\tencode gzip\n"));
    assert!(
        caddy.contains("\tlog {\n\t\toutput stdout\n\t\tformat console\n\t\tlevel INFO\n\t}\n")
    );
    assert!(!caddy.contains(';'), "Caddyfile has no `;` separator");
    assert!(!caddy.contains("handle_path"));
    assert!(caddy.lines().any(|l| l == ":80 {"));
}

#[test]
fn rendering_is_deterministic_and_rewrites_nothing() {
    assert_eq!(rendered(), rendered());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out/axe/blueprint");
    let first = write_fragments(&out, &rendered()).unwrap();
    assert!(first.files.iter().all(|f| f.changed));
    let before: Vec<_> = FRAGMENT_NAMES
        .iter()
        .map(|n| fs::metadata(out.join(n)).unwrap().modified().unwrap())
        .collect();
    let second = write_fragments(&out, &rendered()).unwrap();
    assert!(second.files.iter().all(|f| !f.changed), "{second:?}");
    let after: Vec<_> = FRAGMENT_NAMES
        .iter()
        .map(|n| fs::metadata(out.join(n)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after, "unchanged files must not be rewritten");
    for f in rendered() {
        assert_eq!(read(&out.join(f.name)), f.content);
    }
    // A changed fragment is rewritten, the others are not; no temp files are left behind.
    let mut other = blueprint();
    other.deploy.proxy_port = 3161;
    let third = write_fragments(&out, &render_all(&other, Some(CLIENT_ID), None).unwrap()).unwrap();
    let changed: Vec<_> = third
        .files
        .iter()
        .filter(|f| f.changed)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        changed,
        ["cloudflared.ingress.yaml", "Caddyfile", "compose.mcp.yaml"]
    );
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn template_overrides() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("Caddyfile.j2"),
        ":{{ deploy.proxy_port }} {\n\treverse_proxy {{ caddy.upstream }}\n}\n",
    )
    .unwrap();
    let f = render_all(&blueprint(), Some(CLIENT_ID), Some(dir.path())).unwrap();
    assert_eq!(
        fragment(&f, "Caddyfile"),
        ":3151 {\n\treverse_proxy blueprint-mcp:3000\n}\n"
    );
    // The others stay the embedded ones.
    assert_eq!(
        fragment(&f, "compose.mcp.yaml"),
        fragment(&rendered(), "compose.mcp.yaml")
    );

    // A typo in an override fails loudly, naming the template and line.
    fs::write(
        dir.path().join("Caddyfile.j2"),
        ":80 {\n\t{{ deploy.proxy_prot }}\n}\n",
    )
    .unwrap();
    let err = render_all(&blueprint(), Some(CLIENT_ID), Some(dir.path())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Caddyfile.j2") && msg.contains("line 2"),
        "{msg}"
    );

    // A directory without any template is almost certainly the wrong one.
    let empty = tempfile::tempdir().unwrap();
    let err = render_all(&blueprint(), Some(CLIENT_ID), Some(empty.path())).unwrap_err();
    assert!(matches!(err, RenderError::TemplatesDir { .. }), "{err}");
    let err = render_all(
        &blueprint(),
        Some(CLIENT_ID),
        Some(&empty.path().join("missing")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn cloudflared_fragment_routes_like_cloudflared() {
    let f = rendered();
    let rules: Value = serde_yaml::from_str(fragment(&f, "cloudflared.ingress.yaml")).unwrap();
    let rules = rules.as_sequence().expect("a list of ingress rules");
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["path"], r"^/blueprint/mcp(/.*)?$");
    assert_eq!(
        rules[1]["path"],
        r"^/blueprint/\.well-known/oauth-protected-resource(/.*)?$"
    );
    assert_eq!(rules[2]["path"], r"^/blueprint/health$");
    for r in rules {
        assert_eq!(r["hostname"], "axe.axelabs.ai");
        assert_eq!(r["service"], "http://host.docker.internal:3151");
    }
    // The recorded test config: the rules + another host + the catch-all.
    let config = format!(
        "ingress:\n{}  - hostname: other.axelabs.ai\n    service: http://localhost:8080\n  - service: http_status:404\n",
        indent(fragment(&f, "cloudflared.ingress.yaml"))
    );
    let parsed = Config::parse(&config, "config.yml").unwrap();
    assert!(parsed.warnings.is_empty());
    let rules = parsed.validate().expect("validates");
    for (url, want) in [
        ("https://axe.axelabs.ai/blueprint/mcp", 0),
        ("https://axe.axelabs.ai/blueprint/mcp/", 0),
        ("https://axe.axelabs.ai/blueprint/mcpx", 4),
        ("https://axe.axelabs.ai/blueprint/mcp?x=1", 0),
        (
            "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource",
            1,
        ),
        (
            "https://axe.axelabs.ai/blueprint/.well-known/oauth-protected-resource/x",
            1,
        ),
        // Checklist #2: `curl https://<host>/<service>/health` through the tunnel.
        ("https://axe.axelabs.ai/blueprint/health", 2),
        ("https://axe.axelabs.ai/blueprint/health?probe=1", 2),
        ("https://axe.axelabs.ai/blueprint/health/x", 4),
        ("https://other.axelabs.ai/x", 3),
        ("https://AXE.axelabs.ai/blueprint/mcp", 4),
        // RFC 9728's root form is not routed by these rules (recorded side note).
        (
            "https://axe.axelabs.ai/.well-known/oauth-protected-resource/blueprint/mcp",
            4,
        ),
    ] {
        assert_eq!(match_rule(&rules, url).unwrap(), want, "{url}");
    }
    let err = match_rule(&rules, "axe.axelabs.ai/blueprint/mcp").unwrap_err();
    assert!(
        err.message
            .ends_with("doesn't have a hostname, consider adding a scheme"),
        "{err}"
    );
}

fn indent(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("  {l}\n"))
        .collect()
}

#[test]
fn caddy_validates_and_is_formatted() {
    let Some(caddy) = tool("caddy", None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Caddyfile");
    fs::write(&file, fragment(&rendered(), "Caddyfile")).unwrap();
    let xdg = |cmd: &mut Command| {
        // Keep caddy's autosave and storage out of $HOME.
        cmd.env("XDG_CONFIG_HOME", dir.path().join("xdg/config"))
            .env("XDG_DATA_HOME", dir.path().join("xdg/data"))
            .env("HOME", dir.path());
    };
    let mut validate = Command::new(&caddy);
    validate
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file);
    xdg(&mut validate);
    let (code, stdout, stderr) = run(&mut validate);
    assert_eq!(code, 0, "caddy validate failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Valid configuration"), "{stdout}");
    assert!(
        !stderr.contains("not formatted"),
        "caddy says the Caddyfile is not formatted:\n{stderr}"
    );
    let mut fmt = Command::new(&caddy);
    fmt.arg("fmt").arg(&file);
    xdg(&mut fmt);
    let (code, formatted, stderr) = run(&mut fmt);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(formatted, read(&file), "caddy fmt would change the file");

    // The validator catches what it must: the seed's one-line log block is refused.
    let seed = read(&file).replace(
        "\tlog {\n\t\toutput stdout\n\t\tformat console\n\t\tlevel INFO\n\t}\n",
        "\tlog { output stdout; format console; level INFO }\n",
    );
    fs::write(&file, seed).unwrap();
    let mut validate = Command::new(&caddy);
    validate
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file);
    xdg(&mut validate);
    let (code, _, stderr) = run(&mut validate);
    assert_ne!(code, 0, "the one-line log block must be refused:\n{stderr}");
}

/// The fragment wrapped in a compose file that declares its networks (and a postgres service
/// for `depends_on`), checked by Docker Compose v2 `config -q`.
fn compose_check(
    compose: &std::path::Path,
    fragment: &str,
    with_postgres: bool,
) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("docker");
    fs::create_dir_all(dir.path().join("mcp")).unwrap();
    fs::create_dir_all(&proj).unwrap();
    fs::write(dir.path().join(".env"), "EXAMPLE=1\n").unwrap();
    fs::write(dir.path().join("mcp/Dockerfile"), "FROM python:3.12-slim\n").unwrap();
    let mut text = fragment.to_owned();
    if with_postgres {
        text.push_str(
            "  postgres:\n    image: postgres:16\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready\"]\n      interval: 5s\n",
        );
    }
    text.push_str("networks:\n  artemis:\n    external: true\n");
    fs::write(proj.join("compose.yml"), text).unwrap();
    let mut cmd = Command::new(compose);
    cmd.current_dir(&proj)
        .args(["-f", "compose.yml", "config", "-q"])
        .env("HOME", dir.path())
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME");
    run(&mut cmd)
}

#[test]
fn compose_v2_accepts_the_fragment() {
    let Some(compose) = tool("docker-compose (v2)", Some("ENTRAFORM_COMPOSE_BIN")) else {
        return;
    };
    let f = rendered();
    let (code, out, err) = compose_check(&compose, fragment(&f, "compose.mcp.yaml"), true);
    assert_eq!(code, 0, "compose config -q failed:\n{out}\n{err}");

    let mut no_pg = blueprint();
    no_pg.deploy.uses_postgres = false;
    let f2 = render_all(&no_pg, Some(CLIENT_ID), None).unwrap();
    let (code, out, err) = compose_check(&compose, fragment(&f2, "compose.mcp.yaml"), false);
    assert_eq!(
        code, 0,
        "compose config -q failed (no postgres):\n{out}\n{err}"
    );

    // And it does catch a broken file (so a pass above means something).
    let broken = fragment(&f, "compose.mcp.yaml").replace("interval: 30s", "interval: 30 seconds");
    let (code, _, err) = compose_check(&compose, &broken, true);
    assert_ne!(code, 0, "compose accepted a bad duration:\n{err}");
    // depends_on postgres needs the postgres service: the fragment really declares it.
    let (code, _, err) = compose_check(&compose, fragment(&f, "compose.mcp.yaml"), false);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("postgres"), "{err}");
}

/// Issue 10: a newline in a value that reaches a rendered file must not add lines to it. Today
/// `tunnel.config` lands unquoted in a comment line of cloudflared.ingress.yaml.
#[test]
fn a_newline_in_a_value_cannot_inject_ingress_rules() {
    let mut d = blueprint();
    d.deploy.tunnel_config =
        "~/.axe/config.yml\n- hostname: axe.axelabs.ai\n  service: http://evil.example:80".into();
    match render_all(&d, Some(CLIENT_ID), None) {
        Err(err) => assert!(err.to_string().contains("control character"), "{err}"),
        Ok(f) => {
            let rules: Value =
                serde_yaml::from_str(fragment(&f, "cloudflared.ingress.yaml")).unwrap();
            let services: Vec<&str> = rules
                .as_sequence()
                .unwrap()
                .iter()
                .map(|r| r["service"].as_str().unwrap_or_default())
                .collect();
            assert!(
                !services.contains(&"http://evil.example:80"),
                "the value injected a rule: {services:?}"
            );
        }
    }
}

/// blueprint as it really runs: blue/green on 3152/3153, the alias on `active`.
fn blue_green(active: &str) -> entraform::desired::Desired {
    let mut d = blueprint();
    d.deploy.blue_green = Some(entraform::desired::BlueGreenSpec {
        active: active.into(),
        blue_port: 3152,
        green_port: 3153,
    });
    d
}

#[test]
fn blue_green_renders_both_colours_with_the_alias_on_the_active_one() {
    let f = render_all(&blue_green("blue"), Some(CLIENT_ID), None).unwrap();
    let text = fragment(&f, "compose.mcp.yaml");
    insta::assert_snapshot!("compose.mcp.yaml-blue-green", text);
    let v: Value = serde_yaml::from_str(text).unwrap();
    let services = v["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, ["mcp-blue", "mcp-green", "mcp-proxy"]);
    let single: Value = serde_yaml::from_str(fragment(&rendered(), "compose.mcp.yaml")).unwrap();
    let single = &single["services"]["mcp"];
    for (colour, port, alias) in [("blue", "3152:3000", true), ("green", "3153:3000", false)] {
        let svc = &v["services"][format!("mcp-{colour}").as_str()];
        assert_eq!(
            svc["container_name"],
            format!("blueprint-mcp-{colour}").as_str()
        );
        assert_eq!(svc["ports"][0], port);
        // The same build, env, healthcheck and dependencies as the single service.
        for key in [
            "build",
            "env_file",
            "environment",
            "healthcheck",
            "depends_on",
        ] {
            assert_eq!(svc[key], single[key], "{colour} {key}");
        }
        assert!(
            svc["networks"]
                .as_mapping()
                .unwrap()
                .contains_key("artemis")
        );
        let aliases = &svc["networks"]["default"]["aliases"];
        if alias {
            assert_eq!(
                aliases,
                &serde_yaml::from_str::<Value>("[blueprint-mcp]").unwrap()
            );
        } else {
            assert!(aliases.is_null(), "{colour}: {aliases:?}");
        }
    }
    assert_eq!(
        v["services"]["mcp-proxy"]["depends_on"],
        serde_yaml::from_str::<Value>("[mcp-blue, mcp-green]").unwrap()
    );
    // The proxy and the tunnel target the alias and the proxy port: unchanged.
    for name in [
        "Caddyfile",
        "cloudflared.ingress.yaml",
        "customers.entry.yaml",
    ] {
        assert_eq!(fragment(&f, name), fragment(&rendered(), name), "{name}");
    }
}

#[test]
fn switching_the_active_colour_changes_only_the_alias_lines() {
    let blue = render_all(&blue_green("blue"), Some(CLIENT_ID), None).unwrap();
    let green = render_all(&blue_green("green"), Some(CLIENT_ID), None).unwrap();
    for name in [
        "Caddyfile",
        "cloudflared.ingress.yaml",
        "customers.entry.yaml",
    ] {
        assert_eq!(fragment(&blue, name), fragment(&green, name), "{name}");
    }
    let (a, b) = (
        fragment(&blue, "compose.mcp.yaml"),
        fragment(&green, "compose.mcp.yaml"),
    );
    // A line diff: everything but the two alias lines is the same, line for line, and those
    // two moved from mcp-blue to mcp-green.
    let alias = ["        aliases:", "          - blueprint-mcp"];
    let without = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !alias.contains(l))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(without(a), without(b));
    let owner = |t: &str| -> Vec<String> {
        let mut service = String::new();
        let mut out = Vec::new();
        for l in t.lines() {
            if l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':') {
                service = l.trim().trim_end_matches(':').to_owned();
            }
            if alias.contains(&l) {
                out.push(format!("{service}: {}", l.trim()));
            }
        }
        out
    };
    assert_eq!(
        owner(a),
        ["mcp-blue: aliases:", "mcp-blue: - blueprint-mcp"],
        "{a}"
    );
    assert_eq!(
        owner(b),
        ["mcp-green: aliases:", "mcp-green: - blueprint-mcp"],
        "{b}"
    );
    assert_eq!(a.lines().count(), b.lines().count());
}

#[test]
fn compose_v2_accepts_blue_green_with_either_colour_active() {
    let Some(compose) = tool("docker-compose (v2)", Some("ENTRAFORM_COMPOSE_BIN")) else {
        return;
    };
    for active in ["blue", "green"] {
        let f = render_all(&blue_green(active), Some(CLIENT_ID), None).unwrap();
        let text = fragment(&f, "compose.mcp.yaml");
        let (code, out, err) = compose_check(&compose, text, true);
        assert_eq!(
            code, 0,
            "compose config -q failed ({active}):\n{out}\n{err}"
        );
        // Compose's own model: the alias on the active colour only, both ports published.
        let (code, model, err) = compose_config(&compose, text);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_yaml::from_str(&model).unwrap();
        for colour in ["blue", "green"] {
            let svc = &v["services"][format!("mcp-{colour}").as_str()];
            let aliases = &svc["networks"]["default"]["aliases"];
            if colour == active {
                assert_eq!(aliases[0], "blueprint-mcp", "{model}");
            } else {
                assert!(aliases.is_null(), "{colour} has {aliases:?}\n{model}");
            }
            let published = svc["ports"][0]["published"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert_eq!(
                published,
                if colour == "blue" { "3152" } else { "3153" },
                "{model}"
            );
            assert_eq!(svc["ports"][0]["target"], 3000, "{model}");
        }
    }
}

/// `config` (not `-q`): the normalized model Compose builds from the fragment.
fn compose_config(compose: &std::path::Path, fragment: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("docker");
    fs::create_dir_all(dir.path().join("mcp")).unwrap();
    fs::create_dir_all(&proj).unwrap();
    fs::write(dir.path().join(".env"), "EXAMPLE=1\n").unwrap();
    fs::write(dir.path().join("mcp/Dockerfile"), "FROM python:3.12-slim\n").unwrap();
    let text = format!(
        "{fragment}  postgres:\n    image: postgres:16\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready\"]\n      interval: 5s\nnetworks:\n  artemis:\n    external: true\n"
    );
    fs::write(proj.join("compose.yml"), text).unwrap();
    let mut cmd = Command::new(compose);
    cmd.current_dir(&proj)
        .args(["-f", "compose.yml", "config"])
        .env("HOME", dir.path())
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME");
    run(&mut cmd)
}
