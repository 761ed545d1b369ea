//! Probe results as kubelet counts them: `prober_probe_total` and
//! `prober_probe_duration_seconds`, per container.

use std::sync::LazyLock;

use skiff_api::prom::{self, CounterVec, HistogramVec};
use tokio::time::Instant;

use super::action::Attempt;
use super::{PodIdentity, ProbeKind, ProbeTarget};

static PROBES: LazyLock<CounterVec> =
    LazyLock::new(|| {
        prom::global().counter(
        "prober_probe_total",
        "Cumulative number of a liveness, readiness or startup probe for a container by result.",
        &["probe_type", "result", "container", "pod", "namespace", "pod_uid"],
    )
    });

static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prom::global().histogram(
        "prober_probe_duration_seconds",
        "Duration in seconds for a probe response.",
        &["probe_type", "container", "pod", "namespace"],
        prom::LATENCY_BUCKETS,
    )
});

pub(super) fn probed(kind: ProbeKind, target: &ProbeTarget, attempt: &Attempt, started: Instant) {
    let result = match attempt {
        Attempt::Success | Attempt::Warning(_) => "successful",
        Attempt::Failure(_) => "failed",
        Attempt::Errored { .. } => "unknown",
    };
    let kind = kind.to_string();
    let p = &target.pod;
    let c = target.container.name.as_str();
    PROBES
        .with(&[&kind, result, c, &p.name, &p.namespace, &p.uid])
        .inc();
    DURATION
        .with(&[&kind, c, &p.name, &p.namespace])
        .observe(started.elapsed().as_secs_f64());
}

/// Drops the series of a pod that is gone.
pub fn forget_pod(pod: &PodIdentity) {
    PROBES.remove_where(&[("pod_uid", &pod.uid)]);
    DURATION.remove_where(&[("pod", &pod.name), ("namespace", &pod.namespace)]);
}
