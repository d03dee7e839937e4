//! `verify`: the Entra half (#11–#13 and consent, including the 270-character vault value and
//! running without credentials) driving the real binary against the in-process TLS emulator,
//! and the probes of the running server (`probes`).

mod probes;

use serde_json::{Value, json};

use crate::support::fixture::{applied_frame_and_hive, defaults_with_file_vault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_app_the_sp_the_vault_secret_and_consent() {
    let fx = applied_frame_and_hive().await;

    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    let status = |doc: &Value, id: &str| -> String {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}: {doc:#}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for id in ["#11a", "#11b", "#11c", "#12", "#13a", "#13b", "consent"] {
        assert_eq!(status(&doc, id), "pass", "{id}: {doc:#}");
    }

    // #11 and consent break behind the tool's back
    fx.emu
        .edit_app(
            "axe-hive-mcp",
            &json!({"api": {"requestedAccessTokenVersion": null},
                    "identifierUris": ["api://hive"]}),
        )
        .unwrap();
    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    assert_eq!(status(&doc, "#11a"), "fail");
    assert_eq!(status(&doc, "#11b"), "fail");
    assert_eq!(status(&doc, "#11c"), "pass");

    // The 270-character "secret" (a tool's stderr glued to it) in a command vault.
    let glued = format!(
        "{}WARNING:the-keychain-is-locked.{}",
        "abc~DEF.ghi_jkl-0123456789abcdefghijklmnop",
        "x".repeat(270 - 42 - 31)
    );
    assert_eq!(glued.len(), 270);
    // the value sits in a file the `get` command prints, as a vault would hold it
    fx.write("glued.txt", &glued);
    let defaults = defaults_with_file_vault().replace(
        "vault:\n  backend: file\n  path: vault.json",
        &format!(
            "vault:\n  backend: command\n  push: [sh, -c, \"cat >/dev/null\", push, \"{{path}}\"]\n  get: [sh, -c, 'cat \"$1\"', get, \"{}\", \"{{path}}\"]",
            fx.path("glued.txt").display()
        ),
    );
    fx.write("glued-defaults.yaml", &defaults);
    let out = fx
        .run(&[
            "--output",
            "json",
            "--defaults",
            "glued-defaults.yaml",
            "verify",
            "manifests/hive.yaml",
        ])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    let c13 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "#13a")
        .unwrap();
    assert_eq!(c13["status"], "fail");
    let text = format!("{} {}", c13["detail"], c13["fix"]);
    assert!(text.contains("270"), "{c13:#}");
    assert!(text.contains("stderr"), "{c13:#}");
    assert!(!out.stdout.contains(&glued) && !out.stderr.contains(&glued));
    assert_eq!(status(&doc, "#13b"), "skip");

    // Without any Graph credential the Entra checks fail with the reason, not skipped.
    let out = fx
        .run_with(
            &["--output", "json", "verify", "manifests/hive.yaml"],
            false,
        )
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    for id in ["#11", "#12", "#13b", "consent"] {
        assert_eq!(status(&doc, id), "fail", "{id}: {doc:#}");
    }
    let c11 = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "#11")
        .unwrap();
    assert!(
        c11["detail"]
            .as_str()
            .unwrap()
            .contains("cannot read the tenant"),
        "{c11:#}"
    );
    assert!(c11["fix"].is_string());
    // the vault is still read and checked
    assert_eq!(status(&doc, "#13a"), "pass");

    fx.scan_secrets(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_consent_and_token_when_missing() {
    let fx = applied_frame_and_hive().await;
    // a wrong secret in the vault (well-shaped) and the admin consent gone
    let vault_path = fx.path("manifests/vault.json");
    let mut vault: Value =
        serde_json::from_str(&std::fs::read_to_string(&vault_path).unwrap()).unwrap();
    let wrong = "zzz~DEF.ghi_jkl-0123456789abcdefghijklmnop";
    let mut replaced = false;
    if let Some(map) = vault.as_object_mut() {
        for (_, v) in map.iter_mut() {
            replace_strings(v, "hive/axe/mcp-client-secret", wrong, &mut replaced);
        }
        if let Some(v) = map.get_mut("hive/axe/mcp-client-secret") {
            *v = json!(wrong);
            replaced = true;
        }
    }
    assert!(replaced, "vault layout: {vault:#}");
    std::fs::write(&vault_path, vault.to_string()).unwrap();
    let state = fx.emu.state_json();
    let hive_sp = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["displayName"] == "Hive MCP")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(fx.emu.ca_cert_pem().unwrap().as_bytes()).unwrap(),
        ])
        .build()
        .unwrap();
    for g in state["oauth2PermissionGrants"].as_array().unwrap() {
        if g["clientId"] == hive_sp.as_str() {
            let r = client
                .delete(format!(
                    "{}/oauth2PermissionGrants/{}",
                    fx.emu.control_url(),
                    g["id"].as_str().unwrap()
                ))
                .bearer_auth(fx.emu.control_token().expose())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{r:?}");
        }
    }
    let out = fx
        .run(&["--output", "json", "verify", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    let doc = out.json();
    let check = |id: &str| -> Value {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(check("#13a")["status"], "pass");
    assert_eq!(check("#13b")["status"], "fail");
    assert!(
        check("#13b")["detail"]
            .as_str()
            .unwrap()
            .contains("7000215"),
        "{:#}",
        check("#13b")
    );
    assert_eq!(check("consent")["status"], "fail");
    assert!(
        check("consent")["fix"]
            .as_str()
            .unwrap()
            .contains("adminconsent"),
        "{:#}",
        check("consent")
    );
    assert!(!out.stdout.contains(wrong));
    fx.scan_secrets(&[]);
}

/// Replace the string stored under `key` anywhere in a JSON tree.
fn replace_strings(v: &mut Value, key: &str, with: &str, done: &mut bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == key && child.is_string() {
                    *child = json!(with);
                    *done = true;
                } else {
                    replace_strings(child, key, with, done);
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                replace_strings(i, key, with, done);
            }
        }
        _ => {}
    }
}
