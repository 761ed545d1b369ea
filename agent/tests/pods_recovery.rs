//! The agent dies and comes back: running containers are adopted, not restarted; exits and
//! deletions that happened meanwhile are handled; nothing of a deleted pod is left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_tests::eventually;

fn id_of(p: &serde_json::Value) -> String {
    container_status(p, "app")["containerID"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn simple(name: &str, script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: node-rec
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "{script}"]
"#
    )
}

#[test]
fn a_killed_agent_adopts_what_runs_and_cleans_what_is_gone() {
    let mut c = Cluster::start("node-rec", &[]);
    c.apply(&simple("keep", "sleep 3600"));
    c.apply(&simple("gone", "sleep 3600"));
    c.apply(&simple("ends", "sleep 4; exit 5"));
    let keep = c.wait_pod("keep", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let gone = c.wait_pod("gone", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    c.wait_pod("ends", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    let keep_id = id_of(&keep);
    let gone_uid = gone["metadata"]["uid"].as_str().unwrap().to_string();

    c.node.crash();
    // While the agent is away: one pod is force-deleted, one is created, one's container
    // exits.
    c.cp.kubectl_ok(&["delete", "pod", "gone", "--grace-period=0", "--force"]);
    c.apply(&simple("new", "sleep 3600"));
    std::thread::sleep(Duration::from_secs(5));
    c.node.launch().unwrap();

    let p = c.wait_pod("new", "Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert_eq!(container_status(&p, "app")["restartCount"], 0);
    let keep = c.pod("keep").unwrap();
    assert_eq!(
        id_of(&keep),
        keep_id,
        "the running container was not restarted"
    );
    assert_eq!(container_status(&keep, "app")["restartCount"], 0);
    assert_eq!(phase(&keep), "Running");
    assert_eq!(condition(&keep, "Ready"), "True");
    let ends = c.wait_pod("ends", "its exit noticed", Duration::from_secs(30), |p| {
        container_status(p, "app")["restartCount"] == 1
    });
    assert_eq!(
        container_status(&ends, "app")["lastState"]["terminated"]["exitCode"],
        5
    );

    // Everything of the pod deleted meanwhile is gone.
    let rt = tokio::runtime::Runtime::new().unwrap();
    eventually(
        Duration::from_secs(20),
        "the deleted pod's leftovers removed",
        || {
            let left = rt.block_on(c.containers_of(&gone_uid));
            let dir = c.node.root().join("pods").join(&gone_uid);
            (left.is_empty() && !dir.exists()).then_some(())
        },
    );

    // An adopted pod is torn down like any other.
    let keep_uid = keep["metadata"]["uid"].as_str().unwrap().to_string();
    c.delete_and_wait("keep");
    eventually(Duration::from_secs(20), "adopted pod removed", || {
        let left = rt.block_on(c.containers_of(&keep_uid));
        let dir = c.node.root().join("pods").join(&keep_uid);
        (left.is_empty() && !dir.exists()).then_some(())
    });

    // A clean stop (SIGTERM) leaves the pods running too.
    let new_id = id_of(&c.pod("new").unwrap());
    c.node.stop();
    c.node.launch().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let p = c.wait_pod("new", "still Running", Duration::from_secs(30), |p| {
        phase(p) == "Running"
    });
    assert_eq!(id_of(&p), new_id);
}
