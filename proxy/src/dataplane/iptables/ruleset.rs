//! The rules as `iptables-restore` text: what one service port contributes (its own chains
//! and its lines in the shared dispatch chains), the fixed chains, and the jumps from the
//! built-in chains.
//!
//! Shape (kube-proxy's iptables mode, see docs/decisions.md): `SKIFF-SERVICES` matches each
//! address and port and jumps to the service port's `SKIFF-SVC-…` (cluster traffic) or
//! `SKIFF-EXT-…` (external addresses and NodePorts) chain, which picks a `SKIFF-SEP-…`
//! endpoint chain by a `statistic` cascade; the endpoint chain DNATs. Addresses without
//! usable endpoints are rejected (or dropped) in the filter table.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::config::IptablesConfig;
use super::names::{
    self, EXTERNAL_SERVICES, FILTER_SERVICES, MARK_MASQ, NODEPORTS, POSTROUTING, SERVICES,
};
use crate::dataplane::endpoints::{self, split, v4};
use crate::model::{Endpoint, ServicePort, ServicePortName};

/// The tables this backend writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// The chains every service port adds lines to; rewritten whole when their content changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dispatch {
    /// `nat SKIFF-SERVICES`: address and port → the service port's chain.
    Services,
    /// `nat SKIFF-NODEPORTS`: NodePort → the service port's external chain.
    NodePorts,
    /// `filter SKIFF-SERVICES`: ClusterIPs without endpoints for cluster traffic.
    FilterServices,
    /// `filter SKIFF-EXTERNAL-SERVICES`: external addresses and NodePorts without endpoints
    /// for external traffic.
    FilterExternal,
}

impl Dispatch {
    pub const ALL: [Dispatch; 4] = [
        Dispatch::Services,
        Dispatch::NodePorts,
        Dispatch::FilterServices,
        Dispatch::FilterExternal,
    ];

    pub fn table(self) -> Table {
        match self {
            Dispatch::Services | Dispatch::NodePorts => Table::Nat,
            Dispatch::FilterServices | Dispatch::FilterExternal => Table::Filter,
        }
    }

    pub fn chain(self) -> &'static str {
        match self {
            Dispatch::Services => SERVICES,
            Dispatch::NodePorts => NODEPORTS,
            Dispatch::FilterServices => FILTER_SERVICES,
            Dispatch::FilterExternal => EXTERNAL_SERVICES,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Rules (the text after `-A CHAIN `) by dispatch chain.
pub type DispatchRules = [Vec<String>; 4];

/// What one service port programs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Its own `nat` chains (service, external and endpoint chains) and their rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Its lines in each dispatch chain.
    pub dispatch: DispatchRules,
}

impl ServiceRules {
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.dispatch.iter().all(Vec::is_empty)
    }

    pub fn dispatch(&self, d: Dispatch) -> &[String] {
        &self.dispatch[d.index()]
    }

    fn push(&mut self, d: Dispatch, rule: String) {
        self.dispatch[d.index()].push(rule);
    }

