//! The ReplicaSet controller: keeps `spec.replicas` active pods made from the template,
//! owning them through a controller reference (adopting matching orphans, releasing pods
//! that stopped matching), and reports how many exist, carry the template's labels, are
//! ready and are available. As kube-controller-manager's, it creates in slow-start batches
//! (1, 2, 4, ...: a failing create stops the burst), deletes the least useful pods first,
//! and waits for its cache to show its own writes before acting again.

mod expectations;
mod ranking;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;

pub use expectations::{Expectations, PodRef};
pub use ranking::pods_to_delete;

use super::clock::WallClock;
use super::context::Ctx;
use super::controller_ref::{self, controller_of};
use super::pod_util;
use super::runtime::{
    Change, Cluster, ClusterError, Delete, Informer, ObjectEvent, ObjectKey, ReconcileError,
    Reconciler, Requeue, WorkQueue, itself, run, watch,
};

/// The component events name.
pub const COMPONENT: &str = "replicaset-controller";

/// The most pods created or deleted in one pass, as upstream's burst limit.
const BURST_REPLICAS: usize = 500;

/// Starts the controller on `ctx`.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(ReplicaSetController::new(ctx, WallClock::system()));
    let queue = WorkQueue::new();
    vec![
        watch(&ctx.informers.replica_sets, queue.clone(), itself),
        watch(&ctx.informers.pods, queue.clone(), c.pod_keys()),
        run(c, queue, ctx.settings.workers),
    ]
}

/// The reconciler of ReplicaSets.
pub struct ReplicaSetController<C> {
    cluster: Arc<C>,
    pods: Informer<Pod>,
    replica_sets: Informer<ReplicaSet>,
    expectations: Arc<Expectations>,
    clock: WallClock,
}

impl<C: Cluster> ReplicaSetController<C> {
    pub fn new(ctx: &Ctx<C>, clock: WallClock) -> Self {
        ReplicaSetController {
            cluster: ctx.cluster.clone(),
            pods: ctx.informers.pods.clone(),
            replica_sets: ctx.informers.replica_sets.clone(),
            expectations: Arc::new(Expectations::default()),
            clock,
        }
    }

