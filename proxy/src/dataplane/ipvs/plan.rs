//! What a sync must do: the wanted virtual servers, addresses and ipset entries of each
//! service port, the record of what is programmed, and the minimal changes between them.
//! Pure, so it is tested without a kernel that has IPVS.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};

use crate::dataplane::conntrack::{Flush, UdpRecord, udp_flushes};
use crate::model::{
    Endpoint, Protocol, ProxyState, ServicePort, ServicePortName, usable_endpoints,
};

use super::companion::{Entry, IpSet};
use super::config::IpvsConfig;
use super::netlink::{Dest, Request, Service, ServiceKey, ServiceSpec};

/// A virtual server as one service port wants it: how it schedules, and its real servers
/// (address and port → weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub spec: ServiceSpec,
    pub dests: BTreeMap<(IpAddr, u16), u32>,
}

impl Wanted {
    fn size(&self) -> usize {
        1 + self.dests.len()
    }
}

/// Everything one service port contributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortWants {
    pub services: Vec<(ServiceKey, Wanted)>,
    /// Addresses bound to the dummy device (not the node addresses of NodePorts).
    pub addresses: Vec<Ipv4Addr>,
    pub entries: Vec<Entry>,
    udp: Option<UdpRecord>,
}

fn v4(ips: &[IpAddr]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    ips.iter().filter_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })
}

/// The real servers for some endpoints: the usable ones at weight 1 and — except for UDP,
/// whose flows have no end to wait for — the still-serving terminating ones at weight 0, so
/// their open connections finish while new ones go elsewhere (kube-proxy's graceful
/// termination). They are deleted once their endpoint leaves the EndpointSlice.
fn dests(endpoints: &[&Endpoint], protocol: Protocol) -> BTreeMap<(IpAddr, u16), u32> {
    let owned: Vec<Endpoint> = endpoints
        .iter()
        .filter(|e| e.ip.is_ipv4())
        .map(|e| (*e).clone())
        .collect();
    let mut out: BTreeMap<(IpAddr, u16), u32> = usable_endpoints(&owned)
        .into_iter()
        .map(|e| ((e.ip, e.port), 1))
        .collect();
    if protocol != Protocol::Udp {
        for e in owned.iter().filter(|e| e.serving && e.terminating) {
            out.entry((e.ip, e.port)).or_insert(0);
        }
    }
    out
}

