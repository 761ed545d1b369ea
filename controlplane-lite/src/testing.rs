//! Simulated nodes, for integration tests and benchmarks of the scheduler and controllers:
//! Node objects that stay Ready through Lease renewals, and a stand-in kubelet that marks
//! the pods bound to them Running and Ready at once and finishes their deletion.
//!
//! Pods can script their end through annotations: `skiff.test/exit-code` makes every
//! container end with that code after `skiff.test/run-seconds` (default 0), so Jobs complete
//! or fail; `skiff.test/unready` keeps the pod from becoming Ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

mod binder;
pub use binder::StandInBinder;

pub const EXIT_CODE: &str = "skiff.test/exit-code";
pub const RUN_SECONDS: &str = "skiff.test/run-seconds";
pub const UNREADY: &str = "skiff.test/unready";

/// One simulated node.
#[derive(Debug, Clone)]
pub struct FakeNode {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub labels: BTreeMap<String, String>,
    /// `(key, value, effect)`.
    pub taints: Vec<(String, String, String)>,
}

impl FakeNode {
    /// 4 cpus, 8Gi, 110 pods, the usual labels.
    pub fn new(name: &str) -> Self {
        FakeNode {
            name: name.to_string(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("simulated nodes: {0}")]
pub struct FakeNodesError(String);

/// The running simulation; dropping it stops heartbeats and the stand-in kubelet.
pub struct FakeNodes {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    silenced: Arc<Mutex<HashSet<String>>>,
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn node_object(n: &FakeNode) -> Value {
    let mut labels = n.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    let taints: Vec<Value> = n
        .taints
        .iter()
        .map(|(k, v, e)| json!({"key": k, "value": v, "effect": e}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": n.name, "labels": labels},
        "spec": {"taints": taints},
    })
}

fn node_status(n: &FakeNode) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let res = json!({"cpu": n.cpu, "memory": n.memory, "pods": n.pods.to_string(), "ephemeral-storage": "100Gi"});
    json!({"status": {
        "capacity": res, "allocatable": res,
        "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}, {"type": "Hostname", "address": n.name}],
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "simulated", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
        ],
        "nodeInfo": {"kubeletVersion": "v1.33.0-simulated", "containerRuntimeVersion": "simulated://1", "operatingSystem": "linux", "architecture": "amd64",
                     "kernelVersion": "", "osImage": "", "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
    }})
}

impl FakeNodes {
    /// Registers `nodes` and starts playing kubelet for them.
    pub async fn start(
        client: kube::Client,
        nodes: Vec<FakeNode>,
    ) -> Result<FakeNodes, FakeNodesError> {
        let node_api: Api<Node> = Api::all(client.clone());
        for n in &nodes {
            let obj: Node = serde_json::from_value(node_object(n))
                .map_err(|e| FakeNodesError(e.to_string()))?;
            match node_api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(FakeNodesError(format!("register {}: {e}", n.name))),
            }
            node_api
                .patch_status(
                    &n.name,
                    &PatchParams::default(),
                    &Patch::Merge(&node_status(n)),
                )
                .await
                .map_err(|e| FakeNodesError(format!("status of {}: {e}", n.name)))?;
        }
        let silenced = Arc::new(Mutex::new(HashSet::new()));
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let tasks = vec![
            tokio::spawn(heartbeats(client.clone(), nodes.clone(), silenced.clone())),
            tokio::spawn(kubelet(
                client,
                names.into_iter().collect(),
                silenced.clone(),
            )),
        ];
        Ok(FakeNodes { tasks, silenced })
    }

    /// The node stops renewing its Lease and its kubelet stops acting, as if it died.
    pub fn kill(&self, node: &str) {
        self.silenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string());
    }

    /// The node comes back: it renews its Lease and posts a Ready status again.
    pub fn revive(&self, node: &str) {
        self.silenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
    }
}

fn silent(silenced: &Mutex<HashSet<String>>, node: &str) -> bool {
    silenced
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(node)
}

async fn heartbeats(
    client: kube::Client,
    nodes: Vec<FakeNode>,
    silenced: Arc<Mutex<HashSet<String>>>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let node_api: Api<Node> = Api::all(client);
    let mut was_silent = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        for node in &nodes {
            let n = &node.name;
            if silent(&silenced, n) {
                was_silent.insert(n.clone());
                continue;
            }
            // Back from the dead: a kubelet posts its status again at once.
            if was_silent.remove(n) {
                let _ = node_api
                    .patch_status(
                        n,
                        &PatchParams::default(),
                        &Patch::Merge(&node_status(node)),
                    )
                    .await;
            }
            let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
            let patch = json!({"spec": {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": now}});
            if let Err(kube::Error::Api(s)) = leases
                .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                && s.code == 404
            {
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": n, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": now}});
                if let Ok(l) = serde_json::from_value::<Lease>(lease) {
                    let _ = leases.create(&PostParams::default(), &l).await;
                }
            }
        }
    }
}

