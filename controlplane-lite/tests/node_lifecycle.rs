//! Node lifecycle against a real control plane with simulated nodes and the real kubectl: a
//! node that stops renewing its Lease goes NotReady, is tainted unreachable, its pods are
//! marked not ready and evicted when their tolerations run out; it recovers when it comes
//! back. Pods get the default not-ready/unreachable tolerations at admission.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
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
/// (unless a scheduler already placed it).
async fn bind(c: &kube::Client, ns: &str, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let p = pods.get(name).await.unwrap();
    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
        return;
    }
    let binding = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": p.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/binding"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let _: Value = c.request(req).await.unwrap();
}

fn pod(name: &str, tolerations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": tolerations},
    }))
    .unwrap()
}

fn json_of(cp: &ControlPlane, args: &[&str]) -> Value {
    serde_json::from_str(&cp.kubectl_ok(args)).unwrap()
}

fn condition<'a>(obj: &'a Value, t: &str) -> &'a Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

fn has_taint(node: &Value, key: &str, effect: &str) -> bool {
    node["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["effect"] == effect))
}

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_goes_not_ready_and_its_pods_go() {
    let bin = workspace_bin("skiff-controlplane").unwrap();
    let cp = ControlPlane::start(&bin, &["--node-monitor-grace-period", "4s"]).unwrap();
    let c = client(&cp).await;
    let nodes = FakeNodes::start(
        c.clone(),
        vec![FakeNode::new("life-1"), FakeNode::new("life-2")],
    )
    .await
    .unwrap();

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let brief = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    pods.create(&PostParams::default(), &pod("brief", brief))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("patient", json!([])))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("elsewhere", json!([])))
        .await
        .unwrap();

    // Admission: the default tolerations, added only where the pod has none of its own.
    let p = json_of(&cp, &["get", "pod", "patient", "-o", "json"]);
    assert_eq!(
        p["spec"]["tolerations"],
        json!([
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );
    let p = json_of(&cp, &["get", "pod", "brief", "-o", "json"]);
    let t = p["spec"]["tolerations"].as_array().unwrap();
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0]["tolerationSeconds"], 2);
    assert_eq!(t[1]["key"], NOT_READY);

    bind(&c, "default", "brief", "life-1").await;
    bind(&c, "default", "patient", "life-1").await;
    bind(&c, "default", "elsewhere", "life-2").await;
    let on = |name: &str| {
        let p = json_of(&cp, &["get", "pod", name, "-o", "json"]);
        p["spec"]["nodeName"].as_str().unwrap_or("").to_string()
    };
    let (brief_node, patient_node) = (on("brief"), on("patient"));
    eventually(Duration::from_secs(20), "pods running", || {
        let out = cp.kubectl_ok(&["get", "pods", "--no-headers"]);
        (out.lines().count() == 3 && out.lines().all(|l| l.contains("Running"))).then_some(())
    });

    // The node of "brief" dies (with the scheduler placing pods, it may not be life-1).
    let dead = brief_node.clone();
    nodes.kill(&dead);
    let killed = Instant::now();
    eventually(Duration::from_secs(30), "node NotReady", || {
        let out = cp.kubectl_ok(&["get", "nodes", "--no-headers"]);
        out.lines()
            .any(|l| l.split_whitespace().take(2).eq([dead.as_str(), "NotReady"]))
            .then_some(())
    });
    let not_ready_after = killed.elapsed();
    // The grace period (4 s) runs from the last renewal, up to 2 s before the kill.
    assert!(
        not_ready_after >= Duration::from_millis(1500),
        "NotReady after only {not_ready_after:?}"
    );
    let n = json_of(&cp, &["get", "node", &dead, "-o", "json"]);
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let cond = condition(&n, t);
        assert_eq!(cond["status"], "Unknown", "{t}: {cond}");
        assert_eq!(cond["reason"], "NodeStatusUnknown", "{t}: {cond}");
        assert_eq!(
            cond["message"], "Kubelet stopped posting node status.",
            "{t}: {cond}"
        );
    }
    let tainted = eventually(Duration::from_secs(10), "unreachable taints", || {
        let n = json_of(&cp, &["get", "node", &dead, "-o", "json"]);
        (has_taint(&n, UNREACHABLE, "NoSchedule") && has_taint(&n, UNREACHABLE, "NoExecute"))
            .then(Instant::now)
    });
    let describe = cp.kubectl_ok(&["describe", "node", &dead]);
    assert!(
        describe.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{describe}"
    );

    // "brief" tolerates the taint for 2 s, then is deleted (gracefully: it stays
    // Terminating, as nothing on the dead node can confirm it stopped).
    let deleted = eventually(Duration::from_secs(15), "brief deleted", || {
        let out = cp.kubectl(&["get", "pod", "brief", "-o", "json"]);
        if !out.status.success() {
            return Some(Instant::now());
        }
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        p["metadata"]["deletionTimestamp"]
            .is_string()
            .then(Instant::now)
    });
    // As the test saw it (each sighting up to a poll late)...
    let waited = deleted.duration_since(tainted);
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(8),
        "deleted {waited:?} after the taint"
    );
    let out = cp.kubectl(&["get", "pod", "brief", "-o", "json"]);
    if out.status.success() {
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        // ...and as the server stamped it (to the second): taint, then deletion 2 s later.
        let n = json_of(&cp, &["get", "node", &dead, "-o", "json"]);
        let added = n["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == UNREACHABLE && t["effect"] == "NoExecute")
            .and_then(|t| t["timeAdded"].as_str())
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        let marked = p["metadata"]["deletionTimestamp"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        let grace = p["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap();
        let after = marked.as_second() - grace - added.as_second();
        assert!((1..=4).contains(&after), "deleted {after}s after the taint");
        let target = condition(&p, "DisruptionTarget");
        assert_eq!(target["reason"], "DeletionByTaintManager", "{p}");
        assert!(
            cp.kubectl_ok(&["get", "pod", "brief"])
                .contains("Terminating"),
            "{}",
            cp.kubectl_ok(&["get", "pod", "brief"])
        );
    }
    let events = cp.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=brief",
    ]);
    assert!(events.contains("TaintManagerEviction"), "{events}");

    // A pod with the default 300 s stays, but is not ready any more.
    if patient_node == dead {
        let p = json_of(&cp, &["get", "pod", "patient", "-o", "json"]);
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{p}");
        // Only the condition changes: `kubectl get` still counts the containers' last
        // reported readiness (1/1 Running), as on Kubernetes.
        assert_eq!(condition(&p, "Ready")["status"], "False", "{p}");
    }
    // Pods elsewhere are untouched.
    let p = json_of(&cp, &["get", "pod", "elsewhere", "-o", "json"]);
    if p["spec"]["nodeName"] != dead.as_str() {
        assert_eq!(condition(&p, "Ready")["status"], "True", "{p}");
    }

    // The node comes back: Ready, and its taints are gone.
    nodes.revive(&dead);
    eventually(Duration::from_secs(20), "node Ready, untainted", || {
        let n = json_of(&cp, &["get", "node", &dead, "-o", "json"]);
        let untainted = n["spec"]["taints"]
            .as_array()
            .is_none_or(|t| t.iter().all(|t| t["key"] != UNREACHABLE));
        (condition(&n, "Ready")["status"] == "True" && untainted).then_some(())
    });
    let table = cp.kubectl_ok(&["get", "nodes", "--no-headers"]);
    assert!(
        table
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("Ready")),
        "{table}"
    );
    drop(nodes);
}
