//! What the nftables backend is told at start-up.

use std::net::Ipv4Addr;

pub use crate::dataplane::cidr::Ipv4Cidr;

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