/// Pods get addresses 10.<n>.<n>.<n> in creation order.
fn pod_ip(n: u32) -> String {
    format!("10.{}.{}.{}", 200 + (n >> 16) % 50, (n >> 8) & 255, n & 255)
}

async fn kubelet(
    client: kube::Client,
    nodes: HashSet<String>,
    silenced: Arc<Mutex<HashSet<String>>>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    // Back-off: without it a watch whose server is gone (or whose runtime is shutting
    // down) fails at once, again and again, and never yields.
    let mut stream = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut next_ip: u32 = 1;
    let mut handled: HashMap<String, u32> = HashMap::new();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            // A client whose connection is gone fails at once, every time: without a pause
            // this loop would never yield, and a runtime shutting down would wait on it.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !nodes.contains(&node) || silent(&silenced, &node) {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let _ = api.delete(&name, &dp).await;
            handled.remove(&uid);
            continue;
        }
        if handled.contains_key(&uid) {
            continue;
        }
        let ip = pod_ip(next_ip);
        next_ip += 1;
        handled.insert(uid.clone(), next_ip);
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let exit = annotations
            .get(EXIT_CODE)
            .and_then(|c| c.parse::<i32>().ok());
        let run = annotations
            .get(RUN_SECONDS)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        let ready = !annotations.contains_key(UNREADY) && exit.is_none();
        let containers: Vec<String> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": running_status(&containers, &ip, ready, &now)});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
        if let Some(code) = exit {
            let api = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(run)).await;
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = json!({"status": finished_status(&containers, &ip, code, &now)});
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await;
            });
        }
    }
}

fn condition(t: &str, status: bool, now: &str) -> Value {
    json!({"type": t, "status": if status { "True" } else { "False" }, "lastTransitionTime": now})
}

fn running_status(containers: &[String], ip: &str, ready: bool, now: &str) -> Value {
    json!({
        "phase": "Running",
        "hostIP": "192.0.2.1",
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            condition("PodScheduled", true, now),
            condition("Initialized", true, now),
            condition("ContainersReady", ready, now),
            condition("Ready", ready, now),
        ],
        "containerStatuses": containers.iter().map(|c| json!({
            "name": c, "ready": ready, "started": true, "restartCount": 0, "image": "simulated", "imageID": "",
            "containerID": format!("simulated://{c}"), "state": {"running": {"startedAt": now}},
        })).collect::<Vec<_>>(),
    })
}

fn finished_status(containers: &[String], ip: &str, code: i32, now: &str) -> Value {
    json!({
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [
            condition("PodScheduled", true, now),
            condition("Initialized", true, now),
            condition("ContainersReady", false, now),
            condition("Ready", false, now),
        ],
        "containerStatuses": containers.iter().map(|c| json!({
            "name": c, "ready": false, "started": false, "restartCount": 0, "image": "simulated", "imageID": "",
            "containerID": format!("simulated://{c}"),
            "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "finishedAt": now, "startedAt": now}},
        })).collect::<Vec<_>>(),
    })
}