    /// The expectations this controller keeps (tests inspect them).
    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }

    /// Maps a pod change to the ReplicaSets it concerns: its controller (and its previous
    /// one, when that changed), or for an orphan every ReplicaSet whose selector matches it
    /// (one of them may adopt it).
    pub fn pod_keys(&self) -> impl Fn(&Change<Pod>) -> Vec<ObjectKey> + Send + Sync + 'static {
        let rss = self.replica_sets.clone();
        let expectations = self.expectations.clone();
        let last_owner: Mutex<HashMap<String, ObjectKey>> = Mutex::new(HashMap::new());
        move |change| {
            let pod = change.obj.as_ref();
            let ns = pod.metadata.namespace.as_deref();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let owner = controller_of(&pod.metadata)
                .filter(|r| r.kind == "ReplicaSet")
                .map(|r| ObjectKey::new(ns, &r.name));
            let mut keys = Vec::new();
            let previous = {
                let mut m = last_owner.lock().unwrap_or_else(|p| p.into_inner());
                match (&owner, change.deleted) {
                    (Some(o), false) => m.insert(uid.clone(), o.clone()),
                    _ => m.remove(&uid),
                }
            };
            if let Some(prev) = previous
                && Some(&prev) != owner.as_ref()
            {
                keys.push(prev);
            }
            match owner {
                Some(key) => {
                    if change.deleted {
                        expectations.observe_deleted(&key, &uid);
                    }
                    keys.push(key);
                }
                None if !change.deleted && pod.metadata.deletion_timestamp.is_none() => {
                    let labels = pod.metadata.labels.clone().unwrap_or_default();
                    for rs in rss.list() {
                        if rs.metadata.namespace.as_deref() == ns
                            && selector_of(&rs).is_ok_and(|s| !s.is_empty() && s.matches(&labels))
                        {
                            keys.push(ObjectKey::of(rs.as_ref()));
                        }
                    }
                }
                None => {}
            }
            keys
        }
    }

    /// Active pods in `ns`.
    fn active_pods(&self, ns: Option<&str>) -> Vec<Arc<Pod>> {
        self.pods
            .list()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == ns && pod_util::is_active(p))
            .collect()
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(rs) = self.replica_sets.get(key.namespace.as_deref(), &key.name) else {
            self.expectations.forget(key);
            return Ok(Requeue::Done);
        };
        let needs_sync = self.expectations.satisfied(key, &self.pods);
        let selector = match selector_of(&rs) {
            Ok(s) => s,
            Err(e) => {
                // Validation refuses such selectors; one stored before is left alone.
                tracing::warn!(replicaset = %key, error = %e, "invalid selector; ignored");
                return Ok(Requeue::Done);
            }
        };
        let candidates = self.active_pods(key.namespace.as_deref());
        let owned =
            controller_ref::claim(self.cluster.as_ref(), rs.as_ref(), &selector, candidates)
                .await?;
        let mut manage_err = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage_err = self.manage_replicas(key, &rs, &owned).await.err();
        }
        let now = self.clock.now();
        let new = status::calculate(&rs, &owned, manage_err.as_ref(), now);
        status::update(self.cluster.as_ref(), &rs, new).await?;
        if let Some(e) = manage_err {
            return Err(e.into());
        }
        // Pods ready but not yet for minReadySeconds turn available later: look again then.
        let min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let next = owned
            .iter()
            .filter_map(|p| pod_util::available_at(p, min_ready, now))
            .min();
        Ok(match next {
            Some(t) => Requeue::After(
                Duration::try_from(now.duration_until(t)).unwrap_or_default()
                    + Duration::from_secs(1),
            ),
            None => Requeue::Done,
        })
    }

    /// Creates or deletes pods so that `owned` becomes `spec.replicas`.
    async fn manage_replicas(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        owned: &[Arc<Pod>],
    ) -> Result<(), ClusterError> {
        let want = desired(rs);
        let have = owned.len();
        if have < want {
            let diff = (want - have).min(BURST_REPLICAS);
            tracing::debug!(replicaset = %key, need = want, creating = diff, "too few replicas");
            let (created, err) = self.slow_start_create(rs, diff).await;
            self.expectations.expect(key, created, Vec::new());
            return err.map_or(Ok(()), Err);
        }
        if have > want {
            let diff = (have - want).min(BURST_REPLICAS);
            tracing::debug!(replicaset = %key, need = want, deleting = diff, "too many replicas");
            let related = self.related_pods(rs);
            let victims = pods_to_delete(owned.to_vec(), &related, diff, self.clock.now());
            self.expectations.expect(
                key,
                Vec::new(),
                victims.iter().map(|p| PodRef::of(p)).collect(),
            );
            let results = join_all(victims.iter().map(|p| self.delete_pod(rs, p))).await;
            let mut first = None;
            for (pod, r) in victims.iter().zip(results) {
                if let Err(e) = r {
                    // The cache will not see this deletion: stop waiting for it.
                    self.expectations
                        .observe_deleted(key, pod.metadata.uid.as_deref().unwrap_or(""));
                    if !e.is_not_found() {
                        first.get_or_insert(e);
                    }
                }
            }
            return first.map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// Creates `n` pods in batches of 1, 2, 4, ...; a batch with a failure ends the run.
    /// Returns the pods made and the first failure.
    async fn slow_start_create(
        &self,
        rs: &ReplicaSet,
        n: usize,
    ) -> (Vec<PodRef>, Option<ClusterError>) {
        let template = pod_from_template(rs);
        let mut made = Vec::with_capacity(n);
        let mut remaining = n;
        let mut batch = 1;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results = join_all((0..size).map(|_| self.create_pod(rs, &template))).await;
            let mut failed = None;
            for r in results {
                match r {
                    Ok(Some(p)) => made.push(PodRef::of(&p)),
                    Ok(None) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if failed.is_some() {
                return (made, failed);
            }
            remaining -= size;
            batch *= 2;
        }
        (made, None)
    }

    /// `None` when the namespace is being deleted (nothing can be created there; not an
    /// error of this ReplicaSet).
    async fn create_pod(&self, rs: &ReplicaSet, pod: &Pod) -> Result<Option<Pod>, ClusterError> {
        match self.cluster.create(pod).await {
            Ok(p) => {
                self.cluster.record(
                    ObjectEvent::normal(
                        rs,
                        "SuccessfulCreate",
                        format!(
                            "Created pod: {}",
                            p.metadata.name.as_deref().unwrap_or_default()
                        ),
                    )
                    .from(COMPONENT),
                );
                Ok(Some(p))
            }
            Err(e) if e.code == 403 && e.message.contains("being terminated") => Ok(None),
            Err(e) => {
                self.cluster.record(
                    ObjectEvent::warning(
                        rs,
                        "FailedCreate",
                        format!("Error creating: {}", e.message),
                    )
                    .from(COMPONENT),
                );
                Err(e)
            }
        }
    }

    async fn delete_pod(&self, rs: &ReplicaSet, pod: &Pod) -> Result<(), ClusterError> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let how = Delete {
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        };
        match self
            .cluster
            .delete::<Pod>(pod.metadata.namespace.as_deref(), name, &how)
            .await
        {
            Ok(()) => {
                self.cluster.record(
                    ObjectEvent::normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"))
                        .from(COMPONENT),
                );
                Ok(())
            }
            Err(e) => {
                if !e.is_not_found() {
                    self.cluster.record(
                        ObjectEvent::warning(
                            rs,
                            "FailedDelete",
                            format!("Error deleting: {}", e.message),
                        )
                        .from(COMPONENT),
                    );
                }
                Err(e)
            }
        }
    }

    /// Pods of this ReplicaSet's siblings (ReplicaSets with the same controller, itself
    /// included), whose placement breaks ties when choosing what to delete.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_of(&rs.metadata) else {
            return Vec::new();
        };
        let ns = rs.metadata.namespace.as_deref();
        let selectors: Vec<Selector> = self
            .replica_sets
            .list()
            .iter()
            .filter(|r| {
                r.metadata.namespace.as_deref() == ns
                    && controller_of(&r.metadata).is_some_and(|o| o.uid == owner.uid)
            })
            .filter_map(|r| selector_of(r).ok())
            .collect();
        let mut seen = HashSet::new();
        self.pods
            .list()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == ns)
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                selectors.iter().any(|s| s.matches(&labels))
            })
            .filter(|p| seen.insert(p.metadata.uid.clone()))
            .collect()
    }
}

impl<C: Cluster> Reconciler for ReplicaSetController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        self.sync(key).await
    }
}

/// `spec.replicas` (1 when unset, as defaulted).
pub fn desired(rs: &ReplicaSet) -> usize {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize
}

/// The ReplicaSet's selector.
pub fn selector_of(rs: &ReplicaSet) -> Result<Selector, String> {
    match rs.spec.as_ref() {
        Some(s) => Selector::from_label_selector(&s.selector).map_err(|e| e.to_string()),
        None => Ok(Selector::nothing()),
    }
}

/// A pod as the ReplicaSet makes it: the template's labels, annotations, finalizers and
/// spec, named `<rs>-<random>`, controlled by the ReplicaSet.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let t = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                rs.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: rs.metadata.namespace.clone(),
            labels: t.labels,
            annotations: t.annotations,
            finalizers: t.finalizers,
            owner_references: Some(vec![controller_ref::owner_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
