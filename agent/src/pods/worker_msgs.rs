//! How a pod worker takes what happens to its containers: starts that finished, exits,
//! probe results, failed hooks, and changes to the pod object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use tracing::Instrument;

use super::api::PodApi;
use super::events::EventType;
use super::plan::restarts;
use super::record::{ContainerRecord, Kind, ProbeState, State, Terminated, spec_hash};
use super::start::{StartError, Started};
use super::stop::{grace_period, stop_container};
use super::worker::{PodMsg, PodWorker, Running, Task};
use crate::probes::{self, ProbeEvent, ProbeKind, ProbeTarget};
use crate::runtime::ExitStatus;

/// How long a configuration error (a missing ConfigMap, say) waits before the next try.
const CONFIG_RETRY: Duration = Duration::from_secs(5);
/// kubelet's limit on a termination message read from the file.
const MAX_TERMINATION_MESSAGE: usize = 4096;
/// What `FallbackToLogsOnError` takes from the end of the log.
const MAX_LOG_TAIL: usize = 2048;

impl<A: PodApi> PodWorker<A> {
    pub(super) async fn handle(&mut self, msg: PodMsg) {
        match msg {
            PodMsg::Update(pod) => self.on_update(pod),
            PodMsg::Gone => self.gone = true,
            PodMsg::Started {
                name,
                attempt,
                result,
            } => self.on_started(&name, attempt, result),
            PodMsg::Exited {
                name,
                container_id,
                status,
            } => self.on_exited(&name, &container_id, status),
            PodMsg::Probe(ev) => self.on_probe(ev),
            PodMsg::PostStartFailed {
                name,
                container_id,
                message,
            } => {
                let Some(kind) = self.record(&name).map(|r| r.kind) else {
                    return;
                };
                self.container_event(
                    &name,
                    kind,
                    EventType::Warning,
                    "FailedPostStartHook",
                    message.clone(),
                );
                let current = self
                    .record(&name)
                    .and_then(|r| r.container_id().map(str::to_string));
                if current.as_deref() == Some(container_id.as_str()) {
                    self.spawn_kill(&name, format!("PostStartHookError: {message}"));
                }
            }
            PodMsg::RefreshVolumes => {
                if self.setup.is_some() && !self.finished && !self.deleting() {
                    match self
                        .ctx
                        .volumes
                        .update(&self.pod, self.ctx.api.as_ref())
                        .await
                    {
                        Ok(changed) if !changed.is_empty() => {
                            tracing::debug!(?changed, "volumes refreshed");
                        }
                        Ok(_) => {}
                        Err(e) => self.event(EventType::Warning, "FailedMount", e.to_string()),
                    }
                }
            }
        }
    }

    fn on_update(&mut self, pod: Arc<k8s_openapi::api::core::v1::Pod>) {
        if pod.metadata.uid.as_deref() != Some(self.uid.as_str()) {
            return;
        }
        self.pod = pod;
        // Only images can change in a running pod: a new image means a new container.
        let changed: Vec<(String, u64, String)> = super::record::containers_of(&self.pod)
            .into_iter()
            .filter_map(|(c, _)| {
                let r = self.records.iter().find(|r| r.name == c.name)?;
                let h = spec_hash(c);
                (h != r.spec_hash).then(|| (c.name.clone(), h, c.image.clone().unwrap_or_default()))
            })
            .collect();
        for (name, hash, image) in changed {
            let running = if let Some(r) = self.record(&name) {
                r.spec_hash = hash;
                r.image = image;
                r.is_running()
            } else {
                false
            };
            if running {
                self.spawn_kill(
                    &name,
                    format!("Container {name} definition changed, will be restarted"),
                );
            }
        }
    }

