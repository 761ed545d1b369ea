//! One pod's worker: a task that owns the pod's lifecycle on this node. It sets the pod up
//! (cgroup, volumes, sandbox), starts and restarts its containers as [`super::plan`]
//! decides, follows their exits and probes, reports the status, and when the pod is deleted
//! stops everything and removes it. Long operations (starts, stops) run on their own tasks
//! and come back as messages, so the worker always answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::api::PodApi;
use super::backoff::Backoff;
use super::container_spec::pod_full_name;
use super::context::PodContext;
use super::events::{EventType, PodEvent};
use super::phase::{Phase, RestartPolicy};
use super::plan::{Action, plan};
use super::record::{ContainerRecord, Kind, State, containers_of};
use super::start::{StartError, StartRequest, Started, start_container};
use super::status::PodOutcome;
use super::worker_msgs::{PullFlip, flip_pull_back_off, seed_from_status};
use crate::cgroups::{PodCgroup, pod_resources, qos_class};
use crate::probes::{ProbeEvent, ProbeKind, ProberHandle};
use crate::runtime::{ContainerInfo, ExitStatus};
use crate::sandbox::SandboxInfo;
use crate::volumes::PreparedVolumes;

/// What reaches a pod worker.
#[derive(Debug)]
pub enum PodMsg {
    /// The pod object changed.
    Update(Arc<Pod>),
    /// The pod object is gone from the API (deleted without waiting for this node).
    Gone,
    /// A start finished.
    Started {
        name: String,
        attempt: u32,
        result: Result<Started, StartError>,
    },
    /// A container's process ended.
    Exited {
        name: String,
        container_id: String,
        status: ExitStatus,
    },
    Probe(ProbeEvent),
    PostStartFailed {
        name: String,
        container_id: String,
        message: String,
    },
    /// Rewrite the pod's configMap, secret and downward API volumes if their sources changed.
    RefreshVolumes,
}

