//! Per-controller Prometheus metrics, by kube-controller-manager's workqueue names: how
//! long each sync takes, how deep the queue is, how often a sync fails and is retried.

use std::sync::LazyLock;
use std::time::Instant;

use skiff_api::prom::{self, CounterVec, GaugeVec, HistogramVec};

static WORK_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes.",
        &["name"],
        &prom::exponential_buckets(1e-8, 10.0, 10),
    )
});

static DEPTH: LazyLock<GaugeVec> = LazyLock::new(|| {
    prom::global().gauge("workqueue_depth", "Current depth of workqueue.", &["name"])
});

static RETRIES: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "workqueue_retries_total",
        "Total number of retries handled by workqueue.",
        &["name"],
    )
});

static SYNCS: LazyLock<CounterVec> = LazyLock::new(|| {
    prom::global().counter(
        "controller_sync_total",
        "Syncs (reconciles) run per controller, by result.",
        &["controller", "result"],
    )
});

/// The series of one controller.
pub(super) struct Workqueue {
    name: &'static str,
    duration: prom::Histogram,
    depth: prom::Gauge,
}

impl Workqueue {
    pub(super) fn of(name: &'static str) -> Self {
        Workqueue {
            name,
            duration: WORK_DURATION.with(&[name]),
            depth: DEPTH.with(&[name]),
        }
    }

    pub(super) fn depth(&self, len: usize) {
        self.depth.set(len as f64);
    }

    pub(super) fn worked(&self, started: Instant, ok: bool) {
        self.duration.observe_since(started);
        let result = if ok { "success" } else { "error" };
        SYNCS.with(&[self.name, result]).inc();
        if !ok {
            RETRIES.with(&[self.name]).inc();
        }
    }
}