    fn on_started(&mut self, name: &str, attempt: u32, result: Result<Started, StartError>) {
        self.starting.remove(name);
        let now = Instant::now();
        let policy = self.policy();
        let pod_name = self.full_name.clone();
        let Some(rec) = self.record(name) else { return };
        match result {
            Ok(s) => {
                rec.started(s.container_id.clone(), s.started_at, attempt);
                rec.image_id = Some(s.image_id);
                rec.pull_backoff.reset();
                self.after_start(name, &s.container_id);
            }
            Err(StartError::Waiting {
                reason,
                message,
                pull,
            }) => {
                let retry = if pull {
                    rec.pull_backoff.after_pull_failure()
                } else {
                    CONFIG_RETRY
                };
                rec.failed_to_start(reason, message, Some(now + retry));
                if pull {
                    rec.pull_back_off_from = Some(now);
                }
            }
            Err(StartError::StartFailed {
                container_id,
                message,
            }) => {
                let kind = rec.kind;
                rec.started(container_id.clone(), Timestamp::now(), attempt);
                let t = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: None,
                    finished_at: Timestamp::now(),
                    container_id,
                };
                rec.exited(t, restarts(policy, kind, 128), now, &pod_name);
            }
        }
    }

    /// A container was started: follow it and run its postStart hook.
    fn after_start(&mut self, name: &str, container_id: &str) {
        self.follow(name, container_id);
        let Some((container, _)) = self.container(name) else {
            return;
        };
        let hook = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
            .map(|handler| {
                let target = self.probe_target(&container, container_id);
                let tx = self.tx.clone();
                let (name, id) = (name.to_string(), container_id.to_string());
                let grace = grace_period(&self.pod);
                let pod_name = self.full_name.clone();
                Task(tokio::spawn(
                    async move {
                        if let Err(message) =
                            probes::run_handler(&handler, &target, &pod_name, grace).await
                        {
                            let _ = tx.send(PodMsg::PostStartFailed {
                                name,
                                container_id: id,
                                message,
                            });
                        }
                    }
                    .in_current_span(),
                ))
            });
        if let Some(r) = self.running.get_mut(name) {
            r.task = hook;
        }
    }

    /// A container runs: follow its exit and probe it.
    pub(super) fn follow(&mut self, name: &str, container_id: &str) {
        let Some((container, _)) = self.container(name) else {
            return;
        };
        let wait = {
            let runtime = self.ctx.runtime.clone();
            let tx = self.tx.clone();
            let (name, id) = (name.to_string(), container_id.to_string());
            tokio::spawn(
                async move {
                    let mut delay = Duration::from_millis(200);
                    loop {
                        match runtime.wait(&id).await {
                            Ok(status) => {
                                let _ = tx.send(PodMsg::Exited {
                                    name,
                                    container_id: id,
                                    status,
                                });
                                return;
                            }
                            Err(e) if e.is_not_found() => {
                                // Removed under us: it is not running any more.
                                let _ = tx.send(PodMsg::Exited {
                                    name,
                                    container_id: id,
                                    status: ExitStatus {
                                        code: 137,
                                        exited_at: None,
                                        oom_killed: false,
                                    },
                                });
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(container = %name, error = %e, "waiting for the container failed; retrying");
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                }
                .in_current_span(),
            )
        };
        // Probe delays count from the start of the run.
        let started = self
            .record(name)
            .and_then(|r| match &r.state {
                State::Running { started_at, .. } => Some(*started_at),
                _ => None,
            })
            .map(|t| Timestamp::now().duration_since(t).unsigned_abs())
            .map_or_else(Instant::now, |ago| {
                Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
            });
        self.running.insert(
            name.to_string(),
            Running {
                started,
                container_id: container_id.to_string(),
                _wait: Task(wait),
                probers: HashMap::new(),
                task: None,
            },
        );
        if container.startup_probe.is_some() {
            self.start_prober(name, ProbeKind::Startup);
        } else {
            self.start_prober(name, ProbeKind::Liveness);
            self.start_prober(name, ProbeKind::Readiness);
        }
    }

    pub(super) fn probe_target(
        &self,
        container: &k8s_openapi::api::core::v1::Container,
        container_id: &str,
    ) -> ProbeTarget {
        ProbeTarget {
            pod_ip: self.probe_ip(),
            container_id: container_id.to_string(),
            runtime: self.ctx.runtime.clone(),
            container: container.clone(),
            pod: probes::PodIdentity::of(&self.pod),
        }
    }

    fn start_prober(&mut self, name: &str, kind: ProbeKind) {
        let since = self.running.get(name).map(|r| r.started);
        let Some((container, _)) = self.container(name) else {
            return;
        };
        let probe = match kind {
            ProbeKind::Startup => container.startup_probe.clone(),
            ProbeKind::Liveness => container.liveness_probe.clone(),
            ProbeKind::Readiness => container.readiness_probe.clone(),
        };
        let Some(probe) = probe else { return };
        let Some(id) = self.running.get(name).map(|r| r.container_id.clone()) else {
            return;
        };
        let target = self.probe_target(&container, &id);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let forward = self.tx.clone();
        let spawned = match since {
            Some(at) => probes::spawn_prober_since(kind, &probe, target, at, tx),
            None => probes::spawn_prober(kind, &probe, target, tx),
        };
        match spawned {
            Ok(handle) => {
                // Probe events reach the worker through its own queue.
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        if forward.send(PodMsg::Probe(ev)).is_err() {
                            return;
                        }
                    }
                });
                if let Some(r) = self.running.get_mut(name) {
                    r.probers.insert(kind, handle);
                }
            }
            Err(e) => {
                let kind_name = kind.to_string();
                let c_kind = self.record(name).map_or(Kind::App, |r| r.kind);
                self.container_event(
                    name,
                    c_kind,
                    EventType::Warning,
                    "Unhealthy",
                    format!("{kind_name} probe errored: {e}"),
                );
            }
        }
    }

    fn on_probe(&mut self, ev: ProbeEvent) {
        // Results of a container that is no longer the current run are stale.
        let current = self
            .running
            .get(ev.container())
            .is_some_and(|r| r.container_id == ev.container_id());
        if !current {
            return;
        }
        let name = ev.container().to_string();
        let c_kind = self.record(&name).map_or(Kind::App, |r| r.kind);
        match ev {
            ProbeEvent::AttemptFailed { kind, message, .. } => {
                self.container_event(
                    &name,
                    c_kind,
                    EventType::Warning,
                    "Unhealthy",
                    format!("{kind} probe failed: {message}"),
                );
            }
            ProbeEvent::Warning { message, .. } => {
                self.container_event(&name, c_kind, EventType::Warning, "ProbeWarning", message);
            }
            ProbeEvent::Changed { kind, success, .. } => {
                let state = if success {
                    ProbeState::Success
                } else {
                    ProbeState::Failure
                };
                let Some(rec) = self.record(&name) else {
                    return;
                };
                match kind {
                    ProbeKind::Startup => {
                        rec.set_startup(state);
                        if success {
                            if let Some(r) = self.running.get_mut(&name) {
                                r.probers.remove(&ProbeKind::Startup);
                            }
                            self.start_prober(&name, ProbeKind::Liveness);
                            self.start_prober(&name, ProbeKind::Readiness);
                        }
                    }
                    ProbeKind::Liveness => rec.liveness = state,
                    ProbeKind::Readiness => rec.readiness = state,
                }
            }
        }
    }

    fn on_exited(&mut self, name: &str, container_id: &str, status: ExitStatus) {
        let now = Instant::now();
        let policy = self.policy();
        let pod_name = self.full_name.clone();
        let uid = self.uid.clone();
        let Some((started_at, attempt)) =
            self.records
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| match &r.state {
                    State::Running {
                        container_id: id,
                        started_at,
                    } if id == container_id => Some((*started_at, r.restart_count)),
                    // Not the current run: an older container or a stale report.
                    _ => None,
                })
        else {
            return;
        };
        self.running.remove(name);
        let code = i32::try_from(status.code).unwrap_or(i32::MAX);
        let reason = if status.oom_killed {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let policy_name = self
            .container(name)
            .and_then(|(c, _)| c.termination_message_policy);
        let message = termination_message(
            &self.ctx.termination_log(&uid, container_id),
            policy_name.as_deref(),
            code,
            &self.ctx.log_path(&self.pod, name, attempt),
        );
        let t = Terminated {
            exit_code: code,
            signal: None,
            reason: reason.into(),
            message,
            started_at: Some(started_at),
            finished_at: status
                .exited_at
                .and_then(|t| Timestamp::try_from(t).ok())
                .unwrap_or_else(Timestamp::now),
            container_id: container_id.to_string(),
        };
        let Some(rec) = self.records.iter_mut().find(|r| r.name == name) else {
            return;
        };
        let kind = rec.kind;
        let again = restarts(policy, kind, code);
        rec.exited(t, again, now, &pod_name);
        let backing_off =
            matches!(&rec.state, State::Waiting { reason, .. } if reason == "CrashLoopBackOff");
        tracing::info!(container = %name, code, reason, "container exited");
        if backing_off {
            self.container_event(
                name,
                kind,
                EventType::Warning,
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod_name}"),
            );
        }
        // The run is over; its logs stay as files, the container itself can go.
        let runtime = self.ctx.runtime.clone();
        let id = container_id.to_string();
        let term = self.ctx.termination_log(&uid, container_id);
        tokio::spawn(async move {
            if let Err(e) = runtime.delete(&id).await {
                tracing::warn!(container = %id, error = %e, "cannot remove an exited container");
            }
            let _ = std::fs::remove_file(term);
        });
    }

    /// Stops a running container for `reason` (probe failure, changed image...); it is
    /// restarted afterwards as the policy says.
    pub(super) fn spawn_kill(&mut self, name: &str, reason: String) {
        let Some((container, kind)) = self.container(name) else {
            return;
        };
        let Some(id) = self.running.get(name).map(|r| r.container_id.clone()) else {
            return;
        };
        if let Some(r) = self.running.get_mut(name) {
            r.probers.clear();
        }
        {
            let Some(rec) = self.record(name) else { return };
            if rec.busy {
                return;
            }
            rec.busy = true;
            rec.stop_reason = Some(reason.clone());
        }
        self.container_event(name, kind, EventType::Normal, "Killing", reason);
        let grace = container
            .liveness_probe
            .as_ref()
            .and_then(|p| p.termination_grace_period_seconds)
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
            .unwrap_or_else(|| grace_period(&self.pod));
        let image_name =
            crate::runtime::reference::normalize(container.image.as_deref().unwrap_or_default())
                .unwrap_or_default();
        let task = tokio::spawn(
            stop_container(
                self.ctx.clone(),
                self.pod.clone(),
                container,
                kind != Kind::App,
                id,
                image_name,
                self.probe_ip(),
                grace,
            )
            .in_current_span(),
        );
        if let Some(r) = self.running.get_mut(name) {
            r.task = Some(Task(task));
        }
    }
}

