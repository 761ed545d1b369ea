//! The disruption controller, as kube-controller-manager's: keeps each
//! PodDisruptionBudget's status current — the pods it expects (from the scale of the pods'
//! controllers where a percentage or maxUnavailable needs it), the healthy (Ready) ones, how
//! many must stay healthy and so how many may be disrupted now — with the
//! `DisruptionAllowed` condition. Evictions write `disruptedPods` (pods about to go); the
//! controller does not count those as healthy, and drops an entry once its pod is being
//! deleted or gone, or when it was not deleted within two minutes.

pub mod status;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;

use self::status::{Computed, Scales, compute, set_failed};
use crate::controllers::clock::{Clock, SystemClock, until};
use crate::controllers::context::{Ctx, Informers};
use crate::controllers::runtime::{
    Change, Cluster, Kind, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue,
    itself, run, watch,
};

pub const COMPONENT: &str = "controllermanager";

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    start_with(ctx, Arc::new(SystemClock))
}

/// [`start`] with a given clock.
pub fn start_with<C: Cluster>(ctx: &Ctx<C>, clock: Arc<dyn Clock>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(DisruptionController::new(ctx, clock));
    let q = WorkQueue::new();
    let i = &ctx.informers;
    vec![
        watch(&i.pdbs, q.clone(), itself),
        watch(&i.pods, q.clone(), budgets_of_pod(i.pdbs.clone())),
        watch(
            &i.deployments,
            q.clone(),
            budgets_in_namespace(i.pdbs.clone()),
        ),
        watch(
            &i.replica_sets,
            q.clone(),
            budgets_in_namespace(i.pdbs.clone()),
        ),
        watch(
            &i.stateful_sets,
            q.clone(),
            budgets_in_namespace(i.pdbs.clone()),
        ),
        run(c, q, ctx.settings.workers),
    ]
}

/// The budget's pod selector: absent matches nothing, empty everything (policy/v1).
pub fn selector(pdb: &PodDisruptionBudget) -> Result<Selector, String> {
    let ls = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    Selector::from_optional_label_selector(ls).map_err(|e| e.to_string())
}

fn budgets_of_pod(
    pdbs: crate::controllers::runtime::Informer<PodDisruptionBudget>,
) -> impl Fn(&Change<Pod>) -> Vec<ObjectKey> + Send + Sync + 'static {
    move |change| {
        let pod = change.obj.as_ref();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        pdbs.list()
            .iter()
            .filter(|p| p.metadata.namespace == pod.metadata.namespace)
            .filter(|p| selector(p).is_ok_and(|s| s.matches(&labels)))
            .map(|p| ObjectKey::of(p.as_ref()))
            .collect()
    }
}

/// A workload's scale feeds the budgets of its namespace (which of them select its pods
/// is the reconcile's to find out).
fn budgets_in_namespace<K: Kind>(
    pdbs: crate::controllers::runtime::Informer<PodDisruptionBudget>,
) -> impl Fn(&Change<K>) -> Vec<ObjectKey> + Send + Sync + 'static {
    move |change| {
        let ns = change.obj.meta().namespace.clone();
        pdbs.list()
            .iter()
            .filter(|p| p.metadata.namespace == ns)
            .map(|p| ObjectKey::of(p.as_ref()))
            .collect()
    }
}

pub struct DisruptionController<C> {
    cluster: Arc<C>,
    informers: Informers,
    clock: Arc<dyn Clock>,
}

impl<C: Cluster> DisruptionController<C> {
    pub fn new(ctx: &Ctx<C>, clock: Arc<dyn Clock>) -> Self {
        DisruptionController {
            cluster: ctx.cluster.clone(),
            informers: ctx.informers.clone(),
            clock,
        }
    }

    fn pods_of(&self, pdb: &PodDisruptionBudget) -> Result<Vec<Arc<Pod>>, String> {
        let sel = selector(pdb)?;
        Ok(self
            .informers
            .pods
            .list()
            .into_iter()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .filter(|p| sel.matches(&p.metadata.labels.clone().unwrap_or_default()))
            .collect())
    }

    /// The desired replicas of every controller of `pods`, by controller uid, as
    /// upstream's finders: a Deployment (through its ReplicaSet), a ReplicaSet of its own,
    /// a StatefulSet. Pods without a controller are returned apart.
    fn scales(&self, ns: &str, pods: &[Arc<Pod>]) -> Scales {
        let mut out = Scales::default();
        for pod in pods {
            let Some(owner) = crate::controllers::controller_ref::controller_of(&pod.metadata)
            else {
                out.unmanaged
                    .push(pod.metadata.name.clone().unwrap_or_default());
                continue;
            };
            if out.replicas.contains_key(&owner.uid) {
                continue;
            }
            match self.find_scale(ns, &owner.kind, &owner.name, &owner.uid) {
                Some((uid, n)) => {
                    out.replicas.insert(uid, n);
                }
                None => {
                    out.error.get_or_insert_with(|| {
                        format!(
                            "found no controllers for pod {:?}",
                            pod.metadata.name.clone().unwrap_or_default()
                        )
                    });
                }
            }
        }
        out
    }

