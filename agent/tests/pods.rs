//! Pods end to end: a real control plane, a real `skiff-agent` with its own containerd, the
//! busybox test image, and the real kubectl. Every test runs its own node (bridge, subnet,
//! cgroup tree, state) and removes all of it, even when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_tests::eventually;

#[test]
fn a_pod_runs_logs_and_is_removed_without_a_trace() {
    let c = Cluster::start("node-a", &[]);
    c.apply(&pod_yaml(
        "hello",
        "node-a",
        "",
        "    command: [\"sh\", \"-c\", \"echo hello from $HOSTNAME; exec sleep 3600\"]",
    ));
    let p = c.wait_pod("hello", "Running and Ready", Duration::from_secs(30), |p| {
        phase(p) == "Running" && condition(p, "Ready") == "True"
    });
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with(&c.node.subnet_prefix()), "{ip}");
    assert_eq!(p["status"]["hostIP"], "127.0.0.1");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["restartCount"], 0);
    assert!(
        cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(cs["imageID"].as_str().unwrap().contains("@sha256:"), "{cs}");
    assert!(cs["state"]["running"]["startedAt"].is_string());

    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let log = c
        .node
        .logs_dir()
        .join(format!("default_hello_{uid}"))
        .join("app/0.log");
    eventually(Duration::from_secs(5), "the container's log", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("hello from hello"))
    });

    let table = c.cp.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert!(table.contains("Running") && table.contains(ip), "{table}");
    let events = c.cp.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hello",
    ]);
    for reason in ["Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "no {reason} event: {events}");
    }

    c.cp.kubectl_ok(&["delete", "pod", "hello", "--wait=false"]);
    c.wait_gone("hello", Duration::from_secs(30));
    let pod_dir = c.node.root().join("pods").join(&uid);
    eventually(Duration::from_secs(5), "pod directory removed", || {
        (!pod_dir.exists()).then_some(())
    });
    assert!(!log.parent().unwrap().exists(), "logs left");
    let ipam = c.node.dir.path().join("ipam");
    let held: Vec<String> = std::fs::read_dir(&ipam)
        .map(|d| {
            d.flatten()
                .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten().flatten())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("198."))
                .collect()
        })
        .unwrap_or_default();
    assert!(held.is_empty(), "addresses still held: {held:?}");
    let cgroup = format!(
        "/sys/fs/cgroup/memory{}/besteffort/pod{uid}",
        c.node.cgroup_root()
    );
    assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup} left");
}
