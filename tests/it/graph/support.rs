//! Helpers shared by the Graph client tests: a TLS emulator and a client authenticated as its
//! operator (millisecond backoffs).

use std::sync::Arc;

use entraform::emulator::{EmulatorConfig, RunningEmulator, start};
use entraform::graph::{AuthConfig, GraphClient, OperatorCredential, RetryPolicy};
use entraform::secret::Secret;

pub const DOMAIN: &str = "axelabs.ai";

pub async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    start(config.tls(true).verified_domain(DOMAIN))
        .await
        .expect("emulator starts")
}

pub fn auth(emu: &RunningEmulator) -> AuthConfig {
    AuthConfig::new(emu.authority_host(), emu.graph_url())
        .with_ca_pem(emu.ca_cert_pem().expect("TLS emulator has a CA").as_bytes())
}

pub fn credential(
    emu: &RunningEmulator,
    cfg: &AuthConfig,
    client_id: &str,
    secret: &Secret,
) -> OperatorCredential {
    let tenant = emu.tenant_id();
    let client_id = client_id.to_string();
    let secret = secret.expose().to_string();
    OperatorCredential::from_env_with(cfg, move |k| match k {
        "AZURE_TENANT_ID" => Some(tenant.clone()),
        "AZURE_CLIENT_ID" => Some(client_id.clone()),
        "AZURE_CLIENT_SECRET" => Some(secret.clone()),
        _ => None,
    })
    .expect("client secret credential")
}

pub fn client(emu: &RunningEmulator) -> GraphClient {
    let cfg = auth(emu);
    let cred = credential(emu, &cfg, emu.operator_client_id(), emu.operator_secret());
    GraphClient::with_credential(&cfg, Arc::new(cred))
        .expect("client")
        .with_retry(RetryPolicy::fast())
}
