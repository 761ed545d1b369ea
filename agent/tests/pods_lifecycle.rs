//! A container's life, end to end: restart policies and the crash-loop back-off, probes
//! that gate readiness and restart containers, lifecycle hooks, and graceful termination.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use skiff_tests::eventually;

fn started_at(p: &serde_json::Value, name: &str) -> String {
    container_status(p, name)["state"]["running"]["startedAt"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn restart_policies_and_the_crash_loop_back_off() {
    let c = Cluster::start("node-restart", &[]);
    let t0 = Instant::now();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  nodeName: node-restart
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo run; exit 3"]
    terminationMessagePolicy: FallbackToLogsOnError
---
apiVersion: v1
kind: Pod
metadata: {{name: once}}
spec:
  nodeName: node-restart
  restartPolicy: Never
  containers:
  - name: ok
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo done > /dev/termination-log"]
  - name: bad
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 1; exit 7"]
---
apiVersion: v1
kind: Pod
metadata: {{name: onfailure}}
spec:
  nodeName: node-restart
  restartPolicy: OnFailure
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "exit 0"]
"#
    ));
    // Never: one container succeeded, one failed: the pod failed, and both keep their end.
    let p = c.wait_pod("once", "Failed", Duration::from_secs(30), |p| {
        phase(p) == "Failed"
    });
    let ok = &container_status(&p, "ok")["state"]["terminated"];
    assert_eq!(ok["reason"], "Completed");
    assert_eq!(ok["message"], "done\n");
    let bad = &container_status(&p, "bad")["state"]["terminated"];
    assert_eq!(
        (bad["exitCode"].as_i64(), bad["reason"].as_str()),
        (Some(7), Some("Error"))
    );
    assert_eq!(container_status(&p, "bad")["restartCount"], 0);
    // A finished pod holds no container, sandbox or cgroup, but keeps its status.
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    eventually(Duration::from_secs(10), "finished pod released", || {
        let left = rt.block_on(c.containers_of(&uid));
        (left.is_empty() && !c.node.root().join("pods").join(&uid).join("ns").exists())
            .then_some(())
    });

    // OnFailure and a clean exit: Succeeded.
    c.wait_pod("onfailure", "Succeeded", Duration::from_secs(30), |p| {
        phase(p) == "Succeeded"
    });

    // Always: restarted at once the first time, then after 10 s, with CrashLoopBackOff
    // between runs and the last run's end in lastState.
    let p = c.wait_pod(
        "crasher",
        "CrashLoopBackOff",
        Duration::from_secs(30),
        |p| container_status(p, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff",
    );
    let first_backoff = t0.elapsed();
    let cs = container_status(&p, "app");
    assert_eq!(cs["restartCount"], 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(cs["lastState"]["terminated"]["message"], "run\n");
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=app pod=crasher_default("),
        "{cs}"
    );
    assert_eq!(phase(&p), "Running");
    c.wait_event("crasher", "Back-off restarting failed container app");
    let p = c.wait_pod("crasher", "restart 2", Duration::from_secs(30), |p| {
        container_status(p, "app")["restartCount"] == 2
    });
    let waited = t0.elapsed() - first_backoff;
    assert!(
        waited >= Duration::from_secs(8),
        "restarted after {waited:?}"
    );
    assert_eq!(
        container_status(&p, "app")["lastState"]["terminated"]["exitCode"],
        3
    );
    c.wait_pod("crasher", "second back-off", Duration::from_secs(30), |p| {
        container_status(p, "app")["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off 20s"))
    });
    let table = c.cp.kubectl_ok(&["get", "pod", "crasher"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
}

#[test]
fn probes_gate_readiness_and_restart_failing_containers() {
    let c = Cluster::start("node-probes", &[]);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  nodeName: node-probes
  terminationGracePeriodSeconds: 2
  volumes: [{{name: www, emptyDir: {{}}}}]
  containers:
  - name: httpd
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && httpd -f -p 8080 -h /www"]
    volumeMounts: [{{name: www, mountPath: /www}}]
    readinessProbe:
      httpGet: {{path: /ready.html, port: 8080}}
      periodSeconds: 1
      failureThreshold: 1
    startupProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
  - name: sidekick
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {{command: ["cat", "/tmp/healthy"]}}
      periodSeconds: 1
      failureThreshold: 2
"#
    ));
    // Running but not ready: the readiness page is missing.
    let p = c.wait_pod("web", "started, unready", Duration::from_secs(30), |p| {
        container_status(p, "httpd")["started"] == true
    });
    assert_eq!(container_status(&p, "httpd")["ready"], false);
    assert_eq!(condition(&p, "Ready"), "False");
    c.wait_event(
        "web",
        "Readiness probe failed: HTTP probe failed with statuscode: 404",
    );

    // The page appears (written through the shared volume by a second container would be
    // nicer; the pod's own volume directory on the node is the same thing).
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let www = c
        .node
        .root()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/www/ready.html");
    std::fs::write(&www, "ok").unwrap();
    let p = c.wait_pod("web", "Ready", Duration::from_secs(20), |p| {
        condition(p, "Ready") == "True"
    });
    assert_eq!(container_status(&p, "httpd")["ready"], true);
    assert_eq!(condition(&p, "ContainersReady"), "True");
    std::fs::remove_file(&www).unwrap();
    c.wait_pod("web", "unready again", Duration::from_secs(20), |p| {
        condition(p, "Ready") == "False"
    });

    // The liveness probe fails twice: the container is killed and started again.
    let before = started_at(&p, "sidekick");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let containers = rt.block_on(c.containers_of(&uid));
    let sidekick = containers
        .iter()
        .find(|x| x.meta.as_ref().unwrap().container_name == "sidekick")
        .unwrap();
    // Make it unhealthy from the host, through the container's root filesystem.
    let pid = sidekick.task.pid;
    std::fs::remove_file(format!("/proc/{pid}/root/tmp/healthy")).unwrap();
    c.wait_event(
        "web",
        "Liveness probe failed: cat: can't open '/tmp/healthy'",
    );
    c.wait_event(
        "web",
        "Container sidekick failed liveness probe, will be restarted",
    );
    let p = c.wait_pod("web", "sidekick restarted", Duration::from_secs(30), |p| {
        container_status(p, "sidekick")["restartCount"] == 1
            && container_status(p, "sidekick")["state"]["running"].is_object()
    });
    assert_ne!(started_at(&p, "sidekick"), before);
    assert_eq!(
        container_status(&p, "sidekick")["lastState"]["terminated"]["exitCode"],
        137
    );
}

