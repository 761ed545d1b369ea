//! The container runtime layer: what the pod logic needs from a container runtime, behind
//! one object-safe trait, [`Runtime`].
//!
//! * [`containerd::Containerd`] drives containerd (1.6 and later) over its own gRPC API: image
//!   import and unpack through the content, images, diff, snapshots and leases services (1.6 has
//!   no transfer service), containers with an OCI runtime spec generated here ([`spec`]), and
//!   tasks through the runc v2 shim.
//! * [`fake::FakeRuntime`] keeps everything in memory, for unit tests of the pod logic.
//! * [`supervise::Supervisor`] runs a private containerd when the agent is given no socket.
//! * [`testimage`] packs the host's busybox-static as an OCI image archive, so tests and
//!   `skiff image` need no registry and no internet.

pub mod archive;
pub mod containerd;
mod error;
pub mod fake;
pub mod image;
pub mod labels;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod spec;
pub mod stream;
pub mod supervise;
pub mod testimage;
mod types;
pub mod user;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

pub use error::{Error, PullErrorKind, Result};
pub use labels::ContainerMeta;
pub use spec::ContainerSpec;
pub use stream::{AttachTarget, Exec, ExecControl, ExecOptions, TermSize};
pub use types::{
    ContainerInfo, EXEC_OUTPUT_LIMIT, ExecOutput, ExitStatus, ImageConfig, ImageRef, RegistryAuth,
    TaskState, TaskStatus, Version,
};

/// What the agent needs from a container runtime. Implementations are cheap to share
/// (`Arc<dyn Runtime>`); every method is safe to call concurrently.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The runtime's version; also a liveness check.
    async fn version(&self) -> Result<Version>;

    /// Whether an image record with this exact name exists.
    async fn image_exists(&self, image: &str) -> Result<bool>;

    /// The run-time configuration of an image (entrypoint, cmd, env, ...) and its identity.
    async fn image_config(&self, image: &str) -> Result<ImageConfig>;

    /// Imports every named image of an OCI image layout tar or a `docker save` tar, unpacks
    /// them, and returns the names it registered.
    async fn import_archive(&self, path: &Path) -> Result<Vec<ImageRef>>;

    /// Pulls `image` (a normalized reference, see [`reference::normalize`]) from its
    /// registry for this node's platform, trying the credentials in order (anonymously when
    /// there are none), stores and unpacks it, and registers the name. Pulling an image that
    /// is already present re-resolves the name and fetches only what is missing.
    async fn pull_image(&self, image: &str, auth: &[RegistryAuth]) -> Result<ImageRef>;

    /// Creates the container (root filesystem snapshot, OCI spec, labels) without starting it.
    /// The caller chooses the id, which must be unique in the runtime's namespace.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    /// Starts a created container and returns the pid of its first process. A container that
    /// fails to start is removed entirely (task, container, snapshot, lease), and the error is
    /// [`Error::StartFailed`] with the runtime's reason.
    async fn start(&self, id: &str) -> Result<u32>;

    /// Waits until the container's process exits. Returns at once if it already has.
    async fn wait(&self, id: &str) -> Result<ExitStatus>;

    /// Sends a signal to the container's first process. Signalling a container whose process
    /// is gone, or that has none, is not an error.
    async fn kill(&self, id: &str, signal: i32) -> Result<()>;

    /// Runs `cmd` in the running container `id`, as its first process runs (user, groups,
    /// environment, working directory, capabilities), and waits for it. After `timeout` the
    /// process is killed and the result is [`Error::Timeout`]. A container without a running
    /// process gives [`Error::NotRunning`]; a command that cannot be started (not found, not
    /// executable) gives [`Error::ExecFailed`]. Nothing of the exec outlives the call, also
    /// when the caller drops the future (the process is then killed).
    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput>;

    /// Starts `opts.cmd` in the running container `id` (as [`Runtime::exec_sync`] would)
    /// with the standard streams `opts` asks for, and hands them over while it runs. Errors
    /// as `exec_sync`'s. Nothing of the exec outlives it, or the [`ExecControl`] when that is
    /// dropped first (the process is then killed).
    async fn exec(&self, id: &str, opts: &ExecOptions) -> Result<Exec>;

    /// What attaching to the container's main process needs: its log file and, when `stdin`
    /// is asked for and the container has a standard input, a writer into it.
    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachTarget>;

    /// Resizes the terminal of the container's main process (one created with `tty`).
    async fn resize_tty(&self, id: &str, size: TermSize) -> Result<()>;

    /// Removes the container and everything it holds (task, root filesystem, lease), killing
    /// its process first if it still runs. Removing a container that is (partly) gone succeeds.
    async fn delete(&self, id: &str) -> Result<()>;

    /// Every container in the runtime's namespace, with its labels and task state: how the
    /// agent adopts its containers after a restart.
    async fn list(&self) -> Result<Vec<ContainerInfo>>;
}
