//! Builders for the scheduler's unit tests.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

/// A Ready node object with `labels`, `taints` and allocatable cpu/memory/pods.
pub fn node_obj(
    name: &str,
    cpu: &str,
    mem: &str,
    pods: u32,
    labels: &[(&str, &str)],
    taints: Value,
) -> Node {
    let mut l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    l.entry("kubernetes.io/hostname").or_insert(json!(name));
    let alloc =
        json!({"cpu": cpu, "memory": mem, "pods": pods.to_string(), "ephemeral-storage": "100Gi"});
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": l},
        "spec": {"taints": taints},
        "status": {"allocatable": alloc, "capacity": alloc,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

pub fn node(name: &str, cpu: &str, mem: &str, pods: u32) -> NodeInfo {
    NodeInfo::new(&node_obj(name, cpu, mem, pods, &[], json!([])))
}

pub fn labelled_node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    let mut n = NodeInfo::new(&node_obj(name, "4", "8Gi", 110, labels, json!([])));
    if !labels.iter().any(|(k, _)| *k == "kubernetes.io/hostname") {
        n.labels.remove("kubernetes.io/hostname");
    }
    n
}

/// A pod object in `default` (uid = name) with one container requesting `requests`,
/// its spec merged with `spec`.
pub fn pod_obj(name: &str, labels: &[(&str, &str)], requests: Value, spec: Value) -> Pod {
    let l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut s =
        json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": requests}}]});
    json_patch::merge(&mut s, &spec);
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": l},
        "spec": s,
    }))
    .unwrap()
}

pub fn pod(name: &str, requests: Value) -> PodInfo {
    PodInfo::new(&pod_obj(name, &[], requests, json!({})))
}

pub fn pod_with(name: &str, labels: &[(&str, &str)], spec: Value) -> PodInfo {
    PodInfo::new(&pod_obj(name, labels, json!({}), spec))
}
