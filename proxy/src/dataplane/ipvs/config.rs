//! What the IPVS backend is told at start-up.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::dataplane::cidr::Ipv4Cidr;

/// Configuration of [`super::Ipvs`].
#[derive(Debug, Clone)]
pub struct IpvsConfig {
    /// The dummy device the service addresses are bound to (created when missing).
    pub device: String,
    /// Its link type: `dummy`, as kube-proxy's. Any type whose addresses are local and that
    /// routes nothing will do (`ifb` on a kernel built without the dummy driver).
    pub device_kind: String,
    /// The IPVS scheduler of every virtual server (`rr`, `wrr`, `lc`, `sh`, …).
    pub scheduler: String,
    /// The network namespace to program (a path such as `/run/netns/NAME`); `None` is this
    /// process's own. The command fields below must point at the same namespace.
    pub netns: Option<PathBuf>,
    /// `ip`, or a prefix that runs it elsewhere (`["ip", "-n", "NAME"]`).
    pub ip_command: Vec<String>,
    /// `ipset`, read with `restore` on stdin.
    pub ipset_command: Vec<String>,
    /// `iptables-restore`, run with `--noflush`.
    pub iptables_restore_command: Vec<String>,
    /// `iptables`, for the jumps from the built-in chains.
    pub iptables_command: Vec<String>,
    /// `sysctl`, for the `net.ipv4.vs.*` settings IPVS NAT needs.
    pub sysctl_command: Vec<String>,
    /// The `conntrack` command that deletes stale UDP flows.
    pub conntrack_command: Vec<String>,
    /// Pod addresses: traffic to a ClusterIP from outside them is masqueraded.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// This node's name: endpoints on it serve the `Local` traffic policies.
    pub node_name: Option<String>,
    /// The node addresses NodePorts answer on: a virtual server on each.
    pub node_port_addresses: Vec<Ipv4Addr>,
    /// The packet-mark bit that asks for masquerading in postrouting.
    pub masquerade_mark: u32,
}

impl IpvsConfig {
    /// Defaults: device `skiff-ipvs0`, scheduler `rr`, the host's own tools.
    pub fn new() -> Self {
        let one = |s: &str| vec![s.to_string()];
        IpvsConfig {
            device: "skiff-ipvs0".to_string(),
            device_kind: "dummy".to_string(),
            scheduler: "rr".to_string(),
            netns: None,
            ip_command: one("ip"),
            ipset_command: one("ipset"),
            iptables_restore_command: one("iptables-restore"),
            iptables_command: one("iptables"),
            sysctl_command: one("sysctl"),
            conntrack_command: one("conntrack"),
            cluster_cidr: None,
            node_name: None,
            node_port_addresses: Vec::new(),
            masquerade_mark: 0x4000,
        }
    }

    /// Points every command and the netlink socket at the named namespace
    /// (`ip netns add NAME`).
    pub fn in_netns(mut self, name: &str) -> Self {
        let prefix = |tool: &str| {
            ["ip", "netns", "exec", name, tool]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        self.netns = Some(PathBuf::from(format!("/run/netns/{name}")));
        self.ip_command = vec!["ip".into(), "-n".into(), name.into()];
        self.ipset_command = prefix("ipset");
        self.iptables_restore_command = prefix("iptables-restore");
        self.iptables_command = prefix("iptables");
        self.sysctl_command = prefix("sysctl");
        self.conntrack_command = prefix("conntrack");
        self
    }
}

impl Default for IpvsConfig {
    fn default() -> Self {
        Self::new()
    }
}
