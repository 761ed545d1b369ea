//! The Endpoints controller: the core/v1 Endpoints object of every Service with a
//! selector, named after it — ready pods under `addresses`, the others under
//! `notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`), grouped
//! into subsets by the ports they serve, at most 1000 addresses
//! (`endpoints.kubernetes.io/over-capacity: truncated` beyond). Written only when it
//! changed; removed with its Service.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::task::JoinHandle;

use super::{
    HEADLESS, Placements, TRIGGER_TIME, TriggerTimes, find_port, has_cluster_ip, hostname_for,
    is_ipv6, pod_ips, pod_ready, selected_pods, selector, services_of_pod, should_be_in_endpoints,
};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Delete, Informer, ObjectKey, ReconcileError, Reconciler, Requeue, WorkQueue, itself,
    run, watch,
};

pub const COMPONENT: &str = "endpoint-controller";
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const MAX_ADDRESSES: usize = 1000;

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let c = Arc::new(EndpointsController::new(ctx));
    let q = WorkQueue::new();
    let services = ctx.informers.services.clone();
    let placements = c.placements.clone();
    vec![
        watch(&ctx.informers.services, q.clone(), itself),
        watch(&ctx.informers.pods, q.clone(), move |ch| {
            services_of_pod(&services, &placements, ch)
        }),
        // A deleted Endpoints object of a selecting Service is made again.
        watch(&ctx.informers.endpoints, q.clone(), |ch| {
            if ch.deleted { itself(ch) } else { Vec::new() }
        }),
        run(c, q, ctx.settings.workers),
    ]
}

pub struct EndpointsController<C> {
    cluster: Arc<C>,
    services: Informer<Service>,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
    placements: Placements,
    triggers: TriggerTimes,
}

/// Port of a subset, sortable: `(name, port, protocol, appProtocol)`.
type PortKey = (String, i32, String, Option<String>);

fn port_of(k: &PortKey) -> EndpointPort {
    EndpointPort {
        name: Some(k.0.clone()).filter(|n| !n.is_empty()),
        port: k.1,
        protocol: Some(k.2.clone()),
        app_protocol: k.3.clone(),
    }
}

/// An address, recognised by its IP and its pod.
type AddressKey = (String, String);
/// The addresses a port reaches, with their readiness.
type Reached = BTreeMap<AddressKey, (EndpointAddress, bool)>;

