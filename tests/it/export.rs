//! `export`, driving the real binary against the in-process TLS emulator: a reference file
//! drift reads, appId references, and a secret scan of every output.

use serde_json::{Value, json};

use crate::support::fixture::{applied_frame_and_hive, differing};
use crate::support::{GRAPH_APP_ID, HOST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_a_reference_file_drift_reads_and_app_id_references_work() {
    let fx = applied_frame_and_hive().await;

    // export to stdout (by manifest) and to a file (by appId)
    let out = fx.run(&["export", "manifests/frame.yaml"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let exported = out.json();
    assert_eq!(exported["format"], "entraform.reference/v1");
    assert_eq!(exported["service"], "frame");
    assert_eq!(exported["host"], HOST);
    assert_eq!(exported["displayName"], "Frame MCP");
    let frame_app_id = exported["application"]["appId"]
        .as_str()
        .unwrap()
        .to_string();
    let creds = exported["application"]["passwordCredentials"]
        .as_array()
        .unwrap();
    assert!(!creds.is_empty());
    for c in creds {
        assert!(
            c.get("hint").is_none() && c.get("secretText").is_none(),
            "{c}"
        );
    }
    assert!(exported["servicePrincipal"]["id"].is_string());
    let grants: Vec<(&str, &str)> = exported["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["resource"].as_str().unwrap(),
                g["scope"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        grants,
        [(GRAPH_APP_ID, "User.Read"), ("self", "mcp.access")]
    );

    let out = fx
        .run(&["export", &frame_app_id, "--out", "refs/frame.json"])
        .await;
    assert_eq!(out.code, 1, "refs/ does not exist yet: {out:?}");
    std::fs::create_dir(fx.path("refs")).unwrap();
    let out = fx
        .run(&["export", &frame_app_id, "--out", "refs/frame.json"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("refs/frame.json"), "{out:?}");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path("refs/frame.json")).unwrap())
            .unwrap();
    assert_eq!(
        file, exported,
        "by appId and by manifest export the same document"
    );
    // no temp file left behind
    assert_eq!(std::fs::read_dir(fx.path("refs")).unwrap().count(), 1);

    // --reference FILE and --reference APP_ID agree with the manifest reference
    for reference in ["refs/frame.json", frame_app_id.as_str(), "frame"] {
        let out = fx
            .run(&[
                "--output",
                "json",
                "drift",
                "manifests/hive.yaml",
                "--reference",
                reference,
            ])
            .await;
        assert_eq!(out.code, 0, "--reference {reference}: {out:?}");
        let report = out.json();
        assert!(differing(&report).is_empty(), "{report:#}");
        assert_eq!(report["reference"]["app_id"], frame_app_id.as_str());
    }

    // The file keeps frame's shape after frame itself changes: hive still matches the file,
    // and no longer matches live frame.
    fx.emu
        .edit_app(
            &frame_app_id,
            &json!({"signInAudience": "AzureADMultipleOrgs"}),
        )
        .unwrap();
    let out = fx
        .run(&[
            "drift",
            "manifests/hive.yaml",
            "--reference",
            "refs/frame.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = fx
        .run(&["--output", "json", "drift", "manifests/hive.yaml"])
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(differing(&out.json()), ["signInAudience"]);

    // A plain Graph application JSON works as a reference too (no SP/consent rows).
    let mut plain = file["application"].clone();
    plain["signInAudience"] = json!("AzureADMyOrg");
    fx.write("refs/plain.json", &plain.to_string());
    let out = fx
        .run(&[
            "--output",
            "json",
            "drift",
            "manifests/hive.yaml",
            "--reference",
            "refs/plain.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["field"] != "servicePrincipal")
    );

    fx.scan_secrets(&["refs/frame.json"]);
}
