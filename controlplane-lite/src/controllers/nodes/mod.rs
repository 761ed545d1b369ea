//! Nodes that stop answering: the node lifecycle controller (Unknown conditions, taints,
//! pods marked not ready) and the taint eviction controller (pods deleted from NoExecute
//! nodes once their tolerations run out), as kube-controller-manager runs them.

pub mod eviction;
pub mod health;
pub mod lifecycle;
pub mod taints;
pub mod zones;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::task::JoinHandle;

use super::context::Ctx;
use super::runtime::{Change, Cluster, ObjectKey, WorkQueue, itself, run, watch};
pub use eviction::TaintEviction;
pub use lifecycle::{LEASE_NAMESPACE, NodeLifecycle};

/// Starts both controllers on `ctx`.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let mut tasks = start_lifecycle(ctx);
    tasks.extend(start_eviction(ctx));
    tasks
}

fn node_key_of_pod(nodes: &super::runtime::Informer<Node>, pod: &Pod) -> Option<ObjectKey> {
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    let n = nodes.get(None, node)?;
    lifecycle::kubelet_gone(&n).then(|| ObjectKey::new(None, node))
}

pub fn start_lifecycle<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(NodeLifecycle::new(ctx, queue.clone()));
    let nodes = ctx.informers.nodes.clone();
    vec![
        watch(&ctx.informers.nodes, queue.clone(), itself),
        watch(&ctx.informers.leases, queue.clone(), |c| {
            let m = &c.obj.metadata;
            match (m.namespace.as_deref(), m.name.as_deref()) {
                (Some(LEASE_NAMESPACE), Some(n)) if !c.deleted => vec![ObjectKey::new(None, n)],
                _ => Vec::new(),
            }
        }),
        // A pod that lands on a node whose kubelet is gone is marked not ready too.
        watch(&ctx.informers.pods, queue.clone(), move |c| {
            if c.deleted {
                return Vec::new();
            }
            node_key_of_pod(&nodes, &c.obj).into_iter().collect()
        }),
        run(r, queue, ctx.settings.workers),
    ]
}

pub fn start_eviction<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(TaintEviction::new(ctx));
    let pods = ctx.informers.pods.clone();
    // Node → its NoExecute taints when last seen: only a change concerns its pods.
    let seen: Mutex<HashMap<String, Vec<(String, String)>>> = Mutex::default();
    vec![
        watch(&ctx.informers.pods, queue.clone(), |c: &Change<Pod>| {
            let bound = c
                .obj
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty());
            if bound { itself(c) } else { Vec::new() }
        }),
        watch(
            &ctx.informers.nodes,
            queue.clone(),
            move |c: &Change<Node>| {
                let name = c.obj.metadata.name.clone().unwrap_or_default();
                let now = if c.deleted {
                    Vec::new()
                } else {
                    eviction::no_execute_signature(&c.obj)
                };
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                let before = seen.get(&name).cloned().unwrap_or_default();
                if before == now && (c.deleted || seen.contains_key(&name)) {
                    return Vec::new();
                }
                if c.deleted {
                    seen.remove(&name);
                } else {
                    seen.insert(name.clone(), now);
                }
                pods.list()
                    .iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                    .map(|p| ObjectKey::of(p.as_ref()))
                    .collect()
            },
        ),
        run(r, queue, ctx.settings.workers),
    ]
}
