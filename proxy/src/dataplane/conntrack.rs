//! Deleting stale UDP conntrack entries.
//!
//! A UDP "connection" lives in conntrack as long as packets keep coming, and so does its
//! DNAT: a client that keeps sending to a Service whose endpoint went away keeps sending
//! to the dead endpoint, and one that sent before a Service had endpoints stays un-NATed.
//! After a sync, the flows to removed endpoints, and the flows to Services that just got
//! their first endpoints, are deleted so that the next packet is NATed afresh. TCP needs
//! nothing: a dead endpoint resets or times out and the client reconnects.
//!
//! This runs the `conntrack` tool (conntrack-tools), as kube-proxy long did. It looks at
//! IPv4 flows unless told `-f ipv6`, so IPv6 flushes say so.

use std::net::IpAddr;
use std::process::Stdio;

use tokio::process::Command;

use super::{DataplaneError, endpoints};
use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// One `conntrack -D` filter, always for UDP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flush {
    /// Flows to `address` (or to any address on `port`, for NodePorts) that were NATed to
    /// `endpoint`.
    ToEndpoint {
        address: Option<IpAddr>,
        port: Option<u16>,
        endpoint: IpAddr,
    },
    /// Flows to `address` (if any) and `port` (if any), NATed or not; `ipv6` picks the
    /// family when there is no address (a NodePort).
    ToService {
        address: Option<IpAddr>,
        port: Option<u16>,
        ipv6: bool,
    },
}

impl Flush {
    /// The `conntrack` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["-D".to_string(), "-p".to_string(), "udp".to_string()];
        let (address, port, endpoint, ipv6) = match self {
            Flush::ToEndpoint {
                address,
                port,
                endpoint,
            } => (address, port, Some(endpoint), endpoint.is_ipv6()),
            Flush::ToService {
                address,
                port,
                ipv6,
            } => (address, port, None, *ipv6),
        };
        if ipv6 {
            args.extend(["-f".to_string(), "ipv6".to_string()]);
        }
        if let Some(a) = address {
            args.extend(["--orig-dst".to_string(), a.to_string()]);
        }
        if let Some(p) = port {
            args.extend(["--orig-port-dst".to_string(), p.to_string()]);
        }
        if let Some(e) = endpoint {
            args.extend(["--dst-nat".to_string(), e.to_string()]);
        }
        args
    }
}

/// A programmed UDP service port's addresses and usable endpoints, of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRecord {
    ipv6: bool,
    addresses: Vec<IpAddr>,
    port: u16,
    node_port: Option<u16>,
    endpoints: Vec<IpAddr>,
}

impl UdpRecord {
    /// The IPv4 record of a service port, for the IPv4-only backends; `None` for a service
    /// port that is not UDP or not programmed.
    pub fn new(name: &ServicePortName, port: &ServicePort, endpoints: &[Endpoint]) -> Option<Self> {
        if name.protocol != Protocol::Udp || !endpoints::programs(port) {
            return None;
        }
        let addresses = endpoints::v4(&port.cluster_ips)
            .chain(endpoints::v4(&port.external_ips))
            .chain(endpoints::v4(&port.load_balancer_ips))
            .map(IpAddr::V4)
            .collect();
        let eps = endpoints::endpoints_v4(endpoints)
            .into_iter()
            .map(|(ip, _)| IpAddr::V4(ip))
            .collect();
        Some(Self::of_family(false, addresses, port, eps))
    }

    /// A record from a backend's own choice of one family's addresses and endpoints.
    pub fn of_family(
        ipv6: bool,
        addresses: Vec<IpAddr>,
        port: &ServicePort,
        mut endpoints: Vec<IpAddr>,
    ) -> Self {
        endpoints.sort();
        endpoints.dedup();
        UdpRecord {
            ipv6,
            addresses,
            port: port.port,
            node_port: port.node_port,
            endpoints,
        }
    }
}