    fn find_scale(&self, ns: &str, kind: &str, name: &str, uid: &str) -> Option<(String, i32)> {
        let same = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.uid.as_deref() == Some(uid)
        };
        match kind {
            "ReplicaSet" => {
                let rs = self.informers.replica_sets.get(Some(ns), name)?;
                if !same(&rs.metadata) {
                    return None;
                }
                let by_deployment = crate::controllers::controller_ref::controller_of(&rs.metadata)
                    .filter(|o| o.kind == "Deployment");
                match by_deployment {
                    Some(o) => {
                        let d: Arc<Deployment> =
                            self.informers.deployments.get(Some(ns), &o.name)?;
                        (d.metadata.uid.as_deref() == Some(o.uid.as_str())).then(|| {
                            let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                            (o.uid.clone(), n)
                        })
                    }
                    None => {
                        let rs: &ReplicaSet = &rs;
                        Some((
                            uid.to_string(),
                            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        ))
                    }
                }
            }
            "StatefulSet" => {
                let ss: Arc<StatefulSet> = self.informers.stateful_sets.get(Some(ns), name)?;
                same(&ss.metadata).then(|| {
                    let n = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    (uid.to_string(), n)
                })
            }
            _ => None,
        }
    }

    fn event(&self, pdb: &PodDisruptionBudget, warning: bool, reason: &str, message: String) {
        let e = if warning {
            ObjectEvent::warning(pdb, reason, message)
        } else {
            ObjectEvent::normal(pdb, reason, message)
        };
        self.cluster.record(e.from(COMPONENT));
    }

    async fn write(
        &self,
        pdb: &PodDisruptionBudget,
        status: k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus,
    ) -> Result<(), ReconcileError> {
        if pdb.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut new = pdb.clone();
        new.status = Some(status);
        self.cluster.replace_status(&new).await?;
        Ok(())
    }
}

impl<C: Cluster> Reconciler for DisruptionController<C> {
    fn name(&self) -> &'static str {
        "disruption"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(pdb) = self.informers.pdbs.get(key.namespace.as_deref(), &key.name) else {
            return Ok(Requeue::Done);
        };
        let pdb = pdb.as_ref();
        let now = seconds(self.clock.now());
        let ns = key.namespace.as_deref().unwrap_or("");
        let pods = match self.pods_of(pdb) {
            Ok(p) => p,
            Err(e) => {
                self.event(pdb, true, "NoPods", format!("Failed to get pods: {e}"));
                self.write(pdb, set_failed(pdb, &e, now)).await?;
                return Err(ReconcileError::Other(e));
            }
        };
        if pods.is_empty() {
            self.event(pdb, false, "NoPods", "No matching pods found".into());
        }
        let scales = self.scales(ns, &pods);
        let computed = compute(pdb, &pods, &scales, now);
        match computed {
            Err(e) => {
                self.event(
                    pdb,
                    true,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                );
                self.write(pdb, set_failed(pdb, &e, now)).await?;
                Err(ReconcileError::Other(e))
            }
            Ok(Computed {
                status,
                recheck,
                not_deleted,
                used_scale,
            }) => {
                if used_scale && !scales.unmanaged.is_empty() {
                    let sel = pdb
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .map(|s| format!("{s:?}"))
                        .unwrap_or_default();
                    self.event(
                        pdb,
                        true,
                        "UnmanagedPods",
                        format!(
                            "Pods selected by this PodDisruptionBudget (selector: {sel}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
                        ),
                    );
                }
                for pod in not_deleted {
                    if let Some(p) = pods
                        .iter()
                        .find(|p| p.metadata.name.as_deref() == Some(&pod))
                    {
                        self.cluster.record(
                            ObjectEvent::warning(
                                p.as_ref(),
                                "NotDeleted",
                                format!(
                                    "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                                    ns,
                                    pdb.metadata.name.as_deref().unwrap_or_default()
                                ),
                            )
                            .from(COMPONENT),
                        );
                    }
                }
                self.write(pdb, status).await?;
                Ok(match recheck {
                    Some(at) => Requeue::After(until(now, at).max(Duration::from_secs(1))),
                    None => Requeue::Done,
                })
            }
        }
    }
}

/// Times in a status have seconds precision; comparing at that precision keeps a status
/// that did not change from being written again.
fn seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Pod name → when an eviction took it, as the budget records.
pub type Disrupted = BTreeMap<String, Timestamp>;
