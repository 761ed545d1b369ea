//! The Deployment controller: a ReplicaSet per pod template (named after the template's
//! hash, numbered by revision), rolled from old to new by the RollingUpdate strategy
//! (within maxSurge and maxUnavailable) or Recreate (all old pods gone first), scaled
//! proportionally when resized mid-rollout, paused on request, old ReplicaSets cleaned up
//! beyond `revisionHistoryLimit`, and the Progressing/Available conditions kubectl reads.
//! A rollback (`kubectl rollout undo`) is a template change back to an old ReplicaSet's,
//! which that ReplicaSet then serves again under a new revision.

mod progress;
mod recreate;
mod rolling;
mod sync;
#[cfg(test)]
mod tests;
pub mod util;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;

use super::clock::WallClock;
use super::context::Ctx;
use super::controller_ref::{self, controller_of};
use super::runtime::{
    Change, Cluster, ClusterError, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler,
    Requeue, WorkQueue, itself, run, watch,
};

/// The component events name.
pub const COMPONENT: &str = "deployment-controller";

/// Starts the controller on `ctx`.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(DeploymentController::new(ctx, WallClock::system()));
    let queue = WorkQueue::new();
    vec![
        watch(&ctx.informers.deployments, queue.clone(), itself),
        watch(
            &ctx.informers.replica_sets,
            queue.clone(),
            c.replica_set_keys(),
        ),
        watch(&ctx.informers.pods, queue.clone(), c.pod_keys()),
        run(c, queue, ctx.settings.workers),
    ]
}

/// The reconciler of Deployments.
pub struct DeploymentController<C> {
    cluster: Arc<C>,
    deployments: Informer<Deployment>,
    replica_sets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    clock: WallClock,
}

/// A Deployment's selector.
pub fn selector_of(d: &Deployment) -> Result<Selector, String> {
    match d.spec.as_ref() {
        Some(s) => Selector::from_label_selector(&s.selector).map_err(|e| e.to_string()),
        None => Ok(Selector::nothing()),
    }
}

impl<C: Cluster> DeploymentController<C> {
    pub fn new(ctx: &Ctx<C>, clock: WallClock) -> Self {
        DeploymentController {
            cluster: ctx.cluster.clone(),
            deployments: ctx.informers.deployments.clone(),
            replica_sets: ctx.informers.replica_sets.clone(),
            pods: ctx.informers.pods.clone(),
            clock,
        }
    }

    /// Deployments in `ns` whose selector matches `labels` (those that may adopt).
    fn matching(
        deployments: &Informer<Deployment>,
        ns: Option<&str>,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Vec<ObjectKey> {
        deployments
            .list()
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == ns)
            .filter(|d| selector_of(d).is_ok_and(|s| !s.is_empty() && s.matches(labels)))
            .map(|d| ObjectKey::of(d.as_ref()))
            .collect()
    }

