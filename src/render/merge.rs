//! In-place merges into hand-kept files: `customers.yaml` and the cloudflared tunnel config.
//!
//! The files are edited as text, never re-serialized: `yamlpath` (the query half of yamlpatch)
//! locates the mappings and sequences, and the new entries are inserted as lines at the right
//! indentation, so comments, order, quoting and every unrelated entry stay byte for byte.
//! (yamlpatch's own `Add`/`Append` flatten nested values and can only append at the end of a
//! sequence, while cloudflared's rules must go before the catch-all.)
//!
//! Every merge checks its own output before writing: the merged text must parse to exactly the
//! original document plus the intended changes, and a merged cloudflared config must validate
//! and route each new rule's probe URL to that rule. A second merge finds nothing to do and
//! writes nothing. A changed file is written atomically, and its previous content is kept as
//! `FILE.bak`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::{Mapping, Value};
use yamlpath::{Component, Document, Feature, FeatureKind, Route};

use super::cloudflared::{self, Config, LAST_RULE_NOT_CATCH_ALL};
use super::yaml::{double_quoted, scalar};
use super::{
    PLACEHOLDER_CLIENT_ID, RenderError, check_client_id, customers_entry, ingress_rules,
    write_atomic,
};
use crate::desired::Desired;

/// What a merge did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// `customers` or `cloudflared`.
    pub kind: &'static str,
    pub path: PathBuf,
    /// False when the file already held everything (it was not touched).
    pub changed: bool,
    /// Where the previous content was saved, when the file changed.
    pub backup: Option<PathBuf>,
    /// What was added or replaced, one line each (`added azure_apps.axe.blueprint_mcp`).
    pub actions: Vec<String>,
    /// Things the operator should know that did not stop the merge.
    pub warnings: Vec<String>,
}

/// The merged text of a file and what changed (the pure half of a merge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    pub actions: Vec<String>,
    pub warnings: Vec<String>,
}

/// An existing value that differs from the one entraform would write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// 1-based line of the existing value.
    pub line: usize,
    /// What it is (`azure_apps.axe.blueprint_mcp.client_id`, `ingress rule #3 service`).
    pub what: String,
    pub existing: String,
    pub wanted: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} is {}, entraform would write {}",
            self.line, self.what, self.existing, self.wanted
        )
    }
}

/// Merge the service's entries into a customers.yaml: `azure_apps.<customer>.<service>_mcp`
/// and `services.<service>` (its secret item is added to an existing `secrets:` list).
///
/// `client_id = None` keeps an existing client id; with no entry to keep it refuses, so a live
/// customers.yaml never gets a placeholder. A value that differs from the desired one is a
/// conflict (every conflict is listed with its line) unless `force`, except a placeholder
/// client id, which is always filled in.
pub fn merge_customers(
    file: &Path,
    desired: &Desired,
    client_id: Option<&str>,
    force: bool,
) -> Result<MergeReport, RenderError> {
    merge_file(file, "customers", |text, path| {
        merge_customers_text(text, path, desired, client_id, force)
    })
}

/// Insert the service's ingress rules into a cloudflared config, as one group right before the
/// first existing rule that could match any URL they route (above any comment lines directly
/// over that rule; at the latest before the catch-all). A rule with the same hostname and path
/// but another service is a conflict unless `force` (which replaces its service). A config that
/// cloudflared would reject (no catch-all last, a bad regex, …) is refused with cloudflared's
/// own message.
pub fn merge_cloudflared(
    file: &Path,
    desired: &Desired,
    force: bool,
) -> Result<MergeReport, RenderError> {
    merge_file(file, "cloudflared", |text, path| {
        merge_cloudflared_text(text, path, desired, force)
    })
}

