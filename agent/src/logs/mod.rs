//! Container logs in the CRI format kubelet reads (`<RFC3339Nano> stdout|stderr F|P <text>`):
//! a logger the container's shim runs ([`logger`]) writes them with size-based rotation
//! ([`writer`]); the agent's API reads and follows them ([`reader`]).

pub mod cri;
pub mod logger;
pub mod reader;
pub mod writer;

/// How container log files are rotated (kubelet's `--container-log-max-size` and
/// `--container-log-max-files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated once it reaches this many bytes.
    pub max_size: u64,
    /// How many files of one container start are kept, the live one included.
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}
