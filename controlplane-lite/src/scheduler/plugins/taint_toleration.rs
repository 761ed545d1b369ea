//! TaintToleration: a node's NoSchedule and NoExecute taints keep off pods that do not
//! tolerate them; untolerated PreferNoSchedule taints only lower the node's score.

use k8s_openapi::api::core::v1 as core;

use super::{Plugin, Status, default_normalize};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl Effect {
    pub fn parse(s: &str) -> Option<Effect> {
        match s {
            "NoSchedule" => Some(Effect::NoSchedule),
            "PreferNoSchedule" => Some(Effect::PreferNoSchedule),
            "NoExecute" => Some(Effect::NoExecute),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

impl Taint {
    pub fn new(key: &str, value: &str, effect: Effect) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }

    /// The node's taints; ones with an effect Kubernetes does not know are dropped.
    pub fn of_node(node: &core::Node) -> Vec<Taint> {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: Effect::parse(&t.effect)?,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Empty with `exists` matches every key.
    pub key: String,
    pub exists: bool,
    pub value: String,
    /// `None` matches every effect.
    pub effect: Option<Effect>,
    /// A toleration with an effect Kubernetes does not know tolerates nothing.
    pub valid: bool,
}

impl Toleration {
    pub fn parse(t: &core::Toleration) -> Toleration {
        let effect_s = t.effect.as_deref().unwrap_or("");
        let effect = Effect::parse(effect_s);
        let op = t.operator.as_deref().unwrap_or("Equal");
        Toleration {
            key: t.key.clone().unwrap_or_default(),
            exists: op == "Exists",
            value: t.value.clone().unwrap_or_default(),
            effect,
            valid: (effect_s.is_empty() || effect.is_some()) && matches!(op, "Exists" | "Equal"),
        }
    }

    /// kube's `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.valid {
            return false;
        }
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// The first NoSchedule or NoExecute taint of `taints` no toleration covers.
pub fn find_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints.iter().find(|t| {
        matches!(t.effect, Effect::NoSchedule | Effect::NoExecute) && !tolerated(tolerations, t)
    })
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let t = find_untolerated(&node.taints, &pod.tolerations)?;
    Some(Status::unresolvable(
        Plugin::TaintToleration,
        format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
    ))
}

/// How many PreferNoSchedule taints the pod does not tolerate (fewer is better).
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == Effect::PreferNoSchedule)
        .filter(|t| {
            !pod.tolerations.iter().any(|tol| {
                matches!(tol.effect, None | Some(Effect::PreferNoSchedule)) && tol.tolerates(t)
            })
        })
        .count() as i64
}

pub fn normalize(scores: &mut [i64]) {
    default_normalize(scores, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration::parse(&core::Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        })
    }

    #[test]
    fn toleration_matching() {
        let t = Taint::new("dedicated", "gpu", Effect::NoSchedule);
        assert!(tol("dedicated", "Equal", "gpu", "NoSchedule").tolerates(&t));
        assert!(tol("dedicated", "Equal", "gpu", "").tolerates(&t));
        assert!(!tol("dedicated", "Equal", "cpu", "").tolerates(&t));
        assert!(!tol("dedicated", "Equal", "gpu", "NoExecute").tolerates(&t));
        assert!(tol("dedicated", "Exists", "", "").tolerates(&t));
        assert!(tol("", "Exists", "", "").tolerates(&t));
        assert!(!tol("other", "Exists", "", "").tolerates(&t));
        assert!(!tol("dedicated", "Gt", "1", "").tolerates(&t));
    }

    #[test]
    fn first_untolerated_hard_taint() {
        let taints = vec![
            Taint::new("soft", "", Effect::PreferNoSchedule),
            Taint::new("a", "1", Effect::NoSchedule),
            Taint::new("b", "", Effect::NoExecute),
        ];
        assert_eq!(find_untolerated(&taints, &[]).unwrap().key, "a");
        let tols = vec![tol("a", "Exists", "", "")];
        assert_eq!(find_untolerated(&taints, &tols).unwrap().key, "b");
        let tols = vec![
            tol("a", "Exists", "", ""),
            tol("b", "Exists", "", "NoExecute"),
        ];
        assert!(find_untolerated(&taints, &tols).is_none());
    }
}
