//! The scheduler's VolumeBinding filter on a real control plane with two simulated nodes
//! and the real kubectl: a StatefulSet pod whose claim is bound to a local volume on one
//! node waits, Pending with kube-scheduler's FailedScheduling message, while that node is
//! cordoned, and goes back to it once it is uncordoned — never to the other node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");
const WAIT: Duration = Duration::from_secs(60);

const DB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - port: 5432
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: busybox:1.36
        volumeMounts:
        - name: data
          mountPath: /var/lib/db
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

fn json_of(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&cp.kubectl_ok(&a)).unwrap()
}

/// The pod's uid, node and readiness, if it exists and is not being deleted.
fn pod(cp: &ControlPlane, name: &str) -> Option<(String, String, bool)> {
    let out = cp.kubectl(&["get", "pod", name, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let p: Value = serde_json::from_slice(&out.stdout).ok()?;
    if !p["metadata"]["deletionTimestamp"].is_null() {
        return None;
    }
    let ready = p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    Some((
        p["metadata"]["uid"].as_str()?.to_string(),
        p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
        ready,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_stateful_pod_waits_for_its_volumes_node() {
    let cp = ControlPlane::start(
        BIN.as_ref(),
        &["--local-path-dir", "/srv/skiff-test-volumes"],
    )
    .expect("control plane starts");
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let _nodes = FakeNodes::start(client, vec![FakeNode::new("vb-1"), FakeNode::new("vb-2")])
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the local-path class", || {
        let out = cp.kubectl(&["get", "storageclass", "local-path"]);
        out.status.success().then_some(())
    });

    cp.kubectl_stdin(&["apply", "-f", "-"], DB);
    let (uid, node) = eventually(WAIT, "both replicas Ready", || {
        let (_, _, ready0) = pod(&cp, "db-0")?;
        let (uid, node, ready1) = pod(&cp, "db-1")?;
        (ready0 && ready1).then_some((uid, node))
    });
    let pvc = eventually(WAIT, "db-1's claim bound", || {
        let pvc = json_of(&cp, &["get", "pvc", "data-db-1"]);
        (pvc["status"]["phase"] == "Bound").then_some(pvc)
    });
    let pv = json_of(
        &cp,
        &["get", "pv", pvc["spec"]["volumeName"].as_str().unwrap()],
    );
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
            [0],
        node.as_str(),
        "{pv}"
    );

    // Drain by hand: cordon the node, delete the pod.
    let out = cp.kubectl_ok(&["cordon", &node]);
    assert!(out.contains(&format!("node/{node} cordoned")), "{out}");
    // Without waiting: kubectl's wait for a deletion watches the name, and may find the
    // replacement (which stays Pending here) instead of the pod it deleted.
    cp.kubectl_ok(&["delete", "pod", "db-1", "--wait=false"]);
    let want = "0/2 nodes are available: 1 node(s) had volume node affinity conflict, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    let new_uid = eventually(WAIT, "the new db-1 refused", || {
        let (u, n, _) = pod(&cp, "db-1")?;
        if u == uid {
            return None;
        }
        assert_eq!(
            n, "",
            "db-1 was placed on {n} while its volume's node is cordoned"
        );
        let p = json_of(&cp, &["get", "pod", "db-1"]);
        let cond = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (cond["status"] == "False").then(|| {
            assert_eq!(cond["reason"], "Unschedulable", "{cond}");
            assert_eq!(cond["message"], want, "{cond}");
            u
        })
    });
    let events = eventually(
        Duration::from_secs(10),
        "the FailedScheduling event",
        || {
            let e = cp.kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.uid={new_uid},reason=FailedScheduling"),
                "-o",
                "json",
            ]);
            let v: Value = serde_json::from_str(&e).unwrap();
            (!v["items"].as_array()?.is_empty()).then_some(v)
        },
    );
    let e = &events["items"][0];
    assert_eq!(e["type"], "Warning", "{e}");
    assert_eq!(e["message"], want, "{e}");
    let describe = cp.kubectl_ok(&["describe", "pod", "db-1"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Status:", "Pending"]),
        "{describe}"
    );

    // It stays Pending while the node is cordoned.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, n, _) = pod(&cp, "db-1").expect("db-1 exists");
    assert_eq!(n, "", "db-1 was placed on {n}");

    let out = cp.kubectl_ok(&["uncordon", &node]);
    assert_eq!(out.trim(), format!("node/{node} uncordoned"));
    let (_, back) = eventually(WAIT, "db-1 Ready again", || {
        let (u, n, ready) = pod(&cp, "db-1")?;
        ready.then_some((u, n))
    });
    assert_eq!(back, node, "db-1 went back to its volume's node");
    // The claim kept its volume.
    let again = json_of(&cp, &["get", "pvc", "data-db-1"]);
    assert_eq!(again["spec"]["volumeName"], pvc["spec"]["volumeName"]);
}