/// The conntrack deletions a UDP service port's change calls for: flows NATed to endpoints
/// that are gone, and flows that reached the service while it had no endpoints.
pub fn udp_flushes(old: Option<&UdpRecord>, new: Option<&UdpRecord>) -> Vec<Flush> {
    let mut flushes = Vec::new();
    let new_endpoints: &[IpAddr] = new.map_or(&[], |n| &n.endpoints);
    if let Some(old) = old {
        for &endpoint in old.endpoints.iter().filter(|e| !new_endpoints.contains(e)) {
            for &address in &old.addresses {
                flushes.push(Flush::ToEndpoint {
                    address: Some(address),
                    port: Some(old.port),
                    endpoint,
                });
            }
            if let Some(node_port) = old.node_port {
                flushes.push(Flush::ToEndpoint {
                    address: None,
                    port: Some(node_port),
                    endpoint,
                });
            }
        }
    }
    if let Some(new) = new
        && !new.endpoints.is_empty()
        && old.is_none_or(|o| o.endpoints.is_empty())
    {
        for &address in &new.addresses {
            flushes.push(Flush::ToService {
                address: Some(address),
                port: Some(new.port),
                ipv6: new.ipv6,
            });
        }
        if let Some(node_port) = new.node_port {
            flushes.push(Flush::ToService {
                address: None,
                port: Some(node_port),
                ipv6: new.ipv6,
            });
        }
    }
    flushes
}

/// Runs the flushes with `command` (e.g. `["conntrack"]`). Every flush is tried; the first
/// failure is returned. "Nothing matched" is not a failure.
pub async fn delete(command: &[String], flushes: &[Flush]) -> Result<(), DataplaneError> {
    let failed = |message: String| DataplaneError::Program {
        backend: "conntrack",
        message,
    };
    let (program, prefix) = command
        .split_first()
        .ok_or_else(|| failed("empty conntrack command".to_string()))?;
    let mut first_error = None;
    for flush in flushes {
        let args = flush.args();
        let result = Command::new(program)
            .args(prefix)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await;
        let error = match result {
            Err(e) => Some(format!("cannot run {program}: {e}")),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                // conntrack exits 1 when no entry matched the filter.
                if out.status.success() || stderr.contains("0 flow entries") {
                    None
                } else {
                    Some(format!(
                        "conntrack {} failed ({}): {}",
                        args.join(" "),
                        out.status,
                        stderr.trim()
                    ))
                }
            }
        };
        if let Some(e) = error {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), |e| Err(failed(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_name_the_address_port_and_endpoint() {
        let ep: IpAddr = "10.244.1.5".parse().unwrap();
        let svc: IpAddr = "10.96.0.10".parse().unwrap();
        assert_eq!(
            Flush::ToEndpoint {
                address: Some(svc),
                port: None,
                endpoint: ep
            }
            .args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--dst-nat",
                "10.244.1.5"
            ]
        );
        assert_eq!(
            Flush::ToEndpoint {
                address: None,
                port: Some(30053),
                endpoint: ep
            }
            .args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-port-dst",
                "30053",
                "--dst-nat",
                "10.244.1.5"
            ]
        );
        assert_eq!(
            Flush::ToService {
                address: Some(svc),
                port: Some(53),
                ipv6: false,
            }
            .args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53"
            ]
        );
        assert_eq!(
            Flush::ToEndpoint {
                address: Some("fd00:96::a".parse().unwrap()),
                port: Some(53),
                endpoint: "fd00:244::5".parse().unwrap(),
            }
            .args(),
            [
                "-D",
                "-p",
                "udp",
                "-f",
                "ipv6",
                "--orig-dst",
                "fd00:96::a",
                "--orig-port-dst",
                "53",
                "--dst-nat",
                "fd00:244::5"
            ]
        );
        assert_eq!(
            Flush::ToService {
                address: None,
                port: Some(30053),
                ipv6: true,
            }
            .args(),
            ["-D", "-p", "udp", "-f", "ipv6", "--orig-port-dst", "30053"]
        );
    }
}
