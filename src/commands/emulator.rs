//! `entraform emulator`: run the Graph + login emulator until interrupted, printing the shell
//! `export` lines (docs/emulator.md) on stdout once it listens.
//!
//! It stays local: a non-loopback `--listen` needs `--allow-remote`, and with `--tls` the CA
//! goes into a private directory (0700, random name) that is removed when it stops, on SIGINT
//! and SIGTERM too.

use std::net::SocketAddr;

use crate::cli::EmulatorArgs;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::printer::Printer;
use entraform_emulator::{self as emulator, EmulatorConfig, EmulatorError, Faults};

fn to_error(e: EmulatorError) -> Error {
    let hint = e.hint();
    Error::other(e.to_string(), hint)
}

fn config(args: &EmulatorArgs) -> Result<EmulatorConfig, Error> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        Error::usage(
            format!("--listen '{}' is not an address", args.listen),
            Some("use HOST:PORT, e.g. 127.0.0.1:0 (port 0 picks a free port)".to_string()),
        )
    })?;
    if !listen.ip().is_loopback() && !args.allow_remote {
        return Err(Error::usage(
            format!(
                "--listen {listen} is not a loopback address: the emulator hands out every secret it issues to anyone who can reach it"
            ),
            Some(format!(
                "use --listen 127.0.0.1:{port} (or [::1]:{port}), or add --allow-remote to serve other machines on a network you trust",
                port = listen.port()
            )),
        ));
    }
    let mut tenants: Vec<String> = Vec::new();
    for t in &args.tenants {
        if uuid::Uuid::parse_str(t).is_err() {
            return Err(Error::usage(
                format!("--tenant '{t}' is not a GUID"),
                Some("pass the tenant id, e.g. 122fb574-7efa-476a-95b6-bee81bce2cce".to_string()),
            ));
        }
        tenants.push(t.clone());
    }
    let mut verified_domains = args.verified_domains.clone();
    if let Some(path) = &args.tenants_from {
        // One tenant per distinct customer tenant of the organisation's defaults file.
        let loaded = crate::manifest::load_defaults(path)?;
        for c in loaded.defaults.customers.values() {
            tenants.push(c.tenant_id.clone());
            for d in &c.verified_domains {
                if !verified_domains.iter().any(|x| x.eq_ignore_ascii_case(d)) {
                    verified_domains.push(d.clone());
                }
            }
        }
    }
    let mut hosted = EmulatorConfig::default();
    if let Some(first) = tenants.first() {
        hosted = hosted.tenant(first.clone());
    }
    for t in tenants.iter().skip(1) {
        hosted = hosted.add_tenant(t.clone());
    }
    let faults = Faults {
        latency_ms: args.latency_ms,
        throttle_rate: args.throttle_rate,
        error_rate: args.error_rate,
        replication_delay_ms: args.replication_delay_ms,
        rng_seed: args.rng_seed,
        ..Faults::default()
    };
    faults.validate().map_err(|e| {
        Error::usage(
            e,
            Some("rates are probabilities between 0 and 1".to_string()),
        )
    })?;
    let mut config = hosted.listen(listen).tls(args.tls).faults(faults);
    config.verified_domains = verified_domains;
    config.state_file = args.state.clone();
    config.export_limited_operator = args.limited_operator;
    config.allow_remote = args.allow_remote;
    for seed in &args.seeds {
        config = config.seed_file(seed).map_err(to_error)?;
    }
    Ok(config)
}

pub async fn run(args: EmulatorArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let config = config(&args)?;
    // Listen for signals before the export lines go out: a script may `kill` right after
    // reading them, and a signal that arrives before the handler would kill us uncleanly.
    let signals = Signals::install();
    let emu = emulator::start(config).await.map_err(to_error)?;

    // The CA goes where asked, or into a private temporary directory (0700, random name) that
    // the emulator removes when it is shut down or dropped, on every way out of this function.
    if emu.ca_cert_pem().is_some() {
        match &args.ca_cert_out {
            Some(p) => emu.write_ca_cert(p).map_err(to_error)?,
            None => {
                emu.write_ca_cert_private().map_err(to_error)?;
            }
        }
    }

    if printer.is_json() {
        // Same values as the export lines, as one document.
        let mut doc = serde_json::Map::new();
        for line in emu.export_lines().lines() {
            if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
                doc.insert(
                    k.to_string(),
                    serde_json::Value::String(v.trim_matches('\'').to_string()),
                );
            }
        }
        printer.json(&doc);
    } else {
        printer.out(&emu.export_lines());
    }
    let hosted = emu.tenant_ids();
    if hosted.len() > 1 {
        printer.status(&format!(
            "hosting {} tenants: {} (exported as AZURE_TENANT_ID), {}; AZURE_CLIENT_ID is the multi-tenant operator app, consented in each",
            hosted.len(),
            hosted[0],
            hosted[1..].join(", ")
        ));
    }
    printer.status(&format!(
        "emulator listening: login {} , Graph {} , controls {} (with Authorization: Bearer $ENTRAFORM_EMULATOR_CONTROL_TOKEN; Ctrl-C to stop)",
        emu.authority_host(),
        emu.graph_url(),
        emu.control_url()
    ));

    signals.wait().await;
    printer.status("emulator stopping");
    emu.shutdown().await;
    Ok(ExitStatus::Success)
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and test harnesses send), registered eagerly.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(i), Ok(t)) => Some((i, t)),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            match self.streams {
                Some((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
