//! The scheduler's Prometheus metrics, by kube-scheduler's names.

use std::sync::LazyLock;
use std::time::Instant;

use skiff_api::prom::{self, CounterVec, HistogramVec};

use super::pod_info::SCHEDULER_NAME;

static ATTEMPTS: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "scheduler_schedule_attempts_total",
        "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
        &["result", "profile"],
    )
});

static ATTEMPT_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "scheduler_scheduling_attempt_duration_seconds",
        "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
        &["result", "profile"],
        &prom::exponential_buckets(0.001, 2.0, 15),
    )
});

static PREEMPTIONS: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "scheduler_preemption_attempts_total",
        "Total preemption attempts in the cluster till now",
        &[],
    )
});

/// Records one attempt: `scheduled`, `unschedulable` or `error`.
pub(super) fn attempt(result: &'static str, started: Instant) {
    ATTEMPTS.with(&[result, SCHEDULER_NAME]).inc();
    ATTEMPT_DURATION
        .with(&[result, SCHEDULER_NAME])
        .observe_since(started);
}

/// A bind the API server refused.
pub(super) fn bind_error() {
    ATTEMPTS.with(&["error", SCHEDULER_NAME]).inc();
}

pub(super) fn preemption() {
    PREEMPTIONS.with(&[]).inc();
}
