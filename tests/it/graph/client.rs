//! The Graph client, authentication and `observe` against the in-process emulator (TLS, its CA
//! trusted): auth with the emulator's operator, retries of 429 (Retry-After) and 503, 404 as
//! absent, error mapping, `$batch` splitting and re-batching, and the round trips of `observe`
//! read from the emulator's own request log.

use super::support;
use crate::support::HOST;
use crate::support::common;
use crate::support::trips::{self, graph_only};

use support::{auth, client, credential, emulator};

use std::sync::Arc;
use std::time::{Duration, Instant};

use entraform::desired::{Desired, MS_GRAPH_APP_ID, USER_READ_SCOPE_ID};
use entraform::emulator::{EmulatorConfig, Faults, RequestRecord, RunningEmulator};
use entraform::graph::wire::{Application, OAuth2PermissionGrant};
use entraform::graph::{
    BatchRequest, CredentialKind, GraphClient, GraphError, GraphRead, GraphRequest, GraphWrite,
    Lookup, ProveError, RetryPolicy, UpsertOutcome, prove_secret,
};
use entraform::observed::{FoundBy, observe};
use entraform::secret::Secret;
use serde_json::json;

fn desired(service: &str, app_id: Option<&str>) -> Desired {
    common::service(service, 3151, app_id)
}

/// A hand-made app as `az` would leave it: no uniqueName, URI set, SP, grants.
fn hand_made(service: &str) -> serde_json::Value {
    json!({"applications": [{
        "displayName": format!("{service} MCP"),
        "identifierUris": [format!("https://{HOST}/{service}/mcp")],
        "api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [{
            "id": "5b1d3f0e-55b8-4f0c-9d35-6f2a1c1e0a01", "value": "mcp.access", "type": "User",
            "isEnabled": true, "adminConsentDisplayName": "Access", "adminConsentDescription": "Access"}]},
        "servicePrincipal": true,
        "grants": [{"resourceAppId": MS_GRAPH_APP_ID, "scope": "User.Read"},
                   {"resourceAppId": "self", "scope": "mcp.access"}]
    }]})
}

/// Graph requests in the log (token requests and controls left out).
fn graph_requests(emu: &RunningEmulator) -> Vec<RequestRecord> {
    graph_only(&emu.requests())
}

/// How many round trips the requests took.
fn round_trips(log: &[RequestRecord]) -> usize {
    trips::round_trips(log).len()
}

