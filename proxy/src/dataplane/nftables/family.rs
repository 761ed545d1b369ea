//! The two address families: one table each, the same shape in both.

use std::fmt;
use std::net::IpAddr;

/// An address family and how nftables spells what differs between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn has(self, ip: &IpAddr) -> bool {
        Family::of(ip) == self
    }

    /// The table family: `ip` or `ip6`; also the payload prefix (`ip daddr`, `ip6 daddr`).
    pub fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// The element type of an address.
    pub fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    /// The rule that refuses a connection: ICMP(v6) port unreachable.
    pub fn reject(self) -> &'static str {
        match self {
            Family::V4 => "reject with icmp type port-unreachable",
            Family::V6 => "reject with icmpv6 type port-unreachable",
        }
    }

    /// `conntrack -f` argument.
    pub fn conntrack(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// A DNAT target: IPv6 addresses are bracketed before the port.
    pub fn dnat_target(self, ip: &IpAddr, port: u16) -> String {
        match self {
            Family::V4 => format!("{ip}:{port}"),
            Family::V6 => format!("[{ip}]:{port}"),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}
