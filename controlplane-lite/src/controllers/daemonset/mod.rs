//! The DaemonSet controller, after kube-controller-manager's: one pod on every node the
//! template's node selector, required node affinity and tolerations admit (with the
//! tolerations every daemon pod gets), none elsewhere; nodes that join get a pod and nodes
//! that leave lose theirs; rolling updates within `maxUnavailable` or `maxSurge`, or none
//! (`OnDelete`); the template history in ControllerRevisions; the status `kubectl rollout
//! status` waits on.
//!
//! Pods carry the upstream node affinity (`matchFields` on `metadata.name`) and are also
//! bound by the controller itself (`spec.nodeName` set at creation), so they run whether or
//! not a scheduler is present.

mod placement;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use placement::{add_daemon_tolerations, should_run};
use plan::{ByNode, Plan, TEMPLATE_GENERATION_ANNOTATION, TEMPLATE_GENERATION_LABEL};

use super::context::{Ctx, Informers};
use super::revision_history::{
    self as history, POD_REVISION_LABEL, controller_ref, controller_uid, data_of,
};
use super::runtime::{
    Change, Cluster, Delete, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue,
    WorkQueue, controller_owner, itself, run, watch,
};
use super::set_pods::{self, is_ready, is_terminating};

const COMPONENT: &str = "daemonset-controller";
/// How long creates and deletes may go unseen by the caches before the set is synced anyway.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off for replacing pods that keep failing on a node.
const FAILED_BACKOFF_START: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// Creates and deletes in flight at once.
const BURST: usize = 16;

/// Starts the controller on `ctx`: watches of DaemonSets, their pods, their revisions and
/// the nodes.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(DaemonSetController::new(ctx));
    let sets = ctx.informers.daemon_sets.clone();
    let placed = Mutex::new(HashMap::new());
    vec![
        watch(&ctx.informers.daemon_sets, queue.clone(), itself),
        watch(&ctx.informers.pods, queue.clone(), |c| {
            controller_owner(c, "DaemonSet")
        }),
        watch(&ctx.informers.controller_revisions, queue.clone(), |c| {
            controller_owner(c, "DaemonSet")
        }),
        // A node that joins, leaves or changes labels or taints concerns every set; its
        // status heartbeats do not.
        watch(
            &ctx.informers.nodes,
            queue.clone(),
            move |c: &Change<Node>| {
                if !placement_changed(&placed, c) {
                    return Vec::new();
                }
                sets.list()
                    .iter()
                    .map(|d| ObjectKey::of(d.as_ref()))
                    .collect()
            },
        ),
        run(r, queue, ctx.settings.workers),
    ]
}

/// Whether a node change can change where daemon pods belong: the node is new or gone, or
/// its labels or taints changed since `seen` last saw it.
fn placement_changed(seen: &Mutex<HashMap<String, u64>>, change: &Change<Node>) -> bool {
    use std::hash::{Hash, Hasher};
    let node = &change.obj;
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if change.deleted {
        seen.remove(&name);
        return true;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.metadata.labels.hash(&mut h);
    serde_json::to_string(&node.spec.as_ref().and_then(|s| s.taints.as_ref()))
        .unwrap_or_default()
        .hash(&mut h);
    let fingerprint = h.finish();
    seen.insert(name, fingerprint) != Some(fingerprint)
}

/// Creates and deletes issued but not yet seen in the pod cache.
struct Expectations {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

pub struct DaemonSetController<C> {
    cluster: Arc<C>,
    informers: Informers,
    expectations: Mutex<HashMap<ObjectKey, Expectations>>,
    /// (set, node) → (last failure handled, current delay).
    failed_backoff: Mutex<HashMap<(ObjectKey, String), (Instant, Duration)>>,
}

impl<C: Cluster> Reconciler for DaemonSetController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(ds) = self
            .informers
            .daemon_sets
            .get(key.namespace.as_deref(), &key.name)
        else {
            self.lock_expectations().remove(key);
            return Ok(Requeue::Done);
        };
        self.sync(key, &ds).await
    }
}

fn name(ds: &DaemonSet) -> &str {
    ds.metadata.name.as_deref().unwrap_or_default()
}

