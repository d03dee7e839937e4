//! `entraform drift MANIFEST [--reference NAME|APP_ID|FILE]` and `drift --all DIR`: the live
//! app against its reference, normalized, field by field (exit 3 on any difference).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::DriftArgs;
use crate::desired::Desired;
use crate::drift::reference::{self, ReferenceSpec};
use crate::drift::{DriftReport, DriftStatus, Identity, ReferenceInfo, Snapshot, Target, compare};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::session::{Tenants, read_targets_by_tenant, tenants_of};
use crate::settings::Settings;

pub async fn run(
    args: DriftArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    match (&args.all, &args.manifest) {
        (Some(dir), _) => run_all(dir, args.reference.as_deref(), settings, printer).await,
        (None, Some(manifest)) => {
            run_one(manifest, args.reference.as_deref(), settings, printer).await
        }
        (None, None) => Err(Error::usage(
            "drift needs a MANIFEST or --all DIR",
            Some("e.g. `entraform drift manifests/blueprint.yaml`".to_string()),
        )),
    }
}

/// A reference ready to read: what to look up (or the loaded file) and how to name it.
enum Resolved {
    Manifest(Box<Desired>),
    AppId(String),
    File {
        path: PathBuf,
        snapshot: Box<Snapshot>,
        identity: Identity,
    },
}

impl Resolved {
    fn target(&self) -> Option<Target> {
        match self {
            Resolved::Manifest(d) => Some(Target::Manifest(d.clone())),
            Resolved::AppId(id) => Some(Target::AppId(id.clone())),
            Resolved::File { .. } => None,
        }
    }

    fn info(&self, app_id: Option<String>) -> ReferenceInfo {
        match self {
            Resolved::Manifest(d) => ReferenceInfo {
                name: d.service.clone(),
                source: "manifest",
                app_id,
            },
            Resolved::AppId(id) => ReferenceInfo {
                name: id.clone(),
                source: "app_id",
                app_id,
            },
            Resolved::File { path, .. } => ReferenceInfo {
                name: path.display().to_string(),
                source: "file",
                app_id,
            },
        }
    }

    /// The reference side, once read (files need no read).
    fn side(
        &self,
        read: Option<&Result<Option<Snapshot>, Error>>,
    ) -> Result<(Snapshot, Identity), String> {
        let (snapshot, identity) = match self {
            Resolved::File {
                snapshot, identity, ..
            } => return Ok(((**snapshot).clone(), identity.clone())),
            Resolved::Manifest(d) => match read {
                Some(Ok(Some(s))) => (s.clone(), Identity::of_desired(d, Some(&s.application))),
                Some(Err(e)) => return Err(e.to_string()),
                _ => {
                    return Err(format!(
                        "the reference app {} was not found (looked up by {}uniqueName {} and App ID URI {})",
                        d.service,
                        d.app_id
                            .as_deref()
                            .map(|id| format!("app_id {id}, "))
                            .unwrap_or_default(),
                        d.unique_name,
                        d.app.identifier_uri
                    ));
                }
            },
            Resolved::AppId(id) => match read {
                Some(Ok(Some(s))) => (s.clone(), Identity::infer(&s.application)),
                Some(Err(e)) => return Err(e.to_string()),
                _ => return Err(format!("no application with appId {id} in this tenant")),
            },
        };
        Ok((snapshot, identity))
    }
}

const REFERENCE_MISSING_HINT: &str = "check the reference: apply its manifest first, pin its \
     `app_id:`, or pass --reference APP_ID|FILE (a file from `entraform export`)";

fn resolve(spec: ReferenceSpec, defaults: Option<&Path>) -> Result<Resolved, Error> {
    Ok(match spec {
        ReferenceSpec::Manifest(path) => {
            if !path.is_file() {
                return Err(Error::usage(
                    format!("the reference manifest {} does not exist", path.display()),
                    Some(
                        "name a service whose manifest is beside this one, or pass --reference \
                         APP_ID|FILE"
                            .to_string(),
                    ),
                ));
            }
            Resolved::Manifest(Box::new(crate::manifest::load_service(&path, defaults)?))
        }
        ReferenceSpec::AppId(id) => Resolved::AppId(id),
        ReferenceSpec::File(path) => {
            let (snapshot, identity) = reference::load_file(&path)?;
            Resolved::File {
                path,
                snapshot: Box::new(snapshot),
                identity,
            }
        }
    })
}

