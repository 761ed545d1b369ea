//! The resource metrics pipeline, in-process (what metrics-server does beside a
//! Kubernetes control plane): a scraper reads every Ready node's `/metrics/resource`
//! each `--metric-resolution`, a store keeps the last two readings per node and container,
//! and the API server answers `metrics.k8s.io/v1beta1` from it, for `kubectl top` and the
//! HorizontalPodAutoscaler.

pub mod format;
pub mod parse;
pub mod scraper;
pub mod serve;
pub mod storage;

pub use serve::{GROUP, VERSION, group_entry, handle, handles};
pub use storage::{MetricsStore, NodeUsage, PodUsage, Usage, Window};
