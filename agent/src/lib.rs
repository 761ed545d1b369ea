//! skiff-agent: the node agent. It registers the node, watches the pods bound to it and
//! runs them on containerd, with the pod's namespaces, CNI networking, cgroup limits,
//! volumes and probes.

pub mod cgroups;
pub mod daemon;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pods;
pub mod probes;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod streams;
pub mod volumes;
