//! Kill test (issue 6): SIGKILL entraform right after the emulator has handled its k-th request
//! (token requests included) of a fresh `apply` and of a `rotate`, for every k of an
//! uninterrupted run; then run the same command again without faults. It must converge with no
//! duplicate object and no orphaned credential: every credential left is one the vault holds or
//! held (an interrupted run's orphan is removed by the re-run).
//!
//! Deterministic: the emulator's latency (before each request is handled) keeps the next
//! request from being handled before the kill lands; the request log is polled every 2 ms.
// The figures each run reports on stderr are what docs/RELIABILITY.md quotes.
#![allow(clippy::print_stderr)]

use crate::support::harness;
use crate::support::reliability;
use crate::support::{HIVE, HIVE_UNIQUE, HIVE_URI, HIVE_VAULT_PATH, frame_seed};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use entraform::emulator::{EmulatorConfig, Faults};
use harness::{GOOD_PUSH, Harness, writes};
use serde_json::Value;

/// Added before the emulator handles each request: wide enough that the kill lands before the
/// next request is handled.
const LATENCY_MS: u64 = 120;

async fn tenant() -> Harness {
    Harness::with_config(EmulatorConfig::default().seed(frame_seed())).await
}

/// The binary as [`Harness::run`] starts it (same environment), not yet running.
fn command(h: &Harness, args: &[&str]) -> tokio::process::Command {
    reliability::command(
        &h.emu,
        &h.root().join("ca.pem"),
        h.root(),
        &h.root().join("tmp"),
        args,
    )
}

/// How a run under the raised latency ended (shown in the report through Debug).
#[derive(Debug)]
#[allow(dead_code)]
enum Ended {
    /// Killed once the emulator had handled this many requests.
    Killed { handled: usize, last: String },
    /// It finished before its k-th request.
    Finished { code: i32, handled: usize },
}

/// Run `args` with the raised latency; SIGKILL it as soon as the emulator has handled `k`
/// requests.
async fn run_killed_after(h: &Harness, args: &[&str], k: usize) -> Ended {
    h.emu.clear_requests();
    h.set_faults(Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    });
    let mut child = command(h, args).spawn().expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let log = h.emu.requests();
        if log.len() >= k {
            child.start_kill().expect("SIGKILL");
            let status = child.wait().await.unwrap();
            assert_eq!(status.code(), None, "killed by a signal");
            let log = h.emu.requests();
            let last = log
                .get(k - 1)
                .map(|r| format!("{} {} → {}", r.method, r.path, r.status))
                .unwrap_or_default();
            break Ended::Killed {
                handled: log.len(),
                last,
            };
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Ended::Finished {
                code: status.code().unwrap_or(-1),
                handled: h.emu.requests().len(),
            };
        }
        assert!(
            Instant::now() < deadline,
            "the run neither reached {k} requests nor ended"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    h.set_faults(Faults::default());
    ended
}

/// Requests an uninterrupted run of `args` makes under the raised latency.
async fn uninterrupted(h: &Harness, args: &[&str]) -> usize {
    match run_killed_after(h, args, usize::MAX).await {
        Ended::Finished { code: 0, handled } => handled,
        other => panic!("the uninterrupted run failed: {other:?}"),
    }
}

