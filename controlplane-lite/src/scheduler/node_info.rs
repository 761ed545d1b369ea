//! [`NodeInfo`]: one node as the scheduler sees it — its labels, taints and allocatable
//! resources, and the running sums of what its pods request and which host ports they
//! hold — kept up to date pod by pod, never recounted.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::plugins::node_ports::HostPort;
use super::plugins::taint_toleration::{Effect, Taint};
use super::pod_info::PodInfo;
use super::resources::Resources;

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The node's taints, plus the ones its conditions imply (see [`condition_taints`]).
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

/// Taints a node's conditions imply, as the node lifecycle controller adds them
/// (TaintNodesByCondition): a node that is not Ready — or whose readiness is unknown,
/// or that has not reported yet — takes no pods that do not tolerate that. Ones the
/// node already carries are not repeated.
pub fn condition_taints(node: &Node, present: &[Taint]) -> Vec<Taint> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let status_of = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.as_str())
    };
    let mut out = Vec::new();
    let mut add = |key: &str| {
        if !present.iter().any(|t| t.key == key) && !out.iter().any(|t: &Taint| t.key == key) {
            out.push(Taint::new(key, "", Effect::NoSchedule));
        }
    };
    match status_of("Ready") {
        Some("True") => {}
        Some("Unknown") => add(UNREACHABLE_TAINT),
        _ => add(NOT_READY_TAINT),
    }
    for (cond, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        (
            "NetworkUnavailable",
            "node.kubernetes.io/network-unavailable",
        ),
    ] {
        if status_of(cond) == Some("True") {
            add(key);
        }
    }
    out
}

impl NodeInfo {
    /// A node without pods.
    pub fn new(node: &Node) -> NodeInfo {
        let mut n = NodeInfo::default();
        n.set_node(node);
        n
    }

    /// Takes the node's current labels, taints and allocatable, keeping its pods.
    pub fn set_node(&mut self, node: &Node) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let mut taints = Taint::of_node(node);
        let implied = condition_taints(node, &taints);
        taints.extend(implied);
        self.taints = taints;
        self.unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        let empty = BTreeMap::new();
        let alloc = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .unwrap_or(&empty);
        self.allocatable = Resources::from_list(alloc);
        self.allowed_pods = alloc
            .get("pods")
            .and_then(|q| skiff_api::quantity::Quantity::parse(&q.0).ok())
            .map(|q| q.value())
            .unwrap_or(0);
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.used_ports.extend(p.host_ports.iter().cloned());
        if p.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    /// Removes the pod with `uid`; returns it if it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero);
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn sums_follow_pods() {
        let mut n = node("n1", "4", "8Gi", 110);
        let a: Arc<PodInfo> = pod("a", json!({"cpu": "1"})).into();
        n.add_pod(a);
        n.add_pod(pod("b", json!({})).into());
        assert_eq!(n.requested.milli_cpu, 1000);
        assert_eq!(n.non_zero_requested.milli_cpu, 1100);
        assert!(n.remove_pod("a").is_some());
        assert!(n.remove_pod("a").is_none());
        assert_eq!(n.requested.milli_cpu, 0);
        assert_eq!(n.pods.len(), 1);
    }

    #[test]
    fn conditions_imply_taints() {
        let mk = |conds: serde_json::Value, taints: serde_json::Value| -> Node {
            serde_json::from_value(
                json!({"metadata": {"name": "n"}, "spec": {"taints": taints},
                "status": {"conditions": conds}}),
            )
            .unwrap()
        };
        let ready = json!([{"type": "Ready", "status": "True"}]);
        assert!(NodeInfo::new(&mk(ready, json!([]))).taints.is_empty());
        let n = NodeInfo::new(&mk(
            json!([{"type": "Ready", "status": "False"}]),
            json!([]),
        ));
        assert_eq!(
            n.taints,
            vec![Taint::new(NOT_READY_TAINT, "", Effect::NoSchedule)]
        );
        let n = NodeInfo::new(&mk(
            json!([{"type": "Ready", "status": "Unknown"}]),
            json!([]),
        ));
        assert_eq!(n.taints[0].key, UNREACHABLE_TAINT);
        // No conditions yet: not ready.
        let n = NodeInfo::new(&mk(json!([]), json!([])));
        assert_eq!(n.taints[0].key, NOT_READY_TAINT);
        // Already tainted by the lifecycle controller: not doubled.
        let n = NodeInfo::new(&mk(
            json!([{"type": "Ready", "status": "False"}]),
            json!([{"key": NOT_READY_TAINT, "effect": "NoExecute"}]),
        ));
        assert_eq!(n.taints.len(), 1);
        assert_eq!(n.taints[0].effect, Effect::NoExecute);
    }
}
