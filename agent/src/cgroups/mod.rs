//! Pod cgroups, laid out as kubelet's cgroupfs driver does:
//!
//! ```text
//! <root>                      e.g. /kubepods: node allocatable
//! ├── pod<uid>                Guaranteed pods
//! │   └── <container id>      created by runc from the OCI spec's cgroupsPath
//! ├── burstable/pod<uid>
//! └── besteffort/pod<uid>
//! ```
//!
//! [`open`] picks the cgroup v1 or v2 backend once, from what is mounted at the
//! cgroup mount root, and hands back a [`CgroupManager`]. The pure rules —
//! [`qos_class`], [`pod_resources`], [`container_resources`] and the unit
//! conversions — follow kubelet so a pod gets the same limits here as there.
//! Both the mount root and the pod tree root are parameters, so tests and several
//! agents on one machine each get their own tree.

mod backend;
mod capacity;
mod error;
mod fs;
mod layout;
mod manager;
mod qos;
mod resources;
mod stats;
mod v1;
mod v2;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;

pub use capacity::{NodeAllocatable, NodeCapacity, Reservations, node_capacity};
pub use error::CgroupError;
pub use layout::{Layout, PodCgroup};
pub use qos::{QosClass, compute_qos_class, qos_class};
pub use resources::{
    CFS_PERIOD_US, CgroupResources, MAX_SHARES, MIN_CFS_QUOTA_US, MIN_SHARES, SHARES_PER_CPU,
    burstable_cpu_shares, container_resources, milli_cpu_to_quota, milli_cpu_to_shares,
    pod_request_totals, pod_resources, shares_to_weight,
};
pub use stats::CgroupStats;

use manager::Manager;

/// The cgroup interface the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// One hierarchy per controller (including hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Pod cgroups on one host. Cgroup files are in-memory kernel objects, so every
/// method but [`CgroupManager::remove_pod`] is a quick synchronous call; removal
/// waits for the last processes to leave, without blocking the runtime.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn version(&self) -> CgroupVersion;

    /// Where pods go.
    fn layout(&self) -> &Layout;

    /// Creates the root, `burstable` and `besteffort` cgroups and gives
    /// `besteffort` the minimum cpu shares. Idempotent; call at start-up.
    fn ensure_qos_tree(&self) -> Result<(), CgroupError>;

    /// Applies node-allocatable limits to the root
    /// ([`NodeCapacity::pod_tree_resources`]) and the burstable class's cpu shares
    /// ([`burstable_cpu_shares`]), as kubelet refreshes them when pods come and go.
    fn update_qos_tree(
        &self,
        node: &CgroupResources,
        burstable_cpu_shares: u64,
    ) -> Result<(), CgroupError>;

    /// Creates (or re-applies) pod `uid`'s cgroup under its QoS class with `res`
    /// (normally [`pod_resources`]).
    fn create_pod(
        &self,
        uid: &str,
        qos: QosClass,
        res: &CgroupResources,
    ) -> Result<PodCgroup, CgroupError>;

    /// Applies new values to an existing pod cgroup.
    fn update_pod(&self, uid: &str, res: &CgroupResources) -> Result<PodCgroup, CgroupError>;

    /// The pod's cgroup, if it has one.
    fn pod(&self, uid: &str) -> Result<Option<PodCgroup>, CgroupError>;

    /// Removes the pod's cgroup (and any container cgroups left below it) once its
    /// containers are gone, retrying while processes linger up to the configured
    /// timeout; it kills nothing. An absent pod cgroup is success.
    fn remove_pod<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), CgroupError>>;

    /// Usage of the pod's cgroup, containers included.
    fn pod_stats(&self, uid: &str) -> Result<CgroupStats, CgroupError>;

    /// Usage of any cgroup path, e.g. a container's
    /// ([`PodCgroup::container_path`]).
    fn container_stats(&self, path: &str) -> Result<CgroupStats, CgroupError>;

    /// OOM kills counted for a cgroup path; `None` when the kernel does not count
    /// them. v2 counts the whole subtree; v1 counts kills of the cgroup's own tasks.
    fn oom_kill_count(&self, path: &str) -> Result<Option<u64>, CgroupError>;

    /// Removes the whole pod tree (QoS cgroups and root) once no process is left in it.
    fn remove_tree(&self) -> Result<(), CgroupError>;

    /// Uids of every pod with a cgroup in the tree, sorted, so cgroups left by pods
    /// that no longer exist can be removed after a crash.
    fn list_pods(&self) -> Result<Vec<String>, CgroupError>;

    /// The OCI `linux.resources` value for a container with `res` (normally
    /// [`container_resources`]), with swap disabled in the form this host takes.
    fn oci_resources(&self, res: &CgroupResources) -> serde_json::Value;

    /// The same values as [`CgroupManager::oci_resources`], in the form the runtime's
    /// container spec takes.
    fn container_limits(&self, res: &CgroupResources) -> crate::runtime::spec::Resources;
}

/// Where cgroups are and how the agent uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupConfig {
    /// Where the cgroup filesystems are mounted (normally `/sys/fs/cgroup`).
    pub mount_root: PathBuf,
    /// The pod tree's cgroup path (normally `/kubepods`).
    pub root: String,
    /// How long [`CgroupManager::remove_pod`] retries a busy cgroup.
    pub remove_timeout: Duration,
}

impl CgroupConfig {
    /// A configuration with the default removal timeout of 5 s.
    pub fn new(mount_root: impl Into<PathBuf>, root: impl Into<String>) -> Self {
        CgroupConfig {
            mount_root: mount_root.into(),
            root: root.into(),
            remove_timeout: Duration::from_secs(5),
        }
    }
}

/// Which cgroup interface is mounted at `mount_root`: v2 when it is a cgroup2
/// filesystem itself, v1 otherwise (a hybrid host's cgroup2 mount below it holds
/// no controllers the agent uses).
pub fn detect_version(mount_root: &Path) -> Result<CgroupVersion, CgroupError> {
    if !mount_root.is_dir() {
        return Err(CgroupError::NoCgroupfs {
            mount_root: mount_root.to_path_buf(),
        });
    }
    if mount_root.join("cgroup.controllers").exists() {
        Ok(CgroupVersion::V2)
    } else {
        Ok(CgroupVersion::V1)
    }
}

/// The manager for whatever the host runs.
pub fn open(config: &CgroupConfig) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let version = detect_version(&config.mount_root)?;
    tracing::info!(?version, mount_root = %config.mount_root.display(), root = %config.root, "cgroups");
    open_version(config, version)
}

/// The manager for a given version, without detection.
pub fn open_version(
    config: &CgroupConfig,
    version: CgroupVersion,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let layout = Layout::new(&config.root)?;
    let remove_timeout = config.remove_timeout;
    Ok(match version {
        CgroupVersion::V1 => Box::new(Manager {
            backend: v1::V1::open(&config.mount_root)?,
            version,
            layout,
            remove_timeout,
        }),
        CgroupVersion::V2 => Box::new(Manager {
            backend: v2::V2::open(&config.mount_root)?,
            version,
            layout,
            remove_timeout,
        }),
    })
}
