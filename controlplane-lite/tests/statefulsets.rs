//! StatefulSets on a real control plane with simulated nodes, driven by the real kubectl:
//! ordered creation with claims, scale-down from the top, rolling updates down to the
//! partition, `kubectl rollout status|history|undo|restart`, and the 422s for bad specs.
//!
//! Nothing schedules pods here: a stand-in binds pending pods round-robin to the simulated
//! nodes through `pods/binding`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
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

/// Stands in for the scheduler: binds every pending pod to the next of `nodes`.
fn bind_pending(client: kube::Client, nodes: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let all: Api<Pod> = Api::all(client.clone());
        let mut stream = watcher::watcher(all, watcher::Config::default()).boxed();
        let mut next = 0;
        while let Some(ev) = stream.next().await {
            let Ok(Event::Apply(p) | Event::InitApply(p)) = ev else {
                continue;
            };
            let bound = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if bound || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = p.metadata.namespace.clone().unwrap();
            let name = p.metadata.name.clone().unwrap();
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns, "uid": p.metadata.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": nodes[next % nodes.len()]},
            });
            next += 1;
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let _ = api
                .create_subresource::<Value, Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await;
        }
    })
}

/// What happened to the set's pods, in order: `+web-1 after [web-0]` (created, with the
/// pods Ready at that moment) and `-web-2` (gone).
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Starts recording pods labelled `app=<app>`; returns once the watch has its first list.
    async fn start(client: kube::Client, app: &str) -> (Journal, tokio::task::JoinHandle<()>) {
        let journal = Journal::default();
        let log = journal.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(pods, cfg).boxed();
            let mut tx = Some(tx);
            let mut ready: BTreeSet<String> = BTreeSet::new();
            let mut seen: HashMap<String, String> = HashMap::new();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::InitDone) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Apply(p) | Event::InitApply(p)) => {
                        let name = p.metadata.name.clone().unwrap();
                        let uid = p.metadata.uid.clone().unwrap();
                        if seen.get(&name) != Some(&uid) {
                            seen.insert(name.clone(), uid);
                            let before: Vec<_> = ready.iter().cloned().collect();
                            log.push(format!("+{name} after {before:?}"));
                        }
                        let is_ready = p
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            });
                        if is_ready && p.metadata.deletion_timestamp.is_none() {
                            ready.insert(name);
                        } else {
                            ready.remove(&name);
                        }
                    }
                    Ok(Event::Delete(p)) => {
                        let name = p.metadata.name.clone().unwrap();
                        ready.remove(&name);
                        seen.remove(&name);
                        log.push(format!("-{name}"));
                    }
                    _ => {}
                }
            }
        });
        rx.await.unwrap();
        (journal, task)
    }

    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `name → image` of the set's live pods.
