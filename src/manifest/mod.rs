//! Service manifests and organisation defaults (SPEC §2): strict YAML → [`Desired`].

use std::path::Path;

use crate::desired::Desired;

/// A manifest that cannot be used. Every variant names file:line:column (when known), the field
/// path, what was found and what is expected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Todo(String),
}

impl ManifestError {
    pub fn hint(&self) -> Option<String> {
        None
    }
}

/// Load a service manifest with its defaults (`defaults` overrides `defaults.yaml` beside it)
/// and lower it to the desired state.
pub fn load_service(path: &Path, defaults: Option<&Path>) -> Result<Desired, ManifestError> {
    let _ = (path, defaults);
    Err(ManifestError::Todo(
        "manifest loading is not implemented yet".into(),
    ))
}
