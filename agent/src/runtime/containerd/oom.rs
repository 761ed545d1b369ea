//! Which containers the kernel's OOM killer hit: one subscription to containerd's
//! `/tasks/oom` events per connection, started on first use, remembered for a while so that
//! `wait` can report `oom_killed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_client::events::TaskOom;
use containerd_client::services::v1::SubscribeRequest;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::tonic::transport::Channel;
use prost::Message;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long an OOM event is remembered.
const REMEMBER: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Seen {
    at: HashMap<String, Instant>,
}

pub(crate) struct OomWatcher {
    channel: Channel,
    namespace: String,
    seen: Arc<Mutex<Seen>>,
    notify: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OomWatcher {
    pub(crate) fn new(channel: Channel, namespace: String) -> Self {
        OomWatcher {
            channel,
            namespace,
            seen: Arc::default(),
            notify: Arc::default(),
            task: Mutex::new(None),
        }
    }

    /// Subscribes, unless already subscribed.
    pub(crate) fn ensure_started(&self) {
        let Ok(mut task) = self.task.lock() else {
            return;
        };
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let (channel, ns) = (self.channel.clone(), self.namespace.clone());
        let (seen, notify) = (self.seen.clone(), self.notify.clone());
        *task = Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let filter = format!("topic==\"/tasks/oom\",namespace==\"{ns}\"");
                let mut client = EventsClient::new(channel.clone());
                match client
                    .subscribe(SubscribeRequest {
                        filters: vec![filter],
                    })
                    .await
                {
                    Ok(stream) => {
                        backoff = Duration::from_millis(100);
                        let mut stream = stream.into_inner();
                        while let Ok(Some(envelope)) = stream.message().await {
                            let Some(event) = envelope.event else {
                                continue;
                            };
                            let Ok(oom) = TaskOom::decode(event.value.as_slice()) else {
                                continue;
                            };
                            tracing::info!(container = %oom.container_id, "container hit its memory limit");
                            if let Ok(mut s) = seen.lock() {
                                let now = Instant::now();
                                s.at.retain(|_, t| now.duration_since(*t) < REMEMBER);
                                s.at.insert(oom.container_id, now);
                            }
                            notify.notify_waiters();
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot subscribe to OOM events"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }));
    }

    pub(crate) fn seen(&self, id: &str) -> bool {
        self.seen.lock().is_ok_and(|s| s.at.contains_key(id))
    }

    /// Waits up to `timeout` for an OOM event of `id`; for a process that died of SIGKILL, the
    /// event may trail the exit by a moment.
    pub(crate) async fn wait_for(&self, id: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if self.seen(id) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.seen(id);
            }
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut s) = self.seen.lock() {
            s.at.remove(id);
        }
    }
}

impl Drop for OomWatcher {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(t) = task.take()
        {
            t.abort();
        }
    }
}