fn images(cp: &ControlPlane) -> Vec<(String, String)> {
    let pods = json_of(&cp.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
    let mut out: Vec<(String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn wait_images(cp: &ControlPlane, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    eventually(WAIT, &format!("pods {want:?}"), || {
        (images(cp) == want).then_some(())
    });
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statefulset_lives_its_life_through_kubectl() {
    let cp = ControlPlane::start(BIN.as_ref(), &[]).unwrap();
    let c = client(&cp).await;
    let names = ["sim-1", "sim-2", "sim-3"];
    let _nodes = FakeNodes::start(c.clone(), names.iter().map(|n| FakeNode::new(n)).collect())
        .await
        .unwrap();
    let binder = bind_pending(c.clone(), names.iter().map(|n| n.to_string()).collect());
    let (journal, recorder) = Journal::start(c.clone(), "web").await;

    cp.kubectl_stdin(&["apply", "-f", "-"], WEB);
    let out = cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    // In order, each Ready before the next.
    assert_eq!(
        journal.take(),
        [
            "+web-0 after []",
            "+web-1 after [\"web-0\"]",
            "+web-2 after [\"web-0\", \"web-1\"]",
        ]
    );
    let table = cp.kubectl_ok(&["get", "sts", "web"]);
    assert!(table.contains("3/3"), "{table}");
    let pvcs = cp.kubectl_ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(
        pvcs.lines().collect::<Vec<_>>(),
        [
            "persistentvolumeclaim/www-web-0",
            "persistentvolumeclaim/www-web-1",
            "persistentvolumeclaim/www-web-2",
        ]
    );
    let pod = json_of(&cp.kubectl_ok(&["get", "pod", "web-1", "-o", "json"]));
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "nginx");
    assert_eq!(
        pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(
        pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );
    let www = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "www")
        .unwrap()
        .clone();
    assert_eq!(www["persistentVolumeClaim"]["claimName"], "www-web-1");
    let sts = json_of(&cp.kubectl_ok(&["get", "sts", "web", "-o", "json"]));
    assert_eq!(
        pod["metadata"]["labels"]["controller-revision-hash"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(sts["status"]["availableReplicas"], 3);
    let events = json_of(&cp.kubectl_ok(&["get", "events", "-o", "json"]));
    let created: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["reason"] == "SuccessfulCreate" && e["involvedObject"]["kind"] == "StatefulSet"
        })
        .map(|e| {
            assert_eq!(e["source"]["component"], "statefulset-controller");
            e["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        created.contains(&"create Pod web-2 in StatefulSet web successful".to_string()),
        "{created:?}"
    );

    // Scale down: from the top, one at a time.
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=1"]);
    wait_images(&cp, &[("web-0", "nginx:1")]);
    assert_eq!(journal.take(), ["-web-2", "-web-1"]);
    // The claims stay.
    assert_eq!(
        cp.kubectl_ok(&["get", "pvc", "-o", "name"]).lines().count(),
        3
    );
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=3"]);
    cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    journal.take();

    // A rolling update from the top, stopping at the partition.
    cp.kubectl_ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}"#,
    ]);
    cp.kubectl_ok(&["set", "image", "sts/web", "nginx=nginx:2"]);
    let out = cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    wait_images(
        &cp,
        &[
            ("web-0", "nginx:1"),
            ("web-1", "nginx:2"),
            ("web-2", "nginx:2"),
        ],
    );
    let log: Vec<String> = journal
        .take()
        .into_iter()
        .filter(|l| l.starts_with('-'))
        .collect();
    assert_eq!(log, ["-web-2", "-web-1"]);

    // History and undo.
    let history = cp.kubectl_ok(&["rollout", "history", "sts/web"]);
    let revs: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["1", "2"], "{history}");
    let two = cp.kubectl_ok(&["rollout", "history", "sts/web", "--revision=2"]);
    assert!(two.contains("nginx:2"), "{two}");
    let out = cp.kubectl_ok(&["rollout", "undo", "sts/web"]);
    assert!(out.contains("rolled back"), "{out}");
    wait_images(
        &cp,
        &[
            ("web-0", "nginx:1"),
            ("web-1", "nginx:1"),
            ("web-2", "nginx:1"),
        ],
    );
    let history = cp.kubectl_ok(&["rollout", "history", "sts/web"]);
    let revs: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["2", "3"], "{history}");
    let out = cp.kubectl_ok(&["rollout", "undo", "sts/web", "--to-revision=3"]);
    assert!(
        out.contains("skipped rollback (current template already matches revision 3)"),
        "{out}"
    );

    // A restart makes a new revision and replaces the pods above the partition.
    cp.kubectl_ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    let before = json_of(&cp.kubectl_ok(&["get", "pod", "web-0", "-o", "json"]));
    let out = cp.kubectl_ok(&["rollout", "restart", "sts/web"]);
    assert!(out.contains("restarted"), "{out}");
    eventually(WAIT, "web-0 replaced", || {
        // Between the old pod's deletion and its successor's creation there is no web-0.
        let out = cp.kubectl(&["get", "pod", "web-0", "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let now = json_of(&String::from_utf8_lossy(&out.stdout));
        (now["metadata"]["uid"] != before["metadata"]["uid"]
            && now["metadata"]["deletionTimestamp"].is_null())
        .then_some(())
    });
    cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    let sts = json_of(&cp.kubectl_ok(&["get", "sts", "web", "-o", "json"]));
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(sts["status"]["updatedReplicas"], 3);

    // A deleted pod comes back under the same name.
    journal.take();
    cp.kubectl_ok(&["delete", "pod", "web-1", "--wait=false"]);
    eventually(WAIT, "web-1 back", || {
        let log = journal.0.lock().unwrap().clone();
        log.iter().any(|l| l.starts_with("+web-1")).then_some(())
    });
    cp.kubectl_ok(&["rollout", "status", "sts/web", "--timeout=60s"]);

    // Deleting the set takes its pods and, under the default policy, keeps the claims.
    let revs = cp.kubectl_ok(&["get", "controllerrevisions", "-o", "name"]);
    assert_eq!(revs.lines().count(), 3, "{revs}");
    cp.kubectl_ok(&["delete", "sts", "web"]);
    eventually(WAIT, "pods gone", || images(&cp).is_empty().then_some(()));
    assert_eq!(
        cp.kubectl_ok(&["get", "pvc", "-o", "name"]).lines().count(),
        3
    );
    eventually(WAIT, "revisions gone", || {
        cp.kubectl_ok(&["get", "controllerrevisions", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });

    binder.abort();
    recorder.abort();
}

#[test]
fn bad_statefulsets_are_refused_with_the_field_named() {
    let cp = ControlPlane::start(BIN.as_ref(), &["--controllers=false"]).unwrap();
    let sts = |spec: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: bad}}
spec:
  selector: {{matchLabels: {{app: bad}}}}
  template:
    metadata: {{labels: {{app: bad}}}}
    spec: {{containers: [{{name: c, image: x}}]}}
{spec}
"#
        )
    };
    let refused = |manifest: &str| {
        let out = cp.kubectl_stdin_output(&["apply", "-f", "-"], manifest);
        assert!(!out.status.success(), "accepted: {manifest}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&sts("  replicas: 1").replace(
        "template:\n    metadata: {labels: {app: bad}}",
        "template:\n    metadata: {labels: {app: other}}",
    ));
    assert!(
        err.contains(
            r#"The StatefulSet "bad" is invalid: spec.template.metadata.labels: Invalid value"#
        ) && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let err = refused(&sts(
        "  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: -1}}",
    ));
    assert!(
        err.contains("spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    let err = refused(&sts("  updateStrategy: {type: Sometimes}"));
    assert!(
        err.contains("spec.updateStrategy: Invalid value: ")
            && err.contains("must be 'RollingUpdate' or 'OnDelete'"),
        "{err}"
    );
    let err = refused(&sts("  podManagementPolicy: Eventually"));
    assert!(
        err.contains(r#"spec.podManagementPolicy: Invalid value: "Eventually": must be 'OrderedReady' or 'Parallel'"#),
        "{err}"
    );
    // Fields an update may not change.
    cp.kubectl_stdin(&["apply", "-f", "-"], &sts("  serviceName: a"));
    let err = refused(&sts("  serviceName: b"));
    assert!(
        err.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{err}"
    );
}
