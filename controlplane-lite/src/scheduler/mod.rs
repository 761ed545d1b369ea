//! The scheduler: places pods that name `default-scheduler` (or no scheduler) and no
//! node, as kube-scheduler 1.33's default profile does, and binds them through
//! `pods/binding`.
//!
//! The parts, from pure to not: [`resources`], [`pod_info`] and [`node_info`] say what
//! pods ask for and nodes hold; [`plugins`] are the filters and scores; [`framework`]
//! runs one cycle over a [`snapshot::Snapshot`]; [`preemption`] finds room when nothing
//! fits; [`queue`] orders pending pods and backs off failures; [`cache`] keeps the
//! snapshot current, including pods placed but not yet bound; [`main_loop`] is the task
//! that ties them to the API server.

pub mod cache;
pub mod framework;
#[cfg(test)]
mod loop_tests;
pub mod main_loop;
mod metrics;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod snapshot;
#[cfg(test)]
mod testutil;

pub use main_loop::{Scheduler, Stats, start};