    /// Rules in its own chains.
    pub fn chain_rules(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

const REJECT: &str = "REJECT --reject-with icmp-port-unreachable";

/// Rules choosing among `eps`: with affinity, a client seen recently goes back to its
/// endpoint (`recent` lists are named after the endpoint chains, which record the client);
/// then rule *i* takes 1/(n-i) of what the earlier rules left, so each endpoint gets 1/n.
fn cascade(eps: &[String], affinity: Option<u64>, rules: &mut Vec<String>) {
    if let Some(seconds) = affinity {
        for chain in eps {
            rules.push(format!(
                "-m recent --name {chain} --rcheck --seconds {seconds} --reap -j {chain}"
            ));
        }
    }
    let n = eps.len();
    for (i, chain) in eps.iter().enumerate() {
        if i + 1 < n {
            let probability = 1.0 / (n - i) as f64;
            rules.push(format!(
                "-m statistic --mode random --probability {probability:.10} -j {chain}"
            ));
        } else {
            rules.push(format!("-j {chain}"));
        }
    }
}

/// Everything one service port programs (nothing when it has no IPv4 cluster IP).
pub fn service_rules(
    cfg: &IptablesConfig,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> ServiceRules {
    let mut out = ServiceRules::default();
    if !endpoints::programs(port) {
        return out;
    }
    let split = split(cfg.node_name.as_deref(), port, endpoints);
    let proto = name.protocol.as_str();
    let affinity = port.affinity.map(|d| d.as_secs().max(1));
    let svc = names::service_chain(name);
    let ext = names::external_chain(name);
    let sep = |ep: &(Ipv4Addr, u16)| names::endpoint_chain(name, &format!("{}:{}", ep.0, ep.1));

    let external_served = endpoints::has_external(port) && !split.external.is_empty();
    // Chains only for the endpoints some traffic is sent to.
    for ep in split
        .all
        .iter()
        .filter(|e| split.cluster.contains(e) || (external_served && split.external.contains(e)))
    {
        let chain = sep(ep);
        let record = if affinity.is_some() {
            format!("-m recent --name {chain} --set ")
        } else {
            String::new()
        };
        // An endpoint reaching itself through its Service (hairpin) must see the reply
        // come from the node, not from itself: masquerade it.
        let rules = vec![
            format!("-s {}/32 -j {MARK_MASQ}", ep.0),
            format!(
                "-p {proto} {record}-j DNAT --to-destination {}:{}",
                ep.0, ep.1
            ),
        ];
        out.chains.insert(chain, rules);
    }

    let cluster_ips: Vec<Ipv4Addr> = v4(&port.cluster_ips).collect();
    let match_port =
        |ip: &Ipv4Addr| format!("-d {ip}/32 -p {proto} -m {proto} --dport {}", port.port);
    if !split.cluster.is_empty() {
        let mut rules = Vec::new();
        if let Some(cidr) = cfg.cluster_cidr {
            // Only traffic addressed to the ClusterIP: external traffic passing through this
            // chain keeps its source with `externalTrafficPolicy: Local`.
            for ip in &cluster_ips {
                rules.push(format!("{} ! -s {cidr} -j {MARK_MASQ}", match_port(ip)));
            }
        }
        let chains: Vec<String> = split.cluster.iter().map(sep).collect();
        cascade(&chains, affinity, &mut rules);
        out.chains.insert(svc.clone(), rules);
    }
    if external_served {
        let mut rules = Vec::new();
        // With `externalTrafficPolicy: Local` the client's address is kept, which is the
        // point of the policy.
        if !port.external_local {
            rules.push(format!("-j {MARK_MASQ}"));
        }
        if split.ext_chain {
            let chains: Vec<String> = split.external.iter().map(sep).collect();
            cascade(&chains, affinity, &mut rules);
        } else {
            rules.push(format!("-j {svc}"));
        }
        out.chains.insert(ext.clone(), rules);
    }

    // With endpoints elsewhere but none for this kind of traffic here (a `Local` policy),
    // traffic is dropped, as kube-proxy does; with none at all it is rejected.
    let (refuse, why) = if split.all.is_empty() {
        (REJECT, "has no endpoints")
    } else {
        ("DROP", "has no local endpoints")
    };
    for ip in &cluster_ips {
        if split.cluster.is_empty() {
            let rule = format!(
                "{} {} -j {refuse}",
                names::comment(name, why),
                match_port(ip)
            );
            out.push(Dispatch::FilterServices, rule);
        } else {
            let rule = format!(
                "{} {} -j {svc}",
                names::comment(name, "cluster IP"),
                match_port(ip)
            );
            out.push(Dispatch::Services, rule);
        }
    }
    let external_ips = v4(&port.external_ips)
        .map(|ip| (ip, "external IP"))
        .chain(v4(&port.load_balancer_ips).map(|ip| (ip, "load balancer IP")));
    for (ip, what) in external_ips {
        if external_served {
            let rule = format!(
                "{} {} -j {ext}",
                names::comment(name, what),
                match_port(&ip)
            );
            out.push(Dispatch::Services, rule);
        } else {
            let rule = format!(
                "{} {} -j {refuse}",
                names::comment(name, why),
                match_port(&ip)
            );
            out.push(Dispatch::FilterExternal, rule);
        }
    }
    if let Some(node_port) = port.node_port {
        let match_node_port = format!("-p {proto} -m {proto} --dport {node_port}");
        if external_served {
            let rule = format!(
                "{} {match_node_port} -j {ext}",
                names::comment(name, "node port")
            );
            out.push(Dispatch::NodePorts, rule);
        } else {
            // Only on the addresses NodePorts answer on: the same port on a pod's address
            // is none of our business.
            for address in &cfg.node_port_addresses {
                let rule = format!(
                    "{} -d {address}/32 {match_node_port} -j {refuse}",
                    names::comment(name, why)
                );
                out.push(Dispatch::FilterExternal, rule);
            }
        }
    }
    out
}

/// The rules that end a dispatch chain whatever the Services: NodePorts are looked up last,
/// for traffic to the configured node addresses.
pub fn dispatch_tail(cfg: &IptablesConfig, d: Dispatch) -> Vec<String> {
    if d != Dispatch::Services {
        return Vec::new();
    }
    cfg.node_port_addresses
        .iter()
        .map(|address| {
            format!(
                "-m comment --comment \"skiff node ports; must be last\" -d {address}/32 -j {NODEPORTS}"
            )
        })
        .collect()
}

/// A dispatch chain's whole content, from the service ports' lines in name order (so when
/// two Services claim one address and port, the first by `namespace/name` holds it).
pub fn dispatch_chain<'a>(
    cfg: &IptablesConfig,
    d: Dispatch,
    services: impl Iterator<Item = &'a ServiceRules>,
) -> Vec<String> {
    let mut rules: Vec<String> = services
        .flat_map(|s| s.dispatch(d).iter().cloned())
        .collect();
    rules.extend(dispatch_tail(cfg, d));
    rules
}

/// The fixed chains with fixed content (the dispatch chains are [`Dispatch`]).
pub fn fixed_chains(cfg: &IptablesConfig) -> Vec<(Table, &'static str, Vec<String>)> {
    let mark = format!("{:#x}", cfg.masquerade_mark);
    vec![
        (
            Table::Nat,
            MARK_MASQ,
            vec![format!("-j MARK --or-mark {mark}")],
        ),
        (
            Table::Nat,
            POSTROUTING,
            vec![
                format!("-m mark ! --mark {mark}/{mark} -j RETURN"),
                // Cleared so a packet that is encapsulated and comes back is not
                // masqueraded twice.
                format!("-j MARK --xor-mark {mark}"),
                "-j MASQUERADE --random-fully".to_string(),
            ],
        ),
    ]
}

/// A rule in a chain that is not ours (a built-in chain) that jumps to one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub table: Table,
    pub chain: &'static str,
    pub rule: String,
    pub target: &'static str,
}

/// The jumps from the built-in chains into ours. New connections only in filter: the
/// reject rules are for connections that would have been DNATed.
pub fn jumps() -> Vec<Jump> {
    let mut out = Vec::new();
    let mut add = |table, chain, rule: &str, target| {
        out.push(Jump {
            table,
            chain,
            rule: format!("{rule} -j {target}"),
            target,
        })
    };
    let portals = "-m comment --comment \"skiff service portals\"";
    add(Table::Nat, "PREROUTING", portals, SERVICES);
    add(Table::Nat, "OUTPUT", portals, SERVICES);
    add(
        Table::Nat,
        "POSTROUTING",
        "-m comment --comment \"skiff postrouting rules\"",
        POSTROUTING,
    );
    for chain in ["INPUT", "FORWARD", "OUTPUT"] {
        add(
            Table::Filter,
            chain,
            "-m conntrack --ctstate NEW -m comment --comment \"skiff services without endpoints\"",
            FILTER_SERVICES,
        );
        add(
            Table::Filter,
            chain,
            "-m conntrack --ctstate NEW -m comment --comment \"skiff external services without endpoints\"",
            EXTERNAL_SERVICES,
        );
    }
    out
}

/// Rules in the fixed chains and the jumps: what every sync has besides the Services.
pub fn fixed_rules(cfg: &IptablesConfig) -> usize {
    fixed_chains(cfg)
        .iter()
        .map(|(_, _, r)| r.len())
        .sum::<usize>()
        + jumps().len()
}

/// The chains of ours and the jumps into them that a table holds, from `iptables-save`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// `(table, chain)` of every chain whose name starts with `SKIFF-`.
    pub chains: Vec<(Table, String)>,
    /// Rules in other chains that jump to ours: table, chain, the rule after `-A CHAIN `,
    /// and the target.
    pub jumps: Vec<(Table, String, String, String)>,
}

