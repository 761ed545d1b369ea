//! The proxy's view of the cluster: what every backend programs, independent of how.
//!
//! Built from Services and EndpointSlices; pure data, so rule generation is tested without
//! a kernel or a server.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// Transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// Names one port of one Service: `namespace/name:port-name` (port-name may be empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
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

/// Every service port the proxy programs, with its endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyState {
    pub services: BTreeMap<ServicePortName, (ServicePort, Vec<Endpoint>)>,
}
