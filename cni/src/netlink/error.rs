use std::io;
use std::path::PathBuf;

/// Everything the netlink library can fail with. Kernel refusals keep their errno
/// (see [`NetlinkError::errno`]) and the kernel's own explanation when it gave one.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket: {0}")]
    Connect(io::Error),

    #[error("a netlink connection needs a tokio runtime with IO enabled on this thread")]
    NoRuntime,

    #[error("{op}: {error}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Kernel {
        op: String,
        error: io::Error,
        /// The kernel's extended-ack message, e.g. "Nexthop device is not up".
        detail: Option<String>,
    },

    #[error("{op}: the netlink connection closed before the kernel answered")]
    Closed { op: String },

    #[error("{op}: unexpected reply from the kernel: {detail}")]
    Unexpected { op: String, detail: String },

    #[error("link {0} not found")]
    LinkNotFound(String),

    #[error("link {0} already exists")]
    LinkExists(String),

    #[error("link {name} exists but is {}, not a bridge", kind.as_deref().unwrap_or("a device without a kind"))]
    NotABridge { name: String, kind: Option<String> },

    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("network namespace {} does not exist", .0.display())]
    NetnsNotFound(PathBuf),

    #[error("network namespace {} already exists", .0.display())]
    NetnsExists(PathBuf),

    #[error("network namespace {}: {action}: {error}", path.display())]
    Netns {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },

    #[error("network namespace {}: the worker thread {what}", path.display())]
    NetnsThread { path: PathBuf, what: &'static str },

    #[error("sysctl {key}: {error}")]
    Sysctl { key: String, error: io::Error },
}

impl NetlinkError {
    /// The errno behind a kernel or system-call failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { error, .. }
            | NetlinkError::Connect(error)
            | NetlinkError::Netns { error, .. }
            | NetlinkError::Sysctl { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the thing asked for (link, namespace, address, route) is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            NetlinkError::LinkNotFound(_) | NetlinkError::NetnsNotFound(_)
        ) || matches!(
            self.errno(),
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }

    /// Whether the thing to create is already there.
    pub fn is_exists(&self) -> bool {
        matches!(
            self,
            NetlinkError::LinkExists(_) | NetlinkError::NetnsExists(_)
        ) || self.errno() == Some(libc::EEXIST)
    }
}
