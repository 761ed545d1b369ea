#![allow(clippy::unwrap_used)]

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::pods::record::ProbeState;

fn pod(conditions: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "busybox", "readinessProbe": {"tcpSocket": {"port": 80}}}],
            "readinessGates": [{"conditionType": "example.com/lb"}],
        },
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn records(p: &Pod) -> Vec<ContainerRecord> {
    let spec = p.spec.as_ref().unwrap();
    let c = |c: &Container, kind| ContainerRecord::new(c, kind, "PodInitializing");
    vec![
        c(&spec.init_containers.as_ref().unwrap()[0], Kind::Init),
        c(&spec.containers[0], Kind::App),
    ]
}

fn status(p: &Pod, rs: &[ContainerRecord], phase: Phase, now: Timestamp) -> serde_json::Value {
    pod_status(&StatusInputs {
        pod: p,
        records: rs,
        phase,
        outcome: None,
        pod_ips: &["10.1.0.7".parse().unwrap(), "fd00::7".parse().unwrap()],
        host_ips: &["192.168.1.2".parse().unwrap()],
        start_time: Some(now),
        qos_class: "BestEffort",
        sandbox_ready: true,
        now,
        last_written: None,
    })
}

fn cond<'a>(s: &'a serde_json::Value, t: &str) -> &'a serde_json::Value {
    s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap()
}

#[test]
fn initializing_then_ready() {
    let now: Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
    let p = pod(json!([{"type": "PodScheduled", "status": "True"}]));
    let mut rs = records(&p);
    let s = status(&p, &rs, Phase::Pending, now);
    assert_eq!(s["phase"], "Pending");
    assert_eq!(s["podIP"], "10.1.0.7");
    assert_eq!(s["podIPs"], json!([{"ip": "10.1.0.7"}, {"ip": "fd00::7"}]));
    assert_eq!(s["hostIP"], "192.168.1.2");
    assert_eq!(s["startTime"], "2026-12-05T10:00:00Z");
    assert_eq!(cond(&s, "PodScheduled")["status"], "True");
    assert_eq!(cond(&s, "PodReadyToStartContainers")["status"], "True");
    let init = cond(&s, "Initialized");
    assert_eq!(init["status"], "False");
    assert_eq!(init["reason"], "ContainersNotInitialized");
    assert_eq!(init["message"], "containers with incomplete status: [init]");
    assert_eq!(
        s["containerStatuses"][0]["state"],
        json!({"waiting": {"reason": "PodInitializing"}})
    );
    assert_eq!(s["containerStatuses"][0]["ready"], false);
    assert_eq!(s["initContainerStatuses"][0]["name"], "init");

    rs[0].started("c0".into(), now, 0);
    rs[0].exited(
        Terminated {
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: Some(now),
            finished_at: now,
            container_id: "c0".into(),
        },
        false,
        Instant::now(),
        "web_default(u1)",
    );
    rs[1].started("c1".into(), now, 0);
    let later = now + jiff::SignedDuration::from_secs(5);
    let p2 = {
        let mut p2 = p.clone();
        p2.status = serde_json::from_value(
            json!({"conditions": status(&p, &rs, Phase::Running, now)["conditions"]}),
        )
        .unwrap();
        p2
    };
    let s = status(&p2, &rs, Phase::Running, later);
    assert_eq!(cond(&s, "Initialized")["status"], "True");
    assert_eq!(
        cond(&s, "Initialized")["lastTransitionTime"],
        "2026-12-05T10:00:00Z",
        "unchanged conditions keep their transition time"
    );
    let cr = cond(&s, "ContainersReady");
    assert_eq!(cr["status"], "False");
    assert_eq!(cr["message"], "containers with unready status: [app]");
    assert_eq!(
        s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(s["containerStatuses"][0]["containerID"], "containerd://c1");
    assert_eq!(s["containerStatuses"][0]["started"], true);

    rs[1].readiness = ProbeState::Success;
    let s = status(&p2, &rs, Phase::Running, later);
    assert_eq!(cond(&s, "ContainersReady")["status"], "True");
    let ready = cond(&s, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ReadinessGatesNotReady");

    let mut p3 = p2.clone();
    let mut conds = serde_json::to_value(&p3.status.as_ref().unwrap().conditions).unwrap();
    conds
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "example.com/lb", "status": "True"}));
    p3.status.as_mut().unwrap().conditions = serde_json::from_value(conds).unwrap();
    let s = status(&p3, &rs, Phase::Running, later);
    assert_eq!(cond(&s, "Ready")["status"], "True");
    assert_eq!(
        cond(&s, "Ready")["lastTransitionTime"],
        "2026-12-05T10:00:05Z"
    );
    assert_eq!(cond(&s, "example.com/lb")["status"], "True");
}

#[test]
fn rejected_pods_carry_the_reason() {
    let now = Timestamp::now();
    let p = pod(json!([]));
    let rs = records(&p);
    let outcome = PodOutcome {
        phase: Phase::Failed,
        reason: "OutOfcpu".into(),
        message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 0, capacity: 2000".into(),
        rejected: true,
    };
    let s = pod_status(&StatusInputs {
        pod: &p,
        records: &rs,
        phase: Phase::Pending,
        outcome: Some(&outcome),
        pod_ips: &[],
        host_ips: &[],
        start_time: Some(now),
        qos_class: "Burstable",
        sandbox_ready: false,
        now,
        last_written: None,
    });
    assert_eq!(s["phase"], "Failed");
    assert_eq!(s["reason"], "OutOfcpu");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod was rejected: ")
    );
    assert!(s.get("podIP").is_none());
    assert!(s.get("containerStatuses").is_none());
}