#[test]
fn hooks_and_graceful_termination() {
    let c = Cluster::start("node-hooks", &[]);
    let marks = tempfile::tempdir().unwrap();
    let marks_dir = marks.path().display().to_string();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: polite}}
spec:
  nodeName: node-hooks
  terminationGracePeriodSeconds: 30
  volumes: [{{name: marks, hostPath: {{path: {marks_dir}, type: Directory}}}}]
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo got TERM >> /marks/log; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: marks, mountPath: /marks}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo poststart >> /marks/log"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /marks/log"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  nodeName: node-hooks
  terminationGracePeriodSeconds: 3
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  nodeName: node-hooks
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "exit 9"]}}
"#
    ));
    for pod in ["polite", "stubborn"] {
        c.wait_pod(pod, "Running", Duration::from_secs(30), |p| {
            phase(p) == "Running"
        });
    }
    let log = marks.path().join("log");
    eventually(Duration::from_secs(10), "postStart ran", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("poststart"))
    });

    // preStop, then SIGTERM, which the container handles: gone well within its grace.
    let t = Instant::now();
    c.delete_and_wait("polite");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let marks_log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(marks_log, "poststart\nprestop\ngot TERM\n");

    // PID 1 ignores SIGTERM: killed when the 3 s grace period ends.
    let t = Instant::now();
    c.delete_and_wait("stubborn");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "took {took:?}"
    );

    // A failing postStart hook kills the container, which is then restarted.
    c.wait_event("badhook", "FailedPostStartHook");
    c.wait_pod("badhook", "restarted", Duration::from_secs(30), |p| {
        container_status(p, "app")["restartCount"].as_i64() >= Some(1)
    });
}
