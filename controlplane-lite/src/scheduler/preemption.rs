//! DefaultPreemption (kube-scheduler's PostFilter): when no node fits, find the node
//! where evicting the fewest, least important lower-priority pods makes room. Pure: it
//! names the node and the victims; the scheduler evicts them and nominates the pod.

use std::collections::HashMap;
use std::sync::Arc;

use super::framework::{CycleState, Diagnosis, Nominations, filter_node, reserved_for};
use super::plugins::{Code, Plugin, Status};
use super::pod_info::PodInfo;
use super::snapshot::View;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NEVER: &str = "not eligible due to preemptionPolicy=Never.";
pub const TERMINATING: &str = "not eligible due to a terminating pod on the nominated node.";

/// Candidates are sought on at least this many nodes (or 10% of them, if more), as
/// kube-scheduler's defaults say; the rest are not tried once enough are found.
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;

/// A node where preemption makes room, and the pods to evict there.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: usize,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Higher priority first, then the earlier started.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (a.start_time, b.start_time) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

fn fits(
    view: &View,
    i: usize,
    node: &super::node_info::NodeInfo,
    pod: &PodInfo,
    nominated: &Nominations,
) -> Result<(), Status> {
    let v = view.replacing(i, node);
    let state = CycleState::new(&v, pod)?;
    match filter_node(
        &state,
        pod,
        node,
        reserved_for(nominated, pod, &node.name).as_ref(),
    ) {
        None => Ok(()),
        Some(st) => Err(st),
    }
}

/// The fewest victims on node `i` that let `pod` fit: every lower-priority pod goes,
/// then the most important ones come back as long as the pod still fits.
pub fn select_victims(
    view: &View,
    i: usize,
    pod: &PodInfo,
    nominated: &Nominations,
) -> Result<Vec<Arc<PodInfo>>, Status> {
    let node = view.node(i);
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(Plugin::DefaultPreemption, NO_VICTIMS));
    }
    let mut trial = node.clone();
    for p in &potential {
        trial.remove_pod(&p.uid);
    }
    fits(view, i, &trial, pod, nominated)?;
    potential.sort_by(|a, b| more_important(a, b));
    let mut victims = Vec::new();
    for p in potential {
        trial.add_pod(p.clone());
        if fits(view, i, &trial, pod, nominated).is_err() {
            trial.remove_pod(&p.uid);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Picks among candidates as kube-scheduler does: the lowest highest victim priority,
/// then the lowest sum of priorities, then the fewest victims, then the node whose most
/// important victims started last.
fn pick(candidates: &[Candidate]) -> usize {
    let key = |c: &Candidate| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.priority as i64 + i64::from(i32::MAX) + 1)
            .sum();
        let earliest = c
            .victims
            .iter()
            .filter(|v| v.priority == highest)
            .filter_map(|v| v.start_time)
            .min();
        (highest, sum, c.victims.len(), std::cmp::Reverse(earliest))
    };
    let mut best = 0;
    for (k, c) in candidates.iter().enumerate().skip(1) {
        if key(c) < key(&candidates[best]) {
            best = k;
        }
    }
    best
}

/// Finds where preempting makes room for `pod`, given why each node refused it. `Err`
/// carries the message kube-scheduler puts after `preemption: `.
pub fn preempt(
    view: &View,
    pod: &PodInfo,
    diagnosis: &Diagnosis,
    nominated: &Nominations,
) -> Result<Candidate, String> {
    if pod.preempt_never {
        return Err(NEVER.into());
    }
    let statuses: HashMap<usize, &Status> =
        diagnosis.statuses.iter().map(|(i, s)| (*i, s)).collect();
    if let Some(i) = pod.nominated_node.as_deref().and_then(|n| view.index_of(n))
        && statuses
            .get(&i)
            .is_none_or(|s| s.code != Code::UnschedulableAndUnresolvable)
        && view
            .node(i)
            .pods
            .iter()
            .any(|p| p.priority < pod.priority && p.terminating)
    {
        return Err(TERMINATING.into());
    }
    let potential: Vec<usize> = diagnosis
        .statuses
        .iter()
        .filter(|(_, s)| s.code == Code::Unschedulable)
        .map(|(i, _)| *i)
        .collect();
    let enough =
        (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100).max(MIN_CANDIDATE_NODES_ABSOLUTE);
    let mut candidates = Vec::new();
    let mut failures = Vec::new();
    for &i in &potential {
        match select_victims(view, i, pod, nominated) {
            Ok(victims) if victims.is_empty() => {
                return Ok(Candidate { node: i, victims });
            }
            Ok(victims) => {
                candidates.push(Candidate { node: i, victims });
                if candidates.len() >= enough {
                    break;
                }
            }
            Err(st) => failures.push((i, st)),
        }
    }
    if candidates.is_empty() {
        let d = Diagnosis {
            num_all_nodes: view.len(),
            statuses: failures,
            absent: Some(Status::unresolvable(Plugin::DefaultPreemption, NOT_HELPFUL)),
            pre_filter: None,
        };
        return Err(d.message());
    }
    let best = pick(&candidates);
    Ok(candidates.swap_remove(best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::framework::{ScheduleError, schedule};
    use crate::scheduler::snapshot::Snapshot;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::json;

    fn with_priority(name: &str, cpu: &str, priority: i32) -> Arc<PodInfo> {
        let mut p = pod(name, json!({"cpu": cpu}));
        p.priority = priority;
        Arc::new(p)
    }

    fn diagnose(snap: &Snapshot, p: &PodInfo) -> Diagnosis {
        let mut start = 0;
        match schedule(
            &snap.view(),
            p,
            &Nominations::new(),
            &mut start,
            &mut rand::rng(),
        ) {
            Err(ScheduleError::Unfit(d)) => d,
            other => panic!("expected no fit, got {other:?}"),
        }
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let mut snap = Snapshot::default();
        snap.add_node(node("n1", "2", "8Gi", 110));
        snap.add_node(node("n2", "2", "8Gi", 110));
        // n1: two low pods of 1 cpu; n2: one low (1 cpu) and one mid (1 cpu).
        snap.add_pod("n1", with_priority("l1", "1", 1));
        snap.add_pod("n1", with_priority("l2", "1", 1));
        snap.add_pod("n2", with_priority("l3", "1", 1));
        snap.add_pod("n2", with_priority("m1", "1", 5));
        let p = with_priority("p", "1", 10);
        let d = diagnose(&snap, &p);
        let c = preempt(&snap.view(), &p, &d, &Nominations::new()).unwrap();
        // Either node needs one victim; n1's highest victim priority (1) is lower.
        assert_eq!(snap.view().node(c.node).name, "n1");
        assert_eq!(c.victims.len(), 1);
        assert_eq!(c.victims[0].priority, 1);
    }

    #[test]
    fn messages_when_preemption_cannot_help() {
        let mut snap = Snapshot::default();
        snap.add_node(node("n1", "2", "8Gi", 110));
        snap.add_node(node("n2", "1", "8Gi", 110));
        snap.add_pod("n1", with_priority("h", "2", 100));
        let p = with_priority("p", "1500m", 10);
        let d = diagnose(&snap, &p);
        assert_eq!(d.message(), "0/2 nodes are available: 2 Insufficient cpu.");
        let e = preempt(&snap.view(), &p, &d, &Nominations::new()).unwrap_err();
        assert_eq!(
            e,
            "0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
        let mut never = (*p).clone();
        never.preempt_never = true;
        assert_eq!(
            preempt(&snap.view(), &never, &d, &Nominations::new()).unwrap_err(),
            NEVER
        );
    }
}
