//! The scheduler's cache: the [`Snapshot`] kept current pod by pod and node by node from
//! the watches, plus the pods the scheduler has placed but the API server has not yet
//! confirmed ("assumed", as kube-scheduler calls them), so the next pod is placed before
//! the last bind returns and no cycle ever rescans every pod. Each change reports which
//! plugins' rejections it may lift, for the queue.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use super::framework::Nominations;
use super::node_info::NodeInfo;
use super::plugins::{Plugin, PluginSet};
use super::pod_info::{PodInfo, is_terminal};
use super::snapshot::Snapshot;

/// What freeing a pod's place may help.
pub fn pod_gone() -> PluginSet {
    PluginSet::of(&[
        Plugin::NodeResourcesFit,
        Plugin::NodePorts,
        Plugin::InterPodAffinity,
        Plugin::PodTopologySpread,
    ])
}

/// What a newly placed (or relabelled) pod may help: pods with affinity to it, and
/// spread constraints (a new domain minimum).
pub fn pod_placed() -> PluginSet {
    PluginSet::of(&[Plugin::InterPodAffinity, Plugin::PodTopologySpread])
}

/// What changed between two states of a node, as the plugins that may now pass.
fn node_change(old: &NodeInfo, new: &NodeInfo) -> PluginSet {
    let mut s = PluginSet::EMPTY;
    if old.labels != new.labels {
        s = s | PluginSet::of(&[
            Plugin::NodeAffinity,
            Plugin::PodTopologySpread,
            Plugin::InterPodAffinity,
            Plugin::VolumeBinding,
        ]);
    }
    if old.taints != new.taints {
        s = s | PluginSet::of(&[Plugin::TaintToleration, Plugin::PodTopologySpread]);
    }
    if old.allocatable != new.allocatable || old.allowed_pods != new.allowed_pods {
        s.insert(Plugin::NodeResourcesFit);
    }
    if old.unschedulable != new.unschedulable {
        s.insert(Plugin::NodeUnschedulable);
    }
    s
}

struct Placed {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    snap: Snapshot,
    pods: HashMap<String, Placed>,
    nominated: Nominations,
    nominated_at: HashMap<String, String>,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    pub fn nominations(&self) -> &Nominations {
        &self.nominated
    }

