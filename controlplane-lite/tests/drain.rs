//! `kubectl drain` against a real control plane with two simulated nodes and the real
//! kubectl: PodDisruptionBudgets served and kept current by the disruption controller,
//! `kubectl get pdb`, evictions through `pods/eviction` that respect the budget (kubectl
//! retries the 429s until replacements are Ready elsewhere), a drain the budget forbids
//! timing out with the budget's message, the DaemonSet refusal, the Eviction API's own
//! answers, and a drain without evictions (DELETE with protobuf DeleteOptions).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::ControlPlane;

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");
const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Fields drop in order: the simulated nodes stop before the server does.
struct Cluster {
    _nodes: FakeNodes,
    client: kube::Client,
    cp: ControlPlane,
}

async fn cluster(prefix: &str) -> Cluster {
    let cp = ControlPlane::start(BIN.as_ref(), &[]).expect("control plane starts");
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let nodes = FakeNodes::start(
        client.clone(),
        vec![
            FakeNode::new(&format!("{prefix}-1")),
            FakeNode::new(&format!("{prefix}-2")),
        ],
    )
    .await
    .unwrap();
    Cluster {
        cp,
        client,
        _nodes: nodes,
    }
}

impl Cluster {
    /// kubectl off the runtime's threads; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::from(self.cp.kubectl_cmd(args));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs (is it on PATH?)");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut s = child.stdin.take().unwrap();
            s.write_all(input.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    async fn apply(&self, yaml: &str) -> String {
        let (ok, out, err) = self.run(&["apply", "-f", "-"], Some(yaml)).await;
        assert!(ok, "kubectl apply failed: {err}\n{out}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).unwrap()
    }

    /// Ready pods of `app`, by node, not being deleted.
    async fn ready_pods(&self, app: &str) -> Vec<(String, String)> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), "default");
        let list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap();
        list.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .map(|p| {
                (
                    p.metadata.name.clone().unwrap_or_default(),
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn wait_ready(&self, app: &str, n: usize) -> Vec<(String, String)> {
        for _ in 0..300 {
            let pods = self.ready_pods(app).await;
            if pods.len() == n {
                return pods;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{app} never had {n} ready pods: {:?}",
            self.ready_pods(app).await
        );
    }

    /// Waits until `kubectl get pdb NAME` shows `allowed` disruptions; returns the table.
    async fn wait_allowed(&self, name: &str, allowed: i64) -> String {
        for _ in 0..300 {
            let pdb = self.json(&["get", "pdb", name]).await;
            if pdb["status"]["disruptionsAllowed"] == allowed
                && pdb["status"]["observedGeneration"] == pdb["metadata"]["generation"]
            {
                return self.ok(&["get", "pdb", name]).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pdb {name} never allowed {allowed}: {}",
            self.json(&["get", "pdb", name]).await
        );
    }

    /// A POST to a pod's eviction subresource; returns (HTTP status, body). With curl:
    /// kube's client retries 429s by itself, and the 429 is what is looked at here.
    async fn evict(&self, pod: &str, body: Value) -> (u16, Value) {
        let url = format!(
            "{}/api/v1/namespaces/default/pods/{pod}/eviction",
            self.cp.url()
        );
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.cp.data_dir().join("pki/ca.crt"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.cp.admin_token()))
            .args([
                "-H",
                "Content-Type: application/json",
                "-X",
                "POST",
                "--data-binary",
            ])
            .arg(body.to_string())
            .arg(&url)
            .output()
            .await
            .expect("curl runs (install curl)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: registry.example/{name}:1
"
    )
}

fn pdb_yaml(name: &str, app: &str, rule: &str) -> String {
    format!(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
spec:
  {rule}
  selector:
    matchLabels: {{app: {app}}}
"
    )
}

/// The node with the most of `pods`.
fn busiest(pods: &[(String, String)]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for (_, node) in pods {
        *counts.entry(node).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(node, _)| node.to_string())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_within_the_budget() {
    let c = cluster("drain").await;
    assert!(
        c.ok(&["api-resources"])
            .await
            .contains("poddisruptionbudgets")
    );
    c.apply(&deployment("web", 3)).await;
    c.apply(&pdb_yaml("web", "web", "minAvailable: 2")).await;
    let pods = c.wait_ready("web", 3).await;
    let table = c.wait_allowed("web", 1).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "2", "N/A", "1"], "{table}");
    let pdb = c.json(&["get", "pdb", "web"]).await;
    assert_eq!(pdb["status"]["expectedPods"], 3);
    assert_eq!(pdb["status"]["currentHealthy"], 3);
    assert_eq!(pdb["status"]["desiredHealthy"], 2);
    let cond = &pdb["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("True"),
            &json!("SufficientPods")
        )
    );

    let described = c.ok(&["describe", "pdb", "web"]).await;
    assert!(described.contains("Min available:  2"), "{described}");
    assert!(described.contains("Allowed disruptions:  1"), "{described}");
    let explained = c.ok(&["explain", "pdb.spec.minAvailable"]).await;
    assert!(explained.contains("GROUP:      policy"), "{explained}");

    let node = busiest(&pods);
    let on_node: Vec<&String> = pods
        .iter()
        .filter(|(_, n)| *n == node)
        .map(|(p, _)| p)
        .collect();
    let (ok, out, err) = c
        .run(
            &[
                "drain",
                &node,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=120s",
            ],
            None,
        )
        .await;
    assert!(ok, "drain failed: {err}\n{out}");
    assert!(out.contains(&format!("node/{node} cordoned")), "{out}");
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    for p in &on_node {
        assert!(out.contains(&format!("pod/{p} evicted")), "{p}: {out}");
        assert!(
            out.contains(&format!("evicting pod default/{p}")),
            "{p}: {out}"
        );
    }
    // With two pods there and one disruption allowed, the second waited for the first's
    // replacement: kubectl saw the budget's 429 and retried.
    if on_node.len() > 1 {
        assert!(err.contains(VIOLATES), "{err}");
    }

    let n = c.json(&["get", "node", &node]).await;
    assert_eq!(n["spec"]["unschedulable"], true);
    let after = c.wait_ready("web", 3).await;
    assert!(after.iter().all(|(_, n)| *n != node), "{after:?}");
    c.wait_allowed("web", 1).await;

    let out = c.ok(&["uncordon", &node]).await;
    assert_eq!(out.trim(), format!("node/{node} uncordoned"));
    let n = c.json(&["get", "node", &node]).await;
    assert!(n["spec"]["unschedulable"].is_null(), "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_the_budget_forbids_times_out() {
    let c = cluster("stuck").await;
    c.apply(&deployment("db", 2)).await;
    // kubectl's generator sends the budget as protobuf.
    let out = c
        .ok(&[
            "create",
            "pdb",
            "db",
            "--selector=app=db",
            "--min-available=2",
        ])
        .await;
    assert_eq!(out.trim(), "poddisruptionbudget.policy/db created");
    c.apply(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: c
        image: registry.example/agent:1
",
    )
    .await;
    let pods = c.wait_ready("db", 2).await;
    c.wait_ready("agent", 2).await;
    let table = c.wait_allowed("db", 0).await;
    assert!(
        table.lines().nth(1).unwrap().split_whitespace().nth(3) == Some("0"),
        "{table}"
    );
    let pdb = c.json(&["get", "pdb", "db"]).await;
    assert_eq!(pdb["status"]["conditions"][0]["reason"], "InsufficientPods");
    let node = pods[0].1.clone();

    // A DaemonSet's pod stops a drain that was not told to ignore them (kubectl's check).
    let (ok, _, err) = c.run(&["drain", &node, "--timeout=20s"], None).await;
    assert!(!ok);
    assert!(
        err.contains("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"),
        "{err}"
    );

    // The budget allows nothing: kubectl retries the 429 until its timeout.
    let (ok, out, err) = c
        .run(
            &["drain", &node, "--ignore-daemonsets", "--timeout=12s"],
            None,
        )
        .await;
    assert!(!ok, "drain unexpectedly succeeded: {out}");
    // The refused drain above had already cordoned it.
    assert!(
        out.contains(&format!("node/{node} already cordoned")),
        "{out}"
    );
    assert!(
        err.contains("Warning: ignoring DaemonSet-managed Pods"),
        "{err}"
    );
    assert!(err.contains(VIOLATES), "{err}");
    assert!(err.contains("global timeout reached: 12s"), "{err}");
    assert!(
        err.contains(&format!("unable to drain node \"{node}\"")),
        "{err}"
    );
    // Nothing was evicted.
    assert_eq!(c.ready_pods("db").await.len(), 2);
    let n = c.json(&["get", "node", &node]).await;
    assert_eq!(n["spec"]["unschedulable"], true);

    // The Eviction API's own answers.
    let (code, body) = c
        .evict(
            &pods[0].0,
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pods[0].0}}),
        )
        .await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["message"], VIOLATES);
    let cause = &body["details"]["causes"][0];
    assert_eq!(cause["reason"], "DisruptionBudget");
    assert_eq!(
        cause["message"],
        "The disruption budget db needs 2 healthy pods and has 2 currently"
    );
    let (code, body) = c
        .evict(
            "nope",
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "nope"}}),
        )
        .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["message"], "pods \"nope\" not found");
    c.apply(&pdb_yaml("db-too", "db", "maxUnavailable: 1"))
        .await;
    let (code, body) = c
        .evict(
            &pods[0].0,
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pods[0].0}}),
        )
        .await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    c.ok(&["delete", "pdb", "db-too"]).await;

    // Once the budget allows one, an eviction takes it and records the pod.
    c.apply(&pdb_yaml("db", "db", "minAvailable: 1")).await;
    c.wait_allowed("db", 1).await;
    let (code, body) = c
        .evict(&pods[0].0, json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pods[0].0}, "deleteOptions": {"gracePeriodSeconds": 0}}))
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "Success");

    let out = c.ok(&["uncordon", &node]).await;
    assert_eq!(out.trim(), format!("node/{node} uncordoned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_without_eviction_deletes_with_protobuf_options() {
    let c = cluster("plain").await;
    c.apply(&deployment("app", 2)).await;
    let pods = c.wait_ready("app", 2).await;
    let node = pods[0].1.clone();
    // --disable-eviction makes kubectl DELETE each pod through its typed client, whose
    // DeleteOptions body is protobuf.
    let (ok, out, err) = c
        .run(
            &[
                "drain",
                &node,
                "--ignore-daemonsets",
                "--disable-eviction",
                "--timeout=60s",
                "-v=8",
            ],
            None,
        )
        .await;
    assert!(ok, "drain failed: {err}\n{out}");
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl did not send protobuf: {err}"
    );
    for (p, n) in &pods {
        if *n == node {
            assert!(out.contains(&format!("pod/{p} deleted")), "{p}: {out}");
        }
    }
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    let after = c.wait_ready("app", 2).await;
    assert!(after.iter().all(|(_, n)| *n != node), "{after:?}");
}
