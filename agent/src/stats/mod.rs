//! Resource usage of the node, its pods and their containers, read from cgroups when asked
//! and served on the agent's API as kubelet serves it: the resource metrics endpoint
//! (`/metrics/resource`, which metrics-server and skiff's control plane scrape) and the
//! Summary API (`/stats/summary`).

mod collect;
mod node;
pub mod prometheus;
mod rate;
pub mod summary;
mod usage;

use std::path::PathBuf;

pub use collect::Collector;
pub use node::{HostFiles, MemInfo, parse_boot_time, parse_meminfo};
pub use rate::{MIN_WINDOW, RateTracker};
pub use usage::{ContainerUsage, NodeUsage, PodUsage, Snapshot, Usage};

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading the node's cgroup: {0}")]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error("listing containers: {0}")]
    Runtime(#[from] crate::runtime::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no {what}")]
    Missing { path: PathBuf, what: &'static str },
}
