//! The node lifecycle controller: a node whose Lease (and Ready heartbeat) stops changing
//! for the grace period goes Unknown; conditions become taints (NoSchedule for the
//! scheduler, NoExecute for the taint eviction controller, rate-limited per zone); pods on a
//! node whose kubelet is gone are marked not ready, so Services stop sending them traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use super::health::{Liveness, unknown_conditions};
use super::taints::{
    NO_EXECUTE, NOT_READY, UNREACHABLE, condition_status, has_taint, reconcile_taints,
    wanted_no_execute, wanted_no_schedule,
};
use super::zones::{Bucket, ZoneState, census, rate_for, zone_of, zone_state};
use crate::controllers::context::{Ctx, Settings};
use crate::controllers::runtime::{
    Cluster, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue,
};

pub const COMPONENT: &str = "node-controller";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How soon to look again at a node waiting for an eviction token that may never come
/// (a zone whose rate is zero), in case the zone recovers.
const ZERO_RATE_RETRY: Duration = Duration::from_secs(5);
/// Looking a little after a deadline, not a little before it.
const MARGIN: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Disruption {
    /// Every zone fully disrupted: no NoExecute taints anywhere.
    all_down: bool,
    buckets: HashMap<String, Bucket>,
}

pub struct NodeLifecycle<C> {
    cluster: Arc<C>,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    settings: Settings,
    liveness: Liveness,
    disruption: Mutex<Disruption>,
    queue: WorkQueue<ObjectKey>,
}

fn now_time() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn is_ready(node: &Node) -> bool {
    condition_status(node, "Ready") == Some("True")
}

/// A node whose kubelet is gone: its pods' readiness is stale. (A kubelet that reports its
/// node not ready still keeps its pods' conditions itself.)
pub fn kubelet_gone(node: &Node) -> bool {
    condition_status(node, "Ready") == Some("Unknown")
}

impl<C: Cluster> NodeLifecycle<C> {
    pub fn new(ctx: &Ctx<C>, queue: WorkQueue<ObjectKey>) -> Self {
        NodeLifecycle {
            cluster: ctx.cluster.clone(),
            nodes: ctx.informers.nodes.clone(),
            leases: ctx.informers.leases.clone(),
            pods: ctx.informers.pods.clone(),
            settings: ctx.settings.clone(),
            liveness: Liveness::default(),
            disruption: Mutex::default(),
            queue,
        }
    }

    /// Which NoExecute taint the node gets now, and how soon to look again when the zone's
    /// eviction rate holds it back.
    fn no_execute(&self, node: &Node, now: Instant) -> (Vec<&'static str>, Option<Duration>) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let cached = self.nodes.list();
        let others = cached
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(name))
            .map(|n| n.as_ref());
        let zones = census(others.chain(std::iter::once(node)), is_ready);
        let all_down = !zones.is_empty()
            && zones
                .values()
                .all(|(r, n)| zone_state(*r, *n) == ZoneState::FullDisruption);
        let mut d = self.disruption.lock().unwrap_or_else(|p| p.into_inner());
        if all_down != d.all_down {
            d.all_down = all_down;
            if all_down {
                tracing::info!(
                    "every node is not ready; entering full disruption mode: no evictions"
                );
            } else {
                tracing::info!("some nodes are ready again; leaving full disruption mode");
                // Whatever the nodes said while the control plane could not hear them, they
                // get a fresh grace period.
                self.liveness.reset_all(now);
                d.buckets.clear();
            }
            for n in &cached {
                self.queue.add(ObjectKey::of(n.as_ref()));
            }
        }
        if all_down {
            return (Vec::new(), None);
        }
        let Some(want) = wanted_no_execute(node) else {
            return (Vec::new(), None);
        };
        let opposite = if want == NOT_READY {
            UNREACHABLE
        } else {
            NOT_READY
        };
        // Already evicting: keep it, or swap at once between the two kinds.
        if has_taint(node, want, NO_EXECUTE) || has_taint(node, opposite, NO_EXECUTE) {
            return (vec![want], None);
        }
        let zone = zone_of(node);
        let (ready, not_ready) = zones.get(&zone).copied().unwrap_or((0, 1));
        let rate = rate_for(
            zone_state(ready, not_ready),
            ready + not_ready,
            self.settings.node_eviction_rate,
            self.settings.secondary_node_eviction_rate,
        );
        let bucket = d
            .buckets
            .entry(zone)
            .or_insert_with(|| Bucket::new(rate, now));
        if bucket.rate() != rate {
            *bucket = Bucket::new(rate, now);
        }
        match bucket.take(now) {
            Ok(()) => (vec![want], None),
            Err(wait) => (Vec::new(), Some(wait.unwrap_or(ZERO_RATE_RETRY))),
        }
    }

    /// Sets the Ready condition of the node's pods to False, as a kubelet would if it could.
    async fn mark_pods_not_ready(&self, node: &str) -> Result<(), ReconcileError> {
        let now = now_time();
        for pod in self.pods.list() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let Some(conditions) = pod.status.as_ref().and_then(|s| s.conditions.as_ref()) else {
                continue;
            };
            if !conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status != "False")
            {
                continue;
            }
            let mut new = (*pod).clone();
            if let Some(c) = new
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
            {
                c.status = "False".into();
                c.last_transition_time = Some(now.clone());
            }
            match self.cluster.replace_status(&new).await {
                Ok(_) => {
                    self.cluster.record(
                        ObjectEvent::warning(pod.as_ref(), "NodeNotReady", "Node is not ready")
                            .from(COMPONENT),
                    );
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl<C: Cluster> Reconciler for NodeLifecycle<C> {
    fn name(&self) -> &'static str {
        "node-lifecycle-controller"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(cached) = self.nodes.get(None, &key.name) else {
            self.liveness.forget(&key.name);
            return Ok(Requeue::Done);
        };
        let now = Instant::now();
        if !self.liveness.knows(&key.name) {
            self.cluster.record(
                ObjectEvent::normal(
                    cached.as_ref(),
                    "RegisteredNode",
                    format!(
                        "Node {0} event: Registered Node {0} in Controller",
                        key.name
                    ),
                )
                .from(COMPONENT),
            );
        }
        let lease = self.leases.get(Some(LEASE_NAMESPACE), &key.name);
        let left = self.liveness.check(
            &cached,
            lease.as_deref(),
            self.settings.node_monitor_grace,
            now,
        );
        let mut node = (*cached).clone();
        if left.is_none()
            && let Some(conditions) = unknown_conditions(&node, &now_time())
        {
            let was_ready = is_ready(&node);
            node.status.get_or_insert_with(Default::default).conditions = Some(conditions);
            node = self.cluster.replace_status(&node).await?;
            tracing::info!(node = %key.name, "node stopped posting status; now Unknown");
            if was_ready {
                self.cluster.record(
                    ObjectEvent::normal(
                        &node,
                        "NodeNotReady",
                        format!("Node {} status is now: NodeNotReady", key.name),
                    )
                    .from(COMPONENT),
                );
            }
        }

        let no_schedule = wanted_no_schedule(&node);
        let (no_execute, wait) = self.no_execute(&node, now);
        if let Some(taints) = reconcile_taints(&node, &no_schedule, &no_execute, &now_time()) {
            node.spec.get_or_insert_with(Default::default).taints = Some(taints);
            node = self.cluster.replace(&node).await?;
        }
        if kubelet_gone(&node) {
            self.mark_pods_not_ready(&key.name).await?;
        }
        let again = [left.map(|l| l + MARGIN), wait].into_iter().flatten().min();
        Ok(again.map_or(Requeue::Done, Requeue::After))
    }
}
