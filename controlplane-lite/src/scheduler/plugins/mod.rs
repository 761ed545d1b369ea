//! The filters and scores of kube-scheduler's default profile, each a set of pure
//! functions over a node's [`NodeInfo`](super::node_info::NodeInfo) and the incoming
//! pod's [`PodInfo`](super::pod_info::PodInfo), with the same reasons, codes and
//! normalisation as upstream.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;
pub mod volume_binding;

/// kube-scheduler's score range is 0..=MAX_NODE_SCORE per plugin.
pub const MAX_NODE_SCORE: i64 = 100;

/// The plugins, in the default profile's filter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    VolumeBinding,
    PodTopologySpread,
    InterPodAffinity,
    DefaultPreemption,
}

impl Plugin {
    pub fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::VolumeBinding => "VolumeBinding",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
            Plugin::DefaultPreemption => "DefaultPreemption",
        }
    }

    /// The plugin as one bit of a [`PluginSet`].
    pub fn bit(self) -> PluginSet {
        PluginSet(1 << (self as u16))
    }
}

/// A set of plugins (which rejected a pod; which an event may help).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PluginSet(pub u16);

impl PluginSet {
    pub const EMPTY: PluginSet = PluginSet(0);
    pub const ALL: PluginSet = PluginSet(u16::MAX);

    pub fn of(plugins: &[Plugin]) -> PluginSet {
        plugins.iter().fold(PluginSet::EMPTY, |s, p| s | p.bit())
    }

    pub fn insert(&mut self, p: Plugin) {
        self.0 |= p.bit().0;
    }

    pub fn contains(self, p: Plugin) -> bool {
        self.0 & p.bit().0 != 0
    }

    pub fn intersects(self, o: PluginSet) -> bool {
        self.0 & o.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for PluginSet {
    type Output = PluginSet;
    fn bitor(self, o: PluginSet) -> PluginSet {
        PluginSet(self.0 | o.0)
    }
}

/// How a node failed a filter: `Unschedulable` may be fixed by preempting pods on it,
/// `UnschedulableAndUnresolvable` cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// Why one node cannot take the pod, in kube-scheduler's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: Plugin,
    pub reasons: Vec<String>,
}

impl Status {
    pub fn new(code: Code, plugin: Plugin, reason: impl Into<String>) -> Status {
        Status {
            code,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    pub fn unschedulable(plugin: Plugin, reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, plugin, reason)
    }

    pub fn unresolvable(plugin: Plugin, reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, plugin, reason)
    }
}

/// kube-scheduler's `DefaultNormalizeScore`: scales scores so the highest becomes
/// [`MAX_NODE_SCORE`]; `reverse` turns "more is worse" counts into scores.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_to_the_maximum() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 1, 4];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 75, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 0]);
    }

    #[test]
    fn plugin_sets() {
        let s = PluginSet::of(&[Plugin::NodePorts, Plugin::TaintToleration]);
        assert!(s.contains(Plugin::NodePorts));
        assert!(!s.contains(Plugin::NodeAffinity));
        assert!(s.intersects(Plugin::TaintToleration.bit()));
        assert!(!s.intersects(Plugin::NodeAffinity.bit()));
    }
}
