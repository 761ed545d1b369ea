//! Service endpoints: the EndpointSlice controller ([`slices`]) and the legacy Endpoints
//! controller ([`legacy`]), both deriving from the pods a Service selects which addresses
//! and ports serve it. Services without a selector are left to their users.
//!
//! What both share lives here: which pods belong in endpoints, how a Service's target
//! port resolves on a pod (named ports looked up per pod), when hostnames are published,
//! the `endpoints.kubernetes.io/last-change-trigger-time` bookkeeping, and the map from
//! pod changes to the Services to look at again.

pub mod legacy;
pub mod slices;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::task::JoinHandle;

use crate::controllers::context::Ctx;
use crate::controllers::runtime::{Change, Cluster, Informer, ObjectKey};

pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// Starts the EndpointSlice and Endpoints controllers.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let mut tasks = slices::start(ctx);
    tasks.extend(legacy::start(ctx));
    tasks
}

/// The Service's selector; `None` (left alone) when it has none.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

fn labels_match(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of the Service's namespace its selector matches.
pub fn selected_pods(pods: &Informer<Pod>, svc: &Service) -> Vec<Arc<Pod>> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    let mut out: Vec<Arc<Pod>> = pods
        .list()
        .into_iter()
        .filter(|p| p.metadata.namespace == svc.metadata.namespace && labels_match(sel, p))
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod's addresses: `status.podIPs`, else `status.podIP`.
pub fn pod_ips(p: &Pod) -> Vec<String> {
    let Some(s) = p.status.as_ref() else {
        return Vec::new();
    };
    let ips: Vec<String> = s
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .filter(|i| !i.is_empty())
        .collect();
    if !ips.is_empty() {
        return ips;
    }
    s.pod_ip.iter().filter(|i| !i.is_empty()).cloned().collect()
}

pub fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// Whether the pod has a place in endpoints at all: not finished, with an address, and
/// (unless terminating pods are included) not being deleted.
pub fn should_be_in_endpoints(p: &Pod, include_terminating: bool) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if pod_ips(p).is_empty() {
        return false;
    }
    include_terminating || p.metadata.deletion_timestamp.is_none()
}

/// The port a Service port reaches on this pod: a number as is, a name looked up among
/// the pod's container ports (and its sidecars') with the same protocol.
pub fn find_port(p: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = p.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|cp| cp.container_port)
        }
    }
}

/// A pod's hostname is published when its subdomain is the Service's name.
pub fn hostname_for(p: &Pod, svc: &Service) -> Option<String> {
    let spec = p.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && p.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

/// A Service with a cluster IP (not headless).
pub fn has_cluster_ip(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The last change that led to an endpoints update, per Service: the earliest of the
/// changes (a pod's Ready transition, the Service's creation) seen since the last sync.
#[derive(Default)]
pub struct TriggerTimes {
    state: Mutex<HashMap<ObjectKey, Seen>>,
}

/// The Service's creation and its pods' Ready transitions, as last seen.
type Seen = (Option<Timestamp>, HashMap<String, Timestamp>);

impl TriggerTimes {
    pub fn compute(&self, key: &ObjectKey, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last_svc, last_pods) = state.entry(key.clone()).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut min = |t: Timestamp| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        let mut now_pods = HashMap::new();
        for p in pods {
            let t = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0);
            let (Some(t), Some(name)) = (t, p.metadata.name.clone()) else {
                continue;
            };
            if last_pods.get(&name).is_none_or(|old| t > *old) {
                min(t);
            }
            now_pods.insert(name, t);
        }
        let svc_time = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = svc_time
            && last_svc.is_none_or(|old| t > old)
        {
            min(t);
        }
        *last_pods = now_pods;
        *last_svc = svc_time;
        earliest
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Which pods each Service's endpoints were last made from, so that a pod that stops
/// matching (or goes) wakes the Services it was in.
#[derive(Default, Clone)]
pub struct Placements(Arc<Mutex<HashMap<ObjectKey, HashSet<String>>>>);

impl Placements {
    pub fn set(&self, svc: &ObjectKey, pods: &[Arc<Pod>]) {
        let names = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(svc.clone(), names);
    }

    pub fn forget(&self, svc: &ObjectKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(svc);
    }

    fn holding(&self, ns: Option<&str>, pod: &str) -> Vec<ObjectKey> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, names)| k.namespace.as_deref() == ns && names.contains(pod))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The Services a pod change concerns: those selecting it now and those it was in.
pub fn services_of_pod(
    services: &Informer<Service>,
    placements: &Placements,
    ch: &Change<Pod>,
) -> Vec<ObjectKey> {
    let pod = ch.obj.as_ref();
    let ns = pod.metadata.namespace.as_deref();
    let mut keys: HashSet<ObjectKey> = placements
        .holding(ns, pod.metadata.name.as_deref().unwrap_or(""))
        .into_iter()
        .collect();
    if !ch.deleted {
        for svc in services.list() {
            if svc.metadata.namespace.as_deref() == ns
                && selector(&svc).is_some_and(|sel| labels_match(sel, pod))
            {
                keys.insert(ObjectKey::of(svc.as_ref()));
            }
        }
    }
    keys.into_iter().collect()
}
