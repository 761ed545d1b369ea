//! How a pod worker ends a pod: graceful termination when the pod is deleted, release of
//! the node's resources when it finishes, and the status it reports along the way.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use tracing::Instrument;

use super::api::PodApi;
use super::events::EventType;
use super::plan::pod_phase;
use super::record::{Kind, State, Terminated};
use super::status::{StatusInputs, pod_status};
use super::stop::{grace_period, stop_container, tear_down};
use super::worker::{Flow, PodWorker};
use crate::cgroups::qos_class;

/// A failed status write or teardown is retried after this long.
const RETRY: Duration = Duration::from_secs(1);

impl<A: PodApi> PodWorker<A> {
    /// Stops every running container within the grace period, sidecars last, and waits for
    /// them.
    async fn stop_all(&mut self, grace: Duration) {
        // Starts in flight are abandoned; whatever they created is removed with the pod.
        self.starting.clear();
        for r in self.running.values_mut() {
            r.probers.clear();
        }
        for phase in [false, true] {
            let mut stops = Vec::new();
            let names: Vec<(String, Kind, String)> = self
                .records
                .iter()
                .filter(|r| (r.kind == Kind::Sidecar) == phase)
                .filter_map(|r| match &r.state {
                    State::Running { container_id, .. } => {
                        Some((r.name.clone(), r.kind, container_id.clone()))
                    }
                    _ => None,
                })
                .collect();
            for (name, kind, id) in names {
                let Some((container, _)) = self.container(&name) else {
                    continue;
                };
                self.container_event(
                    &name,
                    kind,
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {name}"),
                );
                let image = crate::runtime::reference::normalize(
                    container.image.as_deref().unwrap_or_default(),
                )
                .unwrap_or_default();
                stops.push(tokio::spawn(
                    stop_container(
                        self.ctx.clone(),
                        self.pod.clone(),
                        container,
                        kind != Kind::App,
                        id,
                        image,
                        self.probe_ip(),
                        grace,
                    )
                    .in_current_span(),
                ));
            }
            for s in stops {
                let _ = s.await;
            }
        }
        // The exits arrive as messages from the containers' waiters.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.records.iter().any(|r| r.is_running()) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => self.handle(msg).await,
                _ => break,
            }
        }
        // Whatever did not report is stopped as far as we know.
        let now = Timestamp::now();
        for r in self.records.iter_mut() {
            if let State::Running {
                container_id,
                started_at,
            } = &r.state
            {
                r.state = State::Terminated(Terminated {
                    exit_code: 137,
                    signal: None,
                    reason: "Error".into(),
                    message: None,
                    started_at: Some(*started_at),
                    finished_at: now,
                    container_id: container_id.clone(),
                });
            }
            r.busy = false;
        }
        self.running.clear();
    }

    /// The pod was deleted: stop it, remove it from the node, report, and remove the object.
    pub(super) async fn terminate(&mut self) -> Flow {
        let grace = grace_period(&self.pod);
        if self.records.iter().any(|r| r.is_running() || r.busy) {
            tracing::info!(grace_s = grace.as_secs(), "stopping pod");
            self.stop_all(grace).await;
        }
        if let Err(e) = tear_down(&self.ctx, &self.uid).await {
            tracing::warn!(error = %e, "pod teardown incomplete; retrying");
            return Flow::Continue(Some(Instant::now() + RETRY));
        }
        self.setup = None;
        if self.gone {
            self.remove_logs();
            return Flow::Done;
        }
        // The last status says how the containers ended; then the object goes.
        if let Some(retry) = self.write_status().await {
            return Flow::Continue(Some(retry));
        }
        let ns = self
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match self.ctx.api.delete_pod(&ns, &name, &self.uid).await {
            Ok(()) => {
                tracing::info!("pod removed");
                self.remove_logs();
                Flow::Done
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete the pod object; retrying");
                Flow::Continue(Some(Instant::now() + RETRY))
            }
        }
    }

    fn remove_logs(&self) {
        let dir = self.ctx.pod_log_dir(&self.pod);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove pod logs");
        }
    }

    /// The pod is done (all containers finished, or rejected, or past its deadline): stop
    /// what runs and release the node's resources; the status and logs stay.
    pub(super) async fn release(&mut self) {
        if self.records.iter().any(|r| r.is_running() || r.busy) {
            let grace = grace_period(&self.pod);
            self.stop_all(grace).await;
        }
        match tear_down(&self.ctx, &self.uid).await {
            Ok(()) => self.setup = None,
            Err(e) => tracing::warn!(error = %e, "releasing the finished pod's resources"),
        }
    }

    pub(super) async fn finish_with_outcome(&mut self) {
        self.release().await;
        self.finished = true;
    }

    /// Writes the status if it changed since the last write. Returns when to try again
    /// after a failure.
    pub(super) async fn write_status(&mut self) -> Option<Instant> {
        if let Some(t) = self.status_retry_at
            && t > Instant::now()
        {
            return Some(t);
        }
        let phase = pod_phase(self.policy(), &self.records);
        let status = pod_status(&StatusInputs {
            pod: &self.pod,
            records: &self.records,
            phase,
            outcome: self.outcome.as_ref(),
            pod_ips: &self.pod_ips,
            host_ips: &self.ctx.settings.node_ips,
            start_time: Some(self.start_time),
            qos_class: qos_class(&self.pod).as_str(),
            sandbox_ready: self.setup.is_some(),
            now: Timestamp::now(),
            last_written: self.last_written.as_ref(),
        });
        if self.last_written.as_ref() == Some(&status) {
            return None;
        }
        let ns = self
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match self.ctx.api.patch_status(&ns, &name, &status).await {
            Ok(()) => {
                if super::metrics::shows_started(&status)
                    && let Some(seen) = self.seen_at.take()
                {
                    super::metrics::started(seen);
                }
                self.last_written = Some(status);
                self.status_retry_at = None;
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "status update failed");
                let t = Instant::now() + RETRY;
                self.status_retry_at = Some(t);
                Some(t)
            }
        }
    }
}
