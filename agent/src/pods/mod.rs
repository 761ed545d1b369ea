//! Pods on this node: admission, the per-pod lifecycle, restarts with back-off, and the
//! status the agent reports.
//!
//! Pure rules ([`plan`], [`phase`], [`status`], [`record`], [`admission`], [`env`],
//! [`container_spec`]) decide; one [`worker::PodWorker`] task per pod carries them out
//! against the runtime, sandbox, volumes and cgroups, and [`manager::PodManager`] feeds the
//! workers from the API.

pub mod admission;
mod adopt;
pub mod api;
pub mod backoff;
pub mod container_spec;
pub mod context;
pub mod env;
pub mod events;
pub mod images;
pub mod manager;
mod metrics;
pub mod phase;
pub mod plan;
pub mod record;
pub mod start;
pub mod status;
pub mod stop;
pub mod worker;
mod worker_msgs;
mod worker_stop;
