//! The ruleset as `nft -f` text: the fixed skeleton, one chain per service port, and the
//! elements of the table's named sets and maps.
//!
//! Shape (see docs/decisions.md): per service port there is exactly one chain and a few map
//! elements — no anonymous sets and no per-endpoint chains, because creating many set
//! objects in one table is what makes a kube-proxy-style full load slow. Endpoints are chosen
//! by a cascade of `numgen random mod k == 0` rules (uniform, like iptables' statistic
//! cascade) that DNAT directly; hairpin traffic is caught in postrouting by one named set of
//! `endpoint . endpoint` pairs instead of a rule per endpoint.
//!
//! Every function writes one family's table: the `ip` and `ip6` tables have the same shape,
//! and each holds only its family's addresses, so a dual-stack Service's IPv4 cluster IP
//! reaches its IPv4 endpoints and its IPv6 cluster IP its IPv6 ones.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{Endpoint, ServicePort, ServicePortName, usable_endpoints};

use super::config::NftablesConfig;
use super::family::Family;

/// The table's named sets and maps that hold per-service elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Collection {
    /// `address . protocol . port : goto service-chain` for ClusterIPs, externalIPs and
    /// load-balancer addresses.
    ServiceIps,
    /// `address . protocol . port` of ClusterIPs with endpoints: traffic to them from
    /// outside the cluster CIDR is masqueraded. One rule in the `services` chain matches
    /// it, instead of a rule in every service chain, which keeps the chains the kernel
    /// walks on each commit short.
    ClusterKeys,
    /// `address . protocol . port` of externalIPs and load-balancer addresses: traffic to
    /// them comes from outside and is masqueraded.
    ExternalKeys,
    /// `protocol . node-port : goto service-chain`.
    NodePorts,
    /// `protocol . node-port` of every programmed NodePort, for masquerade marking.
    NodePortKeys,
    /// `address . protocol . port : goto reject-service` for services without usable endpoints.
    NoEndpointServices,
    /// `protocol . node-port : goto reject-service` for NodePorts without usable endpoints.
    NoEndpointNodePorts,
    /// `endpoint . endpoint`: a pod reaching itself through a Service is masqueraded.
    Hairpin,
}

impl Collection {
    pub const ALL: [Collection; 8] = [
        Collection::ServiceIps,
        Collection::ClusterKeys,
        Collection::ExternalKeys,
        Collection::NodePorts,
        Collection::NodePortKeys,
        Collection::NoEndpointServices,
        Collection::NoEndpointNodePorts,
        Collection::Hairpin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::ServiceIps => "service-ips",
            Collection::ClusterKeys => "cluster-keys",
            Collection::ExternalKeys => "external-keys",
            Collection::NodePorts => "service-nodeports",
            Collection::NodePortKeys => "nodeport-keys",
            Collection::NoEndpointServices => "no-endpoint-services",
            Collection::NoEndpointNodePorts => "no-endpoint-nodeports",
            Collection::Hairpin => "hairpin",
        }
    }

    /// The type of the set or map's elements.
    fn element_type(self, family: Family) -> String {
        let addr = family.addr_type();
        match self {
            Collection::ServiceIps | Collection::NoEndpointServices => {
                format!("{addr} . inet_proto . inet_service : verdict")
            }
            Collection::ClusterKeys | Collection::ExternalKeys => {
                format!("{addr} . inet_proto . inet_service")
            }
            Collection::NodePorts | Collection::NoEndpointNodePorts => {
                "inet_proto . inet_service : verdict".to_string()
            }
            Collection::NodePortKeys => "inet_proto . inet_service".to_string(),
            Collection::Hairpin => format!("{addr} . {addr}"),
        }
    }

    /// Whether the collection lives in the NAT tables (with the service chains its verdicts
    /// point at) or in the main table.
    pub fn in_nat_table(self) -> bool {
        !matches!(
            self,
            Collection::NoEndpointServices | Collection::NoEndpointNodePorts | Collection::Hairpin
        )
    }

    fn is_map(self) -> bool {
        !matches!(
            self,
            Collection::ClusterKeys
                | Collection::ExternalKeys
                | Collection::NodePortKeys
                | Collection::Hairpin
        )
    }
}

/// Every element of the table's collections: (collection, key) → value ("" for sets).
pub type Elements = BTreeMap<(Collection, String), String>;

/// The chain that DNATs one service port's traffic. Names are readable and unique: the parts
/// are API names that cannot contain `/`; anything nft would not take as an identifier is
/// replaced and a hash of the original keeps the name unique.
pub fn chain_name(name: &ServicePortName) -> String {
    let raw = format!(
        "svc-{}/{}/{}/{}",
        name.namespace,
        name.name,
        name.protocol.as_str(),
        name.port
    );
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == raw {
        return raw;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut hasher);
    format!("{clean}-{:016x}", hasher.finish())
}

/// The addresses of one family in a list.
fn of(family: Family, ips: &[IpAddr]) -> impl Iterator<Item = IpAddr> + '_ {
    ips.iter().copied().filter(move |ip| family.has(ip))
}

