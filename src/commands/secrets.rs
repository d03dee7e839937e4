//! `entraform secrets MANIFEST` / `secrets --all DIR`: every client secret of each service's app
//! with keyId, hint, dates, days left and whether the vault holds it (by hint: the vault's value
//! is read, its 3-character hint kept, the value dropped at once).
//!
//! Graph cost: one `$batch` of app look-ups for all services; the vault reads run meanwhile.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use super::targets::{ErrorInfo, targets};
use crate::cli::SecretsArgs;
use crate::desired::Desired;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::graph::wire::Application;
use crate::plan::VaultView;
use crate::printer::Printer;
use crate::rotation::{self, CredentialInfo};
use crate::session;
use crate::settings::Settings;

/// Where a service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The vault holds a valid secret that outlives the warning window.
    Ok,
    /// The vault's secret expires within `--warn-days`.
    Expiring,
    /// No valid secret in the vault (or no app).
    NoValidSecret,
    /// The service could not be checked.
    Error,
}

/// The vault side of one service (never a value).
#[derive(Debug, Clone, Serialize)]
pub struct VaultInfo {
    pub backend: String,
    pub path: String,
    #[serde(flatten)]
    pub view: VaultView,
}

/// One service's secrets.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSecrets {
    pub service: String,
    pub customer: String,
    pub app_id: Option<String>,
    /// The manifest's `secret.held_by` (`people`: old secrets stay until `rotate --prune-old`).
    pub held_by: crate::manifest::model::HeldBy,
    pub health: Health,
    /// What `health` means here, in words.
    pub summary: String,
    pub vault: Option<VaultInfo>,
    pub credentials: Vec<CredentialInfo>,
    pub error: Option<ErrorInfo>,
}

pub async fn run(
    args: SecretsArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let (desired, base) = targets(
        args.manifest.as_deref(),
        args.all.as_deref(),
        settings,
        printer,
    )?;
    // One session per customer tenant, connected in parallel (token + `tid` check) before any
    // vault or Graph read; a tenant that cannot be reached fails only its own services.
    let wanted = session::tenants_of(&desired);
    let tenants = if args.all.is_none() {
        session::Tenants::connect_all_or_fail(settings, wanted).await?
    } else {
        session::Tenants::connect(settings, wanted).await?
    };
    // The vault reads are local: run them while the one Graph round trip is in flight (only
    // for services whose tenant is reachable).
    let vault_reads = async {
        let mut set = tokio::task::JoinSet::new();
        for (i, d) in desired.iter().enumerate() {
            if tenants.get(&d.tenant_id).is_err() {
                continue;
            }
            let d = d.clone();
            let base = base.clone();
            set.spawn(async move { (i, read_vault(&d, &base).await) });
        }
        let mut out: Vec<Option<Result<VaultInfo, Error>>> =
            (0..desired.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined {
                out[i] = Some(r);
            }
        }
        out
    };
    let (apps, views) = tokio::join!(
        session::find_apps_by_tenant(&tenants, &desired),
        vault_reads
    );
    let now = OffsetDateTime::now_utc();
    let services: Vec<ServiceSecrets> = desired
        .iter()
        .zip(apps)
        .zip(views)
        .map(|((d, app), view)| {
            let app = app.map(|(_, found)| found);
            let view = view.unwrap_or_else(|| match &app {
                Err(_) => Err(Error::other(
                    "not read: the tenant is unreachable",
                    None::<String>,
                )),
                Ok(_) => Err(Error::other(
                    "the vault read did not finish",
                    None::<String>,
                )),
            });
            assess(d, app.map_err(Error::from), view, args.warn_days, now)
        })
        .collect();

    let failed = services.iter().any(|s| s.health == Health::Error);
    let findings = services
        .iter()
        .any(|s| matches!(s.health, Health::Expiring | Health::NoValidSecret));
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "ok": !failed,
            "warn_days": args.warn_days,
            "now": now.replace_nanosecond(0).ok().and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "services": services,
        }));
    } else {
        printer.out(&render_text(&services, args.warn_days));
    }
    for s in services.iter().filter(|s| s.health == Health::Error) {
        if let Some(e) = &s.error {
            printer.warn(&format!("{}: {}", s.service, e.message));
            if let Some(h) = &e.hint {
                printer.status(&format!("hint: {h}"));
            }
        }
    }
    Ok(if failed {
        ExitStatus::Failed
    } else if findings {
        ExitStatus::Differences
    } else {
        ExitStatus::Success
    })
}

async fn read_vault(d: &Desired, base: &Path) -> Result<VaultInfo, Error> {
    let vault = session::open_vault(d, base)?;
    let backend = vault.describe();
    let view = session::vault_view(Arc::clone(&vault), &d.secret.vault_path).await?;
    Ok(VaultInfo {
        backend,
        path: d.secret.vault_path.clone(),
        view,
    })
}

