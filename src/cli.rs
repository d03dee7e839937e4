//! The command line (clap derive). Types only; no behaviour. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Provision Microsoft Entra app registrations for MCP servers from one YAML manifest.
#[derive(Debug, Parser)]
#[command(name = "entraform", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Organisation defaults (default: `defaults.yaml` beside the service manifest).
    #[arg(long, global = true, value_name = "FILE", env = "ENTRAFORM_DEFAULTS")]
    pub defaults: Option<PathBuf>,
    /// Microsoft Graph base URL (a national cloud, or the emulator).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "ENTRAFORM_GRAPH_URL",
        default_value = "https://graph.microsoft.com/v1.0"
    )]
    pub graph_url: String,
    /// Entra login authority host.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com"
    )]
    pub authority_host: String,
    /// Extra root certificate (PEM) to trust, e.g. the emulator's CA.
    #[arg(long, global = true, value_name = "FILE", env = "ENTRAFORM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Result format on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,
    /// Never prompt; assume yes where a prompt would ask to go ahead.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Only errors and warnings on stderr.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (repeat for debug logs).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what converging the nine steps would change (exit 3 when anything would).
    Plan(PlanArgs),
    /// Converge the nine steps, put a new secret in the vault, render the fragments.
    Apply(ApplyArgs),
    /// Render the four deployment fragments of a service.
    Render(RenderArgs),
    /// Scaffold a new service manifest.
    New(NewArgs),
    /// Explain an AADSTS code or a connector error message: cause, who acts, fix, how to verify.
    Explain(ExplainArgs),
    /// Print the JSON Schema of the manifest files.
    Schema(SchemaArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Run the local Microsoft Graph + Entra login emulator.
    Emulator(EmulatorArgs),
    /// Check a deployed service against the checklist: HTTP probes with --url, and the items
    /// only the Docker host can check, as the exact commands to run. Exits 3 if a check fails.
    Verify(VerifyArgs),
    /// Replace a service's client secret: new secret → vault → read back → proven, then prune
    /// older secrets whose successor has outlived the overlap.
    Rotate(RotateArgs),
    /// List each service's client secrets (keyId, hint, created, expires, days left, whether the
    /// vault holds it). Exits 3 when a service has no valid secret in its vault or it expires soon.
    Secrets(SecretsArgs),
    /// Compare the live app with its reference (frame), normalized, field by field. Exits 3 on
    /// any difference.
    Drift(DriftArgs),
    /// Write the app's Graph JSON (no secrets), usable as a `drift --reference` file.
    Export(ExportArgs),
    /// Hand a service's client secret to a person with the vault's `send:` command (declared
    /// in defaults.yaml): the secret is read from the vault and goes on the command's stdin,
    /// never to the terminal. Example: `entraform send manifests/hive.yaml --to jane@axelabs.ai`.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The service manifest (e.g. manifests/hive.yaml) whose secret is handed out.
    pub manifest: PathBuf,
    /// Who gets it: substituted for `{to}` in the vault's `send:` command (e.g. an e-mail).
    #[arg(long, value_name = "PERSON")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The service manifest.
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The service manifest.
    pub manifest: PathBuf,
    /// Run against an in-process emulator seeded with the reference app and a file vault under
    /// `.entraform/sandbox/` (no tenant needed).
    #[arg(long)]
    pub sandbox: bool,
    /// Where to write the fragments (default: out/<customer>/<service>/; with --sandbox,
    /// .entraform/sandbox/out/<customer>/<service>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Templates directory overriding the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The service manifest.
    pub manifest: PathBuf,
    /// Where to write the fragments (default: out/<customer>/<service>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Templates directory overriding the embedded ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Patch this customers.yaml in place (comments and order kept, `.bak` written).
    #[arg(long, value_name = "FILE")]
    pub merge_customers: Option<PathBuf>,
    /// Patch this cloudflared config in place (rules before the catch-all, `.bak` written).
    #[arg(long, value_name = "FILE")]
    pub merge_cloudflared: Option<PathBuf>,
    /// Replace a conflicting existing entry when merging.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The service name ([a-z][a-z0-9-]{1,30}).
    pub service: String,
    /// Customer key from defaults.yaml.
    #[arg(long)]
    pub customer: Option<String>,
    /// Display name (default: "<Service> MCP").
    #[arg(long)]
    pub display_name: Option<String>,
    /// Host port Caddy listens on (default: the next free one after the other manifests).
    #[arg(long)]
    pub proxy_port: Option<u16>,
    /// The reference app this one must match.
    #[arg(long)]
    pub reference: Option<String>,
    /// Directory of manifests.
    #[arg(long, default_value = "manifests")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The service manifest.
    pub manifest: PathBuf,
    /// The public origin to probe (e.g. `https://axe.axelabs.ai`): health, the OAuth metadata,
    /// the 401 challenges (#2–#5).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The service manifest.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub manifest: Option<PathBuf>,
    /// Rotate every service manifest in DIR (one report row per service; exit 1 if any failed).
    #[arg(long, value_name = "DIR")]
    pub all: Option<PathBuf>,
    /// Services whose secret only machines hold (`secret: {held_by: machines}`): prune an
    /// older secret once its successor is at least this many days old, so every consumer had
    /// time to pick the new one up (0: prune right after the new one is proven). Secrets people
    /// hold are never pruned on a schedule: see `--prune-old`.
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub overlap_days: u32,
    /// Mint a new secret only when the one in use expires within DAYS (cron-friendly; pruning
    /// of machine-held secrets already past the overlap still happens).
    #[arg(long, value_name = "DAYS")]
    pub if_expiring_within: Option<u32>,
    /// Also prune secrets entraform did not create (e.g. made with `az ad app credential reset`).
    #[arg(long)]
    pub prune_foreign: bool,
    /// Mint nothing: remove this tool's secrets the vault no longer holds (once everyone who
    /// typed the old secret into a connector has the new one). Never the vault's, never the
    /// last valid one, never one made by someone else.
    #[arg(
        long,
        conflicts_with_all = ["if_expiring_within", "prune_foreign", "overlap_days"]
    )]
    pub prune_old: bool,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The service manifest.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub manifest: Option<PathBuf>,
    /// List every service manifest in DIR.
    #[arg(long, value_name = "DIR")]
    pub all: Option<PathBuf>,
    /// Exit 3 when the secret in the vault expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub warn_days: u32,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The service manifest.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub manifest: Option<PathBuf>,
    /// The reference: a service name (its manifest beside this one), an application (client)
    /// id, or a file from `entraform export` (default: the manifest's `reference:`).
    #[arg(long, value_name = "NAME|APP_ID|FILE")]
    pub reference: Option<String>,
    /// Check every manifest in DIR against its reference; one summary table.
    #[arg(long, value_name = "DIR")]
    pub all: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A service manifest (its app is found like apply finds it) or an application (client) id.
    #[arg(value_name = "MANIFEST|APP_ID")]
    pub target: String,
    /// Write the JSON to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// An AADSTS code (`AADSTS700016`, `700016`) or a message as the user saw it.
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema (default: both, as one document).
    #[arg(long, value_enum)]
    pub kind: Option<SchemaKind>,
}

