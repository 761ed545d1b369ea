use std::path::PathBuf;
use std::time::Duration;

/// Errors of the runtime layer, each naming the operation and the object it concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect to containerd at {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: containerd_client::tonic::transport::Error,
    },

    #[error("containerd {op} {object}: {code:?}: {message}")]
    Grpc {
        op: &'static str,
        object: String,
        code: containerd_client::tonic::Code,
        message: String,
    },

    #[error("container {id} is not running")]
    NotRunning { id: String },

    #[error("exec {cmd} in {id}: {message}")]
    ExecFailed {
        id: String,
        cmd: String,
        message: String,
    },

    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },

    #[error("container {id} failed to start: {message}")]
    StartFailed { id: String, message: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("image archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },

    #[error("image {image}: {reason}")]
    InvalidImage { image: String, reason: String },

    #[error("{what}: expected digest {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("container {id}: invalid spec: {reason}")]
    InvalidSpec { id: String, reason: String },

    #[error("decode {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("containerd in {dir}: {reason}")]
    Supervise { dir: PathBuf, reason: String },

    #[error("{what}: no answer after {after:?}")]
    Timeout { what: String, after: Duration },

    /// Pulling an image from its registry failed. The message reads like containerd's and
    /// carries the registry's own reason; it is what a pod's ErrImagePull shows.
    #[error("failed to pull and unpack image \"{image}\": {message}")]
    Pull {
        image: String,
        kind: PullErrorKind,
        message: String,
    },
}

/// Why a pull failed, for callers that react differently (e.g. no retry storm on NotFound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullErrorKind {
    /// The registry has no such repository, tag or digest, or no manifest for this platform.
    NotFound,
    /// The registry refused the credentials (or their absence).
    Unauthorized,
    /// The registry could not be reached: connection refused, DNS, TLS, timeouts.
    Network,
    /// The registry sent something unusable: wrong digest or size, bad JSON, an unsupported
    /// media type.
    Invalid,
    /// Anything else: unexpected HTTP statuses, containerd failing to store or unpack.
    Other,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn grpc(
        op: &'static str,
        object: impl Into<String>,
        status: containerd_client::tonic::Status,
    ) -> Self {
        Error::Grpc {
            op,
            object: object.into(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the object the operation concerned does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Grpc { code, .. } => *code == containerd_client::tonic::Code::NotFound,
            _ => false,
        }
    }

    /// The kind of a pull failure; None for other errors.
    pub fn pull_kind(&self) -> Option<PullErrorKind> {
        match self {
            Error::Pull { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True when the object the operation would create exists already.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::Grpc { code, .. } if *code == containerd_client::tonic::Code::AlreadyExists)
    }
}
