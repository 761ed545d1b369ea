//! The StatefulSet controller, after kube-controller-manager's: pods with stable names
//! `<set>-<ordinal>`, created in order and each Running and Ready before the next
//! (`OrderedReady`) or all at once (`Parallel`), removed from the highest ordinal down; one
//! PersistentVolumeClaim per pod and claim template; rolling updates from the highest ordinal
//! down to the partition, or none (`OnDelete`); the template history in ControllerRevisions
//! (`kubectl rollout history|undo`), and the status `kubectl rollout status` waits on.

mod identity;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;

pub use identity::{POD_INDEX_LABEL, POD_NAME_LABEL};
use identity::{name, namespace, ordinal_in, replicas, start_ordinal};

use super::context::{Ctx, Informers};
use super::revision_history::{
    self as history, HASH_LABEL, POD_REVISION_LABEL, controller_ref, controller_uid, data_of,
};
use super::runtime::{
    Change, Cluster, Delete, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue,
    WorkQueue, controller_owner, itself, run, watch,
};
use super::set_pods::{self, is_finished, is_running_and_ready, is_terminating};

const COMPONENT: &str = "statefulset-controller";

/// Starts the controller on `ctx`: watches of StatefulSets, their pods and their revisions.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(StatefulSetController::new(ctx));
    vec![
        watch(&ctx.informers.stateful_sets, queue.clone(), itself),
        watch(&ctx.informers.pods, queue.clone(), pod_keys),
        watch(&ctx.informers.controller_revisions, queue.clone(), |c| {
            controller_owner(c, "StatefulSet")
        }),
        run(r, queue, ctx.settings.workers),
    ]
}

/// A pod's set; an orphan named like a member wakes the set of that name, which may adopt it.
fn pod_keys(change: &Change<Pod>) -> Vec<ObjectKey> {
    let m = &change.obj.metadata;
    if controller_uid(m).is_some() {
        return controller_owner(change, "StatefulSet");
    }
    m.name
        .as_deref()
        .and_then(identity::parent_and_ordinal)
        .map(|(parent, _)| ObjectKey::new(m.namespace.as_deref(), parent))
        .into_iter()
        .collect()
}

pub struct StatefulSetController<C> {
    cluster: Arc<C>,
    informers: Informers,
}

impl<C: Cluster> Reconciler for StatefulSetController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(set) = self
            .informers
            .stateful_sets
            .get(key.namespace.as_deref(), &key.name)
        else {
            return Ok(Requeue::Done);
        };
        self.sync(&set).await
    }
}

/// The two revisions a sync works with.
struct Revisions {
    current: Arc<ControllerRevision>,
    update: Arc<ControllerRevision>,
    current_template: PodTemplateSpec,
    update_template: PodTemplateSpec,
    all: Vec<Arc<ControllerRevision>>,
    collision_count: i32,
}

impl Revisions {
    fn current_name(&self) -> &str {
        self.current.metadata.name.as_deref().unwrap_or_default()
    }
    fn update_name(&self) -> &str {
        self.update.metadata.name.as_deref().unwrap_or_default()
    }
}

/// What one pass over the pods did and learned.
#[derive(Default)]
struct Pass {
    /// Uids of pods deleted in this pass (no longer counted in the status).
    deleted: HashSet<String>,
    /// When a pod becomes available, if the pass waits for that.
    wait: Option<Duration>,
}

impl Pass {
    fn wait_for(&mut self, d: Option<Duration>) {
        if let Some(d) = d {
            self.wait = Some(self.wait.map_or(d, |w| w.min(d)));
        }
    }
}

fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_REVISION_LABEL))
        .map(String::as_str)
        .unwrap_or_default()
}

fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn template(set: &StatefulSet) -> PodTemplateSpec {
    set.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// A percentage or count of `total`, rounded down, at least 1 (`maxUnavailable`).
fn scaled_down_at_least_one(v: &IntOrString, total: i32) -> i32 {
    let n = match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => s
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| (p * i64::from(total) / 100) as i32)
            .unwrap_or(1),
    };
    n.max(1)
}

