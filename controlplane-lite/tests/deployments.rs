//! Deployments and ReplicaSets on a real control plane with simulated nodes, driven by the
//! real kubectl: creation to Available, `rollout status | history | undo | pause | resume |
//! restart`, scaling, a rollout watched at every step, and the admission refusals.
//!
//! Pods are bound by the stand-in binder (it yields to a scheduler when one runs), and the
//! simulated kubelet marks them Running and Ready.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use skiff_controlplane::testing::{FakeNode, FakeNodes, StandInBinder};
use skiff_tests::ControlPlane;

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");

/// Fields drop in order: the simulated nodes and the binder stop before the server does.
struct Cluster {
    _binder: StandInBinder,
    _nodes: FakeNodes,
    client: kube::Client,
    cp: ControlPlane,
}

async fn cluster() -> Cluster {
    let cp = ControlPlane::start(BIN.as_ref(), &[]).expect("control plane starts");
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let names: Vec<String> = (1..=3).map(|i| format!("sim-{i}")).collect();
    let nodes = FakeNodes::start(
        client.clone(),
        names.iter().map(|n| FakeNode::new(n)).collect(),
    )
    .await
    .unwrap();
    let binder = StandInBinder::start(client.clone(), names, Duration::from_millis(100));
    Cluster {
        cp,
        client,
        _nodes: nodes,
        _binder: binder,
    }
}

impl Cluster {
    /// kubectl off the runtime's threads; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        // A server that stops answering fails the test instead of hanging it.
        let mut with_timeout = vec!["--request-timeout=60s"];
        with_timeout.extend_from_slice(args);
        let mut cmd = tokio::process::Command::from(self.cp.kubectl_cmd(&with_timeout));
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
        let out = child.wait_with_output().await.unwrap();
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

    async fn refused(&self, yaml: &str) -> String {
        let (ok, out, err) = self.run(&["apply", "-f", "-"], Some(yaml)).await;
        assert!(!ok, "kubectl apply unexpectedly succeeded: {out}");
        err
    }

    async fn rollout_status(&self, name: &str) -> String {
        let out = self
            .ok(&[
                "rollout",
                "status",
                &format!("deployment/{name}"),
                "--timeout=90s",
            ])
            .await;
        assert!(
            out.contains(&format!("deployment \"{name}\" successfully rolled out")),
            "{out}"
        );
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).unwrap()
    }

    /// The Deployment's ReplicaSets, oldest revision first.
    async fn replica_sets(&self, app: &str) -> Vec<Value> {
        let list = self.json(&["get", "rs", "-l", &format!("app={app}")]).await;
        let mut items = list["items"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|r| {
            r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        });
        items
    }

    /// Images of the running (not terminating) pods of `app`.
    async fn images(&self, app: &str) -> Vec<String> {
        let list = self
            .json(&["get", "pods", "-l", &format!("app={app}")])
            .await;
        let mut v: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    async fn eventually_images(&self, app: &str, want: &[&str]) {
        for _ in 0..100 {
            if self.images(app).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pods of {app} never became {want:?}: {:?}",
            self.images(app).await
        );
    }
}

