use std::io;
use std::path::PathBuf;

use super::cni::CniError;
use super::files::FilesError;
use super::namespaces::NamespaceError;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("pod {field} {reason}")]
    InvalidPod { field: &'static str, reason: String },
    #[error("a sandbox for pod {uid} already exists in {}", dir.display())]
    Exists { uid: String, dir: PathBuf },
    #[error("network not ready: no CNI configuration loaded")]
    NetworkNotReady,
    #[error("sandbox of pod {uid}: {source}")]
    Namespaces {
        uid: String,
        #[source]
        source: NamespaceError,
    },
    #[error("sandbox of pod {uid}: {source}")]
    Files {
        uid: String,
        #[source]
        source: FilesError,
    },
    #[error("sandbox of pod {uid}: {source}")]
    Cni {
        uid: String,
        #[source]
        source: CniError,
    },
    #[error("network garbage collection: {source}")]
    NetworkGc {
        #[source]
        source: CniError,
    },
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<SandboxError>),
}

impl SandboxError {
    pub(crate) fn collect(mut errors: Vec<SandboxError>) -> Result<(), SandboxError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(SandboxError::Multiple(errors)),
        }
    }
}
