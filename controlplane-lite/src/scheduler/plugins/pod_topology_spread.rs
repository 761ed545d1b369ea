//! PodTopologySpread: `whenUnsatisfiable: DoNotSchedule` constraints as a filter (the
//! skew a node would reach must stay within `maxSkew`), `ScheduleAnyway` ones — and,
//! for pods without constraints of their own, the system defaults that spread the pods
//! of one Service or controller over hosts and zones — as a score.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1 as core;
use skiff_api::labels::{Operator, Requirement, Selector};

use super::taint_toleration::find_untolerated;
use super::{MAX_NODE_SCORE, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::snapshot::View;

pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub selector: Selector,
    pub min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod's node affinity
    /// admits make domains.
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): only nodes whose taints the pod
    /// tolerates make domains.
    pub honor_taints: bool,
}

/// A pod's own constraints, split by `whenUnsatisfiable`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    pub hard: Vec<Constraint>,
    pub soft: Vec<Constraint>,
}

impl Constraints {
    pub fn parse(spec: &core::PodSpec, labels: &BTreeMap<String, String>) -> Constraints {
        let mut out = Constraints::default();
        for c in spec.topology_spread_constraints.iter().flatten() {
            let mut selector = Selector::from_optional_label_selector(c.label_selector.as_ref())
                .unwrap_or_else(|_| Selector::nothing());
            for k in c.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(k)
                    && let Ok(r) = Requirement::new(k, Operator::In, Some(vec![v.clone()]))
                {
                    selector.add(r);
                }
            }
            let parsed = Constraint {
                max_skew: c.max_skew as i64,
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.unwrap_or(1) as i64,
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            };
            match c.when_unsatisfiable.as_str() {
                "DoNotSchedule" => out.hard.push(parsed),
                "ScheduleAnyway" => out.soft.push(parsed),
                _ => {}
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.hard.is_empty() && self.soft.is_empty()
    }
}

/// kube-scheduler's system default constraints, for pods of a Service or controller
/// (`selector` is what those select).
pub fn system_defaults(selector: &Selector) -> Vec<Constraint> {
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| Constraint {
            max_skew: skew,
            topology_key: key.into(),
            selector: selector.clone(),
            min_domains: 1,
            honor_node_affinity: true,
            honor_taints: false,
        })
        .collect()
}

fn has_all_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| node.labels.contains_key(&c.topology_key))
}

fn included(c: &Constraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    (!c.honor_node_affinity || pod.node_affinity.matches(&node.name, &node.labels))
        && (!c.honor_taints || find_untolerated(&node.taints, &pod.tolerations).is_none())
}

/// The node's pods in `namespace` the selector matches, not counting terminating ones.
fn matching_pods(node: &NodeInfo, selector: &Selector, namespace: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == namespace && selector.matches(&p.labels))
        .count() as i64
}

/// Matching pods per domain of each hard constraint (kube-scheduler's PreFilter).
#[derive(Debug)]
pub struct FilterState {
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

pub fn pre_filter(view: &View, pod: &PodInfo) -> Option<FilterState> {
    let cs = &pod.spread.hard;
    if cs.is_empty() {
        return None;
    }
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
    for i in 0..view.len() {
        let node = view.node(i);
        if !has_all_keys(node, cs) {
            continue;
        }
        for (ci, c) in cs.iter().enumerate() {
            if !included(c, pod, node) {
                continue;
            }
            let n = matching_pods(node, &c.selector, &pod.namespace);
            *counts[ci]
                .entry(node.labels[&c.topology_key].clone())
                .or_default() += n;
        }
    }
    let min = counts
        .iter()
        .map(|m| m.values().copied().min().unwrap_or(i64::from(i32::MAX)))
        .collect();
    Some(FilterState { counts, min })
}

pub fn filter(s: &FilterState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    for (ci, c) in pod.spread.hard.iter().enumerate() {
        let Some(value) = node.labels.get(&c.topology_key) else {
            return Some(Status::unresolvable(
                Plugin::PodTopologySpread,
                MISSING_LABEL_REASON,
            ));
        };
        let domains = s.counts[ci].len() as i64;
        let min = if domains < c.min_domains {
            0
        } else {
            s.min[ci]
        };
        let own = i64::from(c.selector.matches(&pod.labels));
        let here = s.counts[ci].get(value).copied().unwrap_or(0);
        if here + own - min > c.max_skew {
            return Some(Status::unschedulable(Plugin::PodTopologySpread, REASON));
        }
    }
    None
}

/// What scoring needs (kube-scheduler's PreScore).
#[derive(Debug)]
pub struct ScoreState<'c> {
    constraints: &'c [Constraint],
    /// Per candidate: lacks a topology key and is not scored.
    ignored: Vec<bool>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
}

/// `constraints` are the pod's ScheduleAnyway ones, or the system defaults;
/// `require_all_keys` is true for the pod's own (a node without every key is then not
/// scored). `None` when there is nothing to score.
pub fn pre_score<'c>(
    view: &View,
    pod: &PodInfo,
    candidates: &[usize],
    constraints: &'c [Constraint],
    require_all_keys: bool,
) -> Option<ScoreState<'c>> {
    if constraints.is_empty() || view.is_empty() {
        return None;
    }
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    let mut ignored = Vec::with_capacity(candidates.len());
    let mut scored = 0usize;
    for &i in candidates {
        let node = view.node(i);
        if require_all_keys && !has_all_keys(node, constraints) {
            ignored.push(true);
            continue;
        }
        ignored.push(false);
        scored += 1;
        for (ci, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME {
                continue;
            }
            if let Some(v) = node.labels.get(&c.topology_key) {
                counts[ci].entry(v.clone()).or_default();
            }
        }
    }
    let weights = constraints
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let size = if c.topology_key == HOSTNAME {
                scored
            } else {
                counts[ci].len()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    for i in 0..view.len() {
        let node = view.node(i);
        if require_all_keys && !has_all_keys(node, constraints) {
            continue;
        }
        for (ci, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME || !included(c, pod, node) {
                continue;
            }
            let Some(v) = node.labels.get(&c.topology_key) else {
                continue;
            };
            if let Some(n) = counts[ci].get_mut(v) {
                *n += matching_pods(node, &c.selector, &pod.namespace);
            }
        }
    }
    Some(ScoreState {
        constraints,
        ignored,
        counts,
        weights,
    })
}