/// The one hive app (no duplicates), its one SP and two grants; the app's credentials.
fn converged_objects(h: &Harness, what: &str) -> Vec<Value> {
    let apps = h.apps_of(HIVE_UNIQUE, HIVE_URI);
    assert_eq!(apps.len(), 1, "{what}: exactly one hive app: {apps:#?}");
    let app = &apps[0];
    let sps = h.sps_of(app["appId"].as_str().unwrap());
    assert_eq!(sps.len(), 1, "{what}: exactly one SP: {sps:#?}");
    let grants = h.grants_of(sps[0]["id"].as_str().unwrap());
    assert_eq!(grants.len(), 2, "{what}: the two grants: {grants:#?}");
    assert_eq!(app["api"]["requestedAccessTokenVersion"], 2, "{what}");
    app["passwordCredentials"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn hints(creds: &[Value]) -> BTreeSet<String> {
    creds
        .iter()
        .map(|c| c["hint"].as_str().unwrap().to_string())
        .collect()
}

fn vault_hint(h: &Harness) -> Option<String> {
    h.vault_secret(HIVE_VAULT_PATH).map(|s| s.hint())
}

/// A second run of `args` writes nothing to the app's objects (a rotation mints by design, so
/// it is checked with `apply`).
async fn assert_no_op(h: &Harness, what: &str) {
    h.emu.clear_requests();
    h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
    let w = writes(&h.graph_requests());
    assert!(w.is_empty(), "{what}: apply after convergence wrote {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_apply_killed_after_each_request_converges_on_the_next_run() {
    let args = ["apply", HIVE, "--out", "out"];
    let total = uninterrupted(&tenant().await, &args).await;
    assert!(
        total >= 5,
        "a fresh apply makes at least 5 requests, got {total}"
    );
    let mut report = Vec::new();
    for k in 1..=total {
        let h = tenant().await;
        let ended = run_killed_after(&h, &args, k).await;
        let what = format!("apply killed after request {k} of {total} ({ended:?})");
        let rerun = h.run(&args).await;
        rerun.expect(0);
        let creds = converged_objects(&h, &what);
        // Exactly one credential: the one the vault holds (an orphan of the killed run was
        // removed, and no second secret was minted beside a working one).
        let held = vault_hint(&h).unwrap_or_else(|| panic!("{what}: the vault is empty"));
        assert_eq!(creds.len(), 1, "{what}: {creds:#?}");
        assert_eq!(hints(&creds), BTreeSet::from([held]), "{what}");
        assert_no_op(&h, &what).await;
        report.push(format!("k={k}: {ended:?}"));
    }
    eprintln!(
        "apply: {total} requests uninterrupted\n{}",
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_after_each_request_converges_on_the_next_run() {
    // Default 7-day overlap: the previous secret stays (consumers may still use it); a secret
    // the killed run minted but never stored must not.
    let args = ["rotate", HIVE];
    let applied = || async {
        let h = tenant().await;
        h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
        h
    };
    let total = uninterrupted(&applied().await, &args).await;
    assert!(
        total >= 2,
        "a rotation makes at least 2 requests, got {total}"
    );
    let mut report = Vec::new();
    for k in 1..=total {
        let h = applied().await;
        let before = vault_hint(&h).unwrap();
        let ended = run_killed_after(&h, &args, k).await;
        let after_kill = vault_hint(&h).unwrap();
        let what = format!("rotate killed after request {k} of {total} ({ended:?})");
        let rerun = h.run(&args).await;
        rerun.expect(0);
        let creds = converged_objects(&h, &what);
        let held = vault_hint(&h).unwrap();
        // Every credential left is one the vault holds or held: the previous secret (in the
        // overlap), one the killed run stored, the new one. Nothing the vault never saw.
        let allowed: BTreeSet<String> = [before.clone(), after_kill.clone(), held.clone()].into();
        assert!(
            hints(&creds).is_subset(&allowed),
            "{what}: credentials {:?}, the vault held only {allowed:?}",
            hints(&creds)
        );
        assert!(hints(&creds).contains(&held), "{what}");
        assert!(
            hints(&creds).contains(&before),
            "{what}: the overlap keeps the old one"
        );
        assert_no_op(&h, &what).await;
        report.push(format!("k={k}: {ended:?}"));
    }
    eprintln!(
        "rotate: {total} requests uninterrupted\n{}",
        report.join("\n")
    );
}

/// The one kill point the request log cannot time: after `addPassword` answered, inside the
/// vault write (a `command` vault whose push kills entraform). The new credential exists and
/// no vault holds it: the next run of the same command must remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_inside_the_vault_write_the_next_run_removes_the_orphan() {
    const KILLER: &str = r#"kill -9 $PPID; exit 1"#;
    for command in ["apply", "rotate"] {
        let mut h = tenant().await;
        h.command_vault(GOOD_PUSH);
        let args: Vec<&str> = match command {
            "apply" => vec!["apply", HIVE, "--out", "out"],
            _ => {
                h.run(&["apply", HIVE, "--out", "out"]).await.expect(0);
                vec!["rotate", HIVE]
            }
        };
        let before: BTreeSet<String> = hints(&passwords(&h));
        h.command_vault(KILLER);
        let killed = h.run(&args).await;
        assert_eq!(killed.code, -1, "{command}: killed by a signal");
        let orphans: BTreeSet<String> =
            hints(&passwords(&h)).difference(&before).cloned().collect();
        assert_eq!(
            orphans.len(),
            1,
            "{command}: the killed run left one orphan"
        );

        h.command_vault(GOOD_PUSH);
        let rerun = h.run(&args).await;
        rerun.expect(0);
        let what = format!("{command} killed inside the vault write");
        let creds = converged_objects(&h, &what);
        let left = hints(&creds);
        assert!(
            left.is_disjoint(&orphans),
            "{what}: the orphan {orphans:?} is still there: {left:?}"
        );
        let held = vault_hint(&h).unwrap();
        let mut want = before.clone();
        want.insert(held);
        assert_eq!(
            left, want,
            "{what}: the old secret (overlap) and the new one"
        );
        assert!(
            rerun.stderr.contains("orphan") || rerun.stdout.contains("orphan"),
            "{what}: the removal is reported:\n{}",
            rerun.diagnostics()
        );
        let audit = std::fs::read_to_string(h.manifests().join(".entraform/audit.jsonl")).unwrap();
        let removal = audit
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| {
                r["action"] == "remove_secret"
                    && r["outcome"] == "success"
                    && orphans.contains(r["hint"].as_str().unwrap_or_default())
            });
        assert!(
            removal.is_some(),
            "{what}: the audit log records the removal:\n{audit}"
        );
        assert_no_op(&h, &what).await;
    }
}

fn passwords(h: &Harness) -> Vec<Value> {
    let apps = h.apps_of(HIVE_UNIQUE, HIVE_URI);
    apps.first()
        .and_then(|a| a["passwordCredentials"].as_array().cloned())
        .unwrap_or_default()
}
