//! `entraform new`: scaffolds a manifest that loads back, picks the next free port block,
//! refuses to overwrite, and without a terminal names the flag it needs.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const DEFAULTS: &str = include_str!("../../manifests/defaults.yaml");

/// A temp project with `manifests/` holding the example manifests.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    for name in ["defaults.yaml", "frame.yaml", "hive.yaml", "blueprint.yaml"] {
        std::fs::copy(Path::new("manifests").join(name), m.join(name)).unwrap();
    }
    dir
}

/// Run the binary in `cwd` with no terminal on stdin.
fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entraform"))
        .args(args)
        .current_dir(cwd)
        .env_remove("ENTRAFORM_DEFAULTS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn yes_writes_a_manifest_that_loads_back() {
    let dir = project();
    let out = run(dir.path(), &["new", "ledger", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "manifests/ledger.yaml");
    let err = text(&out.stderr);
    for cmd in ["render", "plan", "apply"] {
        assert!(
            err.contains(&format!("entraform {cmd} manifests/ledger.yaml")),
            "{err}"
        );
    }
    let path = dir.path().join("manifests/ledger.yaml");
    let d = entraform::manifest::load_service(&path, None).unwrap();
    // The organisation's own customer, the block after blueprint's 3150-3153, frame as reference
    // (what the other manifests use).
    assert_eq!(d.customer, "axe");
    assert_eq!(d.deploy.proxy_port, 3161);
    assert_eq!(d.reference.as_deref(), Some("frame"));
    assert_eq!(d.display_name, "Ledger MCP");
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    // All manifests still load together.
    assert_eq!(
        entraform::manifest::load_all(&dir.path().join("manifests"), None)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn flags_and_json_output() {
    let dir = project();
    let out = run(
        dir.path(),
        &[
            "--output",
            "json",
            "new",
            "books",
            "--customer",
            "realchoice",
            "--display-name",
            "Books: \"Ledger\" MCP",
            "--proxy-port",
            "3201",
            "--reference",
            "hive",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "path": "manifests/books.yaml",
            "service": "books",
            "customer": "realchoice",
            "proxy_port": 3201,
        })
    );
    let d =
        entraform::manifest::load_service(&dir.path().join("manifests/books.yaml"), None).unwrap();
    assert_eq!(d.display_name, "Books: \"Ledger\" MCP");
    assert_eq!(d.host, "realchoice.axelabs.ai");
    assert_eq!(d.reference.as_deref(), Some("hive"));
}

#[test]
fn without_a_terminal_a_missing_customer_names_the_flag() {
    let dir = project();
    let out = run(dir.path(), &["new", "ledger"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("missing --customer"), "{err}");
    assert!(err.contains("hint: pass --customer axe"), "{err}");
    assert!(!dir.path().join("manifests/ledger.yaml").exists());
}

#[test]
fn refuses_to_overwrite() {
    let dir = project();
    let before = std::fs::read_to_string(dir.path().join("manifests/hive.yaml")).unwrap();
    let out = run(dir.path(), &["new", "hive", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refusing to overwrite manifests/hive.yaml"));
    let after = std::fs::read_to_string(dir.path().join("manifests/hive.yaml")).unwrap();
    assert_eq!(before, after);
}

#[test]
fn taken_proxy_port_is_a_usage_error_with_the_free_one() {
    let dir = project();
    let out = run(
        dir.path(),
        &["new", "ledger", "--yes", "--proxy-port", "3152"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--proxy-port: 3152 is already used by manifests/blueprint.yaml"),
        "{err}"
    );
    assert!(err.contains("pass --proxy-port 3161"), "{err}");
}

#[test]
fn bad_service_name_and_unknown_customer() {
    let dir = project();
    let out = run(dir.path(), &["new", "Ledger", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("\"Ledger\" is not a valid service name"),
        "{err}"
    );
    assert!(err.contains("use \"ledger\""), "{err}");
    let out = run(dir.path(), &["new", "ledger", "--customer", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected one of: axe, realchoice"));
}

#[test]
fn broken_defaults_are_reported_with_their_location() {
    let dir = project();
    std::fs::write(
        dir.path().join("manifests/defaults.yaml"),
        DEFAULTS.replace("host: axe.axelabs.ai", "host: https://axe.axelabs.ai/"),
    )
    .unwrap();
    let out = run(dir.path(), &["new", "ledger", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let line = DEFAULTS
        .lines()
        .position(|l| l.contains("host: axe.axelabs.ai"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "manifests/defaults.yaml:{line}:11: customers.axe.host: \"https://axe.axelabs.ai/\" is not a host name"
        )),
        "{err}"
    );
    assert!(err.contains("hint: write \"axe.axelabs.ai\""), "{err}");
}

#[test]
fn first_service_in_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("org.yaml"), DEFAULTS).unwrap();
    let out = run(
        dir.path(),
        &[
            "--defaults",
            "org.yaml",
            "new",
            "frame",
            "--yes",
            "--dir",
            "svc",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let d = entraform::manifest::load_service(
        &dir.path().join("svc/frame.yaml"),
        Some(&dir.path().join("org.yaml")),
    )
    .unwrap();
    assert_eq!(d.deploy.proxy_port, 3131);
    assert_eq!(d.reference, None);
    assert!(text(&out.stderr).contains("entraform plan svc/frame.yaml --defaults org.yaml"));
}