/// The raw score of candidate `k` (the `k`-th of the candidates given to
/// [`pre_score`]): matching pods in its domains, weighted; fewer is better.
pub fn score(s: &ScoreState, pod: &PodInfo, k: usize, node: &NodeInfo) -> i64 {
    if s.ignored[k] {
        return 0;
    }
    let mut total = 0.0;
    for (ci, c) in s.constraints.iter().enumerate() {
        let Some(v) = node.labels.get(&c.topology_key) else {
            continue;
        };
        let n = if c.topology_key == HOSTNAME {
            matching_pods(node, &c.selector, &pod.namespace)
        } else {
            s.counts[ci].get(v).copied().unwrap_or(0)
        };
        total += n as f64 * s.weights[ci] + (c.max_skew - 1) as f64;
    }
    total.round() as i64
}

pub fn normalize(s: &ScoreState, scores: &mut [i64]) {
    let mut min = i64::MAX;
    let mut max = 0;
    for (k, sc) in scores.iter().enumerate() {
        if s.ignored[k] {
            continue;
        }
        min = min.min(*sc);
        max = max.max(*sc);
    }
    for (k, sc) in scores.iter_mut().enumerate() {
        *sc = if s.ignored[k] {
            0
        } else if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *sc) / max
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::snapshot::Snapshot;
    use crate::scheduler::testutil::{labelled_node, pod_with};
    use serde_json::json;

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        for (n, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
            s.add_node(labelled_node(n, &[(ZONE, zone), (HOSTNAME, n)]));
        }
        s
    }

    fn spread(key: &str, skew: i32, when: &str) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn max_skew_over_zones() {
        let mut snap = snapshot();
        snap.add_pod("n1", pod_with("a", &[("app", "web")], json!({})).into());
        let p = pod_with("p", &[("app", "web")], spread(ZONE, 1, "DoNotSchedule"));
        let view = snap.view();
        let s = pre_filter(&view, &p).unwrap();
        // Zone a has 1, zone b 0: one more in a would make the skew 2.
        assert_eq!(filter(&s, &p, view.node(0)).unwrap().reasons, vec![REASON]);
        assert_eq!(filter(&s, &p, view.node(1)).unwrap().reasons, vec![REASON]);
        assert!(filter(&s, &p, view.node(2)).is_none());
        // Pods in another namespace and terminating pods do not count.
        let mut other = pod_with("o", &[("app", "web")], json!({}));
        other.namespace = "other".into();
        snap.add_pod("n3", other.into());
        let mut gone = pod_with("g", &[("app", "web")], json!({}));
        gone.terminating = true;
        snap.add_pod("n3", gone.into());
        let view = snap.view();
        let s = pre_filter(&view, &p).unwrap();
        assert!(filter(&s, &p, view.node(2)).is_none());
    }

    #[test]
    fn missing_label_and_min_domains() {
        let mut snap = snapshot();
        snap.add_node(labelled_node("bare", &[]));
        let p = pod_with("p", &[("app", "web")], spread(ZONE, 1, "DoNotSchedule"));
        let view = snap.view();
        let s = pre_filter(&view, &p).unwrap();
        assert_eq!(
            filter(&s, &p, view.node(3)).unwrap().code,
            super::super::Code::UnschedulableAndUnresolvable
        );
        // With minDomains 3 but only 2 zones, the global minimum is 0: the first pod fits
        // anywhere, a second in the same zone does not.
        snap.add_pod("n3", pod_with("a", &[("app", "web")], json!({})).into());
        let mut c = spread(ZONE, 1, "DoNotSchedule");
        c["topologySpreadConstraints"][0]["minDomains"] = json!(3);
        let p = pod_with("p", &[("app", "web")], c);
        let view = snap.view();
        let s = pre_filter(&view, &p).unwrap();
        assert!(filter(&s, &p, view.node(0)).is_none());
        assert!(filter(&s, &p, view.node(2)).is_some());
    }

    #[test]
    fn soft_constraints_prefer_emptier_domains() {
        let mut snap = snapshot();
        snap.add_pod("n1", pod_with("a", &[("app", "web")], json!({})).into());
        snap.add_pod("n1", pod_with("b", &[("app", "web")], json!({})).into());
        let p = pod_with(
            "p",
            &[("app", "web")],
            spread(HOSTNAME, 1, "ScheduleAnyway"),
        );
        let view = snap.view();
        let cands = [0, 1, 2];
        let st = pre_score(&view, &p, &cands, &p.spread.soft, true).unwrap();
        let mut scores: Vec<i64> = cands
            .iter()
            .enumerate()
            .map(|(k, &i)| score(&st, &p, k, view.node(i)))
            .collect();
        normalize(&st, &mut scores);
        assert!(
            scores[0] < scores[1] && scores[1] == scores[2],
            "{scores:?}"
        );
        assert_eq!(scores[1], MAX_NODE_SCORE);
    }
}
