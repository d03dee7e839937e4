//! Service manifests and organisation defaults (docs/manifests.md): strict YAML → [`Desired`].
//!
//! - [`model`]: the serde structs mirroring the YAML (unknown fields rejected, JSON Schema).
//! - [`lower`]: the pure lowering with every derived value.
//! - [`diag`]: located diagnostics (`file:line:column: field: found; expected …` + caret).
//! - [`vault_decl`]: the vault declarations (`vault:`, `vaults.<name>:`).
//!
//! Cross-manifest rules (a proxy or host port used twice, a service defined twice) are checked
//! here: by [`load_all`] across a directory and by [`load_service`] against the manifests beside
//! the one loaded.

pub mod diag;
pub mod lower;
pub mod model;
pub mod vault_decl;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::de::DeserializeOwned;

use crate::desired::Desired;
use diag::{Diagnostic, FieldPath, SourceFile};
use lower::{Origin, Problem};
use model::{DefaultsManifest, PortDefaults, ServiceManifest};

/// The defaults file's name beside the service manifests.
pub const DEFAULTS_FILE: &str = "defaults.yaml";

/// A manifest that cannot be used. Every diagnostic names file:line:column (when known), the
/// field path, what was found and what is expected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A manifest or defaults file could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// No `--defaults` and no `defaults.yaml` beside the manifest.
    #[error(
        "no organisation defaults for {}: {} does not exist",
        manifest.display(),
        looked.display()
    )]
    DefaultsNotFound { manifest: PathBuf, looked: PathBuf },
    /// One or more located problems (syntax, unknown field, bad value, clash between manifests).
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render_diagnostics(diags: &[Diagnostic]) -> String {
    match diags {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems in the manifests:", many.len());
            for d in many {
                out.push_str(&format!("\n\n{d}"));
                if let Some(h) = &d.hint {
                    out.push_str(&format!("\nhint: {h}"));
                }
            }
            out
        }
    }
}

impl ManifestError {
    /// What the user should do about it (for several problems, each carries its own hint).
    pub fn hint(&self) -> Option<String> {
        match self {
            ManifestError::Read { cause, path } => Some(match cause.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "check the path; service manifests live in manifests/<service>.yaml (create one with `entraform new <service>`){}",
                    if path.file_name().is_some_and(|n| n == DEFAULTS_FILE) {
                        "; pass --defaults FILE if the defaults live elsewhere"
                    } else {
                        ""
                    }
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "check the file's permissions and owner".into()
                }
                _ => "check that the path is a readable UTF-8 text file".into(),
            }),
            ManifestError::DefaultsNotFound { looked, .. } => Some(format!(
                "create {} (its fields: `entraform schema --kind defaults`), or pass --defaults FILE",
                looked.display()
            )),
            ManifestError::Invalid(diags) => match diags.as_slice() {
                [one] => one.hint.clone(),
                _ => None,
            },
        }
    }

    /// The located problems, if that is what this is.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Invalid(d) => d,
            _ => &[],
        }
    }
}

fn read_source(path: &Path) -> Result<SourceFile, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ManifestError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    Ok(SourceFile::new(path, text))
}

