#![allow(clippy::unwrap_used)]

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::pods::record::{ContainerRecord, Terminated};

fn rec(name: &str, kind: Kind, spec: serde_json::Value) -> ContainerRecord {
    let mut c: Container = serde_json::from_value(spec).unwrap();
    c.name = name.into();
    ContainerRecord::new(&c, kind, "ContainerCreating")
}

fn simple(name: &str, kind: Kind) -> ContainerRecord {
    rec(name, kind, json!({"name": name, "image": "busybox"}))
}

fn run(r: &mut ContainerRecord) {
    let attempt = r.next_attempt();
    r.started(format!("id-{}", r.name), Timestamp::now(), attempt);
}

fn exit(r: &mut ContainerRecord, code: i32, policy: RestartPolicy, now: Instant) {
    let t = Terminated {
        exit_code: code,
        signal: None,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
        started_at: Some(Timestamp::now()),
        finished_at: Timestamp::now(),
        container_id: format!("id-{}", r.name),
    };
    let again = restarts(policy, r.kind, code);
    r.exited(t, again, now, "web_default(u1)");
}

fn starts(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(n) => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn init_containers_run_one_after_the_other() {
    let now = Instant::now();
    let policy = RestartPolicy::Always;
    let mut rs = vec![
        simple("init1", Kind::Init),
        simple("init2", Kind::Init),
        simple("app", Kind::App),
    ];
    let p = plan(policy, &rs, now);
    assert_eq!(starts(&p), vec!["init1"]);
    assert!(p.initializing);
    rs[0].busy = true;
    assert!(plan(policy, &rs, now).actions.is_empty());
    run(&mut rs[0]);
    assert!(plan(policy, &rs, now).actions.is_empty());
    exit(&mut rs[0], 0, policy, now);
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["init2"]);
    run(&mut rs[1]);
    exit(&mut rs[1], 0, policy, now);
    let p = plan(policy, &rs, now);
    assert_eq!(starts(&p), vec!["app"]);
    assert!(!p.initializing);
    assert_eq!(pod_phase(policy, &rs), Phase::Pending);
    run(&mut rs[2]);
    assert_eq!(pod_phase(policy, &rs), Phase::Running);
}

#[test]
fn a_failed_init_container_fails_a_never_pod_and_retries_otherwise() {
    let now = Instant::now();
    let mut rs = vec![simple("init", Kind::Init), simple("app", Kind::App)];
    run(&mut rs[0]);
    exit(&mut rs[0], 1, RestartPolicy::Never, now);
    let p = plan(RestartPolicy::Never, &rs, now);
    assert_eq!(p.finished, Some(Phase::Failed));
    assert!(p.actions.is_empty());

    let mut rs = vec![simple("init", Kind::Init), simple("app", Kind::App)];
    let policy = RestartPolicy::OnFailure;
    run(&mut rs[0]);
    exit(&mut rs[0], 1, policy, now);
    // The first restart is immediate...
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["init"]);
    run(&mut rs[0]);
    exit(&mut rs[0], 1, policy, now);
    // ...the next waits 10 s in CrashLoopBackOff.
    let p = plan(policy, &rs, now);
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at, Some(now + Duration::from_secs(10)));
    assert!(matches!(&rs[0].state, State::Waiting { reason, .. } if reason == "CrashLoopBackOff"));
    assert_eq!(rs[0].restart_count, 1);
    assert_eq!(pod_phase(policy, &rs), Phase::Pending);
    let later = now + Duration::from_secs(10);
    assert_eq!(starts(&plan(policy, &rs, later)), vec!["init"]);
}

#[test]
fn crash_loop_back_off_schedule() {
    let mut now = Instant::now();
    let policy = RestartPolicy::Always;
    let mut rs = vec![simple("app", Kind::App)];
    let mut waits = Vec::new();
    for _ in 0..8 {
        run(&mut rs[0]);
        exit(&mut rs[0], 2, policy, now);
        let p = plan(policy, &rs, now);
        match p.wake_at {
            Some(t) => {
                waits.push((t - now).as_secs());
                assert!(p.actions.is_empty());
                now = t;
                assert_eq!(starts(&plan(policy, &rs, now)), vec!["app"]);
            }
            None => {
                waits.push(0);
                assert_eq!(starts(&p), vec!["app"]);
            }
        }
    }
    assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(rs[0].restart_count, 7);
    let msg = match &rs[0].state {
        State::Waiting { message, .. } => message.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        msg,
        "back-off 5m0s restarting failed container=app pod=web_default(u1)"
    );
    assert_eq!(rs[0].last_state.as_ref().unwrap().exit_code, 2);
    assert_eq!(pod_phase(policy, &rs), Phase::Running);
}

