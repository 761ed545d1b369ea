//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that
//! tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use super::taint_toleration::{Effect, Taint, tolerated};
use super::{Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub const TAINT: &str = "node.kubernetes.io/unschedulable";
pub const REASON: &str = "node(s) were unschedulable";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if !node.unschedulable {
        return None;
    }
    if tolerated(&pod.tolerations, &Taint::new(TAINT, "", Effect::NoSchedule)) {
        return None;
    }
    Some(Status::unresolvable(Plugin::NodeUnschedulable, REASON))
}
