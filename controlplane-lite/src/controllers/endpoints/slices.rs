//! The EndpointSlice controller: for every Service with a selector, slices of at most 100
//! endpoints per address type and port set, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
//! Service (so they go with it).
//!
//! Changes are made the way upstream makes them, to keep churn low: endpoints stay in
//! the slice they are in, new ones fill slices already being written before a slice is
//! created, and an unchanged slice is never rewritten. A Service with no endpoints keeps
//! one empty placeholder slice.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio::task::JoinHandle;

use super::{
    HEADLESS, Placements, TRIGGER_TIME, TriggerTimes, find_port, has_cluster_ip, hostname_for,
    is_ipv6, pod_ips, pod_ready, selected_pods, selector, services_of_pod, should_be_in_endpoints,
};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, ClusterError, Delete, Informer, ObjectKey, ReconcileError, Reconciler, Requeue,
    WorkQueue, itself, run, watch,
};

pub const COMPONENT: &str = "endpointslice-controller";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const MAX_ENDPOINTS: usize = 100;
const ZONE: &str = "topology.kubernetes.io/zone";
/// Pods on a Node the cache does not know yet are looked at again after this.
const MISSING_NODE_RETRY: Duration = Duration::from_secs(5);

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(SliceController::new(ctx));
    let q = WorkQueue::new();
    let services = ctx.informers.services.clone();
    let placements = c.placements.clone();
    vec![
        watch(&ctx.informers.services, q.clone(), itself),
        watch(&ctx.informers.pods, q.clone(), move |ch| {
            services_of_pod(&services, &placements, ch)
        }),
        watch(&ctx.informers.endpoint_slices, q.clone(), |ch| {
            let s = ch.obj.as_ref();
            let labels = s.metadata.labels.as_ref();
            match (
                labels.and_then(|l| l.get(SERVICE_NAME)),
                labels.and_then(|l| l.get(MANAGED_BY)),
            ) {
                (Some(svc), Some(by)) if by == CONTROLLER_NAME => {
                    vec![ObjectKey::new(s.metadata.namespace.as_deref(), svc)]
                }
                _ => Vec::new(),
            }
        }),
        run(c, q, ctx.settings.workers),
    ]
}

pub struct SliceController<C> {
    cluster: Arc<C>,
    services: Informer<Service>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    slices: Informer<EndpointSlice>,
    placements: Placements,
    triggers: TriggerTimes,
    /// At most this many endpoints in one slice.
    pub max_endpoints: usize,
}

/// The ports and address type a slice holds endpoints for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Meta {
    address_type: String,
    /// Sorted, as `(name, port, protocol, appProtocol)`.
    ports: Vec<(String, i32, String, Option<String>)>,
}

impl Meta {
    fn of_slice(s: &EndpointSlice) -> Meta {
        let mut ports: Vec<_> = s
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or(0),
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.app_protocol.clone(),
                )
            })
            .collect();
        ports.sort();
        Meta {
            address_type: s.address_type.clone(),
            ports,
        }
    }

    fn endpoint_ports(&self) -> Vec<EndpointPort> {
        self.ports
            .iter()
            .map(|(name, port, proto, app)| EndpointPort {
                name: Some(name.clone()),
                port: Some(*port),
                protocol: Some(proto.clone()),
                app_protocol: app.clone(),
            })
            .collect()
    }
}