#[tokio::test]
async fn operator_authenticates_and_tokens_are_cached() {
    let emu = emulator(EmulatorConfig::default()).await;
    let cfg = auth(&emu);
    let cred = Arc::new(credential(
        &emu,
        &cfg,
        emu.operator_client_id(),
        emu.operator_secret(),
    ));
    let graph = GraphClient::with_credential(&cfg, cred.clone()).unwrap();
    let sp = graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .expect("read with the operator's token")
        .expect("Microsoft Graph's SP is seeded");
    assert_eq!(sp.app_id, MS_GRAPH_APP_ID);
    assert!(
        sp.oauth2_permission_scopes
            .iter()
            .any(|s| s.id == USER_READ_SCOPE_ID)
    );
    graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap();
    assert_eq!(cred.chosen(), Some(CredentialKind::ClientSecret));
    let stats = graph.stats();
    assert_eq!(
        (stats.http_requests, stats.token_requests),
        (2, 1),
        "{stats:?}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn wrong_operator_secret_fails_with_the_aadsts_code() {
    let emu = emulator(EmulatorConfig::default()).await;
    let cfg = auth(&emu);
    let bad = Secret::new("wrong~secret.0123456789abcdefghijklmnopqrstu".into());
    let cred = credential(&emu, &cfg, emu.operator_client_id(), &bad);
    let graph = GraphClient::with_credential(&cfg, Arc::new(cred)).unwrap();
    let err = graph
        .find_application(&Lookup::UniqueName("x".into()))
        .await
        .unwrap_err();
    let GraphError::Auth(auth) = &err else {
        panic!("expected an auth error, got {err:?}")
    };
    assert_eq!(auth.aadsts(), Some(7000215), "{auth}");
    assert!(err.hint().unwrap().contains("entraform explain 7000215"));
    assert!(!err.to_string().contains(bad.expose()));
    emu.shutdown().await;
}

#[tokio::test]
async fn prove_secret_accepts_a_good_secret_and_names_the_code_of_a_bad_one() {
    let emu = emulator(EmulatorConfig::default()).await;
    let cfg = auth(&emu);
    let scope = cfg.graph_scope().unwrap();
    let tenant = emu.tenant_id();
    let soon = || tokio::time::Instant::now() + Duration::from_millis(800);
    prove_secret(
        &cfg,
        &tenant,
        emu.operator_client_id(),
        emu.operator_secret(),
        &scope,
        soon(),
    )
    .await
    .expect("the operator's secret works");
    let bad = Secret::new("wrong~secret.0123456789abcdefghijklmnopqrstu".into());
    let err = prove_secret(
        &cfg,
        &tenant,
        emu.operator_client_id(),
        &bad,
        &scope,
        soon(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProveError::Rejected { aadsts: Some(7000215), attempts, .. } if attempts > 1),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("AADSTS7000215: invalid client secret (see `entraform explain 7000215`)"),
        "{err}"
    );
    let unknown = prove_secret(
        &cfg,
        &tenant,
        "0a0a0a0a-0000-4000-8000-000000000000",
        &bad,
        &scope,
        soon(),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.aadsts(), Some(700016), "{unknown:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn new_secret_is_proven_through_replication_delay() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    let write = GraphWrite::new(graph.clone());
    let app = Application {
        display_name: Some("Prove MCP".into()),
        ..Default::default()
    };
    let UpsertOutcome::Created(app) = write
        .upsert_application("axe-prove-mcp", &app, true)
        .await
        .unwrap()
    else {
        panic!("expected a new app")
    };
    // Without its SP the app could not log in at all (AADSTS7000229).
    write
        .create_service_principal(app.app_id.as_deref().unwrap())
        .await
        .unwrap();
    emu.set_faults(Faults {
        replication_delay_ms: 1200,
        ..Faults::default()
    })
    .unwrap();
    let end = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let (cred, secret) = write
        .add_password(app.id.as_deref().unwrap(), "entraform", end)
        .await
        .unwrap();
    assert_eq!(cred.hint.as_deref(), Some(secret.hint().as_str()));
    entraform::secret::check_shape(&secret).expect("Entra-shaped secret");
    let cfg = auth(&emu);
    let started = Instant::now();
    prove_secret(
        &cfg,
        &emu.tenant_id(),
        app.app_id.as_deref().unwrap(),
        &secret,
        &cfg.graph_scope().unwrap(),
        tokio::time::Instant::now() + Duration::from_secs(15),
    )
    .await
    .expect("the secret works once replicated");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        started.elapsed()
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    emu.set_faults(Faults {
        throttle_next: 2,
        retry_after_secs: 0.25,
        ..Faults::default()
    })
    .unwrap();
    emu.clear_requests();
    let started = Instant::now();
    let sp = graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap();
    assert!(sp.is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let log = graph_requests(&emu);
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    assert_eq!(graph.stats().http_requests, 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn service_unavailable_is_retried_and_then_reported() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    emu.set_faults(Faults {
        error_next: 2,
        retry_after_secs: 0.0,
        ..Faults::default()
    })
    .unwrap();
    assert!(
        graph
            .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
            .await
            .unwrap()
            .is_some()
    );

    // More failures than attempts: the last 503 reaches the caller with its code and hint.
    emu.set_faults(Faults {
        error_next: 50,
        retry_after_secs: 0.0,
        ..Faults::default()
    })
    .unwrap();
    emu.clear_requests();
    let err = graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap_err();
    let api = err.api().expect("a Graph error");
    assert_eq!(api.status, 503);
    assert!(api.request_id.is_some());
    assert_eq!(
        graph_requests(&emu).len() as u32,
        RetryPolicy::fast().max_attempts
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn absent_objects_are_none() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    for lookup in [
        Lookup::UniqueName("axe-nothing-mcp".into()),
        Lookup::AppId("0a0a0a0a-0000-4000-8000-000000000000".into()),
        Lookup::ObjectId("0a0a0a0a-0000-4000-8000-000000000001".into()),
        Lookup::IdentifierUri(format!("https://{HOST}/nothing/mcp")),
    ] {
        assert_eq!(
            graph.find_application(&lookup).await.unwrap(),
            None,
            "{lookup:?}"
        );
    }
    assert_eq!(
        graph
            .get_service_principal_by_app_id("0a0a0a0a-0000-4000-8000-000000000000")
            .await
            .unwrap(),
        None
    );
    assert!(
        graph
            .list_grants("0a0a0a0a-0000-4000-8000-000000000002")
            .await
            .unwrap()
            .is_empty()
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn graph_errors_carry_status_code_request_id_and_hint() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    let write = GraphWrite::new(graph.clone());

    // A v1-token app with an unverified host in its App ID URI.
    let app = Application {
        display_name: Some("Bad Host".into()),
        identifier_uris: Some(vec!["https://not-verified.example/bad/mcp".into()]),
        ..Default::default()
    };
    let err = write
        .upsert_application("axe-bad-mcp", &app, true)
        .await
        .unwrap_err();
    let api = err.api().expect("Graph error");
    assert_eq!(
        (api.status, api.code.as_str()),
        (400, "HostNameNotOnVerifiedDomain")
    );
    assert!(api.request_id.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(err.hint().unwrap().contains("api://"));
    let text = err.to_string();
    assert!(
        text.contains("PATCH /applications(uniqueName='axe-bad-mcp')")
            && text.contains("request-id"),
        "{text}"
    );

    // The limited operator may not grant consent: 403 with the permission to ask for.
    let cfg = auth(&emu);
    let limited = emu.limited_operator();
    let cred = credential(&emu, &cfg, &limited.client_id, limited.secret());
    let weak = GraphClient::with_credential(&cfg, Arc::new(cred))
        .unwrap()
        .with_retry(RetryPolicy::fast());
    let graph_sp = graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap()
        .unwrap();
    let err = GraphWrite::new(weak)
        .create_grant(&OAuth2PermissionGrant {
            client_id: graph_sp.id.clone(),
            consent_type: "AllPrincipals".into(),
            resource_id: graph_sp.id.clone(),
            scope: "User.Read".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let api = err.api().expect("Graph error");
    assert_eq!(
        (api.status, api.code.as_str()),
        (403, "Authorization_RequestDenied")
    );
    assert!(
        err.hint()
            .unwrap()
            .contains("DelegatedPermissionGrant.ReadWrite.All")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn batches_over_twenty_are_split_and_answered_in_order() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    let reqs: Vec<BatchRequest> = (0..45)
        .map(|i| {
            let path = if i % 2 == 0 {
                format!("/servicePrincipals(appId='{MS_GRAPH_APP_ID}')")
            } else {
                format!("/applications(uniqueName='axe-missing-{i}-mcp')")
            };
            BatchRequest::new(format!("r{i}"), GraphRequest::get(path))
        })
        .collect();
    emu.clear_requests();
    let answers = graph.batch(reqs).await.unwrap();
    assert_eq!(answers.len(), 45);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.id, format!("r{i}"));
        assert_eq!(a.status, if i % 2 == 0 { 200 } else { 404 }, "{a:?}");
    }
    let log = graph_requests(&emu);
    let sizes: Vec<usize> = log
        .iter()
        .filter(|r| r.batch)
        .map(|r| r.inner.len())
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![5, 20, 20]);
    assert_eq!(
        graph.stats().round_trips,
        1,
        "the three POSTs go out together"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn throttled_inner_requests_are_rebatched_alone() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    emu.set_faults(Faults {
        throttle_next: 2,
        retry_after_secs: 0.1,
        matching: Some("GET /servicePrincipals".into()),
        ..Faults::default()
    })
    .unwrap();
    emu.clear_requests();
    let reqs = vec![
        BatchRequest::new(
            "sp",
            GraphRequest::get(format!("/servicePrincipals(appId='{MS_GRAPH_APP_ID}')")),
        ),
        BatchRequest::new(
            "app",
            GraphRequest::get("/applications(uniqueName='axe-none-mcp')"),
        ),
    ];
    let answers = graph.batch(reqs).await.unwrap();
    assert_eq!(answers[0].status, 200, "{:?}", answers[0]);
    assert_eq!(answers[1].status, 404);
    let batches: Vec<Vec<String>> = graph_requests(&emu)
        .iter()
        .filter(|r| r.batch)
        .map(|r| {
            r.inner
                .iter()
                .map(|i| i.batch_id.clone().unwrap_or_default())
                .collect()
        })
        .collect();
    assert_eq!(batches.len(), 3, "{batches:?}");
    assert_eq!(
        batches[1],
        vec!["sp".to_string()],
        "only the throttled one is re-sent"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn observe_an_empty_tenant_in_one_round_trip() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap(); // token warm-up
    emu.clear_requests();
    let before = graph.stats();
    let observed = observe(&graph, &desired("blueprint", None)).await.unwrap();
    assert_eq!(observed.app, None);
    assert_eq!(observed.found_by, None);
    assert_eq!(observed.service_principal, None);
    assert!(observed.grants.is_empty());
    assert_eq!(
        observed.graph_sp.as_ref().map(|s| s.app_id.as_str()),
        Some(MS_GRAPH_APP_ID)
    );
    let log = graph_requests(&emu);
    assert_eq!(round_trips(&log), 1, "{log:#?}");
    assert_eq!(graph.stats().round_trips - before.round_trips, 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn observe_adopts_a_hand_made_app_by_its_uri_in_two_round_trips() {
    let emu = emulator(EmulatorConfig::default().seed(hand_made("frame"))).await;
    let graph = client(&emu);
    graph
        .get_service_principal_by_app_id(MS_GRAPH_APP_ID)
        .await
        .unwrap();
    emu.clear_requests();
    let observed = observe(&graph, &desired("frame", None)).await.unwrap();
    let app = observed.app.as_ref().expect("adopted");
    assert_eq!(observed.found_by, Some(FoundBy::IdentifierUri));
    assert_eq!(app.unique_name, None, "made by hand: no uniqueName yet");
    let sp = observed.service_principal.as_ref().expect("its SP");
    assert_eq!(Some(sp.app_id.as_str()), app.app_id.as_deref());
    let graph_sp = observed.graph_sp.as_ref().unwrap();
    let mut scopes: Vec<(&str, &str)> = observed
        .grants
        .iter()
        .map(|g| {
            assert_eq!(g.client_id, sp.id);
            assert_eq!(g.consent_type, "AllPrincipals");
            (
                if g.resource_id == graph_sp.id {
                    "graph"
                } else {
                    "self"
                },
                g.scope.as_str(),
            )
        })
        .collect();
    scopes.sort();
    assert_eq!(scopes, vec![("graph", "User.Read"), ("self", "mcp.access")]);
    assert_eq!(round_trips(&graph_requests(&emu)), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn observe_a_pinned_app_and_an_app_found_by_unique_name() {
    let emu = emulator(EmulatorConfig::default().seed(hand_made("hive"))).await;
    let graph = client(&emu);
    let hand = graph
        .find_application(&Lookup::IdentifierUri(format!("https://{HOST}/hive/mcp")))
        .await
        .unwrap()
        .unwrap();
    let observed = observe(&graph, &desired("hive", hand.app_id.as_deref()))
        .await
        .unwrap();
    assert_eq!(observed.found_by, Some(FoundBy::AppId));
    assert_eq!(observed.app.as_ref().unwrap().id, hand.id);
    assert!(observed.service_principal.is_some());
    assert_eq!(observed.grants.len(), 2);

    // A pinned app that is not there is an error, not a silent create.
    let err = observe(
        &graph,
        &desired("hive", Some("0a0a0a0a-0000-4000-8000-000000000000")),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, GraphError::Lookup { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("0a0a0a0a-0000-4000-8000-000000000000")
    );

    // An app entraform created (uniqueName) is found by it.
    let write = GraphWrite::new(graph.clone());
    let app = Application {
        display_name: Some("Index MCP".into()),
        ..Default::default()
    };
    let UpsertOutcome::Created(created) = write
        .upsert_application("axe-index-mcp", &app, true)
        .await
        .unwrap()
    else {
        panic!("expected a new app")
    };
    assert_eq!(
        write
            .upsert_application("axe-index-mcp", &app, true)
            .await
            .unwrap(),
        UpsertOutcome::Updated
    );
    let observed = observe(&graph, &desired("index", None)).await.unwrap();
    assert_eq!(observed.found_by, Some(FoundBy::UniqueName));
    assert_eq!(observed.app.unwrap().id, created.id);
    assert_eq!(observed.service_principal, None);

    // Creating its SP twice returns the same SP (409 → read).
    let app_id = created.app_id.clone().unwrap();
    let sp1 = write.create_service_principal(&app_id).await.unwrap();
    let sp2 = write.create_service_principal(&app_id).await.unwrap();
    assert_eq!(sp1.id, sp2.id);
    emu.shutdown().await;
}

#[tokio::test]
async fn observe_refuses_to_guess_between_two_apps() {
    let emu = emulator(EmulatorConfig::default().seed(hand_made("blueprint"))).await;
    let graph = client(&emu);
    let write = GraphWrite::new(graph.clone());
    // entraform's uniqueName points at a different app than the one holding the URI.
    let other = Application {
        display_name: Some("Blueprint MCP (second)".into()),
        ..Default::default()
    };
    let UpsertOutcome::Created(second) = write
        .upsert_application("axe-blueprint-mcp", &other, true)
        .await
        .unwrap()
    else {
        panic!("expected a new app")
    };
    let hand = graph
        .find_application(&Lookup::IdentifierUri(format!(
            "https://{HOST}/blueprint/mcp"
        )))
        .await
        .unwrap()
        .unwrap();
    let err = observe(&graph, &desired("blueprint", None))
        .await
        .unwrap_err();
    let GraphError::Lookup { ids, .. } = &err else {
        panic!("expected a lookup error, got {err:?}")
    };
    let text = err.to_string();
    for id in [second.id.as_deref().unwrap(), hand.id.as_deref().unwrap()] {
        assert!(text.contains(id) && ids.iter().any(|i| i == id), "{text}");
    }
    assert!(
        text.contains("uniqueName axe-blueprint-mcp") && text.contains("App ID URI"),
        "{text}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn writes_after_a_create_ride_out_replication_delay() {
    let emu = emulator(EmulatorConfig::default()).await;
    let graph = client(&emu);
    emu.set_faults(Faults {
        replication_delay_ms: 600,
        ..Faults::default()
    })
    .unwrap();
    let write = GraphWrite::new(graph.clone());
    let app = Application {
        display_name: Some("Fresh MCP".into()),
        ..Default::default()
    };
    let UpsertOutcome::Created(app) = write
        .upsert_application("axe-fresh-mcp", &app, true)
        .await
        .unwrap()
    else {
        panic!("expected a new app")
    };
    let fresh = write.with_replication_retry(true);
    let sp = fresh
        .create_service_principal(app.app_id.as_deref().unwrap())
        .await
        .expect("retried through NoBackingApplicationObject");
    assert_eq!(Some(sp.app_id.as_str()), app.app_id.as_deref());
    let patch = Application {
        web: Some(entraform::graph::wire::WebApplication {
            redirect_uris: Some(vec!["https://claude.ai/api/mcp/auth_callback".into()]),
            implicit_grant_settings: None,
        }),
        ..Default::default()
    };
    fresh
        .patch_application(app.id.as_deref().unwrap(), &patch)
        .await
        .unwrap();
    let replication_errors = graph_requests(&emu)
        .iter()
        .filter(|r| matches!(r.status, 400 | 404))
        .count();
    assert!(replication_errors >= 1, "the delay was exercised");
    emu.shutdown().await;
}