fn deployment_yaml(
    name: &str,
    replicas: i32,
    image: &str,
    surge: &str,
    unavailable: &str,
) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_scale_and_delete_with_kubectl() {
    let c = cluster().await;
    let out = c
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
        ])
        .await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    c.rollout_status("web").await;

    let table = c.ok(&["get", "deploy", "web"]).await;
    let row = table.lines().nth(1).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], ["web", "3/3", "3", "3"], "{table}");
    let d = c.json(&["get", "deploy", "web"]).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let conds = d["status"]["conditions"].as_array().unwrap();
    let reason = |t: &str| {
        conds
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| (c["status"].clone(), c["reason"].clone()))
    };
    assert_eq!(
        reason("Available"),
        Some((json!("True"), json!("MinimumReplicasAvailable")))
    );
    assert_eq!(
        reason("Progressing"),
        Some((json!("True"), json!("NewReplicaSetAvailable")))
    );

    let rss = c.replica_sets("web").await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_string();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    let pods = c.json(&["get", "pods", "-l", "app=web"]).await;
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for p in pods {
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{rs_name}-"))
        );
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            rs_name.as_str()
        );
    }
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=ScalingReplicaSet",
        ])
        .await;
    assert!(
        events.contains(&format!("Scaled up replica set {rs_name} from 0 to 3")),
        "{events}"
    );
    let events = c.ok(&["get", "events"]).await;
    assert!(events.contains("Created pod: web-"), "{events}");

    // kubectl scale goes through the scale subresource.
    c.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    c.rollout_status("web").await;
    assert_eq!(c.images("web").await.len(), 5);
    c.ok(&["scale", "deployment/web", "--replicas=2"]).await;
    c.rollout_status("web").await;
    c.eventually_images("web", &["nginx:1.27", "nginx:1.27"])
        .await;
    let rs = &c.replica_sets("web").await[0];
    assert_eq!(rs["status"]["replicas"], 2);
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "2"
    );

    // The garbage collector takes the ReplicaSet and pods with the Deployment.
    c.ok(&[
        "delete",
        "deployment",
        "web",
        "--wait=true",
        "--timeout=60s",
    ])
    .await;
    for _ in 0..100 {
        if c.replica_sets("web").await.is_empty() && c.images("web").await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ReplicaSets or pods outlived their Deployment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_history_and_undo() {
    let c = cluster().await;
    c.apply(&deployment_yaml("api", 3, "api:1", "1", "0")).await;
    c.ok(&[
        "annotate",
        "deployment/api",
        "kubernetes.io/change-cause=first release",
    ])
    .await;
    c.rollout_status("api").await;

    // The cause is recorded on the ReplicaSet the Deployment runs when it is annotated:
    // annotated after the image change, it names revision 2.
    c.ok(&["set", "image", "deployment/api", "app=api:2"]).await;
    c.ok(&[
        "annotate",
        "deployment/api",
        "--overwrite",
        "kubernetes.io/change-cause=image api:2",
    ])
    .await;
    c.rollout_status("api").await;
    c.eventually_images("api", &["api:2", "api:2", "api:2"])
        .await;

    let history = c.ok(&["rollout", "history", "deployment/api"]).await;
    let lines: Vec<&str> = history.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines[0].contains("deployment.apps/api"), "{history}");
    assert!(
        lines[1].starts_with("REVISION") && lines[1].contains("CHANGE-CAUSE"),
        "{history}"
    );
    assert!(
        lines[2].starts_with('1') && lines[2].contains("first release"),
        "{history}"
    );
    assert!(
        lines[3].starts_with('2') && lines[3].contains("image api:2"),
        "{history}"
    );
    let rev1 = c
        .ok(&["rollout", "history", "deployment/api", "--revision=1"])
        .await;
    assert!(
        rev1.contains("Image:\tapi:1") || rev1.contains("api:1"),
        "{rev1}"
    );

    // Back to revision 1: the old ReplicaSet returns as revision 3.
    let out = c.ok(&["rollout", "undo", "deployment/api"]).await;
    assert!(out.contains("rolled back"), "{out}");
    c.rollout_status("api").await;
    c.eventually_images("api", &["api:1", "api:1", "api:1"])
        .await;
    let rss = c.replica_sets("api").await;
    assert_eq!(rss.len(), 2, "no new ReplicaSet for an undo");
    let back = &rss[1];
    assert_eq!(
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(
        back["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:1"
    );
    let history = c.ok(&["rollout", "history", "deployment/api"]).await;
    let revs: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["2", "3"], "{history}");

    // Undo to an explicit revision.
    c.ok(&["rollout", "undo", "deployment/api", "--to-revision=2"])
        .await;
    c.rollout_status("api").await;
    c.eventually_images("api", &["api:2", "api:2", "api:2"])
        .await;
    let d = c.json(&["get", "deploy", "api"]).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_restart() {
    let c = cluster().await;
    c.apply(&deployment_yaml("web", 2, "web:1", "25%", "25%"))
        .await;
    c.rollout_status("web").await;

    c.ok(&["rollout", "pause", "deployment/web"]).await;
    c.ok(&["set", "image", "deployment/web", "app=web:2"]).await;
    c.ok(&["scale", "deployment/web", "--replicas=3"]).await;
    // Scaling works while paused; the new template does not roll out.
    for _ in 0..100 {
        if c.images("web").await == ["web:1", "web:1", "web:1"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.images("web").await, ["web:1", "web:1", "web:1"]);
    assert_eq!(c.replica_sets("web").await.len(), 1);
    let d = c.json(&["get", "deploy", "web"]).await;
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["status"], "Unknown");
    assert_eq!(progressing["reason"], "DeploymentPaused");
    // kubectl refuses to restart a paused Deployment on its own.
    let (ok, _, err) = c.run(&["rollout", "restart", "deployment/web"], None).await;
    assert!(!ok && err.contains("paused"), "{err}");

    c.ok(&["rollout", "resume", "deployment/web"]).await;
    c.rollout_status("web").await;
    c.eventually_images("web", &["web:2", "web:2", "web:2"])
        .await;
    assert_eq!(c.replica_sets("web").await.len(), 2);

    let before: Vec<String> = pod_names(&c, "web").await;
    c.ok(&["rollout", "restart", "deployment/web"]).await;
    c.rollout_status("web").await;
    let rss = c.replica_sets("web").await;
    assert_eq!(rss.len(), 3);
    assert!(
        rss[2]["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    for _ in 0..100 {
        let now = pod_names(&c, "web").await;
        if now.len() == 3 && now.iter().all(|n| !before.contains(n)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("restart did not replace every pod");
}

async fn pod_names(c: &Cluster, app: &str) -> Vec<String> {
    let list = c.json(&["get", "pods", "-l", &format!("app={app}")]).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// What a watcher saw during a rollout.
#[derive(Default, Debug)]
struct Seen {
    max_pods: usize,
    min_ready: usize,
    max_rs_total: i32,
    samples: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_watched_at_every_step() {
    let c = cluster().await;
    // 10 replicas, maxSurge 3, maxUnavailable 2.
    c.apply(&deployment_yaml("roll", 10, "roll:1", "3", "2"))
        .await;
    c.rollout_status("roll").await;

    let seen = Arc::new(Mutex::new(Seen {
        min_ready: usize::MAX,
        ..Default::default()
    }));
    let pods_task = {
        let seen = seen.clone();
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("app=roll");
            let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
            let mut pods: HashMap<String, Pod> = HashMap::new();
            let mut ready_list = false;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => {
                        pods.insert(p.metadata.uid.clone().unwrap(), p);
                    }
                    Ok(Event::Delete(p)) => {
                        pods.remove(p.metadata.uid.as_deref().unwrap());
                    }
                    // A re-list starts the picture afresh.
                    Ok(Event::Init) => {
                        pods.clear();
                        ready_list = false;
                    }
                    Ok(Event::InitDone) => ready_list = true,
                    _ => {}
                }
                if !ready_list {
                    continue;
                }
                let active: Vec<&Pod> = pods
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let ready = active
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count();
                let mut s = seen.lock().unwrap();
                s.max_pods = s.max_pods.max(active.len());
                s.min_ready = s.min_ready.min(ready);
                s.samples += 1;
            }
        })
    };
    let rs_task = {
        let seen = seen.clone();
        let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("app=roll");
            let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
            let mut sizes: HashMap<String, i32> = HashMap::new();
            while let Some(ev) = stream.next().await {
                if let Ok(Event::Apply(rs) | Event::InitApply(rs)) = ev {
                    let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    sizes.insert(rs.metadata.name.clone().unwrap(), n);
                    let mut s = seen.lock().unwrap();
                    s.max_rs_total = s.max_rs_total.max(sizes.values().sum());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.ok(&["set", "image", "deployment/roll", "app=roll:2"])
        .await;
    c.rollout_status("roll").await;
    c.eventually_images("roll", &["roll:2"; 10]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pods_task.abort();
    rs_task.abort();
    let s = std::mem::take(&mut *seen.lock().unwrap());
    assert!(s.samples > 20, "{s:?}");
    assert!(
        s.max_pods <= 13,
        "more than replicas + maxSurge pods: {s:?}"
    );
    assert!(
        s.max_rs_total <= 13,
        "ReplicaSets sized beyond the surge: {s:?}"
    );
    assert!(
        s.min_ready >= 8,
        "fewer than replicas - maxUnavailable ready: {s:?}"
    );
    assert!(s.max_pods > 10, "the surge was never used: {s:?}");

    // The Deployment records the rollout in events, old set down to zero.
    let rss = c.replica_sets("roll").await;
    assert_eq!(rss[0]["spec"]["replicas"], 0);
    assert_eq!(rss[1]["spec"]["replicas"], 10);
    let old = rss[0]["metadata"]["name"].as_str().unwrap();
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=ScalingReplicaSet",
        ])
        .await;
    assert!(
        events.contains(&format!("Scaled down replica set {old} from")),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_and_a_bare_replica_set() {
    let c = cluster().await;
    c.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: app, image: "db:1"}]}
"#,
    )
    .await;
    c.rollout_status("db").await;

    // Recreate: no new pod exists while any old one does, terminating or not.
    // (old and new pods seen together, new pods seen at all)
    let overlap = Arc::new(Mutex::new((None::<Vec<String>>, false)));
    let watch = {
        let overlap = overlap.clone();
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("app=db");
            let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
            let mut pods: HashMap<String, String> = HashMap::new();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Init) => pods.clear(),
                    Ok(Event::Apply(p) | Event::InitApply(p)) => {
                        let image = p.spec.as_ref().unwrap().containers[0]
                            .image
                            .clone()
                            .unwrap_or_default();
                        pods.insert(p.metadata.name.clone().unwrap(), image);
                    }
                    Ok(Event::Delete(p)) => {
                        pods.remove(p.metadata.name.as_deref().unwrap());
                    }
                    _ => {}
                }
                let images: Vec<String> = pods.values().cloned().collect();
                let old = images.iter().any(|i| i == "db:1");
                let new = images.iter().any(|i| i == "db:2");
                let mut o = overlap.lock().unwrap();
                o.1 |= new;
                if old && new {
                    o.0 = Some(images);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.ok(&["set", "image", "deployment/db", "app=db:2"]).await;
    c.rollout_status("db").await;
    c.eventually_images("db", &["db:2", "db:2"]).await;
    watch.abort();
    let (together, saw_new) = overlap.lock().unwrap().clone();
    assert_eq!(together, None, "old and new pods together");
    assert!(saw_new, "the watch saw no new pod");
    assert_eq!(c.replica_sets("db").await[0]["spec"]["replicas"], 0);

    // A ReplicaSet of its own replaces a deleted pod and adopts a matching orphan.
    c.apply(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: app, image: "cache:1"}]}
"#,
    )
    .await;
    c.eventually_images("cache", &["cache:1", "cache:1"]).await;
    let victim = pod_names(&c, "cache").await.remove(0);
    c.ok(&["delete", "pod", &victim, "--wait=false"]).await;
    for _ in 0..100 {
        let names = pod_names(&c, "cache").await;
        if names.len() == 2 && !names.contains(&victim) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = pod_names(&c, "cache").await;
    assert!(names.len() == 2 && !names.contains(&victim), "{names:?}");
    // The replacement is Ready a moment after it exists, and the status follows.
    let mut rs = c.json(&["get", "rs", "cache"]).await;
    for _ in 0..100 {
        if rs["status"]["readyReplicas"] == 2 && rs["status"]["availableReplicas"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rs = c.json(&["get", "rs", "cache"]).await;
    }
    assert_eq!(rs["status"]["readyReplicas"], 2, "{rs}");
    assert_eq!(rs["status"]["availableReplicas"], 2);
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 2);

    // kubectl scale on the ReplicaSet itself, up and back down.
    c.ok(&["scale", "rs/cache", "--replicas=4"]).await;
    c.eventually_images("cache", &["cache:1"; 4]).await;
    c.ok(&["scale", "rs/cache", "--replicas=2"]).await;
    c.eventually_images("cache", &["cache:1"; 2]).await;
    for _ in 0..100 {
        let rs = c.json(&["get", "rs", "cache"]).await;
        if rs["status"]["replicas"] == 2 && rs["status"]["availableReplicas"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let table = c.ok(&["get", "rs", "cache"]).await;
    let cols: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&cols[..4], ["cache", "2", "2", "2"], "{table}");

    // An orphan with the labels is adopted, and one too many is removed.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stray, labels: {app: cache}}
spec: {containers: [{name: app, image: "cache:1"}]}
"#,
    )
    .await;
    for _ in 0..100 {
        if pod_names(&c, "cache").await.len() == 2 {
            let events = c.ok(&["get", "events"]).await;
            if events.contains("Deleted pod:") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the orphan was not adopted and the extra pod not removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_workloads_are_refused() {
    let c = cluster().await;
    let mismatch = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: app, image: "x"}]}
"#;
    let err = c.refused(mismatch).await;
    assert!(
        err.contains(r#"The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`"#),
        "{err}"
    );
    let zero = deployment_yaml("bad", 1, "x", "0", "0");
    let err = c.refused(&zero).await;
    assert!(
        err.contains(r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0"#),
        "{err}"
    );
    let recreate = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}
  template:
    metadata: {labels: {app: bad}}
    spec: {containers: [{name: app, image: "x"}]}
"#;
    let err = c.refused(recreate).await;
    assert!(
        err.contains("spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
        "{err}"
    );
    let rs = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: app, image: "x"}]}
"#;
    let err = c.refused(rs).await;
    assert!(
        err.contains(r#"The ReplicaSet "bad" is invalid: spec.template.metadata.labels"#),
        "{err}"
    );

    // On the wire: 422 Invalid with the field named in the causes.
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let d: Deployment = serde_yaml::from_str(&zero).unwrap();
    match api.create(&PostParams::default(), &d).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            let causes = s.details.clone().map(|d| d.causes).unwrap_or_default();
            assert_eq!(
                causes[0].field,
                "spec.strategy.rollingUpdate.maxUnavailable"
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    // A valid Deployment changed into an invalid one is refused too.
    c.apply(&deployment_yaml("good", 1, "x", "1", "0")).await;
    let (ok, _, err) = c
        .run(
            &[
                "patch",
                "deployment/good",
                "-p",
                r#"{"spec":{"strategy":{"rollingUpdate":{"maxSurge":0}}}}"#,
            ],
            None,
        )
        .await;
    assert!(
        !ok && err.contains("may not be 0 when `maxSurge` is 0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let c = cluster().await;
    c.apply(&deployment_yaml("slow", 2, "slow:1", "1", "0"))
        .await;
    c.rollout_status("slow").await;
    // The new pods never become ready; with maxUnavailable 0 no old pod goes.
    c.ok(&[
        "patch",
        "deployment/slow",
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":3,"template":{"metadata":{"annotations":{"skiff.test/unready":"true"}}}}}"#,
    ])
    .await;
    let (ok, out, err) = c
        .run(
            &["rollout", "status", "deployment/slow", "--timeout=60s"],
            None,
        )
        .await;
    assert!(
        !ok && err.contains(r#"deployment "slow" exceeded its progress deadline"#),
        "{out}\n{err}"
    );
    let d = c.json(&["get", "deploy", "slow"]).await;
    let conds = d["status"]["conditions"].as_array().unwrap();
    let progressing = conds.iter().find(|c| c["type"] == "Progressing").unwrap();
    assert_eq!(progressing["status"], "False", "{progressing}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    let new_rs = c.replica_sets("slow").await[1]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{new_rs}\" has timed out progressing.")
    );
    // The old pods still serve: Available stays True.
    let available = conds.iter().find(|c| c["type"] == "Available").unwrap();
    assert_eq!(available["status"], "True");
    assert_eq!(c.images("slow").await, ["slow:1", "slow:1", "slow:1"]);

    // A fixed template rolls out and the condition recovers.
    c.ok(&[
        "patch",
        "deployment/slow",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/template/metadata/annotations/skiff.test~1unready"}]"#,
    ])
    .await;
    c.rollout_status("slow").await;
    let d = c.json(&["get", "deploy", "slow"]).await;
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
}
