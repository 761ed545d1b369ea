//! The sync loop: changes in the cluster → one debounced [`Dataplane::sync`] of what changed.
//!
//! Change notices are coalesced: however many arrive while a sync runs or while the loop
//! waits out the minimum interval, the next sync reads the caches once and programs the
//! difference from the last programmed state. A failed sync is retried after a pause; it
//! never spins.

pub mod watch;

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::dataplane::{Dataplane, SyncStats};
use crate::model::{ProxyState, changed_service_ports};

/// How often the loop may touch the kernel.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// Least time between two syncs (kube-proxy's `--min-sync-period`).
    pub min_interval: Duration,
    /// Pause before retrying a failed sync.
    pub retry_interval: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            min_interval: Duration::from_millis(200),
            retry_interval: Duration::from_secs(2),
        }
    }
}

/// Sends coalescing change notices to the loop.
#[derive(Debug, Clone)]
pub struct Trigger(mpsc::Sender<()>);

impl Trigger {
    /// A trigger and the receiving end for [`run`].
    pub fn new() -> (Trigger, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        (Trigger(tx), rx)
    }

    /// Asks for a sync; a notice already pending covers this one too.
    pub fn notify(&self) {
        let _ = self.0.try_send(());
    }
}

/// Told what the loop does, for metrics and health.
pub trait SyncObserver: Send {
    /// A change notice woke the loop: a sync is due.
    fn queued(&mut self) {}
    /// The notice needed no change to the kernel.
    fn unchanged(&mut self) {}
    /// A sync attempt ended.
    fn synced(&mut self, _elapsed: Duration, _result: Result<&SyncStats, &str>) {}
}

impl SyncObserver for () {}

/// Runs until every [`Trigger`] is dropped. `snapshot` builds the desired state from the
/// caches; it is called once per sync.
pub async fn run(
    dataplane: &mut dyn Dataplane,
    snapshot: impl Fn() -> ProxyState + Send,
    mut notices: mpsc::Receiver<()>,
    settings: SyncSettings,
    observer: &mut dyn SyncObserver,
) {
    let mut programmed: Option<ProxyState> = None;
    let mut last_sync: Option<Instant> = None;
    let mut retry = false;
    loop {
        if retry {
            // A notice during the pause is folded into the retry.
            tokio::time::sleep(settings.retry_interval).await;
        } else if notices.recv().await.is_none() {
            return;
        } else {
            observer.queued();
        }
        if let Some(last) = last_sync {
            tokio::time::sleep_until(last + settings.min_interval).await;
        }
        while notices.try_recv().is_ok() {}

        let state = snapshot();
        let changed = match &programmed {
            None => state.services.keys().cloned().collect::<BTreeSet<_>>(),
            Some(old) => changed_service_ports(old, &state),
        };
        if programmed.is_some() && changed.is_empty() {
            retry = false;
            observer.unchanged();
            continue;
        }
        let start = Instant::now();
        last_sync = Some(start);
        match dataplane.sync(&state, &changed).await {
            Ok(stats) => {
                let elapsed = start.elapsed();
                tracing::info!(
                    backend = dataplane.name(),
                    changed = changed.len(),
                    full = stats.full,
                    rules = stats.rules,
                    ms = elapsed.as_secs_f64() * 1e3,
                    "services synced"
                );
                observer.synced(elapsed, Ok(&stats));
                programmed = Some(state);
                retry = false;
            }
            Err(e) => {
                tracing::warn!(backend = dataplane.name(), error = %e, "sync failed; retrying");
                observer.synced(start.elapsed(), Err(&e.to_string()));
                retry = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::DataplaneError;
    use crate::model::{Protocol, ServicePort, ServicePortName};
    use std::sync::{Arc, Mutex};

    #[derive(Default, Clone)]
    struct Recorder {
        syncs: Arc<Mutex<Vec<BTreeSet<ServicePortName>>>>,
        fail_next: Arc<Mutex<bool>>,
    }

    #[async_trait::async_trait]
    impl Dataplane for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn sync(
            &mut self,
            _state: &ProxyState,
            changed: &BTreeSet<ServicePortName>,
        ) -> Result<SyncStats, DataplaneError> {
            self.syncs.lock().unwrap().push(changed.clone());
            if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
                return Err(DataplaneError::Program {
                    backend: "recorder",
                    message: "boom".into(),
                });
            }
            Ok(SyncStats::default())
        }
        async fn cleanup(&mut self) -> Result<(), DataplaneError> {
            Ok(())
        }
    }

    fn name(n: &str) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: n.into(),
            port: String::new(),
            protocol: Protocol::Tcp,
        }
    }

    fn with(names: &[&str]) -> ProxyState {
        let mut s = ProxyState::default();
        for n in names {
            let port = ServicePort {
                cluster_ips: vec!["10.96.0.1".parse().unwrap()],
                port: 80,
                node_port: None,
                external_ips: vec![],
                load_balancer_ips: vec![],
                affinity: None,
                external_local: false,
                internal_local: false,
            };
            s.services.insert(name(n), (port, vec![]));
        }
        s
    }

    const SETTINGS: SyncSettings = SyncSettings {
        min_interval: Duration::from_millis(100),
        retry_interval: Duration::from_millis(500),
    };

    #[tokio::test(start_paused = true)]
    async fn bursts_are_debounced_and_only_changes_are_synced() {
        let recorder = Recorder::default();
        let world = Arc::new(Mutex::new(with(&["a", "b"])));
        let (trigger, notices) = Trigger::new();
        let task = {
            let (mut dp, world) = (recorder.clone(), world.clone());
            tokio::spawn(async move {
                run(
                    &mut dp,
                    move || world.lock().unwrap().clone(),
                    notices,
                    SETTINGS,
                    &mut (),
                )
                .await
            })
        };
        trigger.notify();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // A burst of changes right after a sync: one sync, after the minimum interval.
        for _ in 0..5 {
            *world.lock().unwrap() = with(&["a", "c"]);
            trigger.notify();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(recorder.syncs.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A notice without a change syncs nothing.
        trigger.notify();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(trigger);
        task.await.unwrap();
        let syncs = recorder.syncs.lock().unwrap().clone();
        assert_eq!(
            syncs,
            vec![
                [name("a"), name("b")].into_iter().collect(),
                [name("b"), name("c")].into_iter().collect(),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sync_is_retried_after_a_pause() {
        let recorder = Recorder::default();
        *recorder.fail_next.lock().unwrap() = true;
        let (trigger, notices) = Trigger::new();
        let task = {
            let mut dp = recorder.clone();
            tokio::spawn(
                async move { run(&mut dp, || with(&["a"]), notices, SETTINGS, &mut ()).await },
            )
        };
        trigger.notify();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(recorder.syncs.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(recorder.syncs.lock().unwrap().len(), 2);
        // Succeeded: no more attempts without a change.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(recorder.syncs.lock().unwrap().len(), 2);
        drop(trigger);
        task.await.unwrap();
    }
}
