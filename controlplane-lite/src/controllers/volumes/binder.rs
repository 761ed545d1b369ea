//! The persistentvolume-binder: binds claims to volumes (both sides, volume first, with
//! compare-and-swap so two claims never get one volume), gives class-less claims the default
//! class, hands claims with a class to their provisioner, waits for a consumer in
//! WaitForFirstConsumer classes, and releases and reclaims volumes whose claim is gone.
//!
//! One queue holds both kinds of keys: a claim's has a namespace, a volume's has none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use tokio::time::Instant;

use super::matching::{
    claim_class, claims_of, find_best_match, is_bound_to, unsatisfied, volume_mode_mismatch,
};
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, default_class,
};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue,
};

pub const COMPONENT: &str = "persistentvolume-controller";

/// How often the same event about the same object may be recorded again.
pub const REPEAT_EVERY: Duration = Duration::from_secs(15);

pub struct Binder<C> {
    cluster: Arc<C>,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// Events recently recorded: (uid, reason, message) → when.
    said: Mutex<HashMap<(String, String, String), Instant>>,
}

fn has_annotation<K: kube::Resource>(obj: &K, key: &str) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

fn annotation<'a, K: kube::Resource>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn set_annotation<K: kube::Resource>(obj: &mut K, key: &str, value: &str) {
    obj.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), value.to_string());
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn volume_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
}

