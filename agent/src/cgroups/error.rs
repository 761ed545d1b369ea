use std::io;
use std::path::PathBuf;
use std::time::Duration;

use skiff_api::quantity::QuantityError;

/// What went wrong managing cgroups, with the file or object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroupfs operation (mkdir, rmdir, read, write, list) failed.
    #[error("cgroup {op} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "write 100000 to".
        op: String,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A cgroup kept processes (or children) for the whole removal timeout.
    #[error("cgroup {} still busy after {waited:?}: processes remain in it", path.display())]
    Busy {
        /// The directory that could not be removed.
        path: PathBuf,
        /// How long removal was retried.
        waited: Duration,
    },
    /// The host does not offer a controller the agent needs.
    #[error("cgroup controller {controller} is not available under {}", mount_root.display())]
    MissingController {
        /// Controller name (cpu, cpuacct, memory, pids).
        controller: String,
        /// Where the cgroup filesystems were looked for.
        mount_root: PathBuf,
    },
    /// No cgroup filesystem at the given mount root.
    #[error("no cgroup filesystem under {}", mount_root.display())]
    NoCgroupfs {
        /// Where the cgroup filesystems were looked for.
        mount_root: PathBuf,
    },
    /// A cgroup path that is not absolute and normalised, or that escapes its hierarchy.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A pod uid or container id that cannot be a cgroup directory name.
    #[error("{what} {name:?} cannot name a cgroup")]
    InvalidName {
        /// "pod uid" or "container id".
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// The pod has no cgroup under any QoS class.
    #[error("pod {uid} has no cgroup under {root}")]
    PodNotFound {
        /// The pod's uid.
        uid: String,
        /// The pod tree root searched.
        root: String,
    },
    /// A cgroup or proc file did not hold what the kernel documents.
    #[error("{}: cannot parse {what} from {content:?}", path.display())]
    Parse {
        /// The file read.
        path: PathBuf,
        /// What was expected in it.
        what: &'static str,
        /// What was found (possibly shortened).
        content: String,
    },
    /// A resource quantity in the pod spec does not parse.
    #[error("{object}: {resource} quantity: {source}")]
    Quantity {
        /// Which part of the pod, e.g. "container app limits".
        object: String,
        /// Resource name (cpu, memory).
        resource: String,
        /// The parser's complaint.
        #[source]
        source: QuantityError,
    },
}

impl CgroupError {
    /// True when the kernel refused because processes or child cgroups remain;
    /// removal retries these.
    pub fn is_busy(&self) -> bool {
        match self {
            CgroupError::Busy { .. } => true,
            CgroupError::Io { source, .. } => source.raw_os_error() == Some(libc::EBUSY),
            _ => false,
        }
    }

    pub(crate) fn io(op: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CgroupError::Io {
            op: op.into(),
            path: path.into(),
            source,
        }
    }
}
