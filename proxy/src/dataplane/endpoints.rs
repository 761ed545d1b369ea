//! Which endpoints each kind of traffic goes to, shared by the backends so that they agree
//! on the traffic policies. IPv4 only: the backends program the IPv4 family and skip IPv6
//! addresses.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Endpoint, ServicePort, usable_endpoints};

/// The IPv4 addresses of a list.
pub fn v4(ips: &[IpAddr]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    ips.iter().filter_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })
}

/// The IPv4 endpoints that take new connections.
pub fn endpoints_v4(endpoints: &[Endpoint]) -> Vec<(Ipv4Addr, u16)> {
    usable_endpoints(endpoints)
        .into_iter()
        .filter_map(|e| match e.ip {
            IpAddr::V4(ip) => Some((ip, e.port)),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Whether a backend programs the service port at all (it has an IPv4 cluster IP).
pub fn programs(port: &ServicePort) -> bool {
    v4(&port.cluster_ips).next().is_some()
}

/// Whether the service port is reached from outside: a NodePort, externalIPs or
/// load-balancer addresses.
pub fn has_external(port: &ServicePort) -> bool {
    port.node_port.is_some()
        || v4(&port.external_ips).next().is_some()
        || v4(&port.load_balancer_ips).next().is_some()
}

/// Which endpoints each kind of traffic goes to, after the traffic policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Every usable endpoint.
    pub all: Vec<(Ipv4Addr, u16)>,
    /// For ClusterIP traffic (this node's only, with `internalTrafficPolicy: Local`).
    pub cluster: Vec<(Ipv4Addr, u16)>,
    /// For external addresses and the NodePort (this node's only, with
    /// `externalTrafficPolicy: Local`).
    pub external: Vec<(Ipv4Addr, u16)>,
    /// Whether external traffic goes to other endpoints than cluster traffic, so needs a
    /// chain of its own.
    pub ext_chain: bool,
}

/// Splits a service port's endpoints by traffic policy; `node_name` is this node's.
pub fn split(node_name: Option<&str>, port: &ServicePort, endpoints: &[Endpoint]) -> Split {
    let all = endpoints_v4(endpoints);
    let local = || {
        let on_node: Vec<Endpoint> = endpoints
            .iter()
            .filter(|e| node_name.is_some() && e.node_name.as_deref() == node_name)
            .cloned()
            .collect();
        // Usable among this node's endpoints: a terminating local endpoint still serves
        // when no local one is ready.
        endpoints_v4(&on_node)
    };
    let cluster = if port.internal_local {
        local()
    } else {
        all.clone()
    };
    let external = if port.external_local {
        local()
    } else {
        all.clone()
    };
    let ext_chain = has_external(port) && !external.is_empty() && external != cluster;
    Split {
        all,
        cluster,
        external,
        ext_chain,
    }
}
