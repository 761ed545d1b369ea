//! Taking a pod back after the agent restarted: the containers still running in the
//! runtime are followed again (not restarted), exits that happened meanwhile are handled as
//! exits, and what the last status said about finished containers is believed — unless the
//! sandbox is new, in which case everything starts again, as kubelet does.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

use super::api::PodApi;
use super::record::{ContainerRecord, State, Terminated};
use super::worker::{PodMsg, PodWorker};
use crate::runtime::{ContainerInfo, ExitStatus, TaskStatus};

fn terminated(t: &ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|s| s.0),
        finished_at: t.finished_at.as_ref().map_or_else(Timestamp::now, |f| f.0),
        container_id: t
            .container_id
            .as_deref()
            .map(strip_scheme)
            .unwrap_or_default()
            .to_string(),
    }
}

fn strip_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

fn statuses(pod: &Pod) -> Vec<&ContainerStatus> {
    pod.status
        .iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect()
}

/// What the pod's last status said about each container that is no longer running:
/// terminated states and last states.
pub(super) fn seed_finished(pod: &Pod, records: &mut [ContainerRecord]) {
    for cs in statuses(pod) {
        let Some(r) = records.iter_mut().find(|r| r.name == cs.name) else {
            continue;
        };
        if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            r.state = State::Terminated(terminated(t));
        }
        if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
            r.last_state = Some(terminated(t));
        }
    }
}

impl<A: PodApi> PodWorker<A> {
    /// Adopts the runtime's containers of this pod. `sandbox_adopted` says whether the
    /// pod's sandbox survived; without it, old containers cannot be kept.
    pub(super) async fn adopt(&mut self, found: Vec<ContainerInfo>, sandbox_adopted: bool) {
        if sandbox_adopted {
            seed_finished(&self.pod, &mut self.records);
        }
        let mut keep: Vec<(String, ContainerInfo)> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        for c in found {
            let Some(meta) = c.meta.clone() else {
                continue;
            };
            let wanted = sandbox_adopted
                && self.records.iter().any(|r| r.name == meta.container_name)
                && matches!(c.task.status, TaskStatus::Running | TaskStatus::Stopped);
            // Only the latest attempt of each container is kept.
            let kept = keep
                .iter()
                .position(|(n, _)| *n == meta.container_name)
                .map(|i| (i, keep[i].1.meta.as_ref().map_or(0, |m| m.attempt)));
            match (wanted, kept) {
                (false, _) => remove.push(c.id),
                (true, Some((_, attempt))) if attempt >= meta.attempt => remove.push(c.id),
                (true, Some((i, _))) => {
                    let older = std::mem::replace(&mut keep[i].1, c);
                    remove.push(older.id);
                }
                (true, None) => keep.push((meta.container_name.clone(), c)),
            }
        }
        for id in remove {
            tracing::info!(container = %id, "removing a container left from before the restart");
            if let Err(e) = self.ctx.runtime.delete(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove an old container");
            }
        }
        for (name, c) in keep {
            let attempt = c.meta.as_ref().map_or(0, |m| m.attempt);
            let started_at = statuses(&self.pod)
                .into_iter()
                .find(|cs| {
                    cs.name == name
                        && cs.container_id.as_deref().map(strip_scheme) == Some(c.id.as_str())
                })
                .and_then(|cs| cs.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                .map(|t| t.0)
                .or_else(|| c.created_at.and_then(|t| Timestamp::try_from(t).ok()))
                .unwrap_or_else(Timestamp::now);
            let Some(rec) = self.record(&name) else {
                continue;
            };
            // `started` counts a restart when the record had run before: adopting the
            // same run must not.
            rec.started_once = false;
            rec.started(c.id.clone(), started_at, attempt);
            rec.restart_count = attempt;
            tracing::info!(container = %name, id = %c.id, "adopted container");
            match (c.task.status, c.task.exit) {
                (TaskStatus::Running, _) => self.follow(&name, &c.id),
                (_, exit) => {
                    let _ = self.tx.send(PodMsg::Exited {
                        name: name.clone(),
                        container_id: c.id.clone(),
                        status: exit.unwrap_or(ExitStatus {
                            code: 137,
                            exited_at: None,
                            oom_killed: false,
                        }),
                    });
                }
            }
        }
    }
}
