//! When a node last showed signs of life, and what its conditions become when it stops.
//!
//! As kube-controller-manager does, the controller trusts its own clock, not the node's:
//! a sign of life is a *change* it observes (a renewed Lease, a new heartbeat time on the
//! Ready condition), stamped with the controller's time when seen. Clock skew between the
//! node and the control plane then does not matter, and a control plane that restarts gives
//! every node a fresh grace period.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

/// A node that never posted a status gets this long from its creation (upstream's
/// `--node-startup-grace-period`).
pub const STARTUP_GRACE: Duration = Duration::from_secs(60);

/// The conditions that turn Unknown when the node goes silent. NetworkUnavailable is left
/// alone: the network, not the node, reports it.
pub const WATCHED_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

#[derive(Debug, Clone)]
struct Seen {
    heartbeat: Option<Timestamp>,
    renewed: Option<Timestamp>,
    /// The last time a sign of life was seen.
    probe: Instant,
}

/// Per node, what was last seen and when.
#[derive(Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, Seen>>,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// How old the node object is, by the wall clock.
fn age(node: &Node) -> Duration {
    node.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|c| {
            let d = Timestamp::now().duration_since(c.0);
            Duration::try_from(d).ok()
        })
        .unwrap_or_default()
}

impl Liveness {
    /// Notes what `node` and its `lease` say now; returns how long the node has left
    /// before its grace period ends, `None` once it has.
    pub fn check(
        &self,
        node: &Node,
        lease: Option<&Lease>,
        grace: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = ready_condition(node);
        let heartbeat = ready
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let renewed = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|m| m.0);
        let grace = if ready.is_none() {
            STARTUP_GRACE
        } else {
            grace
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let s = seen.entry(name).or_insert_with(|| Seen {
            heartbeat,
            renewed,
            // A node that never reported counts from its creation; any other from now.
            probe: if ready.is_none() {
                now.checked_sub(age(node)).unwrap_or(now)
            } else {
                now
            },
        });
        if s.heartbeat != heartbeat && heartbeat.is_some() {
            s.heartbeat = heartbeat;
            s.probe = now;
        }
        if renewed.is_some() && renewed > s.renewed {
            s.renewed = renewed;
            s.probe = now;
        }
        let deadline = s.probe + grace;
        (now <= deadline).then(|| deadline - now)
    }

    /// Every node gets a fresh grace period from `now` (after the control plane lost sight
    /// of all of them at once, as upstream does when leaving full disruption).
    pub fn reset_all(&self, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for s in seen.values_mut() {
            s.probe = now;
        }
    }

    pub fn forget(&self, node: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }

    /// Whether the node has been seen before.
    pub fn knows(&self, node: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(node)
    }
}

/// The node's conditions with Ready and the pressure conditions made Unknown, as the
/// controller writes them for a silent node; `None` when they already are.
pub fn unknown_conditions(node: &Node, now: &Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in WATCHED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(heartbeat: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": heartbeat},
                {"type": "MemoryPressure", "status": "False"},
            ]},
        }))
        .unwrap()
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"renewTime": renewed},
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_push_the_deadline_back() {
        let l = Liveness::default();
        let grace = Duration::from_secs(40);
        let n = node("2024-01-01T00:00:00Z");
        let t0 = Instant::now();
        assert_eq!(
            l.check(&n, Some(&lease("2024-01-01T00:00:00.000000Z")), grace, t0),
            Some(grace)
        );
        let t1 = t0 + Duration::from_secs(30);
        // Renewed: 40 s from now again.
        assert_eq!(
            l.check(&n, Some(&lease("2024-01-01T00:00:10.000000Z")), grace, t1),
            Some(grace)
        );
        // The same lease seen later counts nothing.
        let t2 = t1 + Duration::from_secs(39);
        assert_eq!(
            l.check(&n, Some(&lease("2024-01-01T00:00:10.000000Z")), grace, t2),
            Some(Duration::from_secs(1))
        );
        let t3 = t1 + Duration::from_secs(41);
        assert_eq!(
            l.check(&n, Some(&lease("2024-01-01T00:00:10.000000Z")), grace, t3),
            None
        );
        // A new heartbeat on the Ready condition is a sign of life too.
        assert!(
            l.check(&node("2024-01-01T00:05:00Z"), None, grace, t3)
                .is_some()
        );
        l.reset_all(t3 + grace + grace);
        assert!(
            l.check(
                &node("2024-01-01T00:05:00Z"),
                None,
                grace,
                t3 + grace + grace
            )
            .is_some()
        );
    }

    #[test]
    fn silent_nodes_have_unknown_conditions() {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let n = node("2024-01-01T00:00:00Z");
        let c = unknown_conditions(&n, &now).unwrap();
        let by = |t: &str| c.iter().find(|c| c.type_ == t).unwrap().clone();
        let ready = by("Ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        // The last heartbeat stays what the node said.
        assert_eq!(
            ready.last_heartbeat_time,
            n.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].last_heartbeat_time
        );
        assert_eq!(by("MemoryPressure").status, "Unknown");
        assert_eq!(
            by("DiskPressure").reason.as_deref(),
            Some("NodeStatusNeverUpdated")
        );
        assert_eq!(by("PIDPressure").status, "Unknown");
        let mut again = n.clone();
        again.status.as_mut().unwrap().conditions = Some(c);
        assert_eq!(unknown_conditions(&again, &now), None);
    }
}
