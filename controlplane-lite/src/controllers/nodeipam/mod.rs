//! Node IPAM, as kube-controller-manager's range allocator: every Node gets a
//! `spec.podCIDR` (and `spec.podCIDRs`) carved out of the cluster CIDR, never one that
//! another Node holds. The table of taken ranges lives in memory and is rebuilt from the
//! Nodes at start, so ranges survive a control-plane restart; a deleted Node's range is
//! free again. A range a Node already has is honoured (and marked taken when it lies
//! inside the cluster CIDR). When the cluster CIDR is used up, the Node gets a
//! `CIDRNotAvailable` event and is looked at again later.

pub mod cidr_set;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue,
    itself, run, watch,
};
pub use cidr_set::{Cidr, CidrSet, CidrSetError};

/// The component events name, as upstream's allocator.
pub const COMPONENT: &str = "cidrAllocator";
/// How long a Node that found no free range waits before it looks again.
pub const EXHAUSTED_RETRY: Duration = Duration::from_secs(30);

/// `--cluster-cidr` and `--node-cidr-mask-size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIpamSettings {
    pub cluster_cidr: String,
    pub node_cidr_mask_size: u8,
}

impl Default for NodeIpamSettings {
    fn default() -> Self {
        NodeIpamSettings {
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
        }
    }
}

impl NodeIpamSettings {
    /// The empty table these settings describe, or why they describe none.
    pub fn table(&self) -> Result<CidrSet, String> {
        let cluster: Cidr = self
            .cluster_cidr
            .parse()
            .map_err(|e| format!("--cluster-cidr: {e}"))?;
        CidrSet::new(cluster, self.node_cidr_mask_size).map_err(|e| e.to_string())
    }
}

/// Starts the allocator when `ctx.settings.node_ipam` asks for it (the caches must be
/// synced: the table is rebuilt from them first).
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let Some(settings) = &ctx.settings.node_ipam else {
        return Vec::new();
    };
    let set = match settings.table() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "node IPAM not started");
            return Vec::new();
        }
    };
    let q = WorkQueue::new();
    let mut c = NodeIpam::new(ctx, set);
    c.waiting = Some(q.clone());
    c.rebuild();
    let c = Arc::new(c);
    vec![
        watch(&ctx.informers.nodes, q.clone(), itself),
        // One worker: allocations are decided under one lock anyway, and one worker keeps
        // a patch from racing the release of the same Node.
        run(c, q, 1),
    ]
}

struct Table {
    set: CidrSet,
    /// The range of each Node, as it has it or as it is being given.
    by_node: HashMap<String, Cidr>,
}

pub struct NodeIpam<C> {
    cluster: Arc<C>,
    nodes: Informer<Node>,
    table: Mutex<Table>,
    /// Where Nodes still waiting for a range are put again when one is freed.
    waiting: Option<WorkQueue<ObjectKey>>,
}

/// The range a Node holds: the first of `podCIDRs`, else `podCIDR`.
pub fn node_pod_cidr(node: &Node) -> Option<&str> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .as_ref()
        .and_then(|v| v.first())
        .or(spec.pod_cidr.as_ref())
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

impl<C: Cluster> NodeIpam<C> {
    pub fn new(ctx: &Ctx<C>, set: CidrSet) -> Self {
        NodeIpam {
            cluster: ctx.cluster.clone(),
            nodes: ctx.informers.nodes.clone(),
            table: Mutex::new(Table {
                set,
                by_node: HashMap::new(),
            }),
            waiting: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks every range the cached Nodes hold as taken.
    pub fn rebuild(&self) {
        for node in self.nodes.list() {
            let name = node.metadata.name.clone().unwrap_or_default();
            if let Some(c) = node_pod_cidr(&node).and_then(|s| s.parse::<Cidr>().ok()) {
                self.take(&name, c);
            }
        }
        let t = self.lock();
        tracing::info!(cluster_cidr = %t.set.cluster(), nodes = t.by_node.len(), free = %t.set.free(), "node IPAM table rebuilt");
    }

    /// Records that `node` holds `c`, freeing what it held before.
    fn take(&self, node: &str, c: Cidr) {
        let mut t = self.lock();
        if let Some(old) = t.by_node.insert(node.to_string(), c) {
            if old == c {
                return;
            }
            t.set.release(&old);
        }
        if !t.set.occupy(&c) {
            tracing::debug!(node, cidr = %c, "node range outside the cluster CIDR; left alone");
        }
    }

    fn release(&self, node: &str) {
        let mut t = self.lock();
        if let Some(c) = t.by_node.remove(node) {
            t.set.release(&c);
            tracing::info!(node, cidr = %c, "node range released");
        } else {
            return;
        }
        // A Node that found the cluster CIDR used up need not wait for its retry.
        if let Some(q) = &self.waiting {
            for n in self.nodes.list() {
                if node_pod_cidr(&n).is_none()
                    && let Some(name) = &n.metadata.name
                {
                    q.add(ObjectKey::new(None, name));
                }
            }
        }
    }
}

impl<C: Cluster> Reconciler for NodeIpam<C> {
    fn name(&self) -> &'static str {
        "node-ipam-controller"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(node) = self.nodes.get(None, &key.name) else {
            self.release(&key.name);
            return Ok(Requeue::Done);
        };
        if let Some(s) = node_pod_cidr(&node) {
            match s.parse::<Cidr>() {
                Ok(c) => self.take(&key.name, c),
                Err(e) => {
                    tracing::warn!(node = %key.name, error = %e, "node has an unreadable podCIDR; left alone")
                }
            }
            return Ok(Requeue::Done);
        }
        if node.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let cidr = {
            let mut t = self.lock();
            match t.by_node.get(&key.name).copied() {
                // Given before, and the patch did not land (or the cache is behind it).
                Some(c) => Some(c),
                None => {
                    let c = t.set.allocate();
                    if let Some(c) = c {
                        t.by_node.insert(key.name.clone(), c);
                    }
                    c
                }
            }
        };
        let Some(cidr) = cidr else {
            self.cluster.record(
                ObjectEvent::normal(
                    node.as_ref(),
                    "CIDRNotAvailable",
                    format!("Node {} status is now: CIDRNotAvailable", key.name),
                )
                .from(COMPONENT),
            );
            tracing::warn!(node = %key.name, "no free range left in the cluster CIDR");
            return Ok(Requeue::After(EXHAUSTED_RETRY));
        };
        let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        match self.cluster.patch::<Node>(None, &key.name, &patch).await {
            Ok(_) => {
                tracing::info!(node = %key.name, cidr = %cidr, "node range allocated");
                Ok(Requeue::Done)
            }
            Err(e) if e.is_not_found() => {
                self.release(&key.name);
                Ok(Requeue::Done)
            }
            Err(e) => Err(e.into()),
        }
    }
}
