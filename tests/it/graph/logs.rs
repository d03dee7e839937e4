//! The secret-leak check of the Graph client's logs. It runs in a process of its own (the test
//! binary started again with only this test) because a thread-scoped tracing subscriber is not
//! reliable while other tests run on other threads (callsite interest is global): alone there,
//! nothing else can race it.

use std::sync::Arc;
use std::time::Duration;

use entraform::emulator::EmulatorConfig;
use entraform::graph::wire::Application;
use entraform::graph::{GraphWrite, UpsertOutcome, prove_secret};
use entraform::secret::Secret;

use super::support;

use support::{auth, client, emulator};

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the child process that runs [`debug_logs_never_carry_secrets_or_tokens`] alone.
const ALONE: &str = "ENTRAFORM_TEST_LOGS_ALONE";

#[test]
fn debug_logs_never_carry_secrets_or_tokens() {
    if std::env::var_os(ALONE).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(debug_logs_alone());
        return;
    }
    let name = concat!(module_path!(), "::debug_logs_never_carry_secrets_or_tokens");
    let name = name.split_once("::").expect("a crate name").1;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the test failed alone:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the test did not run alone:\n{stdout}\n{stderr}"
    );
}

async fn debug_logs_alone() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests in this binary may have cached "no interest" for our callsites while no
    // subscriber was set; make them ask again.
    tracing::callsite::rebuild_interest_cache();

    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    let write = GraphWrite::new(graph.clone());
    let app = Application {
        display_name: Some("Leak MCP".into()),
        ..Default::default()
    };
    let UpsertOutcome::Created(app) = write
        .upsert_application("axe-leak-mcp", &app, true)
        .await
        .unwrap()
    else {
        panic!("expected a new app")
    };
    write
        .create_service_principal(app.app_id.as_deref().unwrap())
        .await
        .unwrap();
    let end = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let added = write
        .add_password(app.id.as_deref().unwrap(), "entraform", end)
        .await
        .unwrap();
    let cfg = auth(&emu);
    prove_secret(
        &cfg,
        &emu.tenant_id(),
        app.app_id.as_deref().unwrap(),
        &added.1,
        &cfg.graph_scope().unwrap(),
        tokio::time::Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    let shown = format!("{added:?}");
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("addPassword"),
        "debug logging was captured: {logs}"
    );
    let mut secrets = emu.issued_secrets();
    secrets.push(Secret::new(added.1.expose().to_string()));
    for s in &secrets {
        assert!(!logs.contains(s.expose()), "a secret reached the logs");
        assert!(!shown.contains(s.expose()), "a secret reached Debug output");
    }
    assert!(
        !logs.to_ascii_lowercase().contains("bearer "),
        "a token reached the logs"
    );
    emu.shutdown().await;
}
