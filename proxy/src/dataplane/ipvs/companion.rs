//! The ipsets and iptables rules IPVS needs beside it, as text for `ipset restore` and
//! `iptables-restore --noflush`.
//!
//! IPVS balances but neither masquerades nor rejects. As in kube-proxy's IPVS mode, the
//! iptables rules are fixed and match ipsets, so a Service change touches only set
//! entries: the rules are written on full syncs alone.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::config::IpvsConfig;

/// The ipsets of the IPVS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpSet {
    /// `cluster-ip,proto:port` of every service port: masqueraded from outside the cluster
    /// CIDR.
    ClusterIp,
    /// `endpoint,proto:port,endpoint`: a pod reaching itself through a Service (hairpin).
    LoopBack,
    /// `external-ip,proto:port` with `externalTrafficPolicy: Cluster`: masqueraded.
    ExternalIp,
    /// `lb-ip,proto:port` with `externalTrafficPolicy: Cluster`: masqueraded.
    LoadBalancer,
    /// NodePorts with `externalTrafficPolicy: Cluster`, per protocol: masqueraded.
    NodePortTcp,
    NodePortUdp,
    /// `node-ip,sctp:port` (bitmap:port sets carry no protocol, and SCTP is rare).
    NodePortSctp,
    /// `address,proto:port` of service ports without usable endpoints: rejected.
    NoEndpoints,
}

/// One ipset entry.
pub type Entry = (IpSet, String);

impl IpSet {
    pub const ALL: [IpSet; 8] = [
        IpSet::ClusterIp,
        IpSet::LoopBack,
        IpSet::ExternalIp,
        IpSet::LoadBalancer,
        IpSet::NodePortTcp,
        IpSet::NodePortUdp,
        IpSet::NodePortSctp,
        IpSet::NoEndpoints,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IpSet::ClusterIp => "SKIFF-CLUSTER-IP",
            IpSet::LoopBack => "SKIFF-LOOP-BACK",
            IpSet::ExternalIp => "SKIFF-EXTERNAL-IP",
            IpSet::LoadBalancer => "SKIFF-LOAD-BALANCER",
            IpSet::NodePortTcp => "SKIFF-NODE-PORT-TCP",
            IpSet::NodePortUdp => "SKIFF-NODE-PORT-UDP",
            IpSet::NodePortSctp => "SKIFF-NODE-PORT-SCTP",
            IpSet::NoEndpoints => "SKIFF-NO-ENDPOINTS",
        }
    }

    fn create_args(self) -> &'static str {
        match self {
            IpSet::LoopBack => "hash:ip,port,ip family inet hashsize 1024 maxelem 1048576",
            IpSet::NodePortTcp | IpSet::NodePortUdp => "bitmap:port range 0-65535",
            _ => "hash:ip,port family inet hashsize 1024 maxelem 1048576",
        }
    }
}

/// `ipset restore` text that creates every set (if missing) and makes its entries exactly
/// `entries`.
pub fn ipset_full(entries: &BTreeSet<Entry>) -> String {
    let mut out = String::with_capacity(64 * entries.len() + 1024);
    for set in IpSet::ALL {
        let _ = writeln!(out, "create {} {} -exist", set.name(), set.create_args());
        let _ = writeln!(out, "flush {}", set.name());
    }
    for (set, entry) in entries {
        let _ = writeln!(out, "add {} {entry}", set.name());
    }
    out
}

/// `ipset restore` text that adds and deletes entries; `-exist` keeps a repeated change
/// from failing the whole batch.
pub fn ipset_changes(add: &[Entry], del: &[Entry]) -> String {
    let mut out = String::new();
    for (set, entry) in add {
        let _ = writeln!(out, "add {} {entry} -exist", set.name());
    }
    for (set, entry) in del {
        let _ = writeln!(out, "del {} {entry} -exist", set.name());
    }
    out
}

/// `ipset restore` text that removes every set (each is first created if missing, since
/// `destroy` of an unknown set fails the batch).
pub fn ipset_destroy() -> String {
    let mut out = String::new();
    for set in IpSet::ALL {
        let _ = writeln!(out, "create {} {} -exist", set.name(), set.create_args());
        let _ = writeln!(out, "destroy {}", set.name());
    }
    out
}

pub const SERVICES: &str = "SKIFF-IPVS-SERVICES";
pub const NODE_PORT: &str = "SKIFF-IPVS-NODE-PORT";
pub const POSTROUTING: &str = "SKIFF-IPVS-POSTROUTING";
pub const MARK_MASQ: &str = "SKIFF-IPVS-MARK-MASQ";
pub const FILTER: &str = "SKIFF-IPVS-FILTER";

