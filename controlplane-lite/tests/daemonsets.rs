//! DaemonSets on a real control plane with simulated nodes, driven by the real kubectl: a pod
//! on every eligible node, nodes joining and leaving, rolling updates, `kubectl rollout
//! status|history|undo|restart`, and the 422s for bad specs. No scheduler runs: the
//! controller binds its pods itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");
const WAIT: Duration = Duration::from_secs(60);

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `node → image` of the set's live, Running pods.
fn placed(cp: &ControlPlane) -> BTreeMap<String, Vec<String>> {
    let pods = json_of(&cp.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "json"]));
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pods["items"].as_array().unwrap() {
        if !p["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        out.entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
    }
    out
}

fn wait_placed(cp: &ControlPlane, want: &[(&str, &str)]) {
    let want: BTreeMap<String, Vec<String>> = want
        .iter()
        .map(|(n, i)| (n.to_string(), vec![i.to_string()]))
        .collect();
    eventually(WAIT, &format!("pods on {want:?}"), || {
        (placed(cp) == want).then_some(())
    });
}

fn revisions(history: &str) -> Vec<String> {
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {role: worker}
      containers:
      - name: agent
        image: agent:1
"#;

fn worker(name: &str) -> FakeNode {
    let mut n = FakeNode::new(name);
    n.labels.insert("role".into(), "worker".into());
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemonset_follows_the_nodes_through_kubectl() {
    let cp = ControlPlane::start(BIN.as_ref(), &[]).unwrap();
    let c = client(&cp).await;
    let mut tainted = worker("sim-3");
    tainted
        .taints
        .push(("dedicated".into(), "db".into(), "NoSchedule".into()));
    let _nodes = FakeNodes::start(
        c.clone(),
        vec![
            worker("sim-1"),
            worker("sim-2"),
            tainted,
            FakeNode::new("sim-other"),
        ],
    )
    .await
    .unwrap();

    cp.kubectl_stdin(&["apply", "-f", "-"], AGENT);
    let out = cp.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        out.contains(r#"daemon set "agent" successfully rolled out"#),
        "{out}"
    );
    // Not on the tainted node, nor on the one the selector leaves out.
    wait_placed(&cp, &[("sim-1", "agent:1"), ("sim-2", "agent:1")]);
    let ds = json_of(&cp.kubectl_ok(&["get", "ds", "agent", "-o", "json"]));
    let st = &ds["status"];
    assert_eq!(st["desiredNumberScheduled"], 2);
    assert_eq!(st["currentNumberScheduled"], 2);
    assert_eq!(st["numberReady"], 2);
    assert_eq!(st["numberAvailable"], 2);
    assert_eq!(st["updatedNumberScheduled"], 2);
    assert_eq!(st["numberMisscheduled"], 0);
    assert_eq!(st["observedGeneration"], ds["metadata"]["generation"]);
    let table = cp.kubectl_ok(&["get", "ds", "agent"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[1..6], ["2", "2", "2", "2", "2"], "{table}");
    let pods = json_of(&cp.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "json"]));
    let pod = &pods["items"][0];
    let term = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0];
    assert_eq!(term["key"], "metadata.name");
    assert_eq!(term["values"][0], pod["spec"]["nodeName"]);
    let events = json_of(&cp.kubectl_ok(&["get", "events", "-o", "json"]));
    assert!(
        events["items"].as_array().unwrap().iter().any(|e| {
            e["reason"] == "SuccessfulCreate"
                && e["source"]["component"] == "daemonset-controller"
                && e["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("Created pod: agent-")
        }),
        "{events}"
    );

    // A node joins.
    let _more = FakeNodes::start(c.clone(), vec![worker("sim-4")])
        .await
        .unwrap();
    wait_placed(
        &cp,
        &[
            ("sim-1", "agent:1"),
            ("sim-2", "agent:1"),
            ("sim-4", "agent:1"),
        ],
    );
    cp.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);

    // A rolling update, then history and undo.
    cp.kubectl_ok(&["set", "image", "ds/agent", "agent=agent:2"]);
    let out = cp.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_placed(
        &cp,
        &[
            ("sim-1", "agent:2"),
            ("sim-2", "agent:2"),
            ("sim-4", "agent:2"),
        ],
    );
    let history = cp.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert_eq!(revisions(&history), ["1", "2"], "{history}");
    let one = cp.kubectl_ok(&["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(one.contains("agent:1"), "{one}");
    let out = cp.kubectl_ok(&["rollout", "undo", "ds/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    cp.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    wait_placed(
        &cp,
        &[
            ("sim-1", "agent:1"),
            ("sim-2", "agent:1"),
            ("sim-4", "agent:1"),
        ],
    );
    let history = cp.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert_eq!(revisions(&history), ["2", "3"], "{history}");
    let out = cp.kubectl_ok(&["rollout", "undo", "ds/agent", "--to-revision=3"]);
    assert!(
        out.contains("skipped rollback (current template already matches revision 3)"),
        "{out}"
    );

    // A restart replaces every pod.
    let before = json_of(&cp.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "json"]));
    let old_uids: Vec<Value> = before["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    cp.kubectl_ok(&["rollout", "restart", "ds/agent"]);
    eventually(WAIT, "every pod replaced", || {
        let now = json_of(&cp.kubectl_ok(&["get", "pods", "-l", "app=agent", "-o", "json"]));
        let items = now["items"].as_array().unwrap().clone();
        (items.len() == 3
            && items
                .iter()
                .all(|p| !old_uids.contains(&p["metadata"]["uid"])))
        .then_some(())
    });
    cp.kubectl_ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let history = cp.kubectl_ok(&["rollout", "history", "ds/agent"]);
    assert_eq!(revisions(&history), ["2", "3", "4"], "{history}");

    // A node leaves; one relabelled out of the selector loses its pod too.
    cp.kubectl_ok(&["delete", "node", "sim-4"]);
    cp.kubectl_ok(&["label", "node", "sim-2", "role=db", "--overwrite"]);
    eventually(WAIT, "pods only on sim-1", || {
        (placed(&cp).keys().collect::<Vec<_>>() == ["sim-1"]).then_some(())
    });
    eventually(WAIT, "status of one node", || {
        let ds = json_of(&cp.kubectl_ok(&["get", "ds", "agent", "-o", "json"]));
        (ds["status"]["desiredNumberScheduled"] == 1 && ds["status"]["currentNumberScheduled"] == 1)
            .then_some(())
    });
}

#[test]
fn bad_daemonsets_are_refused_with_the_field_named() {
    let cp = ControlPlane::start(BIN.as_ref(), &["--controllers=false"]).unwrap();
    let ds = |labels: &str, strategy: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: bad}}
spec:
  selector: {{matchLabels: {{app: bad}}}}
  template:
    metadata: {{labels: {{app: {labels}}}}}
    spec: {{containers: [{{name: c, image: x}}]}}
{strategy}
"#
        )
    };
    let refused = |manifest: &str| {
        let out = cp.kubectl_stdin_output(&["apply", "-f", "-"], manifest);
        assert!(!out.status.success(), "accepted: {manifest}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&ds("other", ""));
    assert!(
        err.contains(
            r#"The DaemonSet "bad" is invalid: spec.template.metadata.labels: Invalid value"#
        ) && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let err = refused(&ds(
        "bad",
        "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}",
    ));
    assert!(
        err.contains("spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"),
        "{err}"
    );
    let err = refused(&ds(
        "bad",
        "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 0}}",
    ));
    assert!(
        err.contains("spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0 when maxSurge is 0"),
        "{err}"
    );
    let err = refused(&ds("bad", "  updateStrategy: {type: Whenever}"));
    assert!(
        err.contains("spec.updateStrategy: Unsupported value: ")
            && err.contains(r#"supported values: "RollingUpdate", "OnDelete""#),
        "{err}"
    );
}
