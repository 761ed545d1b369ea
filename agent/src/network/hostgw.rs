//! host-gw: a remote range is routed straight via the remote node's address. The kernel
//! refuses such a route ("Nexthop has invalid gateway") unless that address is on a link
//! this node has, which is exactly host-gw's condition; that refusal is reported for the
//! node, and the other nodes' routes still go in.

use super::{NodeNet, Route};

pub fn route(n: &NodeNet) -> Route {
    Route {
        dst: n.pod_cidr,
        via: n.ip,
        onlink: None,
    }
}

/// A clearer word for the kernel's refusal of a host-gw route.
pub fn explain(node: &str, route: &Route, kernel: &str) -> String {
    if kernel.contains("invalid gateway") || kernel.contains("Network is unreachable") {
        format!(
            "host-gw: node {node}'s address {} is not on a link of this node, so its pods ({}) cannot be routed through it; use --pod-network vxlan when nodes do not share a link ({})",
            route.via,
            route.dst,
            kernel.trim()
        )
    } else {
        format!(
            "host-gw: route to node {node}'s pods {} via {}: {}",
            route.dst,
            route.via,
            kernel.trim()
        )
    }
}