static AT_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" at line \d+ column \d+$").expect("valid regex"));
static FIELD_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9_.\[\]-]+): (.*)$").expect("valid regex"));
static UNKNOWN_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"unknown (field|variant) `([^`]*)`, expected (?:one of )?(.*)$")
        .expect("valid regex")
});
static DUPLICATE_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"duplicate (?:field|entry with key) [`"]([^`"]*)"#).expect("valid regex")
});
static MISSING_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"missing field `([^`]*)`").expect("valid regex"));

/// Turn a serde_yaml error into a located diagnostic with a fix.
fn syntax_diagnostic(src: &SourceFile, err: &serde_yaml::Error, kind: &str) -> Diagnostic {
    let full = err.to_string();
    let text = AT_LINE.replace(&full, "").to_string();
    let (field, message) = match FIELD_PREFIX.captures(&text) {
        Some(c) if &c[1] != "." => (c[1].to_string(), c[2].to_string()),
        _ => (String::new(), text.clone()),
    };
    let schema = format!("`entraform schema --kind {kind}` lists every field");
    let hint = if let Some(c) = UNKNOWN_FIELD.captures(&message) {
        let candidates: Vec<String> = c[3]
            .split(", ")
            .map(|s| s.trim_matches(|ch| ch == '`' || ch == ' ').to_string())
            .collect();
        match crate::similar::did_you_mean(&c[2], candidates.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`? ({schema})"),
            None if &c[1] == "variant" => format!("use one of the listed values ({schema})"),
            None => format!("remove `{}` or fix its spelling ({schema})", &c[2]),
        }
    } else if let Some(c) = MISSING_FIELD.captures(&message) {
        format!("add `{}:` ({schema})", &c[1])
    } else if message.contains("did not match any variant of untagged enum PermissionRef") {
        "write a permission name like `User.Read`, or `{value: <name>, id: <GUID>}`".into()
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        format!("write a value of the expected type ({schema})")
    } else if message.contains("duplicate") {
        "keep only one of the two entries".into()
    } else {
        "fix the YAML at this position (indentation, quoting, a missing `:`)".into()
    };
    let mut span = err.location().map(|l| src.span_at(l.line(), l.column()));
    let mut field = field;
    if let Some(c) = UNKNOWN_FIELD.captures(&message)
        && &c[1] == "field"
    {
        // Name the unknown key in the field path too.
        field = if field.is_empty() {
            c[2].to_string()
        } else {
            format!("{field}.{}", &c[2])
        };
    } else if let Some(c) = DUPLICATE_FIELD.captures(&message) {
        // serde_yaml points at the mapping; point at the second occurrence of the key instead.
        let from = span.map_or(1, |s| s.line);
        if let Some(s) = src.second_key(&c[1], from) {
            span = Some(s);
        }
    }
    src.diagnostic_at(span, field, message, hint)
}

fn parse<T: DeserializeOwned>(src: &SourceFile, kind: &str) -> Result<T, ManifestError> {
    // An empty file (or only comments) reads as null: say so rather than "invalid type: unit".
    if matches!(
        serde_yaml::from_str::<serde_yaml::Value>(&src.text),
        Ok(serde_yaml::Value::Null)
    ) {
        let expected = if kind == "defaults" {
            "organisation, customers, redirect_uris, vault, tunnel"
        } else {
            "service, customer, proxy_port"
        };
        return Err(ManifestError::Invalid(vec![src.diagnostic_at(
            None,
            String::new(),
            format!("the file is empty; expected a mapping with at least {expected}"),
            format!("see `entraform schema --kind {kind}`"),
        )]));
    }
    serde_yaml::from_str(&src.text)
        .map_err(|e| ManifestError::Invalid(vec![syntax_diagnostic(src, &e, kind)]))
}

/// Where the defaults of `manifest` are: `explicit`, else `defaults.yaml` beside it.
pub fn defaults_path(manifest: &Path, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None => parent_dir(manifest).join(DEFAULTS_FILE),
    }
}

/// The directory of a file path (`.`-less: `blueprint.yaml` → ``).
fn parent_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Parsed and validated organisation defaults, with their source for later diagnostics.
#[derive(Debug)]
pub struct LoadedDefaults {
    pub source: SourceFile,
    pub defaults: DefaultsManifest,
}

/// Read, parse and validate a defaults file.
pub fn load_defaults(path: &Path) -> Result<LoadedDefaults, ManifestError> {
    let source = read_source(path)?;
    let defaults: DefaultsManifest = parse(&source, "defaults")?;
    let problems = lower::validate_defaults(&defaults);
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(
            problems
                .iter()
                .map(|p| source.diagnostic(&p.field, &p.message, Some(p.hint.clone())))
                .collect(),
        ));
    }
    Ok(LoadedDefaults { source, defaults })
}

fn find_defaults(
    manifest: &Path,
    explicit: Option<&Path>,
) -> Result<LoadedDefaults, ManifestError> {
    let path = defaults_path(manifest, explicit);
    if explicit.is_none() && !path.exists() {
        return Err(ManifestError::DefaultsNotFound {
            manifest: manifest.to_path_buf(),
            looked: path,
        });
    }
    load_defaults(&path)
}

/// A parsed service manifest and its source.
struct Parsed {
    source: SourceFile,
    manifest: ServiceManifest,
}

fn to_diagnostics(
    problems: &[Problem],
    service: &SourceFile,
    defaults: &SourceFile,
) -> Vec<Diagnostic> {
    problems
        .iter()
        .map(|p| {
            let src = match p.origin {
                Origin::Service => service,
                Origin::Defaults => defaults,
            };
            src.diagnostic(&p.field, &p.message, Some(p.hint.clone()))
        })
        .collect()
}

/// The host ports and name a manifest claims, read leniently (a sibling with unrelated errors
/// still reserves its ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOwner {
    pub path: PathBuf,
    pub service: Option<String>,
    pub proxy_port: Option<u16>,
    pub host_ports: Vec<u16>,
    pub reference: Option<String>,
}

impl PortOwner {
    fn from_text(path: &Path, text: &str) -> Self {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or_default();
        let get = |k: &str| value.get(k);
        let port = |v: &serde_yaml::Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
        Self {
            path: path.to_path_buf(),
            service: get("service").and_then(|v| v.as_str()).map(str::to_string),
            proxy_port: get("proxy_port").and_then(port),
            host_ports: get("host_ports")
                .and_then(|v| v.as_sequence())
                .map(|s| s.iter().filter_map(port).collect())
                .unwrap_or_default(),
            reference: get("reference")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        }
    }

    /// Every host port this manifest holds.
    pub fn ports(&self) -> Vec<u16> {
        self.proxy_port
            .into_iter()
            .chain(self.host_ports.iter().copied())
            .collect()
    }

    fn describe(&self, port: u16) -> String {
        let what = if self.proxy_port == Some(port) {
            "proxy_port"
        } else {
            "host_ports"
        };
        match &self.service {
            Some(s) => format!(
                "{} ({what} of service {s:?})",
                diag::display_path(&self.path)
            ),
            None => format!("{} ({what})", diag::display_path(&self.path)),
        }
    }
}

/// Service manifest files in `dir`: every `*.yaml` except `defaults.yaml`, sorted by name.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|cause| ManifestError::Read {
        path: dir.to_path_buf(),
        cause,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != DEFAULTS_FILE)
        })
        .collect();
    files.sort();
    Ok(files)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// What the other manifests in `dir` claim (excluding the files in `exclude`). A missing or
/// unreadable directory claims nothing.
pub fn scan_dir(dir: &Path, exclude: &[&Path]) -> Vec<PortOwner> {
    // `blueprint.yaml` has the parent ``: read `.`, but report `frame.yaml`, not `./frame.yaml`.
    let bare = dir.as_os_str().is_empty();
    let Ok(files) = manifest_files(if bare { Path::new(".") } else { dir }) else {
        return Vec::new();
    };
    files
        .into_iter()
        .map(|p| match p.strip_prefix(".") {
            Ok(rel) if bare => rel.to_path_buf(),
            _ => p,
        })
        .filter(|p| !exclude.iter().any(|e| same_file(p, e)))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some(PortOwner::from_text(&p, &text))
        })
        .collect()
}

/// The next free proxy port: each service owns a block of `ports.block` host ports, and its proxy
/// port sits at the same offset in its block as `ports.first` (3131, 3141, 3151 → 3161).
pub fn next_free_port(owners: &[PortOwner], ports: &PortDefaults) -> u16 {
    let used: BTreeSet<u16> = owners.iter().flat_map(PortOwner::ports).collect();
    let block = u32::from(ports.block.max(1));
    let offset = u32::from(ports.first) % block;
    let Some(&highest) = used.iter().next_back() else {
        return ports.first;
    };
    let start = (u32::from(highest) / block + 1) * block + offset;
    if let Ok(p) = u16::try_from(start) {
        return p;
    }
    // Past the top of the port range: the first free port from `first` upward.
    (ports.first..=u16::MAX)
        .find(|p| !used.contains(p))
        .unwrap_or(ports.first)
}

/// Cross-manifest problems of `me` against `others` (ports and service names).
fn clash_diagnostics(me: &Parsed, others: &[PortOwner], next_free: u16) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let m = &me.manifest;
    let root = FieldPath::root();
    let mine = std::iter::once((root.k("proxy_port"), m.proxy_port)).chain(
        m.host_ports
            .iter()
            .enumerate()
            .map(|(i, p)| (root.k("host_ports").i(i), *p)),
    );
    for (field, port) in mine {
        if let Some(owner) = others.iter().find(|o| o.ports().contains(&port)) {
            out.push(me.source.diagnostic(
                &field,
                format!(
                    "{port} is already used by {}; expected a host port no other manifest uses, e.g. {next_free}",
                    owner.describe(port)
                ),
                Some(format!(
                    "use {next_free} (the next free port block), or free {port} in the other manifest; two services cannot publish the same host port"
                )),
            ));
        }
    }
    if let Some(owner) = others
        .iter()
        .find(|o| o.service.as_deref() == Some(m.service.as_str()))
    {
        out.push(me.source.diagnostic(
            &root.k("service"),
            format!(
                "{:?} is also defined in {}; expected one manifest per service",
                m.service,
                diag::display_path(&owner.path)
            ),
            Some("rename one of the services, or delete the duplicate manifest".into()),
        ));
    }
    out
}

/// Warnings about how a manifest sits among its siblings (not fatal).
fn placement_warnings(me: &Parsed, siblings: &[PortOwner]) -> Vec<String> {
    let mut out = Vec::new();
    let m = &me.manifest;
    if let Some(stem) = me.source.path.file_stem().and_then(|s| s.to_str())
        && stem != m.service
        && lower::is_service_name(&m.service)
    {
        out.push(format!(
            "{} defines service {:?}; name the file {}.yaml so `entraform new` and the other commands find it",
            diag::display_path(&me.source.path),
            m.service,
            m.service
        ));
    }
    if let Some(r) = &m.reference
        && lower::is_service_name(r)
        && !siblings.is_empty()
        && !siblings
            .iter()
            .any(|s| s.service.as_deref() == Some(r.as_str()))
    {
        out.push(format!(
            "reference {r:?} has no manifest beside {}; drift will need `--reference FILE|APP_ID`",
            diag::display_path(&me.source.path)
        ));
    }
    out
}

fn parse_service(path: &Path) -> Result<Parsed, ManifestError> {
    let source = read_source(path)?;
    let manifest = parse(&source, "service")?;
    Ok(Parsed { source, manifest })
}

/// Load a service manifest with its defaults (`defaults` overrides `defaults.yaml` beside it)
/// and lower it to the desired state. The manifests beside it are read to detect a port or
/// name clash.
pub fn load_service(path: &Path, defaults: Option<&Path>) -> Result<Desired, ManifestError> {
    let parsed = parse_service(path)?;
    let loaded = find_defaults(path, defaults)?;
    let dpath = defaults_path(path, defaults);
    let siblings = scan_dir(&parent_dir(path), &[path, &dpath]);
    let mut all = siblings.clone();
    all.push(PortOwner::from_text(path, &parsed.source.text));
    let next_free = next_free_port(&all, &loaded.defaults.ports);

    let mut diags = Vec::new();
    let lowered = lower::lower(&parsed.manifest, &loaded.defaults, path, &dpath);
    if let Err(problems) = &lowered {
        diags.extend(to_diagnostics(problems, &parsed.source, &loaded.source));
    }
    diags.extend(clash_diagnostics(&parsed, &siblings, next_free));
    match lowered {
        Ok(mut desired) if diags.is_empty() => {
            desired
                .warnings
                .extend(placement_warnings(&parsed, &siblings));
            Ok(desired)
        }
        _ => Err(ManifestError::Invalid(diags)),
    }
}

/// Load every service manifest in `dir` (every `*.yaml` except `defaults.yaml`, sorted by
/// name) with one set of defaults, checking them against each other. Reports the problems of
/// all files at once.
pub fn load_all(dir: &Path, defaults: Option<&Path>) -> Result<Vec<Desired>, ManifestError> {
    let dpath = match defaults {
        Some(p) => p.to_path_buf(),
        None => dir.join(DEFAULTS_FILE),
    };
    if defaults.is_none() && !dpath.exists() {
        return Err(ManifestError::DefaultsNotFound {
            manifest: dir.to_path_buf(),
            looked: dpath,
        });
    }
    let loaded = load_defaults(&dpath)?;
    let files: Vec<PathBuf> = manifest_files(dir)?
        .into_iter()
        .filter(|p| !same_file(p, &dpath))
        .collect();

    let mut diags = Vec::new();
    let mut parsed = Vec::new();
    for f in &files {
        match parse_service(f) {
            Ok(p) => parsed.push(p),
            Err(ManifestError::Invalid(d)) => diags.extend(d),
            Err(e) => return Err(e),
        }
    }
    let owners: Vec<PortOwner> = parsed
        .iter()
        .map(|p| PortOwner::from_text(&p.source.path, &p.source.text))
        .collect();
    let next_free = next_free_port(&owners, &loaded.defaults.ports);
    let mut out = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        match lower::lower(&p.manifest, &loaded.defaults, &p.source.path, &dpath) {
            Ok(mut d) => {
                let siblings: Vec<PortOwner> = owners
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, o)| o.clone())
                    .collect();
                d.warnings.extend(placement_warnings(p, &siblings));
                out.push(d);
            }
            Err(problems) => diags.extend(to_diagnostics(&problems, &p.source, &loaded.source)),
        }
        // Each clash is reported once, on the later file (against the earlier ones).
        diags.extend(clash_diagnostics(p, &owners[..i], next_free));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(ManifestError::Invalid(diags))
    }
}