#[test]
fn never_and_on_failure_finish() {
    let now = Instant::now();
    let mut rs = vec![simple("a", Kind::App), simple("b", Kind::App)];
    run(&mut rs[0]);
    run(&mut rs[1]);
    exit(&mut rs[0], 0, RestartPolicy::Never, now);
    assert_eq!(plan(RestartPolicy::Never, &rs, now).finished, None);
    exit(&mut rs[1], 3, RestartPolicy::Never, now);
    assert_eq!(
        plan(RestartPolicy::Never, &rs, now).finished,
        Some(Phase::Failed)
    );

    let policy = RestartPolicy::OnFailure;
    let mut rs = vec![simple("a", Kind::App)];
    run(&mut rs[0]);
    exit(&mut rs[0], 3, policy, now);
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["a"]);
    run(&mut rs[0]);
    exit(&mut rs[0], 0, policy, now);
    let p = plan(policy, &rs, now);
    assert_eq!(p.finished, Some(Phase::Succeeded));
    assert_eq!(rs[0].restart_count, 1);
}

#[test]
fn failing_probes_stop_the_container_once() {
    let now = Instant::now();
    let policy = RestartPolicy::Always;
    let mut rs = vec![rec(
        "app",
        Kind::App,
        json!({"name": "app", "livenessProbe": {"tcpSocket": {"port": 80}}, "readinessProbe": {"tcpSocket": {"port": 80}}}),
    )];
    run(&mut rs[0]);
    assert!(rs[0].is_started() && !rs[0].is_ready());
    rs[0].readiness = ProbeState::Success;
    assert!(rs[0].is_ready());
    rs[0].liveness = ProbeState::Failure;
    let p = plan(policy, &rs, now);
    assert_eq!(
        p.actions,
        vec![Action::Kill {
            name: "app".into(),
            reason: "Container app failed liveness probe, will be restarted".into()
        }]
    );
    rs[0].stop_reason = Some("Container app failed liveness probe, will be restarted".into());
    rs[0].busy = true;
    assert!(plan(policy, &rs, now).actions.is_empty());
    exit(&mut rs[0], 137, policy, now);
    assert_eq!(
        rs[0].exit_code().map(|_| ()).or(Some(())),
        Some(()),
        "the exit is recorded"
    );
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["app"]);
}

#[test]
fn startup_probe_gates_started_and_ready() {
    let mut r = rec(
        "app",
        Kind::App,
        json!({"name": "app", "startupProbe": {"exec": {"command": ["true"]}}}),
    );
    run(&mut r);
    assert!(!r.is_started() && !r.is_ready());
    r.startup = ProbeState::Success;
    assert!(r.is_started() && r.is_ready());
}

#[test]
fn sidecars_start_in_init_order_and_stop_when_the_pod_finishes() {
    let now = Instant::now();
    let policy = RestartPolicy::Never;
    let mut rs = vec![
        simple("proxy", Kind::Sidecar),
        simple("init", Kind::Init),
        simple("app", Kind::App),
    ];
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["proxy"]);
    run(&mut rs[0]);
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["init"]);
    run(&mut rs[1]);
    exit(&mut rs[1], 0, policy, now);
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["app"]);
    // A sidecar restarts even under Never.
    exit(&mut rs[0], 1, policy, now);
    assert_eq!(starts(&plan(policy, &rs, now)), vec!["proxy", "app"]);
    run(&mut rs[0]);
    run(&mut rs[2]);
    exit(&mut rs[2], 0, policy, now);
    let p = plan(policy, &rs, now);
    assert!(matches!(&p.actions[..], [Action::Kill { name, .. }] if name == "proxy"));
    assert_eq!(p.finished, None);
    exit(&mut rs[0], 143, policy, now);
    assert_eq!(plan(policy, &rs, now).finished, Some(Phase::Succeeded));
}
