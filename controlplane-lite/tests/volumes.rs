//! Persistent volumes against a real control plane with simulated nodes and the real kubectl:
//! a claim written for a cloud (no class) gets the local-path default, waits for its pod,
//! and is provisioned on the pod's node; a pre-created volume binds to a matching claim;
//! released volumes follow their reclaim policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, eventually, workspace_bin};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// Binds the pending pod `name` to `node` through `pods/binding`, as a scheduler would
/// (unless a scheduler already placed it); returns the pod's node.
async fn bind(c: &kube::Client, ns: &str, name: &str, node: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let p = pods.get(name).await.unwrap();
    if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
        return n;
    }
    let binding = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": p.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/binding"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    if c.request::<Value>(req).await.is_err() {
        // A scheduler got there first.
        let p = pods.get(name).await.unwrap();
        return p.spec.unwrap().node_name.unwrap();
    }
    node.to_string()
}

fn json_of(cp: &ControlPlane, args: &[&str]) -> Value {
    serde_json::from_str(&cp.kubectl_ok(args)).unwrap()
}

/// `kubectl get <what> <name> --no-headers` split into columns.
fn row(cp: &ControlPlane, what: &str, name: &str) -> Vec<String> {
    cp.kubectl_ok(&["get", what, name, "--no-headers"])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

const CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 2Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: db
spec:
  # No node has this label: the scheduler leaves the pod for the test to bind.
  nodeSelector: {skiff.test/volumes: later}
  containers:
  - name: db
    image: busybox:1.36
    volumeMounts:
    - name: data
      mountPath: /var/lib/db
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_without_a_class_gets_a_local_volume_on_its_pods_node() {
    let bin = workspace_bin("skiff-controlplane").unwrap();
    let cp = ControlPlane::start(&bin, &["--local-path-dir", "/srv/skiff-test-volumes"]).unwrap();
    let c = client(&cp).await;
    let _nodes = FakeNodes::start(
        c.clone(),
        vec![FakeNode::new("vol-1"), FakeNode::new("vol-2")],
    )
    .await
    .unwrap();

    let class = eventually(Duration::from_secs(10), "the local-path class", || {
        let out = cp.kubectl(&["get", "storageclass", "--no-headers"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.contains("local-path").then_some(s)
    });
    let cols: Vec<&str> = class.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        &[
            "local-path",
            "(default)",
            "skiff.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{class}"
    );

    cp.kubectl_stdin(&["apply", "-f", "-"], CLAIM);
    // The default class, given at admission.
    let pvc = json_of(&cp, &["get", "pvc", "data", "-o", "json"]);
    assert_eq!(pvc["spec"]["storageClassName"], "local-path", "{pvc}");
    eventually(Duration::from_secs(10), "waiting for the pod", || {
        let d = cp.kubectl_ok(&["describe", "pvc", "data"]);
        d.contains("waiting for pod db to be scheduled")
            .then_some(())
    });
    assert_eq!(row(&cp, "pvc", "data")[1], "Pending");
    assert!(
        cp.kubectl_ok(&["get", "pv", "--no-headers"])
            .trim()
            .is_empty()
            || cp
                .kubectl(&["get", "pv"])
                .stderr
                .starts_with(b"No resources")
    );

    let node = bind(&c, "default", "db", "vol-2").await;
    let pv_name = eventually(Duration::from_secs(15), "claim bound", || {
        let r = row(&cp, "pvc", "data");
        (r[1] == "Bound").then(|| r[2].clone())
    });
    let table = cp.kubectl_ok(&["get", "pv,pvc"]);
    let pvc = json_of(&cp, &["get", "pvc", "data", "-o", "json"]);
    let uid = pvc["metadata"]["uid"].as_str().unwrap();
    assert_eq!(pv_name, format!("pvc-{uid}"));
    let pv_row = row(&cp, "pv", &pv_name);
    assert_eq!(
        &pv_row[..7],
        &[
            pv_name.as_str(),
            "2Gi",
            "RWO",
            "Delete",
            "Bound",
            "default/data",
            "local-path"
        ],
        "{table}"
    );
    let pvc_row = row(&cp, "pvc", "data");
    assert_eq!(
        &pvc_row[..6],
        &[
            "data",
            "Bound",
            pv_name.as_str(),
            "2Gi",
            "RWO",
            "local-path"
        ],
        "{table}"
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let pv = json_of(&cp, &["get", "pv", &pv_name, "-o", "json"]);
    assert_eq!(
        pv["spec"]["hostPath"],
        json!({"path": format!("/srv/skiff-test-volumes/{pv_name}_default_data"), "type": "DirectoryOrCreate"})
    );
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({"key": "kubernetes.io/hostname", "operator": "In", "values": [node]})
    );
    assert_eq!(pv["spec"]["claimRef"]["uid"], uid);
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "skiff.io/local-path"
    );
    let describe = cp.kubectl_ok(&["describe", "pvc", "data"]);
    assert!(
        describe.contains(&format!("Successfully provisioned volume {pv_name}")),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Used By:") && l.trim_end().ends_with(" db")),
        "{describe}"
    );

    // Gone with its claim: a helper pod empties the directory on the node, then the volume
    // is deleted. (The simulated kubelet runs nothing: the test finishes the helper.)
    cp.kubectl_ok(&["delete", "pod", "db"]);
    cp.kubectl_ok(&["delete", "pvc", "data"]);
    let helper = eventually(Duration::from_secs(15), "the helper pod", || {
        let out = cp.kubectl_ok(&["get", "pods", "-n", "kube-system", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"].as_array().unwrap().iter().find_map(|p| {
            let name = p["metadata"]["name"].as_str()?;
            name.starts_with("helper-pod-delete-pvc-")
                .then(|| p.clone())
        })
    });
    assert_eq!(helper["spec"]["nodeName"], node);
    assert_eq!(
        helper["spec"]["containers"][0]["command"],
        json!([
            "rm",
            "-rf",
            format!("/srv/skiff-test-volumes/{pv_name}_default_data")
        ])
    );
    assert_eq!(row(&cp, "pv", &pv_name)[4], "Released");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
    let hname = helper["metadata"]["name"].as_str().unwrap();
    pods.patch_status(
        hname,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "the volume deleted", || {
        (!cp.kubectl(&["get", "pv", &pv_name]).status.success()).then_some(())
    });
    eventually(Duration::from_secs(15), "the helper pod deleted", || {
        (!cp.kubectl(&["get", "pod", "-n", "kube-system", hname])
            .status
            .success())
        .then_some(())
    });
}

const MANUAL: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: manual-kept
  labels: {disk: ssd}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  storageClassName: manual
  hostPath: {path: /srv/manual-kept}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: manual-small
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  persistentVolumeReclaimPolicy: Delete
  hostPath: {path: /srv/manual-small}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: logs
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 3Gi}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: tmp
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 500Mi}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_created_volumes_bind_and_are_reclaimed_by_policy() {
    let bin = workspace_bin("skiff-controlplane").unwrap();
    let cp = ControlPlane::start(&bin, &[]).unwrap();
    cp.kubectl_stdin(&["apply", "-f", "-"], MANUAL);
    eventually(Duration::from_secs(15), "both claims bound", || {
        let logs = row(&cp, "pvc", "logs");
        let tmp = row(&cp, "pvc", "tmp");
        (logs[1] == "Bound" && tmp[1] == "Bound").then_some(())
    });
    // Each to the volume that fits it (the smallest that fits).
    let logs = row(&cp, "pvc", "logs");
    assert_eq!(
        &logs[..6],
        &["logs", "Bound", "manual-kept", "5Gi", "RWO,ROX", "manual"]
    );
    let tmp = row(&cp, "pvc", "tmp");
    assert_eq!(
        &tmp[..6],
        &["tmp", "Bound", "manual-small", "1Gi", "RWO", "manual"]
    );
    let kept = row(&cp, "pv", "manual-kept");
    assert_eq!(
        &kept[..7],
        &[
            "manual-kept",
            "5Gi",
            "RWO,ROX",
            "Retain",
            "Bound",
            "default/logs",
            "manual"
        ]
    );
    let pv = json_of(&cp, &["get", "pv", "manual-kept", "-o", "json"]);
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );

    // Retain: Released, with its claimRef, until an administrator frees it.
    cp.kubectl_ok(&["delete", "pvc", "logs"]);
    eventually(Duration::from_secs(15), "released", || {
        (row(&cp, "pv", "manual-kept")[4] == "Released").then_some(())
    });
    // Delete, on a volume nothing here made: Failed, as upstream without a deleter.
    cp.kubectl_ok(&["delete", "pvc", "tmp"]);
    eventually(Duration::from_secs(15), "delete failed", || {
        (row(&cp, "pv", "manual-small")[4] == "Failed").then_some(())
    });
    let describe = cp.kubectl_ok(&["describe", "pv", "manual-small"]);
    assert!(describe.contains("VolumeFailedDelete"), "{describe}");

    // Freed by hand, the retained volume is Available again and binds a new claim by name.
    cp.kubectl_ok(&[
        "patch",
        "pv",
        "manual-kept",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/claimRef"}]"#,
    ]);
    eventually(Duration::from_secs(15), "available", || {
        (row(&cp, "pv", "manual-kept")[4] == "Available").then_some(())
    });
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: again
spec:
  storageClassName: manual
  volumeName: manual-kept
  selector: {matchLabels: {disk: ssd}}
  accessModes: [ReadOnlyMany]
  resources:
    requests: {storage: 1Gi}
"#,
    );
    eventually(Duration::from_secs(15), "rebound", || {
        let r = row(&cp, "pvc", "again");
        (r[1] == "Bound" && r[2] == "manual-kept").then_some(())
    });
}