fn is_self(desired: &Desired, reference: &Resolved) -> bool {
    match reference {
        Resolved::Manifest(r) => r.service == desired.service && r.customer == desired.customer,
        Resolved::AppId(id) => desired
            .app_id
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(id)),
        Resolved::File { .. } => false,
    }
}

async fn run_one(
    manifest: &Path,
    reference_arg: Option<&str>,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let desired = crate::manifest::load_service(manifest, settings.defaults.as_deref())?;
    for w in &desired.warnings {
        printer.warn(w);
    }
    let raw = reference_arg
        .map(str::to_string)
        .or_else(|| desired.reference.clone())
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "{} names no reference and no --reference was given",
                    manifest.display()
                ),
                Some(
                    "add `reference: frame` to the manifest, or pass --reference NAME|APP_ID|FILE"
                        .to_string(),
                ),
            )
        })?;
    let spec = ReferenceSpec::parse(&raw, &reference::manifest_dir(manifest))?;
    let resolved = resolve(spec, settings.defaults.as_deref())?;
    if is_self(&desired, &resolved) {
        return Err(Error::usage(
            format!("{} is its own reference", desired.service),
            Some("drift compares a service with another app: pass --reference".to_string()),
        ));
    }

    // The service in its customer's tenant; a reference manifest in its own customer's tenant
    // (an app id reference is looked up beside the service).
    let mut targets = vec![Target::Manifest(Box::new(desired.clone()))];
    let mut tenant_of = vec![desired.tenant_id.clone()];
    let mut owners = vec![desired.clone()];
    if let Some(t) = resolved.target() {
        targets.push(t);
        tenant_of.push(reference_tenant(&resolved, &desired));
    }
    if let Resolved::Manifest(r) = &resolved {
        owners.push((**r).clone());
    }
    let tenants = Tenants::connect_all_or_fail(settings, tenants_of(&owners)).await?;
    printer.status(&format!(
        "reading {} and its reference {}…",
        desired.service,
        resolved.info(None).name
    ));
    let mut read = read_targets_by_tenant(&tenants, &targets, &tenant_of, true)
        .await
        .into_iter()
        .map(|r| r.map_err(Error::from));
    let this = read.next().transpose()?.flatten();
    let reference_read = read.next();
    let (ref_snapshot, ref_identity) = resolved
        .side(reference_read.as_ref())
        .map_err(|m| Error::other(m, Some(REFERENCE_MISSING_HINT.to_string())))?;
    let info = resolved.info(ref_snapshot.application.app_id.clone());

    let report = match this {
        None => DriftReport::missing(&desired.service, info),
        Some(this) => DriftReport::new(
            &desired.service,
            this.application.app_id.clone(),
            info,
            compare(
                &ref_snapshot,
                &ref_identity,
                &this,
                &Identity::of_desired(&desired, Some(&this.application)),
                OffsetDateTime::now_utc(),
            ),
        ),
    };
    let stats = tenants.stats();
    printer.detail(&format!(
        "Graph: {} request(s), {} sequential round trip(s)",
        stats.http_requests, stats.round_trips
    ));
    if printer.is_json() {
        printer.json(&report);
    } else {
        printer.out(&report.render_text());
    }
    Ok(if report.ok {
        ExitStatus::Success
    } else {
        ExitStatus::Differences
    })
}

/// One line of the `--all` summary.
///
/// JSON shape: `{"service", "reference": string|null, "status":
/// "in_sync"|"drift"|"missing"|"no_reference"|"error", "differences": [field], "error":
/// string|null, "report": DriftReport|null}`.
#[derive(Debug, Serialize)]
struct Entry {
    service: String,
    reference: Option<String>,
    status: &'static str,
    differences: Vec<String>,
    error: Option<String>,
    report: Option<DriftReport>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    services: usize,
    in_sync: usize,
    drift: usize,
    missing: usize,
    no_reference: usize,
    error: usize,
}

