//! Retry rules of the Graph client that the emulator's fault knobs cannot script exactly,
//! against a tiny scripted axum server (plain HTTP, fixed token): which statuses are retried
//! for which methods, the `Retry-After` cap, opt-in replication retries, `dependsOn` re-batching.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use entraform::graph::{BatchRequest, GraphClient, GraphRequest, RetryPolicy, TokenSource};
use entraform::secret::Secret;
use serde_json::{Value, json};

/// One scripted answer: status, headers, JSON body.
type Answer = (u16, Vec<(&'static str, String)>, Value);
/// One request as seen: method, URI, JSON body, Authorization header.
type Seen = (String, String, Value, Option<String>);

/// What the server answers, in order; the last one repeats.
#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handler(
    State(s): State<Script>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.seen
        .lock()
        .unwrap()
        .push((method.to_string(), uri.to_string(), body, auth));
    let (status, hdrs, body) = {
        let mut q = s.answers.lock().unwrap();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        }
    };
    let mut resp = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    for (k, v) in hdrs {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp.headers_mut().insert(
        "request-id",
        "11111111-2222-3333-4444-555555555555".parse().unwrap(),
    );
    resp
}

async fn serve(answers: Vec<Answer>) -> (GraphClient, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(answers.into())),
        seen: Arc::default(),
    };
    let app = Router::new().fallback(handler).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let client = GraphClient::new(
        reqwest::Client::new(),
        &format!("http://{addr}/v1.0"),
        TokenSource::Static(Secret::new("test-token".into())),
    )
    .unwrap()
    .with_retry(RetryPolicy::fast());
    (client, script)
}

fn err(code: &str) -> Value {
    json!({"error": {"code": code, "message": "scripted", "innerError": {"request-id": "inner-id"}}})
}

