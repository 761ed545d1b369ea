//! The pure part: from the nodes, the routes, neighbour and forwarding entries this node
//! wants; and, against what the kernel has, the changes to make.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Mode, NodeNet, VXLAN_DEVICE};

/// A route to a remote node's pod range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
    /// The device the gateway is taken as directly on (VXLAN); `None` lets the kernel find
    /// the link the gateway is on (host-gw).
    pub onlink: Option<String>,
}

/// What this node has (or wants) of the pod network. Keys are what identifies an entry:
/// a route's destination, a neighbour's address, a forwarding entry's MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub routes: BTreeMap<Ipv4Net, Route>,
    /// VTEP address → VTEP MAC, on the VXLAN device.
    pub neighbours: BTreeMap<Ipv4Addr, String>,
    /// VTEP MAC → the remote node's address, on the VXLAN device.
    pub fdb: BTreeMap<String, Ipv4Addr>,
}

/// A node left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

/// The VTEP address of a node: its range's network address (as flannel).
pub fn vtep_ip(pod_cidr: &Ipv4Net) -> Ipv4Addr {
    pod_cidr.network()
}

/// What `me` wants, given every node (itself included). Nodes are taken in name order, so
/// of two nodes claiming overlapping ranges the first keeps its route.
pub fn desired(mode: Mode, me: &str, nodes: &[NodeNet]) -> (Plan, Vec<Skipped>) {
    let mut plan = Plan::default();
    let mut skipped = Vec::new();
    if mode == Mode::None {
        return (plan, skipped);
    }
    let mut nodes: Vec<&NodeNet> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let own = nodes.iter().find(|n| n.name == me).map(|n| n.pod_cidr);
    let mut skip = |node: &NodeNet, reason: String| {
        skipped.push(Skipped {
            node: node.name.clone(),
            reason,
        })
    };
    for n in nodes.into_iter().filter(|n| n.name != me) {
        if let Some(own) = own
            && (own.contains(&n.pod_cidr) || n.pod_cidr.contains(&own))
        {
            skip(
                n,
                format!("its range {} overlaps this node's {own}", n.pod_cidr),
            );
            continue;
        }
        if let Some(other) = plan
            .routes
            .keys()
            .find(|d| d.contains(&n.pod_cidr) || n.pod_cidr.contains(*d))
        {
            skip(
                n,
                format!("its range {} overlaps {other} of another node", n.pod_cidr),
            );
            continue;
        }
        match mode {
            Mode::Vxlan => {
                let Some(mac) = &n.vtep_mac else {
                    skip(n, "its agent has not published a VXLAN MAC yet".into());
                    continue;
                };
                if plan.fdb.contains_key(mac) {
                    skip(n, format!("its VXLAN MAC {mac} is another node's too"));
                    continue;
                }
                let vtep = vtep_ip(&n.pod_cidr);
                plan.routes.insert(
                    n.pod_cidr,
                    Route {
                        dst: n.pod_cidr,
                        via: vtep,
                        onlink: Some(VXLAN_DEVICE.into()),
                    },
                );
                plan.neighbours.insert(vtep, mac.clone());
                plan.fdb.insert(mac.clone(), n.ip);
            }
            Mode::HostGw => {
                plan.routes.insert(n.pod_cidr, super::hostgw::route(n));
            }
            Mode::None => {}
        }
    }
    (plan, skipped)
}

/// The changes that turn `have` into `want`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub del_routes: Vec<Route>,
    pub del_neighbours: Vec<Ipv4Addr>,
    pub del_fdb: Vec<(String, Ipv4Addr)>,
    pub add_fdb: Vec<(String, Ipv4Addr)>,
    pub add_neighbours: Vec<(Ipv4Addr, String)>,
    /// Added or replaced.
    pub add_routes: Vec<Route>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

