//! The pod's status as the agent reports it (kubelet's `generateAPIPodStatus`): phase,
//! conditions, IPs, start time, QoS class and one status per container. Pure; the worker
//! writes the result only when it differs from what it wrote last.

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};

use super::phase::Phase;
use super::record::{ContainerRecord, Kind, State, Terminated};

/// The conditions the agent owns; others (PodScheduled, DisruptionTarget...) are kept.
const OWNED: &[&str] = &[
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// A pod-level outcome that overrides what the containers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOutcome {
    pub phase: Phase,
    pub reason: String,
    pub message: String,
    /// The pod was refused before anything of it ran: like kubelet's rejection, the status
    /// then has no container statuses, so `kubectl get` shows the reason.
    pub rejected: bool,
}

/// Everything the status is made of.
pub struct StatusInputs<'a> {
    pub pod: &'a Pod,
    pub records: &'a [ContainerRecord],
    pub phase: Phase,
    pub outcome: Option<&'a PodOutcome>,
    pub pod_ips: &'a [IpAddr],
    pub host_ips: &'a [IpAddr],
    pub start_time: Option<Timestamp>,
    pub qos_class: &'a str,
    pub sandbox_ready: bool,
    pub now: Timestamp,
    /// The status last written, whose conditions are newer than the pod object's until the
    /// watch brings the write back.
    pub last_written: Option<&'a Value>,
}

fn time(t: Timestamp) -> Value {
    // Kubernetes' metav1.Time: RFC 3339 with whole seconds.
    Value::String(
        t.round(jiff::Unit::Second)
            .unwrap_or(t)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
    )
}

fn terminated(t: &Terminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "finishedAt": time(t.finished_at),
        "containerID": format!("containerd://{}", t.container_id),
    });
    if let Some(s) = t.signal {
        v["signal"] = json!(s);
    }
    if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
        v["message"] = json!(m);
    }
    // A container that never ran has no start time; Kubernetes shows the zero time.
    v["startedAt"] = t.started_at.map_or(Value::Null, time);
    v
}

fn container_status(r: &ContainerRecord) -> Value {
    let state = match &r.state {
        State::Waiting { reason, message } => {
            let mut w = json!({ "reason": reason });
            if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
                w["message"] = json!(m);
            }
            json!({ "waiting": w })
        }
        State::Running { started_at, .. } => json!({"running": {"startedAt": time(*started_at)}}),
        State::Terminated(t) => json!({ "terminated": terminated(t) }),
    };
    let mut v = json!({
        "name": r.name,
        "image": r.image,
        "imageID": r.image_id.clone().unwrap_or_default(),
        "ready": r.is_ready(),
        "started": r.is_started(),
        "restartCount": r.restart_count,
        "state": state,
        "lastState": r.last_state.as_ref().map_or(json!({}), |t| json!({"terminated": terminated(t)})),
    });
    if let Some(id) = r.container_id() {
        v["containerID"] = json!(format!("containerd://{id}"));
    }
    v
}