#[tokio::test]
async fn retry_after_is_honoured_in_fractional_seconds() {
    let (graph, script) = serve(vec![
        (
            429,
            vec![("retry-after", "0.3".into())],
            err("TooManyRequests"),
        ),
        (200, vec![], json!({"id": "x", "appId": "y"})),
    ])
    .await;
    let started = Instant::now();
    let got: Option<Value> = graph.get_optional("/applications/x").await.unwrap();
    assert!(got.is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].3.as_deref(), Some("Bearer test-token"));
    let stats = graph.stats();
    assert_eq!((stats.http_requests, stats.round_trips), (2, 2));
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_reported_not_waited() {
    let (graph, script) = serve(vec![(
        429,
        vec![("retry-after", "3600".into())],
        err("TooManyRequests"),
    )])
    .await;
    let started = Instant::now();
    let e = graph
        .send(&GraphRequest::get("/applications"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    let api = e.api().unwrap();
    assert_eq!((api.status, api.retry_after), (429, Some(3600.0)));
    assert_eq!(
        api.request_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(e.hint().unwrap().contains("throttling"));
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_for_get_but_not_for_post() {
    let (graph, script) = serve(vec![
        (500, vec![], err("InternalServerError")),
        (200, vec![], json!({"value": []})),
    ])
    .await;
    graph
        .send(&GraphRequest::get("/applications"))
        .await
        .unwrap();
    assert_eq!(script.seen.lock().unwrap().len(), 2);

    let (graph, script) = serve(vec![
        (500, vec![], err("InternalServerError")),
        (200, vec![], json!({})),
    ])
    .await;
    let e = graph
        .send(&GraphRequest::post(
            "/applications/x/addPassword",
            json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.api().unwrap().status, 500);
    assert_eq!(
        script.seen.lock().unwrap().len(),
        1,
        "a second addPassword would mint a second secret"
    );
}

#[tokio::test]
async fn an_at_most_once_post_is_never_resent_after_a_504() {
    // A plain POST is retried after a 504 (the gateway gave up); addPassword is not: the
    // request may have run, and the failure says so.
    let (graph, script) = serve(vec![
        (504, vec![], err("UnknownError")),
        (200, vec![], json!({})),
    ])
    .await;
    graph
        .send(&GraphRequest::post("/servicePrincipals", json!({})))
        .await
        .unwrap();
    assert_eq!(script.seen.lock().unwrap().len(), 2);

    let (graph, script) = serve(vec![
        (504, vec![], err("UnknownError")),
        (200, vec![], json!({})),
    ])
    .await;
    let req = GraphRequest::post("/applications/x/addPassword", json!({})).at_most_once();
    let f = graph.send_reporting(&req).await.unwrap_err();
    assert_eq!(f.error.api().unwrap().status, 504);
    assert!(f.maybe_done, "a 504 may come after the request ran");
    assert_eq!(script.seen.lock().unwrap().len(), 1);

    // A 429 is not served (Graph documents it): retried, even at most once.
    let (graph, script) = serve(vec![
        (
            429,
            vec![("Retry-After", "0.01".into())],
            err("TooManyRequests"),
        ),
        (400, vec![], err("Request_BadRequest")),
    ])
    .await;
    let f = graph.send_reporting(&req).await.unwrap_err();
    assert_eq!(script.seen.lock().unwrap().len(), 2);
    assert!(!f.maybe_done, "a 400 is a refusal: nothing ran");
}

#[tokio::test]
async fn replication_errors_are_retried_only_when_asked() {
    let answers = || {
        vec![
            (404, vec![], err("Request_ResourceNotFound")),
            (
                400,
                vec![],
                json!({"error": {"code": "Request_BadRequest", "message": "no backing app",
                    "details": [{"code": "NoBackingApplicationObject", "message": "x", "target": "appId"}]}}),
            ),
            (201, vec![], json!({"id": "sp", "appId": "a"})),
        ]
    };
    let (graph, _) = serve(answers()).await;
    let e = graph
        .send(&GraphRequest::post(
            "/servicePrincipals",
            json!({"appId": "a"}),
        ))
        .await
        .unwrap_err();
    assert!(e.is_not_found());

    let (graph, script) = serve(answers()).await;
    let resp = graph
        .send(
            &GraphRequest::post("/servicePrincipals", json!({"appId": "a"}))
                .replication_retry(true),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 201);
    assert_eq!(script.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_dependent_request_is_resent_with_its_throttled_dependency() {
    let first = json!({"responses": [
        {"id": "1", "status": 429, "headers": {"Retry-After": "0.05"}, "body": err("TooManyRequests")},
        {"id": "2", "status": 424, "body": err("FailedDependency")},
        {"id": "3", "status": 204},
    ]});
    let second = json!({"responses": [
        {"id": "2", "status": 204},
        {"id": "1", "status": 204},
    ]});
    let (graph, script) = serve(vec![(200, vec![], first), (200, vec![], second)]).await;
    let mut two = BatchRequest::new("2", GraphRequest::delete("/oauth2PermissionGrants/b"));
    two.depends_on.push("1".into());
    let answers = graph
        .batch(vec![
            BatchRequest::new("1", GraphRequest::delete("/oauth2PermissionGrants/a")),
            two,
            BatchRequest::new("3", GraphRequest::delete("/oauth2PermissionGrants/c")),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers
            .iter()
            .map(|a| (a.id.as_str(), a.status))
            .collect::<Vec<_>>(),
        vec![("1", 204), ("2", 204), ("3", 204)]
    );
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, "/v1.0/$batch");
    let resent = seen[1].2["requests"].as_array().unwrap();
    let ids: Vec<&str> = resent.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["1", "2"]);
    assert_eq!(resent[1]["dependsOn"], json!(["1"]));
    assert_eq!(graph.stats().round_trips, 2);
}

#[tokio::test]
async fn a_batch_answer_missing_an_id_is_an_error() {
    let (graph, _) = serve(vec![(
        200,
        vec![],
        json!({"responses": [{"id": "1", "status": 200, "body": {}}]}),
    )])
    .await;
    let e = graph
        .batch(vec![
            BatchRequest::new("1", GraphRequest::get("/applications/a")),
            BatchRequest::new("2", GraphRequest::get("/applications/b")),
        ])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no answer for request id"), "{e}");
}

#[tokio::test]
async fn a_timed_out_at_most_once_post_is_not_resent_and_may_have_run() {
    // The server takes its time (the request arrived and runs); the client gives up first.
    let seen = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&seen);
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            *counter.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            axum::Json(json!({}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let graph = GraphClient::new(
        http,
        &format!("http://{addr}/v1.0"),
        TokenSource::Static(Secret::new("test-token".into())),
    )
    .unwrap()
    .with_retry(RetryPolicy::fast());
    let req = GraphRequest::post("/applications/x/addPassword", json!({})).at_most_once();
    let f = graph.send_reporting(&req).await.unwrap_err();
    assert!(f.maybe_done, "{}", f.error);
    assert_eq!(*seen.lock().unwrap(), 1, "not re-sent after a timeout");
}
