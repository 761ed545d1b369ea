//! The agent's loop: set the node up (the VXLAN device, its annotations), then watch the
//! Nodes and keep the kernel's routes, neighbour and forwarding entries as the plan says,
//! on every change of a node's part in the network and on a periodic resync (which also
//! puts back what someone removed).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::ip::{self, Failure};
use super::plan::{self, Changes, Skipped};
use super::{
    ANNOTATION_PUBLIC_IP, ANNOTATION_VXLAN_MAC, Mode, NetError, NodeNet, VXLAN_DEVICE, hostgw,
    vxlan,
};

/// What one pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: Changes,
    pub skipped: Vec<Skipped>,
    pub failures: Vec<Failure>,
}

/// Prepares this node: for VXLAN the device (returning its MAC); for host-gw, a VXLAN
/// device left from an earlier mode goes. Forwarding is turned on either way: pods' packets
/// to other nodes pass through this node.
pub fn setup(mode: Mode, local: Ipv4Addr, pod_cidr: Ipv4Net) -> Result<Option<String>, NetError> {
    if mode == Mode::None {
        return Ok(None);
    }
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| NetError::Setup(format!("turning on IPv4 forwarding: {e}")))?;
    match mode {
        Mode::Vxlan => vxlan::ensure(local, pod_cidr).map(Some),
        _ => vxlan::remove().map(|()| None),
    }
}

/// One pass: the plan for `me` from `nodes`, against what the kernel has.
pub fn reconcile(mode: Mode, me: &str, nodes: &[NodeNet]) -> Result<Outcome, NetError> {
    let (want, skipped) = plan::desired(mode, me, nodes);
    let have = ip::read()?;
    let changes = plan::diff(&want, &have);
    let failures = if changes.is_empty() {
        Vec::new()
    } else {
        ip::apply(&changes)?
    };
    Ok(Outcome {
        changes,
        skipped,
        failures,
    })
}

/// Waits (at most `timeout`) for the control plane to give node `name` a pod range.
pub async fn wait_for_pod_cidr(
    client: kube::Client,
    name: &str,
    timeout: Duration,
) -> Result<Ipv4Net, NetError> {
    let api: Api<Node> = Api::all(client);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut told = false;
    loop {
        match api.get_opt(name).await {
            Ok(Some(n)) => {
                if let Some(c) = super::node::pod_cidr(&n) {
                    tracing::info!(node = name, pod_cidr = %c, "node has its pod range");
                    return Ok(c);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "reading the node"),
        }
        if !told && !timeout.is_zero() {
            tracing::info!(
                node = name,
                "waiting for the node's spec.podCIDR from the control plane's node IPAM"
            );
            told = true;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NetError::Setup(format!(
                "node {name} got no spec.podCIDR within {timeout:?}: the control plane allocates ranges with --allocate-node-cidrs (on by default; see its log for CIDRNotAvailable), or give the agent --pod-cidr"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The pod network of one node.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    pub mode: Mode,
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
    /// How often the kernel is checked against the plan without a change of the nodes.
    pub resync: Duration,
}

impl PodNetwork {
    /// Sets the node up, publishes its annotations, and runs the loop.
    pub async fn start(
        self,
        client: kube::Client,
    ) -> Result<tokio::task::JoinHandle<()>, NetError> {
        let (mode, ip, cidr) = (self.mode, self.node_ip, self.pod_cidr);
        let mac = tokio::task::spawn_blocking(move || setup(mode, ip, cidr))
            .await
            .map_err(|e| NetError::Setup(format!("setting up the pod network: {e}")))??;
        let mut annotations = json!({ ANNOTATION_PUBLIC_IP: self.node_ip.to_string() });
        if let Some(mac) = &mac {
            annotations[ANNOTATION_VXLAN_MAC] = json!(mac);
            tracing::info!(device = VXLAN_DEVICE, %mac, local = %self.node_ip, "VXLAN device ready");
        }
        let api: Api<Node> = Api::all(client.clone());
        api.patch(
            &self.node_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .map_err(|e| {
            NetError::Setup(format!(
                "publishing the node's pod network annotations: {e}"
            ))
        })?;
        Ok(tokio::spawn(self.run(api)))
    }

    async fn run(self, api: Api<Node>) {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut listing: BTreeMap<String, Node> = BTreeMap::new();
        let mut listed = false;
        let mut last: Option<Vec<NodeNet>> = None;
        let mut reported: BTreeSet<String> = BTreeSet::new();
        let mut tick = tokio::time::interval(self.resync);
        loop {
            let resync = tokio::select! {
                ev = events.next() => {
                    match ev {
                        Some(Ok(watcher::Event::Init)) => listing.clear(),
                        Some(Ok(watcher::Event::InitApply(n))) => {
                            listing.insert(n.metadata.name.clone().unwrap_or_default(), n);
                        }
                        Some(Ok(watcher::Event::InitDone)) => {
                            nodes = std::mem::take(&mut listing);
                            listed = true;
                        }
                        Some(Ok(watcher::Event::Apply(n))) => {
                            nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                        }
                        Some(Ok(watcher::Event::Delete(n))) => {
                            nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                        }
                        Some(Err(e)) => tracing::debug!(error = %e, "watching nodes"),
                        None => return,
                    }
                    false
                }
                _ = tick.tick() => true,
            };
            if !listed {
                continue;
            }
            let mut nets: Vec<NodeNet> = nodes.values().filter_map(NodeNet::of).collect();
            nets.sort_by(|a, b| a.name.cmp(&b.name));
            // Heartbeats change Nodes all the time; only a change of the network's view of
            // them (or the resync) sends anything to the kernel.
            if !resync && last.as_ref() == Some(&nets) {
                continue;
            }
            last = Some(nets.clone());
            let (mode, me) = (self.mode, self.node_name.clone());
            let pass = nets.clone();
            let outcome =
                match tokio::task::spawn_blocking(move || reconcile(mode, &me, &pass)).await {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "pod network sync failed");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pod network sync panicked");
                        continue;
                    }
                };
            if !outcome.changes.is_empty() {
                let c = &outcome.changes;
                tracing::info!(
                    routes_added = c.add_routes.len(),
                    routes_removed = c.del_routes.len(),
                    neighbours_added = c.add_neighbours.len(),
                    neighbours_removed = c.del_neighbours.len(),
                    fdb_added = c.add_fdb.len(),
                    fdb_removed = c.del_fdb.len(),
                    "pod network routes updated"
                );
            }
            // Each problem is told once, until it goes away and comes back.
            let mut now = BTreeSet::new();
            for s in &outcome.skipped {
                now.insert(format!(
                    "node {} left out of the pod network: {}",
                    s.node, s.reason
                ));
            }
            for f in &outcome.failures {
                let msg = match (&f.route, self.mode) {
                    (Some(r), Mode::HostGw) => {
                        let node = nets
                            .iter()
                            .find(|n| n.pod_cidr == r.dst)
                            .map_or("?", |n| n.name.as_str());
                        hostgw::explain(node, r, &f.error)
                    }
                    _ => format!("`{}`: {}", f.command, f.error),
                };
                now.insert(msg);
            }
            for msg in now.difference(&reported) {
                tracing::warn!("{msg}");
            }
            reported = now;
        }
    }
}
