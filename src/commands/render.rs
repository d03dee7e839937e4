//! `entraform render MANIFEST [--out DIR] [--templates DIR] [--merge-customers FILE]
//! [--merge-cloudflared FILE] [--force]`: the four fragments of docs/render.md, and the in-place merges.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::RenderArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::render::{self, PLACEHOLDER_CLIENT_ID, merge};
use crate::settings::Settings;

/// The `--output json` document.
#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    out: &'a PathBuf,
    /// The client id rendered, or null when the placeholder was used.
    client_id: Option<&'a str>,
    files: &'a [render::WrittenFile],
    merged: &'a [merge::MergeReport],
    /// The blue/green layout, or null for a single `mcp` service.
    blue_green: Option<BlueGreenReport>,
    warnings: &'a [String],
}

/// Which colour holds the network alias the proxy forwards to.
#[derive(Serialize)]
struct BlueGreenReport {
    active: String,
    alias: String,
    services: Vec<render::McpService>,
}

pub fn run(args: RenderArgs, settings: &Settings, printer: &Printer) -> Result<ExitStatus, Error> {
    let desired = crate::manifest::load_service(&args.manifest, settings.defaults.as_deref())?;
    // The manifest's pinned app_id is the client id; apply renders again with the live one.
    let client_id = desired.app_id.as_deref();
    let mut warnings: Vec<String> = desired.warnings.clone();
    if client_id.is_none() {
        warnings.push(format!(
            "the client id of {} is not known yet, so customers.entry.yaml says client_id: \"{PLACEHOLDER_CLIENT_ID}\"; \
             run `entraform apply {}` (it renders again with the real id) or pin `app_id: <GUID>` in the manifest",
            desired.service,
            args.manifest.display()
        ));
    }

    let fragments = render::render_all(&desired, client_id, args.templates.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("out")
            .join(&desired.customer)
            .join(&desired.service)
    });
    let written = render::write_fragments(&out, &fragments)?;
    for file in &written.files {
        printer.status(&format!(
            "{} {}",
            if file.changed {
                "wrote    "
            } else {
                "unchanged"
            },
            file.path.display()
        ));
    }

    let blue_green = desired
        .deploy
        .blue_green
        .as_ref()
        .map(|bg| BlueGreenReport {
            active: bg.active.clone(),
            alias: desired.deploy.container_name.clone(),
            services: render::mcp_services(&desired),
        });
    if let Some(bg) = &blue_green {
        for svc in &bg.services {
            let port = svc.ports.as_deref().unwrap_or_default();
            printer.status(&format!(
                "blue/green {} ({}, {port}): {}",
                svc.name,
                svc.container,
                if svc.alias {
                    format!("active, holds the alias {}", bg.alias)
                } else {
                    "passive".to_owned()
                }
            ));
        }
    }

    let mut merged = Vec::new();
    if let Some(file) = &args.merge_customers {
        merged.push(merge::merge_customers(
            file, &desired, client_id, args.force,
        )?);
    }
    if let Some(file) = &args.merge_cloudflared {
        merged.push(merge::merge_cloudflared(file, &desired, args.force)?);
    }
    for report in &merged {
        if report.changed {
            let backup = report
                .backup
                .as_ref()
                .map(|b| format!(" (previous content in {})", b.display()))
                .unwrap_or_default();
            printer.status(&format!("merged    {}{backup}", report.path.display()));
            for action in &report.actions {
                printer.status(&format!("  {action}"));
            }
        } else {
            printer.status(&format!(
                "unchanged {} (already up to date)",
                report.path.display()
            ));
        }
        warnings.extend(
            report
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", report.path.display())),
        );
    }
    for warning in &warnings {
        printer.warn(warning);
    }
    if printer.is_json() {
        printer.json(&Report {
            ok: true,
            out: &out,
            client_id,
            files: &written.files,
            merged: &merged,
            blue_green,
            warnings: &warnings,
        });
    }
    Ok(ExitStatus::Success)
}
