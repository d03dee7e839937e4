//! Shared helpers for the emulator's integration tests: start an emulator over TLS, trust its
//! CA, get the operator's token, send Graph requests, and check Graph's error envelope and the
//! response schemas (`tests/fixtures/graph-schemas.json`, public Microsoft metadata).

pub use crate::support::{FRAME_APP_ID, GRAPH_APP_ID, USER_READ};
use std::sync::OnceLock;

use entraform::emulator::{EmulatorConfig, RunningEmulator, start};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub struct Env {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

pub fn client_for(emu: &RunningEmulator) -> reqwest::Client {
    let mut b = reqwest::Client::builder();
    if let Some(pem) = emu.ca_cert_pem() {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM");
        b = b.tls_certs_only([ca]);
    }
    b.build().expect("client")
}

/// An emulator with TLS, axelabs.ai verified, and the operator's Graph token.
pub async fn env() -> Env {
    env_with(
        EmulatorConfig::default()
            .tls(true)
            .verified_domain("axelabs.ai"),
    )
    .await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = start(config).await.expect("emulator starts");
    let http = client_for(&emu);
    let secret = emu.operator_secret().expose().to_string();
    let token = get_token(
        &http,
        &emu,
        emu.operator_client_id(),
        &secret,
        "https://graph.microsoft.com/.default",
    )
    .await
    .expect("operator token");
    Env { emu, http, token }
}

/// Client-credentials token request; Ok(token) or Err((status, body)).
pub async fn get_token(
    http: &reqwest::Client,
    emu: &RunningEmulator,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> Result<String, (u16, Value)> {
    let r = token_request(
        http,
        &emu.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await;
    if r.status == 200 {
        Ok(r.body["access_token"].as_str().unwrap().to_string())
    } else {
        Err((r.status, r.body))
    }
}

pub async fn token_request(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Reply {
    let resp = http
        .post(url)
        .form(form)
        .send()
        .await
        .expect("token request");
    reply(resp).await
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.graph_url(), path)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.call_as(&self.token, method, path, body, headers).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.expect("graph request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    /// Create an app with POST /applications and return it.
    pub async fn create_app(&self, body: Value) -> Value {
        let r = self.call("POST", "/applications", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    /// Create an app and its service principal; returns (app, sp).
    pub async fn create_app_with_sp(&self, body: Value) -> (Value, Value) {
        let app = self.create_app(body).await;
        let r = self
            .call(
                "POST",
                "/servicePrincipals",
                Some(json!({"appId": app["appId"]})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (app, r.body)
    }

    pub async fn graph_sp_id(&self) -> String {
        let r = self
            .get(&format!("/servicePrincipals(appId='{GRAPH_APP_ID}')"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub fn control(&self, path: &str) -> String {
        format!("{}{}", self.emu.control_url(), path)
    }

    /// A request to `/_emulator{path}` carrying the control token.
    pub fn control_request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method.parse().expect("method"), self.control(path))
            .bearer_auth(self.emu.control_token().expose())
    }
}

/// Graph's error envelope: status, `error.code`, a message, `innerError` with date and ids.
pub fn assert_graph_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    let e = &r.body["error"];
    assert_eq!(e["code"], code, "error.code; body: {}", r.text);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message must be present (az crashes without it): {}",
        r.text
    );
    let inner = &e["innerError"];
    let date = inner["date"].as_str().expect("innerError.date");
    assert_eq!(date.len(), 19, "date has second precision, no zone: {date}");
    assert!(
        inner["request-id"].as_str().is_some_and(|s| s.len() == 36),
        "{}",
        r.text
    );
    assert!(inner["client-request-id"].as_str().is_some(), "{}", r.text);
    assert_eq!(
        r.body.as_object().unwrap().len(),
        1,
        "the envelope has exactly one property, 'error'"
    );
    assert_eq!(
        r.headers.get("request-id").and_then(|v| v.to_str().ok()),
        inner["request-id"].as_str(),
        "request-id header echoes the body"
    );
}

/// An AADSTS error body of the token endpoint (behavior.md §2.3).
pub fn assert_login_error(r: &Reply, status: u16, error: &str, code: u32) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], error, "{}", r.text);
    let d = r.body["error_description"].as_str().unwrap();
    assert!(d.starts_with(&format!("AADSTS{code}: ")), "{d}");
    assert!(
        d.contains("\r\nTrace ID: ")
            && d.contains("\r\nCorrelation ID: ")
            && d.contains("\r\nTimestamp: "),
        "{d}"
    );
    assert_eq!(r.body["error_codes"], json!([code]));
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(r.body[k].is_string(), "{k} missing: {}", r.text);
    }
}

fn schemas() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/graph-schemas.json"
        ))
        .expect("schema fixture");
        serde_json::from_str(&text).unwrap()
    })
}

