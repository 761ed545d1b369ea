//! What cluster DNS knows of the cluster: namespaces, Services and the ready addresses of their
//! EndpointSlices, reduced to what names are answered from, with reverse indexes for PTR.
//!
//! Pure data: watches feed it, queries read it, and unit tests build it by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace`, `name`.
pub type Key = (String, String);

/// One port of a Service or an EndpointSlice, as SRV names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    /// Lowercase (`tcp`, `udp`, `sctp`), as the `_proto` label of an SRV name.
    pub protocol: String,
    /// -1 stands for "no ports declared": such an entry answers A but never SRV.
    pub port: i32,
}

/// How a Service is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// Its cluster IPs (one per family).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoint addresses.
    Headless,
    /// A CNAME to this name (always ending in a dot).
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub kind: ServiceKind,
    pub ports: Vec<PortSpec>,
}

/// A ready address of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddress {
    pub ip: IpAddr,
    /// `endpoints[].hostname` (set for pods with a hostname and a subdomain naming the Service).
    pub hostname: Option<String>,
}

impl EndpointAddress {
    /// The label this address is named by under its Service: its hostname, or else its IP with
    /// dots (IPv4) or colons (IPv6) turned into dashes, as CoreDNS names them.
    pub fn label(&self) -> String {
        match &self.hostname {
            Some(h) if !h.is_empty() => h.clone(),
            _ => match self.ip {
                IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
                IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
            },
        }
    }
}

/// The part of one EndpointSlice that DNS answers from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRecord {
    pub service: String,
    /// Ready addresses only (a missing `ready` condition counts as ready).
    pub addresses: Vec<EndpointAddress>,
    /// The slice's ports; a single `port: -1` entry when it declares none.
    pub ports: Vec<PortSpec>,
}

/// Everything cluster DNS answers from.
#[derive(Debug, Clone, Default)]
pub struct ClusterData {
    namespaces: BTreeSet<String>,
    /// When Namespaces cannot be read (credentials without that right, like kube-proxy's),
    /// a namespace counts as existing while it has a Service.
    namespaces_unknown: bool,
    /// Services per namespace, for that fallback.
    services_per_namespace: HashMap<String, usize>,
    services: HashMap<Key, ServiceRecord>,
    /// (namespace, service) → slice name → slice.
    slices: HashMap<Key, BTreeMap<String, SliceRecord>>,
    /// (namespace, slice name) → the service it was filed under.
    slice_owner: HashMap<Key, String>,
    /// Cluster IP → the Services that have it.
    by_cluster_ip: HashMap<IpAddr, BTreeSet<Key>>,
    /// Endpoint IP → (namespace, service) of the slices naming it.
    by_endpoint_ip: HashMap<IpAddr, BTreeSet<Key>>,
    /// Whether the first full listing has arrived: until then a missing name is not proof
    /// that it does not exist.
    synced: bool,
    /// Seconds since the epoch of the last change, the zone's SOA serial.
    serial: u32,
}

impl ClusterData {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn touch(&mut self, serial: u32) {
        self.serial = serial;
    }

    pub fn has_namespace(&self, ns: &str) -> bool {
        if self.namespaces_unknown {
            self.services_per_namespace.contains_key(ns)
        } else {
            self.namespaces.contains(ns)
        }
    }

    /// Namespaces cannot be listed: judge a namespace's existence by its Services.
    pub fn set_namespaces_unknown(&mut self, unknown: bool) {
        self.namespaces_unknown = unknown;
    }

    pub fn service(&self, ns: &str, name: &str) -> Option<&ServiceRecord> {
        self.services.get(&(ns.to_string(), name.to_string()))
    }

