//! `entraform secrets` driven as a binary against the in-process emulator: every credential with
//! its dates and whether the vault holds it, exit 3 for an expiring or missing secret, `--all` in
//! one `$batch`, and a secret scan of every output.

use crate::support::HIVE_VAULT_PATH as HIVE_PATH;
use crate::support::world;

use serde_json::{Value, json};
use world::*;

const MARK: &str = "entraform hive";

#[tokio::test(flavor = "multi_thread")]
async fn lists_every_credential_and_marks_the_one_in_the_vault() {
    let (ours, old, az) = (
        secret_value("our"),
        secret_value("old"),
        secret_value("azz"),
    );
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![
            password("made with az", &az, 400, -3),
            password(MARK, &old, 200, 300),
            password(MARK, &ours, 20, 710),
        ])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    w.vault_put(HIVE_PATH, &ours);

    let (code, out, err) = w
        .run(&["secrets", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    let svc = &doc["services"][0];
    assert_eq!(svc["service"], "hive");
    assert_eq!(svc["app_id"], HIVE_APP_ID);
    assert_eq!(svc["health"], "ok");
    assert_eq!(svc["vault"]["state"], "holds");
    assert_eq!(svc["vault"]["hint"], &ours[..3]);
    let creds = svc["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 3);
    // Oldest first.
    let hints: Vec<&str> = creds.iter().map(|c| c["hint"].as_str().unwrap()).collect();
    assert_eq!(hints, [&az[..3], &old[..3], &ours[..3]]);
    let row = |h: &str| creds.iter().find(|c| c["hint"] == h).unwrap().clone();
    let expect = |r: &Value, in_vault: bool, by_us: bool, valid: bool, days: i64| {
        assert_eq!(r["in_vault"], in_vault, "{r}");
        assert_eq!(r["by_entraform"], by_us, "{r}");
        assert_eq!(r["valid"], valid, "{r}");
        let left = r["days_left"].as_i64().unwrap();
        assert!((days - 1..=days).contains(&left), "{r}");
        assert!(r["key_id"].as_str().unwrap().len() == 36, "{r}");
        assert!(r["created"].is_string() && r["expires"].is_string(), "{r}");
    };
    expect(&row(&ours[..3]), true, true, true, 710);
    expect(&row(&old[..3]), false, true, true, 300);
    expect(&row(&az[..3]), false, false, false, -3);
    assert_eq!(row(&az[..3])["display_name"], "made with az");

    // The text table: a header and one row per credential.
    let (code, text, err2) = w.run(&["secrets", "manifests/hive.yaml"]).await;
    assert_eq!(code, 0, "{err2}");
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    for col in [
        "SERVICE",
        "KEY ID",
        "HINT",
        "DISPLAY NAME",
        "CREATED",
        "EXPIRES",
        "DAYS LEFT",
        "IN VAULT",
        "ENTRAFORM",
    ] {
        assert!(header.contains(col), "{col} missing: {header}");
    }
    let rows: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].contains("expired 3d ago") || rows[0].contains("expired 2d ago"),
        "{text}"
    );
    assert!(rows[2].contains(" yes "), "{text}");
    assert!(text.contains("hive (axe): ok"), "{text}");

    // Listing reads, never writes.
    for r in w.emu.requests() {
        assert!(
            r.method == "GET" || r.path.ends_with("$batch") || r.path.contains("/oauth2/"),
            "unexpected {} {}",
            r.method,
            r.path
        );
        assert!(r.inner.iter().all(|i| i.method == "GET"));
    }
    w.assert_no_secret_in(&[&out, &err, &text, &err2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_3_when_the_vault_secret_expires_soon_or_is_missing() {
    let soon = secret_value("soo");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![password(MARK, &soon, 700, 12)])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    // Nothing in the vault yet.
    let (code, out, err) = w.run(&["secrets", "manifests/hive.yaml"]).await;
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("NO VALID SECRET") && out.contains("holds no secret"),
        "{out}"
    );

    // The vault holds it, and it expires in 12 days: inside the default 30-day window.
    w.vault_put(HIVE_PATH, &soon);
    let (code, out2, err2) = w
        .run(&["secrets", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 3, "stdout:\n{out2}\nstderr:\n{err2}");
    let doc = json(&out2);
    assert_eq!(doc["services"][0]["health"], "expiring");
    assert!(
        doc["services"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("entraform rotate")
    );
    // A narrower window: fine.
    let (code, _, err3) = w
        .run(&["secrets", "manifests/hive.yaml", "--warn-days", "5"])
        .await;
    assert_eq!(code, 0, "{err3}");

    // The vault holds something the app does not know.
    w.vault_put(HIVE_PATH, &secret_value("zzz"));
    let (code, out4, err4) = w.run(&["secrets", "manifests/hive.yaml"]).await;
    assert_eq!(code, 3, "{err4}");
    assert!(
        out4.contains("hint zzz") && out4.contains("matches no valid credential"),
        "{out4}"
    );
    w.assert_no_secret_in(&[&out, &err, &out2, &err2, &err3, &out4, &err4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn all_services_in_one_batch_with_a_missing_app_reported() {
    let (h, f) = (secret_value("hhh"), secret_value("fff"));
    let w = World::new(
        json!({"applications": [
            app("hive", HIVE_APP_ID, vec![password(MARK, &h, 30, 700)]),
            app("frame", FRAME_APP_ID, vec![password("frame (az ad app credential reset)", &f, 30, 700)]),
        ]}),
        &["hive", "frame", "blueprint"],
        VaultKind::Command,
    )
    .await;
    w.vault_put(HIVE_PATH, &h);
    w.vault_put("frame/axe/mcp-client-secret", &f);
    w.emu.clear_requests();
    let (code, out, err) = w
        .run(&["secrets", "--all", "manifests", "--output", "json"])
        .await;
    let doc = json(&out);
    let by = |s: &str| -> Value {
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["service"] == s)
            .cloned()
            .unwrap_or_else(|| panic!("{s}: {doc}"))
    };
    // blueprint pins an app the tenant does not have: an error for that service, exit 1.
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(by("hive")["health"], "ok");
    assert_eq!(
        by("frame")["health"],
        "ok",
        "a foreign secret in the vault counts"
    );
    assert_eq!(by("frame")["credentials"][0]["by_entraform"], false);
    assert_eq!(by("frame")["credentials"][0]["in_vault"], true);
    assert_eq!(by("blueprint")["health"], "error");
    assert!(
        by("blueprint")["error"]["message"]
            .as_str()
            .unwrap()
            .contains(BLUEPRINT_APP_ID)
    );
    assert!(err.contains("blueprint"), "{err}");
    let graph: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/v1.0/"))
        .collect();
    assert_eq!(graph.len(), 1, "one round trip: {graph:?}");
    assert!(graph[0].path.ends_with("$batch"));
    assert_eq!(graph[0].inner.len(), 7);
    w.assert_no_secret_in(&[&out, &err]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_not_created_yet_has_no_valid_secret() {
    let w = World::new(json!({"applications": []}), &["hive"], VaultKind::File).await;
    let (code, out, err) = w
        .run(&["secrets", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 3, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    assert_eq!(doc["services"][0]["health"], "no_valid_secret");
    assert!(
        doc["services"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("entraform apply")
    );
    assert_eq!(doc["services"][0]["credentials"], json!([]));
}
