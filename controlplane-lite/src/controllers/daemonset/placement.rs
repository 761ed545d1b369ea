//! Which nodes a DaemonSet's pod belongs on, as kube-controller-manager decides: the
//! template's nodeName, nodeSelector and required node affinity must match, and every
//! NoSchedule/NoExecute taint must be tolerated — with the tolerations the controller adds
//! to every daemon pod, so nodes under pressure or not ready keep their daemons.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    Taint, Toleration,
};

/// The tolerations every daemon pod gets: `(key, effect)`, operator Exists.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added for host-network pods, which do not need the node's pod network.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Adds the daemon tolerations the spec does not already have.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted: Vec<(&str, &str)> = DAEMON_TOLERATIONS.to_vec();
    if spec.host_network == Some(true) {
        wanted.push(NETWORK_UNAVAILABLE);
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        // Kubernetes replaces a toleration of the same key and effect with its own.
        tolerations
            .retain(|x| !(x.key.as_deref() == Some(key) && x.effect.as_deref() == Some(effect)));
        tolerations.push(t);
    }
}

/// Pins the pod to `node` through a required `metadata.name` match, replacing any other
/// required terms (the node was already found to satisfy them).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a pod is pinned to by `pin_to_node`, for pods not yet bound.
pub fn pinned_node(spec: &PodSpec) -> Option<&str> {
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first())
        .map(String::as_str)
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [limit]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), limit.parse::<i64>()) {
                (Ok(v), Ok(l)) if r.operator == "Gt" => v > l,
                (Ok(v), Ok(l)) => v < l,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A term matches when all its requirements do; a term with none matches nothing.
fn term_matches(t: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = if r.key == "metadata.name" { name } else { None };
            requirement_matches(r, v)
        })
}

/// nodeSelector and required node affinity (any one term).
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|x| tolerates(x, t)))
}

/// Whether a daemon pod with `spec` (daemon tolerations added) should be made on `node`,
/// and whether one already there should keep running.
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return (false, false);
    }
    if !fits_node_affinity(spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    if untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return (true, true);
    }
    // A pod already there stays unless a NoExecute taint would evict it.
    (
        false,
        untolerated(taints, tolerations, &["NoExecute"]).is_none(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut s: PodSpec = serde_json::from_value(v).unwrap();
        add_daemon_tolerations(&mut s);
        s
    }

    #[test]
    fn selectors_and_affinity_choose_nodes() {
        let n = node(json!({"disk": "ssd", "rank": "5"}), json!([]));
        let base = json!({"containers": [{"name": "c"}]});
        assert_eq!(should_run(&spec(base.clone()), &n), (true, true));
        let mut s = base.clone();
        s["nodeSelector"] = json!({"disk": "hdd"});
        assert_eq!(should_run(&spec(s), &n), (false, false));
        let mut s = base.clone();
        s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
            {"matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["3"]},
                                  {"key": "gpu", "operator": "DoesNotExist"}]},
        ]}}});
        assert_eq!(should_run(&spec(s.clone()), &n), (true, true));
        s["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [1]["matchExpressions"][0]["values"] = json!(["7"]);
        assert_eq!(should_run(&spec(s), &n), (false, false));
        let mut s = base.clone();
        s["nodeName"] = json!("n2");
        assert_eq!(should_run(&spec(s), &n), (false, false));
        let mut pinned = spec(base);
        pin_to_node(&mut pinned, "n1");
        assert_eq!(pinned_node(&pinned), Some("n1"));
        assert_eq!(should_run(&pinned, &n), (true, true));
        pin_to_node(&mut pinned, "n2");
        assert_eq!(should_run(&pinned, &n), (false, false));
    }

    #[test]
    fn taints_need_tolerations_but_daemon_ones_are_given() {
        let base = json!({"containers": [{"name": "c"}]});
        // Not-ready, unschedulable and pressure taints are tolerated by every daemon pod.
        let n = node(
            json!({}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&spec(base.clone()), &n), (true, true));
        // A NoSchedule taint: no new pod, but one there stays.
        let n = node(
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(should_run(&spec(base.clone()), &n), (false, true));
        let mut s = base.clone();
        s["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "db"}]);
        assert_eq!(should_run(&spec(s), &n), (true, true));
        // NoExecute evicts.
        let n = node(
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
        );
        assert_eq!(should_run(&spec(base.clone()), &n), (false, false));
        let mut s = base;
        s["tolerations"] = json!([{"operator": "Exists"}]);
        assert_eq!(should_run(&spec(s), &n), (true, true));
    }

    #[test]
    fn daemon_tolerations_are_added_once() {
        let mut s = spec(json!({"containers": [{"name": "c"}], "hostNetwork": true}));
        add_daemon_tolerations(&mut s);
        let t = s.tolerations.unwrap();
        assert_eq!(t.len(), 7);
        assert!(t.iter().all(|t| t.operator.as_deref() == Some("Exists")));
        assert!(
            t.iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/network-unavailable"))
        );
    }
}