fn merge_file(
    file: &Path,
    kind: &'static str,
    merge: impl FnOnce(&str, &Path) -> Result<Merged, RenderError>,
) -> Result<MergeReport, RenderError> {
    // Edit the file a symlink points at (dotfiles often are links), not the link.
    let real = fs::canonicalize(file).map_err(|e| RenderError::io("read", file, e))?;
    let meta = fs::metadata(&real).map_err(|e| RenderError::io("read", file, e))?;
    let bytes = fs::read(&real).map_err(|e| RenderError::io("read", file, e))?;
    let text = String::from_utf8(bytes).map_err(|e| RenderError::MergeParse {
        path: file.to_path_buf(),
        line: None,
        message: format!("not UTF-8 text ({e})"),
    })?;
    let merged = merge(&text, file)?;
    if merged.text == text {
        return Ok(MergeReport {
            kind,
            path: file.to_path_buf(),
            changed: false,
            backup: None,
            actions: merged.actions,
            warnings: merged.warnings,
        });
    }
    // Next to the file that is written; named as the user named it unless that was a link.
    let is_link = fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink());
    let mut backup = if is_link {
        real.clone()
    } else {
        file.to_path_buf()
    }
    .into_os_string();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    write_atomic(&backup, text.as_bytes(), Some(&meta))?;
    write_atomic(&real, merged.text.as_bytes(), Some(&meta))?;
    Ok(MergeReport {
        kind,
        path: file.to_path_buf(),
        changed: true,
        backup: Some(backup),
        actions: merged.actions,
        warnings: merged.warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// Text edits located with yamlpath
// ---------------------------------------------------------------------------------------------

/// A YAML value to insert, with each scalar already rendered.
#[derive(Debug, Clone)]
enum Node {
    Scalar {
        raw: String,
        text: String,
    },
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    /// `{ k: v, … }` on one line (the seed's style for secret items).
    FlowMap(Vec<(String, String, String)>),
}

impl Node {
    fn dq(raw: &str) -> Node {
        Node::Scalar {
            raw: raw.to_owned(),
            text: double_quoted(raw),
        }
    }

    fn auto(raw: &str) -> Node {
        Node::Scalar {
            raw: raw.to_owned(),
            text: scalar(raw),
        }
    }

    fn value(&self) -> Value {
        match self {
            Node::Scalar { raw, .. } => Value::String(raw.clone()),
            Node::Seq(items) => Value::Sequence(items.iter().map(Node::value).collect()),
            Node::Map(pairs) => Value::Mapping(
                pairs
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), v.value()))
                    .collect(),
            ),
            Node::FlowMap(pairs) => Value::Mapping(
                pairs
                    .iter()
                    .map(|(k, raw, _)| (Value::String(k.clone()), Value::String(raw.clone())))
                    .collect(),
            ),
        }
    }

    /// The value written after `key: ` on one line, when it fits there.
    fn inline(&self) -> Option<String> {
        match self {
            Node::Scalar { text, .. } => Some(text.clone()),
            Node::FlowMap(pairs) => Some(format!(
                "{{ {} }}",
                pairs
                    .iter()
                    .map(|(k, _, v)| format!("{}: {v}", scalar(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Node::Seq(_) | Node::Map(_) => None,
        }
    }

    /// A one-line flow form of any node (used to replace a value in place).
    fn flow(&self) -> String {
        match self {
            Node::Seq(items) => format!(
                "[{}]",
                items.iter().map(Node::flow).collect::<Vec<_>>().join(", ")
            ),
            Node::Map(pairs) => format!(
                "{{ {} }}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", scalar(k), v.flow()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.inline().unwrap_or_default(),
        }
    }
}

/// Emit `key: value` at `indent` (block style), one line per scalar.
fn emit_entry(out: &mut String, indent: usize, step: usize, key: &str, node: &Node) {
    let pad = " ".repeat(indent);
    match node.inline() {
        Some(v) => out.push_str(&format!("{pad}{}: {v}\n", scalar(key))),
        None => {
            out.push_str(&format!("{pad}{}:\n", scalar(key)));
            emit_children(out, indent + step, step, node);
        }
    }
}

/// Emit the children of a mapping or sequence at `indent`.
fn emit_children(out: &mut String, indent: usize, step: usize, node: &Node) {
    match node {
        Node::Map(pairs) => {
            for (k, v) in pairs {
                emit_entry(out, indent, step, k, v);
            }
        }
        Node::Seq(items) => {
            for item in items {
                emit_item(out, indent, step, item);
            }
        }
        _ => {}
    }
}

/// Emit `- item` with the dash at `indent`.
fn emit_item(out: &mut String, indent: usize, step: usize, node: &Node) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(pairs) if !pairs.is_empty() => {
            // The first pair shares the dash line; the others align with it.
            let mut body = String::new();
            for (k, v) in pairs {
                emit_entry(&mut body, indent + 2, step, k, v);
            }
            out.push_str(&format!("{pad}- {}", &body[indent + 2..]));
        }
        _ => match node.inline() {
            Some(v) => out.push_str(&format!("{pad}- {v}\n")),
            None => out.push_str(&format!("{pad}- {}\n", node.flow())),
        },
    }
}

#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
    /// Indentation of the inserted lines. Inserts at the same offset are stacked deepest
    /// first: children of an empty key, then an entry of the mapping that ends on that line,
    /// then one of its parent, and so on. A list item ranks deeper than a key at the same
    /// indentation (`secrets:` items written without indenting the dash).
    depth: (usize, bool),
}

/// Plans edits against one parsed document and tracks the document they should produce.
struct Planner<'a> {
    doc: &'a Document,
    src: &'a str,
    path: &'a Path,
    step: usize,
    edits: Vec<Edit>,
    actions: Vec<String>,
    warnings: Vec<String>,
    conflicts: Vec<Conflict>,
    /// The original document with the planned changes applied (the self-check's reference).
    expected: Value,
    /// The file had no document (empty, or only comments): new top-level keys go at the end.
    root_empty: bool,
    /// An insert goes at the end of a file that does not end with a newline.
    missing_final_newline: bool,
}

/// A yamlpath route; numeric parts are list indices (keys here are names that start with a
/// letter: services, customers, fields).
fn route(parts: &[&str]) -> Route<'static> {
    Route::from(
        parts
            .iter()
            .map(|p| match p.parse::<usize>() {
                Ok(i) => Component::from(i),
                Err(_) => Component::from(p.to_string()),
            })
            .collect::<Vec<_>>(),
    )
}

fn dotted(parts: &[&str]) -> String {
    parts.join(".")
}

/// Indentation step of a file: the smallest indentation of a content line (2 when flat).
fn detect_step(src: &str) -> usize {
    src.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('-')
        })
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(2)
        .clamp(2, 8)
}