fn reclaim_policy(v: &PersistentVolume) -> &str {
    v.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

/// Whether the class binds only once a pod using the claim has a node.
pub fn waits_for_consumer(class: Option<&StorageClass>) -> bool {
    class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer")
}

impl<C: Cluster> Binder<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        let i = &ctx.informers;
        Binder {
            cluster: ctx.cluster.clone(),
            claims: i.pvcs.clone(),
            volumes: i.pvs.clone(),
            classes: i.storage_classes.clone(),
            pods: i.pods.clone(),
            nodes: i.nodes.clone(),
            said: Mutex::default(),
        }
    }

    /// Records an event; the same one about the same object is said again only after
    /// [`REPEAT_EVERY`] (a claim is looked at on every change of the volumes and pods around
    /// it, where upstream looks every 15 s).
    fn event<K: kube::Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        message: impl Into<String>,
    ) {
        let e = if warning {
            ObjectEvent::warning(obj, reason, message)
        } else {
            ObjectEvent::normal(obj, reason, message)
        };
        let now = Instant::now();
        {
            let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
            said.retain(|_, at| now.duration_since(*at) < REPEAT_EVERY);
            let key = (e.uid.clone(), e.reason.clone(), e.message.clone());
            if said.contains_key(&key) {
                return;
            }
            said.insert(key, now);
        }
        self.cluster.record(e.from(COMPONENT));
    }

    /// Pods using the claim: (bound to a node, not yet scheduled).
    fn consumers(&self, claim: &PersistentVolumeClaim) -> (Option<String>, Vec<String>) {
        let ns = claim.metadata.namespace.as_deref();
        let name = claim.metadata.name.as_deref().unwrap_or("");
        let mut waiting = Vec::new();
        for p in self.pods.list() {
            if p.metadata.namespace.as_deref() != ns
                || p.metadata.deletion_timestamp.is_some()
                || !claims_of(&p).iter().any(|c| c == name)
            {
                continue;
            }
            match p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                Some(n) if !n.is_empty() => return (Some(n.to_string()), Vec::new()),
                _ => waiting.push(p.metadata.name.clone().unwrap_or_default()),
            }
        }
        waiting.sort();
        (None, waiting)
    }

    async fn set_claim_phase(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<PersistentVolumeClaim, ReconcileError> {
        let mut new = claim.clone();
        let status = new.status.get_or_insert_with(Default::default);
        status.phase = Some(phase.to_string());
        match volume {
            Some(v) => {
                let spec = v.spec.clone().unwrap_or_default();
                status.access_modes = spec.access_modes;
                status.capacity = spec.capacity;
            }
            // A pending claim shows no capacity of a volume it does not have.
            None if phase == "Pending" => {
                status.access_modes = None;
                status.capacity = None;
            }
            None => {}
        }
        if new.status == claim.status {
            return Ok(new);
        }
        Ok(self.cluster.replace_status(&new).await?)
    }

    async fn set_volume_phase(
        &self,
        volume: &PersistentVolume,
        phase: &str,
        message: Option<&str>,
    ) -> Result<PersistentVolume, ReconcileError> {
        let mut new = volume.clone();
        let status = new.status.get_or_insert_with(Default::default);
        let changed = status.phase.as_deref() != Some(phase);
        status.phase = Some(phase.to_string());
        status.message = message.map(str::to_string);
        if changed {
            status.last_phase_transition_time = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        }
        if new.status == volume.status {
            return Ok(new);
        }
        Ok(self.cluster.replace_status(&new).await?)
    }

    /// Binds both sides: the volume's claimRef and phase, then the claim's volumeName,
    /// annotations and status. Each step is skipped when already done.
    async fn bind(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<(), ReconcileError> {
        let mut v = volume.clone();
        let want = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        };
        let current = claim_ref(&v);
        let same = current.is_some_and(|r| {
            r.name == want.name && r.namespace == want.namespace && r.uid == want.uid
        });
        if !same {
            let by_controller = !is_bound_to(&v, claim);
            v.spec.get_or_insert_with(Default::default).claim_ref = Some(want);
            if by_controller {
                set_annotation(&mut v, ANN_BOUND_BY_CONTROLLER, "yes");
            }
            v = self.cluster.replace(&v).await?;
        }
        let v = self.set_volume_phase(&v, "Bound", None).await?;

        let mut c = claim.clone();
        let vname = v.metadata.name.clone().unwrap_or_default();
        let newly = claim_phase(claim) != "Bound";
        let mut changed = false;
        if volume_name(&c) != vname {
            c.spec.get_or_insert_with(Default::default).volume_name = Some(vname.clone());
            set_annotation(&mut c, ANN_BOUND_BY_CONTROLLER, "yes");
            changed = true;
        }
        if !has_annotation(&c, ANN_BIND_COMPLETED) {
            set_annotation(&mut c, ANN_BIND_COMPLETED, "yes");
            changed = true;
        }
        if changed {
            c = self.cluster.replace(&c).await?;
        }
        self.set_claim_phase(&c, "Bound", Some(&v)).await?;
        if newly {
            tracing::info!(claim = %ObjectKey::of(claim), volume = %vname, "bound");
        }
        Ok(())
    }

    async fn sync_claim(&self, claim: &PersistentVolumeClaim) -> Result<Requeue, ReconcileError> {
        if has_annotation(claim, ANN_BIND_COMPLETED) {
            self.sync_bound_claim(claim).await
        } else {
            self.sync_unbound_claim(claim).await
        }
    }

    async fn sync_unbound_claim(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Requeue, ReconcileError> {
        let named = volume_name(claim);
        if !named.is_empty() {
            return self.sync_prebound_claim(claim, named).await;
        }
        let ns = claim.metadata.namespace.as_deref();
        let cname = claim.metadata.name.as_deref().unwrap_or("");
        let class_name = claim_class(claim);
        let class = class_name
            .filter(|c| !c.is_empty())
            .and_then(|c| self.classes.get(None, c));
        let delay = waits_for_consumer(class.as_deref());
        let selected = annotation(claim, ANN_SELECTED_NODE).map(str::to_string);
        let mut waiting = Vec::new();
        if delay && selected.is_none() {
            // The scheduler names the node of the claim's first consumer; a pod bound
            // without it (by hand, or by a scheduler that does not) names it as well.
            let (bound, unscheduled) = self.consumers(claim);
            if let Some(node) = bound {
                let patch = json!({"metadata": {"annotations": {ANN_SELECTED_NODE: node}}});
                self.cluster
                    .patch::<PersistentVolumeClaim>(ns, cname, &patch)
                    .await?;
                // The claim's change brings it back here, with its node.
                return Ok(Requeue::Done);
            } else {
                waiting = unscheduled;
            }
        }
        let node = selected.as_deref().and_then(|n| self.nodes.get(None, n));
        let volumes = self.volumes.list();
        // Waiting for a consumer, only a volume pre-bound to the claim may be taken until
        // its node is known (and in the cache); then only one that can be used there.
        let node = node.as_deref().filter(|_| delay);
        let found = find_best_match(claim, &volumes, node, delay && node.is_none());
        if let Some(v) = found {
            self.bind(v, claim).await?;
            return Ok(Requeue::Done);
        }
        if class_name.is_none()
            && let Some(default) = default_class(&self.classes.list())
        {
            let patch = json!({"spec": {"storageClassName": default}});
            self.cluster
                .patch::<PersistentVolumeClaim>(ns, cname, &patch)
                .await?;
            tracing::info!(claim = %ObjectKey::of(claim), class = %default, "given the default storage class");
            return Ok(Requeue::Done);
        }
        let mut current = claim.clone();
        if delay && selected.is_none() {
            let (reason, message) = match waiting.as_slice() {
                [] => (
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding".to_string(),
                ),
                [one] => (
                    "WaitForPodScheduled",
                    format!("waiting for pod {one} to be scheduled"),
                ),
                many => (
                    "WaitForPodScheduled",
                    format!("waiting for pods {} to be scheduled", many.join(",")),
                ),
            };
            self.event(claim, false, reason, message);
        } else if let Some(name) = class_name.filter(|c| !c.is_empty()) {
            match &class {
                None => self.event(
                    claim,
                    true,
                    "ProvisioningFailed",
                    format!("storageclass.storage.k8s.io \"{name}\" not found"),
                ),
                Some(class) => {
                    let provisioner = class.provisioner.as_str();
                    if annotation(claim, ANN_STORAGE_PROVISIONER) != Some(provisioner) {
                        let patch = json!({"metadata": {"annotations": {
                            ANN_STORAGE_PROVISIONER: provisioner,
                            ANN_BETA_STORAGE_PROVISIONER: provisioner,
                        }}});
                        current = self
                            .cluster
                            .patch::<PersistentVolumeClaim>(ns, cname, &patch)
                            .await?;
                    }
                    self.event(
                        claim,
                        false,
                        "ExternalProvisioning",
                        format!(
                            "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
                        ),
                    );
                }
            }
        } else {
            self.event(
                claim,
                false,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            );
        }
        self.set_claim_phase(&current, "Pending", None).await?;
        Ok(Requeue::Done)
    }

    /// A claim that names its volume.
    async fn sync_prebound_claim(
        &self,
        claim: &PersistentVolumeClaim,
        named: &str,
    ) -> Result<Requeue, ReconcileError> {
        let Some(v) = self.volumes.get(None, named) else {
            self.set_claim_phase(claim, "Pending", None).await?;
            return Ok(Requeue::Done);
        };
        match claim_ref(&v) {
            None => {
                if let Some(why) = unsatisfied(&v, claim) {
                    self.event(
                        claim,
                        true,
                        "VolumeMismatch",
                        format!("Cannot bind to requested volume \"{named}\": {why}"),
                    );
                    self.set_claim_phase(claim, "Pending", None).await?;
                } else {
                    self.bind(&v, claim).await?;
                }
            }
            Some(_) if is_bound_to(&v, claim) => self.bind(&v, claim).await?,
            Some(_) => {
                // Someone else's: wait for it to be released to us.
                self.set_claim_phase(claim, "Pending", None).await?;
            }
        }
        Ok(Requeue::Done)
    }

    async fn sync_bound_claim(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Requeue, ReconcileError> {
        let named = volume_name(claim);
        if named.is_empty() {
            if claim_phase(claim) != "Lost" {
                self.set_claim_phase(claim, "Lost", None).await?;
                self.event(
                    claim,
                    true,
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                );
            }
            return Ok(Requeue::Done);
        }
        let Some(v) = self.volumes.get(None, named) else {
            if claim_phase(claim) != "Lost" {
                self.set_claim_phase(claim, "Lost", None).await?;
                self.event(
                    claim,
                    true,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                );
            }
            return Ok(Requeue::Done);
        };
        let uid_matches = claim_ref(&v).is_some_and(|r| r.uid == claim.metadata.uid);
        if claim_ref(&v).is_none() || uid_matches {
            // Unbound volume (fix it), or all bound (make sure of both statuses).
            self.bind(&v, claim).await?;
        } else {
            if claim_phase(claim) != "Lost" {
                self.set_claim_phase(claim, "Lost", None).await?;
                self.event(
                    claim,
                    true,
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                );
            }
        }
        Ok(Requeue::Done)
    }

    async fn sync_volume(&self, volume: &PersistentVolume) -> Result<Requeue, ReconcileError> {
        let Some(r) = claim_ref(volume) else {
            self.set_volume_phase(volume, "Available", None).await?;
            return Ok(Requeue::Done);
        };
        if r.uid.as_deref().unwrap_or("").is_empty() {
            // Pre-bound to a claim that has not bound to it yet.
            self.set_volume_phase(volume, "Available", None).await?;
            return Ok(Requeue::Done);
        }
        let claim = self
            .claims
            .get(r.namespace.as_deref(), r.name.as_deref().unwrap_or(""))
            .filter(|c| c.metadata.uid == r.uid);
        let Some(claim) = claim else {
            // Its claim is gone: released, then reclaimed by its policy.
            let volume = if matches!(volume_phase(volume), "Released" | "Failed") {
                volume.clone()
            } else {
                self.set_volume_phase(volume, "Released", None).await?
            };
            return self.reclaim(&volume).await;
        };
        let bound_to = volume_name(&claim);
        let name = volume.metadata.name.as_deref().unwrap_or("");
        if bound_to.is_empty() {
            if volume_mode_mismatch(&claim, volume) {
                self.event(
                    volume,
                    true,
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume to requested PersistentVolumeClaim {:?} due to incompatible volumeMode.",
                        claim.metadata.name.as_deref().unwrap_or("")
                    ),
                );
            }
            // The claim's own sync finishes the binding.
            return Ok(Requeue::Done);
        }
        if bound_to == name {
            self.set_volume_phase(volume, "Bound", None).await?;
            return Ok(Requeue::Done);
        }
        // The claim went to another volume.
        if has_annotation(volume, ANN_PROVISIONED_BY) && reclaim_policy(volume) == "Delete" {
            let volume = if matches!(volume_phase(volume), "Released" | "Failed") {
                volume.clone()
            } else {
                self.set_volume_phase(volume, "Released", None).await?
            };
            return self.reclaim(&volume).await;
        }
        self.unbind(volume).await?;
        Ok(Requeue::Done)
    }

    /// Frees a volume the controller bound (or drops the uid of one a user pre-bound).
    async fn unbind(&self, volume: &PersistentVolume) -> Result<(), ReconcileError> {
        let mut v = volume.clone();
        if has_annotation(&v, ANN_BOUND_BY_CONTROLLER) {
            if let Some(s) = v.spec.as_mut() {
                s.claim_ref = None;
            }
            if let Some(a) = v.metadata.annotations.as_mut() {
                a.remove(ANN_BOUND_BY_CONTROLLER);
            }
        } else if let Some(r) = v.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = None;
        }
        let v = self.cluster.replace(&v).await?;
        self.set_volume_phase(&v, "Available", None).await?;
        Ok(())
    }

    /// What happens to a released volume: Retain keeps it (Released, for an administrator);
    /// Delete is the provisioner's work for volumes it made, and fails for any other (there
    /// is no plugin here that could delete, say, an NFS export); Recycle (deprecated
    /// upstream) is refused: the volume is marked Failed and its data left alone.
    async fn reclaim(&self, volume: &PersistentVolume) -> Result<Requeue, ReconcileError> {
        match reclaim_policy(volume) {
            "Delete" => {
                if has_annotation(volume, ANN_PROVISIONED_BY) {
                    // The provisioner that made it deletes it.
                    return Ok(Requeue::Done);
                }
                if volume_phase(volume) != "Failed" {
                    let name = volume.metadata.name.as_deref().unwrap_or("");
                    let msg = format!(
                        "error getting deleter volume plugin for volume \"{name}\": no deletable volume plugin matched"
                    );
                    let v = self.set_volume_phase(volume, "Failed", Some(&msg)).await?;
                    self.event(&v, true, "VolumeFailedDelete", msg);
                }
            }
            "Recycle" if volume_phase(volume) != "Failed" => {
                let msg = "Recycle is not supported (it is deprecated): the volume's data is kept; delete the volume, or use the Retain or Delete policy";
                let v = self.set_volume_phase(volume, "Failed", Some(msg)).await?;
                self.event(&v, true, "VolumeFailedRecycle", msg);
            }
            _ => {}
        }
        Ok(Requeue::Done)
    }
}

impl<C: Cluster> Reconciler for Binder<C> {
    fn name(&self) -> &'static str {
        "persistentvolume-binder"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        match key.namespace.as_deref() {
            Some(ns) => match self.claims.get(Some(ns), &key.name) {
                Some(c) => self.sync_claim(&c).await,
                None => Ok(Requeue::Done),
            },
            None => match self.volumes.get(None, &key.name) {
                Some(v) => self.sync_volume(&v).await,
                None => Ok(Requeue::Done),
            },
        }
    }
}
