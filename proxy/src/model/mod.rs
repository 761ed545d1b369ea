//! The proxy's view of the cluster: what every backend programs, independent of how.
//!
//! Built from Services and EndpointSlices; pure data, so rule generation is tested without
//! a kernel or a server.

mod build;
mod diff;

pub use build::build_state;
pub use diff::changed_service_ports;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name; a missing one means TCP, as the API defaults it.
    pub fn parse(protocol: Option<&str>) -> Option<Protocol> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name nftables and `/etc/protocols` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Names one port of one Service: `namespace/name:port-name` (port-name may be empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}:{}/{}",
            self.namespace,
            self.name,
            self.port,
            self.protocol.as_str()
        )
    }
}

/// One port of a Service and the addresses it is reached at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's cluster IPs (one per family); empty for headless Services.
    pub cluster_ips: Vec<IpAddr>,
    pub port: u16,
    /// Set for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress` addresses.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
}

/// One endpoint of a service port, as its EndpointSlice describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The node the endpoint runs on, for the `Local` traffic policies.
    pub node_name: Option<String>,
}

/// Every service port the proxy programs, with its endpoints (sorted, no duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyState {
    pub services: BTreeMap<ServicePortName, (ServicePort, Vec<Endpoint>)>,
}

/// The endpoints that receive new connections: the ready ones; when none is ready, the
/// terminating ones that still serve, so a rolling update does not drop traffic while the
/// last old pods drain.
pub fn usable_endpoints(endpoints: &[Endpoint]) -> Vec<&Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .iter()
        .filter(|e| e.serving && e.terminating)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 80,
            ready,
            serving,
            terminating,
            node_name: None,
        }
    }

    #[test]
    fn ready_endpoints_win_over_terminating_ones() {
        let eps = vec![
            ep("10.0.0.1", true, true, false),
            ep("10.0.0.2", false, true, true),
        ];
        let usable = usable_endpoints(&eps);
        assert_eq!(usable.len(), 1);
        assert_eq!(usable[0].ip.to_string(), "10.0.0.1");
    }

    #[test]
    fn terminating_serving_endpoints_are_used_when_none_is_ready() {
        let eps = vec![
            ep("10.0.0.1", false, false, false),
            ep("10.0.0.2", false, true, true),
            ep("10.0.0.3", false, false, true),
        ];
        let usable = usable_endpoints(&eps);
        assert_eq!(usable.len(), 1);
        assert_eq!(usable[0].ip.to_string(), "10.0.0.2");
    }

    #[test]
    fn no_usable_endpoints_when_none_is_ready_or_serving() {
        assert!(usable_endpoints(&[ep("10.0.0.1", false, false, false)]).is_empty());
    }
}
