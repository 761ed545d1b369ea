//! [`Runtime`] on containerd's gRPC API (containerd 1.6 and later), with the runc v2 shim and
//! an overlayfs snapshotter. No CRI plugin is involved: images are stored and unpacked through
//! the content, images, diff, snapshots and leases services, containers get an OCI spec we
//! generate, and every request carries the namespace in the `containerd-namespace` header.

mod attach;
mod containers;
mod content;
mod exec;
mod exec_stream;
mod images;
mod oom;
mod pull;
mod rootfs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use containerd_client::Client;
use containerd_client::services::v1::{
    CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
};
use containerd_client::tonic::metadata::{AsciiMetadataValue, MetadataValue};
use containerd_client::tonic::{Code, Request};

pub use images::{ImageWriter, ResolvedImage};

use super::image::gc_label;
use super::registry::{RegistryClient, RegistryConfig};
use super::stream::{AttachTarget, Exec, ExecOptions, TermSize};
use super::{
    ContainerInfo, ContainerSpec, Error, ExecOutput, ExitStatus, ImageConfig, ImageRef,
    RegistryAuth, Result, Runtime, Version,
};

const NAMESPACE_HEADER: &str = "containerd-namespace";
const LEASE_HEADER: &str = "containerd-lease";

/// How leases we create expire if we never delete them (e.g. the agent died mid-import).
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Where and how to reach containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerdConfig {
    pub socket: PathBuf,
    /// The containerd namespace everything lives in.
    pub namespace: String,
    pub snapshotter: String,
    /// The shim, e.g. `io.containerd.runc.v2`.
    pub runtime: String,
    /// runc's state directory (the shim's `root` option). Set it when several containerd
    /// instances share a machine, so equal container ids cannot collide in runc's state.
    pub runc_root: Option<PathBuf>,
    /// How images are pulled: insecure registries, extra certificate authorities.
    pub registries: RegistryConfig,
    /// Where execs' output FIFOs live while the shim opens them (a few milliseconds each).
    /// Created with mode 0700 on first use; an absolute path without `%` (the shim parses
    /// it as a URI). Default [`DEFAULT_EXEC_DIR`].
    pub exec_dir: PathBuf,
}

/// The exec directory of a runtime whose configuration does not name one: on the tmpfs
/// `/run`, since FIFOs hold no data on disk and nothing in it outlives a boot.
pub const DEFAULT_EXEC_DIR: &str = "/run/skiff/exec";

impl ContainerdConfig {
    pub fn new(socket: impl Into<PathBuf>, namespace: impl Into<String>) -> Self {
        ContainerdConfig {
            socket: socket.into(),
            namespace: namespace.into(),
            snapshotter: "overlayfs".into(),
            runtime: "io.containerd.runc.v2".into(),
            runc_root: None,
            registries: RegistryConfig::default(),
            exec_dir: DEFAULT_EXEC_DIR.into(),
        }
    }
}

/// A connection to containerd in one namespace. Cheap to share behind an `Arc`.
pub struct Containerd {
    client: Client,
    cfg: ContainerdConfig,
    namespace: AsciiMetadataValue,
    /// Resolved images by target digest: content is immutable, so entries never go stale.
    resolved: Mutex<HashMap<String, Arc<ResolvedImage>>>,
    oom: oom::OomWatcher,
    /// Made on the first pull, so that a bad CA file fails pulls, not the connection.
    registry: tokio::sync::OnceCell<RegistryClient>,
    /// The write ends of containers' standard inputs (see [`attach`]).
    stdins: attach::Stdins,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl Containerd {
    /// Connects to containerd's socket. Fails if nothing listens there.
    pub async fn connect(cfg: ContainerdConfig) -> Result<Self> {
        let namespace: AsciiMetadataValue = MetadataValue::try_from(cfg.namespace.as_str())
            .map_err(|_| Error::InvalidSpec {
                id: cfg.namespace.clone(),
                reason: "namespace is not a valid header value".into(),
            })?;
        let client = Client::from_path(&cfg.socket)
            .await
            .map_err(|source| Error::Connect {
                socket: cfg.socket.clone(),
                source,
            })?;
        let oom = oom::OomWatcher::new(client.channel(), cfg.namespace.clone());
        Ok(Containerd {
            client,
            cfg,
            namespace,
            resolved: Mutex::new(HashMap::new()),
            oom,
            registry: tokio::sync::OnceCell::new(),
            stdins: attach::Stdins::default(),
        })
    }

    pub fn config(&self) -> &ContainerdConfig {
        &self.cfg
    }

    pub fn socket(&self) -> &Path {
        &self.cfg.socket
    }

    /// The raw client, for what this layer does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A request in our namespace.
    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        r
    }

    /// A request in our namespace whose new resources the lease protects from the garbage
    /// collector.
    pub(crate) fn leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut r = self.req(msg);
        if let Ok(v) = MetadataValue::try_from(lease) {
            r.metadata_mut().insert(LEASE_HEADER, v);
        }
        r
    }

    /// Creates a lease that expires by itself after a day. An existing lease of that id is
    /// reused.
    pub(crate) async fn create_lease(&self, id: &str) -> Result<String> {
        let expire = (jiff::Timestamp::now() + LEASE_EXPIRY).to_string();
        let req = CreateLeaseRequest {
            id: id.to_string(),
            labels: HashMap::from([(gc_label::EXPIRE.to_string(), expire)]),
        };
        match self.client.leases().create(self.req(req)).await {
            Ok(_) => Ok(id.to_string()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(id.to_string()),
            Err(s) => Err(Error::grpc("create lease", id, s)),
        }
    }

    /// Deletes a lease; a missing lease is fine.
    pub(crate) async fn delete_lease(&self, id: &str) -> Result<()> {
        let req = DeleteLeaseRequest {
            id: id.to_string(),
            sync: false,
        };
        match self.client.leases().delete(self.req(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Error::grpc("delete lease", id, s)),
        }
    }
}

/// A name no other call of this process (or another process) makes at the same time.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn to_system_time(t: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    if secs == 0 && nanos == 0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[async_trait]
impl Runtime for Containerd {
    async fn version(&self) -> Result<Version> {
        let v = self
            .client
            .version()
            .version(self.req(()))
            .await
            .map_err(|s| Error::grpc("version", self.cfg.socket.display().to_string(), s))?
            .into_inner();
        Ok(Version {
            version: v.version,
            revision: v.revision,
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.get_image(image).await?.is_some())
    }

    async fn image_config(&self, image: &str) -> Result<ImageConfig> {
        Ok(self.resolve_image(image).await?.config_for(image))
    }

    async fn import_archive(&self, path: &Path) -> Result<Vec<ImageRef>> {
        self.import_archive_file(path).await
    }

    async fn pull_image(&self, image: &str, auth: &[RegistryAuth]) -> Result<ImageRef> {
        self.pull(image, auth).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.create(spec).await
    }

    async fn start(&self, id: &str) -> Result<u32> {
        self.start_task(id).await
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus> {
        self.wait_task(id).await
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.kill_task(id, signal, false).await
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        self.exec_in(id, cmd, timeout).await
    }

    async fn exec(&self, id: &str, opts: &ExecOptions) -> Result<Exec> {
        self.exec_stream(id, opts).await
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachTarget> {
        self.attach_target(id, stdin).await
    }

    async fn resize_tty(&self, id: &str, size: TermSize) -> Result<()> {
        self.resize_main_tty(id, size).await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.remove(id).await
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.list_containers().await
    }
}
