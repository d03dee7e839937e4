//! Text edits located with yamlpath: the planner that locates mappings and sequences with `yamlpath`
//! and inserts new entries as lines at the right indentation.

use std::path::Path;

use serde_yaml::{Mapping, Value};
use yamlpath::{Component, Document, Feature, FeatureKind, Route};

use super::*;
use crate::render::RenderError;
use crate::render::yaml::{double_quoted, scalar};

/// A YAML value to insert, with each scalar already rendered.
#[derive(Debug, Clone)]
pub(super) enum Node {
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
    pub(super) fn dq(raw: &str) -> Node {
        Node::Scalar {
            raw: raw.to_owned(),
            text: double_quoted(raw),
        }
    }

    pub(super) fn auto(raw: &str) -> Node {
        Node::Scalar {
            raw: raw.to_owned(),
            text: scalar(raw),
        }
    }

    pub(super) fn value(&self) -> Value {
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
    pub(super) fn inline(&self) -> Option<String> {
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
    pub(super) fn flow(&self) -> String {
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
pub(super) fn emit_entry(out: &mut String, indent: usize, step: usize, key: &str, node: &Node) {
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
pub(super) fn emit_children(out: &mut String, indent: usize, step: usize, node: &Node) {
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
pub(super) fn emit_item(out: &mut String, indent: usize, step: usize, node: &Node) {
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
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
    /// Indentation of the inserted lines. Inserts at the same offset are stacked deepest
    /// first: children of an empty key, then an entry of the mapping that ends on that line,
    /// then one of its parent, and so on. A list item ranks deeper than a key at the same
    /// indentation (`secrets:` items written without indenting the dash).
    pub(super) depth: (usize, bool),
}

/// Plans edits against one parsed document and tracks the document they should produce.
pub(super) struct Planner<'a> {
    pub(super) doc: &'a Document,
    pub(super) src: &'a str,
    pub(super) path: &'a Path,
    pub(super) step: usize,
    pub(super) edits: Vec<Edit>,
    pub(super) actions: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) conflicts: Vec<Conflict>,
    /// The original document with the planned changes applied (the self-check's reference).
    pub(super) expected: Value,
    /// The file had no document (empty, or only comments): new top-level keys go at the end.
    pub(super) root_empty: bool,
    /// An insert goes at the end of a file that does not end with a newline.
    pub(super) missing_final_newline: bool,
}

/// A yamlpath route; numeric parts are list indices (keys here are names that start with a
/// letter: services, customers, fields).
pub(super) fn route(parts: &[&str]) -> Route<'static> {
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

pub(super) fn dotted(parts: &[&str]) -> String {
    parts.join(".")
}

/// Indentation step of a file: the smallest indentation of a content line (2 when flat).
pub(super) fn detect_step(src: &str) -> usize {
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
    pub(super) fn new(doc: &'a Document, src: &'a str, path: &'a Path, expected: Value) -> Self {
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

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    pub(super) fn shape(&self, offset: Option<usize>, message: impl Into<String>) -> RenderError {
        RenderError::MergeShape {
            path: self.path.to_path_buf(),
            line: offset.map(|o| self.line_of(o)),
            message: message.into(),
        }
    }

    pub(super) fn exact(&self, parts: &[&str]) -> Result<Option<Feature<'a>>, RenderError> {
        let found = self
            .doc
            .query_exact(&route(parts))
            .map_err(|e| self.shape(None, format!("cannot locate {}: {e}", dotted(parts))))?;
        found.map(|f| self.plain(f, &dotted(parts))).transpose()
    }

    /// Refuse a node with an anchor, alias or tag (`&name`, `*name`, `!tag`): yamlpath cannot
    /// tell its kind (it panics: `unexpected feature kind: anchor`, found by fuzzing), and an
    /// edit through an alias would change every place that shares it.
    pub(super) fn plain(&self, f: Feature<'a>, what: &str) -> Result<Feature<'a>, RenderError> {
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

    pub(super) fn key_offset(&self, parts: &[&str]) -> Option<usize> {
        self.doc
            .query_key_only(&route(parts))
            .ok()
            .map(|f| f.location.byte_span.0)
    }

    /// The offset where a line after the last content line of `[start, end)` begins (comment
    /// and blank lines trailing a mapping stay below the insertion), and whether the inserted
    /// text must start with a newline (no newline at end of file).
    pub(super) fn after_content(&self, start: usize, end: usize) -> (usize, bool) {
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

    pub(super) fn insert(&mut self, at: usize, leading_newline: bool, text: String) {
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
    pub(super) fn add_entry(
        &mut self,
        parent: &[&str],
        key: &str,
        node: &Node,
    ) -> Result<(), RenderError> {
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
    pub(super) fn fill_empty_value(&mut self, at: &[&str], node: &Node) -> Result<(), RenderError> {
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
    pub(super) fn append_item(&mut self, seq: &[&str], item: &Node) -> Result<(), RenderError> {
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
    pub(super) fn replace_value(&mut self, at: &[&str], node: &Node) -> Result<(), RenderError> {
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

    pub(super) fn line_at(&self, parts: &[&str]) -> usize {
        match self.exact(parts) {
            Ok(Some(f)) => f.location.point_span.0.0 + 1,
            _ => self.key_offset(parts).map_or(1, |o| self.line_of(o)),
        }
    }

    pub(super) fn expected_at(&self, parts: &[&str]) -> Option<&Value> {
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

    pub(super) fn expected_at_mut(&mut self, parts: &[&str]) -> Option<&mut Value> {
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

    pub(super) fn is_null_at(&self, parts: &[&str]) -> bool {
        matches!(self.expected_at(parts), Some(Value::Null))
    }

    pub(super) fn set_expected(&mut self, parts: &[&str], value: Value) {
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
    pub(super) fn reconcile_scalar(
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

    pub(super) fn differs(
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
    pub(super) fn finish(
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

pub(super) fn describe_kind(kind: FeatureKind) -> &'static str {
    match kind {
        FeatureKind::BlockMapping => "a block mapping",
        FeatureKind::BlockSequence => "a list",
        FeatureKind::FlowMapping => "a flow mapping (`{ … }`)",
        FeatureKind::FlowSequence => "a flow list (`[ … ]`)",
        FeatureKind::Scalar => "a single value",
    }
}

/// A value as shown in a conflict message (JSON: unambiguous and one line).
pub(super) fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

pub(super) fn parse_both(text: &str, path: &Path) -> Result<(Value, Document), RenderError> {
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
