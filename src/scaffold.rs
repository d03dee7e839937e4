//! `entraform new`: render a service manifest from `templates/manifest.yaml.j2` and write it
//! without ever replacing an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The embedded manifest template.
pub const MANIFEST_TEMPLATE: &str = include_str!("../templates/manifest.yaml.j2");

/// The values a new manifest is written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScaffoldValues {
    pub service: String,
    pub customer: String,
    pub display_name: String,
    pub proxy_port: u16,
    pub reference: Option<String>,
    /// The customer's public host (for the comment on derived values).
    pub host: String,
    /// Size of a service's port block (from defaults.yaml `ports.block`).
    pub block: u16,
    /// Name of the defaults file, for the header comment.
    pub defaults_name: String,
}

/// Render the manifest text.
pub fn render_manifest(values: &ScaffoldValues) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    // A JSON string is a valid YAML double-quoted scalar: safe for any display name.
    env.add_filter("yaml_str", |s: String| {
        serde_json::to_string(&s).unwrap_or_else(|_| "\"\"".into())
    });
    // The other values are written bare: names checked by `entraform new`, and each must be
    // one line (a newline would add a field to the manifest).
    env.add_filter("one_line", |v: minijinja::Value| {
        crate::render::one_line(&v.to_string())
    });
    env.set_keep_trailing_newline(true);
    env.add_template("manifest.yaml", MANIFEST_TEMPLATE)?;
    let block = u32::from(values.block.max(1));
    let start = u32::from(values.proxy_port) / block * block;
    let ctx = minijinja::context! {
        service => values.service,
        customer => values.customer,
        display_name => values.display_name,
        proxy_port => values.proxy_port,
        reference => values.reference,
        host => values.host,
        defaults_name => values.defaults_name,
        block_start => start,
        block_end => (start + block - 1).min(u32::from(u16::MAX)),
    };
    env.get_template("manifest.yaml")?.render(ctx)
}

/// Write `contents` to `path` atomically, refusing to replace anything: a temp file in the same
/// directory, then a hard link to the final name (which fails if the name exists), then the temp
/// file is removed. Where hard links are unsupported, a rename after an existence check.
pub fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "file exists",
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "manifest.yaml".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        drop(file);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
            Err(_) => {
                if path.exists() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "file exists",
                    ));
                }
                std::fs::rename(&tmp, path)
            }
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> ScaffoldValues {
        ScaffoldValues {
            service: "ledger".into(),
            customer: "axe".into(),
            display_name: "Ledger \"Books\" MCP".into(),
            proxy_port: 3161,
            reference: Some("frame".into()),
            host: "axe.axelabs.ai".into(),
            block: 10,
            defaults_name: "defaults.yaml".into(),
        }
    }

    #[test]
    fn a_value_with_a_newline_is_refused() {
        let mut v = values();
        v.defaults_name = "defaults.yaml\nreference: evil".into();
        assert!(render_manifest(&v).is_err());
    }

    #[test]
    fn renders_parseable_yaml() {
        let text = render_manifest(&values()).unwrap();
        let m: crate::manifest::model::ServiceManifest = serde_yaml::from_str(&text).unwrap();
        assert_eq!(m.service, "ledger");
        assert_eq!(m.display_name.as_deref(), Some("Ledger \"Books\" MCP"));
        assert_eq!(m.proxy_port, 3161);
        assert_eq!(m.reference.as_deref(), Some("frame"));
        assert!(text.contains("3160-3169"), "{text}");
        let mut v = values();
        v.reference = None;
        let m: crate::manifest::model::ServiceManifest =
            serde_yaml::from_str(&render_manifest(&v).unwrap()).unwrap();
        assert_eq!(m.reference, None);
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        write_new(&p, "a: 1\n").unwrap();
        let err = write_new(&p, "a: 2\n").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a: 1\n");
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