async fn run_all(
    dir: &Path,
    reference_arg: Option<&str>,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let defaults = settings.defaults.as_deref();
    let all = crate::manifest::load_all(dir, defaults)?;
    if all.is_empty() {
        return Err(Error::usage(
            format!("{} holds no service manifests", dir.display()),
            Some(
                "point --all at the manifests directory (`entraform new SERVICE` makes one)"
                    .to_string(),
            ),
        ));
    }
    for d in &all {
        for w in &d.warnings {
            printer.warn(&format!("{}: {w}", d.service));
        }
    }
    let override_spec = reference_arg
        .map(|raw| ReferenceSpec::parse(raw, dir))
        .transpose()?;

    // Targets: every manifest, then each distinct reference that is not one of them.
    let mut targets: Vec<Target> = all
        .iter()
        .map(|d| Target::Manifest(Box::new(d.clone())))
        .collect();
    // The tenant each target is read in, and every manifest whose tenant is needed.
    let mut tenant_of: Vec<String> = all.iter().map(|d| d.tenant_id.clone()).collect();
    let mut owners: Vec<Desired> = all.clone();
    let by_path: BTreeMap<PathBuf, usize> = all
        .iter()
        .enumerate()
        .map(|(i, d)| (canonical(&d.source), i))
        .collect();
    // reference key → (resolved, index into targets when read)
    let mut references: BTreeMap<String, Result<(Resolved, Option<usize>), String>> =
        BTreeMap::new();
    let mut reference_of: Vec<Option<String>> = Vec::with_capacity(all.len());
    for d in &all {
        let spec = match (&override_spec, &d.reference) {
            (Some(spec), _) => Some(spec.clone()),
            (None, Some(name)) => Some(
                ReferenceSpec::parse(name, &reference::manifest_dir(&d.source))
                    .unwrap_or_else(|_| ReferenceSpec::Manifest(dir.join(format!("{name}.yaml")))),
            ),
            (None, None) => None,
        };
        let Some(spec) = spec else {
            reference_of.push(None);
            continue;
        };
        // An app id or file reference is read beside each service, in the service's tenant.
        let key = match &spec {
            ReferenceSpec::Manifest(_) => format!("{spec:?}"),
            _ => format!("{}:{spec:?}", d.tenant_id.to_ascii_lowercase()),
        };
        if !references.contains_key(&key) {
            let entry = match &spec {
                ReferenceSpec::Manifest(path) if by_path.contains_key(&canonical(path)) => {
                    let i = by_path[&canonical(path)];
                    Ok((Resolved::Manifest(Box::new(all[i].clone())), Some(i)))
                }
                _ => match resolve(spec.clone(), defaults) {
                    Ok(r) => {
                        let slot = r.target().map(|t| {
                            targets.push(t);
                            tenant_of.push(reference_tenant(&r, d));
                            targets.len() - 1
                        });
                        if let Resolved::Manifest(m) = &r {
                            owners.push((**m).clone());
                        }
                        Ok((r, slot))
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            references.insert(key.clone(), entry);
        }
        reference_of.push(Some(key));
    }

    let wanted = tenants_of(&owners);
    printer.status(&format!(
        "reading {} service(s) and {} reference(s) in {} tenant(s), batched look-ups per tenant…",
        all.len(),
        references.len(),
        wanted.len()
    ));
    let tenants = Tenants::connect(settings, wanted).await?;
    tenants.warn_failures(printer);
    let read: Vec<_> = read_targets_by_tenant(&tenants, &targets, &tenant_of, true)
        .await
        .into_iter()
        .map(|r| r.map_err(Error::from))
        .collect();
    let now = OffsetDateTime::now_utc();

    let entries: Vec<Entry> = all
        .iter()
        .enumerate()
        .map(|(i, d)| entry_for(i, d, reference_of[i].as_ref(), &references, &read, now))
        .collect();

    let mut summary = Summary {
        services: entries.len(),
        ..Default::default()
    };
    for e in &entries {
        match e.status {
            "in_sync" => summary.in_sync += 1,
            "drift" => summary.drift += 1,
            "missing" => summary.missing += 1,
            "no_reference" => summary.no_reference += 1,
            _ => summary.error += 1,
        }
    }
    let stats = tenants.stats();
    printer.detail(&format!(
        "Graph: {} request(s), {} sequential round trip(s)",
        stats.http_requests, stats.round_trips
    ));
    let ok = summary.drift + summary.missing + summary.error == 0;
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": ok,
            "summary": summary,
            "services": entries,
        }));
    } else {
        printer.out(&render_all(&entries, &summary));
    }
    Ok(if summary.error > 0 {
        ExitStatus::Failed
    } else if !ok {
        ExitStatus::Differences
    } else {
        ExitStatus::Success
    })
}