fn address_key(a: &EndpointAddress) -> AddressKey {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// The canonical layout: each distinct set of (address, ready) pairs with every port
/// that reaches exactly it, addresses and ports sorted.
fn repack(entries: Vec<(EndpointAddress, bool, Option<PortKey>)>) -> Vec<EndpointSubset> {
    // Port (None: a headless Service without ports) → its addresses.
    let mut by_port: BTreeMap<Option<PortKey>, Reached> = BTreeMap::new();
    for (addr, ready, port) in entries {
        by_port
            .entry(port)
            .or_default()
            .insert(address_key(&addr), (addr, ready));
    }
    // Address set → the ports that reach it.
    type Group = (Vec<PortKey>, Vec<(EndpointAddress, bool)>);
    let mut by_set: BTreeMap<Vec<(AddressKey, bool)>, Group> = BTreeMap::new();
    for (port, addrs) in by_port {
        let set: Vec<(AddressKey, bool)> =
            addrs.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let entry = by_set
            .entry(set)
            .or_insert_with(|| (Vec::new(), addrs.into_values().collect()));
        entry.0.extend(port);
    }
    by_set
        .into_values()
        .map(|(ports, addrs)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|(_, r)| *r);
            let list = |v: Vec<(EndpointAddress, bool)>| {
                Some(v.into_iter().map(|(a, _)| a).collect::<Vec<_>>()).filter(|v| !v.is_empty())
            };
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: Some(ports.iter().map(port_of).collect::<Vec<_>>())
                    .filter(|p| !p.is_empty()),
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Cuts the subsets down to [`MAX_ADDRESSES`], each keeping its share: not-ready
/// addresses go first; if ready ones alone are too many, only ready ones are kept.
/// Returns whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_ADDRESSES {
        return false;
    }
    let cut_ready = ready > MAX_ADDRESSES;
    let (max, total) = if cut_ready {
        (MAX_ADDRESSES, ready)
    } else {
        (MAX_ADDRESSES - ready, not_ready)
    };
    let mut room = max;
    for s in subsets.iter_mut() {
        let list = if cut_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = list.as_ref().map_or(0, Vec::len);
        let share = (n * max).div_ceil(total.max(1)).min(room);
        if let Some(l) = list.as_mut() {
            l.truncate(share);
        }
        room -= share.min(n);
        if cut_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

impl<C: Cluster> EndpointsController<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        EndpointsController {
            cluster: ctx.cluster.clone(),
            services: ctx.informers.services.clone(),
            pods: ctx.informers.pods.clone(),
            endpoints: ctx.informers.endpoints.clone(),
            placements: Placements::default(),
            triggers: TriggerTimes::default(),
        }
    }

    /// The address of a pod in the Service's IP family.
    fn address(pod: &Pod, svc: &Service) -> Option<EndpointAddress> {
        let spec = svc.spec.as_ref();
        let family = spec
            .and_then(|s| s.ip_families.as_ref())
            .and_then(|f| f.first().cloned())
            .or_else(|| {
                let ip = spec
                    .and_then(|s| s.cluster_ip.as_deref())
                    .filter(|_| has_cluster_ip(svc))?;
                Some(if is_ipv6(ip) { "IPv6" } else { "IPv4" }.to_string())
            });
        let ips = pod_ips(pod);
        let ip = match family.as_deref() {
            Some("IPv6") => ips.into_iter().find(|i| is_ipv6(i)),
            Some(_) => ips.into_iter().find(|i| !is_ipv6(i)),
            None => ips.into_iter().next(),
        }?;
        Some(EndpointAddress {
            ip,
            hostname: hostname_for(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        })
    }

    fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
        let spec = svc.spec.clone().unwrap_or_default();
        let publish = spec.publish_not_ready_addresses.unwrap_or(false);
        let ports = spec.ports.unwrap_or_default();
        let mut entries = Vec::new();
        for pod in pods {
            if !should_be_in_endpoints(pod, publish) {
                continue;
            }
            let Some(addr) = Self::address(pod, svc) else {
                continue;
            };
            let ready = publish || pod_ready(pod);
            if ports.is_empty() {
                // A headless Service may have no ports.
                if !has_cluster_ip(svc) {
                    entries.push((addr, ready, None));
                }
                continue;
            }
            for sp in &ports {
                if let Some(n) = find_port(pod, sp) {
                    let key = (
                        sp.name.clone().unwrap_or_default(),
                        n,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        sp.app_protocol.clone(),
                    );
                    entries.push((addr.clone(), ready, Some(key)));
                }
            }
        }
        repack(entries)
    }

    fn labels(svc: &Service) -> Option<BTreeMap<String, String>> {
        let mut l = svc.metadata.labels.clone().unwrap_or_default();
        if has_cluster_ip(svc) {
            l.remove(HEADLESS);
        } else {
            l.insert(HEADLESS.into(), String::new());
        }
        Some(l).filter(|l| !l.is_empty())
    }

    async fn write(
        &self,
        svc: &Service,
        current: Option<Arc<Endpoints>>,
        subsets: Vec<EndpointSubset>,
        trigger: Option<Timestamp>,
    ) -> Result<(), ReconcileError> {
        let mut subsets = subsets;
        let truncated = truncate(&mut subsets);
        let labels = Self::labels(svc);
        if let Some(cur) = &current {
            let same_subsets = cur.subsets.as_deref().unwrap_or(&[]) == subsets.as_slice();
            let cur_truncated = cur
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get(OVER_CAPACITY).is_some_and(|v| v == "truncated"));
            if same_subsets && cur.metadata.labels == labels && cur_truncated == truncated {
                return Ok(());
            }
        }
        let mut meta = current
            .as_ref()
            .map(|c| c.metadata.clone())
            .unwrap_or_else(|| ObjectMeta {
                name: svc.metadata.name.clone(),
                namespace: svc.metadata.namespace.clone(),
                ..Default::default()
            });
        meta.labels = labels;
        let a = meta.annotations.get_or_insert_with(Default::default);
        match trigger {
            Some(t) => {
                a.insert(TRIGGER_TIME.into(), t.to_string());
            }
            None => {
                a.remove(TRIGGER_TIME);
            }
        }
        if truncated {
            a.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            a.remove(OVER_CAPACITY);
        }
        if a.is_empty() {
            meta.annotations = None;
        }
        let ep = Endpoints {
            metadata: meta,
            subsets: Some(subsets).filter(|s| !s.is_empty()),
        };
        if current.is_some() {
            self.cluster.replace(&ep).await?;
        } else {
            self.cluster.create(&ep).await?;
        }
        Ok(())
    }
}

impl<C: Cluster> Reconciler for EndpointsController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let ns = key.namespace.as_deref();
        let current = self.endpoints.get(ns, &key.name);
        let Some(svc) = self.services.get(ns, &key.name) else {
            self.placements.forget(key);
            self.triggers.forget(key);
            if current.is_some() {
                match self
                    .cluster
                    .delete::<Endpoints>(ns, &key.name, &Delete::default())
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Requeue::Done);
        };
        if selector(&svc).is_none() {
            self.placements.forget(key);
            return Ok(Requeue::Done);
        }
        let pods = selected_pods(&self.pods, &svc);
        self.placements.set(key, &pods);
        let trigger = self.triggers.compute(key, &svc, &pods);
        let subsets = Self::subsets(&svc, &pods);
        self.write(&svc, current, subsets, trigger).await?;
        Ok(Requeue::Done)
    }
}