pub fn diff(want: &Plan, have: &Plan) -> Changes {
    let mut c = Changes::default();
    for (dst, r) in &have.routes {
        if !want.routes.contains_key(dst) {
            c.del_routes.push(r.clone());
        }
    }
    for (dst, r) in &want.routes {
        if have.routes.get(dst) != Some(r) {
            c.add_routes.push(r.clone());
        }
    }
    for ip in have.neighbours.keys() {
        if !want.neighbours.contains_key(ip) {
            c.del_neighbours.push(*ip);
        }
    }
    for (ip, mac) in &want.neighbours {
        if have.neighbours.get(ip) != Some(mac) {
            c.add_neighbours.push((*ip, mac.clone()));
        }
    }
    for (mac, dst) in &have.fdb {
        if want.fdb.get(mac) != Some(dst) {
            c.del_fdb.push((mac.clone(), *dst));
        }
    }
    for (mac, dst) in &want.fdb {
        if have.fdb.get(mac) != Some(dst) {
            c.add_fdb.push((mac.clone(), *dst));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn node(name: &str, cidr: &str, ip: &str, mac: Option<&str>) -> NodeNet {
        NodeNet {
            name: name.into(),
            pod_cidr: cidr.parse().unwrap(),
            ip: ip.parse().unwrap(),
            vtep_mac: mac.map(str::to_string),
        }
    }

    fn cluster() -> Vec<NodeNet> {
        vec![
            node(
                "a",
                "10.244.0.0/24",
                "198.18.0.1",
                Some("0e:53:00:00:00:01"),
            ),
            node(
                "b",
                "10.244.1.0/24",
                "198.18.0.2",
                Some("0e:53:00:00:00:02"),
            ),
            node("c", "10.244.2.0/24", "198.18.0.3", None),
        ]
    }

    #[test]
    fn vxlan_routes_every_other_node_with_a_mac() {
        let (plan, skipped) = desired(Mode::Vxlan, "a", &cluster());
        assert_eq!(plan.routes.len(), 1);
        let r = &plan.routes[&"10.244.1.0/24".parse().unwrap()];
        assert_eq!(r.via, Ipv4Addr::new(10, 244, 1, 0));
        assert_eq!(r.onlink.as_deref(), Some(VXLAN_DEVICE));
        assert_eq!(
            plan.neighbours[&Ipv4Addr::new(10, 244, 1, 0)],
            "0e:53:00:00:00:02"
        );
        assert_eq!(plan.fdb["0e:53:00:00:00:02"], Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].node, "c");
    }

    #[test]
    fn host_gw_routes_via_the_node() {
        let (plan, skipped) = desired(Mode::HostGw, "c", &cluster());
        assert!(skipped.is_empty());
        assert!(plan.neighbours.is_empty() && plan.fdb.is_empty());
        let vias: Vec<_> = plan
            .routes
            .values()
            .map(|r| (r.dst.to_string(), r.via.to_string(), r.onlink.clone()))
            .collect();
        assert_eq!(
            vias,
            [
                ("10.244.0.0/24".into(), "198.18.0.1".into(), None),
                ("10.244.1.0/24".into(), "198.18.0.2".into(), None)
            ]
        );
        assert_eq!(desired(Mode::None, "c", &cluster()).0, Plan::default());
    }

    #[test]
    fn overlapping_ranges_are_skipped() {
        let mut nodes = cluster();
        nodes.push(node(
            "d",
            "10.244.1.0/25",
            "198.18.0.4",
            Some("0e:53:00:00:00:04"),
        ));
        nodes.push(node(
            "e",
            "10.244.0.0/16",
            "198.18.0.5",
            Some("0e:53:00:00:00:05"),
        ));
        let (plan, skipped) = desired(Mode::Vxlan, "a", &nodes);
        assert_eq!(plan.routes.len(), 1);
        let names: Vec<_> = skipped.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(names, ["c", "d", "e"]);
    }

    #[test]
    fn diff_adds_replaces_and_removes() {
        let (have, _) = desired(Mode::Vxlan, "a", &cluster());
        // b moved to another address, c got its MAC, and a new node d left again.
        let mut nodes = cluster();
        nodes[1].ip = "198.18.0.22".parse().unwrap();
        nodes[2].vtep_mac = Some("0e:53:00:00:00:03".into());
        let (want, _) = desired(Mode::Vxlan, "a", &nodes);
        let c = diff(&want, &have);
        assert!(c.del_routes.is_empty() && c.del_neighbours.is_empty());
        assert_eq!(
            c.del_fdb,
            [(
                "0e:53:00:00:00:02".to_string(),
                Ipv4Addr::new(198, 18, 0, 2)
            )]
        );
        assert_eq!(c.add_fdb.len(), 2);
        assert_eq!(
            c.add_neighbours,
            [(
                Ipv4Addr::new(10, 244, 2, 0),
                "0e:53:00:00:00:03".to_string()
            )]
        );
        assert_eq!(c.add_routes.len(), 1);
        assert!(diff(&want, &want).is_empty());

        // Everyone else leaves: everything goes.
        let (gone, _) = desired(Mode::Vxlan, "a", &nodes[..1]);
        let c = diff(&gone, &want);
        assert_eq!(c.del_routes.len(), 2);
        assert_eq!(c.del_neighbours.len(), 2);
        assert_eq!(c.del_fdb.len(), 2);
        assert!(c.add_routes.is_empty() && c.add_fdb.is_empty() && c.add_neighbours.is_empty());
    }
}
