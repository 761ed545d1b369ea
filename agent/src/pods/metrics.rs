//! Pod lifecycle metrics by kubelet's names: how long pods take to start, how long a pod
//! worker's sync takes, how many pods run.

use std::sync::LazyLock;
use std::time::Instant;

use serde_json::Value;
use skiff_api::prom::{self, GaugeVec, HistogramVec};

static POD_START: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "kubelet_pod_start_duration_seconds",
        "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
        &[],
        &[
            0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0,
            240.0, 300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
        ],
    )
});

static WORKER_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "kubelet_pod_worker_duration_seconds",
        "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
        &["operation"],
        prom::LATENCY_BUCKETS,
    )
});

static RUNNING_PODS: LazyLock<GaugeVec> = LazyLock::new(|| {
    prom::global().gauge(
        "kubelet_running_pods",
        "Number of pods that have a running pod sandbox",
        &[],
    )
});

/// One pod sync of the worker.
pub(super) fn synced(started: Instant) {
    WORKER_DURATION.with(&["sync"]).observe_since(started);
}

/// Whether a status the agent wrote shows the pod running with every container started.
pub(super) fn shows_started(status: &Value) -> bool {
    status.get("phase").and_then(Value::as_str) == Some("Running")
        && status
            .get("containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.pointer("/state/running").is_some_and(Value::is_object))
            })
}

/// The pod started, `seen` after the agent first saw it.
pub(super) fn started(seen: Instant) {
    POD_START.with(&[]).observe_since(seen);
}

/// Counts a pod with a sandbox for as long as it is alive.
pub(super) struct RunningPod(bool);

impl RunningPod {
    pub(super) fn new() -> Self {
        RunningPod(false)
    }
    pub(super) fn set(&mut self, running: bool) {
        if running != self.0 {
            RUNNING_PODS.with(&[]).add(if running { 1.0 } else { -1.0 });
            self.0 = running;
        }
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        self.set(false);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn started_means_running_with_every_container_up() {
        let up = json!({"phase": "Running", "containerStatuses": [
            {"state": {"running": {"startedAt": "x"}}}, {"state": {"running": {}}}]});
        assert!(shows_started(&up));
        let one_waiting = json!({"phase": "Running", "containerStatuses": [
            {"state": {"running": {}}}, {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
        assert!(!shows_started(&one_waiting));
        assert!(!shows_started(&json!({"phase": "Pending"})));
    }
}
