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

    let describe = c.cp.kubectl_ok(&["describe", "pod", "hello"]);
    for line in [
        "Status:       Running",
        "Node:         node-a/127.0.0.1",
        "Events:",
        "Started container app",
    ] {
        assert!(describe.contains(line), "no {line:?} in:\n{describe}");
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

#[test]
fn two_agents_share_one_machine() {
    let c = Cluster::start("node-one", &[]);
    let second = skiff_tests::AgentNode::start(&c.cp, "node-two", &[]).unwrap();
    second.import_busybox(IMAGE).unwrap();
    for node in ["node-one", "node-two"] {
        c.apply(&pod_yaml(
            &format!("on-{node}"),
            node,
            "",
            "    command: [\"sleep\", \"3600\"]",
        ));
    }
    let one = c.wait_pod("on-node-one", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let two = c.wait_pod("on-node-two", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert!(
        one["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with(&c.node.subnet_prefix())
    );
    assert!(
        two["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with(&second.subnet_prefix())
    );
    let nodes = c.cp.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes.contains("node-one") && nodes.contains("node-two"),
        "{nodes}"
    );
    drop(second);
}

#[test]
fn skiff_image_imports_and_lists() {
    let c = Cluster::start("node-cli", &[]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    let skiff = skiff_tests::workspace_bin("skiff").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&skiff)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skiff {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let socket = c.node.socket().display().to_string();
    run(&[
        "image",
        "busybox",
        "--name",
        "example.com/app:2",
        "--output",
        archive.to_str().unwrap(),
    ]);
    let imported = run(&[
        "image",
        "import",
        archive.to_str().unwrap(),
        "--containerd-socket",
        &socket,
    ]);
    assert!(
        imported.contains("imported example.com/app:2"),
        "{imported}"
    );
    let list = run(&["image", "ls", "--containerd-socket", &socket]);
    assert!(list.contains("example.com/app:2"), "{list}");
    c.apply(
        &pod_yaml(
            "imported",
            "node-cli",
            "",
            "    command: [\"sleep\", \"3600\"]",
        )
        .replace(IMAGE, "example.com/app:2"),
    );
    c.wait_pod("imported", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    // A file that is no archive: a clear error, nothing imported.
    std::fs::write(dir.path().join("junk.tar"), "not a tar").unwrap();
    let out = std::process::Command::new(&skiff)
        .args([
            "image",
            "import",
            dir.path().join("junk.tar").to_str().unwrap(),
            "--containerd-socket",
            &socket,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.tar"), "{err}");
}
