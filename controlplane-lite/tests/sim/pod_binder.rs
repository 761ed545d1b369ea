//! Binds pending pods to the simulated nodes, round-robin, through `pods/binding`: what
//! the scheduler does, for suites that need pods running without depending on it. A pod
//! someone else bound first is left as it is.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

/// The running binder; dropping it stops it.
pub struct PodBinder(tokio::task::JoinHandle<()>);

impl Drop for PodBinder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PodBinder {
    pub fn start(client: kube::Client, nodes: Vec<String>) -> PodBinder {
        PodBinder(tokio::spawn(bind_loop(client, nodes)))
    }
}

async fn bind_loop(client: kube::Client, nodes: Vec<String>) {
    let all: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher::watcher(all, watcher::Config::default()).boxed();
    let mut next = 0usize;
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let unbound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        if !unbound || pod.metadata.deletion_timestamp.is_some() || nodes.is_empty() {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = &nodes[next % nodes.len()];
        next += 1;
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        // A conflict means it is bound already (or going): nothing to do.
        let _ = api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await;
    }
}
