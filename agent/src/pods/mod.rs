//! Pods on this node: admission, the per-pod lifecycle, restarts with back-off, and the
//! status the agent reports.

pub mod admission;
pub mod api;
pub mod backoff;
pub mod container_spec;
pub mod env;
pub mod events;
pub mod images;
pub mod phase;
pub mod plan;
pub mod record;
pub mod status;
