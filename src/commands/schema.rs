//! `entraform schema [--kind defaults|service]`: the JSON Schema of the manifest files, for
//! editors (e.g. a `# yaml-language-server: $schema=…` comment) and CI checks.

use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::manifest::model::{DefaultsManifest, ServiceManifest};
use crate::printer::Printer;

/// The schema of one file kind.
pub fn schema(kind: SchemaKind) -> serde_json::Value {
    let schema = match kind {
        SchemaKind::Defaults => schemars::schema_for!(DefaultsManifest),
        SchemaKind::Service => schemars::schema_for!(ServiceManifest),
    };
    schema.to_value()
}

pub fn run(args: SchemaArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let doc = match args.kind {
        Some(kind) => schema(kind),
        // Both: one document with a standalone schema per file kind.
        None => serde_json::json!({
            "defaults": schema(SchemaKind::Defaults),
            "service": schema(SchemaKind::Service),
        }),
    };
    printer.json(&doc);
    Ok(ExitStatus::Success)
}
