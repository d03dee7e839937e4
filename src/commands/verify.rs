//! `entraform verify MANIFEST [--url URL]`: the checklist of one deployed service.
//!
//! The report is assembled from independent halves, each a `Vec<Check>`: the items to check by
//! hand (always), the HTTP probes (with `--url`), and the Entra half (#11–#13, consent:
//! `verify::entra`).

use std::path::Path;

use url::Url;

use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::session::{self, Session, SessionError};
use crate::settings::Settings;
use crate::verify::entra::{self, Unavailable};
use crate::verify::{self, VerifyReport, probes};

pub async fn run(
    args: VerifyArgs,
    settings: &Settings,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    // Usage errors first: nothing is read before the flags make sense.
    let base = args.url.as_deref().map(parse_base).transpose()?;
    let desired = crate::manifest::load_service(&args.manifest, settings.defaults.as_deref())?;
    // The customer's tenant, and only that tenant: a token for another tenant ends verify
    // (exit 1) before anything is probed or read. A token that cannot be had at all leaves the
    // Entra half "unavailable", as before, so the HTTP probes still run.
    let session = match Session::for_desired(settings, &desired) {
        Ok(s) => match s.connect().await {
            Ok(()) => Ok(s),
            Err(e @ SessionError::Graph(crate::graph::GraphError::Tenant(_))) => {
                return Err(e.into());
            }
            Err(e) => Err(Error::from(e)),
        },
        Err(e @ SessionError::Usage { .. }) => return Err(e.into()),
        Err(e) => Err(Error::from(e)),
    };

    let mut checks = verify::manual_checks(&desired);
    // #10a: what the tunnel config on this machine routes (skipped when it is elsewhere).
    let routing = verify::tunnel::config_path(&desired, &session::manifest_dir(&args.manifest))
        .ok_or_else(|| "no home directory to expand `~/` with".to_string())
        .and_then(|path| {
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .and_then(|text| verify::tunnel::routing(&desired, &text));
    checks.push(verify::tunnel::routing_check(&desired, &routing));
    match &base {
        Some(base) => {
            let client = probe_client(settings.ca_cert.as_deref())?;
            printer.status(&format!(
                "probing {} (#2–#5)…",
                base.origin().ascii_serialization()
            ));
            checks.extend(
                probes::probe_http_routed(
                    base,
                    &desired,
                    &client,
                    probes::PROBE_TIMEOUT,
                    routing.as_ref().ok(),
                )
                .await,
            );
        }
        None => checks.extend(verify::unprobed_checks(&desired)),
    }
    // The Entra half (#11 app manifest, #12 SP, #13 vault secret + token, consent);
    // `VerifyReport::new` puts everything in checklist order.
    checks.extend(entra_half(&args.manifest, &desired, session, printer).await);

    let report = VerifyReport::new(&desired.service, checks);
    if printer.is_json() {
        printer.json(&report);
    } else {
        printer.out(&report.render_text());
    }
    Ok(report.exit_status())
}

async fn entra_half(
    manifest: &Path,
    desired: &crate::desired::Desired,
    session: Result<Session, Error>,
    printer: &Printer,
) -> Vec<verify::Check> {
    let unavailable = |e: Error| Unavailable {
        message: e.to_string(),
        fix: e.hint().unwrap_or_else(|| {
            "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or `az login`)"
                .to_string()
        }),
    };
    let vault = session::open_vault(desired, &session::manifest_dir(manifest))
        .map_err(|e| unavailable(e.into()));
    let session = session.map_err(unavailable);
    printer.status(&format!(
        "reading {} in tenant {} and the vault (#11–#13, consent)…",
        desired.unique_name, desired.tenant_id
    ));
    let graph = session
        .as_ref()
        .map(|s| (&s.client, &s.auth))
        .map_err(Clone::clone);
    entra::entra_checks(desired, graph, vault).await
}

/// `--url` is the public origin (`https://axe.axelabs.ai`); the probes add the service's paths.
pub(crate) fn parse_base(raw: &str) -> Result<Url, Error> {
    let example = "e.g. --url https://axe.axelabs.ai";
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::usage(
            format!("--url `{raw}` is not a URL: {e}"),
            Some(format!(
                "give the service's public origin with its scheme, {example}"
            )),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::usage(
            format!("--url `{raw}` is not an http(s) URL with a host"),
            Some(format!("give the service's public origin, {example}")),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::usage(
            format!(
                "--url `{}` carries credentials",
                url.host_str().unwrap_or_default()
            ),
            Some(format!("the probes need no credentials; {example}")),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(Error::usage(
            format!("--url `{raw}` has a path; it takes the origin only"),
            Some(format!(
                "{example}: entraform adds /<service>/health, /<service>/mcp and the metadata paths"
            )),
        ));
    }
    Ok(url)
}

fn probe_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, Error> {
    let roots = match ca_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::other(
                    format!("--ca-cert {}: not a PEM certificate: {e}", path.display()),
                    Some(
                        "pass the PEM file of the root certificate (`-----BEGIN CERTIFICATE-----`)"
                            .to_string(),
                    ),
                )
            })?
        }
        None => Vec::new(),
    };
    probes::probe_client(roots).map_err(|e| {
        Error::other(
            format!("cannot build the HTTP client: {e}"),
            Some("check --ca-cert".to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_base;

    #[test]
    fn url_must_be_an_origin() {
        assert_eq!(
            parse_base("https://axe.axelabs.ai").unwrap().as_str(),
            "https://axe.axelabs.ai/"
        );
        assert!(parse_base("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "axe.axelabs.ai",
            "ftp://axe.axelabs.ai",
            "https://axe.axelabs.ai/blueprint/mcp",
            "https://axe.axelabs.ai/?x=1",
            "https://user:pw@axe.axelabs.ai",
        ] {
            let err = parse_base(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(
                err.hint().unwrap().contains("https://axe.axelabs.ai"),
                "{bad}"
            );
        }
    }
}
