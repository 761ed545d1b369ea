//! Which pods a ReplicaSet deletes first when it scales down, in Kubernetes' order: the
//! least useful go first — unscheduled before scheduled, pending before unknown before
//! running, not ready before ready, lower `controller.kubernetes.io/pod-deletion-cost`
//! first, pods doubled up on a node with others of the same workload first, then the most
//! recently ready, the most restarted and the newest (ready and creation times compared in
//! logarithmic buckets, so pods of about the same age rank together and the uid decides).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::controllers::pod_util;

const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `diff` pods of `pods` to delete; `related` are the active pods of the same workload
/// (this ReplicaSet's and its siblings'), whose placement breaks ties.
pub fn pods_to_delete(
    mut pods: Vec<Arc<Pod>>,
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if diff < pods.len() {
        let mut on_node: HashMap<&str, usize> = HashMap::new();
        for p in related {
            if pod_util::is_active(p) {
                *on_node.entry(pod_util::node_name(p)).or_default() += 1;
            }
        }
        let rank = |p: &Pod| on_node.get(pod_util::node_name(p)).copied().unwrap_or(0);
        pods.sort_by(|a, b| compare(a, rank(a), b, rank(b), now));
    }
    pods.truncate(diff);
    pods
}

fn phase_ordinal(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn deletion_cost(p: &Pod) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest restart count of regular containers, then of init (sidecar) containers.
fn max_restarts(p: &Pod) -> (i32, i32) {
    let status = p.status.as_ref();
    let max = |cs: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        cs.into_iter()
            .flatten()
            .map(|c| c.restart_count)
            .max()
            .unwrap_or(0)
    };
    (
        max(status.and_then(|s| s.container_statuses.as_ref())),
        max(status.and_then(|s| s.init_container_statuses.as_ref())),
    )
}

/// log2 of the age in nanoseconds, so ages within a factor of two rank the same.
fn age_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// Orders two times the way upstream's "after or zero" does under logarithmic scale-down:
/// a missing time first, then the younger bucket, then the uid.
fn by_time(
    a: Option<Timestamp>,
    ua: &str,
    b: Option<Timestamp>,
    ub: &str,
    now: Timestamp,
) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if x == y => Ordering::Equal,
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => {
            let (bx, by) = (age_bucket(x, now), age_bucket(y, now));
            if bx == by { ua.cmp(ub) } else { bx.cmp(&by) }
        }
    }
}

fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    let (na, nb) = (pod_util::node_name(a), pod_util::node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let o = phase_ordinal(a).cmp(&phase_ordinal(b));
    if o != Ordering::Equal {
        return o;
    }
    let (ra, rb) = (pod_util::is_ready(a), pod_util::is_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let o = deletion_cost(a).cmp(&deletion_cost(b));
    if o != Ordering::Equal {
        return o;
    }
    // More colocated pods: deleted first.
    let o = rank_b.cmp(&rank_a);
    if o != Ordering::Equal {
        return o;
    }
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    if ra && rb {
        let o = by_time(
            pod_util::ready_since(a),
            &uid(a),
            pod_util::ready_since(b),
            &uid(b),
            now,
        );
        if o != Ordering::Equal {
            return o;
        }
    }
    let (xa, xb) = (max_restarts(a), max_restarts(b));
    if xa.0 != xb.0 {
        return xb.0.cmp(&xa.0);
    }
    if xa.1 != xb.1 {
        return xb.1.cmp(&xa.1);
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    by_time(created(a), &uid(a), created(b), &uid(b), now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created_ago: i64) -> Arc<Pod> {
        let now = Timestamp::now().as_second();
        let created = Timestamp::from_second(now - created_ago).unwrap();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": name, "creationTimestamp": created.to_string()},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase, "conditions": [
                    {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": created.to_string()}
                ]},
            }))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn least_useful_pods_go_first() {
        let pods = vec![
            pod("running-ready-old", "n1", "Running", true, 10_000),
            pod("running-ready-new", "n1", "Running", true, 10),
            pod("running-unready", "n1", "Running", false, 100),
            pod("unknown", "n1", "Unknown", false, 100),
            pod("pending", "n1", "Pending", false, 100),
            pod("unscheduled", "", "Pending", false, 100),
        ];
        let now = Timestamp::now();
        let all = pods_to_delete(pods.clone(), &pods, 5, now);
        assert_eq!(
            names(&all),
            [
                "unscheduled",
                "pending",
                "unknown",
                "running-unready",
                "running-ready-new"
            ]
        );
        // Deleting everything needs no ranking.
        assert_eq!(pods_to_delete(pods.clone(), &pods, 6, now).len(), 6);
    }

    #[test]
    fn doubled_up_and_costly_pods() {
        let a = pod("alone", "n1", "Running", true, 1000);
        let b = pod("crowded", "n2", "Running", true, 1000);
        let sibling = pod("sibling", "n2", "Running", true, 1000);
        let related = vec![a.clone(), b.clone(), sibling];
        let now = Timestamp::now();
        assert_eq!(
            names(&pods_to_delete(
                vec![a.clone(), b.clone()],
                &related,
                1,
                now
            )),
            ["crowded"]
        );
        let mut costly = (*b).clone();
        costly.metadata.annotations = Some([(DELETION_COST.to_string(), "10".to_string())].into());
        let costly = Arc::new(costly);
        assert_eq!(
            names(&pods_to_delete(vec![a, costly], &related, 1, now)),
            ["alone"]
        );
    }
}