/// The endpoints of one family that take new connections. Each family is judged on its
/// own (its terminating endpoints serve when none of *its* endpoints is ready), as
/// kube-proxy's per-family proxiers do.
pub fn family_endpoints(family: Family, endpoints: &[Endpoint]) -> Vec<(IpAddr, u16)> {
    let own: Vec<Endpoint> = endpoints
        .iter()
        .filter(|e| family.has(&e.ip))
        .cloned()
        .collect();
    usable_endpoints(&own)
        .into_iter()
        .map(|e| (e.ip, e.port))
        .collect()
}

/// Whether one family's table programs the service port at all (it has a cluster IP of
/// that family).
pub fn programs(family: Family, port: &ServicePort) -> bool {
    of(family, &port.cluster_ips).next().is_some()
}

/// A ClientIP-affinity set: the clients recently sent to one endpoint of a service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AffinitySet {
    pub name: String,
    pub family: Family,
    pub timeout_secs: u64,
}

impl AffinitySet {
    /// The `add set` body after the table.
    pub fn declaration(&self) -> String {
        format!(
            "{} {{ type {}; flags dynamic,timeout; timeout {}s; }}",
            self.name,
            self.family.addr_type(),
            self.timeout_secs
        )
    }
}

/// The affinity sets of a service port with `sessionAffinity: ClientIP`, one per usable
/// endpoint, named after the endpoint so a client stays with it across endpoint changes.
/// Only Services that ask for affinity pay for these objects.
pub fn affinity_sets(
    family: Family,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Vec<AffinitySet> {
    let Some(timeout) = port.affinity else {
        return Vec::new();
    };
    let base = chain_name(name);
    let base = base.strip_prefix("svc-").unwrap_or(&base);
    family_endpoints(family, endpoints)
        .into_iter()
        .map(|(ip, p)| AffinitySet {
            // nft identifiers take no `:`; IPv6 addresses are written with `-` instead.
            name: format!("aff-{base}/{}/{p}", ip.to_string().replace(':', "-")),
            family,
            timeout_secs: timeout.as_secs().max(1),
        })
        .collect()
}

/// The chain for traffic to a service port's external addresses and NodePort, when its
/// endpoints differ from the cluster chain's (a `Local` traffic policy).
pub fn ext_chain_name(name: &ServicePortName) -> String {
    let chain = chain_name(name);
    format!("ext-{}", chain.strip_prefix("svc-").unwrap_or(&chain))
}

/// Which endpoints each kind of traffic goes to, after the traffic policies.
struct Split {
    /// Every usable endpoint.
    all: Vec<(IpAddr, u16)>,
    /// For ClusterIP traffic (this node's only, with `internalTrafficPolicy: Local`).
    cluster: Vec<(IpAddr, u16)>,
    /// For external addresses and the NodePort (this node's only, with
    /// `externalTrafficPolicy: Local`).
    external: Vec<(IpAddr, u16)>,
    /// Whether external traffic needs a chain of its own.
    ext_chain: bool,
}

fn has_external(family: Family, port: &ServicePort) -> bool {
    port.node_port.is_some()
        || of(family, &port.external_ips).next().is_some()
        || of(family, &port.load_balancer_ips).next().is_some()
}

fn split(
    cfg: &NftablesConfig,
    family: Family,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Split {
    let all = family_endpoints(family, endpoints);
    let local = || {
        let on_node: Vec<Endpoint> = endpoints
            .iter()
            .filter(|e| cfg.node_name.is_some() && e.node_name == cfg.node_name)
            .cloned()
            .collect();
        // Usable among this node's endpoints: a terminating local endpoint still serves
        // when no local one is ready.
        family_endpoints(family, &on_node)
    };
    let cluster = if port.internal_local {
        local()
    } else {
        all.clone()
    };
    let external = if port.external_local {
        local()
    } else {
        all.clone()
    };
    let ext_chain = has_external(family, port) && !external.is_empty() && external != cluster;
    Split {
        all,
        cluster,
        external,
        ext_chain,
    }
}

/// DNAT rules choosing among `eps` (a subset of `all`, whose affinity sets are `sets`).
fn dnat_rules(
    family: Family,
    proto: &str,
    sets: &[AffinitySet],
    all: &[(IpAddr, u16)],
    eps: &[(IpAddr, u16)],
    rules: &mut Vec<String>,
) {
    let ip = family.nft();
    let set_of = |ep: &(IpAddr, u16)| all.iter().position(|a| a == ep).and_then(|i| sets.get(i));
    // With affinity, a client seen recently goes back to its endpoint (refreshing its
    // timeout); every pick records the client in the chosen endpoint's set.
    let remember = |ep: &(IpAddr, u16)| {
        set_of(ep)
            .map(|s| format!("update @{} {{ {ip} saddr }} ", s.name))
            .unwrap_or_default()
    };
    for ep in eps {
        if let Some(set) = set_of(ep) {
            rules.push(format!(
                "{ip} saddr @{} {}meta l4proto {proto} dnat to {}",
                set.name,
                remember(ep),
                family.dnat_target(&ep.0, ep.1)
            ));
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        // Rule i sees the traffic the earlier rules left, and takes 1/(n-i) of it: each
        // endpoint gets 1/n overall.
        let pick = if i + 1 < n {
            format!("numgen random mod {} == 0 ", n - i)
        } else {
            String::new()
        };
        rules.push(format!(
            "{pick}{}meta l4proto {proto} dnat to {}",
            remember(ep),
            family.dnat_target(&ep.0, ep.1)
        ));
    }
}

/// A service port's chains and their rules: the cluster chain (always; empty when no
/// endpoint serves ClusterIP traffic) and, with a `Local` traffic policy that makes
/// external traffic go elsewhere, the external chain.
pub fn service_chains(
    cfg: &NftablesConfig,
    family: Family,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Vec<(String, Vec<String>)> {
    let sets = affinity_sets(family, name, port, endpoints);
    let split = split(cfg, family, port, endpoints);
    let proto = name.protocol.as_str();
    let mut cluster = Vec::new();
    // Masquerade marking of ClusterIP traffic from outside the cluster CIDR is done in
    // the `services` chain (through `cluster-keys`), not here.
    if !split.cluster.is_empty() {
        dnat_rules(
            family,
            proto,
            &sets,
            &split.all,
            &split.cluster,
            &mut cluster,
        );
    }
    let mut chains = vec![(chain_name(name), cluster)];
    if split.ext_chain {
        // No masquerade mark with `externalTrafficPolicy: Local`: the client's address is
        // kept, which is the point of the policy. (With `Cluster`, the external-keys and
        // nodeport-keys sets mark it.)
        let mut external = Vec::new();
        dnat_rules(
            family,
            proto,
            &sets,
            &split.all,
            &split.external,
            &mut external,
        );
        chains.push((ext_chain_name(name), external));
    }
    chains
}

/// The rules of a service port's cluster chain (empty when no endpoint serves ClusterIP
/// traffic: its addresses then lead to the reject chain, or to a drop).
#[cfg(test)]
fn service_rules(
    cfg: &NftablesConfig,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
) -> Vec<String> {
    service_chains(cfg, Family::V4, name, port, endpoints)
        .into_iter()
        .next()
        .map(|(_, rules)| rules)
        .unwrap_or_default()
}

/// Adds the elements one service port contributes. A key already claimed by an earlier
/// service port (two Services on one externalIP and port) stays with the first.
pub fn service_elements(
    cfg: &NftablesConfig,
    family: Family,
    name: &ServicePortName,
    port: &ServicePort,
    endpoints: &[Endpoint],
    out: &mut Elements,
) {
    if !programs(family, port) {
        return;
    }
    let proto = name.protocol.as_str();
    let split = split(cfg, family, port, endpoints);
    let endpoints = split.all;
    // With endpoints elsewhere but none for this kind of traffic here (a `Local` policy),
    // traffic is dropped, as kube-proxy does; with none at all it is rejected.
    let cluster_target = if split.cluster.is_empty() {
        "drop".to_string()
    } else {
        format!("goto {}", chain_name(name))
    };
    let external_target = if split.external.is_empty() {
        "drop".to_string()
    } else if split.ext_chain {
        format!("goto {}", ext_chain_name(name))
    } else {
        format!("goto {}", chain_name(name))
    };
    let mark_external = !port.external_local;
    let target = if endpoints.is_empty() {
        "goto reject-service".to_string()
    } else {
        cluster_target
    };
    let external_target = if endpoints.is_empty() {
        target.clone()
    } else {
        external_target
    };
    let (services, nodeports) = if endpoints.is_empty() {
        (
            Collection::NoEndpointServices,
            Collection::NoEndpointNodePorts,
        )
    } else {
        (Collection::ServiceIps, Collection::NodePorts)
    };
    let mut put = |collection: Collection, key: String, value: &str| {
        out.entry((collection, key))
            .or_insert_with(|| value.to_string());
    };
    let mark_cluster = !split.cluster.is_empty() && cfg.cluster_cidr_of(family).is_some();
    for ip in of(family, &port.cluster_ips) {
        let key = format!("{ip} . {proto} . {}", port.port);
        if mark_cluster {
            put(Collection::ClusterKeys, key.clone(), "");
        }
        put(services, key, &target);
    }
    for ip in of(family, &port.external_ips).chain(of(family, &port.load_balancer_ips)) {
        let key = format!("{ip} . {proto} . {}", port.port);
        if !endpoints.is_empty() && mark_external {
            put(Collection::ExternalKeys, key.clone(), "");
        }
        put(services, key, &external_target);
    }
    if let Some(node_port) = port.node_port {
        let key = format!("{proto} . {node_port}");
        if !endpoints.is_empty() && mark_external {
            put(Collection::NodePortKeys, key.clone(), "");
        }
        put(nodeports, key, &external_target);
    }
    for (ip, _) in &endpoints {
        put(Collection::Hairpin, format!("{ip} . {ip}"), "");
    }
}

/// The main table's fixed part: the collections of the filter and postrouting side, the
/// hooks that reject connections to Services without endpoints and masquerade, and the
/// shared chains. Returns the number of rules written.
pub fn skeleton(cfg: &NftablesConfig, family: Family, out: &mut String) -> usize {
    let ip = family.nft();
    let t = format!("{ip} {}", cfg.table);
    let mark = format!("{:#x}", cfg.masquerade_mark);
    let _ = writeln!(out, "add table {t}");
    collections(family, &t, false, out);
    node_port_ips(cfg, family, &t, out);
    let base = [
        ("nat-postrouting", "nat hook postrouting priority srcnat"),
        ("filter-input", "filter hook input priority -110"),
        ("filter-forward", "filter hook forward priority -110"),
        ("filter-output", "filter hook output priority -110"),
    ];
    base_chains(&t, &base, out);
    for chain in ["endpoints-check", "reject-service"] {
        let _ = writeln!(out, "add chain {t} {chain}");
    }
    let rules = [
        (
            "nat-postrouting",
            format!("ct status dnat {ip} saddr . {ip} daddr @hairpin masquerade"),
        ),
        (
            "nat-postrouting",
            format!(
                "meta mark & {mark} == {mark} meta mark set meta mark ^ {mark} masquerade fully-random"
            ),
        ),
        (
            "filter-input",
            "ct state new jump endpoints-check".to_string(),
        ),
        (
            "filter-forward",
            "ct state new jump endpoints-check".to_string(),
        ),
        (
            "filter-output",
            "ct state new jump endpoints-check".to_string(),
        ),
        (
            "endpoints-check",
            format!("{ip} daddr . meta l4proto . th dport vmap @no-endpoint-services"),
        ),
        (
            "endpoints-check",
            format!("{ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"),
        ),
        // ICMP port unreachable: a client sees "connection refused" at once instead of
        // waiting for a timeout.
        ("reject-service", family.reject().to_string()),
    ];
    for (chain, rule) in &rules {
        let _ = writeln!(out, "add rule {t} {chain} {rule}");
    }
    rules.len()
}

/// The fixed part of one NAT table (see [`NftablesConfig::nat_shards`]): its collections,
/// the prerouting and output hooks and the `services` chain that marks and dispatches.
/// Returns the number of rules written.
pub fn nat_skeleton(cfg: &NftablesConfig, family: Family, shard: usize, out: &mut String) -> usize {
    let ip = family.nft();
    let t = format!("{ip} {}", cfg.nat_table(shard));
    let mark = format!("{:#x}", cfg.masquerade_mark);
    let _ = writeln!(out, "add table {t}");
    collections(family, &t, true, out);
    node_port_ips(cfg, family, &t, out);
    let base = [
        ("nat-prerouting", "nat hook prerouting priority dstnat"),
        ("nat-output", "nat hook output priority -100"),
    ];
    base_chains(&t, &base, out);
    let _ = writeln!(out, "add chain {t} services");
    let cluster_mark = cfg.cluster_cidr_of(family).map(|cidr| {
        (
            "services",
            format!(
                "{ip} saddr != {cidr} {ip} daddr . meta l4proto . th dport @cluster-keys meta mark set meta mark | {mark}"
            ),
        )
    });
    let rules = [
        ("nat-prerouting", "jump services".to_string()),
        ("nat-output", "jump services".to_string()),
        (
            "services",
            format!(
                "{ip} daddr . meta l4proto . th dport @external-keys meta mark set meta mark | {mark}"
            ),
        ),
        (
            "services",
            format!("{ip} daddr . meta l4proto . th dport vmap @service-ips"),
        ),
        (
            "services",
            format!(
                "{ip} daddr @nodeport-ips meta l4proto . th dport @nodeport-keys meta mark set meta mark | {mark}"
            ),
        ),
        (
            "services",
            format!("{ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"),
        ),
    ];
    // Marking rules come before the verdict maps in `services`: those leave the chain.
    let rules: Vec<(&str, String)> = cluster_mark.into_iter().chain(rules).collect();
    for (chain, rule) in &rules {
        let _ = writeln!(out, "add rule {t} {chain} {rule}");
    }
    rules.len()
}

fn collections(family: Family, t: &str, nat: bool, out: &mut String) {
    for c in Collection::ALL
        .into_iter()
        .filter(|c| c.in_nat_table() == nat)
    {
        let kind = if c.is_map() { "map" } else { "set" };
        let _ = writeln!(
            out,
            "add {kind} {t} {} {{ type {}; }}",
            c.name(),
            c.element_type(family)
        );
    }
}

fn node_port_ips(cfg: &NftablesConfig, family: Family, t: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "add set {t} nodeport-ips {{ type {}; }}",
        family.addr_type()
    );
    let ips: Vec<String> = of(family, &cfg.node_port_addresses)
        .map(|i| i.to_string())
        .collect();
    if !ips.is_empty() {
        let _ = writeln!(out, "add element {t} nodeport-ips {{ {} }}", ips.join(", "));
    }
}

fn base_chains(t: &str, chains: &[(&str, &str)], out: &mut String) {
    for (chain, hook) in chains {
        let _ = writeln!(
            out,
            "add chain {t} {chain} {{ type {hook}; policy accept; }}"
        );
    }
}

/// The number of rules [`skeleton`] writes.
#[cfg(test)]
pub const SKELETON_RULES: usize = 8;
/// The number of rules [`nat_skeleton`] writes without a cluster CIDR (one more with one).
#[cfg(test)]
pub const NAT_SKELETON_RULES: usize = 6;

/// `add element` / `delete element` commands, one per collection and table. Each element
/// comes with the table it lives in.
pub fn element_commands<'a>(
    family: Family,
    verb: &str,
    elements: impl Iterator<Item = (&'a str, &'a (Collection, String), &'a String)>,
    out: &mut String,
) {
    let mut by_collection: BTreeMap<(Collection, &str), Vec<String>> = BTreeMap::new();
    for (table, (collection, key), value) in elements {
        let item = if collection.is_map() && verb == "add" {
            format!("{key} : {value}")
        } else {
            key.clone()
        };
        by_collection
            .entry((*collection, table))
            .or_default()
            .push(item);
    }
    for ((collection, table), items) in by_collection {
        let _ = writeln!(
            out,
            "{verb} element {} {table} {} {{ {} }}",
            family.nft(),
            collection.name(),
            items.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn name(port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: port.into(),
            protocol,
        }
    }

    fn ep(ip: &str, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready,
            serving: true,
            terminating,
            node_name: None,
        }
    }

    fn port() -> ServicePort {
        ServicePort {
            cluster_ips: vec!["10.96.0.20".parse().unwrap(), "fd00::20".parse().unwrap()],
            port: 80,
            node_port: Some(30080),
            external_ips: vec!["192.0.2.7".parse().unwrap()],
            load_balancer_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
        }
    }

    fn cfg() -> NftablesConfig {
        let mut cfg = NftablesConfig::new("skiff-test");
        cfg.cluster_cidr = Some("10.244.0.0/16".parse().unwrap());
        cfg.node_port_addresses = vec!["192.168.1.10".parse().unwrap()];
        cfg
    }

    #[test]
    fn chain_names_are_readable_and_sanitised() {
        assert_eq!(
            chain_name(&name("http", Protocol::Tcp)),
            "svc-default/web/tcp/http"
        );
        assert_eq!(chain_name(&name("", Protocol::Udp)), "svc-default/web/udp/");
        let odd = chain_name(&name("a:b", Protocol::Tcp));
        assert!(odd.starts_with("svc-default/web/tcp/a_b-"));
        assert_ne!(odd, chain_name(&name("a;b", Protocol::Tcp)));
    }

    #[test]
    fn endpoints_are_chosen_by_a_uniform_numgen_cascade() {
        let rules = service_rules(
            &cfg(),
            &name("http", Protocol::Tcp),
            &port(),
            &[
                ep("10.244.1.5", true, false),
                ep("10.244.2.6", true, false),
                ep("10.244.3.7", true, false),
            ],
        );
        assert_eq!(
            rules,
            vec![
                "numgen random mod 3 == 0 meta l4proto tcp dnat to 10.244.1.5:8080",
                "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.2.6:8080",
                "meta l4proto tcp dnat to 10.244.3.7:8080",
            ]
        );
    }

    #[test]
    fn only_ready_endpoints_serve_and_terminating_ones_when_none_is_ready() {
        let n = name("dns", Protocol::Udp);
        let rules = service_rules(
            &cfg(),
            &n,
            &port(),
            &[ep("10.244.1.5", true, false), ep("10.244.2.6", false, true)],
        );
        assert_eq!(rules[..], ["meta l4proto udp dnat to 10.244.1.5:8080"]);
        let rules = service_rules(&cfg(), &n, &port(), &[ep("10.244.2.6", false, true)]);
        assert_eq!(rules[..], ["meta l4proto udp dnat to 10.244.2.6:8080"]);
    }

    #[test]
    fn client_ip_affinity_sends_a_known_client_back_to_its_endpoint() {
        let mut with_affinity = port();
        with_affinity.affinity = Some(std::time::Duration::from_secs(600));
        let n = name("http", Protocol::Tcp);
        let eps = [ep("10.244.1.5", true, false), ep("10.244.2.6", true, false)];
        let sets = affinity_sets(Family::V4, &n, &with_affinity, &eps);
        assert_eq!(
            sets.iter().map(|s| s.declaration()).collect::<Vec<_>>(),
            vec![
                "aff-default/web/tcp/http/10.244.1.5/8080 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }",
                "aff-default/web/tcp/http/10.244.2.6/8080 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }",
            ]
        );
        let rules = service_rules(&cfg(), &n, &with_affinity, &eps);
        let a = "aff-default/web/tcp/http/10.244.1.5/8080";
        let b = "aff-default/web/tcp/http/10.244.2.6/8080";
        assert_eq!(
            rules[..],
            [
                format!(
                    "ip saddr @{a} update @{a} {{ ip saddr }} meta l4proto tcp dnat to 10.244.1.5:8080"
                ),
                format!(
                    "ip saddr @{b} update @{b} {{ ip saddr }} meta l4proto tcp dnat to 10.244.2.6:8080"
                ),
                format!(
                    "numgen random mod 2 == 0 update @{a} {{ ip saddr }} meta l4proto tcp dnat to 10.244.1.5:8080"
                ),
                format!("update @{b} {{ ip saddr }} meta l4proto tcp dnat to 10.244.2.6:8080"),
            ]
        );
        assert!(affinity_sets(Family::V4, &n, &port(), &eps).is_empty());
    }

    fn on(ip: &str, node: &str) -> Endpoint {
        let mut e = ep(ip, true, false);
        e.node_name = Some(node.into());
        e
    }

    #[test]
    fn external_traffic_policy_local_uses_this_nodes_endpoints_unmarked() {
        let mut cfg = cfg();
        cfg.node_name = Some("here".into());
        let mut local = port();
        local.external_local = true;
        let n = name("http", Protocol::Tcp);
        let eps = [on("10.244.1.5", "here"), on("10.244.2.6", "there")];
        let chains = service_chains(&cfg, Family::V4, &n, &local, &eps);
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0].0, "svc-default/web/tcp/http");
        assert_eq!(
            chains[0].1.len(),
            2,
            "the cluster chain keeps both endpoints"
        );
        assert_eq!(
            chains[1],
            (
                "ext-default/web/tcp/http".to_string(),
                vec!["meta l4proto tcp dnat to 10.244.1.5:8080".to_string()]
            )
        );
        let mut out = Elements::new();
        service_elements(&cfg, Family::V4, &n, &local, &eps, &mut out);
        let ext = "goto ext-default/web/tcp/http".to_string();
        assert_eq!(out[&(Collection::NodePorts, "tcp . 30080".into())], ext);
        assert_eq!(
            out[&(Collection::ServiceIps, "192.0.2.7 . tcp . 80".into())],
            ext
        );
        assert_eq!(
            out[&(Collection::ServiceIps, "10.96.0.20 . tcp . 80".into())],
            "goto svc-default/web/tcp/http"
        );
        assert!(
            !out.keys()
                .any(|(c, _)| matches!(c, Collection::NodePortKeys | Collection::ExternalKeys))
        );

        // No endpoint on this node: external traffic is dropped, not sent elsewhere.
        let mut out = Elements::new();
        service_elements(
            &cfg,
            Family::V4,
            &n,
            &local,
            &[on("10.244.2.6", "there")],
            &mut out,
        );
        assert_eq!(out[&(Collection::NodePorts, "tcp . 30080".into())], "drop");
        assert_eq!(
            service_chains(&cfg, Family::V4, &n, &local, &[on("10.244.2.6", "there")]).len(),
            1
        );
    }

    #[test]
    fn internal_traffic_policy_local_limits_cluster_traffic_to_this_node() {
        let mut cfg = cfg();
        cfg.node_name = Some("here".into());
        let mut local = port();
        local.internal_local = true;
        let n = name("http", Protocol::Tcp);
        let eps = [on("10.244.1.5", "here"), on("10.244.2.6", "there")];
        let chains = service_chains(&cfg, Family::V4, &n, &local, &eps);
        assert_eq!(
            chains[0].1[..],
            ["meta l4proto tcp dnat to 10.244.1.5:8080"]
        );
        // External traffic (Cluster policy) still reaches every endpoint, through its own chain.
        assert_eq!(chains[1].0, "ext-default/web/tcp/http");
        assert_eq!(chains[1].1.len(), 2);
        let mut out = Elements::new();
        service_elements(
            &cfg,
            Family::V4,
            &n,
            &local,
            &[on("10.244.2.6", "there")],
            &mut out,
        );
        assert_eq!(
            out[&(Collection::ServiceIps, "10.96.0.20 . tcp . 80".into())],
            "drop"
        );
    }

    #[test]
    fn without_a_cluster_cidr_cluster_ip_traffic_is_not_marked() {
        let mut cfg = cfg();
        cfg.cluster_cidr = None;
        let n = name("http", Protocol::Tcp);
        let eps = [ep("10.244.1.5", true, false)];
        assert_eq!(
            service_rules(&cfg, &n, &port(), &eps),
            ["meta l4proto tcp dnat to 10.244.1.5:8080"]
        );
        let mut out = Elements::new();
        service_elements(&cfg, Family::V4, &n, &port(), &eps, &mut out);
        assert!(!out.keys().any(|(c, _)| *c == Collection::ClusterKeys));
        let mut skel = String::new();
        assert_eq!(skeleton(&cfg, Family::V4, &mut skel), SKELETON_RULES);
        assert!(!skel.contains("@cluster-keys meta mark"));
    }

    #[test]
    fn a_served_port_maps_its_addresses_and_node_port_to_its_chain() {
        let mut out = Elements::new();
        let n = name("http", Protocol::Tcp);
        service_elements(
            &cfg(),
            Family::V4,
            &n,
            &port(),
            &[ep("10.244.1.5", true, false)],
            &mut out,
        );
        let goto = "goto svc-default/web/tcp/http".to_string();
        let expected: Elements = [
            (
                (Collection::ServiceIps, "10.96.0.20 . tcp . 80".into()),
                goto.clone(),
            ),
            (
                (Collection::ServiceIps, "192.0.2.7 . tcp . 80".into()),
                goto.clone(),
            ),
            (
                (Collection::ClusterKeys, "10.96.0.20 . tcp . 80".into()),
                String::new(),
            ),
            (
                (Collection::ExternalKeys, "192.0.2.7 . tcp . 80".into()),
                String::new(),
            ),
            ((Collection::NodePorts, "tcp . 30080".into()), goto),
            (
                (Collection::NodePortKeys, "tcp . 30080".into()),
                String::new(),
            ),
            (
                (Collection::Hairpin, "10.244.1.5 . 10.244.1.5".into()),
                String::new(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn a_port_without_endpoints_is_rejected() {
        let mut out = Elements::new();
        let n = name("http", Protocol::Tcp);
        service_elements(
            &cfg(),
            Family::V4,
            &n,
            &port(),
            &[ep("10.244.1.5", false, false)],
            &mut out,
        );
        let expected: Elements = [
            (
                (
                    Collection::NoEndpointServices,
                    "10.96.0.20 . tcp . 80".into(),
                ),
                "goto reject-service".to_string(),
            ),
            (
                (
                    Collection::NoEndpointServices,
                    "192.0.2.7 . tcp . 80".into(),
                ),
                "goto reject-service".to_string(),
            ),
            (
                (Collection::NoEndpointNodePorts, "tcp . 30080".into()),
                "goto reject-service".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(out, expected);
        assert!(service_rules(&cfg(), &n, &port(), &[ep("10.244.1.5", false, false)]).is_empty());
    }

    #[test]
    fn the_first_service_port_keeps_a_shared_key() {
        let mut out = Elements::new();
        let mut other = name("http", Protocol::Tcp);
        other.name = "a-first".into();
        service_elements(
            &cfg(),
            Family::V4,
            &other,
            &port(),
            &[ep("10.244.9.9", true, false)],
            &mut out,
        );
        service_elements(
            &cfg(),
            Family::V4,
            &name("http", Protocol::Tcp),
            &port(),
            &[ep("10.244.1.5", true, false)],
            &mut out,
        );
        assert_eq!(
            out[&(Collection::ServiceIps, "192.0.2.7 . tcp . 80".to_string())],
            "goto svc-default/a-first/tcp/http"
        );
    }

    #[test]
    fn the_skeletons_hook_nat_and_filter_and_list_node_addresses() {
        let mut out = String::new();
        assert_eq!(skeleton(&cfg(), Family::V4, &mut out), SKELETON_RULES);
        assert!(out.starts_with("add table ip skiff-test\n"));
        assert!(
            out.contains("add rule ip skiff-test filter-forward ct state new jump endpoints-check")
        );
        assert!(out.contains("add element ip skiff-test nodeport-ips { 192.168.1.10 }"));
        assert!(out.contains("add set ip skiff-test hairpin"));
        assert!(!out.contains("service-ips") && !out.contains("nat-prerouting"));
        assert_eq!(out.matches("add rule ").count(), SKELETON_RULES);

        let mut nat = String::new();
        assert_eq!(
            nat_skeleton(&cfg(), Family::V4, 3, &mut nat),
            NAT_SKELETON_RULES + 1
        );
        assert!(nat.starts_with("add table ip skiff-test-nat3\n"));
        assert!(nat.contains(
            "add chain ip skiff-test-nat3 nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }"
        ));
        assert!(nat.contains(
            "add rule ip skiff-test-nat3 services ip daddr . meta l4proto . th dport vmap @service-ips"
        ));
        assert!(nat.contains("add element ip skiff-test-nat3 nodeport-ips { 192.168.1.10 }"));
        assert!(!nat.contains("hairpin") && !nat.contains("no-endpoint"));
        // With a cluster CIDR, one rule marks ClusterIP traffic from outside it, before the
        // verdict map that leaves the chain.
        let mark = nat
            .find("add rule ip skiff-test-nat3 services ip saddr != 10.244.0.0/16 ip daddr . meta l4proto . th dport @cluster-keys meta mark set meta mark | 0x4000")
            .unwrap();
        assert!(mark < nat.find("vmap @service-ips").unwrap());
        assert_eq!(nat.matches("add rule ").count(), NAT_SKELETON_RULES + 1);
    }

    #[test]
    fn the_ipv6_table_holds_ipv6_addresses_and_endpoints_only() {
        let mut cfg = cfg();
        cfg.cluster_cidr = Some("10.244.0.0/16,fd00:244::/56".parse().unwrap());
        cfg.node_port_addresses = vec![
            "192.168.1.10".parse().unwrap(),
            "fd00:1::10".parse().unwrap(),
        ];
        let mut p = port();
        p.affinity = Some(std::time::Duration::from_secs(60));
        p.external_ips.push("2001:db8::7".parse().unwrap());
        let n = name("http", Protocol::Tcp);
        // The IPv6 endpoint is only terminating, yet serves: no IPv6 endpoint is ready.
        let eps = [
            ep("10.244.1.5", true, false),
            ep("fd00:244::5", false, true),
        ];
        let chains = service_chains(&cfg, Family::V6, &n, &p, &eps);
        let set = "aff-default/web/tcp/http/fd00-244--5/8080";
        assert_eq!(
            chains,
            vec![(
                "svc-default/web/tcp/http".to_string(),
                vec![
                    format!(
                        "ip6 saddr @{set} update @{set} {{ ip6 saddr }} meta l4proto tcp dnat to [fd00:244::5]:8080"
                    ),
                    format!(
                        "update @{set} {{ ip6 saddr }} meta l4proto tcp dnat to [fd00:244::5]:8080"
                    ),
                ]
            )]
        );
        assert_eq!(
            affinity_sets(Family::V6, &n, &p, &eps)[0].declaration(),
            format!("{set} {{ type ipv6_addr; flags dynamic,timeout; timeout 60s; }}")
        );
        let mut out = Elements::new();
        service_elements(&cfg, Family::V6, &n, &p, &eps, &mut out);
        let keys: Vec<&str> = out.keys().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "2001:db8::7 . tcp . 80",
                "fd00::20 . tcp . 80",
                "fd00::20 . tcp . 80",
                "2001:db8::7 . tcp . 80",
                "tcp . 30080",
                "tcp . 30080",
                "fd00:244::5 . fd00:244::5",
            ]
        );
        let mut v4 = Elements::new();
        service_elements(&cfg, Family::V4, &n, &p, &eps, &mut v4);
        assert!(!v4.keys().any(|(_, k)| k.contains(':')), "{v4:?}");

        let mut skel = String::new();
        skeleton(&cfg, Family::V6, &mut skel);
        nat_skeleton(&cfg, Family::V6, 0, &mut skel);
        assert!(skel.starts_with("add table ip6 skiff-test\n"));
        assert!(skel.contains("add map ip6 skiff-test-nat0 service-ips { type ipv6_addr . inet_proto . inet_service : verdict; }"));
        assert!(skel.contains("add element ip6 skiff-test nodeport-ips { fd00:1::10 }"));
        assert!(skel.contains(
            "add rule ip6 skiff-test reject-service reject with icmpv6 type port-unreachable"
        ));
        assert!(skel.contains("ct status dnat ip6 saddr . ip6 daddr @hairpin masquerade"));
        assert!(!skel.contains("ip daddr") && !skel.contains("ipv4_addr"));
        assert!(skel.contains(
            "add rule ip6 skiff-test-nat0 services ip6 saddr != fd00:244::/56 ip6 daddr . meta l4proto . th dport @cluster-keys meta mark set meta mark | 0x4000"
        ));
        assert_eq!(
            skel.matches("add rule ").count(),
            SKELETON_RULES + NAT_SKELETON_RULES + 1
        );
    }

    #[test]
    fn a_single_stack_service_is_not_in_the_other_familys_table() {
        let mut p = port();
        p.cluster_ips = vec!["10.96.0.20".parse().unwrap()];
        assert!(programs(Family::V4, &p));
        assert!(!programs(Family::V6, &p));
        let mut out = Elements::new();
        service_elements(
            &cfg(),
            Family::V6,
            &name("http", Protocol::Tcp),
            &p,
            &[ep("fd00::5", true, false)],
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn element_commands_group_by_table_and_collection() {
        let mut els = Elements::new();
        els.insert(
            (Collection::ServiceIps, "10.96.0.1 . tcp . 80".into()),
            "goto a".into(),
        );
        els.insert(
            (Collection::ServiceIps, "10.96.0.2 . tcp . 80".into()),
            "goto b".into(),
        );
        els.insert(
            (Collection::Hairpin, "10.1.1.1 . 10.1.1.1".into()),
            String::new(),
        );
        let placed = |(k, v): (&'static (Collection, String), &'static String)| {
            let table = if k.0.in_nat_table() { "t-nat1" } else { "t" };
            (table, k, v)
        };
        let els: &'static Elements = Box::leak(Box::new(els));
        let mut add = String::new();
        element_commands(Family::V4, "add", els.iter().map(placed), &mut add);
        assert_eq!(
            add,
            "add element ip t-nat1 service-ips { 10.96.0.1 . tcp . 80 : goto a, 10.96.0.2 . tcp . 80 : goto b }\n\
             add element ip t hairpin { 10.1.1.1 . 10.1.1.1 }\n"
        );
        let mut delete = String::new();
        element_commands(Family::V4, "delete", els.iter().map(placed), &mut delete);
        assert!(delete.starts_with(
            "delete element ip t-nat1 service-ips { 10.96.0.1 . tcp . 80, 10.96.0.2 . tcp . 80 }\n"
        ));
    }
}
