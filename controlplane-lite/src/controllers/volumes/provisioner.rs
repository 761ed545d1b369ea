//! The built-in local-path provisioner, shaped after the one k3s ships: for a claim of a
//! class it provisions, once the claim has a node (WaitForFirstConsumer), a hostPath volume
//! `<dir>/<pv>_<namespace>_<claim>` of type DirectoryOrCreate (the node's agent makes the
//! directory when it mounts it) with a required node affinity for that node. When such a
//! volume is released with reclaim policy Delete, a helper pod on its node removes the
//! directory and then the volume is deleted.
//!
//! One queue holds both kinds of keys: a claim's has a namespace, a volume's has none.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::matching::{claim_class, claim_modes};
use super::{ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER, default_class};
use crate::controllers::context::{Ctx, Settings};
use crate::controllers::runtime::{
    Cluster, ClusterError, Delete, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler,
    Requeue,
};

/// The provisioner's name, in StorageClasses and on the volumes it makes.
pub const PROVISIONER: &str = "skiff.io/local-path";
/// The StorageClass made at start-up.
pub const CLASS: &str = "local-path";
/// The node a volume lives on, as Rancher's provisioner records it.
pub const ANN_NODE: &str = "local.path.provisioner/selected-node";
/// Where helper pods run.
pub const HELPER_NAMESPACE: &str = "kube-system";
/// Labels a helper pod with the volume it cleans up.
pub const HELPER_LABEL: &str = "skiff.io/local-path-volume";
/// How long a helper pod may take before the directory is given up on (the node may lack
/// the helper image, or be gone for good): the volume is deleted anyway, with a warning.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

pub struct LocalPath<C> {
    cluster: Arc<C>,
    /// Uids of volumes this provisioner deleted: a cache that still shows one must not get
    /// it a new helper pod.
    deleted: Mutex<HashSet<String>>,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    settings: Settings,
}