/// Our chains, by table.
pub const CHAINS: [(&str, &[&str]); 2] = [
    ("nat", &[SERVICES, NODE_PORT, POSTROUTING, MARK_MASQ]),
    ("filter", &[FILTER]),
];

/// The jumps from the built-in chains into ours: (table, chain, rule arguments).
pub fn jumps() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("nat", "PREROUTING", vec!["-j", SERVICES]),
        ("nat", "OUTPUT", vec!["-j", SERVICES]),
        ("nat", "POSTROUTING", vec!["-j", POSTROUTING]),
        (
            "filter",
            "INPUT",
            vec!["-m", "conntrack", "--ctstate", "NEW", "-j", FILTER],
        ),
        (
            "filter",
            "FORWARD",
            vec!["-m", "conntrack", "--ctstate", "NEW", "-j", FILTER],
        ),
        (
            "filter",
            "OUTPUT",
            vec!["-m", "conntrack", "--ctstate", "NEW", "-j", FILTER],
        ),
    ]
}

/// `iptables-restore --noflush` text for our chains: declaring a chain empties it, so this
/// replaces exactly our rules and nothing else.
pub fn iptables_rules(cfg: &IpvsConfig) -> String {
    let mark = format!("{:#x}", cfg.masquerade_mark);
    let set = |s: IpSet| s.name();
    let mut out = String::from("*nat\n");
    for chain in CHAINS[0].1 {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    let _ = writeln!(out, "-A {MARK_MASQ} -j MARK --or-mark {mark}");
    // Hairpin first: a pod answered by itself must see the node, not itself, as the peer.
    let _ = writeln!(
        out,
        "-A {POSTROUTING} -m set --match-set {} dst,dst,src -j MASQUERADE",
        set(IpSet::LoopBack)
    );
    let _ = writeln!(
        out,
        "-A {POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"
    );
    let _ = writeln!(out, "-A {POSTROUTING} -j MARK --xor-mark {mark}");
    let _ = writeln!(out, "-A {POSTROUTING} -j MASQUERADE --random-fully");
    if let Some(cidr) = cfg.cluster_cidr {
        let _ = writeln!(
            out,
            "-A {SERVICES} ! -s {cidr} -m set --match-set {} dst,dst -j {MARK_MASQ}",
            set(IpSet::ClusterIp)
        );
    }
    for s in [IpSet::ExternalIp, IpSet::LoadBalancer] {
        let _ = writeln!(
            out,
            "-A {SERVICES} -m set --match-set {} dst,dst -j {MARK_MASQ}",
            s.name()
        );
    }
    let _ = writeln!(
        out,
        "-A {SERVICES} -m addrtype --dst-type LOCAL -j {NODE_PORT}"
    );
    for (proto, s, dims) in [
        ("tcp", IpSet::NodePortTcp, "dst"),
        ("udp", IpSet::NodePortUdp, "dst"),
        ("sctp", IpSet::NodePortSctp, "dst,dst"),
    ] {
        let _ = writeln!(
            out,
            "-A {NODE_PORT} -p {proto} -m set --match-set {} {dims} -j {MARK_MASQ}",
            s.name()
        );
    }
    out.push_str("COMMIT\n*filter\n");
    let _ = writeln!(out, ":{FILTER} - [0:0]");
    // ICMP port unreachable: the client sees "connection refused" at once.
    let _ = writeln!(
        out,
        "-A {FILTER} -m set --match-set {} dst,dst -j REJECT --reject-with icmp-port-unreachable",
        set(IpSet::NoEndpoints)
    );
    out.push_str("COMMIT\n");
    out
}

/// `iptables-restore --noflush` text that empties and deletes our chains (the jumps into
/// them must be gone first).
pub fn iptables_cleanup() -> String {
    let mut out = String::new();
    for (table, chains) in CHAINS {
        let _ = writeln!(out, "*{table}");
        for chain in chains {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        for chain in chains {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipset_text_for_a_small_state() {
        let entries: BTreeSet<Entry> = [
            (IpSet::ClusterIp, "10.96.0.1,tcp:80".to_string()),
            (
                IpSet::LoopBack,
                "10.244.1.5,tcp:8080,10.244.1.5".to_string(),
            ),
            (IpSet::NodePortTcp, "30080".to_string()),
            (IpSet::NoEndpoints, "10.96.0.2,udp:53".to_string()),
        ]
        .into_iter()
        .collect();
        let text = ipset_full(&entries);
        assert!(text.starts_with(
            "create SKIFF-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 1048576 -exist\n\
             flush SKIFF-CLUSTER-IP\n\
             create SKIFF-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 1048576 -exist\n"
        ));
        assert!(text.contains("create SKIFF-NODE-PORT-TCP bitmap:port range 0-65535 -exist\n"));
        assert!(text.ends_with(
            "add SKIFF-CLUSTER-IP 10.96.0.1,tcp:80\n\
             add SKIFF-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5\n\
             add SKIFF-NODE-PORT-TCP 30080\n\
             add SKIFF-NO-ENDPOINTS 10.96.0.2,udp:53\n"
        ));
        assert_eq!(
            ipset_changes(
                &[(IpSet::ExternalIp, "192.0.2.1,tcp:443".into())],
                &[(IpSet::NoEndpoints, "10.96.0.2,udp:53".into())]
            ),
            "add SKIFF-EXTERNAL-IP 192.0.2.1,tcp:443 -exist\ndel SKIFF-NO-ENDPOINTS 10.96.0.2,udp:53 -exist\n"
        );
        assert_eq!(
            ipset_destroy().matches("destroy ").count(),
            IpSet::ALL.len()
        );
    }

    #[test]
    fn iptables_text_masquerades_and_rejects() {
        let mut cfg = IpvsConfig::new();
        cfg.cluster_cidr = Some("10.244.0.0/16".parse().unwrap());
        let text = iptables_rules(&cfg);
        assert_eq!(
            text,
            "*nat\n\
             :SKIFF-IPVS-SERVICES - [0:0]\n\
             :SKIFF-IPVS-NODE-PORT - [0:0]\n\
             :SKIFF-IPVS-POSTROUTING - [0:0]\n\
             :SKIFF-IPVS-MARK-MASQ - [0:0]\n\
             -A SKIFF-IPVS-MARK-MASQ -j MARK --or-mark 0x4000\n\
             -A SKIFF-IPVS-POSTROUTING -m set --match-set SKIFF-LOOP-BACK dst,dst,src -j MASQUERADE\n\
             -A SKIFF-IPVS-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
             -A SKIFF-IPVS-POSTROUTING -j MARK --xor-mark 0x4000\n\
             -A SKIFF-IPVS-POSTROUTING -j MASQUERADE --random-fully\n\
             -A SKIFF-IPVS-SERVICES ! -s 10.244.0.0/16 -m set --match-set SKIFF-CLUSTER-IP dst,dst -j SKIFF-IPVS-MARK-MASQ\n\
             -A SKIFF-IPVS-SERVICES -m set --match-set SKIFF-EXTERNAL-IP dst,dst -j SKIFF-IPVS-MARK-MASQ\n\
             -A SKIFF-IPVS-SERVICES -m set --match-set SKIFF-LOAD-BALANCER dst,dst -j SKIFF-IPVS-MARK-MASQ\n\
             -A SKIFF-IPVS-SERVICES -m addrtype --dst-type LOCAL -j SKIFF-IPVS-NODE-PORT\n\
             -A SKIFF-IPVS-NODE-PORT -p tcp -m set --match-set SKIFF-NODE-PORT-TCP dst -j SKIFF-IPVS-MARK-MASQ\n\
             -A SKIFF-IPVS-NODE-PORT -p udp -m set --match-set SKIFF-NODE-PORT-UDP dst -j SKIFF-IPVS-MARK-MASQ\n\
             -A SKIFF-IPVS-NODE-PORT -p sctp -m set --match-set SKIFF-NODE-PORT-SCTP dst,dst -j SKIFF-IPVS-MARK-MASQ\n\
             COMMIT\n\
             *filter\n\
             :SKIFF-IPVS-FILTER - [0:0]\n\
             -A SKIFF-IPVS-FILTER -m set --match-set SKIFF-NO-ENDPOINTS dst,dst -j REJECT --reject-with icmp-port-unreachable\n\
             COMMIT\n"
        );
        // Without a cluster CIDR, ClusterIP traffic keeps its source.
        assert!(!iptables_rules(&IpvsConfig::new()).contains("SKIFF-CLUSTER-IP"));
        let cleanup = iptables_cleanup();
        assert!(cleanup.contains(":SKIFF-IPVS-FILTER - [0:0]\n-X SKIFF-IPVS-FILTER\nCOMMIT\n"));
        assert_eq!(jumps().len(), 6);
    }
}