    /// A node appeared or changed.
    pub fn upsert_node(&mut self, node: &Node) -> PluginSet {
        match self.snap.upsert_node(node) {
            None => PluginSet::ALL,
            Some(old) => {
                let name = node.metadata.name.as_deref().unwrap_or_default();
                match self.snap.node(name) {
                    Some(new) => node_change(&old, new),
                    None => PluginSet::EMPTY,
                }
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        self.snap.remove_node(name);
    }

    pub fn upsert_namespace(&mut self, ns: &Namespace) -> PluginSet {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        if self.snap.namespace_labels(name) == Some(&labels) {
            return PluginSet::EMPTY;
        }
        self.snap.set_namespace(name, labels);
        Plugin::InterPodAffinity.bit()
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.snap.remove_namespace(name);
    }

    /// A claim appeared, changed or went away. Creations and updates may let pods that
    /// wait for it be placed (kube-scheduler registers no deletions for VolumeBinding).
    pub fn apply_claim(&mut self, c: &Arc<PersistentVolumeClaim>, deleted: bool) -> PluginSet {
        let ns = c.metadata.namespace.as_deref().unwrap_or_default();
        let name = c.metadata.name.as_deref().unwrap_or_default();
        let vols = &mut self.snap.volumes;
        if deleted {
            vols.remove_claim(ns, name);
            return PluginSet::EMPTY;
        }
        if vols
            .claim(ns, name)
            .is_some_and(|old| old.as_ref() == c.as_ref())
        {
            return PluginSet::EMPTY;
        }
        vols.set_claim(c.clone());
        Plugin::VolumeBinding.bit()
    }

    pub fn apply_volume(&mut self, v: &Arc<PersistentVolume>, deleted: bool) -> PluginSet {
        let vols = &mut self.snap.volumes;
        if deleted {
            vols.remove_volume(v.metadata.name.as_deref().unwrap_or_default());
            return PluginSet::EMPTY;
        }
        vols.set_volume(v.clone());
        Plugin::VolumeBinding.bit()
    }

    pub fn apply_class(&mut self, c: &Arc<StorageClass>, deleted: bool) -> PluginSet {
        let vols = &mut self.snap.volumes;
        if deleted {
            vols.remove_class(c.metadata.name.as_deref().unwrap_or_default());
            return PluginSet::EMPTY;
        }
        vols.set_class(c.clone());
        Plugin::VolumeBinding.bit()
    }

    /// The claims, volumes and classes the scheduler knows of (to find the ones a resync
    /// no longer lists).
    pub fn volumes(&self) -> &super::plugins::volume_binding::Volumes {
        &self.snap.volumes
    }

    /// Forgets claims, volumes and classes a full list no longer shows.
    pub fn drop_missing_volumes(
        &mut self,
        claims: &std::collections::HashSet<(String, String)>,
        volumes: &std::collections::HashSet<String>,
        classes: &std::collections::HashSet<String>,
    ) {
        let vols = &mut self.snap.volumes;
        for (ns, n) in vols.claim_keys() {
            if !claims.contains(&(ns.clone(), n.clone())) {
                vols.remove_claim(&ns, &n);
            }
        }
        for n in vols.volume_names() {
            if !volumes.contains(&n) {
                vols.remove_volume(&n);
            }
        }
        for n in vols.class_names() {
            if !classes.contains(&n) {
                vols.remove_class(&n);
            }
        }
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// Places a pod the API server has not confirmed yet; `pod.node_name` says where.
    pub fn assume(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name.clone() else {
            return;
        };
        self.clear_nomination(&pod.uid);
        if let Some(old) = self.pods.remove(&pod.uid) {
            self.snap.remove_pod(&old.node, &pod.uid);
        }
        self.pods.insert(
            pod.uid.clone(),
            Placed {
                node: node.clone(),
                assumed: true,
            },
        );
        self.snap.add_pod(&node, pod);
    }

    /// Takes back an assumed pod whose bind failed; a confirmed one stays.
    pub fn forget(&mut self, uid: &str) -> PluginSet {
        if !self.is_assumed(uid) {
            return PluginSet::EMPTY;
        }
        self.remove_pod(uid)
    }

    /// Applies a pod as the API server reports it: a pod on a node occupies it (an
    /// assumed one is confirmed); a finished or deleted one frees its place. Pending pods
    /// only matter for their nomination.
    pub fn apply_pod(&mut self, pod: &Pod, deleted: bool) -> PluginSet {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        if deleted || is_terminal(pod) {
            self.clear_nomination(uid);
            return self.remove_pod(uid);
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty());
        let Some(node) = node else {
            self.set_nomination(pod);
            return PluginSet::EMPTY;
        };
        self.clear_nomination(uid);
        let info = Arc::new(PodInfo::new(pod));
        let changed = match self.pods.get(uid) {
            None => pod_placed(),
            Some(p) if p.assumed || p.node != node => pod_placed(),
            Some(p) => {
                let labels_changed = self
                    .snap
                    .node(&p.node)
                    .and_then(|n| n.pods.iter().find(|x| x.uid == uid))
                    .is_none_or(|old| {
                        old.labels != info.labels || old.terminating != info.terminating
                    });
                if labels_changed {
                    pod_placed()
                } else {
                    PluginSet::EMPTY
                }
            }
        };
        if let Some(old) = self.pods.remove(uid) {
            self.snap.remove_pod(&old.node, uid);
        }
        self.pods.insert(
            uid.to_string(),
            Placed {
                node: node.to_string(),
                assumed: false,
            },
        );
        self.snap.add_pod(node, info);
        changed
    }

    fn remove_pod(&mut self, uid: &str) -> PluginSet {
        match self.pods.remove(uid) {
            Some(p) => {
                self.snap.remove_pod(&p.node, uid);
                pod_gone()
            }
            None => PluginSet::EMPTY,
        }
    }

    /// Every placed pod's uid (to find the ones a resync no longer lists).
    pub fn placed_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    fn set_nomination(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        self.clear_nomination(uid);
        let node = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = node {
            self.nominate(Arc::new(PodInfo::new(pod)), node);
        }
    }

    /// Drops placed pods a full list no longer shows (a resync after the watch lagged);
    /// assumed ones stay, their binds decide. Returns what that may help.
    pub fn drop_missing(&mut self, live: &std::collections::HashSet<String>) -> PluginSet {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, p)| !p.assumed && !live.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut s = PluginSet::EMPTY;
        for uid in gone {
            s = s | self.remove_pod(&uid);
        }
        s
    }

    /// Records that `pod` was nominated to `node` by preemption.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.clear_nomination(&pod.uid);
        self.nominated_at.insert(pod.uid.clone(), node.to_string());
        self.nominated
            .entry(node.to_string())
            .or_default()
            .push(pod);
    }

    fn clear_nomination(&mut self, uid: &str) {
        if let Some(node) = self.nominated_at.remove(uid)
            && let Some(list) = self.nominated.get_mut(&node)
        {
            list.retain(|p| p.uid != uid);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node_obj, pod_obj};
    use serde_json::json;

    fn bound(name: &str, node: &str, cpu: &str) -> Pod {
        pod_obj(name, &[], json!({"cpu": cpu}), json!({"nodeName": node}))
    }

    #[test]
    fn assume_confirm_and_forget() {
        let mut c = Cache::new();
        assert_eq!(
            c.upsert_node(&node_obj("n1", "4", "8Gi", 110, &[], json!([]))),
            PluginSet::ALL
        );
        let mut p = PodInfo::new(&pod_obj("a", &[], json!({"cpu": "1"}), json!({})));
        p.node_name = Some("n1".into());
        c.assume(Arc::new(p));
        assert!(c.is_assumed("a"));
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 1000);
        // The watch confirms it: counted once, no longer assumed.
        c.apply_pod(&bound("a", "n1", "1"), false);
        assert!(!c.is_assumed("a"));
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 1000);
        // A confirmed pod is not forgotten.
        assert_eq!(c.forget("a"), PluginSet::EMPTY);
        assert_eq!(c.snapshot().node("n1").unwrap().pods.len(), 1);

        let mut b = PodInfo::new(&pod_obj("b", &[], json!({"cpu": "1"}), json!({})));
        b.node_name = Some("n1".into());
        c.assume(Arc::new(b));
        assert_eq!(c.forget("b"), pod_gone());
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 1000);
    }

    #[test]
    fn finished_and_deleted_pods_free_their_place() {
        let mut c = Cache::new();
        c.upsert_node(&node_obj("n1", "4", "8Gi", 110, &[], json!([])));
        c.apply_pod(&bound("a", "n1", "1"), false);
        c.apply_pod(&bound("b", "n1", "1"), false);
        let mut done = bound("a", "n1", "1");
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert_eq!(c.apply_pod(&done, false), pod_gone());
        assert_eq!(c.apply_pod(&bound("b", "n1", "1"), true), pod_gone());
        assert_eq!(c.snapshot().node("n1").unwrap().requested.milli_cpu, 0);
        // The same update twice changes nothing.
        c.apply_pod(&bound("c", "n1", "1"), false);
        assert_eq!(c.apply_pod(&bound("c", "n1", "1"), false), PluginSet::EMPTY);
    }

    #[test]
    fn node_changes_name_the_plugins_they_help() {
        let mut c = Cache::new();
        c.upsert_node(&node_obj("n1", "4", "8Gi", 110, &[], json!([])));
        let same = c.upsert_node(&node_obj("n1", "4", "8Gi", 110, &[], json!([])));
        assert_eq!(same, PluginSet::EMPTY);
        let untainted = c.upsert_node(&node_obj(
            "n1",
            "4",
            "8Gi",
            110,
            &[],
            json!([{"key": "k", "effect": "NoSchedule"}]),
        ));
        assert!(untainted.contains(Plugin::TaintToleration));
        assert!(!untainted.contains(Plugin::NodeResourcesFit));
        let bigger = c.upsert_node(&node_obj(
            "n1",
            "8",
            "8Gi",
            110,
            &[],
            json!([{"key": "k", "effect": "NoSchedule"}]),
        ));
        assert_eq!(bigger, Plugin::NodeResourcesFit.bit());
    }

    #[test]
    fn volume_changes_wake_volume_binding() {
        let mut c = Cache::new();
        let claim: Arc<PersistentVolumeClaim> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "default"}}))
                .unwrap(),
        );
        assert_eq!(c.apply_claim(&claim, false), Plugin::VolumeBinding.bit());
        assert_eq!(c.apply_claim(&claim, false), PluginSet::EMPTY);
        assert!(c.volumes().claim("default", "data").is_some());
        // Deletions wake nobody, as kube-scheduler registers none.
        assert_eq!(c.apply_claim(&claim, true), PluginSet::EMPTY);
        assert!(c.volumes().claim("default", "data").is_none());
        c.upsert_node(&node_obj("n1", "4", "8Gi", 110, &[], json!([])));
        let relabelled = c.upsert_node(&node_obj(
            "n1",
            "4",
            "8Gi",
            110,
            &[("zone", "a")],
            json!([]),
        ));
        assert!(relabelled.contains(Plugin::VolumeBinding));
    }

    #[test]
    fn nominations_follow_the_pods() {
        let mut c = Cache::new();
        let mut p = pod_obj("p", &[], json!({"cpu": "1"}), json!({}));
        p.status = Some(serde_json::from_value(json!({"nominatedNodeName": "n1"})).unwrap());
        c.apply_pod(&p, false);
        assert_eq!(c.nominations()["n1"].len(), 1);
        c.apply_pod(&bound("p", "n1", "1"), false);
        assert!(c.nominations().is_empty());
    }
}
