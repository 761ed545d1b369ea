//! NodeResourcesFit (the filter, and the LeastAllocated score over cpu and memory) and
//! NodeResourcesBalancedAllocation (prefers nodes whose cpu and memory fill evenly).

use super::{Code, MAX_NODE_SCORE, Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::resources::Resources;

/// What pods nominated to a node (by preemption) hold there besides its own pods.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    pub requests: Resources,
    pub pods: i64,
}

pub fn filter(pod: &PodInfo, node: &NodeInfo, reserved: Option<&Reserved>) -> Option<Status> {
    let mut requested_buf;
    let (requested, pods) = match reserved {
        Some(r) => {
            requested_buf = node.requested.clone();
            requested_buf.add(&r.requests);
            (&requested_buf, node.pods.len() as i64 + r.pods)
        }
        None => (&node.requested, node.pods.len() as i64),
    };
    let mut reasons = Vec::new();
    let mut code = Code::Unschedulable;
    if pods + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    if !want.is_zero() {
        let alloc = &node.allocatable;
        let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
            if want > 0 && want > alloc - used {
                reasons.push(format!("Insufficient {name}"));
                if want > alloc {
                    code = Code::UnschedulableAndUnresolvable;
                }
            }
        };
        check("cpu", want.milli_cpu, alloc.milli_cpu, requested.milli_cpu);
        check("memory", want.memory, alloc.memory, requested.memory);
        check(
            "ephemeral-storage",
            want.ephemeral_storage,
            alloc.ephemeral_storage,
            requested.ephemeral_storage,
        );
        for (name, v) in &want.scalar {
            check(name, *v, alloc.scalar(name), requested.scalar(name));
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Status {
        code,
        plugin: Plugin::NodeResourcesFit,
        reasons,
    })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated: the free share of cpu and memory after the pod, counting pods
/// without requests at the defaults, weighted equally.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut sum = 0;
    let mut weights = 0;
    let pairs = [
        (
            node.non_zero_requested.milli_cpu + pod.non_zero.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested.memory + pod.non_zero.memory,
            node.allocatable.memory,
        ),
    ];
    for (req, alloc) in pairs {
        if alloc == 0 {
            continue;
        }
        sum += least_requested(req, alloc);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

/// BalancedAllocation is skipped for pods that request neither cpu nor memory, so they
/// do not all pile onto one node.
pub fn balanced_applies(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu != 0 || pod.requests.memory != 0
}

/// BalancedAllocation: 100 × (1 − the standard deviation of the cpu and memory
/// fractions the node would have with the pod).
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut fractions = [0f64; 2];
    let mut n = 0;
    let pairs = [
        (
            node.requested.milli_cpu + pod.requests.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.requested.memory + pod.requests.memory,
            node.allocatable.memory,
        ),
    ];
    for (req, alloc) in pairs {
        if alloc == 0 {
            continue;
        }
        fractions[n] = (req as f64 / alloc as f64).min(1.0);
        n += 1;
    }
    let std = if n == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn fit_reports_every_shortage() {
        let mut n = node("n1", "1", "1Gi", 2);
        n.add_pod(pod("a", json!({"cpu": "600m", "memory": "512Mi"})).into());
        let p = pod("p", json!({"cpu": "500m", "memory": "600Mi"}));
        let s = filter(&p, &n, None).unwrap();
        assert_eq!(s.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        assert_eq!(s.code, Code::Unschedulable);
        // More than the node has at all: preemption cannot help.
        let big = pod("big", json!({"cpu": "2"}));
        assert_eq!(
            filter(&big, &n, None).unwrap().code,
            Code::UnschedulableAndUnresolvable
        );
        n.add_pod(pod("b", json!({})).into());
        let s = filter(&pod("c", json!({})), &n, None).unwrap();
        assert_eq!(s.reasons, vec!["Too many pods"]);
        let gpu = pod("g", json!({"example.com/gpu": "1"}));
        let s = filter(&gpu, &node("n2", "1", "1Gi", 10), None).unwrap();
        assert_eq!(s.reasons, vec!["Insufficient example.com/gpu"]);
    }

    #[test]
    fn reserved_resources_count() {
        let n = node("n1", "1", "1Gi", 10);
        let p = pod("p", json!({"cpu": "600m"}));
        assert!(filter(&p, &n, None).is_none());
        let r = Reserved {
            requests: Resources {
                milli_cpu: 500,
                ..Default::default()
            },
            pods: 1,
        };
        assert!(filter(&p, &n, Some(&r)).is_some());
    }

    #[test]
    fn least_allocated_and_balanced_scores() {
        // 4 cpus, 8Gi: a pod of 1 cpu / 2Gi leaves 75% of each free, evenly.
        let n = node("n1", "4", "8Gi", 110);
        let p = pod("p", json!({"cpu": "1", "memory": "2Gi"}));
        assert_eq!(least_allocated(&p, &n), 75);
        assert_eq!(balanced_allocation(&p, &n), 100);
        // 2 cpus / 1Gi: cpu 50%, memory 12.5%: std 0.1875.
        let p = pod("p", json!({"cpu": "2", "memory": "1Gi"}));
        assert_eq!(least_allocated(&p, &n), (50 + 87) / 2);
        assert_eq!(balanced_allocation(&p, &n), 81);
        // Without requests the defaults count for LeastAllocated, and
        // BalancedAllocation does not apply.
        let be = pod("be", json!({}));
        assert!(!balanced_applies(&be));
        assert_eq!(
            least_allocated(&be, &n),
            ((4000 - 100) * 100 / 4000 + 97) / 2
        );
    }
}
