//! The fixture of the `drift`, `export` and `verify` modules: the in-process TLS emulator, a
//! temp directory with the repository's defaults.yaml (a `file` vault), the binary run there,
//! and a secret scan of every output it printed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use entraform::emulator::{EmulatorConfig, RunningEmulator, start};
use serde_json::Value;

use crate::support::bin::Bin;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub struct Fixture {
    pub emu: RunningEmulator,
    pub dir: tempfile::TempDir,
    /// Every stdout and stderr of the binary, for the secret scan.
    outputs: Mutex<Vec<String>>,
}

/// The repository's defaults.yaml with a `file` vault (relative to the manifests directory).
pub fn defaults_with_file_vault() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/defaults.yaml"),
    )
    .expect("defaults.yaml");
    let start = text.find("vault:\n").expect("vault block");
    let end = start + text[start..].find("\n\n").expect("end of the vault block");
    format!(
        "{}vault:\n  backend: file\n  path: vault.json{}",
        &text[..start],
        &text[end..]
    )
}

impl Fixture {
    pub async fn new(seed: Option<Value>) -> Self {
        let mut config = EmulatorConfig::default()
            .tls(true)
            .verified_domain("axelabs.ai");
        if let Some(seed) = seed {
            config = config.seed(seed);
        }
        let emu = start(config).await.expect("emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        emu.write_ca_cert(&dir.path().join("ca.pem"))
            .expect("CA written");
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        std::fs::write(
            dir.path().join("manifests/defaults.yaml"),
            defaults_with_file_vault(),
        )
        .unwrap();
        Fixture {
            emu,
            dir,
            outputs: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Copy service manifests of the repository (frame, hive) into `manifests/`.
    pub fn copy_manifest(&self, name: &str) {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("manifests/{name}.yaml")),
            self.path(&format!("manifests/{name}.yaml")),
        )
        .expect("copy manifest");
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, true).await
    }

    /// Run the binary in the fixture's directory; `credentials: false` runs it with no Azure
    /// credential at all (and no developer tools on PATH).
    pub async fn run_with(&self, args: &[&str], credentials: bool) -> Out {
        let bin = Bin::new(&self.emu, &self.path("ca.pem"), self.dir.path(), args);
        let mut cmd = if credentials {
            bin.full_operator(&self.emu).command()
        } else {
            let empty = self.path("empty-bin");
            std::fs::create_dir_all(&empty).unwrap();
            bin.env("PATH", empty).command()
        };
        let out = cmd.output().await.expect("binary runs");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut all = self.outputs.lock().unwrap();
        all.push(out.stdout.clone());
        all.push(out.stderr.clone());
        out
    }

    /// No secret the emulator ever handed out (addPassword, seeds, operators) appears in any
    /// output of the binary, nor in the listed files.
    pub fn scan_secrets(&self, files: &[&str]) {
        let secrets = self.emu.issued_secrets();
        assert!(!secrets.is_empty());
        let mut texts = self.outputs.lock().unwrap().clone();
        for f in files {
            texts.push(std::fs::read_to_string(self.path(f)).expect("scanned file"));
        }
        let mut hits = 0;
        for t in &texts {
            for s in &secrets {
                if t.contains(s.expose()) {
                    hits += 1;
                }
            }
        }
        assert_eq!(hits, 0, "a secret value appeared in an output");
    }
}

/// Apply frame then hive (hive's reference is frame), both through the tool.
pub async fn applied_frame_and_hive() -> Fixture {
    let fx = Fixture::new(None).await;
    fx.copy_manifest("frame");
    fx.copy_manifest("hive");
    for m in ["manifests/frame.yaml", "manifests/hive.yaml"] {
        let out = fx.run(&["--yes", "apply", m]).await;
        assert_eq!(out.code, 0, "apply {m}: {out:?}");
    }
    fx
}

pub fn row<'a>(report: &'a Value, field: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["field"] == field)
        .unwrap_or_else(|| panic!("no row {field} in {report:#}"))
}

pub fn differing(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "differs")
        .map(|r| r["field"].as_str().unwrap().to_string())
        .collect()
}
