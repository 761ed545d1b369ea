//! Container probes and lifecycle hooks, as kubelet runs them.
//!
//! [`spawn_prober`] starts one liveness, readiness or startup prober for one container: a
//! tokio task that probes on the probe's schedule (exec through [`Runtime::exec_sync`],
//! httpGet, tcpSocket, gRPC health), applies its success and failure thresholds with the pure
//! [`ProbeState`], and reports what the pod logic needs through [`ProbeEvent`]s: the
//! thresholded result whenever it changes, and kubelet's `Unhealthy` / `ProbeWarning` event
//! text for each attempt that failed or warned. Dropping the [`ProberHandle`] stops it.
//!
//! How the pod logic drives them, as kubelet does: for a container with a startup probe,
//! spawn only the startup prober; on its `Changed { success: true }` spawn the liveness and
//! readiness probers with [`spawn_prober_since`] and the container's start time (their
//! initial delays count from the start). A container is not ready until its readiness prober
//! reports `Changed { success: true }` (no readiness probe: ready once started). On a liveness
//! or startup `Changed { success: false }` the prober stops by itself and the container is
//! killed and restarted per the restart policy; the new container gets new probers.
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
mod metrics;
mod net;
mod prober;
mod spec;
mod state;
mod target;
mod tls;

pub use error::{ProbeError, ProbeProblem};
pub use event::{ProbeEvent, ProbeKind};
pub use lifecycle::{pod_desc, run_handler};
pub use metrics::forget_pod;
pub use prober::{ProberHandle, spawn_prober, spawn_prober_since};
pub use state::ProbeState;
pub use target::{PodIdentity, ProbeTarget};
