//! What the nftables backend is told at start-up.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation, e.g. the cluster's pod range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|e| format!("{s:?}: bad address: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: prefix must be 0..=32"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Configuration of [`super::Nftables`].
#[derive(Debug, Clone)]
pub struct NftablesConfig {
    /// Name of the `ip` table the backend owns (created, rewritten and deleted whole).
    pub table: String,
    /// The command that reads a ruleset on stdin, without the `-f -`: `["nft"]`, or e.g.
    /// `["ip", "netns", "exec", "NAME", "nft"]` to program another network namespace.
    pub nft_command: Vec<String>,
    /// Pod addresses. Traffic to a ClusterIP from outside it is masqueraded; without it,
    /// ClusterIP traffic keeps its source.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// This node's name: endpoints on it serve the `Local` traffic policies.
    pub node_name: Option<String>,
    /// The node addresses NodePorts answer on.
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// The packet-mark bit that asks for masquerading in postrouting.
    pub masquerade_mark: u32,
    /// The `conntrack` command that deletes stale UDP flows (prefixed like `nft_command`).
    pub conntrack_command: Vec<String>,
}

impl NftablesConfig {
    /// Defaults for a table of the given name, programmed with the host's `nft`.
    pub fn new(table: impl Into<String>) -> Self {
        NftablesConfig {
            table: table.into(),
            nft_command: vec!["nft".to_string()],
            cluster_cidr: None,
            node_name: None,
            node_port_addresses: Vec::new(),
            masquerade_mark: 0x4000,
            conntrack_command: vec!["conntrack".to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_print() {
        let c: Ipv4Cidr = "10.244.0.0/16".parse().unwrap();
        assert_eq!(c.prefix, 16);
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!("10.244.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.244.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("x/8".parse::<Ipv4Cidr>().is_err());
    }
}