    /// The slices filed under a Service, in name order.
    pub fn slices(&self, ns: &str, service: &str) -> impl Iterator<Item = &SliceRecord> {
        self.slices
            .get(&(ns.to_string(), service.to_string()))
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Services with this cluster IP, in (namespace, name) order.
    pub fn services_with_ip(&self, ip: &IpAddr) -> impl Iterator<Item = &Key> {
        self.by_cluster_ip.get(ip).into_iter().flatten()
    }

    /// (namespace, service) of every slice with this ready address, in order.
    pub fn endpoint_owners(&self, ip: &IpAddr) -> impl Iterator<Item = &Key> {
        self.by_endpoint_ip.get(ip).into_iter().flatten()
    }

    pub fn add_namespace(&mut self, name: &str) {
        self.namespaces.insert(name.to_string());
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Replaces the set of namespaces (after a relist).
    pub fn set_namespaces(&mut self, names: impl IntoIterator<Item = String>) {
        self.namespaces = names.into_iter().collect();
    }

    pub fn upsert_service(&mut self, ns: &str, name: &str, record: ServiceRecord) {
        let key = (ns.to_string(), name.to_string());
        self.unindex_service(&key);
        if let ServiceKind::ClusterIp(ips) = &record.kind {
            for ip in ips {
                self.by_cluster_ip
                    .entry(*ip)
                    .or_default()
                    .insert(key.clone());
            }
        }
        if self.services.insert(key, record).is_none() {
            *self
                .services_per_namespace
                .entry(ns.to_string())
                .or_default() += 1;
        }
    }

    pub fn remove_service(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        self.unindex_service(&key);
        if self.services.remove(&key).is_some()
            && let Some(n) = self.services_per_namespace.get_mut(ns)
        {
            *n -= 1;
            if *n == 0 {
                self.services_per_namespace.remove(ns);
            }
        }
    }

    fn unindex_service(&mut self, key: &Key) {
        if let Some(ServiceRecord {
            kind: ServiceKind::ClusterIp(ips),
            ..
        }) = self.services.get(key)
        {
            for ip in ips {
                if let Some(set) = self.by_cluster_ip.get_mut(ip) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_cluster_ip.remove(ip);
                    }
                }
            }
        }
    }

    /// Makes the Services exactly these (after a relist).
    pub fn replace_services(&mut self, services: Vec<(Key, ServiceRecord)>) {
        let keep: HashSet<&Key> = services.iter().map(|(k, _)| k).collect();
        let stale: Vec<Key> = self
            .services
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for (ns, name) in stale {
            self.remove_service(&ns, &name);
        }
        for ((ns, name), record) in services {
            self.upsert_service(&ns, &name, record);
        }
    }

    /// Makes the EndpointSlices exactly these, keyed by (namespace, slice name).
    pub fn replace_slices(&mut self, slices: Vec<(Key, SliceRecord)>) {
        let keep: HashSet<&Key> = slices.iter().map(|(k, _)| k).collect();
        let stale: Vec<Key> = self
            .slice_owner
            .keys()
            .filter(|k| !keep.contains(k))
            .cloned()
            .collect();
        for (ns, name) in stale {
            self.remove_slice(&ns, &name);
        }
        for ((ns, name), record) in slices {
            self.upsert_slice(&ns, &name, record);
        }
    }

    pub fn upsert_slice(&mut self, ns: &str, slice_name: &str, record: SliceRecord) {
        self.remove_slice(ns, slice_name);
        let service = record.service.clone();
        let old = self.endpoint_ips(ns, &service);
        self.slice_owner
            .insert((ns.to_string(), slice_name.to_string()), service.clone());
        self.slices
            .entry((ns.to_string(), service.clone()))
            .or_default()
            .insert(slice_name.to_string(), record);
        self.reindex_endpoints(ns, &service, old);
    }

    pub fn remove_slice(&mut self, ns: &str, slice_name: &str) {
        let Some(service) = self
            .slice_owner
            .remove(&(ns.to_string(), slice_name.to_string()))
        else {
            return;
        };
        let old = self.endpoint_ips(ns, &service);
        let owner = (ns.to_string(), service.clone());
        if let Some(m) = self.slices.get_mut(&owner) {
            m.remove(slice_name);
            if m.is_empty() {
                self.slices.remove(&owner);
            }
        }
        self.reindex_endpoints(ns, &service, old);
    }

    fn endpoint_ips(&self, ns: &str, service: &str) -> Vec<IpAddr> {
        self.slices(ns, service)
            .flat_map(|s| s.addresses.iter().map(|a| a.ip))
            .collect()
    }

    /// Moves one Service's reverse index entries from its old addresses to its current ones.
    fn reindex_endpoints(&mut self, ns: &str, service: &str, old: Vec<IpAddr>) {
        let owner = (ns.to_string(), service.to_string());
        for ip in old {
            if let Some(owners) = self.by_endpoint_ip.get_mut(&ip) {
                owners.remove(&owner);
                if owners.is_empty() {
                    self.by_endpoint_ip.remove(&ip);
                }
            }
        }
        for ip in self.endpoint_ips(ns, service) {
            self.by_endpoint_ip
                .entry(ip)
                .or_default()
                .insert(owner.clone());
        }
    }
}