/// Seeds restart counts and last states from the status an earlier run of the agent wrote,
/// so a restarted agent keeps counting where it was.
pub(super) fn seed_from_status(
    pod: &k8s_openapi::api::core::v1::Pod,
    records: &mut [ContainerRecord],
) {
    let Some(status) = pod.status.as_ref() else {
        return;
    };
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in all {
        if let Some(r) = records.iter_mut().find(|r| r.name == cs.name) {
            r.restart_count = u32::try_from(cs.restart_count).unwrap_or(0);
            r.started_once = cs.container_id.is_some() || cs.restart_count > 0;
            r.image_id = Some(cs.image_id.clone()).filter(|i| !i.is_empty());
        }
    }
}

/// What [`flip_pull_back_off`] did.
pub(super) enum PullFlip {
    Nothing,
    /// Look again then.
    Later(Instant),
    /// The container now shows `ImagePullBackOff`.
    Flipped,
}

/// An image pull that failed shows `ErrImagePull` first; while its back-off lasts it shows
/// `ImagePullBackOff` (kubelet's sequence).
pub(super) fn flip_pull_back_off(r: &mut ContainerRecord, now: Instant) -> PullFlip {
    let Some(from) = r.pull_back_off_from else {
        return PullFlip::Nothing;
    };
    let flip_at = from + Duration::from_secs(1);
    let waiting_pull =
        matches!(&r.state, State::Waiting { reason, .. } if reason == "ErrImagePull");
    if !waiting_pull {
        r.pull_back_off_from = None;
        return PullFlip::Nothing;
    }
    if now < flip_at {
        return PullFlip::Later(flip_at);
    }
    r.state = State::Waiting {
        reason: "ImagePullBackOff".into(),
        message: Some(format!("Back-off pulling image \"{}\"", r.image)),
    };
    r.pull_back_off_from = None;
    PullFlip::Flipped
}

/// The termination message: the container's file, or with `FallbackToLogsOnError` and a
/// failure, the end of its log.
fn termination_message(
    file: &std::path::Path,
    policy: Option<&str>,
    code: i32,
    log: &std::path::Path,
) -> Option<String> {
    let read_tail = |path: &std::path::Path, max: usize, tail: bool| -> Option<String> {
        let bytes = std::fs::read(path).ok()?;
        let slice = if tail {
            &bytes[bytes.len().saturating_sub(max)..]
        } else {
            &bytes[..bytes.len().min(max)]
        };
        let s = String::from_utf8_lossy(slice).into_owned();
        (!s.is_empty()).then_some(s)
    };
    if let Some(m) = read_tail(file, MAX_TERMINATION_MESSAGE, false) {
        return Some(m);
    }
    if policy == Some("FallbackToLogsOnError") && code != 0 {
        crate::logs::reader::wait_for_writer(log, std::time::Duration::from_millis(500));
        return crate::logs::reader::tail_text(log, MAX_LOG_TAIL);
    }
    None
}
