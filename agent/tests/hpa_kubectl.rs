//! The HorizontalPodAutoscaler end to end on real containerd: `kubectl autoscale` on a
//! Deployment whose pods burn CPU for a while and then idle. The agent's cgroup readings
//! reach the controller through the control plane's `metrics.k8s.io`; the autoscaler scales
//! the Deployment up under load and back down once the load is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_tests::eventually;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  replicas: 1
  selector:
    matchLabels: {app: burner}
  template:
    metadata:
      labels: {app: burner}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: skiff.test/busybox:1
        imagePullPolicy: IfNotPresent
        # Busy for 25 s, then idle: load the autoscaler must follow up and then down.
        command: ["sh", "-c", "timeout 25 sh -c 'while :; do :; done'; exec sleep 3600"]
        resources:
          requests: {cpu: 100m, memory: 16Mi}
          limits: {cpu: 300m, memory: 64Mi}
"#;

fn replicas(c: &Cluster) -> i64 {
    c.cp.kubectl_ok(&[
        "get",
        "deployment",
        "burner",
        "-o",
        "jsonpath={.spec.replicas}",
    ])
    .trim()
    .parse()
    .unwrap_or(-1)
}

fn events(c: &Cluster) -> String {
    c.cp.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=burner",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn hpa_scales_up_under_cpu_load_and_back_down() {
    let c = Cluster::start_with(
        "node-hpa",
        &[
            "--metric-resolution",
            "1s",
            "--horizontal-pod-autoscaler-sync-period",
            "2s",
            "--horizontal-pod-autoscaler-downscale-stabilization",
            "5s",
        ],
        &[],
    );
    c.apply(DEPLOYMENT);
    c.cp.kubectl_ok(&["rollout", "status", "deployment/burner", "--timeout=60s"]);
    let out = c.cp.kubectl_ok(&[
        "autoscale",
        "deployment",
        "burner",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert!(out.contains("autoscaled"), "{out}");

    // Up: one pod at ~300% of its request against a 50% target asks for 6, capped at 3.
    eventually(Duration::from_secs(90), "scaled up to 3", || {
        (replicas(&c) == 3).then_some(())
    });
    let hpa = c.cp.kubectl_ok(&["get", "hpa", "burner"]);
    assert!(hpa.contains("Deployment/burner"), "{hpa}");
    let ev = events(&c);
    assert!(
        ev.contains("SuccessfulRescale: New size: 3; reason: cpu resource utilization (percentage of request) above target"),
        "{ev}"
    );
    let described = c.cp.kubectl_ok(&["describe", "hpa", "burner"]);
    assert!(described.contains("ScalingLimited"), "{described}");

    // Down: the load ends after 25 s in every pod; after the 5 s window it goes back to 1.
    eventually(Duration::from_secs(150), "scaled back down to 1", || {
        (replicas(&c) == 1).then_some(())
    });
    let ev = events(&c);
    assert!(
        ev.contains("New size: 1; reason: All metrics below target"),
        "{ev}"
    );
    // The sync that rescales reports the size it found; the next one the new size.
    eventually(Duration::from_secs(20), "status shows 1/1", || {
        let status = c.cp.kubectl_ok(&[
            "get",
            "hpa",
            "burner",
            "-o",
            "jsonpath={.status.currentReplicas}/{.status.desiredReplicas}",
        ]);
        (status.trim() == "1/1").then_some(())
    });

    c.cp.kubectl_ok(&["delete", "hpa", "burner"]);
    c.cp.kubectl_ok(&["delete", "deployment", "burner"]);
    eventually(Duration::from_secs(60), "burner pods gone", || {
        c.cp.kubectl_ok(&["get", "pods", "-l", "app=burner", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });
}
