//! The customers.yaml merge.

use std::path::Path;

use serde_yaml::Value;

use super::engine::*;
use super::*;
use crate::desired::Desired;
use crate::render::yaml::{double_quoted, scalar};
use crate::render::{
    CustomersEntry, PLACEHOLDER_CLIENT_ID, RenderError, check_client_id, customers_entry,
};

/// The pure half of [`merge_customers`]: the merged text of a customers.yaml.
pub fn merge_customers_text(
    text: &str,
    path: &Path,
    desired: &Desired,
    client_id: Option<&str>,
    force: bool,
) -> Result<Merged, RenderError> {
    if let Some(id) = client_id {
        check_client_id(id)?;
    }
    let entry = customers_entry(desired, client_id);
    let (value, doc) = parse_both(text, path)?;
    if !matches!(value, Value::Mapping(_) | Value::Null) {
        return Err(RenderError::MergeShape {
            path: path.to_path_buf(),
            line: Some(1),
            message: "the top of a customers.yaml must be a mapping (azure_apps:, services:, …)"
                .into(),
        });
    }
    let mut p = Planner::new(&doc, text, path, value);

    let secret_item = Node::FlowMap(vec![
        (
            "env".into(),
            entry.secret.env.clone(),
            scalar(&entry.secret.env),
        ),
        (
            "vault".into(),
            entry.secret.vault.clone(),
            double_quoted(&entry.secret.vault),
        ),
        (
            "rotation_external".into(),
            entry.secret.rotation_external.clone(),
            scalar(&entry.secret.rotation_external),
        ),
    ]);
    let scopes = Node::Seq(entry.scopes.iter().map(|s| Node::dq(s)).collect());

    // azure_apps.<customer>.<service>_mcp
    let app_path = [
        "azure_apps",
        entry.customer.as_str(),
        entry.app_key.as_str(),
    ];
    let app_exists = ensure_mapping_path(&mut p, &app_path, || {
        let client = match client_id {
            Some(id) => id,
            None => {
                return Err(RenderError::ClientIdUnknown {
                    path: path.to_path_buf(),
                    service: desired.service.clone(),
                });
            }
        };
        Ok(Node::Map(vec![
            ("client_id".into(), Node::dq(client)),
            (
                "application_id_uri".into(),
                Node::dq(&entry.application_id_uri),
            ),
            ("scopes".into(), scopes.clone()),
            (
                "client_secret_env".into(),
                Node::dq(&entry.client_secret_env),
            ),
        ]))
    })?;
    if app_exists {
        merge_app_entry(&mut p, &entry, &app_path, &scopes, client_id, force)?;
    }

    // services.<service>
    let svc_path = ["services", entry.service.as_str()];
    let svc_exists = ensure_mapping_path(&mut p, &svc_path, || {
        Ok(Node::Map(vec![
            ("env_file".into(), Node::dq(&entry.env_file)),
            ("secrets".into(), Node::Seq(vec![secret_item.clone()])),
        ]))
    })?;
    if svc_exists {
        merge_service_entry(&mut p, &entry, &svc_path, &secret_item, force)?;
    }

    let crlf = text.contains("\r\n");
    let (text, actions, warnings) = p.finish(crlf)?;
    Ok(Merged {
        text,
        actions,
        warnings,
    })
}

/// An existing `azure_apps.<customer>.<service>_mcp`: its client id filled in or checked, the
/// other fields added where missing and checked where present.
fn merge_app_entry(
    p: &mut Planner<'_>,
    entry: &CustomersEntry,
    app_path: &[&str],
    scopes: &Node,
    client_id: Option<&str>,
    force: bool,
) -> Result<(), RenderError> {
    let field = |f: &'static str| -> Vec<&str> {
        let mut v = app_path.to_vec();
        v.push(f);
        v
    };
    let client_path = field("client_id");
    match (p.expected_at(&client_path).cloned(), client_id) {
        (None, Some(id)) => p.add_entry(app_path, "client_id", &Node::dq(id))?,
        (Some(Value::Null), Some(id)) => {
            p.replace_value(&client_path, &Node::dq(id))?;
            p.actions.push(format!("filled in {}", dotted(&client_path)));
        }
        (None, None) => p.warnings.push(format!(
            "{} has no client_id and the client id is not known yet: run `entraform apply MANIFEST` or pin `app_id:`",
            dotted(app_path)
        )),
        (Some(Value::String(s)), None) if s == PLACEHOLDER_CLIENT_ID => {
            p.warnings.push(format!(
                "{} is still the placeholder {PLACEHOLDER_CLIENT_ID:?}: run `entraform apply MANIFEST` or pin `app_id:`",
                dotted(&client_path)
            ));
        }
        // Unknown here, known in the file: keep it.
        (Some(_), None) => {}
        (Some(Value::String(s)), Some(id)) if s == PLACEHOLDER_CLIENT_ID => {
            p.replace_value(&client_path, &Node::dq(id))?;
            p.actions
                .push(format!("filled in {} (was the placeholder)", dotted(&client_path)));
        }
        (Some(existing), Some(id)) => {
            if existing.as_str() != Some(id) {
                p.differs(&client_path, &existing, &Node::dq(id), force)?;
            }
        }
    }
    p.reconcile_scalar(
        &field("application_id_uri"),
        &Node::dq(&entry.application_id_uri),
        force,
    )?;
    let scopes_path = field("scopes");
    match p.expected_at(&scopes_path).cloned() {
        None => p.add_entry(app_path, "scopes", scopes)?,
        Some(existing) if existing == scopes.value() => {}
        Some(existing) => p.differs(&scopes_path, &existing, scopes, force)?,
    }
    p.reconcile_scalar(
        &field("client_secret_env"),
        &Node::dq(&entry.client_secret_env),
        force,
    )?;
    Ok(())
}

