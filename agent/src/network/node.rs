//! What the pod network needs of a Node: its range, its address and its VTEP MAC.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;

use super::{ANNOTATION_PUBLIC_IP, ANNOTATION_VXLAN_MAC};

/// One node of the pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    pub name: String,
    pub pod_cidr: Ipv4Net,
    /// The address its pods are reached through: its agent's `public-ip` annotation, else
    /// its first IPv4 InternalIP.
    pub ip: Ipv4Addr,
    /// Its VTEP's MAC, once its agent published it.
    pub vtep_mac: Option<String>,
}

/// The node's first IPv4 pod range (`podCIDRs`, else `podCIDR`).
pub fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    let mut all: Vec<&String> = spec.pod_cidrs.iter().flatten().collect();
    all.extend(spec.pod_cidr.iter());
    all.iter()
        .find_map(|s| s.parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A valid unicast MAC in `aa:bb:cc:dd:ee:ff` form, lower-cased.
pub fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let bytes: Vec<u8> = parts
        .iter()
        .map(|p| {
            (p.len() == 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    if bytes[0] & 1 == 1 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

impl NodeNet {
    /// The node's part in the pod network, or `None` while it has no range or no address.
    pub fn of(node: &Node) -> Option<NodeNet> {
        let name = node.metadata.name.clone()?;
        let pod_cidr = pod_cidr(node)?;
        let ip = annotation(node, ANNOTATION_PUBLIC_IP)
            .and_then(|s| s.parse().ok())
            .or_else(|| internal_ip(node))?;
        let vtep_mac = annotation(node, ANNOTATION_VXLAN_MAC).and_then(parse_mac);
        Some(NodeNet {
            name,
            pod_cidr,
            ip,
            vtep_mac,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn from_a_node() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "annotations": {ANNOTATION_VXLAN_MAC: "0E:53:C6:12:00:01"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["fd00::/64", "10.244.1.0/24"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "198.18.0.1"},
            ]},
        }))
        .unwrap();
        let got = NodeNet::of(&n).unwrap();
        assert_eq!(got.pod_cidr.to_string(), "10.244.1.0/24");
        assert_eq!(got.ip, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(got.vtep_mac.as_deref(), Some("0e:53:c6:12:00:01"));

        let mut public = n.clone();
        public
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(ANNOTATION_PUBLIC_IP.into(), "192.0.2.9".into());
        assert_eq!(
            NodeNet::of(&public).unwrap().ip,
            Ipv4Addr::new(192, 0, 2, 9)
        );

        let mut bare = n.clone();
        bare.spec = None;
        assert_eq!(NodeNet::of(&bare), None);
    }

    #[test]
    fn macs() {
        assert!(parse_mac("0e:53:01:02:03:04").is_some());
        assert!(parse_mac("01:00:5e:00:00:01").is_none());
        assert!(parse_mac("00:00:00:00:00:00").is_none());
        assert!(parse_mac("0e:53:01:02:03").is_none());
        assert!(parse_mac("0e:53:01:02:03:zz").is_none());
    }
}
