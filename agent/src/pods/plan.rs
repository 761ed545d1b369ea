//! The pod's next steps, decided from its container records alone (kubelet's
//! `computePodActions`): which container to start, which to stop, when to look again,
//! and whether the pod is finished. Pure, so every rule is unit-tested without a runtime.

use tokio::time::Instant;

use super::phase::{Phase, RestartPolicy, phase};
use super::record::{ContainerRecord, Kind, ProbeState, State};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) the container: image, configuration, create, start.
    Start(String),
    /// Stop the running container; it restarts afterwards as the policy says.
    Kill { name: String, reason: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The earliest moment a back-off ends: look again then.
    pub wake_at: Option<Instant>,
    /// Init containers are still running (or waiting) before the app containers.
    pub initializing: bool,
    /// Every app container is done for good: the pod ends in this phase.
    pub finished: Option<Phase>,
}

impl Plan {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Starts `r` now or after its back-off.
    fn start(&mut self, r: &ContainerRecord, now: Instant) {
        match r.not_before {
            Some(t) if t > now => self.wake(t),
            _ => self.actions.push(Action::Start(r.name.clone())),
        }
    }
}

/// Whether an exited container of this kind runs again under `policy`.
pub fn restarts(policy: RestartPolicy, kind: Kind, exit_code: i32) -> bool {
    match kind {
        Kind::Sidecar => true,
        Kind::Init => exit_code != 0 && policy.retries_init(),
        Kind::App => policy.restarts(exit_code),
    }
}

/// Why a running container must be stopped, if it must.
fn kill_reason(r: &ContainerRecord) -> Option<String> {
    if r.busy || r.stop_reason.is_some() {
        return None;
    }
    if r.startup == ProbeState::Failure {
        return Some(format!(
            "Container {} failed startup probe, will be restarted",
            r.name
        ));
    }
    if r.liveness == ProbeState::Failure {
        return Some(format!(
            "Container {} failed liveness probe, will be restarted",
            r.name
        ));
    }
    None
}

/// The pod's phase from its records.
pub fn pod_phase(policy: RestartPolicy, records: &[ContainerRecord]) -> Phase {
    let init: Vec<_> = records
        .iter()
        .filter(|r| r.kind == Kind::Init)
        .map(ContainerRecord::observed)
        .collect();
    let app: Vec<_> = records
        .iter()
        .filter(|r| r.kind == Kind::App)
        .map(ContainerRecord::observed)
        .collect();
    phase(policy, &init, &app)
}

/// Decides what to do next. `records` are in pod order: init containers, then app ones.
pub fn plan(policy: RestartPolicy, records: &[ContainerRecord], now: Instant) -> Plan {
    let mut p = Plan::default();

    let phase = pod_phase(policy, records);
    if phase.is_terminal() {
        // Sidecars outlive nothing: once the app containers are done, they stop too.
        for r in records.iter().filter(|r| r.kind == Kind::Sidecar) {
            if r.is_running() && !r.busy && r.stop_reason.is_none() {
                p.actions.push(Action::Kill {
                    name: r.name.clone(),
                    reason: "Stopping sidecar as the pod has finished".into(),
                });
            }
        }
        if !records.iter().any(|r| r.is_running() || r.busy) {
            p.finished = Some(phase);
        }
        return p;
    }

    // Init containers, one after the other; a sidecar only has to be started. Once all of
    // that happened, a restarting sidecar holds nothing back.
    let initialized = records.iter().all(|r| match r.kind {
        Kind::Init => matches!(&r.state, State::Terminated(t) if t.exit_code == 0),
        Kind::Sidecar => r.ever_started,
        Kind::App => true,
    });
    if !initialized {
        p.initializing = true;
        for r in records.iter().filter(|r| r.kind != Kind::App) {
            if r.busy {
                break;
            }
            match (&r.state, r.kind) {
                (State::Running { .. }, Kind::Sidecar) => {
                    if let Some(reason) = kill_reason(r) {
                        p.actions.push(Action::Kill {
                            name: r.name.clone(),
                            reason,
                        });
                    }
                    if r.ever_started {
                        continue;
                    }
                    break;
                }
                (State::Running { .. }, _) => break,
                (State::Terminated(t), Kind::Init) if t.exit_code == 0 => continue,
                (State::Terminated(t), kind) if !restarts(policy, kind, t.exit_code) => break,
                _ => {
                    p.start(r, now);
                    break;
                }
            }
        }
        return p;
    }
    // Sidecars keep running (and restarting) beside the app containers.
    for r in records.iter().filter(|r| r.kind != Kind::Init) {
        step_running(&mut p, policy, r, now);
    }
    p
}

/// A container that should be running: started, restarted, or stopped for a probe.
fn step_running(p: &mut Plan, policy: RestartPolicy, r: &ContainerRecord, now: Instant) {
    if r.busy {
        return;
    }
    match &r.state {
        State::Running { .. } => {
            if let Some(reason) = kill_reason(r) {
                p.actions.push(Action::Kill {
                    name: r.name.clone(),
                    reason,
                });
            }
        }
        State::Terminated(t) => {
            if restarts(policy, r.kind, t.exit_code) {
                p.start(r, now);
            }
        }
        State::Waiting { .. } => p.start(r, now),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