/// A condition, keeping the previous transition time when its status did not change.
fn condition(
    previous: &[Value],
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> Value {
    let status = if status { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c["type"] == type_)
        .filter(|c| c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| time(now));
    let mut c = json!({
        "type": type_,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": last,
    });
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

fn names(list: &[&ContainerRecord]) -> String {
    let n: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
    format!("[{}]", n.join(" "))
}

/// The whole status object the agent writes.
pub fn pod_status(i: &StatusInputs<'_>) -> Value {
    let mut previous: Vec<Value> = i
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(written) = i.last_written.and_then(|w| w["conditions"].as_array()) {
        previous.retain(|c| c["type"].as_str().is_some_and(|t| !OWNED.contains(&t)));
        previous.extend(
            written
                .iter()
                .filter(|c| c["type"].as_str().is_some_and(|t| OWNED.contains(&t)))
                .cloned(),
        );
    }
    let phase = i.outcome.map_or(i.phase, |o| o.phase);
    let completed = phase == Phase::Succeeded;

    let inits: Vec<&ContainerRecord> = i.records.iter().filter(|r| r.kind != Kind::App).collect();
    let apps: Vec<&ContainerRecord> = i.records.iter().filter(|r| r.kind == Kind::App).collect();
    let incomplete: Vec<&ContainerRecord> = inits
        .iter()
        .copied()
        .filter(|r| match r.kind {
            Kind::Sidecar => !r.ever_started,
            _ => !matches!(&r.state, State::Terminated(t) if t.exit_code == 0),
        })
        .collect();
    let initialized = incomplete.is_empty();
    // Sidecars count towards readiness like app containers.
    let unready: Vec<&ContainerRecord> = i
        .records
        .iter()
        .filter(|r| r.kind != Kind::Init && !r.is_ready())
        .collect();
    let containers_ready = unready.is_empty();
    let gates: Vec<String> = i
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|g| g.iter().map(|g| g.condition_type.clone()).collect())
        .unwrap_or_default();
    let failing_gates: Vec<&String> = gates
        .iter()
        .filter(|g| {
            !previous
                .iter()
                .any(|c| c["type"] == g.as_str() && c["status"] == "True")
        })
        .collect();

    let mut conditions: Vec<Value> = previous
        .iter()
        .filter(|c| c["type"].as_str().is_some_and(|t| !OWNED.contains(&t)))
        .cloned()
        .collect();
    conditions.push(condition(
        &previous,
        "PodReadyToStartContainers",
        i.sandbox_ready,
        None,
        None,
        i.now,
    ));
    conditions.push(if completed && !initialized {
        condition(
            &previous,
            "Initialized",
            true,
            Some("PodCompleted"),
            None,
            i.now,
        )
    } else if initialized {
        condition(&previous, "Initialized", true, None, None, i.now)
    } else {
        condition(
            &previous,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&incomplete)
            )),
            i.now,
        )
    });
    let (cr_reason, cr_message) = if completed {
        (Some("PodCompleted"), None)
    } else if containers_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    conditions.push(condition(
        &previous,
        "ContainersReady",
        containers_ready && !completed,
        cr_reason,
        cr_message.clone(),
        i.now,
    ));
    let ready = containers_ready && failing_gates.is_empty() && !completed;
    let (reason, message) = if completed || !containers_ready {
        (cr_reason, cr_message)
    } else if !failing_gates.is_empty() {
        (
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                failing_gates[0]
            )),
        )
    } else {
        (None, None)
    };
    conditions.push(condition(&previous, "Ready", ready, reason, message, i.now));

    let ip_list = |ips: &[IpAddr]| -> Value {
        Value::Array(ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect())
    };
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase.as_str()));
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(o) = i.outcome {
        if !o.reason.is_empty() {
            status.insert("reason".into(), json!(o.reason));
        }
        if !o.message.is_empty() {
            status.insert("message".into(), json!(o.message));
        }
    }
    if let Some(ip) = i.host_ips.first() {
        status.insert("hostIP".into(), json!(ip.to_string()));
        status.insert("hostIPs".into(), ip_list(i.host_ips));
    }
    if let Some(ip) = i.pod_ips.first() {
        status.insert("podIP".into(), json!(ip.to_string()));
        status.insert("podIPs".into(), ip_list(i.pod_ips));
    }
    if let Some(t) = i.start_time {
        status.insert("startTime".into(), time(t));
    }
    status.insert("qosClass".into(), json!(i.qos_class));
    if !i.outcome.is_some_and(|o| o.rejected) {
        status.insert(
            "initContainerStatuses".into(),
            Value::Array(inits.iter().map(|r| container_status(r)).collect()),
        );
        status.insert(
            "containerStatuses".into(),
            Value::Array(apps.iter().map(|r| container_status(r)).collect()),
        );
    }
    Value::Object(status)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
