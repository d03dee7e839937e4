//! `entraform schema`: the JSON Schema of each manifest kind is a valid 2020-12 schema (every
//! `$ref` resolves, every `type` is a JSON type, `required` names only declared properties)
//! that names the manifest's fields and accepts the keys of the repository's manifests.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::BIN;

fn schema(args: &[&str]) -> Value {
    let out = Command::new(BIN).arg("schema").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn properties(schema: &Value) -> Vec<&str> {
    schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect()
}

/// The structural rules of a JSON Schema document that a mistake in the derive would break.
fn assert_valid(root: &Value) {
    assert_eq!(
        root["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{root:#}"
    );
    let defs = root["$defs"].as_object().cloned().unwrap_or_default();
    fn walk(v: &Value, defs: &serde_json::Map<String, Value>, at: &str) {
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref") {
                    let r = r.as_str().expect("$ref is a string");
                    let name = r
                        .strip_prefix("#/$defs/")
                        .unwrap_or_else(|| panic!("{at}: $ref {r} outside $defs"));
                    assert!(defs.contains_key(name), "{at}: $ref {r} does not resolve");
                }
                if let Some(t) = map.get("type") {
                    let types: Vec<&Value> = match t {
                        Value::Array(items) => items.iter().collect(),
                        one => vec![one],
                    };
                    for t in types {
                        assert!(
                            matches!(
                                t.as_str(),
                                Some(
                                    "null"
                                        | "boolean"
                                        | "object"
                                        | "array"
                                        | "number"
                                        | "integer"
                                        | "string"
                                )
                            ),
                            "{at}: type {t}"
                        );
                    }
                }
                if let Some(required) = map.get("required") {
                    let props = map
                        .get("properties")
                        .and_then(Value::as_object)
                        .unwrap_or_else(|| panic!("{at}: required without properties"));
                    for r in required.as_array().expect("required is an array") {
                        let r = r.as_str().expect("required names are strings");
                        assert!(
                            props.contains_key(r),
                            "{at}: required {r} is not a property"
                        );
                    }
                }
                for (k, child) in map {
                    let at = format!("{at}/{k}");
                    match (k.as_str(), child) {
                        // maps of names to schemas: the names are not keywords
                        ("properties" | "$defs", Value::Object(named)) => {
                            for (name, schema) in named {
                                walk(schema, defs, &format!("{at}/{name}"));
                            }
                        }
                        _ => walk(child, defs, &at),
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, defs, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    walk(root, &defs, "#");
}

/// The top-level keys of a manifest of the repository.
fn keys_of(manifest: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(manifest);
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().expect("string keys").to_string())
        .collect()
}

#[test]
fn the_service_schema_is_valid_and_names_the_fields() {
    let s = schema(&["--kind", "service"]);
    assert_valid(&s);
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false, "unknown keys are refused");
    let props = properties(&s);
    for field in [
        "service",
        "customer",
        "display_name",
        "proxy_port",
        "host_ports",
        "reference",
        "app_id",
        "uses_postgres",
        "blue_green",
        "permissions",
        "vault",
        "secret",
        "overrides",
    ] {
        assert!(props.contains(&field), "no {field} in {props:?}");
    }
    assert_eq!(
        s["required"],
        serde_json::json!(["service", "customer", "proxy_port"])
    );
    for manifest in ["blueprint.yaml", "frame.yaml", "hive.yaml"] {
        for key in keys_of(manifest) {
            assert!(
                props.contains(&key.as_str()),
                "{manifest}: {key} not in the schema"
            );
        }
    }
}

#[test]
fn the_defaults_schema_is_valid_and_names_the_fields() {
    let s = schema(&["--kind", "defaults"]);
    assert_valid(&s);
    assert_eq!(s["additionalProperties"], false);
    let props = properties(&s);
    for field in [
        "organisation",
        "customers",
        "redirect_uris",
        "allowed_origins",
        "allowed_hosts",
        "vault",
        "vaults",
        "secret",
        "tunnel",
        "compose",
        "paths",
        "ports",
    ] {
        assert!(props.contains(&field), "no {field} in {props:?}");
    }
    for key in keys_of("defaults.yaml") {
        assert!(
            props.contains(&key.as_str()),
            "defaults.yaml: {key} not in the schema"
        );
    }
}

#[test]
fn without_a_kind_both_schemas_come_as_one_document() {
    let both = schema(&[]);
    let keys: Vec<&str> = both
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["defaults", "service"]);
    assert_eq!(both["defaults"], schema(&["--kind", "defaults"]));
    assert_eq!(both["service"], schema(&["--kind", "service"]));
}

#[test]
fn an_unknown_kind_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["schema", "--kind", "customers"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("defaults") && stderr.contains("service"),
        "{stderr}"
    );
}
