//! The taints the node lifecycle controller owns, and how pods' tolerations meet them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// Node condition (type, status) → the NoSchedule taint it brings.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    ("MemoryPressure", "True", MEMORY_PRESSURE),
    ("DiskPressure", "True", DISK_PRESSURE),
    ("NetworkUnavailable", "True", NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", PID_PRESSURE),
];

/// The status of the node's condition `type_`, if it has one.
pub fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

pub fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t.key == key && t.effect == effect)
}

/// The NoSchedule taints the node's conditions (and `spec.unschedulable`) call for, by key.
pub fn wanted_no_schedule(node: &Node) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = CONDITION_TAINTS
        .iter()
        .filter(|(t, s, _)| condition_status(node, t) == Some(*s))
        .map(|(_, _, k)| *k)
        .collect();
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        keys.push(UNSCHEDULABLE);
    }
    keys
}

/// Whether `key` with NoSchedule is one this controller manages.
pub fn is_managed_no_schedule(key: &str) -> bool {
    key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key)
}

/// The NoExecute taint the Ready condition calls for: not-ready when False, unreachable
/// when Unknown, none when True. A node that never reported gets none until the controller
/// has written its Unknown condition (after the startup grace period).
pub fn wanted_no_execute(node: &Node) -> Option<&'static str> {
    match condition_status(node, "Ready") {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

/// The node's taints with the managed NoSchedule set made equal to `no_schedule` and the
/// managed NoExecute set to `no_execute`; other taints are kept as they are, in order.
/// Added taints carry `now` as their time. `None` when nothing changes.
pub fn reconcile_taints(
    node: &Node,
    no_schedule: &[&str],
    no_execute: &[&str],
    now: &Time,
) -> Option<Vec<Taint>> {
    let current = taints(node);
    let managed = |t: &Taint| {
        (t.effect == NO_SCHEDULE && is_managed_no_schedule(&t.key))
            || (t.effect == NO_EXECUTE && (t.key == NOT_READY || t.key == UNREACHABLE))
    };
    let wanted = |t: &Taint| {
        (t.effect == NO_SCHEDULE && no_schedule.contains(&t.key.as_str()))
            || (t.effect == NO_EXECUTE && no_execute.contains(&t.key.as_str()))
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted(t))
        .cloned()
        .collect();
    let mut changed = out.len() != current.len();
    for (keys, effect) in [(no_schedule, NO_SCHEDULE), (no_execute, NO_EXECUTE)] {
        for k in keys {
            if !out.iter().any(|t| t.key == *k && t.effect == effect) {
                out.push(Taint {
                    key: k.to_string(),
                    effect: effect.to_string(),
                    time_added: Some(now.clone()),
                    value: None,
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// Whether `t` tolerates `taint`, as the API's rules say: an empty effect matches every
/// effect, an empty key with `Exists` matches every key, `Equal` (the default) compares
/// values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// How long a pod may stay on a node with these NoExecute `taints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Some taint is not tolerated: evict now.
    None,
    /// Every taint is tolerated, the shortest for this long.
    For(Duration),
    Forever,
}

/// The pod's tolerance of `taints`: the shortest `tolerationSeconds` among the tolerations
/// that match them (zero or less means none), forever when none of those sets a limit.
pub fn tolerance(taints: &[&Taint], tolerations: &[Toleration]) -> Tolerance {
    let mut shortest: Option<i64> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Tolerance::None;
        }
        for t in matching {
            if let Some(s) = t.toleration_seconds {
                shortest = Some(shortest.map_or(s, |m| m.min(s)));
            }
        }
    }
    match shortest {
        None => Tolerance::Forever,
        Some(s) if s <= 0 => Tolerance::For(Duration::ZERO),
        Some(s) => Tolerance::For(Duration::from_secs(s as u64)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_rules() {
        let t = taint("k", Some("v"), NO_EXECUTE);
        assert!(tolerates(&tol(json!({"key": "k", "value": "v"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "value": "w"})), &t));
        assert!(tolerates(
            &tol(json!({"key": "k", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(&tol(json!({"operator": "Equal"})), &t));
        assert!(!tolerates(
            &tol(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(!tolerates(
            &tol(json!({"key": "j", "operator": "Exists"})),
            &t
        ));
    }

    #[test]
    fn tolerance_is_the_shortest_limit() {
        let unreachable = taint(UNREACHABLE, None, NO_EXECUTE);
        let not_ready = taint(NOT_READY, None, NO_EXECUTE);
        let both = [&unreachable, &not_ready];
        assert_eq!(tolerance(&both, &[]), Tolerance::None);
        let defaults = [
            tol(
                json!({"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            ),
            tol(
                json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}),
            ),
        ];
        assert_eq!(
            tolerance(&both, &defaults),
            Tolerance::For(Duration::from_secs(2))
        );
        assert_eq!(
            tolerance(&[&not_ready], &defaults),
            Tolerance::For(Duration::from_secs(300))
        );
        assert_eq!(
            tolerance(&both, &[tol(json!({"operator": "Exists"}))]),
            Tolerance::Forever
        );
        assert_eq!(
            tolerance(
                &[&unreachable],
                &[tol(
                    json!({"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": -1})
                )]
            ),
            Tolerance::For(Duration::ZERO)
        );
        // A taint nobody tolerates wins over any limit.
        let other = taint("dedicated", Some("db"), NO_EXECUTE);
        assert_eq!(
            tolerance(&[&unreachable, &other], &defaults),
            Tolerance::None
        );
    }

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn taints_follow_conditions_and_keep_the_rest() {
        let n = node(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [
                {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                {"key": NOT_READY, "effect": "NoExecute"},
                {"key": MEMORY_PRESSURE, "effect": "NoSchedule"},
            ]},
            "status": {"conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "DiskPressure", "status": "True"},
            ]},
        }));
        let ns = wanted_no_schedule(&n);
        assert_eq!(ns, vec![UNREACHABLE, DISK_PRESSURE, UNSCHEDULABLE]);
        assert_eq!(wanted_no_execute(&n), Some(UNREACHABLE));
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let out = reconcile_taints(&n, &ns, &[UNREACHABLE], &now).unwrap();
        let keys: Vec<(&str, &str)> = out
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("dedicated", NO_SCHEDULE),
                (UNREACHABLE, NO_SCHEDULE),
                (DISK_PRESSURE, NO_SCHEDULE),
                (UNSCHEDULABLE, NO_SCHEDULE),
                (UNREACHABLE, NO_EXECUTE),
            ]
        );
        assert!(out[4].time_added.is_some());
        let mut again = n.clone();
        again.spec.as_mut().unwrap().taints = Some(out);
        assert_eq!(reconcile_taints(&again, &ns, &[UNREACHABLE], &now), None);
    }
}
