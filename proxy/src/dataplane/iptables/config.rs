//! What the iptables backend is told at start-up.

use std::net::Ipv4Addr;

use crate::dataplane::cidr::Ipv4Cidr;

/// Configuration of [`super::Iptables`].
#[derive(Debug, Clone)]
pub struct IptablesConfig {
    /// The command that applies rules read on stdin, without its options:
    /// `["iptables-restore"]`, or e.g. `["ip", "netns", "exec", "NAME", "iptables-restore"]`
    /// to program another network namespace. `-w --noflush` are added.
    pub iptables_restore_command: Vec<String>,
    /// The command that lists a table's rules (`-t TABLE` is added), prefixed like
    /// `iptables_restore_command`.
    pub iptables_save_command: Vec<String>,
    /// Pod addresses. Traffic to a ClusterIP from outside it is masqueraded; without it,
    /// ClusterIP traffic keeps its source.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// This node's name: endpoints on it serve the `Local` traffic policies.
    pub node_name: Option<String>,
    /// The node addresses NodePorts answer on.
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// The packet-mark bit that asks for masquerading in postrouting.
    pub masquerade_mark: u32,
    /// The `conntrack` command that deletes stale UDP flows (prefixed like
    /// `iptables_restore_command`).
    pub conntrack_command: Vec<String>,
}

impl Default for IptablesConfig {
    /// Programs the host's tables with its own `iptables-restore` and `iptables-save`.
    fn default() -> Self {
        IptablesConfig {
            iptables_restore_command: vec!["iptables-restore".to_string()],
            iptables_save_command: vec!["iptables-save".to_string()],
            cluster_cidr: None,
            node_name: None,
            node_port_addresses: Vec::new(),
            masquerade_mark: 0x4000,
            conntrack_command: vec!["conntrack".to_string()],
        }
    }
}

impl IptablesConfig {
    /// The same configuration with every command run through `prefix` (e.g.
    /// `["ip", "netns", "exec", "NAME"]`).
    pub fn with_command_prefix(mut self, prefix: &[&str]) -> Self {
        for command in [
            &mut self.iptables_restore_command,
            &mut self.iptables_save_command,
            &mut self.conntrack_command,
        ] {
            let mut full: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            full.append(command);
            *command = full;
        }
        self
    }
}
