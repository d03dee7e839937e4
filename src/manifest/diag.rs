//! Located diagnostics: every manifest error names file:line:column, the field path, what was
//! found and what is expected, and shows the offending line with a caret.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a node of a YAML document: `customers.axe.tenant_id`, `overrides.redirect_uris[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// `FieldPath::key("service")`.
    pub fn key(key: impl Into<String>) -> Self {
        Self(vec![Seg::Key(key.into())])
    }

    /// This path with one more key.
    pub fn k(&self, key: impl Into<String>) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.into()));
        Self(segs)
    }

    /// This path with one more index.
    pub fn i(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            None
        } else {
            Some(Self(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    fn route(&self) -> yamlpath::Route<'_> {
        yamlpath::Route::from(
            self.0
                .iter()
                .map(|s| match s {
                    Seg::Key(k) => yamlpath::Component::Key(k.as_str().into()),
                    Seg::Index(i) => yamlpath::Component::Index(*i),
                })
                .collect::<Vec<_>>(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A YAML file's text, kept to locate nodes after parsing.
pub struct SourceFile {
    /// The path as the user gave it (so messages show `manifests/blueprint.yaml`).
    pub path: PathBuf,
    pub text: String,
    doc: Option<yamlpath::Document>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Where a node is: 1-based line and column (in characters), and how many characters to mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        // yamlpath parses with tree-sitter; a document it cannot parse still gets messages,
        // only without a line.
        let doc = yamlpath::Document::new(text.clone()).ok();
        Self {
            path: path.into(),
            text,
            doc,
        }
    }

    /// The node at `field`, or its nearest existing ancestor.
    pub fn locate(&self, field: &FieldPath) -> Option<Span> {
        let doc = self.doc.as_ref()?;
        let mut current = Some(field.clone());
        while let Some(path) = current {
            if path.0.is_empty() {
                return None;
            }
            let route = path.route();
            if let Ok(Some(feature)) = doc.query_exact(&route) {
                return Some(self.span_of(feature.location.byte_span));
            }
            if matches!(path.0.last(), Some(Seg::Key(_)))
                && let Ok(feature) = doc.query_key_only(&route)
            {
                return Some(self.span_of(feature.location.byte_span));
            }
            current = path.parent();
        }
        None
    }

    /// Span of a byte range, clipped to its first line.
    fn span_of(&self, (start, end): (usize, usize)) -> Span {
        let start = start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let end = end.clamp(start, line_end);
        let len = self.text[start..end].chars().count().max(1);
        Span { line, column, len }
    }

    /// Span at a 1-based line/column (from serde_yaml), covering the token that starts there.
    pub fn span_at(&self, line: usize, column: usize) -> Span {
        let len = self
            .line_text(line)
            .map(|text| {
                text.chars()
                    .skip(column.saturating_sub(1))
                    .take_while(|c| !c.is_whitespace() && !matches!(c, ':' | ',' | ']' | '}' | '#'))
                    .count()
            })
            .unwrap_or(1)
            .max(1);
        Span { line, column, len }
    }

    /// The second `key:` at the indentation of the first one found from line `from` on.
    pub fn second_key(&self, key: &str, from: usize) -> Option<Span> {
        let mut indent = None;
        for (n, text) in self.text.lines().enumerate().skip(from.saturating_sub(1)) {
            let trimmed = text.trim_start();
            let this_indent = text.len() - trimmed.len();
            let is_key = trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'));
            if !is_key {
                continue;
            }
            match indent {
                None => indent = Some(this_indent),
                Some(i) if i == this_indent => {
                    return Some(Span {
                        line: n + 1,
                        column: text[..this_indent].chars().count() + 1,
                        len: key.chars().count(),
                    });
                }
                Some(_) => {}
            }
        }
        None
    }

    /// The text of a 1-based line.
    fn line_text(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }

    /// A diagnostic about `field`, located in this file.
    pub fn diagnostic(
        &self,
        field: &FieldPath,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) -> Diagnostic {
        let span = self.locate(field);
        self.diagnostic_at(span, field.to_string(), message, hint)
    }

    /// A diagnostic at a known span (or the whole file).
    pub fn diagnostic_at(
        &self,
        span: Option<Span>,
        field: String,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) -> Diagnostic {
        let snippet = span.and_then(|s| {
            self.line_text(s.line).map(|text| Snippet {
                text: text.trim_end().to_string(),
                column: s.column,
                len: s.len,
            })
        });
        Diagnostic {
            file: self.path.clone(),
            line: span.map(|s| s.line),
            column: span.map(|s| s.column),
            field,
            message: message.into(),
            hint: hint.into(),
            snippet,
        }
    }
}

/// The offending source line and where to put the caret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub text: String,
    /// 1-based column in characters.
    pub column: usize,
    pub len: usize,
}

/// One located problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path (`customers.axe.tenant_id`); empty for the document itself.
    pub field: String,
    /// What was found and what is expected.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    #[serde(skip)]
    pub snippet: Option<Snippet>,
}

impl Diagnostic {
    /// `file:line:column` (or just `file`).
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", display_path(&self.file)),
            (Some(l), None) => format!("{}:{l}", display_path(&self.file)),
            _ => display_path(&self.file),
        }
    }

    /// The source line with a caret under the node, indented.
    fn write_snippet(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(snippet), Some(line)) = (&self.snippet, self.line) {
            let gutter = line.to_string();
            let pad = " ".repeat(gutter.len());
            write!(
                f,
                "\n{pad} |\n{gutter} | {}\n{pad} | {}{}",
                snippet.text,
                " ".repeat(snippet.column.saturating_sub(1)),
                "^".repeat(snippet.len.max(1))
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location())?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        self.write_snippet(f)
    }
}

/// A path for messages: forward slashes, as given.
pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}