/// How an endpoint is recognised across passes: its addresses and its pod.
fn endpoint_key(e: &Endpoint) -> (String, String) {
    (
        e.addresses.join(","),
        e.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

type Key = (String, String);

/// What one address type of one Service should be.
#[derive(Default)]
struct Plan {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
}

impl<C: Cluster> SliceController<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        SliceController {
            cluster: ctx.cluster.clone(),
            services: ctx.informers.services.clone(),
            pods: ctx.informers.pods.clone(),
            nodes: ctx.informers.nodes.clone(),
            slices: ctx.informers.endpoint_slices.clone(),
            placements: Placements::default(),
            triggers: TriggerTimes::default(),
            max_endpoints: MAX_ENDPOINTS,
        }
    }

    #[cfg(test)]
    pub(super) fn placements(&self) -> Placements {
        self.placements.clone()
    }

    /// Address types the Service serves: its IP families, else its cluster IP's, else
    /// (headless, no families) both.
    fn address_types(svc: &Service) -> BTreeSet<String> {
        let spec = svc.spec.as_ref();
        let mut out: BTreeSet<String> = spec
            .and_then(|s| s.ip_families.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some("IPv4".to_string()),
                "IPv6" => Some("IPv6".to_string()),
                _ => None,
            })
            .collect();
        if out.is_empty() {
            if has_cluster_ip(svc) {
                let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
                out.insert(if is_ipv6(ip) { "IPv6" } else { "IPv4" }.to_string());
            } else {
                out.insert("IPv4".into());
                out.insert("IPv6".into());
            }
        }
        out
    }

    fn labels(svc: &Service) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = svc
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != SERVICE_NAME && k != MANAGED_BY && k != HEADLESS)
            .collect();
        if !has_cluster_ip(svc) {
            l.insert(HEADLESS.into(), String::new());
        }
        l.insert(
            SERVICE_NAME.into(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        l.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
        l
    }

    fn new_slice(svc: &Service, meta: &Meta) -> EndpointSlice {
        let name = svc.metadata.name.clone().unwrap_or_default();
        EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                namespace: svc.metadata.namespace.clone(),
                labels: Some(Self::labels(svc)),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Service".into(),
                    name,
                    uid: svc.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            address_type: meta.address_type.clone(),
            endpoints: Vec::new(),
            ports: Some(meta.endpoint_ports()),
        }
    }

    /// The endpoint of a pod for one address type; `None` without an address of it.
    fn endpoint(&self, pod: &Pod, svc: &Service, address_type: &str) -> Option<Endpoint> {
        let v6 = address_type == "IPv6";
        let addresses: Vec<String> = pod_ips(pod)
            .into_iter()
            .filter(|ip| is_ipv6(ip) == v6)
            .take(1)
            .collect();
        if addresses.is_empty() {
            return None;
        }
        let serving = pod_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let publish = svc
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false);
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let zone = node_name
            .as_deref()
            .and_then(|n| self.nodes.get(None, n))
            .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE).cloned())
            .filter(|z| !z.is_empty());
        Some(Endpoint {
            addresses,
            conditions: Some(EndpointConditions {
                // Never ready while terminating, unless not-ready addresses are published.
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname_for(pod, svc),
            node_name,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
            zone,
            ..Default::default()
        })
    }

    /// The desired endpoints of an address type, grouped by port set.
    fn desired(
        &self,
        svc: &Service,
        pods: &[Arc<Pod>],
        address_type: &str,
        missing_node: &mut bool,
    ) -> BTreeMap<Meta, BTreeMap<Key, Endpoint>> {
        let spec = svc.spec.clone().unwrap_or_default();
        let publish = spec.publish_not_ready_addresses.unwrap_or(false);
        let headless_no_ports =
            spec.ports.as_ref().is_none_or(Vec::is_empty) && !has_cluster_ip(svc);
        let mut out: BTreeMap<Meta, BTreeMap<Key, Endpoint>> = BTreeMap::new();
        for pod in pods {
            if !should_be_in_endpoints(pod, true) {
                continue;
            }
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("");
            if !node.is_empty() && self.nodes.get(None, node).is_none() && !publish {
                // Left out until the Node is known (or the pod goes).
                *missing_node = true;
                continue;
            }
            let mut ports: Vec<(String, i32, String, Option<String>)> = Vec::new();
            if !headless_no_ports {
                for sp in spec.ports.iter().flatten() {
                    if let Some(n) = find_port(pod, sp) {
                        ports.push((
                            sp.name.clone().unwrap_or_default(),
                            n,
                            sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                            sp.app_protocol.clone(),
                        ));
                    }
                }
            }
            ports.sort();
            let Some(ep) = self.endpoint(pod, svc, address_type) else {
                continue;
            };
            out.entry(Meta {
                address_type: address_type.to_string(),
                ports,
            })
            .or_default()
            .insert(endpoint_key(&ep), ep);
        }
        out
    }

    /// The changes for one address type, keeping endpoints where they are.
    fn plan(
        &self,
        svc: &Service,
        existing: Vec<EndpointSlice>,
        mut desired: BTreeMap<Meta, BTreeMap<Key, Endpoint>>,
        address_type: &str,
    ) -> Plan {
        let mut plan = Plan::default();
        let labels = Self::labels(svc);
        let existing_count = existing.len();
        let mut by_meta: BTreeMap<Meta, Vec<EndpointSlice>> = BTreeMap::new();
        for s in existing {
            by_meta.entry(Meta::of_slice(&s)).or_default().push(s);
        }
        for (meta, slices) in by_meta.iter() {
            if !desired.contains_key(meta) {
                plan.delete.extend(slices.iter().cloned());
            }
        }
        for (meta, mut want) in std::mem::take(&mut desired) {
            let slices = by_meta.remove(&meta).unwrap_or_default();
            let mut updating: Vec<EndpointSlice> = Vec::new();
            let mut unchanged: Vec<EndpointSlice> = Vec::new();
            // 1. Keep what is still wanted where it is, refreshed.
            for s in slices {
                let mut kept = Vec::with_capacity(s.endpoints.len());
                let mut changed = false;
                for e in &s.endpoints {
                    if let Some(new) = want.remove(&endpoint_key(e)) {
                        if &new != e {
                            changed = true;
                        }
                        kept.push(new);
                    }
                }
                let removed = kept.len() != s.endpoints.len();
                let relabel = s.metadata.labels.as_ref() != Some(&labels);
                if (changed || removed) && kept.is_empty() {
                    plan.delete.push(s);
                } else if changed || removed || relabel {
                    let mut s = s;
                    s.endpoints = kept;
                    s.metadata.labels = Some(labels.clone());
                    updating.push(s);
                } else {
                    unchanged.push(s);
                }
            }
            let mut rest = want.into_values();
            let mut next = rest.next();
            // 2. Fill the slices being written anyway, fullest first.
            updating.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
            for s in updating.iter_mut() {
                while s.endpoints.len() < self.max_endpoints
                    && let Some(e) = next.take()
                {
                    s.endpoints.push(e);
                    next = rest.next();
                }
            }
            // 3. What is left: into the unchanged slice it fits best, else new slices.
            let mut left: Vec<Endpoint> = next.into_iter().chain(rest).collect();
            while !left.is_empty() {
                let fit = if left.len() < self.max_endpoints {
                    unchanged
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.endpoints.len() + left.len() <= self.max_endpoints)
                        .min_by_key(|(_, s)| self.max_endpoints - (s.endpoints.len() + left.len()))
                        .map(|(i, _)| i)
                } else {
                    None
                };
                let mut slice = match fit {
                    Some(i) => unchanged.remove(i),
                    None => Self::new_slice(svc, &meta),
                };
                let room = self
                    .max_endpoints
                    .saturating_sub(slice.endpoints.len())
                    .max(1);
                let take = room.min(left.len());
                slice.endpoints.extend(left.drain(..take));
                if slice.metadata.name.is_some() {
                    updating.push(slice);
                } else {
                    plan.create.push(slice);
                }
            }
            plan.update.extend(updating);
        }
        // A Service with nothing to show keeps one empty slice.
        if existing_count == plan.delete.len() && plan.create.is_empty() {
            let placeholder = Self::new_slice(
                svc,
                &Meta {
                    address_type: address_type.to_string(),
                    ports: Vec::new(),
                },
            );
            let same = plan.delete.len() == 1
                && plan.delete[0].endpoints.is_empty()
                && plan.delete[0].ports.as_ref().is_none_or(Vec::is_empty)
                && plan.delete[0].metadata.labels.as_ref() == Some(&labels);
            if same {
                plan.delete.clear();
            } else {
                plan.create.push(placeholder);
            }
        }
        plan
    }

    async fn apply(
        &self,
        svc: &Service,
        mut plan: Plan,
        trigger: Option<Timestamp>,
    ) -> Result<(), ClusterError> {
        // Reuse slices about to be deleted instead of creating new ones.
        let uid = svc.metadata.uid.as_deref();
        let mut i = 0;
        while i < plan.delete.len() && !plan.create.is_empty() {
            let owned = plan.delete[i]
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid);
            let same_type = plan
                .create
                .last()
                .is_some_and(|c| c.address_type == plan.delete[i].address_type);
            if owned
                && same_type
                && let Some(mut s) = plan.create.pop()
            {
                let old = plan.delete.remove(i);
                s.metadata = ObjectMeta {
                    labels: s.metadata.labels,
                    ..old.metadata
                };
                plan.update.push(s);
            } else {
                i += 1;
            }
        }
        let stamp = |s: &mut EndpointSlice| {
            let a = s.metadata.annotations.get_or_insert_with(Default::default);
            match trigger {
                Some(t) => {
                    a.insert(TRIGGER_TIME.into(), t.to_string());
                }
                None => {
                    a.remove(TRIGGER_TIME);
                }
            }
            if a.is_empty() {
                s.metadata.annotations = None;
            }
        };
        if svc.metadata.deletion_timestamp.is_none() {
            for mut s in plan.create {
                stamp(&mut s);
                self.cluster.create(&s).await?;
            }
        }
        for mut s in plan.update {
            stamp(&mut s);
            self.cluster.replace(&s).await?;
        }
        for s in plan.delete {
            let name = s.metadata.name.clone().unwrap_or_default();
            match self
                .cluster
                .delete::<EndpointSlice>(s.metadata.namespace.as_deref(), &name, &Delete::default())
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn existing(&self, svc: &Service) -> Vec<EndpointSlice> {
        let name = svc.metadata.name.as_deref();
        self.slices
            .list()
            .into_iter()
            .filter(|s| s.metadata.namespace == svc.metadata.namespace)
            .filter(|s| {
                let l = s.metadata.labels.as_ref();
                l.and_then(|l| l.get(SERVICE_NAME)).map(String::as_str) == name
                    && l.and_then(|l| l.get(MANAGED_BY)).map(String::as_str)
                        == Some(CONTROLLER_NAME)
            })
            .map(|s| (*s).clone())
            .collect()
    }
}