fn namespace(ds: &DaemonSet) -> &str {
    ds.metadata.namespace.as_deref().unwrap_or_default()
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The pod spec nodes are judged against: the template's, with the daemon tolerations.
fn effective_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = template(ds).spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// The node a daemon pod belongs to: its binding, or the node its affinity pins it to.
fn node_of(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    match spec.node_name.as_deref() {
        Some(n) if !n.is_empty() => Some(n),
        _ => placement::pinned_node(spec),
    }
}

/// Kubernetes' `controller.ComputeHash` shape: FNV-1a over the template, then the collision
/// count's bytes.
fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let raw = serde_json::to_vec(template).unwrap_or_default();
    let probe = collision_count.map(|c| (c as u32).to_le_bytes());
    let h = match &probe {
        Some(p) => history::fnv1a_32(&[&raw, p]),
        None => history::fnv1a_32(&[&raw]),
    };
    history::safe_encode(&h.to_string())
}

fn hash_of(rev: &ControllerRevision) -> String {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_REVISION_LABEL).cloned())
        .or_else(|| rev.metadata.name.clone())
        .unwrap_or_default()
}

fn group_by_node(pods: &[Arc<Pod>]) -> ByNode {
    let mut by_node = ByNode::new();
    for p in pods {
        if let Some(n) = node_of(p) {
            by_node.entry(n.to_string()).or_default().push(p.clone());
        }
    }
    by_node
}

impl<C: Cluster> DaemonSetController<C> {
    /// The set's pods in the cache, by node.
    fn pods_by_node(&self, namespace: &str, uid: &str) -> ByNode {
        let pods: Vec<Arc<Pod>> = self
            .informers
            .pods
            .list()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter(|p| controller_uid(&p.metadata) == Some(uid))
            .collect();
        group_by_node(&pods)
    }

    pub fn new(ctx: &Ctx<C>) -> Self {
        DaemonSetController {
            cluster: ctx.cluster.clone(),
            informers: ctx.informers.clone(),
            expectations: Mutex::new(HashMap::new()),
            failed_backoff: Mutex::new(HashMap::new()),
        }
    }

    fn lock_expectations(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Expectations>> {
        self.expectations.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, ds: &DaemonSet, warning: bool, reason: &str, message: String) {
        let ev = if warning {
            ObjectEvent::warning(ds, reason, message)
        } else {
            ObjectEvent::normal(ds, reason, message)
        };
        self.cluster.record(ev.from(COMPONENT));
    }

    /// Whether the caches have caught up with the last creates and deletes; if not, how long
    /// until they are given up on.
    fn caught_up(&self, key: &ObjectKey, pods: &[Arc<Pod>]) -> (bool, Option<Duration>) {
        let mut all = self.lock_expectations();
        let Some(e) = all.get_mut(key) else {
            return (true, None);
        };
        e.creates
            .retain(|n| !pods.iter().any(|p| p.metadata.name.as_deref() == Some(n)));
        e.deletes.retain(|uid| {
            pods.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(uid) && !is_terminating(p))
        });
        let waited = e.since.elapsed();
        if (e.creates.is_empty() && e.deletes.is_empty()) || waited >= EXPECTATION_TIMEOUT {
            all.remove(key);
            return (true, None);
        }
        (false, Some(EXPECTATION_TIMEOUT - waited))
    }