/// One service's line of `drift --all`: compared with its reference, or why it is not.
fn entry_for(
    i: usize,
    d: &Desired,
    key: Option<&String>,
    references: &BTreeMap<String, Result<(Resolved, Option<usize>), String>>,
    read: &[Result<Option<Snapshot>, Error>],
    now: OffsetDateTime,
) -> Entry {
    let mut entry = Entry {
        service: d.service.clone(),
        reference: None,
        status: "no_reference",
        differences: Vec::new(),
        error: None,
        report: None,
    };
    let Some(key) = key else {
        return entry;
    };
    let (resolved, slot) = match &references[key] {
        Ok((r, slot)) => (r, *slot),
        Err(e) => {
            entry.status = "error";
            entry.error = Some(e.clone());
            return entry;
        }
    };
    entry.reference = Some(resolved.info(None).name);
    if is_self(d, resolved) {
        return entry;
    }
    let this = match &read[i] {
        Ok(s) => s,
        Err(e) => {
            entry.status = "error";
            entry.error = Some(e.to_string());
            return entry;
        }
    };
    let (ref_snapshot, ref_identity) = match resolved.side(slot.map(|s| &read[s])) {
        Ok(side) => side,
        Err(e) => {
            entry.status = "error";
            entry.error = Some(e);
            return entry;
        }
    };
    let info = resolved.info(ref_snapshot.application.app_id.clone());
    let report = match this {
        None => DriftReport::missing(&d.service, info),
        Some(this) => DriftReport::new(
            &d.service,
            this.application.app_id.clone(),
            info,
            compare(
                &ref_snapshot,
                &ref_identity,
                this,
                &Identity::of_desired(d, Some(&this.application)),
                now,
            ),
        ),
    };
    entry.status = match (this, report.ok) {
        (None, _) => "missing",
        (_, true) => "in_sync",
        (_, false) => "drift",
    };
    entry.differences = report.differing().map(|r| r.field.clone()).collect();
    entry.report = Some(report);
    entry
}

/// The tenant a reference is read in: a reference manifest's own customer's tenant; an app id
/// beside the service that names it.
fn reference_tenant(reference: &Resolved, service: &Desired) -> String {
    match reference {
        Resolved::Manifest(r) => r.tenant_id.clone(),
        _ => service.tenant_id.clone(),
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

fn render_all(entries: &[Entry], s: &Summary) -> String {
    let label = |e: &Entry| match e.status {
        "in_sync" => "in sync",
        "drift" => "DRIFT",
        "missing" => "MISSING",
        "no_reference" => "no reference",
        _ => "ERROR",
    };
    let cells: Vec<(String, String, &str, String)> = entries
        .iter()
        .map(|e| {
            let detail = match (&e.error, e.differences.is_empty()) {
                (Some(err), _) => err.clone(),
                (None, true) => "-".into(),
                (None, false) => e.differences.join(", "),
            };
            (
                e.service.clone(),
                e.reference.clone().unwrap_or_else(|| "-".into()),
                label(e),
                detail,
            )
        })
        .collect();
    let rows: Vec<[&str; 4]> = cells
        .iter()
        .map(|(a, b, c, d)| [a.as_str(), b.as_str(), *c, d.as_str()])
        .collect();
    let mut out = crate::drift::table(&["SERVICE", "REFERENCE", "STATUS", "DIFFERENCES"], &rows);
    let drifted: Vec<&DriftReport> = entries
        .iter()
        .filter_map(|e| e.report.as_ref())
        .filter(|r| !r.ok)
        .collect();
    if !drifted.is_empty() {
        out.push('\n');
        for r in drifted {
            for row in r.rows.iter().filter(|x| x.status == DriftStatus::Differs) {
                out.push_str(&format!(
                    "{}: {}: {} (reference) vs {} (this app)\n",
                    r.service, row.field, row.reference, row.this_app
                ));
            }
        }
    }
    out.push_str(&format!(
        "\n{} service(s): {} in sync, {} drifted, {} missing, {} without reference, {} failed\n",
        s.services, s.in_sync, s.drift, s.missing, s.no_reference, s.error
    ));
    out
}
