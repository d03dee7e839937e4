//! The top-level error: wraps each layer's typed error and carries its hint.

use std::path::PathBuf;

/// Every failure a command can end with. Each layer has its own error type with a `hint()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong combination of flags or arguments that clap cannot express (exit 2).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A vault backend failed (write, read-back, mismatch, configuration).
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// A manifest or the defaults file cannot be used (located diagnostics).
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// Microsoft Graph or the login endpoint refused or failed.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// Rendering the fragments or merging them into existing files failed.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// Anything else, with a fix.
    #[error("{message}")]
    Other {
        message: String,
        hint: Option<String>,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn other(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Other {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } | Error::Other { hint, .. } => hint.clone(),
            Error::Manifest(e) => e.hint(),
            Error::Graph(e) => e.hint(),
            Error::Render(e) => e.hint(),
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Some("check the path".into()),
                std::io::ErrorKind::PermissionDenied => {
                    Some("check the file's permissions and owner".into())
                }
                _ => None,
            },
            Error::Vault(err) => err.hint(),
        }
    }

    /// A stable machine name for `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage { .. } => "usage",
            Error::Io { .. } => "io",
            Error::Vault(_) => "vault",
            Error::Manifest(_) => "manifest",
            Error::Graph(_) => "graph",
            Error::Render(_) => "render",
            Error::Other { .. } => "other",
        }
    }

    /// The exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. } => crate::exit::EXIT_USAGE,
            _ => crate::exit::EXIT_ERROR,
        }
    }
}

impl crate::printer::Report for Error {
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }

    fn kind(&self) -> &'static str {
        Error::kind(self)
    }
}