/// The `local-path` class: the default (unless another class already is), binding when the
/// first consumer is scheduled, volumes deleted with their claims.
pub fn storage_class(default: bool) -> StorageClass {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        crate::apiserver::kinds::admission::DEFAULT_CLASS_ANNOTATION.to_string(),
        default.to_string(),
    );
    StorageClass {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(CLASS.into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
}

/// Creates the `local-path` class if there is none, default unless another class is.
pub async fn ensure_class<C: Cluster>(cluster: &C, classes: &Informer<StorageClass>) {
    classes.synced().await;
    if classes.get(None, CLASS).is_some() {
        return;
    }
    let default = default_class(&classes.list()).is_none();
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=8 {
        match cluster.create(&storage_class(default)).await {
            Ok(_) => {
                tracing::info!(
                    class = CLASS,
                    default,
                    "created the local-path StorageClass"
                );
                return;
            }
            Err(e) if e.is_already_exists() => return,
            Err(e) if attempt == 8 => {
                tracing::warn!(error = %e, "cannot create the local-path StorageClass");
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the local-path StorageClass yet");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// The directory of a volume: `<dir>/<pv>_<namespace>_<claim>`, as Rancher's names it.
pub fn volume_dir(base: &Path, pv: &str, namespace: &str, claim: &str) -> String {
    base.join(format!("{pv}_{namespace}_{claim}"))
        .display()
        .to_string()
}

/// Whether `path` is a directory directly under `base` (so a helper pod never removes
/// anything else, whatever a volume object says).
fn is_volume_dir(base: &Path, path: &str) -> bool {
    let p = Path::new(path);
    p.parent() == Some(base)
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && p.file_name().is_some()
}

fn helper_name(pv: &str) -> String {
    let mut n = format!("helper-pod-delete-{pv}");
    n.truncate(63);
    n.trim_end_matches(['-', '.']).to_string()
}

fn annotation<'a, K: kube::Resource>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The path and node of a volume this provisioner made.
fn path_and_node(pv: &PersistentVolume) -> Option<(String, String)> {
    let spec = pv.spec.as_ref()?;
    let path = spec
        .host_path
        .as_ref()
        .map(|h| h.path.clone())
        .or_else(|| spec.local.as_ref().map(|l| l.path.clone()))?;
    let node = annotation(pv, ANN_NODE).map(str::to_string).or_else(|| {
        spec.node_affinity
            .as_ref()?
            .required
            .as_ref()?
            .node_selector_terms
            .iter()
            .flat_map(|t| t.match_expressions.iter().flatten())
            .find(|e| e.operator == "In")
            .and_then(|e| e.values.as_ref()?.first().cloned())
    })?;
    Some((path, node))
}

impl<C: Cluster> LocalPath<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        let i = &ctx.informers;
        LocalPath {
            cluster: ctx.cluster.clone(),
            deleted: Mutex::default(),
            claims: i.pvcs.clone(),
            volumes: i.pvs.clone(),
            classes: i.storage_classes.clone(),
            nodes: i.nodes.clone(),
            pods: i.pods.clone(),
            settings: ctx.settings.clone(),
        }
    }

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
        self.cluster.record(e.from(PROVISIONER));
    }

    fn failed(&self, claim: &PersistentVolumeClaim, why: impl Into<String>) -> Requeue {
        self.event(claim, true, "ProvisioningFailed", why);
        Requeue::Done
    }

    async fn provision(&self, claim: &PersistentVolumeClaim) -> Result<Requeue, ReconcileError> {
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty())
            || claim.metadata.deletion_timestamp.is_some()
            || annotation(claim, ANN_STORAGE_PROVISIONER) != Some(PROVISIONER)
        {
            return Ok(Requeue::Done);
        }
        let Some(class) = claim_class(claim)
            .filter(|c| !c.is_empty())
            .and_then(|c| self.classes.get(None, c))
            .filter(|c| c.provisioner == PROVISIONER)
        else {
            return Ok(Requeue::Done);
        };
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let pv_name = format!("pvc-{uid}");
        if self.volumes.get(None, &pv_name).is_some() {
            return Ok(Requeue::Done);
        }
        let Some(node_name) = annotation(claim, ANN_SELECTED_NODE) else {
            // Immediate binding: no node to put the directory on.
            return Ok(self.failed(
                claim,
                "configuration error, no node was specified: local volumes need a node; use volumeBindingMode WaitForFirstConsumer",
            ));
        };
        let Some(node) = self.nodes.get(None, node_name) else {
            return Ok(self.failed(claim, format!("nodes \"{node_name}\" not found")));
        };
        if spec.selector.is_some() {
            return Ok(self.failed(claim, "claim Selector is not supported"));
        }
        if spec.volume_mode.as_deref() == Some("Block") {
            return Ok(self.failed(claim, "Block volume mode is not supported"));
        }
        if let Some(m) = claim_modes(claim)
            .iter()
            .find(|m| !matches!(m.as_str(), "ReadWriteOnce" | "ReadWriteOncePod"))
        {
            return Ok(self.failed(
                claim,
                format!("access mode {m} is not supported: a local volume is on one node (ReadWriteOnce, ReadWriteOncePod)"),
            ));
        }
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        let cname = claim.metadata.name.clone().unwrap_or_default();
        self.event(
            claim,
            false,
            "Provisioning",
            format!("External provisioner is provisioning volume for claim \"{ns}/{cname}\""),
        );
        let path = volume_dir(&self.settings.local_path_dir, &pv_name, &ns, &cname);
        // Rancher's provisioner pins by the node's hostname label, or its name without one.
        let hostname = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/hostname"))
            .cloned()
            .unwrap_or_else(|| node_name.to_string());
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "0".into());
        let pv: PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {
                ANN_PROVISIONED_BY: PROVISIONER,
                ANN_NODE: node_name,
            }},
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": claim_modes(claim),
                "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
                "storageClassName": class.metadata.name,
                "volumeMode": "Filesystem",
                "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]},
                ]}]}},
                "claimRef": {
                    "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                    "namespace": ns, "name": cname, "uid": uid,
                    "resourceVersion": claim.metadata.resource_version,
                },
            },
        }))
        .map_err(|e| ReconcileError::Other(format!("building volume {pv_name}: {e}")))?;
        match self.cluster.create(&pv).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => return Ok(Requeue::Done),
            Err(e) => {
                self.event(claim, true, "ProvisioningFailed", e.message.clone());
                return Err(e.into());
            }
        }
        tracing::info!(claim = %format!("{ns}/{cname}"), volume = %pv_name, node = %node_name, %path, "provisioned");
        self.event(
            claim,
            false,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {pv_name}"),
        );
        Ok(Requeue::Done)
    }

    /// Deletes a released volume it made (reclaim policy Delete), its directory first.
    async fn delete_volume(&self, pv: &PersistentVolume) -> Result<Requeue, ReconcileError> {
        let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
        if annotation(pv, ANN_PROVISIONED_BY) != Some(PROVISIONER)
            || phase != Some("Released")
            || policy != Some("Delete")
        {
            return Ok(Requeue::Done);
        }
        let name = pv.metadata.name.clone().unwrap_or_default();
        let uid = pv.metadata.uid.clone().unwrap_or_default();
        if self
            .deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&uid)
        {
            return Ok(Requeue::Done);
        }
        let Some((path, node)) = path_and_node(pv) else {
            self.event(
                pv,
                true,
                "VolumeFailedDelete",
                "no path or node on the volume: its directory is left",
            );
            return self.remove_volume(pv).await;
        };
        if !is_volume_dir(&self.settings.local_path_dir, &path) {
            self.event(
                pv,
                true,
                "VolumeFailedDelete",
                format!(
                    "{path} is not a volume directory under {}: left alone",
                    self.settings.local_path_dir.display()
                ),
            );
            return self.remove_volume(pv).await;
        }
        if self.nodes.get(None, &node).is_none() {
            tracing::info!(volume = %name, %node, "node is gone; nothing to clean up");
            return self.remove_volume(pv).await;
        }
        let helper = helper_name(&name);
        let Some(pod) = self.pods.get(Some(HELPER_NAMESPACE), &helper) else {
            let pod = self.helper_pod(&helper, pv, &path, &node)?;
            match self.cluster.create(&pod).await {
                Ok(_) | Err(ClusterError { code: 409, .. }) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Requeue::After(HELPER_TIMEOUT));
        };
        let pod_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let age = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| {
                Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(t.0)).ok()
            })
            .unwrap_or_default();
        match pod_phase {
            Some("Succeeded") => {
                self.delete_helper(&helper).await?;
                tracing::info!(volume = %name, %node, %path, "volume directory removed");
                self.remove_volume(pv).await
            }
            Some("Failed") => {
                self.delete_helper(&helper).await?;
                self.event(
                    pv,
                    true,
                    "VolumeFailedDelete",
                    format!("the helper pod failed to remove {path} on node {node}; retrying"),
                );
                Err(ReconcileError::Other(format!(
                    "helper pod {helper} failed on {node}"
                )))
            }
            _ if age >= HELPER_TIMEOUT => {
                self.delete_helper(&helper).await?;
                self.event(
                    pv,
                    true,
                    "VolumeFailedDelete",
                    format!(
                        "the helper pod did not remove {path} on node {node} within {}s; the directory is left there",
                        HELPER_TIMEOUT.as_secs()
                    ),
                );
                self.remove_volume(pv).await
            }
            _ => Ok(Requeue::After(HELPER_TIMEOUT - age)),
        }
    }

    /// The pod that removes `path` on `node`. The volume owns it, so the garbage collector
    /// removes a helper whatever becomes of the volume.
    fn helper_pod(
        &self,
        helper: &str,
        pv: &PersistentVolume,
        path: &str,
        node: &str,
    ) -> Result<Pod, ReconcileError> {
        let parent = self.settings.local_path_dir.display().to_string();
        let pv_name = pv.metadata.name.as_deref().unwrap_or("");
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": helper, "namespace": HELPER_NAMESPACE, "labels": {HELPER_LABEL: pv_name},
                "ownerReferences": [{"apiVersion": "v1", "kind": "PersistentVolume",
                    "name": pv_name, "uid": pv.metadata.uid}],
            },
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{
                    "name": "helper-pod",
                    "image": self.settings.local_path_helper_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["rm", "-rf", path],
                    "volumeMounts": [{"name": "data", "mountPath": parent}],
                }],
                "volumes": [{"name": "data", "hostPath": {"path": parent, "type": "DirectoryOrCreate"}}],
            },
        }))
        .map_err(|e| ReconcileError::Other(format!("building helper pod {helper}: {e}")))
    }

    async fn delete_helper(&self, helper: &str) -> Result<(), ReconcileError> {
        let how = Delete {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match self
            .cluster
            .delete::<Pod>(Some(HELPER_NAMESPACE), helper, &how)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_volume(&self, pv: &PersistentVolume) -> Result<Requeue, ReconcileError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let how = Delete {
            uid: pv.metadata.uid.clone(),
            ..Default::default()
        };
        match self
            .cluster
            .delete::<PersistentVolume>(None, &name, &how)
            .await
        {
            Ok(()) => tracing::info!(volume = %name, "deleted released volume"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(uid) = &pv.metadata.uid {
            self.deleted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uid.clone());
        }
        Ok(Requeue::Done)
    }
}

impl<C: Cluster> Reconciler for LocalPath<C> {
    fn name(&self) -> &'static str {
        "local-path-provisioner"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        match key.namespace.as_deref() {
            Some(ns) => match self.claims.get(Some(ns), &key.name) {
                Some(c) => self.provision(&c).await,
                None => Ok(Requeue::Done),
            },
            None => match self.volumes.get(None, &key.name) {
                Some(v) => self.delete_volume(&v).await,
                None => Ok(Requeue::Done),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_helpers() {
        let base = Path::new("/var/lib/skiff/local-path");
        let d = volume_dir(base, "pvc-1", "ns", "data");
        assert_eq!(d, "/var/lib/skiff/local-path/pvc-1_ns_data");
        assert!(is_volume_dir(base, &d));
        assert!(!is_volume_dir(base, "/var/lib/skiff/local-path"));
        assert!(!is_volume_dir(base, "/var/lib/skiff/local-path/../x"));
        assert!(!is_volume_dir(base, "/etc"));
        assert!(!is_volume_dir(base, "/var/lib/skiff/local-path/a/b"));
        let h = helper_name("pvc-0123456789abcdef0123456789abcdef01234567");
        assert!(h.len() <= 63 && h.starts_with("helper-pod-delete-pvc-"));
    }
}