impl Existing {
    /// Adds what `iptables-save -t <table>` printed.
    pub fn parse(&mut self, table: Table, save: &str) {
        for line in save.lines() {
            if let Some(chain) = line.strip_prefix(':') {
                let chain = chain.split_whitespace().next().unwrap_or_default();
                if chain.starts_with(names::PREFIX) {
                    self.chains.push((table, chain.to_string()));
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let Some((chain, spec)) = rule.split_once(' ') else {
                    continue;
                };
                if chain.starts_with(names::PREFIX) {
                    continue;
                }
                let target = spec
                    .rsplit_once("-j ")
                    .and_then(|(_, t)| t.split_whitespace().next())
                    .or_else(|| {
                        spec.rsplit_once("-g ")
                            .and_then(|(_, t)| t.split_whitespace().next())
                    });
                if let Some(target) = target.filter(|t| t.starts_with(names::PREFIX)) {
                    self.jumps.push((
                        table,
                        chain.to_string(),
                        spec.to_string(),
                        target.to_string(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    #[test]
    fn the_cascade_gives_each_endpoint_an_equal_share() {
        let mut rules = Vec::new();
        cascade(&["A".into(), "B".into(), "C".into()], None, &mut rules);
        assert_eq!(
            rules,
            [
                "-m statistic --mode random --probability 0.3333333333 -j A",
                "-m statistic --mode random --probability 0.5000000000 -j B",
                "-j C",
            ]
        );
    }

    #[test]
    fn existing_chains_and_jumps_are_read_from_iptables_save() {
        let save = "# Generated by iptables-save v1.8.9 (nf_tables)\n\
            *nat\n\
            :PREROUTING ACCEPT [0:0]\n\
            :SKIFF-SERVICES - [0:0]\n\
            :SKIFF-SVC-ABC - [0:0]\n\
            :OTHER - [0:0]\n\
            -A PREROUTING -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES\n\
            -A PREROUTING -j OTHER\n\
            -A SKIFF-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j SKIFF-SVC-ABC\n\
            COMMIT\n";
        let mut existing = Existing::default();
        existing.parse(Table::Nat, save);
        assert_eq!(
            existing.chains,
            [
                (Table::Nat, "SKIFF-SERVICES".to_string()),
                (Table::Nat, "SKIFF-SVC-ABC".to_string())
            ]
        );
        assert_eq!(
            existing.jumps,
            [(
                Table::Nat,
                "PREROUTING".to_string(),
                "-m comment --comment \"skiff service portals\" -j SKIFF-SERVICES".to_string(),
                "SKIFF-SERVICES".to_string()
            )]
        );
    }

    #[test]
    fn an_ipv6_only_service_is_not_programmed() {
        let name = ServicePortName {
            namespace: "default".into(),
            name: "v6".into(),
            port: "".into(),
            protocol: Protocol::Tcp,
        };
        let port = ServicePort {
            cluster_ips: vec!["fd00::1".parse().unwrap()],
            port: 80,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
        };
        let rules = service_rules(&IptablesConfig::default(), &name, &port, &[]);
        assert!(rules.is_empty());
    }
}
