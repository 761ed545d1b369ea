//! The prober task: probe on schedule, threshold, report.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use super::action::Attempt;
use super::metrics;
use super::spec::{ProbeSpec, Timing};
use super::{ProbeError, ProbeEvent, ProbeKind, ProbeState, ProbeTarget};

/// A running prober. Dropping it stops the probing (an attempt in flight is abandoned).
#[derive(Debug)]
pub struct ProberHandle {
    task: tokio::task::AbortHandle,
}

impl ProberHandle {
    /// Whether the prober has stopped by itself: after a liveness or startup failure (the
    /// container is to be restarted), after a startup success, or when the receiver of its
    /// events is gone.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing a container that starts now; see [`spawn_prober_since`].
pub fn spawn_prober(
    kind: ProbeKind,
    probe: &Probe,
    target: ProbeTarget,
    tx: UnboundedSender<ProbeEvent>,
) -> Result<ProberHandle, ProbeError> {
    spawn_prober_since(kind, probe, target, Instant::now(), tx)
}

/// Starts probing, in a tokio task, a container that started at `started_at`:
/// `initialDelaySeconds` counts from then, as with kubelet (so a liveness prober started
/// once the startup probe succeeded, or for a container adopted after an agent restart,
/// does not wait the delay again). The probe is checked and resolved against the target
/// first; a probe that cannot run is an error and starts nothing. Must be called within a
/// tokio runtime.
///
/// A prober for a container that started long ago begins at a random point of its first
/// period, so the probers of many adopted containers do not all fire together.
pub fn spawn_prober_since(
    kind: ProbeKind,
    probe: &Probe,
    target: ProbeTarget,
    started_at: Instant,
    tx: UnboundedSender<ProbeEvent>,
) -> Result<ProberHandle, ProbeError> {
    let spec = ProbeSpec::new(kind, probe, &target)?;
    let first = first_probe_at(started_at, &spec.timing, Instant::now(), random_fraction());
    let span = tracing::debug_span!("prober", container = %target.container.name, kind = %kind);
    let task = tokio::spawn(run(kind, spec, target, first, tx).instrument(span));
    Ok(ProberHandle {
        task: task.abort_handle(),
    })
}

/// When the first probe is due: the initial delay after the start, or, when that moment is
/// more than a period past, at a random point of the coming period.
fn first_probe_at(started_at: Instant, timing: &Timing, now: Instant, random: f64) -> Instant {
    let due = started_at + timing.initial_delay;
    if due + timing.period < now {
        now + timing.period.mul_f64(random.clamp(0.0, 1.0))
    } else {
        due.max(now)
    }
}

/// A number in [0, 1) that differs between calls, without a random number generator: std's
/// hasher keys are random per instance.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

async fn run(
    kind: ProbeKind,
    spec: ProbeSpec,
    target: ProbeTarget,
    first: Instant,
    tx: UnboundedSender<ProbeEvent>,
) {
    let container = target.container.name.clone();
    let mut state = ProbeState::new(
        kind,
        spec.timing.success_threshold,
        spec.timing.failure_threshold,
    );
    let mut ticks = tokio::time::interval_at(first, spec.timing.period.max(Duration::from_secs(1)));
    // A probe that outlasts its period delays the next one rather than causing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let started = Instant::now();
        let attempt = spec.action.probe(&target, spec.timing.timeout).await;
        tracing::debug!(?attempt, "probed");
        metrics::probed(kind, &target, &attempt, started);
        let (success, report) = match attempt {
            Attempt::Success => (Some(true), None),
            Attempt::Warning(output) => (
                Some(true),
                Some(ProbeEvent::Warning {
                    container: container.clone(),
                    container_id: target.container_id.clone(),
                    kind,
                    message: format!("{kind} probe warning: {output}"),
                }),
            ),
            Attempt::Failure(output) => (
                Some(false),
                Some(ProbeEvent::AttemptFailed {
                    container: container.clone(),
                    container_id: target.container_id.clone(),
                    kind,
                    message: format!("{kind} probe failed: {output}"),
                }),
            ),
            // kubelet ignores an attempt that could not be made, once reported.
            Attempt::Errored { state, message } => (
                None,
                Some(ProbeEvent::AttemptFailed {
                    container: container.clone(),
                    container_id: target.container_id.clone(),
                    kind,
                    message: format!(
                        "{kind} probe errored and resulted in {state} state: {message}"
                    ),
                }),
            ),
        };
        if let Some(report) = report
            && tx.send(report).is_err()
        {
            return;
        }
        if let Some(changed) = success.and_then(|s| state.step(s)) {
            tracing::debug!(success = changed, "probe result changed");
            let event = ProbeEvent::Changed {
                container: container.clone(),
                container_id: target.container_id.clone(),
                kind,
                success: changed,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
        if state.done() {
            tracing::debug!(result = ?state.result(), "probing done");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(initial_delay: u64, period: u64) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(initial_delay),
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }

    #[test]
    fn first_probe_after_the_initial_delay() {
        let start = Instant::now();
        let t = timing(5, 10);
        assert_eq!(
            first_probe_at(start, &t, start, 0.7),
            start + Duration::from_secs(5)
        );
        // Spawned a little late: as soon as possible.
        let now = start + Duration::from_secs(7);
        assert_eq!(first_probe_at(start, &t, now, 0.7), now);
        // Long after the start (adopted, or after a startup probe): spread over a period.
        let now = start + Duration::from_secs(60);
        assert_eq!(
            first_probe_at(start, &t, now, 0.5),
            now + Duration::from_secs(5)
        );
        assert_eq!(first_probe_at(start, &t, now, 0.0), now);
    }

    #[test]
    fn random_fractions_vary_within_range() {
        let samples: Vec<f64> = (0..16).map(|_| random_fraction()).collect();
        assert!(samples.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