/// What a service port wants (nothing when it has no IPv4 cluster IP: this backend
/// programs IPv4 only).
pub fn port_wants(
    cfg: &IpvsConfig,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> PortWants {
    let mut w = PortWants::default();
    let cluster_ips: Vec<Ipv4Addr> = v4(&port.cluster_ips).collect();
    if cluster_ips.is_empty() {
        return w;
    }
    let proto = name.protocol;
    let p = proto.as_str();
    let all: Vec<&Endpoint> = endpoints.iter().collect();
    let local: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| cfg.node_name.is_some() && e.node_name == cfg.node_name)
        .collect();
    let cluster_dests = dests(if port.internal_local { &local } else { &all }, proto);
    let external_dests = dests(if port.external_local { &local } else { &all }, proto);
    let spec = ServiceSpec {
        scheduler: cfg.scheduler.clone(),
        persistence: port
            .affinity
            .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX).max(1)),
    };
    let external: Vec<Ipv4Addr> = v4(&port.external_ips)
        .chain(v4(&port.load_balancer_ips))
        .collect();
    let key = |addr: Ipv4Addr, port: u16| ServiceKey {
        addr: IpAddr::V4(addr),
        protocol: proto,
        port,
    };
    let usable: Vec<(Ipv4Addr, u16)> = usable_endpoints(endpoints)
        .into_iter()
        .filter_map(|e| match e.ip {
            IpAddr::V4(ip) => Some((ip, e.port)),
            IpAddr::V6(_) => None,
        })
        .collect();
    for &ip in &cluster_ips {
        w.services.push((
            key(ip, port.port),
            Wanted {
                spec: spec.clone(),
                dests: cluster_dests.clone(),
            },
        ));
        w.entries
            .push((IpSet::ClusterIp, format!("{ip},{p}:{}", port.port)));
    }
    for &ip in &external {
        w.services.push((
            key(ip, port.port),
            Wanted {
                spec: spec.clone(),
                dests: external_dests.clone(),
            },
        ));
    }
    if !port.external_local {
        for ip in v4(&port.external_ips) {
            w.entries
                .push((IpSet::ExternalIp, format!("{ip},{p}:{}", port.port)));
        }
        for ip in v4(&port.load_balancer_ips) {
            w.entries
                .push((IpSet::LoadBalancer, format!("{ip},{p}:{}", port.port)));
        }
    }
    if let Some(node_port) = port.node_port {
        for &ip in &cfg.node_port_addresses {
            w.services.push((
                key(ip, node_port),
                Wanted {
                    spec: spec.clone(),
                    dests: external_dests.clone(),
                },
            ));
            if !port.external_local && proto == Protocol::Sctp {
                w.entries
                    .push((IpSet::NodePortSctp, format!("{ip},sctp:{node_port}")));
            }
            if usable.is_empty() {
                w.entries
                    .push((IpSet::NoEndpoints, format!("{ip},{p}:{node_port}")));
            }
        }
        if !port.external_local {
            match proto {
                Protocol::Tcp => w.entries.push((IpSet::NodePortTcp, node_port.to_string())),
                Protocol::Udp => w.entries.push((IpSet::NodePortUdp, node_port.to_string())),
                Protocol::Sctp => {}
            }
        }
    }
    if usable.is_empty() {
        for ip in cluster_ips.iter().chain(&external) {
            w.entries
                .push((IpSet::NoEndpoints, format!("{ip},{p}:{}", port.port)));
        }
    }
    for (ip, ep_port) in &usable {
        w.entries
            .push((IpSet::LoopBack, format!("{ip},{p}:{ep_port},{ip}")));
    }
    w.addresses = cluster_ips.iter().chain(&external).copied().collect();
    w.addresses.sort();
    w.addresses.dedup();
    w.entries.sort();
    w.entries.dedup();
    if proto == Protocol::Udp {
        let endpoints = usable.iter().map(|(ip, _)| IpAddr::V4(*ip)).collect();
        let addresses = w.addresses.iter().copied().map(IpAddr::V4).collect();
        w.udp = Some(UdpRecord::of_family(false, addresses, port, endpoints));
    }
    w
}

/// The service ports that want a virtual server; the programmed one is the first's, so
/// when two Services claim one address and port the result does not depend on the order
/// of events.
type Owners = BTreeMap<ServicePortName, Wanted>;

/// What the kernel holds, as far as this backend knows.
#[derive(Debug, Default, Clone)]
pub struct Record {
    owners: HashMap<ServiceKey, Owners>,
    wants: HashMap<ServicePortName, PortWants>,
    addresses: HashMap<Ipv4Addr, usize>,
    entries: HashMap<Entry, usize>,
    /// Virtual servers plus real servers programmed.
    pub size: usize,
}

impl Record {
    /// The programmed virtual servers and their real servers.
    pub fn programmed(&self) -> impl Iterator<Item = (&ServiceKey, &Wanted)> {
        self.owners
            .iter()
            .filter_map(|(k, o)| o.values().next().map(|w| (k, w)))
    }

    /// The addresses bound to the dummy device.
    pub fn addresses(&self) -> impl Iterator<Item = &Ipv4Addr> {
        self.addresses.keys()
    }
}

/// What the kernel held at the first sync: read by dumping IPVS and listing the device.
#[derive(Debug, Default, Clone)]
pub struct KernelView {
    pub services: HashMap<ServiceKey, Wanted>,
    pub device_addresses: Vec<Ipv4Addr>,
}

/// The changes one sync makes, in the order they are applied.
#[derive(Debug, Default)]
pub struct Plan {
    pub full: bool,
    /// ipset entries to add (before the virtual servers, so masquerading is in place first).
    pub add_entries: Vec<Entry>,
    /// Every entry, on a full sync (the sets are rewritten whole).
    pub all_entries: Option<BTreeSet<Entry>>,
    pub requests: Vec<Request>,
    pub add_addresses: Vec<Ipv4Addr>,
    pub del_addresses: Vec<Ipv4Addr>,
    pub del_entries: Vec<Entry>,
    /// Stale UDP flows to delete once everything is in place.
    pub conntrack: Vec<Flush>,
    delta: Delta,
}

