//! One reading of the node, its pods and their containers.

use std::time::SystemTime;

/// CPU and memory of one cgroup at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// When the cgroup files were read.
    pub time: SystemTime,
    /// CPU time consumed since the cgroup was made, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// The CPU rate since an earlier reading, in billionths of a core; `None` until there
    /// is an earlier reading far enough back.
    pub usage_nano_cores: Option<u64>,
    /// Memory charged, page cache included.
    pub memory_usage_bytes: u64,
    /// Memory charged less inactive file pages: what kubelet calls the working set.
    pub memory_working_set_bytes: u64,
}

/// A container's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub start_time: Option<SystemTime>,
    pub usage: Usage,
}

/// A pod's reading: its own cgroup (every container included) and each running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub start_time: Option<SystemTime>,
    /// The pod cgroup's usage; `None` when it could not be read.
    pub usage: Option<Usage>,
    pub containers: Vec<ContainerUsage>,
}

/// The node's reading: the whole machine, as the root cgroup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    /// When the machine booted.
    pub start_time: Option<SystemTime>,
    pub usage: Usage,
    /// Memory capacity less the working set, when the capacity is known.
    pub available_bytes: Option<u64>,
}

/// Everything one collection read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub node_name: String,
    /// When the collection started.
    pub time: SystemTime,
    pub node: NodeUsage,
    /// Pods with at least one running container, sorted by namespace and name.
    pub pods: Vec<PodUsage>,
}