impl<C: Cluster> StatefulSetController<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        StatefulSetController {
            cluster: ctx.cluster.clone(),
            informers: ctx.informers.clone(),
        }
    }

    fn event(&self, set: &StatefulSet, warning: bool, reason: &str, message: String) {
        let ev = if warning {
            ObjectEvent::warning(set, reason, message)
        } else {
            ObjectEvent::normal(set, reason, message)
        };
        self.cluster.record(ev.from(COMPONENT));
    }

    async fn sync(&self, set: &StatefulSet) -> Result<Requeue, ReconcileError> {
        let spec = set.spec.clone().unwrap_or_default();
        let selector = match Selector::from_label_selector(&spec.selector) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) | Err(_) => {
                // The API server refuses such sets; one stored before cannot be acted on.
                self.event(
                    set,
                    true,
                    "InvalidSelector",
                    "the StatefulSet's selector is empty or invalid".into(),
                );
                return Ok(Requeue::Done);
            }
        };
        let ns = namespace(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owner = controller_ref("StatefulSet", name(set), &uid);
        let deleting = set.metadata.deletion_timestamp.is_some();
        let pods = set_pods::claim(
            &*self.cluster,
            self.informers.pods.list(),
            ns,
            &owner,
            deleting,
            &selector,
            |p| ordinal_in(set, p).is_some(),
        )
        .await?;
        let revs = self.revisions(set, &selector, deleting).await?;
        let now = Timestamp::now();
        let mut pass = Pass::default();
        let result = if deleting {
            Ok(())
        } else {
            self.update_pods(set, &pods, &revs, now, &mut pass).await
        };
        let waits = self.write_status(set, &pods, &revs, &pass, now).await?;
        pass.wait_for(waits);
        let mut live: HashSet<String> = pods.iter().map(|p| revision_of(p).to_string()).collect();
        live.insert(revs.current_name().to_string());
        live.insert(revs.update_name().to_string());
        // Revisions no pod uses beyond the history limit go, oldest first.
        let unused = revs
            .all
            .iter()
            .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
            .count();
        let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        history::delete_oldest(
            &*self.cluster,
            &revs.all,
            &live,
            unused.saturating_sub(limit),
        )
        .await?;
        result?;
        Ok(pass.wait.map_or(Requeue::Done, Requeue::After))
    }

    /// The set's revisions, with the one for its current template created (or brought to the
    /// front again by a higher revision number, as a rollback does).
    async fn revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
        deleting: bool,
    ) -> Result<Revisions, ReconcileError> {
        let ns = namespace(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let mut all = history::owned(&self.informers.controller_revisions, ns, &uid);
        if !deleting {
            for orphan in history::orphans(&self.informers.controller_revisions, ns, selector) {
                match history::adopt(
                    &*self.cluster,
                    &orphan,
                    controller_ref("StatefulSet", name(set), &uid),
                )
                .await
                {
                    Ok(r) => all.push(Arc::new(r)),
                    Err(e) if e.is_conflict() || e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            all.sort_by_key(|r| r.revision);
        }
        let status = set.status.clone().unwrap_or_default();
        let mut collision_count = status.collision_count.unwrap_or(0);
        let template = template(set);
        let data = history::template_patch(&template);
        let next = history::next_revision(&all);
        let equal = all
            .iter()
            .rfind(|r| history::same_data(data_of(r), &data))
            .cloned();
        let update = match equal {
            Some(eq) if all.last().is_some_and(|l| Arc::ptr_eq(l, &eq)) => eq,
            Some(eq) => {
                let bumped: ControllerRevision = self
                    .cluster
                    .patch(
                        Some(ns),
                        eq.metadata.name.as_deref().unwrap_or_default(),
                        &json!({"revision": next}),
                    )
                    .await?;
                let bumped = Arc::new(bumped);
                for r in all.iter_mut() {
                    if r.metadata.uid == bumped.metadata.uid {
                        *r = bumped.clone();
                    }
                }
                all.sort_by_key(|r| r.revision);
                bumped
            }
            None if deleting => {
                // Nothing is made for a set on its way out; report what there is.
                match all.last() {
                    Some(l) => l.clone(),
                    None => return Err(ReconcileError::Other("no revisions yet".into())),
                }
            }
            None => {
                let created = self
                    .create_revision(set, &template, &data, next, &mut collision_count)
                    .await?;
                all.push(created.clone());
                created
            }
        };
        let current = all
            .iter()
            .find(|r| {
                r.metadata.name.is_some()
                    && r.metadata.name.as_deref() == status.current_revision.as_deref()
            })
            .cloned()
            .unwrap_or_else(|| update.clone());
        let current_template = history::template_of(data_of(&current)).unwrap_or(template.clone());
        let update_template = history::template_of(data_of(&update)).unwrap_or(template);
        Ok(Revisions {
            current,
            update,
            current_template,
            update_template,
            all,
            collision_count,
        })
    }

    async fn create_revision(
        &self,
        set: &StatefulSet,
        template: &PodTemplateSpec,
        data: &Value,
        number: i64,
        collision_count: &mut i32,
    ) -> Result<Arc<ControllerRevision>, ReconcileError> {
        let ns = namespace(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        loop {
            let hash = history::revision_hash(data, *collision_count);
            let rname = history::revision_name(name(set), &hash);
            let rev = history::new_revision(
                "StatefulSet",
                &set.metadata,
                template,
                (HASH_LABEL, hash),
                data,
                number,
            );
            match self.cluster.create(&rev).await {
                Ok(r) => return Ok(Arc::new(r)),
                Err(e) if e.is_already_exists() => {
                    match self.informers.controller_revisions.get(Some(ns), &rname) {
                        Some(ex)
                            if history::same_data(data_of(&ex), data)
                                && controller_uid(&ex.metadata) == Some(uid.as_str()) =>
                        {
                            return Ok(ex);
                        }
                        // Another template holds the name: the next hash.
                        Some(_) => *collision_count += 1,
                        // Made by an earlier pass the cache has not shown yet.
                        None => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Creates, recreates, deletes and updates pods toward the set's spec, stopping where
    /// `OrderedReady` must wait.
    async fn update_pods(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        revs: &Revisions,
        now: Timestamp,
        pass: &mut Pass,
    ) -> Result<(), ReconcileError> {
        let spec = set.spec.clone().unwrap_or_default();
        let start = start_ordinal(set);
        let n = replicas(set);
        let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let mut slots: Vec<Option<&Arc<Pod>>> = vec![None; n as usize];
        let mut condemned: Vec<(i32, &Arc<Pod>)> = Vec::new();
        for p in pods {
            match ordinal_in(set, p) {
                Some(o) if o >= start && o - start < n => slots[(o - start) as usize] = Some(p),
                Some(o) => condemned.push((o, p)),
                None => {}
            }
        }
        condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
        // The lowest ordinal that is missing or unhealthy: the one scale-down may remove
        // without waiting for it.
        let first_unhealthy = slots
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none_or(|p| !is_healthy(p)))
            .map(|(i, _)| start + i as i32)
            .chain(
                condemned
                    .iter()
                    .filter(|(_, p)| !is_healthy(p))
                    .map(|(o, _)| *o),
            )
            .min();

        for (i, slot) in slots.iter().enumerate() {
            let ord = start + i as i32;
            match slot {
                Some(pod) if is_finished(pod) => {
                    if !is_terminating(pod) {
                        let (reason, what) = if set_pods::phase(pod) == "Failed" {
                            ("RecreatingFailedPod", "failed")
                        } else {
                            ("RecreatingTerminatedPod", "terminated")
                        };
                        self.event(
                            set,
                            true,
                            reason,
                            format!(
                                "StatefulSet {}/{} is recreating {what} Pod {}",
                                namespace(set),
                                name(set),
                                identity::pod_name(set, ord)
                            ),
                        );
                        self.delete_pod(set, pod, pass).await?;
                    }
                    if monotonic {
                        return Ok(());
                    }
                }
                None => {
                    let created = self.create_pod(set, revs, ord).await?;
                    if monotonic || !created {
                        return Ok(());
                    }
                }
                Some(pod) => {
                    if matches!(set_pods::phase(pod), "" | "Pending") {
                        self.create_claims(set, ord).await?;
                    }
                    if monotonic && (is_terminating(pod) || !is_running_and_ready(pod)) {
                        return Ok(());
                    }
                    let (available, wait) = set_pods::availability(pod, min_ready, now);
                    if monotonic && !available {
                        pass.wait_for(wait);
                        return Ok(());
                    }
                    self.fix_claim_owners(set, pod, ord, false).await?;
                    self.fix_identity(set, pod, ord).await?;
                }
            }
        }

        for (ord, pod) in &condemned {
            if is_terminating(pod) {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            if monotonic && first_unhealthy != Some(*ord) {
                if !is_running_and_ready(pod) {
                    return Ok(());
                }
                let (available, wait) = set_pods::availability(pod, min_ready, now);
                if !available {
                    pass.wait_for(wait);
                    return Ok(());
                }
            }
            self.fix_claim_owners(set, pod, *ord, true).await?;
            self.delete_pod(set, pod, pass).await?;
            if monotonic {
                return Ok(());
            }
        }

        let strategy = spec.update_strategy.clone().unwrap_or_default();
        if strategy.type_.as_deref() == Some("OnDelete") {
            return Ok(());
        }
        let rolling = strategy.rolling_update.unwrap_or_default();
        let partition = rolling.partition.unwrap_or(0).clamp(0, n) as usize;
        let update = revs.update_name();
        if let Some(max) = &rolling.max_unavailable {
            // Several at a time: as many old pods as the unavailability budget leaves room for.
            let max = scaled_down_at_least_one(max, n);
            let unavailable = slots
                .iter()
                .filter(|p| p.is_none_or(|p| !is_healthy(p)))
                .count() as i32;
            let mut budget = max - unavailable;
            for slot in slots[partition..].iter().rev() {
                if budget <= 0 {
                    break;
                }
                if let Some(pod) = slot
                    && revision_of(pod) != update
                    && !is_terminating(pod)
                {
                    self.delete_pod(set, pod, pass).await?;
                    budget -= 1;
                }
            }
            return Ok(());
        }
        for slot in slots[partition..].iter().rev() {
            let Some(pod) = slot else { return Ok(()) };
            if revision_of(pod) != update && !is_terminating(pod) {
                return self.delete_pod(set, pod, pass).await;
            }
            if !is_healthy(pod) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Creates the pod of `ord` (and its claims) at the revision its ordinal gets; false when
    /// it already exists (the cache is behind).
    async fn create_pod(
        &self,
        set: &StatefulSet,
        revs: &Revisions,
        ord: i32,
    ) -> Result<bool, ReconcileError> {
        let spec = set.spec.clone().unwrap_or_default();
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
        let start = start_ordinal(set);
        let current_replicas = set
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        // Below the partition pods stay at the current revision; above, they are updated.
        let at_current = match &strategy.rolling_update {
            None => rolling && ord < start + current_replicas,
            Some(r) => ord < start + r.partition.unwrap_or(0),
        };
        let (template, revision) = if at_current {
            (&revs.current_template, revs.current_name())
        } else {
            (&revs.update_template, revs.update_name())
        };
        self.create_claims(set, ord).await?;
        let pod = identity::new_pod(set, template, ord, revision);
        let pod_name = identity::pod_name(set, ord);
        match self.cluster.create(&pod).await {
            Ok(_) => {
                self.event(
                    set,
                    false,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} successful",
                        name(set)
                    ),
                );
                Ok(true)
            }
            Err(e) if e.is_already_exists() => Ok(false),
            Err(e) => {
                self.event(
                    set,
                    true,
                    "FailedCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} failed error: {}",
                        name(set),
                        e.message
                    ),
                );
                Err(e.into())
            }
        }
    }

    /// Creates the claims of the pod of `ord` that do not exist yet.
    async fn create_claims(&self, set: &StatefulSet, ord: i32) -> Result<(), ReconcileError> {
        let pod_name = identity::pod_name(set, ord);
        for mut claim in identity::claims_for(set, ord) {
            let cname = claim.metadata.name.clone().unwrap_or_default();
            match self.informers.pvcs.get(Some(namespace(set)), &cname) {
                Some(c) if c.metadata.deletion_timestamp.is_some() => {
                    return Err(ReconcileError::Other(format!(
                        "pvc {cname} is being deleted"
                    )));
                }
                Some(_) => continue,
                None => {}
            }
            // Claims that go with the set are owned by it from the start.
            let placeholder = Pod::default();
            claim.metadata.owner_references =
                identity::claim_owners(set, &placeholder, false, &[]).filter(|r| !r.is_empty());
            match self.cluster.create(&claim).await {
                Ok(_) => self.event(
                    set,
                    false,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {cname} Pod {pod_name} in StatefulSet {} success",
                        name(set)
                    ),
                ),
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    self.event(
                        set,
                        true,
                        "FailedCreate",
                        format!(
                            "create Claim {cname} for Pod {pod_name} in StatefulSet {} failed error: {}",
                            name(set),
                            e.message
                        ),
                    );
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Brings the owners of the pod's claims in line with the retention policy.
    async fn fix_claim_owners(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        ord: i32,
        scaled_down: bool,
    ) -> Result<(), ReconcileError> {
        for claim in identity::claims_for(set, ord) {
            let cname = claim.metadata.name.clone().unwrap_or_default();
            let Some(existing) = self.informers.pvcs.get(Some(namespace(set)), &cname) else {
                continue;
            };
            let current = existing
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            let Some(refs) = identity::claim_owners(set, pod, scaled_down, &current) else {
                continue;
            };
            let patch = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": existing.metadata.resource_version,
            }});
            match self
                .cluster
                .patch::<PersistentVolumeClaim>(Some(namespace(set)), &cname, &patch)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Puts back identity labels someone removed.
    async fn fix_identity(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        ord: i32,
    ) -> Result<(), ReconcileError> {
        if identity::identity_matches(set, pod, ord) {
            return Ok(());
        }
        let labels: BTreeMap<_, _> = identity::identity_labels(set, ord);
        let pname = identity::pod_name(set, ord);
        match self
            .cluster
            .patch::<Pod>(
                Some(namespace(set)),
                &pname,
                &json!({"metadata": {"labels": labels}}),
            )
            .await
        {
            Ok(_) => {
                self.event(
                    set,
                    false,
                    "SuccessfulUpdate",
                    format!("update Pod {pname} in StatefulSet {} successful", name(set)),
                );
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_pod(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        pass: &mut Pass,
    ) -> Result<(), ReconcileError> {
        let pname = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let how = Delete {
            uid: Some(uid.clone()),
            ..Default::default()
        };
        match self
            .cluster
            .delete::<Pod>(Some(namespace(set)), &pname, &how)
            .await
        {
            Ok(()) => {
                pass.deleted.insert(uid);
                self.event(
                    set,
                    false,
                    "SuccessfulDelete",
                    format!("delete Pod {pname} in StatefulSet {} successful", name(set)),
                );
                Ok(())
            }
            // Gone already, or replaced by a pod the cache has not shown yet.
            Err(e) if e.is_not_found() || e.is_conflict() => {
                pass.deleted.insert(uid);
                Ok(())
            }
            Err(e) => {
                self.event(
                    set,
                    true,
                    "FailedDelete",
                    format!(
                        "delete Pod {pname} in StatefulSet {} failed error: {}",
                        name(set),
                        e.message
                    ),
                );
                Err(e.into())
            }
        }
    }

    /// Writes the status the pods show, when it changed; returns how long until a Ready pod
    /// becomes available, if one is waiting for `minReadySeconds`.
    async fn write_status(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        revs: &Revisions,
        pass: &Pass,
        now: Timestamp,
    ) -> Result<Option<Duration>, ReconcileError> {
        let spec = set.spec.clone().unwrap_or_default();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
        let mut wait: Option<Duration> = None;
        for p in pods {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if ordinal_in(set, p).is_none() || pass.deleted.contains(&uid) {
                continue;
            }
            replicas += 1;
            if is_running_and_ready(p) {
                ready += 1;
                match set_pods::availability(p, min_ready, now) {
                    (true, _) => available += 1,
                    (false, Some(w)) => wait = Some(wait.map_or(w, |x| x.min(w))),
                    (false, None) => {}
                }
            }
            if !is_terminating(p) {
                let r = revision_of(p);
                if r == revs.current_name() {
                    current += 1;
                }
                if r == revs.update_name() {
                    updated += 1;
                }
            }
        }
        let mut current_revision = revs.current_name().to_string();
        let rolling = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        if rolling && updated == replicas && ready == replicas {
            current = updated;
            current_revision = revs.update_name().to_string();
        }
        let old = set.status.clone().unwrap_or_default();
        let status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas,
            ready_replicas: Some(ready),
            available_replicas: Some(available),
            current_replicas: Some(current),
            updated_replicas: Some(updated),
            current_revision: Some(current_revision),
            update_revision: Some(revs.update_name().to_string()),
            collision_count: Some(revs.collision_count),
            conditions: old.conditions.clone(),
        };
        let old_v = serde_json::to_value(&old).unwrap_or(Value::Null);
        let mut merged = old_v.clone();
        json_patch::merge(
            &mut merged,
            &serde_json::to_value(&status).unwrap_or(Value::Null),
        );
        if merged != old_v {
            let _: StatefulSet = self
                .cluster
                .patch_status(Some(namespace(set)), name(set), &json!({"status": status}))
                .await?;
        }
        Ok(wait)
    }
}