/// Check a response object against a Graph component schema: every property must be declared
/// (annotations `@odata.*` aside) and have the declared type; nested complex types we have
/// schemas for are checked recursively; navigation properties must not be inlined.
pub fn check_schema(value: &Value, type_name: &str) {
    let mut errors = Vec::new();
    check(value, type_name, type_name, &mut errors);
    assert!(
        errors.is_empty(),
        "schema violations for {type_name}:\n{}\nvalue: {value}",
        errors.join("\n")
    );
}

fn check(value: &Value, type_name: &str, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schemas().get(type_name) else {
        errors.push(format!("{at}: no schema for {type_name} in the fixture"));
        return;
    };
    let props = &schema["properties"];
    let Some(obj) = value.as_object() else {
        errors.push(format!("{at}: expected an object"));
        return;
    };
    for (k, v) in obj {
        if k.starts_with("@odata.") {
            continue;
        }
        let Some(p) = props.get(k) else {
            errors.push(format!("{at}.{k}: not a property of {type_name}"));
            continue;
        };
        if p.get("x-ms-navigationProperty").is_some() {
            errors.push(format!("{at}.{k}: navigation property inlined"));
        }
        check_prop(v, p, &format!("{at}.{k}"), errors);
    }
}

fn ref_type(p: &Value) -> Option<String> {
    let r = p.get("$ref").or_else(|| {
        p.get("anyOf")
            .and_then(|a| a.get(0))
            .and_then(|a| a.get("$ref"))
    })?;
    r.as_str()?.rsplit('/').next().map(str::to_string)
}

fn check_prop(v: &Value, p: &Value, at: &str, errors: &mut Vec<String>) {
    let nullable = p["nullable"] == true || p.get("anyOf").is_some();
    if v.is_null() {
        if !nullable {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    if let Some(t) = ref_type(p) {
        if schemas().get(&t).is_some() {
            check(v, &t, at, errors);
        } else if !v.is_object() {
            errors.push(format!("{at}: expected an object ({t})"));
        }
        return;
    }
    match p["type"].as_str() {
        Some("string") => {
            if !v.is_string() {
                errors.push(format!("{at}: expected a string, got {v}"));
            } else if p["format"] == "uuid" && uuid::Uuid::parse_str(v.as_str().unwrap()).is_err() {
                errors.push(format!("{at}: expected a GUID, got {v}"));
            } else if p["format"] == "date-time"
                && time::OffsetDateTime::parse(
                    v.as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .is_err()
            {
                errors.push(format!("{at}: expected a date-time, got {v}"));
            }
        }
        Some("boolean") if !v.is_boolean() => {
            errors.push(format!("{at}: expected a boolean, got {v}"))
        }
        Some("integer") if !v.is_i64() => {
            errors.push(format!("{at}: expected an integer, got {v}"))
        }
        Some("array") => match v.as_array() {
            None => errors.push(format!("{at}: expected an array, got {v}")),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_prop(item, &p["items"], &format!("{at}[{i}]"), errors);
                }
            }
        },
        _ => {}
    }
}