/// A task aborted when dropped.
pub(super) struct Task(pub(super) JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What belongs to a running container besides its record.
pub(super) struct Running {
    pub(super) container_id: String,
    /// When the run started, on the monotonic clock probes count from.
    pub(super) started: Instant,
    pub(super) _wait: Task,
    pub(super) probers: HashMap<ProbeKind, ProberHandle>,
    /// Its postStart hook, or the stop under way.
    pub(super) task: Option<Task>,
}

/// The pod's node-side resources once set up.
pub(super) struct Setup {
    /// The sandbox survived an agent restart.
    pub(super) adopted: bool,
    pub(super) sandbox: SandboxInfo,
    pub(super) volumes: PreparedVolumes,
    pub(super) cgroup: Option<PodCgroup>,
}

pub(super) enum Flow {
    Continue(Option<Instant>),
    Done,
}

/// The worker of one pod. Create it with [`PodWorker::spawn`].
pub struct PodWorker<A> {
    pub(super) ctx: Arc<PodContext<A>>,
    pub(super) pod: Arc<Pod>,
    pub(super) uid: String,
    pub(super) full_name: String,
    pub(super) records: Vec<ContainerRecord>,
    pub(super) running: HashMap<String, Running>,
    pub(super) starting: HashMap<String, Task>,
    pub(super) setup: Option<Setup>,
    pub(super) setup_backoff: Backoff,
    pub(super) setup_retry_at: Option<Instant>,
    pub(super) pod_ips: Vec<IpAddr>,
    pub(super) outcome: Option<PodOutcome>,
    /// The pod reached a terminal phase and its resources were released.
    pub(super) finished: bool,
    pub(super) gone: bool,
    pub(super) start_time: Timestamp,
    pub(super) last_written: Option<Value>,
    pub(super) status_retry_at: Option<Instant>,
    /// Runtime containers found at start-up, to adopt once the sandbox is back.
    pub(super) recovered: Option<Vec<ContainerInfo>>,
    pub(super) tx: mpsc::UnboundedSender<PodMsg>,
    pub(super) rx: mpsc::UnboundedReceiver<PodMsg>,
    /// When the agent first saw the pod; `None` once its start was counted, or for a pod
    /// that was already running (adopted after a restart).
    pub(super) seen_at: Option<std::time::Instant>,
    pub(super) sandbox_gauge: super::metrics::RunningPod,
}

impl<A: PodApi> PodWorker<A> {
    /// Starts the worker of `pod`. `rejected` fails it at once (admission); `recovered` are
    /// the runtime's containers of this pod found when the agent started. The task ends once
    /// the pod is gone from the node.
    pub fn spawn(
        ctx: Arc<PodContext<A>>,
        pod: Arc<Pod>,
        rejected: Option<PodOutcome>,
        recovered: Vec<ContainerInfo>,
    ) -> (mpsc::UnboundedSender<PodMsg>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let full_name = pod_full_name(&pod);
        let waiting = if pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|i| !i.is_empty())
        {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let mut records: Vec<ContainerRecord> = containers_of(&pod)
            .into_iter()
            .map(|(c, kind)| {
                let reason = if kind == Kind::App {
                    waiting
                } else {
                    "PodInitializing"
                };
                ContainerRecord::new(c, kind, reason)
            })
            .collect();
        seed_from_status(&pod, &mut records);
        // A pod that ended before the agent restarted stays as it ended.
        let mut outcome = rejected;
        if let Some(status) = pod.status.as_ref()
            && let Some(phase) = match status.phase.as_deref() {
                Some("Succeeded") => Some(Phase::Succeeded),
                Some("Failed") => Some(Phase::Failed),
                _ => None,
            }
        {
            super::adopt::seed_finished(&pod, &mut records);
            outcome.get_or_insert(PodOutcome {
                phase,
                reason: status.reason.clone().unwrap_or_default(),
                message: status.message.clone().unwrap_or_default(),
                rejected: status.container_statuses.is_none(),
            });
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let already_running =
            pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let seen_at = (recovered.is_empty() && !already_running).then(std::time::Instant::now);
        let worker = PodWorker {
            ctx,
            pod,
            uid,
            full_name: full_name.clone(),
            records,
            running: HashMap::new(),
            starting: HashMap::new(),
            setup: None,
            setup_backoff: Backoff::default(),
            setup_retry_at: None,
            pod_ips: Vec::new(),
            outcome,
            finished: false,
            gone: false,
            start_time,
            last_written: None,
            status_retry_at: None,
            seen_at,
            recovered: Some(recovered),
            tx: tx.clone(),
            rx,
            sandbox_gauge: super::metrics::RunningPod::new(),
        };
        let span = tracing::info_span!("pod", pod = %full_name);
        let task = tokio::spawn(worker.run().instrument(span));
        (tx, task)
    }

    async fn run(mut self) {
        loop {
            let started = std::time::Instant::now();
            let flow = self.sync().await;
            super::metrics::synced(started);
            self.sandbox_gauge.set(self.setup.is_some());
            let wake = match flow {
                Flow::Done => {
                    crate::probes::forget_pod(&crate::probes::PodIdentity::of(&self.pod));
                    return;
                }
                Flow::Continue(wake) => wake,
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { return };
                    self.handle(msg).await;
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg).await;
                    }
                }
                () = sleep => {}
            }
        }
    }

    pub(super) fn policy(&self) -> RestartPolicy {
        RestartPolicy::parse(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref()),
        )
    }

    pub(super) fn container(&self, name: &str) -> Option<(Container, Kind)> {
        containers_of(&self.pod)
            .into_iter()
            .find(|(c, _)| c.name == name)
            .map(|(c, k)| (c.clone(), k))
    }

    pub(super) fn record(&mut self, name: &str) -> Option<&mut ContainerRecord> {
        self.records.iter_mut().find(|r| r.name == name)
    }

    pub(super) fn event(&self, type_: EventType, reason: &str, message: impl Into<String>) {
        self.ctx
            .events
            .record(PodEvent::new(&self.pod, type_, reason, message));
    }

    pub(super) fn container_event(
        &self,
        name: &str,
        kind: Kind,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.ctx.events.record(
            PodEvent::new(&self.pod, type_, reason, message).container(name, kind != Kind::App),
        );
    }

    /// The address probes and hooks reach the pod at.
    pub(super) fn probe_ip(&self) -> Option<IpAddr> {
        let host = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host {
            self.ctx.settings.node_ips.first().copied()
        } else {
            self.pod_ips.first().copied()
        }
    }

    pub(super) fn deleting(&self) -> bool {
        self.gone || self.pod.metadata.deletion_timestamp.is_some()
    }

    async fn sync(&mut self) -> Flow {
        let now = Instant::now();
        if self.deleting() {
            return self.terminate().await;
        }
        if self.outcome.is_some() || self.finished {
            if !self.finished {
                self.finish_with_outcome().await;
            }
            return Flow::Continue(self.write_status().await);
        }
        if let Some(deadline) = self.active_deadline()
            && Timestamp::now() >= deadline
        {
            self.outcome = Some(PodOutcome {
                phase: Phase::Failed,
                reason: "DeadlineExceeded".into(),
                message: "Pod was active on the node longer than the specified deadline".into(),
                rejected: false,
            });
            self.event(
                EventType::Normal,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            );
            self.finish_with_outcome().await;
            return Flow::Continue(self.write_status().await);
        }

        let mut wake: Option<Instant> = None;
        let mut wake_at = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
            }
        };
        if self.setup.is_none() {
            match self.setup_retry_at {
                Some(t) if t > now => wake_at(Some(t)),
                _ => self.set_up().await,
            }
            wake_at(self.setup_retry_at);
        }
        if self.setup.is_some() {
            if let Some(found) = self.recovered.take() {
                let adopted = self.setup.as_ref().is_some_and(|s| s.adopted);
                self.adopt(found, adopted).await;
            }
            let p = plan(self.policy(), &self.records, now);
            for action in p.actions {
                match action {
                    Action::Start(name) => self.spawn_start(&name),
                    Action::Kill { name, reason } => self.spawn_kill(&name, reason),
                }
            }
            wake_at(p.wake_at);
            let mut flipped = Vec::new();
            for r in self.records.iter_mut() {
                match flip_pull_back_off(r, now) {
                    PullFlip::Later(t) => wake_at(Some(t)),
                    PullFlip::Flipped => flipped.push((r.name.clone(), r.kind, r.image.clone())),
                    PullFlip::Nothing => {}
                }
            }
            for (name, kind, image) in flipped {
                self.container_event(
                    &name,
                    kind,
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                );
                self.container_event(
                    &name,
                    kind,
                    EventType::Warning,
                    "Failed",
                    "Error: ImagePullBackOff",
                );
            }
            if let Some(phase) = p.finished {
                tracing::info!(phase = phase.as_str(), "pod finished");
                self.release().await;
                self.finished = true;
            }
        }
        if let Some(deadline) = self.active_deadline() {
            let left = deadline.duration_since(Timestamp::now()).unsigned_abs();
            wake_at(Some(now + left));
        }
        wake_at(self.write_status().await);
        Flow::Continue(wake)
    }

    fn active_deadline(&self) -> Option<Timestamp> {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)?;
        self.start_time
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .ok()
    }

    /// The cgroup, volumes and sandbox, in kubelet's order; a failure is retried with
    /// back-off and reported as an event.
    async fn set_up(&mut self) {
        let ctx = self.ctx.clone();
        let pod = self.pod.clone();
        let qos = qos_class(&pod);
        let cgroup = match pod_resources(&pod)
            .and_then(|res| ctx.cgroups.create_pod(&self.uid, qos, &res))
        {
            Ok(cg) => Some(cg),
            Err(e) => {
                self.setup_failed(
                    "FailedCreatePodContainer",
                    format!("unable to ensure pod container exists: {e}"),
                );
                return;
            }
        };
        let volumes = match ctx.volumes.prepare(&pod, ctx.api.as_ref()).await {
            Ok(v) => v,
            Err(e) => {
                self.setup_failed("FailedMount", e.to_string());
                return;
            }
        };
        let mut adopted = false;
        let sandbox = match ctx.sandbox.adopt(&self.uid) {
            Ok(Some(info)) => {
                adopted = true;
                info
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "sandbox not adoptable");
                }
                // Anything left of an earlier sandbox goes first.
                if let Err(e) = ctx.sandbox.teardown(&self.uid).await {
                    self.setup_failed(
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: cannot remove the old one: {e}"),
                    );
                    return;
                }
                match ctx.sandbox.setup(&pod).await {
                    Ok(info) => {
                        for w in &info.warnings {
                            self.event(EventType::Warning, "DNSConfigForming", w.clone());
                        }
                        info
                    }
                    Err(e) => {
                        self.setup_failed(
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        return;
                    }
                }
            }
        };
        self.pod_ips = sandbox.ips.clone();
        self.setup = Some(Setup {
            adopted,
            sandbox,
            volumes,
            cgroup,
        });
        self.setup_retry_at = None;
        self.setup_backoff.reset();
    }

    fn setup_failed(&mut self, reason: &str, message: String) {
        tracing::warn!(reason, %message, "pod set-up failed");
        self.event(EventType::Warning, reason, message);
        self.setup_retry_at = Some(Instant::now() + self.setup_backoff.after_pull_failure());
    }

    pub(super) fn spawn_start(&mut self, name: &str) {
        let Some((container, kind)) = self.container(name) else {
            return;
        };
        let Some(setup) = &self.setup else { return };
        let (sandbox, volumes, cgroup) = (
            setup.sandbox.clone(),
            setup.volumes.clone(),
            setup.cgroup.clone(),
        );
        let Some(rec) = self.record(name) else { return };
        let attempt = rec.next_attempt();
        rec.busy = true;
        if !rec.started_once {
            rec.state = State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
        }
        let req = StartRequest {
            pod: self.pod.clone(),
            container,
            kind,
            attempt,
            sandbox,
            volumes,
            cgroup,
            qos: qos_class(&self.pod),
        };
        let ctx = self.ctx.clone();
        let tx = self.tx.clone();
        let owned = name.to_string();
        let task = tokio::spawn(
            async move {
                let result = start_container(ctx, req).await;
                let _ = tx.send(PodMsg::Started {
                    name: owned,
                    attempt,
                    result,
                });
            }
            .in_current_span(),
        );
        self.starting.insert(name.to_string(), Task(task));
    }
}
