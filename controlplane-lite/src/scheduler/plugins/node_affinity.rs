//! NodeAffinity: `spec.nodeSelector` and required node affinity as a filter, preferred
//! node affinity as a score. Terms are ORed, the requirements of a term ANDed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;

use super::{Plugin, Status, default_normalize};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";
const CONFLICT: &str = "pod affinity terms conflict";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn parse(r: &core::NodeSelectorRequirement) -> Option<Requirement> {
        let values = r.values.clone().unwrap_or_default();
        let int = || -> Option<i64> {
            match values.as_slice() {
                [v] => v.parse().ok(),
                _ => None,
            }
        };
        let op = match r.operator.as_str() {
            "In" if !values.is_empty() => Op::In(values),
            "NotIn" if !values.is_empty() => Op::NotIn(values),
            "Exists" if values.is_empty() => Op::Exists,
            "DoesNotExist" if values.is_empty() => Op::DoesNotExist,
            "Gt" => Op::Gt(int()?),
            "Lt" => Op::Lt(int()?),
            _ => return None,
        };
        Some(Requirement {
            key: r.key.clone(),
            op,
        })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(vs), Some(v)) => vs.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), v) => v.is_none_or(|v| !vs.iter().any(|x| x == v)),
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(want), Some(v)) => v.parse::<i64>().is_ok_and(|h| h > *want),
            (Op::Lt(want), Some(v)) => v.parse::<i64>().is_ok_and(|h| h < *want),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }
}

/// One node selector term: label expressions and `metadata.name` fields, ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    exprs: Vec<Requirement>,
    fields: Vec<Requirement>,
    /// A term with an invalid requirement, or none at all, matches no node.
    valid: bool,
}

impl Term {
    pub fn parse(t: &core::NodeSelectorTerm) -> Term {
        let mut valid = true;
        let mut parse_all = |rs: &Option<Vec<core::NodeSelectorRequirement>>, fields: bool| {
            rs.iter()
                .flatten()
                .filter_map(|r| {
                    let p = Requirement::parse(r).filter(|p| {
                        !fields
                            || (r.key == "metadata.name"
                                && matches!(p.op, Op::In(_) | Op::NotIn(_)))
                    });
                    if p.is_none() {
                        valid = false;
                    }
                    p
                })
                .collect::<Vec<_>>()
        };
        let exprs = parse_all(&t.match_expressions, false);
        let fields = parse_all(&t.match_fields, true);
        let valid = valid && !(exprs.is_empty() && fields.is_empty());
        Term {
            exprs,
            fields,
            valid,
        }
    }

    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.valid
            && self
                .exprs
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(Some(node_name)))
    }

    /// The node names this term pins through `metadata.name In (...)`, if it does.
    fn pinned_names(&self) -> Option<BTreeSet<String>> {
        let mut names: Option<BTreeSet<String>> = None;
        for f in &self.fields {
            if let Op::In(vs) = &f.op {
                let s: BTreeSet<String> = vs.iter().cloned().collect();
                names = Some(match names {
                    None => s,
                    Some(n) => n.intersection(&s).cloned().collect(),
                });
            }
        }
        names
    }
}

/// `spec.nodeSelector` plus the required node affinity terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    pub selector: BTreeMap<String, String>,
    /// `None` when the pod has no required node affinity.
    pub terms: Option<Vec<Term>>,
}

impl RequiredNodeAffinity {
    pub fn parse(spec: &core::PodSpec) -> RequiredNodeAffinity {
        RequiredNodeAffinity {
            selector: spec.node_selector.clone().unwrap_or_default(),
            terms: spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|r| r.node_selector_terms.iter().map(Term::parse).collect()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.selector.is_empty() && self.terms.is_none()
    }

    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            && self
                .terms
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|t| t.matches(node_name, labels)))
    }

    /// PreFilter: when every term pins node names, only those nodes need a look
    /// (DaemonSet pods); `Err` when the terms pin disjoint names.
    pub fn node_names(&self) -> Result<Option<BTreeSet<String>>, Status> {
        let Some(terms) = &self.terms else {
            return Ok(None);
        };
        let mut all = BTreeSet::new();
        for t in terms {
            match t.pinned_names() {
                None => return Ok(None),
                Some(n) => all.extend(n),
            }
        }
        if all.is_empty() {
            return Err(Status::unresolvable(Plugin::NodeAffinity, CONFLICT));
        }
        Ok(Some(all))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredTerm {
    pub weight: i32,
    pub term: Term,
}

pub fn parse_preferred(spec: &core::PodSpec) -> Vec<PreferredTerm> {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0)
        .map(|p| PreferredTerm {
            weight: p.weight,
            term: Term::parse(&p.preference),
        })
        .collect()
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if pod.node_affinity.matches(&node.name, &node.labels) {
        None
    } else {
        Some(Status::unresolvable(Plugin::NodeAffinity, REASON))
    }
}

/// The summed weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|p| p.term.matches(&node.name, &node.labels))
        .map(|p| p.weight as i64)
        .sum()
}

pub fn normalize(scores: &mut [i64]) {
    default_normalize(scores, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> core::PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn required(exprs: serde_json::Value) -> RequiredNodeAffinity {
        RequiredNodeAffinity::parse(&spec(
            json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": exprs}}}}),
        ))
    }

    #[test]
    fn operators() {
        let l = labels(&[("zone", "a"), ("gen", "5")]);
        let m =
            |e: serde_json::Value| required(json!([{"matchExpressions": [e]}])).matches("n1", &l);
        assert!(m(
            json!({"key": "zone", "operator": "In", "values": ["a", "b"]})
        ));
        assert!(!m(
            json!({"key": "zone", "operator": "In", "values": ["b"]})
        ));
        assert!(m(
            json!({"key": "zone", "operator": "NotIn", "values": ["b"]})
        ));
        assert!(m(
            json!({"key": "other", "operator": "NotIn", "values": ["b"]})
        ));
        assert!(m(json!({"key": "zone", "operator": "Exists"})));
        assert!(m(json!({"key": "other", "operator": "DoesNotExist"})));
        assert!(m(json!({"key": "gen", "operator": "Gt", "values": ["4"]})));
        assert!(!m(json!({"key": "gen", "operator": "Gt", "values": ["5"]})));
        assert!(m(json!({"key": "gen", "operator": "Lt", "values": ["6"]})));
        assert!(!m(
            json!({"key": "zone", "operator": "Lt", "values": ["6"]})
        ));
        assert!(!m(json!({"key": "gen", "operator": "Gt", "values": ["x"]})));
        assert!(!m(json!({"key": "gen", "operator": "Bogus"})));
    }

    #[test]
    fn terms_or_and_fields() {
        let l = labels(&[("zone", "a")]);
        let r = required(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
        ]));
        assert!(r.matches("n1", &l));
        assert!(!r.matches("n2", &l));
        // An empty term matches nothing.
        assert!(!required(json!([{}])).matches("n1", &l));
        // nodeSelector ANDs with the terms.
        let mut r =
            required(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]));
        r.selector = labels(&[("disk", "ssd")]);
        assert!(!r.matches("n1", &l));
        assert!(r.matches("n1", &labels(&[("zone", "a"), ("disk", "ssd")])));
    }

    #[test]
    fn pinned_node_names() {
        let r = required(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]},
        ]));
        let names = r.node_names().unwrap().unwrap();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["n1", "n2", "n3"]
        );
        let r = required(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
        ]));
        assert_eq!(r.node_names().unwrap(), None);
        let r = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]},
            {"key": "metadata.name", "operator": "In", "values": ["n2"]},
        ]}]));
        assert!(r.node_names().is_err());
    }
}
