//! [`Snapshot`]: every schedulable node with its pods, and the namespaces' labels — what
//! one scheduling cycle reads. The cache owns it and changes it in place between cycles;
//! a cycle sees it through a [`View`], which can stand one node in for another (how
//! preemption tries a node with some of its pods gone).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::node_info::NodeInfo;
use super::plugins::volume_binding::Volumes;
use super::pod_info::PodInfo;

#[derive(Debug, Default)]
pub struct Snapshot {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods bound to nodes the scheduler has not seen (yet, or any more).
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Claims, volumes and classes (VolumeBinding).
    pub volumes: Volumes,
}

impl Snapshot {
    pub fn view(&self) -> View<'_> {
        View {
            snap: self,
            replaced: None,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Adds a node, or takes a known node's new state (keeping its pods). Returns the
    /// node as it was before, if it was known.
    pub fn upsert_node(&mut self, node: &Node) -> Option<NodeInfo> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            let old = self.nodes[i].clone_without_pods();
            self.nodes[i].set_node(node);
            return Some(old);
        }
        let mut info = NodeInfo::new(node);
        for p in self.orphans.remove(&name).into_iter().flatten() {
            info.add_pod(p);
        }
        self.add_node(info);
        None
    }

    /// Adds a node as given (tests; [`Snapshot::upsert_node`] otherwise).
    pub fn add_node(&mut self, info: NodeInfo) {
        self.index.insert(info.name.clone(), self.nodes.len());
        self.nodes.push(info);
    }

    /// Forgets a node; its pods wait for it to come back.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.index.remove(name)?;
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(info.name.clone(), info.pods.to_vec());
        }
        Some(info)
    }

    pub fn add_pod(&mut self, node: &str, p: Arc<PodInfo>) {
        match self.index.get(node) {
            Some(&i) => self.nodes[i].add_pod(p),
            None => self.orphans.entry(node.to_string()).or_default().push(p),
        }
    }

    pub fn remove_pod(&mut self, node: &str, uid: &str) -> Option<Arc<PodInfo>> {
        if let Some(&i) = self.index.get(node) {
            return self.nodes[i].remove_pod(uid);
        }
        let list = self.orphans.get_mut(node)?;
        let i = list.iter().position(|p| p.uid == uid)?;
        let p = list.swap_remove(i);
        if list.is_empty() {
            self.orphans.remove(node);
        }
        Some(p)
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn namespace_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(name)
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }
}

impl NodeInfo {
    fn clone_without_pods(&self) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            labels: self.labels.clone(),
            taints: self.taints.clone(),
            unschedulable: self.unschedulable,
            allocatable: self.allocatable.clone(),
            allowed_pods: self.allowed_pods,
            ..Default::default()
        }
    }
}

/// The nodes one cycle looks at.
#[derive(Clone, Copy)]
pub struct View<'a> {
    snap: &'a Snapshot,
    replaced: Option<(usize, &'a NodeInfo)>,
}

impl<'a> View<'a> {
    pub fn len(&self) -> usize {
        self.snap.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.snap.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &'a NodeInfo {
        match self.replaced {
            Some((r, n)) if r == i => n,
            _ => &self.snap.nodes[i],
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.snap.index_of(name)
    }

    pub fn namespace_labels(&self, ns: &str) -> Option<&'a BTreeMap<String, String>> {
        self.snap.namespaces.get(ns)
    }

    pub fn volumes(&self) -> &'a Volumes {
        &self.snap.volumes
    }

    /// The same nodes, with node `i` replaced by `node`.
    pub fn replacing(&self, i: usize, node: &'a NodeInfo) -> View<'a> {
        View {
            snap: self.snap,
            replaced: Some((i, node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::pod;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    }

    #[test]
    fn pods_of_unknown_nodes_wait_for_them() {
        let mut s = Snapshot::default();
        s.add_pod("n1", pod("a", json!({"cpu": "1"})).into());
        assert!(s.is_empty());
        s.upsert_node(&node("n1"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 1000);
        s.upsert_node(&node("n2"));
        s.remove_node("n1");
        assert_eq!(s.index_of("n2"), Some(0));
        s.upsert_node(&node("n1"));
        assert_eq!(s.node("n1").unwrap().pods.len(), 1);
        assert!(s.remove_pod("n1", "a").is_some());
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
    }
}