/// The DNS view of a Service, or None when it has no namespace or name.
pub fn service_record(svc: &Service) -> Option<(Key, ServiceRecord)> {
    let ns = svc.metadata.namespace.clone()?;
    let name = svc.metadata.name.clone()?;
    let spec = svc.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let mut target = spec.external_name.clone().unwrap_or_default();
        if !target.ends_with('.') {
            target.push('.');
        }
        ServiceKind::ExternalName(target)
    } else {
        let ips: Vec<String> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.clone(),
            _ => spec.cluster_ip.iter().cloned().collect(),
        };
        if ips.first().map(String::as_str) == Some("None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
        }
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| PortSpec {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            port: p.port,
        })
        .collect();
    Some(((ns, name), ServiceRecord { kind, ports }))
}

/// The DNS view of an EndpointSlice: (namespace, slice name) and the record, or None for
/// slices DNS does not answer from (no Service label, FQDN address type).
pub fn slice_record(slice: &EndpointSlice) -> Option<(Key, SliceRecord)> {
    let ns = slice.metadata.namespace.clone()?;
    let name = slice.metadata.name.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
        return None;
    }
    let addresses = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| {
            e.addresses.iter().filter_map(|a| {
                Some(EndpointAddress {
                    ip: a.parse().ok()?,
                    hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                })
            })
        })
        .collect();
    let ports: Vec<PortSpec> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| PortSpec {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    let ports = if ports.is_empty() {
        vec![PortSpec {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        }]
    } else {
        ports
    };
    Some((
        (ns, name),
        SliceRecord {
            service,
            addresses,
            ports,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn service_kinds_follow_the_spec() {
        let (_, r) = service_record(&svc(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"],
                     "ports": [{"name": "http", "port": 80}]}
        })))
        .unwrap();
        assert_eq!(
            r.kind,
            ServiceKind::ClusterIp(vec![
                "10.96.0.5".parse().unwrap(),
                "fd00::5".parse().unwrap()
            ])
        );
        assert_eq!(r.ports[0].protocol, "tcp");
        let (_, r) = service_record(&svc(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "db"},
            "spec": {"clusterIP": "None"}
        })))
        .unwrap();
        assert_eq!(r.kind, ServiceKind::Headless);
        let (_, r) = service_record(&svc(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        })))
        .unwrap();
        assert_eq!(r.kind, ServiceKind::ExternalName("example.com.".into()));
    }

    #[test]
    fn slices_keep_ready_addresses_and_hostnames() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "db-abc",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}
            ],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]
        }))
        .unwrap();
        let ((ns, name), r) = slice_record(&slice).unwrap();
        assert_eq!(
            (ns.as_str(), name.as_str(), r.service.as_str()),
            ("ns", "db-abc", "db")
        );
        let labels: Vec<String> = r.addresses.iter().map(EndpointAddress::label).collect();
        assert_eq!(labels, ["db-0", "10-0-0-3"]);
    }

    #[test]
    fn without_namespaces_a_namespace_exists_while_it_has_services() {
        let mut d = ClusterData::new();
        d.set_namespaces_unknown(true);
        let rec = ServiceRecord {
            kind: ServiceKind::Headless,
            ports: vec![],
        };
        assert!(!d.has_namespace("ns"));
        d.upsert_service("ns", "a", rec.clone());
        d.upsert_service("ns", "a", rec.clone());
        d.upsert_service("ns", "b", rec);
        d.remove_service("ns", "a");
        assert!(d.has_namespace("ns"));
        d.remove_service("ns", "b");
        assert!(!d.has_namespace("ns"));
    }

    #[test]
    fn reverse_indexes_follow_updates() {
        let mut d = ClusterData::new();
        let ip: IpAddr = "10.96.0.9".parse().unwrap();
        let rec = |ips: Vec<IpAddr>| ServiceRecord {
            kind: ServiceKind::ClusterIp(ips),
            ports: vec![],
        };
        d.upsert_service("ns", "a", rec(vec![ip]));
        assert_eq!(d.services_with_ip(&ip).count(), 1);
        d.upsert_service("ns", "a", rec(vec![]));
        assert_eq!(d.services_with_ip(&ip).count(), 0);

        let ep: IpAddr = "10.0.0.7".parse().unwrap();
        let slice = SliceRecord {
            service: "a".into(),
            addresses: vec![EndpointAddress {
                ip: ep,
                hostname: None,
            }],
            ports: vec![],
        };
        d.upsert_slice("ns", "a-1", slice);
        assert_eq!(d.endpoint_owners(&ep).count(), 1);
        d.remove_slice("ns", "a-1");
        assert_eq!(d.endpoint_owners(&ep).count(), 0);
        assert_eq!(d.slices("ns", "a").count(), 0);
    }
}
