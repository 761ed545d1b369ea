//! A stand-in for the scheduler in suites and benchmarks that run on simulated nodes:
//! binds pods nobody has bound, round-robin over the nodes, through `pods/binding`.
//!
//! It yields to a real scheduler: it binds a pod only after it has stayed unbound for a
//! grace period, and once it sees any pod bound by someone else (or loses a bind to
//! someone) it stops for good.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::time::Instant;

/// The running binder; dropping it stops it.
pub struct StandInBinder {
    task: tokio::task::JoinHandle<()>,
    bound: Arc<AtomicUsize>,
    yielded: Arc<AtomicBool>,
}

impl Drop for StandInBinder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    client: kube::Client,
    bound: Arc<AtomicUsize>,
    yielded: Arc<AtomicBool>,
    limit: tokio::sync::Semaphore,
}

impl StandInBinder {
    /// Binds to `nodes` every pod still unbound `grace` after it was first seen.
    pub fn start(client: kube::Client, nodes: Vec<String>, grace: Duration) -> StandInBinder {
        let bound = Arc::new(AtomicUsize::new(0));
        let yielded = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            client,
            bound: bound.clone(),
            yielded: yielded.clone(),
            limit: tokio::sync::Semaphore::new(16),
        });
        let task = tokio::spawn(run(shared, nodes, grace));
        StandInBinder {
            task,
            bound,
            yielded,
        }
    }

    /// Pods this binder bound.
    pub fn bound(&self) -> usize {
        self.bound.load(Ordering::SeqCst)
    }

    /// Whether it saw a scheduler at work and stopped.
    pub fn yielded(&self) -> bool {
        self.yielded.load(Ordering::SeqCst)
    }
}

/// An unbound pod: (namespace, name, uid) and when it was first seen.
type Pending = HashMap<String, (String, String, Instant)>;

async fn run(shared: Arc<Shared>, nodes: Vec<String>, grace: Duration) {
    if nodes.is_empty() {
        return;
    }
    let pods: Api<Pod> = Api::all(shared.client.clone());
    // Back-off, so a watch on a server that has gone never spins.
    let mut stream = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut pending: Pending = HashMap::new();
    let mut ours: std::collections::HashSet<String> = Default::default();
    let mut next = 0usize;
    let mut tick =
        tokio::time::interval(Duration::from_millis(20).min(grace.max(Duration::from_millis(1))));
    loop {
        if shared.yielded.load(Ordering::SeqCst) {
            return;
        }
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { return };
                let pod = match ev {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    Ok(Event::Delete(p)) => {
                        let uid = p.metadata.uid.as_deref().unwrap_or_default();
                        pending.remove(uid);
                        ours.remove(uid);
                        continue;
                    }
                    _ => continue,
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
                if !node.is_empty() {
                    if pending.remove(&uid).is_some() && !ours.contains(&uid) {
                        // Bound while waiting, and not by us: a scheduler is running.
                        shared.yielded.store(true, Ordering::SeqCst);
                    }
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
                    continue;
                }
                pending.entry(uid).or_insert_with(|| {
                    (
                        pod.metadata.namespace.clone().unwrap_or_default(),
                        pod.metadata.name.clone().unwrap_or_default(),
                        Instant::now(),
                    )
                });
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(uid, (_, _, seen))| {
                !ours.contains(*uid) && now.duration_since(*seen) >= grace
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            let Some((ns, name, _)) = pending.get(&uid).cloned() else {
                continue;
            };
            let node = nodes[next % nodes.len()].clone();
            next += 1;
            ours.insert(uid.clone());
            let shared = shared.clone();
            tokio::spawn(async move { bind(&shared, &ns, &name, &uid, &node).await });
        }
    }
}

async fn bind(shared: &Shared, ns: &str, name: &str, uid: &str, node: &str) {
    let Ok(_permit) = shared.limit.acquire().await else {
        return;
    };
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let Ok(body) = serde_json::to_vec(&binding) else {
        return;
    };
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/binding"))
        .header("content-type", "application/json")
        .body(body);
    let Ok(req) = req else { return };
    match shared.client.request::<serde_json::Value>(req).await {
        Ok(_) => {
            shared.bound.fetch_add(1, Ordering::SeqCst);
        }
        Err(kube::Error::Api(s)) if s.code == 409 && s.message.contains("already assigned") => {
            shared.yielded.store(true, Ordering::SeqCst);
        }
        Err(e) => tracing::debug!(pod = %name, error = %e, "stand-in bind failed"),
    }
}