    /// A ReplicaSet change concerns its controlling Deployment (and the previous one when
    /// that changed), or for an orphan every Deployment that may adopt it.
    pub fn replica_set_keys(
        &self,
    ) -> impl Fn(&Change<ReplicaSet>) -> Vec<ObjectKey> + Send + Sync + 'static {
        let deployments = self.deployments.clone();
        let last_owner: Mutex<HashMap<String, ObjectKey>> = Mutex::new(HashMap::new());
        move |change| {
            let rs = change.obj.as_ref();
            let ns = rs.metadata.namespace.as_deref();
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let owner = controller_of(&rs.metadata)
                .filter(|r| r.kind == "Deployment")
                .map(|r| ObjectKey::new(ns, &r.name));
            let previous = {
                let mut m = last_owner.lock().unwrap_or_else(|p| p.into_inner());
                match (&owner, change.deleted) {
                    (Some(o), false) => m.insert(uid, o.clone()),
                    _ => m.remove(&uid),
                }
            };
            let mut keys: Vec<ObjectKey> = previous
                .filter(|p| Some(p) != owner.as_ref())
                .into_iter()
                .collect();
            match owner {
                Some(k) => keys.push(k),
                None if !change.deleted => {
                    let labels = rs.metadata.labels.clone().unwrap_or_default();
                    keys.extend(Self::matching(&deployments, ns, &labels));
                }
                None => {}
            }
            keys
        }
    }

    /// A deleted pod may be the last old one a Recreate rollout waits for.
    pub fn pod_keys(&self) -> impl Fn(&Change<Pod>) -> Vec<ObjectKey> + Send + Sync + 'static {
        let rss = self.replica_sets.clone();
        let deployments = self.deployments.clone();
        move |change| {
            if !change.deleted {
                return Vec::new();
            }
            let pod = change.obj.as_ref();
            let ns = pod.metadata.namespace.as_deref();
            let Some(rs) = controller_of(&pod.metadata)
                .filter(|r| r.kind == "ReplicaSet")
                .and_then(|r| rss.get(ns, &r.name))
            else {
                return Vec::new();
            };
            controller_of(&rs.metadata)
                .filter(|r| r.kind == "Deployment")
                .and_then(|r| deployments.get(ns, &r.name))
                .filter(|d| util::strategy_type(d) == "Recreate")
                .map(|d| vec![ObjectKey::of(d.as_ref())])
                .unwrap_or_default()
        }
    }

    fn record(&self, d: &Deployment, type_: &'static str, reason: &str, message: String) {
        self.cluster
            .record(ObjectEvent::of(d, type_, reason, message).from(COMPONENT));
    }

    /// The ReplicaSets `d` owns after adopting and releasing.
    async fn claim_replica_sets(
        &self,
        d: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<ReplicaSet>, ClusterError> {
        let ns = d.metadata.namespace.as_deref();
        let candidates: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .list()
            .into_iter()
            .filter(|r| r.metadata.namespace.as_deref() == ns)
            .collect();
        let owned = controller_ref::claim(self.cluster.as_ref(), d, selector, candidates).await?;
        Ok(owned.iter().map(|r| r.as_ref().clone()).collect())
    }

    /// Whether any pod of the old ReplicaSets may still run (Recreate waits for none).
    fn old_pods_running(
        &self,
        d: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> bool {
        if util::sum_actual(old) > 0 {
            return true;
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .filter(|u| new.and_then(|n| n.metadata.uid.as_deref()) != Some(*u))
            .collect();
        let ns = d.metadata.namespace.as_deref();
        self.pods.list().iter().any(|p| {
            p.metadata.namespace.as_deref() == ns
                && controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid.as_str()))
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(cached) = self.deployments.get(key.namespace.as_deref(), &key.name) else {
            return Ok(Requeue::Done);
        };
        let mut d = cached.as_ref().clone();
        let selector = match selector_of(&d) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(deployment = %key, error = %e, "invalid selector; ignored");
                return Ok(Requeue::Done);
            }
        };
        if selector.is_empty() {
            self.record(
                &d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            if d.status.as_ref().and_then(|s| s.observed_generation) < d.metadata.generation {
                let mut s = d.status.clone().unwrap_or_default();
                s.observed_generation = d.metadata.generation;
                d.status = Some(s);
                self.cluster.replace_status(&d).await?;
            }
            return Ok(Requeue::Done);
        }
        let rs_list = self.claim_replica_sets(&d, &selector).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new, old) = self.new_and_old(&mut d, &rs_list, false).await?;
            self.sync_status(&mut d, new.as_ref(), &old).await?;
            return Ok(Requeue::Done);
        }
        self.check_paused_conditions(&mut d).await?;
        let (new, old) = self.new_and_old(&mut d, &rs_list, false).await?;
        if util::paused(&d) || self.is_scaling_event(&d, new.as_ref(), &old) {
            self.sync_scale(&mut d, new, old).await?;
            return Ok(Requeue::Done);
        }
        match util::strategy_type(&d) {
            "Recreate" => self.rollout_recreate(&mut d, new, old).await,
            "RollingUpdate" => self.rollout_rolling(&mut d, new, old).await,
            other => Err(ReconcileError::Other(format!(
                "unexpected deployment strategy type: {other}"
            ))),
        }
    }
}

impl<C: Cluster> Reconciler for DeploymentController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        self.sync(key).await
    }
}