impl<C: Cluster> Reconciler for SliceController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(svc) = self.services.get(key.namespace.as_deref(), &key.name) else {
            // Its slices go with it (they are owned by it).
            self.placements.forget(key);
            self.triggers.forget(key);
            return Ok(Requeue::Done);
        };
        let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        if external || selector(&svc).is_none() {
            self.placements.forget(key);
            return Ok(Requeue::Done);
        }
        let pods = selected_pods(&self.pods, &svc);
        self.placements.set(key, &pods);
        let trigger = self.triggers.compute(key, &svc, &pods);
        let types = Self::address_types(&svc);
        let mut by_type: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
        let mut plan = Plan::default();
        for s in self.existing(&svc) {
            if types.contains(&s.address_type) {
                by_type.entry(s.address_type.clone()).or_default().push(s);
            } else {
                plan.delete.push(s);
            }
        }
        let mut missing_node = false;
        for t in &types {
            let desired = self.desired(&svc, &pods, t, &mut missing_node);
            let p = self.plan(&svc, by_type.remove(t).unwrap_or_default(), desired, t);
            plan.create.extend(p.create);
            plan.update.extend(p.update);
            plan.delete.extend(p.delete);
        }
        let seen: HashSet<String> = plan
            .update
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        plan.delete
            .retain(|s| s.metadata.name.as_ref().is_none_or(|n| !seen.contains(n)));
        self.apply(&svc, plan, trigger).await?;
        Ok(if missing_node {
            Requeue::After(MISSING_NODE_RETRY)
        } else {
            Requeue::Done
        })
    }
}