/// `--output text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputArg {
    /// Human-readable text.
    #[default]
    Text,
    /// One stable JSON document on stdout.
    Json,
}

impl From<OutputArg> for crate::printer::OutputFormat {
    fn from(arg: OutputArg) -> Self {
        match arg {
            OutputArg::Text => Self::Text,
            OutputArg::Json => Self::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaKind {
    Defaults,
    Service,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free port). Loopback only, unless --allow-remote.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Allow --listen on a non-loopback address, and accept that address as the Host of
    /// requests. Anyone who can reach the port can log in as the exported operator: use it only
    /// on a network you trust.
    #[arg(long)]
    pub allow_remote: bool,
    /// Serve HTTPS with a generated CA + leaf certificate (needed by azure_identity and az).
    #[arg(long)]
    pub tls: bool,
    /// Tenant id of an emulated tenant (repeatable: each is its own directory, operators and
    /// login issuer; the first is exported as AZURE_TENANT_ID). Default:
    /// 122fb574-7efa-476a-95b6-bee81bce2cce.
    #[arg(long = "tenant", value_name = "GUID")]
    pub tenants: Vec<String>,
    /// Host one tenant per distinct `customers.<c>.tenant_id` of this defaults.yaml (after any
    /// --tenant), with the customers' verified domains.
    #[arg(long = "tenants-from", value_name = "DEFAULTS_FILE")]
    pub tenants_from: Option<PathBuf>,
    /// A verified domain of every hosted tenant (repeatable).
    #[arg(long = "verified-domain", value_name = "DOMAIN")]
    pub verified_domains: Vec<String>,
    /// Load apps as if made by hand (JSON; repeatable). Format: {"applications": [{...application
    /// JSON..., "servicePrincipal": true, "passwords": [{"displayName": ...}], "grants":
    /// [{"resourceAppId": "<appId>|self", "scope": "..."}]}]}; an optional top-level "tenant":
    /// "GUID" seeds another hosted tenant than the first. Ignored when --state already exists.
    #[arg(long = "seed", value_name = "FILE")]
    pub seeds: Vec<PathBuf>,
    /// Added latency per request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability (0–1) of a 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Probability (0–1) of a 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// New objects and secrets stay invisible to reads and login for this long.
    #[arg(long, default_value_t = 0)]
    pub replication_delay_ms: u64,
    /// Seed of the fault RNG (failures reproduce).
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Persist state to this file across restarts (secrets are kept as digests only; the
    /// operator gets a new secret at each start).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Export the operator that lacks the grant permission (to try the admin-consent fallback).
    #[arg(long)]
    pub limited_operator: bool,
    /// Where to write the CA certificate with --tls (default: a temporary file removed on exit).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca_cert_out: Option<PathBuf>,
}