fn assess(
    d: &Desired,
    app: Result<(Option<Application>, Option<crate::observed::FoundBy>), Error>,
    vault: Result<VaultInfo, Error>,
    warn_days: u32,
    now: OffsetDateTime,
) -> ServiceSecrets {
    let mut out = ServiceSecrets {
        service: d.service.clone(),
        customer: d.customer.clone(),
        app_id: None,
        held_by: d.secret.held_by,
        health: Health::Error,
        summary: String::new(),
        vault: None,
        credentials: Vec::new(),
        error: None,
    };
    let app = match app {
        Ok((app, _)) => app,
        Err(e) => {
            out.summary = "the app look-up failed".into();
            out.error = Some(ErrorInfo::from(&e));
            return out;
        }
    };
    let vault = match vault {
        Ok(v) => v,
        Err(e) => {
            out.summary = "the vault read failed".into();
            out.error = Some(ErrorInfo::from(&e));
            return out;
        }
    };
    let Some(app) = app else {
        out.health = Health::NoValidSecret;
        out.summary = format!(
            "no application (uniqueName {}, App ID URI {}); create it with `entraform apply`",
            d.unique_name, d.app.identifier_uri
        );
        out.vault = Some(vault);
        return out;
    };
    out.app_id = app.app_id.clone();
    let creds = app.password_credentials.clone().unwrap_or_default();
    let marker = d.secret.display_name.as_str();
    out.credentials = rotation::describe(&creds, marker, &vault.view, now);
    let current = rotation::current(&creds, marker, &vault.view, now);
    let assumed = matches!(vault.view, VaultView::Unreadable);
    (out.health, out.summary) = match current {
        None => (
            Health::NoValidSecret,
            match &vault.view {
                VaultView::Empty => format!("the vault holds no secret at {}", vault.path),
                VaultView::Holds { hint } => format!(
                    "the vault's secret (hint {hint}) matches no valid credential of the app; run `entraform rotate`"
                ),
                VaultView::Unreadable => {
                    "the vault cannot be read back and no valid entraform credential exists".into()
                }
                VaultView::Unknown => "the vault's read failed".into(),
            },
        ),
        Some(c) => {
            let left = rotation::days_left(c, now);
            let key = c.key_id.as_deref().unwrap_or("?");
            let which = if assumed {
                format!("keyId {key} (assumed: the vault cannot be read back)")
            } else {
                format!("the vault's secret (keyId {key})")
            };
            match left {
                Some(n) if n < i64::from(warn_days) => (
                    Health::Expiring,
                    format!(
                        "{which} expires in {n} day(s), within {warn_days}; run `entraform rotate`"
                    ),
                ),
                Some(n) => (Health::Ok, format!("{which} is valid for {n} more day(s)")),
                None => (Health::Ok, format!("{which} does not expire")),
            }
        }
    };
    if let Some(c) = current
        && !assumed
        && d.secret.held_by == crate::manifest::model::HeldBy::People
    {
        let older = creds
            .iter()
            .filter(|o| {
                o.key_id != c.key_id && rotation::is_ours(o, marker) && rotation::is_valid(o, now)
            })
            .count();
        if older > 0 {
            out.summary.push_str(&format!(
                "; {older} other secret(s) of this tool still valid, which people may still use \
                 in a connector: `entraform rotate {} --prune-old` removes them once everyone \
                 has the vault's",
                d.source.display()
            ));
        }
    }
    out.vault = Some(vault);
    out
}

fn render_text(services: &[ServiceSecrets], warn_days: u32) -> String {
    let headers = [
        "SERVICE",
        "KEY ID",
        "HINT",
        "DISPLAY NAME",
        "CREATED",
        "EXPIRES",
        "DAYS LEFT",
        "IN VAULT",
        "ENTRAFORM",
    ];
    let date = |s: &Option<String>| {
        s.as_deref()
            .map(|s| s.get(..10).unwrap_or(s).to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = Vec::new();
    for s in services {
        if s.credentials.is_empty() {
            rows.push(vec![
                s.service.clone(),
                "-".into(),
                "-".into(),
                "(no credentials)".into(),
            ]);
        }
        for c in &s.credentials {
            rows.push(vec![
                s.service.clone(),
                c.key_id.clone(),
                c.hint.clone(),
                c.display_name.clone(),
                date(&c.created),
                date(&c.expires),
                match c.days_left {
                    Some(n) if n < 0 => format!("expired {}d ago", -n),
                    Some(_) if !c.valid && c.days_left.is_some_and(|n| n == 0) => {
                        "expired today".into()
                    }
                    Some(n) => n.to_string(),
                    None => "never".into(),
                },
                match c.in_vault {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "unknown".into(),
                },
                if c.by_entraform { "yes" } else { "no" }.into(),
            ]);
        }
    }
    let mut out = crate::printer::table(&headers, &rows);
    out.push('\n');
    for s in services {
        let label = match s.health {
            Health::Ok => "ok",
            Health::Expiring => "EXPIRING",
            Health::NoValidSecret => "NO VALID SECRET",
            Health::Error => "ERROR",
        };
        let detail = match &s.error {
            Some(e) => format!("{}: {}", s.summary, e.message),
            None => s.summary.clone(),
        };
        out.push_str(&format!(
            "{} ({}): {label}: {detail}\n",
            s.service, s.customer
        ));
    }
    let bad = services.iter().filter(|s| s.health != Health::Ok).count();
    if bad > 0 {
        out.push_str(&format!(
            "{bad} of {} service(s) need attention (warning window: {warn_days} days).\n",
            services.len()
        ));
    }
    out
}