    async fn sync(&self, key: &ObjectKey, ds: &DaemonSet) -> Result<Requeue, ReconcileError> {
        let spec = ds.spec.clone().unwrap_or_default();
        let selector = match Selector::from_label_selector(&spec.selector) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) | Err(_) => {
                self.event(
                    ds,
                    true,
                    "SelectingAll",
                    "This daemon set is selecting all pods. A non-empty selector is required."
                        .into(),
                );
                return Ok(Requeue::Done);
            }
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let ns = namespace(ds);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let owner = controller_ref("DaemonSet", name(ds), &uid);
        let pods = set_pods::claim(
            &*self.cluster,
            self.informers.pods.list(),
            ns,
            &owner,
            false,
            &selector,
            |_| true,
        )
        .await?;
        let (cur, old) = self.construct_history(ds, &selector).await?;
        let hash = hash_of(&cur);
        let nodes = self.informers.nodes.list();
        let eff = effective_spec(ds);
        let by_node = group_by_node(&pods);
        let now = Timestamp::now();
        let mut wait: Option<Duration> = None;
        let mut note_wait = |d: Option<Duration>| {
            if let Some(d) = d {
                wait = Some(wait.map_or(d, |w: Duration| w.min(d)));
            }
        };
        let (caught_up, until) = self.caught_up(key, &pods);
        note_wait(until);
        let mut result = Ok(());
        if caught_up {
            let mut step = plan::manage(ds, &eff, &nodes, &by_node, &hash, now);
            let (failed, backoff_wait) =
                self.admit_failed(key, ds, std::mem::take(&mut step.failed));
            note_wait(backoff_wait);
            step.delete.extend(failed);
            let rolling = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.type_.as_deref())
                .unwrap_or("RollingUpdate")
                == "RollingUpdate";
            if step.is_empty() && rolling {
                step = plan::rolling_update(ds, &eff, &nodes, &by_node, &hash, now);
            }
            result = self.apply(key, ds, &cur, &hash, step).await;
        }
        self.cleanup_history(ds, &old, &pods).await?;
        // The status counts what the cache shows now, this pass's changes included.
        let by_node = self.pods_by_node(ns, &uid);
        note_wait(
            self.write_status(ds, &eff, &nodes, &by_node, &hash, now)
                .await?,
        );
        result?;
        Ok(wait.map_or(Requeue::Done, Requeue::After))
    }

    /// Which failed pods may be replaced now, and how long until the next may.
    fn admit_failed(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
        failed: Vec<(String, Arc<Pod>)>,
    ) -> (Vec<Arc<Pod>>, Option<Duration>) {
        let mut out = Vec::new();
        let mut wait: Option<Duration> = None;
        let mut backoff = self
            .failed_backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for (node, pod) in failed {
            let k = (key.clone(), node.clone());
            if let Some((last, delay)) = backoff.get(&k).copied()
                && now < last + delay
            {
                let left = last + delay - now;
                wait = Some(wait.map_or(left, |w| w.min(left)));
                continue;
            }
            let delay = backoff.get(&k).map_or(FAILED_BACKOFF_START, |(_, d)| {
                (*d * 2).min(FAILED_BACKOFF_MAX)
            });
            backoff.insert(k, (now, delay));
            self.event(
                ds,
                true,
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                    namespace(ds),
                    pod.metadata.name.as_deref().unwrap_or_default()
                ),
            );
            out.push(pod);
        }
        (out, wait)
    }

    /// The pod for `node` from the current template.
    fn new_pod(&self, ds: &DaemonSet, template: &PodTemplateSpec, node: &str, hash: &str) -> Pod {
        let tmeta = template.metadata.clone().unwrap_or_default();
        let mut labels = tmeta.labels.unwrap_or_default();
        let generation = ds
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION).cloned())
            .or_else(|| ds.metadata.generation.map(|g| g.to_string()));
        if let Some(g) = generation {
            labels.insert(TEMPLATE_GENERATION_LABEL.into(), g);
        }
        labels.insert(POD_REVISION_LABEL.into(), hash.into());
        let mut spec = template.spec.clone().unwrap_or_default();
        add_daemon_tolerations(&mut spec);
        placement::pin_to_node(&mut spec, node);
        spec.node_name = Some(node.to_string());
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", name(ds))),
                namespace: Some(namespace(ds).to_string()),
                labels: Some(labels),
                annotations: tmeta.annotations,
                finalizers: tmeta.finalizers,
                owner_references: Some(vec![controller_ref(
                    "DaemonSet",
                    name(ds),
                    ds.metadata.uid.as_deref().unwrap_or_default(),
                )]),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    /// Carries out a plan, remembering what the caches should come to show.
    async fn apply(
        &self,
        key: &ObjectKey,
        ds: &DaemonSet,
        cur: &ControllerRevision,
        hash: &str,
        step: Plan,
    ) -> Result<(), ReconcileError> {
        if step.create_on.is_empty() && step.delete.is_empty() {
            return Ok(());
        }
        let template = history::template_of(data_of(cur)).unwrap_or_else(|| template(ds));
        let ns = namespace(ds).to_string();
        // The futures are collected first: a closure inside the stream's type defeats the
        // compiler's proof that the reconcile future is Send.
        let creates: Vec<_> = step
            .create_on
            .iter()
            .map(|node| {
                let pod = self.new_pod(ds, &template, node, hash);
                async move { self.cluster.create(&pod).await }
            })
            .collect();
        let creates = futures::stream::iter(creates)
            .buffer_unordered(BURST)
            .collect::<Vec<_>>()
            .await;
        let deletes: Vec<_> = step
            .delete
            .iter()
            .map(|pod| {
                let ns = ns.clone();
                async move {
                    let how = Delete {
                        uid: pod.metadata.uid.clone(),
                        ..Default::default()
                    };
                    let pname = pod.metadata.name.clone().unwrap_or_default();
                    (
                        pod,
                        self.cluster.delete::<Pod>(Some(&ns), &pname, &how).await,
                    )
                }
            })
            .collect();
        let deletes = futures::stream::iter(deletes)
            .buffer_unordered(BURST)
            .collect::<Vec<_>>()
            .await;

        let mut first_error = None;
        let mut expect = Expectations {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        };
        for r in creates {
            match r {
                Ok(p) => {
                    let pname = p.metadata.name.clone().unwrap_or_default();
                    self.event(
                        ds,
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {pname}"),
                    );
                    expect.creates.insert(pname);
                }
                Err(e) => {
                    self.event(
                        ds,
                        true,
                        "FailedCreate",
                        format!("Error creating: {}", e.message),
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        for (pod, r) in deletes {
            let pname = pod.metadata.name.clone().unwrap_or_default();
            match r {
                Ok(()) => {
                    self.event(
                        ds,
                        false,
                        "SuccessfulDelete",
                        format!("Deleted pod: {pname}"),
                    );
                    expect
                        .deletes
                        .insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => {
                    self.event(
                        ds,
                        true,
                        "FailedDelete",
                        format!("Error deleting: {}", e.message),
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        if !expect.creates.is_empty() || !expect.deletes.is_empty() {
            self.lock_expectations().insert(key.clone(), expect);
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The revision of the current template (made, or renumbered when an old template comes
    /// back) and the others.
    async fn construct_history(
        &self,
        ds: &DaemonSet,
        selector: &Selector,
    ) -> Result<(Arc<ControllerRevision>, Vec<Arc<ControllerRevision>>), ReconcileError> {
        let ns = namespace(ds);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let mut all = history::owned(&self.informers.controller_revisions, ns, &uid);
        for orphan in history::orphans(&self.informers.controller_revisions, ns, selector) {
            match history::adopt(
                &*self.cluster,
                &orphan,
                controller_ref("DaemonSet", name(ds), &uid),
            )
            .await
            {
                Ok(r) => all.push(Arc::new(r)),
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let template = template(ds);
        let data = history::template_patch(&template);
        let (mut current, mut old): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|r| history::same_data(data_of(r), &data));
        old.sort_by_key(|r| r.revision);
        let next = old.last().map_or(1, |r| r.revision + 1);
        current.sort_by_key(|r| r.revision);
        let cur = match current.pop() {
            None => self.snapshot(ds, &template, &data, next).await?,
            Some(keep) => {
                // Duplicates of the current template: their pods move to the one kept.
                let keep_hash = hash_of(&keep);
                for dup in current {
                    let dup_hash = hash_of(&dup);
                    for p in self.informers.pods.list().iter().filter(|p| {
                        p.metadata.namespace.as_deref() == Some(ns)
                            && controller_uid(&p.metadata) == Some(uid.as_str())
                            && p.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(POD_REVISION_LABEL))
                                == Some(&dup_hash)
                    }) {
                        let _: Pod = self
                            .cluster
                            .patch(
                                Some(ns),
                                p.metadata.name.as_deref().unwrap_or_default(),
                                &json!({"metadata": {"labels": {POD_REVISION_LABEL: keep_hash}}}),
                            )
                            .await?;
                    }
                    history::delete_oldest(
                        &*self.cluster,
                        std::slice::from_ref(&dup),
                        &HashSet::new(),
                        1,
                    )
                    .await?;
                }
                if keep.revision < next {
                    let r: ControllerRevision = self
                        .cluster
                        .patch(
                            Some(ns),
                            keep.metadata.name.as_deref().unwrap_or_default(),
                            &json!({"revision": next}),
                        )
                        .await?;
                    Arc::new(r)
                } else {
                    keep
                }
            }
        };
        Ok((cur, old))
    }

    /// Records the current template as a new revision.
    async fn snapshot(
        &self,
        ds: &DaemonSet,
        template: &PodTemplateSpec,
        data: &Value,
        number: i64,
    ) -> Result<Arc<ControllerRevision>, ReconcileError> {
        let ns = namespace(ds);
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(template, collision);
        let rname = history::revision_name(name(ds), &hash);
        let rev = history::new_revision(
            "DaemonSet",
            &ds.metadata,
            template,
            (POD_REVISION_LABEL, hash),
            data,
            number,
        );
        match self.cluster.create(&rev).await {
            Ok(r) => Ok(Arc::new(r)),
            Err(e) if e.is_already_exists() => {
                match self.informers.controller_revisions.get(Some(ns), &rname) {
                    Some(ex)
                        if history::same_data(data_of(&ex), data)
                            && controller_uid(&ex.metadata) == Some(uid.as_str()) =>
                    {
                        Ok(ex)
                    }
                    Some(_) => {
                        // Another template has this name: a new collision count gives a new
                        // hash on the next pass.
                        let bumped = collision.unwrap_or(0) + 1;
                        let _: DaemonSet = self
                            .cluster
                            .patch_status(
                                Some(ns),
                                name(ds),
                                &json!({"status": {"collisionCount": bumped}}),
                            )
                            .await?;
                        Err(e.into())
                    }
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes old revisions beyond the history limit that no pod runs.
    async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        old: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
    ) -> Result<(), ReconcileError> {
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let excess = old.len().saturating_sub(limit);
        if excess == 0 {
            return Ok(());
        }
        let live_hashes: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(POD_REVISION_LABEL))
            .map(String::as_str)
            .collect();
        let live: HashSet<String> = old
            .iter()
            .filter(|r| live_hashes.contains(hash_of(r).as_str()))
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        history::delete_oldest(&*self.cluster, old, &live, excess).await?;
        Ok(())
    }

    /// Writes the status the pods show, when it changed; returns how long until a Ready pod
    /// becomes available, if one is waiting for `minReadySeconds`.
    async fn write_status(
        &self,
        ds: &DaemonSet,
        eff: &PodSpec,
        nodes: &[Arc<Node>],
        by_node: &ByNode,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<Duration>, ReconcileError> {
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        let mut wait: Option<Duration> = None;
        for node in nodes {
            let nname = node.metadata.name.clone().unwrap_or_default();
            let (run, _) = should_run(eff, node);
            // Pods both finished and being deleted no longer count.
            let mut pods: Vec<Arc<Pod>> = by_node
                .get(&nname)
                .into_iter()
                .flatten()
                .filter(|p| !(is_terminating(p) && set_pods::is_finished(p)))
                .cloned()
                .collect();
            if !run {
                if !pods.is_empty() {
                    misscheduled += 1;
                }
                continue;
            }
            desired += 1;
            if pods.is_empty() {
                continue;
            }
            current += 1;
            plan::sort_oldest_first(&mut pods);
            let pod = &pods[0];
            if is_ready(pod) {
                ready += 1;
                match set_pods::availability(pod, min_ready, now) {
                    (true, _) => available += 1,
                    (false, Some(w)) => wait = Some(wait.map_or(w, |x: Duration| x.min(w))),
                    (false, None) => {}
                }
            }
            if plan::is_updated(ds, pod, hash) {
                updated += 1;
            }
        }
        let zero_is_absent = |n: i32| if n == 0 { Value::Null } else { json!(n) };
        let status = json!({
            "observedGeneration": ds.metadata.generation,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": zero_is_absent(available),
            "numberUnavailable": zero_is_absent(desired - available),
            "updatedNumberScheduled": zero_is_absent(updated),
        });
        let old = serde_json::to_value(ds.status.clone().unwrap_or_default())
            .unwrap_or_else(|_| json!({}));
        let mut merged = old.clone();
        json_patch::merge(&mut merged, &status);
        if merged != old {
            let _: DaemonSet = self
                .cluster
                .patch_status(Some(namespace(ds)), name(ds), &json!({"status": status}))
                .await?;
        }
        Ok(wait)
    }
}
