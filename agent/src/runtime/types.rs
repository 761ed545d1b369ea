use std::collections::BTreeMap;
use std::time::SystemTime;

use super::labels::ContainerMeta;

/// The runtime's version, as it reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub revision: String,
}

/// An image registered in the runtime: its name and the digest of what the name points at
/// (a manifest or an index), which is the "repo digest" Kubernetes reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub name: String,
    pub digest: String,
}

/// What a container needs from its image, resolved for this node's platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub name: String,
    /// Digest of the image record's target (manifest or index).
    pub target_digest: String,
    /// Digest of the platform manifest the runtime uses.
    pub manifest_digest: String,
    /// Digest of the image configuration: the image ID Kubernetes reports.
    pub config_digest: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries, in the image's order; empty when the image sets none.
    pub env: Vec<String>,
    /// As the image says it: "", "uid", "uid:gid", "name", "name:group".
    pub user: String,
    pub working_dir: String,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Uncompressed layer digests, bottom first.
    pub diff_ids: Vec<String>,
    /// The snapshot the layers unpack to.
    pub chain_id: String,
    /// Sum of the (compressed) layer sizes.
    pub size: u64,
}

/// The state of a container's task (its process), as the runtime reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// The container has no task: never started, or the task was deleted.
    None,
    Created,
    Running,
    Stopped,
    Paused,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    pub status: TaskStatus,
    pub pid: u32,
    /// Meaningful when `status` is `Stopped`.
    pub exit: Option<ExitStatus>,
}

/// A container as listed by the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// The pod and container this one belongs to, when its labels say so.
    pub meta: Option<ContainerMeta>,
    pub created_at: Option<SystemTime>,
    pub task: TaskState,
}

/// Credentials for one registry, from a pod's imagePullSecrets (or the node's
/// configuration). Debug output never shows the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token for the registry's token service (`identitytoken`).
    pub identity_token: Option<String>,
    /// A bearer token sent as is (`registrytoken`).
    pub registry_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a command run in a container ([`super::Runtime::exec_sync`]) left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; 128 + n when the process died of signal n.
    pub exit_code: u32,
    /// Its standard output and error, each cut at [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How much of an exec's output is kept (kubelet keeps 10 KiB of a probe's).
pub const EXEC_OUTPUT_LIMIT: usize = 16 * 1024;

/// How a container's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; 128 + n when the process died of signal n (as runc reports it).
    pub code: u32,
    pub exited_at: Option<SystemTime>,
    /// The kernel's OOM killer killed a process of the container while we waited.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// The signal that ended the process, when the code says one did.
    pub fn signal(&self) -> Option<i32> {
        if (129..=128 + 64).contains(&self.code) {
            i32::try_from(self.code - 128).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_from_code() {
        let e = |code| ExitStatus {
            code,
            exited_at: None,
            oom_killed: false,
        };
        assert_eq!(e(137).signal(), Some(9));
        assert_eq!(e(143).signal(), Some(15));
        assert_eq!(e(3).signal(), None);
        assert_eq!(e(128).signal(), None);
        assert_eq!(e(255).signal(), None);
    }
}
