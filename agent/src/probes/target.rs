use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Container;

use crate::runtime::Runtime;

/// Where and how to reach one running container.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The host for httpGet, tcpSocket and grpc when the probe names none: the pod's IP, or
    /// the node's for hostNetwork pods.
    pub pod_ip: Option<IpAddr>,
    /// The container's runtime id, for exec.
    pub container_id: String,
    /// Runs exec probes and hooks ([`Runtime::exec_sync`]).
    pub runtime: Arc<dyn Runtime>,
    /// The container's spec: its name, named ports and environment.
    pub container: Container,
    /// Whose container it is, for metrics.
    pub pod: PodIdentity,
}

/// A pod's namespace, name and uid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodIdentity {
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod) -> Self {
        PodIdentity {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("pod_ip", &self.pod_ip)
            .field("container_id", &self.container_id)
            .field("container", &self.container.name)
            .finish_non_exhaustive()
    }
}
