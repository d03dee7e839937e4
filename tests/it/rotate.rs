//! `entraform rotate` driven as a binary against the in-process emulator: for a secret only
//! machines hold, overlap then pruning (the old secret works during the overlap and is refused
//! once pruned), pruning of a seeded history, foreign credentials; for a secret people hold (the
//! default), the old one valid until `--prune-old`; `--all` following each manifest's policy;
//! `--if-expiring-within`; a vault failing mid-rotation (no orphan credential, the vault's
//! previous secret back), unknown outcomes settled (a lost `addPassword` answer, a push that
//! fails after writing, a vault changed by someone else); `--all` with a failing service; and a
//! secret scan of every output.

use crate::support::HIVE_VAULT_PATH as HIVE_PATH;
use crate::support::world;

use entraform::emulator::{Faults, LostAnswer};
use serde_json::{Value, json};
use world::*;

const MARK: &str = "entraform hive";

fn key_ids(creds: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = creds
        .iter()
        .map(|c| c["keyId"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Every Graph request (not login) as `METHOD /path`, `$batch` inner requests as `  METHOD /path`.
fn graph_log(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for r in w.emu.requests() {
        if !r.path.contains("/v1.0/") {
            continue;
        }
        out.push(format!(
            "{} {}",
            r.method,
            r.path.trim_start_matches("/v1.0")
        ));
        for i in &r.inner {
            out.push(format!(
                "  {} {}",
                i.method,
                i.path.trim_start_matches("/v1.0")
            ));
        }
    }
    out
}

fn graph_writes(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for r in w.emu.requests() {
        let all: Vec<_> = if r.inner.is_empty() {
            vec![r]
        } else {
            r.inner.clone()
        };
        for r in all {
            if r.method != "GET" && r.path.contains("/v1.0/") && !r.path.ends_with("$batch") {
                out.push(format!("{} {}", r.method, r.path));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_old_secret_works_through_the_overlap_and_is_refused_once_pruned() {
    let old = secret_value("old");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![password(MARK, &old, 30, 700)])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    // Only machines hold this secret: the overlap then pruning policy.
    w.manifest_line("hive", "secret: {held_by: machines}");
    w.vault_put(HIVE_PATH, &old);
    let before = key_ids(&w.credentials(HIVE_APP_ID));
    let object_id = w.emu.state_json()["applications"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.emu.clear_requests();

    // 1. Rotate with the default 7-day overlap: a new secret, nothing pruned.
    let (code, out1, err1) = w.run(&["rotate", "manifests/hive.yaml"]).await;
    assert_eq!(code, 0, "stdout:\n{out1}\nstderr:\n{err1}");
    let new = w
        .vault_get(HIVE_PATH)
        .expect("the vault holds the new secret");
    assert_ne!(new, old);
    let creds = w.credentials(HIVE_APP_ID);
    assert_eq!(creds.len(), 2, "{creds:?}");
    w.token(HIVE_APP_ID, &new)
        .await
        .expect("the new secret works");
    w.token(HIVE_APP_ID, &old)
        .await
        .expect("the old secret still works during the overlap");
    assert!(out1.contains("rotated"), "{out1}");
    // Graph: the look-ups in one $batch, then addPassword (the proof goes to the login endpoint).
    assert_eq!(
        graph_log(&w),
        [
            "POST /$batch".to_string(),
            "  GET /applications(uniqueName='axe-hive-mcp')".into(),
            "  GET /applications".into(),
            format!("POST /applications/{object_id}/addPassword"),
        ]
    );
    w.emu.clear_requests();
    assert!(out1.contains("overlap"), "the kept secret says why: {out1}");
    let new_key = creds
        .iter()
        .find(|c| !before.contains(&c["keyId"].as_str().unwrap().to_string()))
        .unwrap()["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        creds
            .iter()
            .find(|c| c["keyId"] == new_key.as_str())
            .unwrap()["displayName"],
        MARK
    );

    // 2. Once the overlap is over (here: 0 days) a cron run that mints nothing prunes the old.
    let (code, out2, err2) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--overlap-days",
            "0",
            "--if-expiring-within",
            "30",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out2}\nstderr:\n{err2}");
    let doc = json(&out2);
    let svc = &doc["services"][0];
    assert_eq!(svc["outcome"], "skipped");
    assert_eq!(svc["policy"], "machines");
    assert_eq!(svc["pruned"][0]["key_id"], before[0].as_str());
    assert_eq!(svc["kept"][0]["reason"], "in_vault");
    assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), vec![new_key.clone()]);
    assert_eq!(
        graph_log(&w)[3..],
        [format!("POST /applications/{object_id}/removePassword")]
    );
    let refused = w.token(HIVE_APP_ID, &old).await.expect_err("pruned secret");
    assert!(refused.starts_with("AADSTS7000215"), "{refused}");
    w.token(HIVE_APP_ID, &new)
        .await
        .expect("the new secret works");
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(new.as_str()));

    // The audit log: the rotation, the no-op run, the prune (keyIds and hints, no values).
    let audit = w.audit();
    let actions: Vec<(String, String)> = audit
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("rotate".into(), "success".into()),
            ("rotate".into(), "no_change".into()),
            ("remove_secret".into(), "success".into()),
        ],
        "{audit:?}"
    );
    assert_eq!(audit[0]["key_id"], new_key.as_str());
    assert_eq!(audit[2]["key_id"], before[0].as_str());
    assert_eq!(audit[2]["hint"], &old[..3]);

    w.assert_no_secret_in(&[&out1, &err1, &out2, &err2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_history_is_pruned_only_past_the_window_and_foreign_secrets_stay() {
    let (a, b, f) = (
        secret_value("aaa"),
        secret_value("bbb"),
        secret_value("fff"),
    );
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![
            password("made with az ad app credential reset", &f, 500, 200),
            password(MARK, &a, 400, 330),
            password(MARK, &b, 10, 720),
        ])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    w.manifest_line("hive", "secret: {held_by: machines}");
    w.vault_put(HIVE_PATH, &b);
    let key_of = |secret: &str| -> String {
        w.credentials(HIVE_APP_ID)
            .iter()
            .find(|c| c["hint"] == secret[..3])
            .unwrap()["keyId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ka, kb, kf) = (key_of(&a), key_of(&b), key_of(&f));

    let (code, out, err) = w
        .run(&["rotate", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    let svc = &doc["services"][0];
    assert_eq!(svc["outcome"], "rotated");
    // a's successor b is 10 days old (> 7): a goes. b's successor is the new one: it stays.
    let pruned: Vec<&str> = svc["pruned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(pruned, [ka.as_str()]);
    let reason = |key: &str| -> Value {
        svc["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} not kept: {svc}"))
    };
    assert_eq!(reason(&kb)["reason"], "in_overlap");
    assert_eq!(reason(&kf)["reason"], "foreign");
    assert_eq!(reason(&kf)["by_entraform"], false);
    let new_key = svc["secret"]["key_id"].as_str().unwrap().to_string();
    assert_eq!(reason(&new_key)["reason"], "in_vault");
    assert!(w.token(HIVE_APP_ID, &a).await.is_err(), "a was removed");
    w.token(HIVE_APP_ID, &b).await.expect("b is in its overlap");
    w.token(HIVE_APP_ID, &f)
        .await
        .expect("the foreign secret stays");

    // --prune-foreign with no overlap: b and the foreign one go; the vault's stays.
    let (code, out2, err2) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--if-expiring-within",
            "1",
            "--overlap-days",
            "0",
            "--prune-foreign",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out2}\nstderr:\n{err2}");
    assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), vec![new_key]);
    assert!(out2.contains("skipped"), "{out2}");
    w.assert_no_secret_in(&[&out, &err, &out2, &err2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_expiring_within_is_a_no_op_until_the_secret_in_use_nears_its_end() {
    let fresh = secret_value("frs");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![password(MARK, &fresh, 5, 700)])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    w.vault_put(HIVE_PATH, &fresh);
    w.emu.clear_requests();
    let (code, out, err) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--if-expiring-within",
            "30",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("skipped"), "{out}");
    assert!(graph_writes(&w).is_empty(), "{:?}", graph_writes(&w));
    assert_eq!(w.credentials(HIVE_APP_ID).len(), 1);
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(fresh.as_str()));

    // A window longer than the days left: rotate.
    let (code, out2, err2) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--if-expiring-within",
            "701",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out2}\nstderr:\n{err2}");
    assert!(out2.contains("rotated"), "{out2}");
    assert_eq!(w.credentials(HIVE_APP_ID).len(), 2);
    assert_ne!(w.vault_get(HIVE_PATH).as_deref(), Some(fresh.as_str()));
    w.assert_no_secret_in(&[&out, &err, &out2, &err2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_failing_mid_rotation_leaves_no_orphan_and_the_previous_secret() {
    let old = secret_value("old");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![password(MARK, &old, 30, 700)])]}),
        &["hive"],
        VaultKind::Command,
    )
    .await;
    w.vault_put(HIVE_PATH, &old);
    let before = key_ids(&w.credentials(HIVE_APP_ID));
    let issued_before = w.emu.issued_secrets().len();
    let mut outputs = Vec::new();

    // The write itself fails.
    w.arm("fail-push");
    let (code, out, err) = w.run(&["rotate", "manifests/hive.yaml"]).await;
    w.disarm("fail-push");
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("storing the new secret failed"), "{err}");
    assert!(
        err.contains("connection refused"),
        "the vault's own words: {err}"
    );
    assert!(err.contains("was removed again"), "{err}");
    assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), before, "no orphan");
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(old.as_str()));
    w.token(HIVE_APP_ID, &old)
        .await
        .expect("the old secret works");
    outputs.push(out);
    outputs.push(err);

    // The write lands, then the read-back fails: the credential goes, the old value comes back.
    w.arm("arm-get-failure");
    let (code, out, err) = w
        .run(&["rotate", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("session expired"), "{err}");
    assert!(err.contains("previous secret was put back"), "{err}");
    let doc = json(&out);
    assert_eq!(doc["ok"], false);
    assert!(doc["error"]["message"].as_str().unwrap().contains("hive"));
    assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), before, "no orphan");
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(old.as_str()));
    w.token(HIVE_APP_ID, &old)
        .await
        .expect("the old secret works");
    outputs.push(out);
    outputs.push(err);

    // Both attempts are in the audit log as rolled back; the emulator minted two secrets.
    let audit = w.audit();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit.iter().all(|r| r["outcome"] == "rolled_back"),
        "{audit:?}"
    );
    assert_eq!(w.emu.issued_secrets().len(), issued_before + 2);
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    w.assert_no_secret_in(&refs);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_all_reports_each_service_and_names_the_failures() {
    let (h, f) = (secret_value("hhh"), secret_value("fff"));
    let w = World::new(
        json!({"applications": [
            app("hive", HIVE_APP_ID, vec![password(MARK, &h, 30, 700)]),
            app("frame", FRAME_APP_ID, vec![password("entraform frame", &f, 30, 700)]),
        ]}),
        // blueprint pins an app the tenant does not have.
        &["hive", "frame", "blueprint"],
        VaultKind::File,
    )
    .await;
    w.vault_put(HIVE_PATH, &h);
    w.vault_put("frame/axe/mcp-client-secret", &f);
    w.emu.clear_requests();
    let (code, out, err) = w
        .run(&["rotate", "--all", "manifests", "--output", "json"])
        .await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    assert_eq!(doc["ok"], false);
    let by: std::collections::BTreeMap<String, Value> = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["service"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    assert_eq!(by.len(), 3);
    assert_eq!(by["hive"]["outcome"], "rotated", "{doc}");
    assert_eq!(by["frame"]["outcome"], "rotated", "{doc}");
    assert_eq!(by["blueprint"]["outcome"], "failed");
    let msg = by["blueprint"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("blueprint") && msg.contains(BLUEPRINT_APP_ID),
        "{msg}"
    );
    assert!(
        by["blueprint"]["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("app_id"),
        "{doc}"
    );
    assert!(err.contains("1 of 3 service(s) failed: blueprint"), "{err}");
    assert_ne!(w.vault_get(HIVE_PATH).as_deref(), Some(h.as_str()));
    assert_ne!(
        w.vault_get("frame/axe/mcp-client-secret").as_deref(),
        Some(f.as_str())
    );
    // The look-ups of all three services went out in the first request, one $batch.
    let first = w
        .emu
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/v1.0/"))
        .unwrap();
    assert!(first.path.ends_with("$batch"), "{}", first.path);
    assert_eq!(
        first.inner.len(),
        7,
        "2 look-ups each + blueprint's pinned appId"
    );

    // Text, with debug logs on stderr (scanned for secrets below): one row per service.
    let (code, out2, err2) = w.run(&["rotate", "--all", "manifests", "-vv"]).await;
    assert_eq!(code, 1, "{err2}");
    assert!(err2.contains("DEBUG"), "debug logs are on: {err2}");
    let header = out2.lines().next().unwrap();
    assert!(
        header.starts_with("SERVICE") && header.contains("RESULT"),
        "{out2}"
    );
    for s in ["hive", "frame", "blueprint"] {
        assert!(
            out2.lines().skip(1).take(3).any(|l| l.starts_with(s)),
            "{s} row: {out2}"
        );
    }
    w.assert_no_secret_in(&[&out, &err, &out2, &err2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_without_an_app_says_to_apply_first() {
    let w = World::new(json!({"applications": []}), &["hive"], VaultKind::File).await;
    let (code, out, err) = w.run(&["rotate", "manifests/hive.yaml"]).await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("no application"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("entraform apply"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    assert!(graph_writes(&w).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_needs_a_manifest_or_all() {
    let w = World::new(json!({"applications": []}), &["hive"], VaultKind::File).await;
    let (code, _, err) = w.run(&["rotate"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = w
        .run(&["rotate", "manifests/hive.yaml", "--all", "manifests"])
        .await;
    assert_eq!(code, 2, "{err}");
}

/// The hive app (seeded with `old` in the vault) and its object id.
async fn hive_world(vault: VaultKind) -> (World, String, String) {
    let old = secret_value("old");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![password(MARK, &old, 30, 700)])]}),
        &["hive"],
        vault,
    )
    .await;
    w.vault_put(HIVE_PATH, &old);
    let object_id = w.emu.state_json()["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["appId"] == HIVE_APP_ID)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (w, old, object_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_add_password_is_settled_and_never_sent_again() {
    for lost in [LostAnswer::GatewayTimeout, LostAnswer::Reset] {
        let (w, old, object_id) = hive_world(VaultKind::File).await;
        let before = key_ids(&w.credentials(HIVE_APP_ID));
        w.emu.clear_requests();
        // Graph makes the credential, then the answer is lost (a 504 from the gateway, or
        // the connection drops).
        w.emu
            .set_faults(Faults {
                lose_answer_next: 1,
                lost_answer: lost,
                matching: Some("addPassword".into()),
                ..Faults::default()
            })
            .unwrap();
        let (code, out, err) = w
            .run(&["rotate", "manifests/hive.yaml", "--output", "json"])
            .await;
        assert_eq!(code, 1, "{lost:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains("was not sent again"), "{lost:?}: {err}");
        assert!(err.contains("which was removed again"), "{lost:?}: {err}");
        // One addPassword, then the credentials read, then the removal; nothing else.
        let log = graph_log(&w);
        assert_eq!(
            log[3..],
            [
                format!("POST /applications/{object_id}/addPassword"),
                format!("GET /applications/{object_id}"),
                format!("POST /applications/{object_id}/removePassword"),
            ],
            "{lost:?}"
        );
        assert_eq!(
            key_ids(&w.credentials(HIVE_APP_ID)),
            before,
            "{lost:?}: no orphan"
        );
        assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(old.as_str()));
        // The audit log names the credential found and removed.
        let audit = w.audit();
        let settled = audit
            .iter()
            .find(|r| r["outcome"] == "rolled_back")
            .unwrap_or_else(|| panic!("{lost:?}: {audit:?}"));
        assert_eq!(settled["action"], "rotate");
        assert!(settled["key_id"].is_string(), "{settled}");
        assert!(
            settled["detail"].as_str().unwrap().contains("unknown"),
            "{settled}"
        );
        w.assert_no_secret_in(&[&out, &err]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_add_password_that_made_nothing_is_audited() {
    // A 504 from the front end before the service ran: nothing to undo, and it says so.
    let (w, old, _) = hive_world(VaultKind::File).await;
    let before = key_ids(&w.credentials(HIVE_APP_ID));
    w.emu
        .set_faults(Faults {
            error_next: 100,
            retry_after_secs: 0.01,
            matching: Some("addPassword".into()),
            ..Faults::default()
        })
        .unwrap();
    let (code, out, err) = w.run(&["rotate", "manifests/hive.yaml"]).await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("no credential of this attempt"), "{err}");
    assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), before);
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(old.as_str()));
    let audit = w.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["outcome"], "failed");
    assert!(audit[0]["key_id"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_that_fails_after_writing_is_undone() {
    // The push updates the store, then exits 1 (or is killed): the vault held the new,
    // now removed, secret; the rollback sees it there and puts the previous one back.
    for control in ["push-then-fail", "push-then-die"] {
        let (w, old, _) = hive_world(VaultKind::Command).await;
        let before = key_ids(&w.credentials(HIVE_APP_ID));
        w.arm(control);
        let (code, out, err) = w.run(&["rotate", "manifests/hive.yaml"]).await;
        assert_eq!(code, 1, "{control}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(
            err.contains("the vault held the new secret; the vault's previous secret was put back"),
            "{control}: {err}"
        );
        assert_eq!(key_ids(&w.credentials(HIVE_APP_ID)), before);
        assert_eq!(
            w.vault_get(HIVE_PATH).as_deref(),
            Some(old.as_str()),
            "{control}: the vault holds a working secret again"
        );
        w.token(HIVE_APP_ID, &old)
            .await
            .expect("the old secret works");
        w.assert_no_secret_in(&[&out, &err]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_leaves_a_vault_changed_by_someone_else_alone() {
    let (w, _old, _) = hive_world(VaultKind::Command).await;
    let foreign = secret_value("frn");
    w.arm_with("foreign-value", &foreign);
    w.arm("push-race");
    let (code, out, err) = w.run(&["rotate", "manifests/hive.yaml"]).await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("changed by someone else"), "{err}");
    assert!(err.contains("left alone"), "{err}");
    assert_eq!(
        w.vault_get(HIVE_PATH).as_deref(),
        Some(foreign.as_str()),
        "the other operator's value stays"
    );
    w.assert_no_secret_in(&[&out, &err]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_people_hold_stays_valid_until_an_explicit_prune_old() {
    let old = secret_value("old");
    let frn = secret_value("frn");
    let w = World::new(
        json!({"applications": [app("hive", HIVE_APP_ID, vec![
            password("made with az ad app credential reset", &frn, 400, 300),
            password(MARK, &old, 30, 700),
        ])]}),
        &["hive"],
        VaultKind::File,
    )
    .await;
    w.vault_put(HIVE_PATH, &old);
    let key_of = |secret: &str| -> String {
        w.credentials(HIVE_APP_ID)
            .iter()
            .find(|c| c["hint"] == secret[..3])
            .unwrap()["keyId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (old_key, frn_key) = (key_of(&old), key_of(&frn));
    let mut outputs = Vec::new();

    // 1. A rotation, even with no overlap asked for: the new secret in the vault, the old one
    //    still valid, and the output says who must get the new one and how.
    let (code, out, err) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--overlap-days",
            "0",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    let svc = &doc["services"][0];
    assert_eq!(svc["outcome"], "rotated");
    assert_eq!(svc["policy"], "people");
    assert_eq!(svc["pruned"], json!([]), "{svc}");
    let kept = |svc: &Value, key: &str| -> Value {
        svc["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} not kept: {svc}"))
    };
    assert_eq!(kept(svc, &old_key)["reason"], "held_by_people");
    assert_eq!(kept(svc, &frn_key)["reason"], "foreign");
    let hand_off = svc["hand_off"].as_str().unwrap();
    assert!(
        hand_off.contains("claude.ai")
            && hand_off.contains("entraform send manifests/hive.yaml --to PERSON")
            && hand_off.contains("--prune-old"),
        "{hand_off}"
    );
    let new = w.vault_get(HIVE_PATH).unwrap();
    assert_ne!(new, old);
    let new_key = svc["secret"]["key_id"].as_str().unwrap().to_string();
    w.token(HIVE_APP_ID, &new)
        .await
        .expect("the new secret works");
    w.token(HIVE_APP_ID, &old)
        .await
        .expect("the old secret still works: people hold it");
    outputs.extend([out, err]);

    // 2. A cron run later prunes nothing on its own schedule.
    let (code, out, err) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--overlap-days",
            "0",
            "--if-expiring-within",
            "30",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("skipped") && out.contains("people"), "{out}");
    assert_eq!(w.credentials(HIVE_APP_ID).len(), 3);
    outputs.extend([out, err]);

    // 3. `secrets` shows both, and which one the vault holds.
    let (code, out, err) = w
        .run(&["secrets", "manifests/hive.yaml", "--output", "json"])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    let s = &doc["services"][0];
    assert_eq!(s["held_by"], "people");
    let row = |key: &str| -> Value {
        s["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key_id"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&new_key)["in_vault"], true);
    assert_eq!(row(&old_key)["in_vault"], false);
    assert_eq!(row(&old_key)["valid"], true);
    assert!(
        s["summary"].as_str().unwrap().contains("--prune-old"),
        "{s}"
    );
    outputs.extend([out, err]);

    // 4. `--prune-old`: mints nothing, removes the old one; the vault's and the foreign stay.
    w.emu.clear_requests();
    let (code, out, err) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--prune-old",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc = json(&out);
    let svc = &doc["services"][0];
    assert_eq!(svc["outcome"], "pruned");
    assert_eq!(doc["prune_old"], true);
    assert_eq!(svc["secret"], Value::Null);
    assert_eq!(svc["pruned"][0]["key_id"], old_key.as_str());
    assert_eq!(svc["pruned"].as_array().unwrap().len(), 1);
    assert_eq!(kept(svc, &new_key)["reason"], "in_vault");
    assert_eq!(kept(svc, &frn_key)["reason"], "foreign");
    let writes = graph_writes(&w);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].ends_with("/removePassword"), "{writes:?}");
    let mut left = key_ids(&w.credentials(HIVE_APP_ID));
    let mut want = vec![new_key.clone(), frn_key.clone()];
    want.sort();
    left.sort();
    assert_eq!(left, want);
    assert!(w.token(HIVE_APP_ID, &old).await.is_err(), "pruned");
    w.token(HIVE_APP_ID, &new).await.expect("the vault's works");
    assert_eq!(w.vault_get(HIVE_PATH).as_deref(), Some(new.as_str()));
    outputs.extend([out, err]);

    // 5. Again: nothing to remove, no write. With a vault that matches no credential: nothing.
    w.emu.clear_requests();
    let (code, out, err) = w
        .run(&["rotate", "manifests/hive.yaml", "--prune-old"])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("nothing to remove"), "{out}");
    assert!(graph_writes(&w).is_empty());
    outputs.extend([out, err]);
    w.vault_put(HIVE_PATH, &secret_value("unk"));
    let (code, out, err) = w
        .run(&["rotate", "manifests/hive.yaml", "--prune-old"])
        .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("nothing is pruned"), "{out}");
    assert!(graph_writes(&w).is_empty());
    assert_eq!(w.credentials(HIVE_APP_ID).len(), 2);
    outputs.extend([out, err]);

    // `--prune-old` mints nothing, so it takes no minting or overlap options.
    let (code, _, err) = w
        .run(&[
            "rotate",
            "manifests/hive.yaml",
            "--prune-old",
            "--if-expiring-within",
            "3",
        ])
        .await;
    assert_eq!(code, 2, "{err}");
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    w.assert_no_secret_in(&refs);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_all_follows_each_manifests_policy() {
    let (h, f) = (secret_value("hhh"), secret_value("fff"));
    let w = World::new(
        json!({"applications": [
            app("hive", HIVE_APP_ID, vec![password(MARK, &h, 30, 700)]),
            app("frame", FRAME_APP_ID, vec![password("entraform frame", &f, 30, 700)]),
        ]}),
        &["hive", "frame"],
        VaultKind::File,
    )
    .await;
    w.manifest_line("hive", "secret: {held_by: machines}");
    w.vault_put(HIVE_PATH, &h);
    w.vault_put("frame/axe/mcp-client-secret", &f);
    // Two runs: the first mints, the second (nothing due) prunes what the policy allows.
    for args in [
        &["rotate", "--all", "manifests", "--output", "json"][..],
        &[
            "rotate",
            "--all",
            "manifests",
            "--overlap-days",
            "0",
            "--if-expiring-within",
            "30",
            "--output",
            "json",
        ][..],
    ] {
        let (code, out, err) = w.run(args).await;
        assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        let doc = json(&out);
        for s in doc["services"].as_array().unwrap() {
            let want = if s["service"] == "hive" {
                "machines"
            } else {
                "people"
            };
            assert_eq!(s["policy"], want, "{s}");
        }
        w.assert_no_secret_in(&[&out, &err]);
    }
    assert_eq!(w.credentials(HIVE_APP_ID).len(), 1, "machines: pruned");
    assert!(w.token(HIVE_APP_ID, &h).await.is_err());
    assert_eq!(w.credentials(FRAME_APP_ID).len(), 2, "people: kept");
    w.token(FRAME_APP_ID, &f)
        .await
        .expect("frame's old secret stays");
}
