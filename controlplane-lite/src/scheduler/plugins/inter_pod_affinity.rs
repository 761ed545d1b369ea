//! InterPodAffinity: required pod affinity and anti-affinity (the incoming pod's, and the
//! anti-affinity of pods already placed, which the incoming pod must not break) as a
//! filter over topology domains; the preferred terms, and placed pods' terms that name
//! the incoming pod, as a score.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1 as core;
use skiff_api::labels::{Operator, Requirement, Selector};

use super::{MAX_NODE_SCORE, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::snapshot::View;

pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY_REASON: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// One pod (anti-)affinity term, with its selectors parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    /// Namespaces named outright (the pod's own when neither these nor a namespace
    /// selector is given).
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
    pub topology_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

impl AffinityTerm {
    /// Parses a term of a pod in `namespace` with `labels`. `matchLabelKeys` and
    /// `mismatchLabelKeys` become requirements on the pod's own values of those keys.
    pub fn parse(
        t: &core::PodAffinityTerm,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> AffinityTerm {
        let mut selector = Selector::from_optional_label_selector(t.label_selector.as_ref())
            .unwrap_or_else(|_| Selector::nothing());
        if t.label_selector.is_some() {
            let keys = [
                (t.match_label_keys.as_ref(), Operator::In),
                (t.mismatch_label_keys.as_ref(), Operator::NotIn),
            ];
            for (keys, op) in keys {
                for k in keys.into_iter().flatten() {
                    if let Some(v) = labels.get(k)
                        && let Ok(r) = Requirement::new(k, op, Some(vec![v.clone()]))
                    {
                        selector.add(r);
                    }
                }
            }
        }
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        let namespace_selector = t
            .namespace_selector
            .as_ref()
            .map(|s| Selector::from_label_selector(s).unwrap_or_else(|_| Selector::nothing()));
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(namespace.to_string());
        }
        AffinityTerm {
            namespaces,
            namespace_selector,
            selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` (whose namespace carries `ns_labels`) is one this term selects.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                let empty = BTreeMap::new();
                s.matches(ns_labels.unwrap_or(&empty))
            });
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// Counts per topology key and value.
type TopologyCounts = HashMap<String, HashMap<String, i64>>;

fn bump(m: &mut TopologyCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels.get(key) {
        *m.entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += by;
    }
}

fn count(m: &TopologyCounts, key: &str, value: &str) -> i64 {
    m.get(key).and_then(|v| v.get(value)).copied().unwrap_or(0)
}

/// What the filter needs, computed once per pod (kube-scheduler's PreFilter).
#[derive(Debug, Default)]
pub struct FilterState {
    /// Domains where a placed pod's required anti-affinity selects the incoming pod.
    existing_anti: TopologyCounts,
    /// Domains holding pods that match all of the incoming pod's affinity terms.
    affinity: TopologyCounts,
    /// Domains holding pods one of the incoming pod's anti-affinity terms selects.
    anti: TopologyCounts,
    /// No pod anywhere matches the affinity terms, and the pod matches them itself: the
    /// first of a group with affinity to itself may go anywhere the topology exists.
    self_affinity_ok: bool,
}

impl FilterState {
    /// Whether some placed pod's anti-affinity selects the incoming pod at all.
    pub fn has_existing_anti(&self) -> bool {
        !self.existing_anti.is_empty()
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, view: &View) -> bool {
    !terms.is_empty()
        && terms
            .iter()
            .all(|t| t.matches(pod, view.namespace_labels(&pod.namespace)))
}

pub fn pre_filter(view: &View, pod: &PodInfo) -> FilterState {
    let mut s = FilterState::default();
    let pod_ns_labels = view.namespace_labels(&pod.namespace);
    let has_own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
    for i in 0..view.len() {
        let node = view.node(i);
        if node.pods_with_required_anti_affinity > 0 {
            for e in node
                .pods
                .iter()
                .filter(|e| !e.required_anti_affinity.is_empty())
            {
                for t in &e.required_anti_affinity {
                    if t.matches(pod, pod_ns_labels) {
                        bump(&mut s.existing_anti, node, &t.topology_key, 1);
                    }
                }
            }
        }
        if !has_own || node.labels.is_empty() {
            continue;
        }
        for e in &node.pods {
            let ns_labels = view.namespace_labels(&e.namespace);
            if !pod.required_affinity.is_empty()
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| t.matches(e, ns_labels))
            {
                for t in &pod.required_affinity {
                    bump(&mut s.affinity, node, &t.topology_key, 1);
                }
            }
            for t in &pod.required_anti_affinity {
                if t.matches(e, ns_labels) {
                    bump(&mut s.anti, node, &t.topology_key, 1);
                }
            }
        }
    }
    s.self_affinity_ok = s.affinity.is_empty() && matches_all(&pod.required_affinity, pod, view);
    s
}

pub fn filter(s: &FilterState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let mut pods_exist = true;
    for t in &pod.required_affinity {
        let Some(v) = node.labels.get(&t.topology_key) else {
            return Some(Status::unresolvable(
                Plugin::InterPodAffinity,
                AFFINITY_REASON,
            ));
        };
        if count(&s.affinity, &t.topology_key, v) <= 0 {
            pods_exist = false;
        }
    }
    if !pods_exist && !s.self_affinity_ok {
        return Some(Status::unresolvable(
            Plugin::InterPodAffinity,
            AFFINITY_REASON,
        ));
    }
    if !s.anti.is_empty() {
        for t in &pod.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key)
                && count(&s.anti, &t.topology_key, v) > 0
            {
                return Some(Status::unschedulable(
                    Plugin::InterPodAffinity,
                    ANTI_AFFINITY_REASON,
                ));
            }
        }
    }
    if !s.existing_anti.is_empty() {
        for (k, v) in &node.labels {
            if count(&s.existing_anti, k, v) > 0 {
                return Some(Status::unschedulable(
                    Plugin::InterPodAffinity,
                    EXISTING_ANTI_AFFINITY_REASON,
                ));
            }
        }
    }
    None
}

/// The weight placed pods' required affinity adds (kube-scheduler's default
/// `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Score sums per topology domain (kube-scheduler's PreScore); `None` when nothing
/// applies and the plugin is skipped.
pub fn pre_score(view: &View, pod: &PodInfo) -> Option<TopologyCounts> {
    let has_preferred =
        !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    let pod_ns_labels = view.namespace_labels(&pod.namespace);
    let mut m = TopologyCounts::new();
    for i in 0..view.len() {
        let node = view.node(i);
        if node.labels.is_empty() || (!has_preferred && node.pods_with_affinity == 0) {
            continue;
        }
        for e in &node.pods {
            if !has_preferred && !e.has_affinity() {
                continue;
            }
            let e_ns_labels = view.namespace_labels(&e.namespace);
            for w in &pod.preferred_affinity {
                if w.term.matches(e, e_ns_labels) {
                    bump(&mut m, node, &w.term.topology_key, w.weight);
                }
            }
            for w in &pod.preferred_anti_affinity {
                if w.term.matches(e, e_ns_labels) {
                    bump(&mut m, node, &w.term.topology_key, -w.weight);
                }
            }
            for t in &e.required_affinity {
                if t.matches(pod, pod_ns_labels) {
                    bump(&mut m, node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for w in &e.preferred_affinity {
                if w.term.matches(pod, pod_ns_labels) {
                    bump(&mut m, node, &w.term.topology_key, w.weight);
                }
            }
            for w in &e.preferred_anti_affinity {
                if w.term.matches(pod, pod_ns_labels) {
                    bump(&mut m, node, &w.term.topology_key, -w.weight);
                }
            }
        }
    }
    (!m.is_empty()).then_some(m)
}

pub fn score(m: &TopologyCounts, node: &NodeInfo) -> i64 {
    m.iter()
        .filter_map(|(k, values)| values.get(node.labels.get(k)?))
        .sum()
}

/// Scales scores linearly from the lowest (0) to the highest (100).
pub fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::snapshot::Snapshot;
    use crate::scheduler::testutil::{labelled_node, pod_with};
    use serde_json::json;

    fn anti_term(app: &str, key: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        for (n, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
            s.add_node(labelled_node(
                n,
                &[("zone", zone), ("kubernetes.io/hostname", n)],
            ));
        }
        s
    }

    #[test]
    fn anti_affinity_one_per_domain() {
        let mut snap = snapshot();
        let web = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti_term("web", "kubernetes.io/hostname")]}});
        let placed = pod_with("w1", &[("app", "web")], json!({"affinity": web}));
        snap.add_pod("n1", placed.into());
        let incoming = pod_with("w2", &[("app", "web")], json!({"affinity": web}));
        let view = snap.view();
        let s = pre_filter(&view, &incoming);
        let r = filter(&s, &incoming, view.node(0)).unwrap();
        assert_eq!(r.reasons, vec![ANTI_AFFINITY_REASON]);
        assert!(filter(&s, &incoming, view.node(1)).is_none());
        // A pod without terms of its own still respects the placed pod's.
        let plain = pod_with("x", &[("app", "web")], json!({}));
        let s = pre_filter(&view, &plain);
        let r = filter(&s, &plain, view.node(0)).unwrap();
        assert_eq!(r.reasons, vec![EXISTING_ANTI_AFFINITY_REASON]);
        assert!(filter(&s, &plain, view.node(2)).is_none());
    }

    #[test]
    fn affinity_to_a_zone_and_the_first_of_a_group() {
        let mut snap = snapshot();
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti_term("db", "zone")]}});
        // The first "db" pod with affinity to "db" pods may go anywhere.
        let first = pod_with("db1", &[("app", "db")], json!({"affinity": aff}));
        let view = snap.view();
        let s = pre_filter(&view, &first);
        assert!(filter(&s, &first, view.node(0)).is_none());
        // A pod that is not itself "db" cannot.
        let web = pod_with("web", &[("app", "web")], json!({"affinity": aff}));
        let s = pre_filter(&view, &web);
        assert_eq!(
            filter(&s, &web, view.node(0)).unwrap().reasons,
            vec![AFFINITY_REASON]
        );
        snap.add_pod("n3", pod_with("db0", &[("app", "db")], json!({})).into());
        let view = snap.view();
        let s = pre_filter(&view, &web);
        assert!(filter(&s, &web, view.node(0)).is_some());
        assert!(filter(&s, &web, view.node(2)).is_none());
    }

    #[test]
    fn namespaces_and_namespace_selectors() {
        let mut snap = snapshot();
        snap.set_namespace("prod", [("env".to_string(), "prod".to_string())].into());
        let mut other = pod_with("o", &[("app", "web")], json!({}));
        other.namespace = "prod".into();
        snap.add_pod("n1", other.into());
        let by_name = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "namespaces": ["prod"]}]}});
        let by_selector = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone", "namespaceSelector": {"matchLabels": {"env": "prod"}}}]}});
        let own_ns = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti_term("web", "zone")]}});
        let view = snap.view();
        for (aff, blocked) in [(by_name, true), (by_selector, true), (own_ns, false)] {
            let p = pod_with("p", &[], json!({"affinity": aff}));
            let s = pre_filter(&view, &p);
            assert_eq!(filter(&s, &p, view.node(1)).is_some(), blocked);
            assert!(filter(&s, &p, view.node(2)).is_none());
        }
    }

    #[test]
    fn preferred_terms_score_domains() {
        let mut snap = snapshot();
        snap.add_pod("n3", pod_with("c", &[("app", "cache")], json!({})).into());
        let pref = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": anti_term("cache", "zone")}]}});
        let p = pod_with("p", &[], json!({"affinity": pref}));
        let view = snap.view();
        let m = pre_score(&view, &p).unwrap();
        let mut scores: Vec<i64> = (0..3).map(|i| score(&m, view.node(i))).collect();
        assert_eq!(scores, vec![0, 0, 10]);
        normalize(&mut scores);
        assert_eq!(scores, vec![0, 0, 100]);
        // Nothing with affinity anywhere: skipped.
        assert!(pre_score(&view, &pod_with("q", &[], json!({}))).is_none());
    }
}