/// An existing `services.<service>`: its env file checked, the secret added to `secrets:` or
/// checked there.
fn merge_service_entry(
    p: &mut Planner<'_>,
    entry: &CustomersEntry,
    svc_path: &[&str],
    secret_item: &Node,
    force: bool,
) -> Result<(), RenderError> {
    p.reconcile_scalar(
        &["services", entry.service.as_str(), "env_file"],
        &Node::dq(&entry.env_file),
        force,
    )?;
    let secrets_path = ["services", entry.service.as_str(), "secrets"];
    match p.expected_at(&secrets_path).cloned() {
        None => p.add_entry(svc_path, "secrets", &Node::Seq(vec![secret_item.clone()]))?,
        Some(Value::Null) => {
            p.fill_empty_value(&secrets_path, &Node::Seq(vec![secret_item.clone()]))?;
            p.actions.push(format!(
                "added {} to {}",
                entry.secret.env,
                dotted(&secrets_path)
            ));
        }
        Some(Value::Sequence(items)) => {
            let found = items.iter().position(|item| {
                item.get("env").and_then(Value::as_str) == Some(entry.secret.env.as_str())
            });
            match found {
                None => {
                    p.append_item(&secrets_path, secret_item)?;
                    p.actions.push(format!(
                        "added {} to {}",
                        entry.secret.env,
                        dotted(&secrets_path)
                    ));
                }
                Some(i) => {
                    let index = i.to_string();
                    let item_path = [
                        "services",
                        entry.service.as_str(),
                        "secrets",
                        index.as_str(),
                    ];
                    let fields = [
                        ("vault", Node::dq(&entry.secret.vault)),
                        (
                            "rotation_external",
                            Node::auto(&entry.secret.rotation_external),
                        ),
                    ];
                    for (key, wanted) in &fields {
                        let mut parts = item_path.to_vec();
                        parts.push(key);
                        // A missing field is added (nothing is overridden); a different one
                        // is a conflict.
                        p.reconcile_scalar(&parts, wanted, force)?;
                    }
                }
            }
        }
        Some(other) => {
            return Err(p.shape(
                p.key_offset(&secrets_path),
                format!(
                    "`{}` must be a list of {{ env, vault, rotation_external }} items, found {}",
                    dotted(&secrets_path),
                    show(&other)
                ),
            ));
        }
    }
    Ok(())
}

/// Make sure the mapping at `parts` exists. When a prefix is missing, the rest of the path is
/// added with `make()` as the leaf and `Ok(false)` is returned; `Ok(true)` means it was there.
pub(super) fn ensure_mapping_path(
    p: &mut Planner<'_>,
    parts: &[&str],
    make: impl FnOnce() -> Result<Node, RenderError>,
) -> Result<bool, RenderError> {
    let mut k = 0;
    while k < parts.len() {
        match p.expected_at(&parts[..k]) {
            Some(Value::Mapping(m)) if m.contains_key(parts[k]) => k += 1,
            Some(Value::Mapping(_)) | Some(Value::Null) | None => break,
            Some(other) => {
                let other = show(other);
                return Err(p.shape(
                    p.key_offset(&parts[..k]),
                    format!("`{}` must be a mapping, found {other}", dotted(&parts[..k])),
                ));
            }
        }
    }
    if k == parts.len() {
        return match p.expected_at(parts) {
            Some(Value::Mapping(_)) => Ok(true),
            Some(Value::Null) => {
                // `blueprint_mcp:` with nothing under it: fill it.
                let node = make()?;
                p.fill_empty_value(parts, &node)?;
                p.actions.push(format!("added {}", dotted(parts)));
                Ok(false)
            }
            other => {
                let other = other.map(show).unwrap_or_default();
                Err(p.shape(
                    p.key_offset(parts),
                    format!("`{}` must be a mapping, found {other}", dotted(parts)),
                ))
            }
        };
    }
    let mut node = make()?;
    for key in parts[k + 1..].iter().rev() {
        node = Node::Map(vec![((*key).to_owned(), node)]);
    }
    p.add_entry(&parts[..k], parts[k], &node)?;
    Ok(false)
}
