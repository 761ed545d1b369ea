//! Container probes and lifecycle hooks, as kubelet runs them.
//!
//! [`spawn_prober`] starts one liveness, readiness or startup prober for one container: a
//! tokio task that probes on the probe's schedule (exec through [`Runtime::exec_sync`],
//! httpGet, tcpSocket, gRPC health), applies its success and failure thresholds with the pure
//! [`ProbeState`], and reports what the pod logic needs through [`ProbeEvent`]s: the
//! thresholded result whenever it changes, and kubelet's `Unhealthy` / `ProbeWarning` event
//! text for each attempt that failed or warned. Dropping the [`ProberHandle`] stops it.
//!
//! [`run_handler`] runs a postStart or preStop [`LifecycleHandler`] (exec, httpGet, sleep)
//! once and returns kubelet's `FailedPostStartHook` / `FailedPreStopHook` message when it fails.
//!
//! Messages are spelled as kubelet 1.33 spells them (`HTTP probe failed with statuscode: 500`,
//! `dial tcp 10.0.0.5:81: connect: connection refused`, ...), since people and tools match on
//! them.
//!
//! [`Runtime::exec_sync`]: crate::runtime::Runtime::exec_sync
//! [`LifecycleHandler`]: k8s_openapi::api::core::v1::LifecycleHandler

mod action;
mod error;
mod event;
mod exec;
mod gofmt;
mod grpc;
mod http;
mod lifecycle;
mod net;
mod prober;
mod spec;
mod state;
mod target;
mod tls;

pub use error::{ProbeError, ProbeProblem};
pub use event::{ProbeEvent, ProbeKind};
pub use lifecycle::{pod_desc, run_handler};
pub use prober::{ProberHandle, spawn_prober, spawn_prober_since};
pub use state::ProbeState;
pub use target::ProbeTarget;
