//! `entraform explain`: every code and message of the seeds, in any of the accepted forms;
//! unknown input gets the closest entries and exit 1.

use std::process::{Command, Output};

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_entraform"))
        .args(args)
        .output()
        .unwrap()
}

fn first_id(query: &str) -> String {
    let out = explain(&["--output", "json", "explain", query]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["query"], query);
    let m = &doc["matches"][0];
    for field in ["title", "cause", "fix", "verify"] {
        assert!(
            m[field].as_str().is_some_and(|s| !s.is_empty()),
            "{query}: {field}"
        );
    }
    assert!(!m["who"].as_array().unwrap().is_empty());
    m["id"].as_str().unwrap().to_string()
}

#[test]
fn codes_in_every_accepted_form() {
    for code in [
        "700016", "9010010", "7000218", "65001", "50011", "7000215", "7000222", "500011", "90002",
        "70011",
    ] {
        let id = format!("AADSTS{code}");
        assert_eq!(first_id(&id), id);
        assert_eq!(first_id(code), id);
        assert_eq!(first_id(&id.to_lowercase()), id);
    }
    // A pasted login error.
    assert_eq!(
        first_id(
            "AADSTS700016: Application with identifier '482598f7-540c-462c-9dfd-b957651eb804' was not found in the directory 'axellc.com'."
        ),
        "AADSTS700016"
    );
    // The connector's error URL.
    assert_eq!(
        first_id(
            "https://claude.ai/customize/connectors?error_code=mcp_client_invalid&entra_aadsts_code=9010010&entra_trace_id=x"
        ),
        "AADSTS9010010"
    );
}

#[test]
fn connector_and_server_messages() {
    let cases = [
        (
            "421 Misdirected Request: Invalid Host header",
            "invalid-host-header",
        ),
        (
            "RuntimeError: Task group is not initialized. Make sure to use run().",
            "task-group-not-initialized",
        ),
        ("Audience doesn't match", "audience-mismatch"),
        (
            "the integration may not be available right now due to a temporary error",
            "integration-unavailable",
        ),
        (
            "the integration rejected the credentials, so the connection was reverted",
            "rejected-credentials",
        ),
        (
            "Authorization with the MCP server failed",
            "authorization-failed",
        ),
        ("Couldn\u{2019}t reach the MCP server", "could-not-reach"),
        ("error_code=mcp_client_invalid", "mcp-client-invalid"),
        (
            "Connection has expired. You can reconnect to re-authenticate",
            "connection-expired",
        ),
        (
            "the secret in the vault is 270 characters",
            "secret-270-characters",
        ),
        ("This Send has been deleted", "bitwarden-send-gone"),
    ];
    for (query, id) in cases {
        assert_eq!(first_id(query), id, "{query}");
    }
}

#[test]
fn text_output_has_every_part() {
    let out = explain(&["explain", "Invalid", "Host", "header"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "who acts: operator",
        "cause:",
        "fix:",
        "verify:",
        "_MCP_ALLOWED_HOSTS",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(out.stderr.is_empty());
}

#[test]
fn unknown_input_gets_the_three_closest() {
    let out = explain(&["explain", "AADSTS70016"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("AADSTS70016 is not in entraform's table"),
        "{err}"
    );
    let listed: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("AADSTS") || l.trim_start().contains('-'))
        .filter(|l| l.starts_with("  ") || l.starts_with("hint"))
        .collect();
    assert!(err.contains("AADSTS700016"), "{err}");
    assert!(listed.len() >= 3, "{err}");
    assert!(err.contains("https://login.microsoftonline.com/error?code=70016"));

    let out = explain(&["--output", "json", "explain", "the tunnel is grumpy"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let hint = doc["error"]["hint"].as_str().unwrap();
    assert_eq!(
        hint.lines().filter(|l| l.starts_with("  ")).count(),
        3,
        "{hint}"
    );
}
