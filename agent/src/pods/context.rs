//! What every pod worker of a node shares: the runtime, the sandbox, volume and cgroup
//! managers, the API, the event sink, the image service and the node's settings.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::api::PodApi;
use super::events::EventSink;
use super::images::ImageService;
use crate::cgroups::CgroupManager;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::volumes::{Allocatable, VolumeManager};

/// Node-wide settings of the pod logic.
#[derive(Debug, Clone)]
pub struct PodSettings {
    pub node_name: String,
    /// The node's addresses (status.hostIPs; the address probes of host-network pods use).
    pub node_ips: Vec<IpAddr>,
    /// Container logs go to `<log_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    pub log_dir: PathBuf,
    /// The logger the container's shim runs (the agent binary), and how it rotates;
    /// `None` has the shim append raw output to the file.
    pub logger: Option<(PathBuf, crate::logs::Rotation)>,
    /// Per-container files (termination messages) go to `<state_dir>/<uid>/containers/`;
    /// the sandbox and volumes keep theirs beside them.
    pub state_dir: PathBuf,
    pub allocatable: Allocatable,
    /// The node's memory, for oom_score_adj.
    pub memory_capacity: u64,
}

/// The shared context of the pod workers.
pub struct PodContext<A> {
    pub settings: PodSettings,
    pub runtime: Arc<dyn Runtime>,
    pub sandbox: Arc<Sandbox>,
    pub volumes: Arc<VolumeManager>,
    pub cgroups: Arc<dyn CgroupManager>,
    pub api: Arc<A>,
    pub events: Arc<dyn EventSink>,
    pub images: ImageService,
}

impl<A: PodApi> PodContext<A> {
    /// The pod's log directory, as kubelet names it.
    pub fn pod_log_dir(&self, pod: &Pod) -> PathBuf {
        self.settings.log_dir.join(format!(
            "{}_{}_{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        ))
    }

    /// The log file of one start of a container.
    pub fn log_path(&self, pod: &Pod, container: &str, attempt: u32) -> PathBuf {
        self.pod_log_dir(pod)
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// The agent's own files of a pod.
    pub fn pod_state_dir(&self, uid: &str) -> PathBuf {
        self.settings.state_dir.join(uid)
    }

    /// The file bind-mounted at a container's terminationMessagePath.
    pub fn termination_log(&self, uid: &str, container_id: &str) -> PathBuf {
        self.pod_state_dir(uid)
            .join("containers")
            .join(container_id)
    }

    pub fn state_root(&self) -> &Path {
        &self.settings.state_dir
    }
}
