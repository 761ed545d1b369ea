//! NodePorts: a pod's host ports must be free on the node. An address of 0.0.0.0 (or
//! none) takes the port on every address, so it conflicts with any use of the same
//! protocol and port; a specific address conflicts with itself and with 0.0.0.0.

use k8s_openapi::api::core::v1 as core;

use super::{Plugin, Status};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::resources::is_sidecar;

pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const ANY_IP: &str = "0.0.0.0";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// The host ports of the pod's containers and sidecars.
    pub fn of_pod(spec: &core::PodSpec) -> Vec<HostPort> {
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c));
        spec.containers
            .iter()
            .chain(sidecars)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|h| *h > 0)?;
                Some(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| ANY_IP.into()),
                    protocol: p
                        .protocol
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "TCP".into()),
                    port,
                })
            })
            .collect()
    }

    pub fn conflicts(&self, used: &HostPort) -> bool {
        self.port == used.port
            && self.protocol == used.protocol
            && (self.ip == ANY_IP || used.ip == ANY_IP || self.ip == used.ip)
    }
}

pub fn fits(want: &[HostPort], used: &[HostPort]) -> bool {
    !want.iter().any(|w| used.iter().any(|u| w.conflicts(u)))
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if pod.host_ports.is_empty() || fits(&pod.host_ports, &node.used_ports) {
        None
    } else {
        Some(Status::unschedulable(Plugin::NodePorts, REASON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(ip: &str, proto: &str, port: i32) -> HostPort {
        HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        }
    }

    #[test]
    fn conflicts_by_address_protocol_and_port() {
        let used = vec![hp("10.0.0.1", "TCP", 80), hp("0.0.0.0", "UDP", 53)];
        assert!(!fits(&[hp("0.0.0.0", "TCP", 80)], &used));
        assert!(!fits(&[hp("10.0.0.1", "TCP", 80)], &used));
        assert!(fits(&[hp("10.0.0.2", "TCP", 80)], &used));
        assert!(fits(&[hp("10.0.0.1", "UDP", 80)], &used));
        assert!(!fits(&[hp("10.0.0.9", "UDP", 53)], &used));
        assert!(fits(&[hp("10.0.0.9", "TCP", 53)], &used));
    }

    #[test]
    fn ports_of_a_pod_default_address_and_protocol() {
        let spec: core::PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 90}]}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"containerPort": 1, "hostPort": 9000, "protocol": "UDP", "hostIP": "127.0.0.1"}]},
                {"name": "init", "ports": [{"containerPort": 1, "hostPort": 9001}]},
            ],
        }))
        .unwrap();
        assert_eq!(
            HostPort::of_pod(&spec),
            vec![hp("0.0.0.0", "TCP", 8080), hp("127.0.0.1", "UDP", 9000)]
        );
    }
}