#[derive(Debug, Default)]
struct Delta {
    owners: Vec<(ServiceKey, Owners)>,
    wants: Vec<(ServicePortName, PortWants)>,
    addresses: Vec<(Ipv4Addr, usize)>,
    entries: Vec<(Entry, usize)>,
    size: isize,
}

/// Requests that turn `before` into `after` for one virtual server.
fn service_requests(
    key: &ServiceKey,
    before: Option<&Wanted>,
    after: Option<&Wanted>,
    out: &mut Vec<Request>,
) {
    let service = |w: &Wanted| Service {
        key: *key,
        spec: w.spec.clone(),
    };
    let dest = |(addr, port): &(IpAddr, u16), weight: u32| Dest {
        addr: *addr,
        port: *port,
        weight,
    };
    match (before, after) {
        (None, None) => {}
        // Deleting a virtual server deletes its real servers with it.
        (Some(_), None) => out.push(Request::DelService(*key)),
        (None, Some(w)) => {
            out.push(Request::NewService(service(w)));
            for (d, weight) in &w.dests {
                out.push(Request::NewDest(*key, dest(d, *weight)));
            }
        }
        (Some(b), Some(a)) => {
            if b.spec != a.spec {
                out.push(Request::SetService(service(a)));
            }
            for (d, weight) in &b.dests {
                if !a.dests.contains_key(d) {
                    out.push(Request::DelDest(*key, dest(d, *weight)));
                }
            }
            for (d, weight) in &a.dests {
                match b.dests.get(d) {
                    None => out.push(Request::NewDest(*key, dest(d, *weight))),
                    Some(old) if old != weight => {
                        out.push(Request::SetDest(*key, dest(d, *weight)));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

/// Reference counts after a change: the keys that appeared and disappeared.
fn recount<K: Hash + Eq + Clone>(
    counts: &HashMap<K, usize>,
    old: &[K],
    new: &[K],
) -> (HashMap<K, usize>, Vec<K>, Vec<K>) {
    let mut touched: HashMap<K, usize> = HashMap::new();
    for k in old {
        let c = touched
            .entry(k.clone())
            .or_insert_with(|| counts.get(k).copied().unwrap_or(0));
        *c = c.saturating_sub(1);
    }
    for k in new {
        *touched
            .entry(k.clone())
            .or_insert_with(|| counts.get(k).copied().unwrap_or(0)) += 1;
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (k, &after) in &touched {
        let before = counts.get(k).copied().unwrap_or(0);
        if before == 0 && after > 0 {
            added.push(k.clone());
        } else if before > 0 && after == 0 {
            removed.push(k.clone());
        }
    }
    (touched, added, removed)
}

/// The sync after `record` (or the first, when `record` is `None`, against what the
/// kernel holds): only the `changed` service ports are looked at on an incremental sync.
pub fn plan(
    cfg: &IpvsConfig,
    record: Option<&Record>,
    kernel: Option<&KernelView>,
    state: &ProxyState,
    changed: &BTreeSet<ServicePortName>,
) -> Plan {
    let empty = Record::default();
    let old = record.unwrap_or(&empty);
    let all: BTreeSet<ServicePortName>;
    let names = if record.is_some() {
        changed
    } else {
        all = state.services.keys().cloned().collect();
        &all
    };
    let mut p = Plan {
        full: record.is_none(),
        ..Plan::default()
    };
    let mut touched: HashMap<ServiceKey, Owners> = HashMap::new();
    let mut old_addresses = Vec::new();
    let mut new_addresses = Vec::new();
    let mut old_entries = Vec::new();
    let mut new_entries = Vec::new();
    let nothing = PortWants::default();
    for name in names {
        let before = old.wants.get(name).unwrap_or(&nothing);
        let after = state
            .services
            .get(name)
            .map(|(port, eps)| port_wants(cfg, name, port, eps))
            .unwrap_or_default();
        if *before == after {
            continue;
        }
        p.conntrack
            .extend(udp_flushes(before.udp.as_ref(), after.udp.as_ref()));
        for (key, _) in &before.services {
            touched
                .entry(*key)
                .or_insert_with(|| old.owners.get(key).cloned().unwrap_or_default())
                .remove(name);
        }
        for (key, wanted) in &after.services {
            touched
                .entry(*key)
                .or_insert_with(|| old.owners.get(key).cloned().unwrap_or_default())
                .insert(name.clone(), wanted.clone());
        }
        old_addresses.extend_from_slice(&before.addresses);
        new_addresses.extend_from_slice(&after.addresses);
        old_entries.extend_from_slice(&before.entries);
        new_entries.extend_from_slice(&after.entries);
        p.delta.wants.push((name.clone(), after));
    }
    if record.is_some() {
        p.conntrack.sort();
        p.conntrack.dedup();
    } else {
        // A first sync cannot know which flows are stale.
        p.conntrack.clear();
    }

    let mut keys: Vec<&ServiceKey> = touched.keys().collect();
    keys.sort();
    for key in keys {
        let owners = &touched[key];
        let before = old.owners.get(key).and_then(|o| o.values().next());
        let after = owners.values().next();
        p.delta.size += after.map_or(0, |w| w.size() as isize);
        p.delta.size -= before.map_or(0, |w| w.size() as isize);
        if record.is_some() {
            service_requests(key, before, after, &mut p.requests);
        }
    }
    let (addresses, added, removed) = recount(&old.addresses, &old_addresses, &new_addresses);
    p.add_addresses = added;
    p.del_addresses = removed;
    let (entries, added, removed) = recount(&old.entries, &old_entries, &new_entries);
    p.add_entries = added;
    p.del_entries = removed;

    if record.is_none() {
        let view = KernelView::default();
        let kernel = kernel.unwrap_or(&view);
        full_requests(cfg, &touched, kernel, &mut p);
        p.all_entries = Some(
            entries
                .iter()
                .filter(|(_, c)| **c > 0)
                .map(|(e, _)| e.clone())
                .collect(),
        );
        p.add_entries.clear();
        p.del_entries.clear();
    }
    p.add_addresses.sort();
    p.del_addresses.sort();
    p.add_entries.sort();
    p.del_entries.sort();
    p.delta.owners = touched.into_iter().collect();
    p.delta.addresses = addresses.into_iter().collect();
    p.delta.entries = entries.into_iter().collect();
    p
}

/// A first sync: reconcile with what the kernel holds. Virtual servers on addresses this
/// proxy owns (bound to its device, or the NodePort addresses) that are no longer wanted
/// go; anyone else's stay.
fn full_requests(
    cfg: &IpvsConfig,
    wanted: &HashMap<ServiceKey, Owners>,
    kernel: &KernelView,
    p: &mut Plan,
) {
    let mut keys: Vec<&ServiceKey> = wanted.keys().collect();
    keys.sort();
    for key in keys {
        let after = wanted[key].values().next();
        service_requests(key, kernel.services.get(key), after, &mut p.requests);
    }
    let ours = |addr: &IpAddr| match addr {
        IpAddr::V4(a) => kernel.device_addresses.contains(a) || cfg.node_port_addresses.contains(a),
        IpAddr::V6(_) => false,
    };
    let mut stale: Vec<&ServiceKey> = kernel
        .services
        .keys()
        .filter(|k| !wanted.contains_key(k) && ours(&k.addr))
        .collect();
    stale.sort();
    for key in stale {
        p.requests.push(Request::DelService(*key));
    }
    let want: BTreeSet<Ipv4Addr> = p.add_addresses.iter().copied().collect();
    let have: BTreeSet<Ipv4Addr> = kernel.device_addresses.iter().copied().collect();
    p.add_addresses = want.difference(&have).copied().collect();
    p.del_addresses = have.difference(&want).copied().collect();
}

/// Applies a committed plan to the record (a fresh record on a full sync).
pub fn commit(record: Option<Record>, plan: Plan) -> Record {
    let mut r = if plan.full {
        Record::default()
    } else {
        record.unwrap_or_default()
    };
    let d = plan.delta;
    for (key, owners) in d.owners {
        if owners.is_empty() {
            r.owners.remove(&key);
        } else {
            r.owners.insert(key, owners);
        }
    }
    for (name, wants) in d.wants {
        if wants == PortWants::default() {
            r.wants.remove(&name);
        } else {
            r.wants.insert(name, wants);
        }
    }
    for (addr, count) in d.addresses {
        if count == 0 {
            r.addresses.remove(&addr);
        } else {
            r.addresses.insert(addr, count);
        }
    }
    for (entry, count) in d.entries {
        if count == 0 {
            r.entries.remove(&entry);
        } else {
            r.entries.insert(entry, count);
        }
    }
    r.size = (r.size as isize + d.size).max(0) as usize;
    r
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
