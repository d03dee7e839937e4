//! Shared by the fuzz targets: a scratch directory holding the example manifests, and the
//! desired state of one example service.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use entraform::desired::Desired;

pub const DEFAULTS: &str = include_str!("../../manifests/defaults.yaml");
pub const BLUEPRINT: &str = include_str!("../../manifests/blueprint.yaml");
pub const CLIENT_ID: &str = "482598f7-540c-462c-9dfd-b957651eb804";

/// A directory of this process (removed never: the OS temp dir is cleaned by the OS).
pub fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("entraform-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The desired state of `manifests/blueprint.yaml` with the example defaults.
pub fn blueprint() -> &'static Desired {
    static D: OnceLock<Desired> = OnceLock::new();
    D.get_or_init(|| {
        let dir = scratch().join("blueprint");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("defaults.yaml"), DEFAULTS).unwrap();
        std::fs::write(dir.join("blueprint.yaml"), BLUEPRINT).unwrap();
        entraform::manifest::load_service(&dir.join("blueprint.yaml"), None)
            .expect("the example manifest loads")
    })
}
