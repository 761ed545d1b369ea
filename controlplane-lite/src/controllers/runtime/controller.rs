//! The reconcile loop: changes from informers become keys in a de-duplicating queue, and
//! workers reconcile one key at a time. A reconcile is idempotent and level-triggered (it
//! reads the caches, never the change that woke it); a failing key backs off exponentially
//! instead of looping hot.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::cluster::ClusterError;
use super::informer::{Change, Informer, Kind};
use super::metrics;
use super::queue::WorkQueue;

/// Which object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn of<K: Resource>(obj: &K) -> Self {
        let m = obj.meta();
        ObjectKey {
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What to do with a key after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Done,
    /// Look again after this long (a deadline, a progress check).
    After(Duration),
}

/// Why a reconcile failed; the key is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Other(String),
}

/// One controller's reconcile.
pub trait Reconciler: Send + Sync + 'static {
    /// The controller's name, for logs.
    fn name(&self) -> &'static str;

    fn reconcile(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Requeue, ReconcileError>> + Send;
}

/// Runs `workers` reconcile loops on `queue` until it is shut down.
pub fn run<R: Reconciler>(
    r: Arc<R>,
    queue: WorkQueue<ObjectKey>,
    workers: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = Vec::with_capacity(workers);
        for _ in 0..workers.max(1) {
            let (r, queue) = (r.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                let m = metrics::Workqueue::of(r.name());
                while let Some(key) = queue.get().await {
                    m.depth(queue.len());
                    let started = std::time::Instant::now();
                    let outcome = r.reconcile(&key).await;
                    m.worked(started, outcome.is_ok());
                    match outcome {
                        Ok(Requeue::Done) => queue.forget(&key),
                        Ok(Requeue::After(d)) => {
                            queue.forget(&key);
                            queue.add_after(key.clone(), d);
                        }
                        Err(e) => {
                            let failures = queue.failures(&key);
                            // Conflicts are routine (a cache behind a write): quiet.
                            if matches!(&e, ReconcileError::Cluster(c) if c.is_conflict()) || failures < 3 {
                                tracing::debug!(controller = r.name(), %key, error = %e, "reconcile failed; retrying");
                            } else {
                                tracing::warn!(controller = r.name(), %key, error = %e, failures, "reconcile failed; backing off");
                            }
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}

/// Feeds `queue` from `informer`: each change becomes the keys `map` gives. When the
/// subscription falls behind, every cached object is mapped again, so nothing is missed.
pub fn watch<K: Kind>(
    informer: &Informer<K>,
    queue: WorkQueue<ObjectKey>,
    map: impl Fn(&Change<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
) -> JoinHandle<()> {
    let mut rx = informer.subscribe();
    let informer = informer.clone();
    tokio::spawn(async move {
        // What arrived before the subscription.
        informer.synced().await;
        for obj in informer.list() {
            for k in map(&Change {
                obj,
                deleted: false,
            }) {
                queue.add(k);
            }
        }
        loop {
            match rx.recv().await {
                Ok(change) => {
                    for k in map(&change) {
                        queue.add(k);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(kind = %K::kind(&()), skipped = n, "changes lagged; resyncing");
                    for obj in informer.list() {
                        for k in map(&Change {
                            obj,
                            deleted: false,
                        }) {
                            queue.add(k);
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// The key of the changed object itself.
pub fn itself<K: Kind>(change: &Change<K>) -> Vec<ObjectKey> {
    vec![ObjectKey::of(change.obj.as_ref())]
}

/// The keys of the changed object's controller owner of kind `owner_kind`.
pub fn controller_owner<K: Kind>(change: &Change<K>, owner_kind: &str) -> Vec<ObjectKey> {
    let m = change.obj.meta();
    m.owner_references
        .iter()
        .flatten()
        .filter(|o| o.controller == Some(true) && o.kind == owner_kind)
        .map(|o| ObjectKey::new(m.namespace.as_deref(), &o.name))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::super::{Cluster, FakeCluster};
    use super::*;

    /// Copies every ConfigMap's `data.in` to `data.out`, failing twice on "flaky".
    struct Copier {
        cluster: Arc<FakeCluster>,
        cms: Informer<ConfigMap>,
        seen: Mutex<Vec<String>>,
    }

    impl Reconciler for Copier {
        fn name(&self) -> &'static str {
            "copier"
        }
        async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
            self.seen.lock().unwrap().push(key.name.clone());
            if key.name == "flaky"
                && self
                    .seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|n| *n == "flaky")
                    .count()
                    < 3
            {
                return Err(ReconcileError::Other("not yet".into()));
            }
            let Some(cm) = self.cms.get(key.namespace.as_deref(), &key.name) else {
                return Ok(Requeue::Done);
            };
            let data = cm.data.clone().unwrap_or_default();
            let input = data.get("in").cloned().unwrap_or_default();
            if data.get("out") != Some(&input) {
                let _: ConfigMap = self
                    .cluster
                    .patch(
                        key.namespace.as_deref(),
                        &key.name,
                        &json!({"data": {"out": input}}),
                    )
                    .await?;
            }
            Ok(Requeue::Done)
        }
    }

    fn cm(name: &str, input: &str) -> ConfigMap {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "ns"}, "data": {"in": input}}),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn changes_are_reconciled_and_failures_retried() {
        let cluster = Arc::new(FakeCluster::new());
        let cms = cluster.informer::<ConfigMap>();
        let queue = WorkQueue::new();
        let c = Arc::new(Copier {
            cluster: cluster.clone(),
            cms: cms.clone(),
            seen: Mutex::new(Vec::new()),
        });
        let _w = watch(&cms, queue.clone(), itself);
        let _r = run(c.clone(), queue.clone(), 2);
        cluster.put(&cm("a", "1"));
        cluster.put(&cm("flaky", "2"));
        let out = |n: &str| {
            cluster
                .get::<ConfigMap>(Some("ns"), n)
                .and_then(|c| c.data)
                .and_then(|d| d.get("out").cloned())
        };
        for _ in 0..200 {
            if out("a").as_deref() == Some("1") && out("flaky").as_deref() == Some("2") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(out("a").as_deref(), Some("1"));
        assert_eq!(out("flaky").as_deref(), Some("2"));
        // Its own write woke it again; the second pass found nothing to do.
        let writes = cluster.writes();
        assert_eq!(
            writes.iter().filter(|w| w.ends_with("ns/a")).count(),
            1,
            "{writes:?}"
        );
        queue.shut_down();
    }
}
