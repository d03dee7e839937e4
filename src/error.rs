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

/// A reference is a usage error when the argument names nothing, an I/O error when the file
/// cannot be read, and a plain error with a hint when the file is not a reference.
impl From<crate::drift::ReferenceError> for Error {
    fn from(e: crate::drift::ReferenceError) -> Self {
        use crate::drift::ReferenceError;
        let hint = e.hint();
        match e {
            ReferenceError::Io { path, source } => Error::io("read", path, source),
            e @ ReferenceError::NotAReference { .. } => Error::usage(e.to_string(), hint),
            e @ ReferenceError::BadFile { .. } => Error::other(e.to_string(), hint),
        }
    }
}

/// The audit log's failures keep the I/O kind and hint of a file error; the rest are plain.
impl From<crate::audit::AuditError> for Error {
    fn from(e: crate::audit::AuditError) -> Self {
        use crate::audit::AuditError;
        let hint = e.hint();
        match e {
            AuditError::Io {
                action,
                path,
                source,
            } => Error::io(action, path, source),
            e => Error::other(e.to_string(), hint),
        }
    }
}

/// A mint's vault and Graph failures are the vault's and Graph's; the rest are plain.
impl From<crate::secret_flow::MintError> for Error {
    fn from(e: crate::secret_flow::MintError) -> Self {
        use crate::secret_flow::MintError;
        match e {
            MintError::Vault(e) => Error::Vault(e),
            MintError::Graph(e) => Error::Graph(e),
            MintError::Failed { message, hint } => Error::other(message, hint),
        }
    }
}

impl From<crate::apply::ApplyError> for Error {
    fn from(e: crate::apply::ApplyError) -> Self {
        use crate::apply::ApplyError;
        match e {
            ApplyError::Graph(e) => Error::Graph(e),
            ApplyError::Mint(e) => e.into(),
            ApplyError::Failed { message, hint } => Error::other(message, hint),
        }
    }
}

impl From<crate::session::SessionError> for Error {
    fn from(e: crate::session::SessionError) -> Self {
        use crate::session::SessionError;
        match e {
            SessionError::Usage { message, hint } => Error::usage(message, hint),
            SessionError::Graph(e) => Error::Graph(e),
            SessionError::Vault(e) => Error::Vault(e),
            SessionError::Failed { message, hint } => Error::other(message, hint),
        }
    }
}