impl<'a> Planner<'a> {
    fn new(doc: &'a Document, src: &'a str, path: &'a Path, expected: Value) -> Self {
        Planner {
            doc,
            src,
            path,
            step: detect_step(src),
            edits: Vec::new(),
            actions: Vec::new(),
            warnings: Vec::new(),
            conflicts: Vec::new(),
            root_empty: expected.is_null(),
            missing_final_newline: false,
            expected,
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    fn shape(&self, offset: Option<usize>, message: impl Into<String>) -> RenderError {
        RenderError::MergeShape {
            path: self.path.to_path_buf(),
            line: offset.map(|o| self.line_of(o)),
            message: message.into(),
        }
    }

    fn exact(&self, parts: &[&str]) -> Result<Option<Feature<'a>>, RenderError> {
        let found = self
            .doc
            .query_exact(&route(parts))
            .map_err(|e| self.shape(None, format!("cannot locate {}: {e}", dotted(parts))))?;
        found.map(|f| self.plain(f, &dotted(parts))).transpose()
    }

    /// Refuse a node with an anchor, alias or tag (`&name`, `*name`, `!tag`): yamlpath cannot
    /// tell its kind (it panics: `unexpected feature kind: anchor`, found by fuzzing), and an
    /// edit through an alias would change every place that shares it.
    fn plain(&self, f: Feature<'a>, what: &str) -> Result<Feature<'a>, RenderError> {
        let text = self.doc.extract(&f).trim_start();
        let what = if what.is_empty() {
            "the top mapping"
        } else {
            what
        };
        if text.starts_with(['&', '*', '!']) {
            return Err(self.shape(
                Some(f.location.byte_span.0),
                format!(
                    "{what} carries a YAML anchor, alias or tag (`{}`); entraform edits only plain nodes",
                    text.split_whitespace().next().unwrap_or_default()
                ),
            ));
        }
        // A node that opens with a comment (after an anchor on the key's line, say) cannot be
        // told apart either (`unexpected feature kind: comment`, also found by fuzzing).
        if text.starts_with('#') {
            return Err(self.shape(
                Some(f.location.byte_span.0),
                format!(
                    "{what} opens with a comment where its first entry should be (an anchor or tag on the key's line?); entraform edits only plain nodes"
                ),
            ));
        }
        Ok(f)
    }

    fn key_offset(&self, parts: &[&str]) -> Option<usize> {
        self.doc
            .query_key_only(&route(parts))
            .ok()
            .map(|f| f.location.byte_span.0)
    }

    /// The offset where a line after the last content line of `[start, end)` begins (comment
    /// and blank lines trailing a mapping stay below the insertion), and whether the inserted
    /// text must start with a newline (no newline at end of file).
    fn after_content(&self, start: usize, end: usize) -> (usize, bool) {
        let src = self.src;
        let mut line_start = src[..end.min(src.len())].rfind('\n').map_or(0, |i| i + 1);
        if line_start == end && end > start {
            // `end` sits at the start of a line: the span's last line is the one before.
            line_start = src[..end - 1].rfind('\n').map_or(0, |i| i + 1);
        }
        loop {
            let line_end = src[line_start..].find('\n').map(|i| line_start + i);
            let line = &src[line_start..line_end.unwrap_or(src.len())];
            let t = line.trim();
            if (!t.is_empty() && !t.starts_with('#')) || line_start <= start {
                return match line_end {
                    Some(i) => (i + 1, false),
                    None => (src.len(), true),
                };
            }
            line_start = src[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
        }
    }

    fn insert(&mut self, at: usize, leading_newline: bool, text: String) {
        // No newline at the end of the file: `finish` adds one, once, before the inserts.
        self.missing_final_newline |= leading_newline;
        let body = text.trim_start_matches(' ');
        let depth = (text.len() - body.len(), body.starts_with("- "));
        self.edits.push(Edit {
            start: at,
            end: at,
            text,
            depth,
        });
    }

    /// Add `key: node` to the mapping at `parent` (root when empty). The mapping must be block
    /// style, or an empty/null value (then it becomes a block mapping).
    fn add_entry(&mut self, parent: &[&str], key: &str, node: &Node) -> Result<(), RenderError> {
        let mut full: Vec<&str> = parent.to_vec();
        full.push(key);
        let feature =
            if parent.is_empty() {
                if self.root_empty {
                    // An empty file (or only comments): append at the end.
                    let mut text = String::new();
                    emit_entry(&mut text, 0, self.step, key, node);
                    let lead = !self.src.is_empty() && !self.src.ends_with('\n');
                    self.insert(self.src.len(), lead, text);
                    self.set_expected(&full, node.value());
                    self.actions.push(format!("added {}", dotted(&full)));
                    return Ok(());
                }
                Some(self.plain(
                    self.doc.top_feature().map_err(|e| {
                        self.shape(None, format!("cannot locate the top mapping: {e}"))
                    })?,
                    "",
                )?)
            } else {
                self.exact(parent)?
            };
        match feature {
            Some(f) if f.kind() == FeatureKind::BlockMapping => {
                let indent = f.location.point_span.0.1;
                let (at, lead) = self.after_content(f.location.byte_span.0, f.location.byte_span.1);
                let mut text = String::new();
                emit_entry(&mut text, indent, self.step, key, node);
                self.insert(at, lead, text);
            }
            Some(f) if f.kind() == FeatureKind::Scalar && self.is_null_at(parent) => {
                self.fill_empty_value(parent, &Node::Map(vec![(key.to_owned(), node.clone())]))?;
            }
            None => {
                self.fill_empty_value(parent, &Node::Map(vec![(key.to_owned(), node.clone())]))?
            }
            Some(f) => {
                return Err(self.shape(
                    Some(f.location.byte_span.0),
                    format!(
                        "`{}` is {}; entraform adds keys only to block mappings",
                        dotted(parent),
                        describe_kind(f.kind())
                    ),
                ));
            }
        }
        self.set_expected(&full, node.value());
        self.actions.push(format!("added {}", dotted(&full)));
        Ok(())
    }

    /// `at:` with nothing after it (or `~` / `null`) gets the children of `node` (a mapping or
    /// a list) on the following lines, one indentation step deeper than the key.
    fn fill_empty_value(&mut self, at: &[&str], node: &Node) -> Result<(), RenderError> {
        if let Some(f) = self.exact(at)? {
            if f.kind() != FeatureKind::Scalar || !self.is_null_at(at) {
                return Err(self.shape(
                    Some(f.location.byte_span.0),
                    format!("`{}` is not empty", dotted(at)),
                ));
            }
            // Drop the explicit null; the children follow on the next lines.
            self.edits.push(Edit {
                start: f.location.byte_span.0,
                end: f.location.byte_span.1,
                text: String::new(),
                depth: (0, false),
            });
        }
        let Some(key_at) = self.key_offset(at) else {
            return Err(self.shape(None, format!("cannot locate `{}`", dotted(at))));
        };
        let line_start = self.src[..key_at].rfind('\n').map_or(0, |i| i + 1);
        let indent = key_at - line_start + self.step;
        let (pos, lead) = match self.src[key_at..].find('\n') {
            Some(i) => (key_at + i + 1, false),
            None => (self.src.len(), true),
        };
        let mut text = String::new();
        emit_children(&mut text, indent, self.step, node);
        self.insert(pos, lead, text);
        match (self.expected_at_mut(at), node.value()) {
            (Some(slot @ Value::Null), value) => *slot = value,
            (Some(Value::Mapping(m)), Value::Mapping(add)) => m.extend(add),
            _ => {}
        }
        Ok(())
    }

    /// Append `item` to the block sequence at `seq`.
    fn append_item(&mut self, seq: &[&str], item: &Node) -> Result<(), RenderError> {
        match self.exact(seq)? {
            Some(f) if f.kind() == FeatureKind::BlockSequence => {
                let indent = f.location.point_span.0.1;
                let (at, lead) = self.after_content(f.location.byte_span.0, f.location.byte_span.1);
                let mut text = String::new();
                emit_item(&mut text, indent, self.step, item);
                self.insert(at, lead, text);
            }
            Some(f) => {
                return Err(self.shape(
                    Some(f.location.byte_span.0),
                    format!(
                        "`{}` is {}; entraform appends only to block sequences (`- item` lines)",
                        dotted(seq),
                        describe_kind(f.kind())
                    ),
                ));
            }
            None => {
                return Err(self.shape(
                    self.key_offset(seq),
                    format!("`{}` is empty; write it as a list", dotted(seq)),
                ));
            }
        }
        if let Some(Value::Sequence(items)) = self.expected_at_mut(seq) {
            items.push(item.value());
        }
        Ok(())
    }

    /// Replace the value at `at` with `node` (flow form, so it fits wherever the old one was).
    fn replace_value(&mut self, at: &[&str], node: &Node) -> Result<(), RenderError> {
        match self.exact(at)? {
            Some(f) => self.edits.push(Edit {
                start: f.location.byte_span.0,
                end: f.location.byte_span.1,
                text: node.flow(),
                depth: (0, false),
            }),
            None => {
                // `key:` with nothing after it: the value goes right after the colon.
                let key = self
                    .doc
                    .query_key_only(&route(at))
                    .map_err(|e| self.shape(None, format!("cannot locate {}: {e}", dotted(at))))?;
                let end = key.location.byte_span.1;
                let Some(colon) = self.src[end..].find(':').map(|i| end + i) else {
                    return Err(self.shape(Some(end), format!("cannot locate `{}`", dotted(at))));
                };
                self.edits.push(Edit {
                    start: colon + 1,
                    end: colon + 1,
                    text: format!(" {}", node.flow()),
                    depth: (0, false),
                });
            }
        }
        self.set_expected(at, node.value());
        Ok(())
    }

    fn line_at(&self, parts: &[&str]) -> usize {
        match self.exact(parts) {
            Ok(Some(f)) => f.location.point_span.0.0 + 1,
            _ => self.key_offset(parts).map_or(1, |o| self.line_of(o)),
        }
    }

    fn expected_at(&self, parts: &[&str]) -> Option<&Value> {
        let mut cur = &self.expected;
        for p in parts {
            cur = match cur {
                Value::Mapping(m) => m.get(*p)?,
                Value::Sequence(s) => s.get(p.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn expected_at_mut(&mut self, parts: &[&str]) -> Option<&mut Value> {
        let mut cur = &mut self.expected;
        for p in parts {
            cur = match cur {
                Value::Mapping(m) => m.get_mut(*p)?,
                Value::Sequence(s) => s.get_mut(p.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn is_null_at(&self, parts: &[&str]) -> bool {
        matches!(self.expected_at(parts), Some(Value::Null))
    }

    fn set_expected(&mut self, parts: &[&str], value: Value) {
        let mut cur = &mut self.expected;
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                match cur {
                    Value::Mapping(m) => {
                        m.insert(Value::String((*p).to_owned()), value);
                    }
                    Value::Sequence(s) => {
                        if let Some(slot) = p.parse::<usize>().ok().and_then(|i| s.get_mut(i)) {
                            *slot = value;
                        }
                    }
                    other => {
                        let mut m = Mapping::new();
                        m.insert(Value::String((*p).to_owned()), value);
                        *other = Value::Mapping(m);
                    }
                }
                return;
            }
            if matches!(cur, Value::Null) {
                *cur = Value::Mapping(Mapping::new());
            }
            cur = match cur {
                Value::Mapping(m) => m
                    .entry(Value::String((*p).to_owned()))
                    .or_insert(Value::Null),
                Value::Sequence(s) => match p.parse::<usize>().ok().and_then(|i| s.get_mut(i)) {
                    Some(v) => v,
                    None => return,
                },
                _ => return,
            };
        }
        *cur = value;
    }

    /// Compare an existing scalar with the wanted one: equal → nothing; differs → a conflict,
    /// or with `force` a replacement; missing → added.
    fn reconcile_scalar(
        &mut self,
        parts: &[&str],
        wanted: &Node,
        force: bool,
    ) -> Result<(), RenderError> {
        let Node::Scalar { raw, .. } = wanted else {
            return Ok(());
        };
        match self.expected_at(parts).cloned() {
            None => self.add_entry(&parts[..parts.len() - 1], parts[parts.len() - 1], wanted),
            Some(Value::Null) => {
                self.replace_value(parts, wanted)?;
                self.actions.push(format!("filled in {}", dotted(parts)));
                Ok(())
            }
            Some(Value::String(ref s)) if s == raw => Ok(()),
            Some(existing) => self.differs(parts, &existing, wanted, force),
        }
    }

    fn differs(
        &mut self,
        parts: &[&str],
        existing: &Value,
        wanted: &Node,
        force: bool,
    ) -> Result<(), RenderError> {
        if force {
            self.replace_value(parts, wanted)?;
            self.actions.push(format!(
                "replaced {} (was {}; --force)",
                dotted(parts),
                show(existing)
            ));
        } else {
            self.conflicts.push(Conflict {
                line: self.line_at(parts),
                what: dotted(parts),
                existing: show(existing),
                wanted: show(&wanted.value()),
            });
        }
        Ok(())
    }

    /// Apply the edits (last first, so offsets stay valid) and check the result parses to the
    /// expected document.
    fn finish(
        self,
        line_ending_crlf: bool,
    ) -> Result<(String, Vec<String>, Vec<String>), RenderError> {
        if !self.conflicts.is_empty() {
            return Err(RenderError::Conflict {
                path: self.path.to_path_buf(),
                conflicts: self.conflicts,
            });
        }
        let mut text = self.src.to_owned();
        let mut edits: Vec<(usize, Edit)> = self.edits.into_iter().enumerate().collect();
        if self.missing_final_newline {
            let nl = if line_ending_crlf { "\r\n" } else { "\n" };
            text.push_str(nl);
            for (_, e) in edits.iter_mut().filter(|(_, e)| e.start == self.src.len()) {
                e.start += nl.len();
                e.end += nl.len();
            }
        }
        // Later offsets first. At the same offset the edit applied last ends up on top: the
        // deepest insert goes last, and at equal depth the earlier-planned one ends up above.
        edits.sort_by(|(ia, a), (ib, b)| {
            b.start
                .cmp(&a.start)
                .then(a.depth.cmp(&b.depth))
                .then(ib.cmp(ia))
        });
        for (_, edit) in edits {
            let insert = if line_ending_crlf {
                edit.text.replace('\n', "\r\n")
            } else {
                edit.text
            };
            text.replace_range(edit.start..edit.end, &insert);
        }
        let parsed: Value = serde_yaml::from_str(&text).map_err(|e| RenderError::SelfCheck {
            path: self.path.to_path_buf(),
            message: format!("the merged text does not parse: {e}"),
        })?;
        if parsed != self.expected && self.doc.has_anchors() {
            // An alias shares one node between several places: an edit meant for one of them
            // shows up in the others too (the check above caught it; nothing is written).
            return Err(RenderError::MergeShape {
                path: self.path.to_path_buf(),
                line: None,
                message: "the entries entraform edits go through a YAML alias (`*name`) of an \
                          anchored node; write them out in full instead of sharing them"
                    .into(),
            });
        }
        if parsed != self.expected {
            return Err(RenderError::SelfCheck {
                path: self.path.to_path_buf(),
                message:
                    "the merged file would differ from the original in more than the new entries"
                        .into(),
            });
        }
        Document::new(text.as_str()).map_err(|e| RenderError::SelfCheck {
            path: self.path.to_path_buf(),
            message: format!("the merged text is not accepted by the YAML locator: {e}"),
        })?;
        Ok((text, self.actions, self.warnings))
    }
}

fn describe_kind(kind: FeatureKind) -> &'static str {
    match kind {
        FeatureKind::BlockMapping => "a block mapping",
        FeatureKind::BlockSequence => "a list",
        FeatureKind::FlowMapping => "a flow mapping (`{ … }`)",
        FeatureKind::FlowSequence => "a flow list (`[ … ]`)",
        FeatureKind::Scalar => "a single value",
    }
}

/// A value as shown in a conflict message (JSON: unambiguous and one line).
fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

fn parse_both(text: &str, path: &Path) -> Result<(Value, Document), RenderError> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| RenderError::MergeParse {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    let doc = Document::new(text).map_err(|e| RenderError::MergeParse {
        path: path.to_path_buf(),
        line: None,
        message: e.to_string(),
    })?;
    Ok((value, doc))
}

// ---------------------------------------------------------------------------------------------
// customers.yaml
// ---------------------------------------------------------------------------------------------

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
        let field = |f: &'static str| -> Vec<&str> {
            let mut v = app_path.to_vec();
            v.push(f);
            v
        };
        let client_path = field("client_id");
        match (p.expected_at(&client_path).cloned(), client_id) {
            (None, Some(id)) => p.add_entry(&app_path, "client_id", &Node::dq(id))?,
            (Some(Value::Null), Some(id)) => {
                p.replace_value(&client_path, &Node::dq(id))?;
                p.actions.push(format!("filled in {}", dotted(&client_path)));
            }
            (None, None) => p.warnings.push(format!(
                "{} has no client_id and the client id is not known yet: run `entraform apply MANIFEST` or pin `app_id:`",
                dotted(&app_path)
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
            None => p.add_entry(&app_path, "scopes", &scopes)?,
            Some(existing) if existing == scopes.value() => {}
            Some(existing) => p.differs(&scopes_path, &existing, &scopes, force)?,
        }
        p.reconcile_scalar(
            &field("client_secret_env"),
            &Node::dq(&entry.client_secret_env),
            force,
        )?;
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
        p.reconcile_scalar(
            &["services", entry.service.as_str(), "env_file"],
            &Node::dq(&entry.env_file),
            force,
        )?;
        let secrets_path = ["services", entry.service.as_str(), "secrets"];
        match p.expected_at(&secrets_path).cloned() {
            None => p.add_entry(&svc_path, "secrets", &Node::Seq(vec![secret_item.clone()]))?,
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
                        p.append_item(&secrets_path, &secret_item)?;
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
    }

    let crlf = text.contains("\r\n");
    let (text, actions, warnings) = p.finish(crlf)?;
    Ok(Merged {
        text,
        actions,
        warnings,
    })
}

/// Make sure the mapping at `parts` exists. When a prefix is missing, the rest of the path is
/// added with `make()` as the leaf and `Ok(false)` is returned; `Ok(true)` means it was there.
fn ensure_mapping_path(
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

// ---------------------------------------------------------------------------------------------
// cloudflared
// ---------------------------------------------------------------------------------------------

/// The pure half of [`merge_cloudflared`]: the merged text of a tunnel config.
///
/// cloudflared sends a request to the first rule whose hostname and path regex match it
/// (<https://developers.cloudflare.com/cloudflare-one/connections/connect-apps/configuration/ingress> ("How traffic is matched")),
/// so the service's rules go in as one group right before the first existing rule that could
/// match any URL they route (a hostname-wide rule for the same host, a broader regex, at the
/// latest the catch-all). Rules that certainly match none of those URLs (other hosts, other
/// services' anchored paths) may stay above them. A rule that is already there with the same
/// hostname and path but another service is a conflict unless `force`.
pub fn merge_cloudflared_text(
    text: &str,
    path: &Path,
    desired: &Desired,
    force: bool,
) -> Result<Merged, RenderError> {
    let name = path.display().to_string();
    let refuse = |e: cloudflared::IngressError, config: Option<&Config>| {
        let line = e
            .rule
            .and_then(|i| config.and_then(|c| c.rules.get(i)).and_then(|r| r.line));
        let hint = if e.message == LAST_RULE_NOT_CATCH_ALL {
            Some(
                "end the `ingress:` list with a catch-all rule: `- service: http_status:404`"
                    .into(),
            )
        } else {
            Some("fix the config so `cloudflared tunnel ingress validate` passes; nothing was written".into())
        };
        RenderError::Cloudflared {
            path: path.to_path_buf(),
            line,
            message: e.message,
            hint,
        }
    };
    let config = Config::parse(text, &name).map_err(|e| refuse(e, None))?;
    let old_rules = config.validate().map_err(|e| refuse(e, Some(&config)))?;
    let (value, doc) = parse_both(text, path)?;
    let mut p = Planner::new(&doc, text, path, value);
    p.warnings.extend(config.warnings.iter().cloned());

    let wanted = ingress_rules(desired);
    let mut missing = Vec::new();
    // The service's rules already in the file (same hostname and path), with their indices.
    let mut present: Vec<(&super::IngressRule, usize)> = Vec::new();
    for rule in &wanted {
        let found = config
            .rules
            .iter()
            .position(|r| r.hostname == rule.hostname && r.path == rule.path);
        match found {
            Some(i) if config.rules[i].service == rule.service => present.push((rule, i)),
            Some(i) => {
                present.push((rule, i));
                let index = i.to_string();
                let parts = ["ingress", index.as_str(), "service"];
                let existing = Value::String(config.rules[i].service.clone());
                let node = Node::auto(&rule.service);
                if force {
                    p.replace_value(&parts, &node)?;
                    p.actions.push(format!(
                        "replaced the service of ingress rule #{} ({}) (was {}; --force)",
                        i + 1,
                        rule.path,
                        config.rules[i].service
                    ));
                } else {
                    p.conflicts.push(Conflict {
                        line: p.line_at(&parts),
                        what: format!(
                            "the service of ingress rule #{} ({} {})",
                            i + 1,
                            rule.hostname,
                            rule.path
                        ),
                        existing: show(&existing),
                        wanted: show(&node.value()),
                    });
                }
            }
            None => missing.push(rule),
        }
    }

    // The service's rules that are there already must be the ones their URLs reach: a rule
    // above them that catches those URLs made them dead before this merge. That is refused
    // (with the rule in the way), not repaired by moving lines around.
    // Checked on the probe URLs and on every sample URL one of them matches.
    let samples = sample_urls(&old_rules, &wanted);
    for &(rule, own) in &present {
        let urls =
            std::iter::once(rule.probe_url.clone()).chain(samples.iter().filter_map(|url| {
                let (host, url_path) = cloudflared::split_url(url).ok()?;
                cloudflared::rule_matches(&old_rules[own], &host, &url_path).then(|| url.clone())
            }));
        for url in urls {
            let hit =
                cloudflared::match_rule(&old_rules, &url).map_err(|e| refuse(e, Some(&config)))?;
            if !present.iter().any(|(_, i)| *i == hit) {
                return Err(dead_rule(path, &config, hit, own, rule, &url));
            }
        }
    }

    if !missing.is_empty() {
        // The first other rule that could catch a URL of the new rules; the catch-all always
        // can, so there is one.
        let first_overlap = old_rules
            .iter()
            .enumerate()
            .filter(|(i, _)| !present.iter().any(|(_, p)| p == i))
            .find(|(_, r)| may_overlap(r, &missing))
            .map_or(old_rules.len() - 1, |(i, _)| i);
        // Next to the service's rules that are already there (an upgrade adds the health rule
        // to the group), when that is still above the first rule that could catch them.
        let (at, joins_group) = match present.iter().map(|(_, i)| *i).max() {
            Some(last) if last < first_overlap => (last + 1, true),
            _ => (first_overlap, false),
        };
        let index = at.to_string();
        let Some(item) = p.exact(&["ingress", index.as_str()])? else {
            return Err(p.shape(None, format!("cannot locate ingress rule #{}", at + 1)));
        };
        let item_at = item.location.byte_span.0;
        let content_col = item.location.point_span.0.1;
        // The dash of the item (usually on the same line as its first key).
        let dash = text[..item_at].rfind('-').unwrap_or(item_at);
        let mut line_start = text[..dash].rfind('\n').map_or(0, |i| i + 1);
        let dash_col = dash - line_start;
        // Keep a comment that sits right above that rule with it.
        while line_start > 0 {
            let prev_start = text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
            if text[prev_start..line_start].trim_start().starts_with('#') {
                line_start = prev_start;
            } else {
                break;
            }
        }
        let mut block = String::new();
        if !joins_group {
            block.push_str(&format!(
                "{}# {} MCP (added by entraform)\n",
                " ".repeat(dash_col),
                desired.service
            ));
        }
        for rule in &missing {
            let pad = " ".repeat(content_col);
            block.push_str(&format!(
                "{}-{}hostname: {}\n{pad}path: {}\n{pad}service: {}\n",
                " ".repeat(dash_col),
                " ".repeat(content_col.saturating_sub(dash_col + 1).max(1)),
                scalar(&rule.hostname),
                scalar(&rule.path),
                scalar(&rule.service)
            ));
            p.actions.push(format!(
                "added ingress rule {} {} -> {}",
                rule.hostname, rule.path, rule.service
            ));
        }
        let before = &old_rules[at];
        let catch_all =
            (before.hostname.is_empty() || before.hostname == "*") && before.path.is_none();
        if !joins_group && !catch_all {
            p.actions.push(format!(
                "placed before ingress rule #{} ({}), the first rule that could match their URLs",
                at + 1,
                describe_rule(&before.hostname, before.path.as_ref(), &before.service)
            ));
        }
        // Path rules of other apps that routed one of the service's URLs elsewhere: the
        // operator should know those URLs change hands. (A hostname-wide rule is the main app
        // behind its own proxy: that the service's paths go to the service is the point.)
        for (i, r) in old_rules.iter().enumerate().skip(at) {
            if present.iter().any(|(_, p)| *p == i) || r.path.is_none() {
                continue;
            }
            let claimed: Vec<&str> = missing
                .iter()
                .filter(|w| {
                    cloudflared::split_url(&w.probe_url).is_ok_and(|(host, path)| {
                        cloudflared::match_rule(&old_rules, &w.probe_url).ok() == Some(i)
                            && cloudflared::rule_matches(r, &host, &path)
                    })
                })
                .map(|w| w.probe_url.as_str())
                .collect();
            if !claimed.is_empty() && r.service != missing[0].service {
                p.warnings.push(format!(
                    "ingress rule #{} ({}) routed {} until now; the service's rules above it take {} now",
                    i + 1,
                    describe_rule(&r.hostname, r.path.as_ref(), &r.service),
                    claimed.join(", "),
                    if claimed.len() == 1 { "it" } else { "them" }
                ));
            }
        }
        p.insert(line_start, false, block);
        if let Some(Value::Sequence(items)) = p.expected_at_mut(&["ingress"]) {
            for (offset, rule) in missing.iter().enumerate() {
                let mut m = Mapping::new();
                m.insert("hostname".into(), rule.hostname.clone().into());
                m.insert("path".into(), rule.path.clone().into());
                m.insert("service".into(), rule.service.clone().into());
                items.insert(at + offset, Value::Mapping(m));
            }
        }
    }

    let crlf = text.contains("\r\n");
    let (merged, actions, warnings) = p.finish(crlf)?;
    check_routing(&merged, path, &wanted, &old_rules)?;
    Ok(Merged {
        text: merged,
        actions,
        warnings,
    })
}

/// The service's rule #`own` (0-based) is not reached for `url`: rule #`hit` catches it first.
fn dead_rule(
    path: &Path,
    config: &Config,
    hit: usize,
    own: usize,
    rule: &super::IngressRule,
    url: &str,
) -> RenderError {
    let other = &config.rules[hit];
    RenderError::Cloudflared {
        path: path.to_path_buf(),
        line: other.line,
        message: format!(
            "ingress rule #{} (hostname {:?}, path {:?}) catches {url} before the service's rule #{} for {}, so that rule is never used for it",
            hit + 1,
            other.hostname,
            other.path,
            own + 1,
            rule.path
        ),
        hint: Some(format!(
            "move the service's rules (line {}) above that rule, or delete them and merge again \
             (entraform then puts them where cloudflared reaches them); cloudflared uses the first \
             rule that matches; nothing was written",
            config.rules[own].line.unwrap_or(0)
        )),
    }
}

/// `hostname axe.axelabs.ai, path ^/x$ → http://h:1` (or `all paths`, `every host`).
fn describe_rule(hostname: &str, path: Option<&regex::Regex>, service: &str) -> String {
    let host = if hostname.is_empty() || hostname == "*" {
        "every host".to_owned()
    } else {
        format!("hostname {hostname}")
    };
    let path = path.map_or("all paths".to_owned(), |re| format!("path {}", re.as_str()));
    format!("{host}, {path} → {service}")
}

/// Whether an existing rule could match a URL one of `new` routes. `false` only when that is
/// certain: another hostname, or an anchored path whose literal start rules the new paths out
/// (`^/frame/mcp…` next to `^/blueprint/mcp…`). Anything else counts as an overlap, so the new
/// rules go above it.
fn may_overlap(existing: &cloudflared::Rule, new: &[&super::IngressRule]) -> bool {
    new.iter().any(|w| {
        if !cloudflared::host_matches(&existing.hostname, &w.hostname) {
            return false;
        }
        let Some(re) = &existing.path else {
            return true;
        };
        let theirs = cloudflared::anchored_literal_prefix(re.as_str());
        let ours = cloudflared::anchored_literal_prefix(&w.path);
        match (theirs, ours) {
            (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
            _ => true,
        }
    })
}

/// URLs to compare the routing before and after a merge with: every host the rules name (a
/// wildcard filled in, plus one no rule names) × the paths their regexes start with, with a few
/// endings, and the service's own probe paths.
fn sample_urls(rules: &[cloudflared::Rule], wanted: &[super::IngressRule]) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["unlisted.example.com".into()];
    let mut prefixes: Vec<String> = vec![String::new()];
    let mut add_host = |h: &str| {
        let h = if h.is_empty() || h == "*" {
            return;
        } else if let Some(rest) = h.strip_prefix('*') {
            format!("sample{rest}")
        } else {
            h.to_owned()
        };
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for r in rules {
        add_host(&r.hostname);
        if let Some(prefix) = r
            .path
            .as_ref()
            .and_then(|re| cloudflared::anchored_literal_prefix(re.as_str()))
        {
            prefixes.push(prefix);
        }
    }
    for w in wanted {
        add_host(&w.hostname);
        prefixes.extend(cloudflared::anchored_literal_prefix(&w.path));
        if let Ok((_, path)) = cloudflared::split_url(&w.probe_url) {
            prefixes.push(path);
        }
    }
    let mut urls = Vec::new();
    for host in &hosts {
        for prefix in &prefixes {
            for ending in ["", "/", "/x", "x", "/mcp", "/health"] {
                let path = format!("{prefix}{ending}");
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                urls.push(format!("https://{host}{path}"));
            }
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

/// The merged config must validate and send each rule's probe URL to that rule (an earlier rule
/// that catches the path would make it dead: refused rather than written), and every other URL
/// to the same rule as before the merge (checked on [`sample_urls`]).
fn check_routing(
    text: &str,
    path: &Path,
    wanted: &[super::IngressRule],
    old_rules: &[cloudflared::Rule],
) -> Result<(), RenderError> {
    let self_check = |message: String| RenderError::SelfCheck {
        path: path.to_path_buf(),
        message,
    };
    let config =
        Config::parse(text, &path.display().to_string()).map_err(|e| self_check(e.message))?;
    let rules = config.validate().map_err(|e| self_check(e.message))?;
    let is_wanted = |r: &cloudflared::Rule| {
        wanted.iter().any(|w| {
            r.hostname == w.hostname
                && r.path.as_ref().map(|re| re.as_str()) == Some(w.path.as_str())
                && r.service == w.service
        })
    };
    for rule in wanted {
        let Some(own) = config.rules.iter().position(|r| {
            r.hostname == rule.hostname && r.path == rule.path && r.service == rule.service
        }) else {
            return Err(self_check(format!(
                "rule {} is missing after the merge",
                rule.path
            )));
        };
        let hit =
            cloudflared::match_rule(&rules, &rule.probe_url).map_err(|e| self_check(e.message))?;
        if hit != own {
            // Not reached for a merge planned above; a bug if it is.
            return Err(self_check(format!(
                "{} goes to ingress rule #{} instead of the service's rule #{}",
                rule.probe_url,
                hit + 1,
                own + 1
            )));
        }
    }
    // Every other URL goes where it went before; the service's own URLs go to its rules.
    let wanted_rules: Vec<cloudflared::Rule> = wanted
        .iter()
        .filter_map(|w| {
            Some(cloudflared::Rule {
                hostname: w.hostname.clone(),
                path: Some(regex::Regex::new(&w.path).ok()?),
                service: w.service.clone(),
                line: None,
            })
        })
        .collect();
    let identity = |r: &cloudflared::Rule| {
        (
            r.hostname.clone(),
            r.path.as_ref().map(|re| re.as_str().to_owned()),
            r.service.clone(),
        )
    };
    for url in sample_urls(old_rules, wanted) {
        let Ok((host, url_path)) = cloudflared::split_url(&url) else {
            continue;
        };
        let (Ok(before), Ok(after)) = (
            cloudflared::match_rule(old_rules, &url),
            cloudflared::match_rule(&rules, &url),
        ) else {
            continue;
        };
        let ours = wanted_rules
            .iter()
            .any(|w| cloudflared::rule_matches(w, &host, &url_path));
        let ok = if ours {
            is_wanted(&rules[after])
        } else {
            identity(&old_rules[before]) == identity(&rules[after])
        };
        if !ok {
            return Err(self_check(format!(
                "{url} went to ingress rule #{} before the merge and would go to #{} after it",
                before + 1,
                after + 1
            )));
        }
    }
    Ok(())
}
