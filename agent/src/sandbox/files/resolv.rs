//! `/etc/resolv.conf` for a pod: the kubelet's DNS policies (`ClusterFirst`,
//! `ClusterFirstWithHostNet`, `Default`, `None`), `dnsConfig` merging and limits.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The kubelet's limits: glibc reads at most three nameservers, and search lines
/// are capped (the "expanded DNS config" limits, GA since Kubernetes 1.28).
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCH_PATHS: usize = 32;
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
/// Some resolvers (glibc 2.28) abort on a search domain longer than this.
const MAX_SEARCH_DOMAIN: usize = 253;

const DEFAULT_OPTIONS: &[&str] = &["ndots:5"];

/// The node-wide inputs of the pod's DNS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// The cluster DNS service IPs (`--cluster-dns`).
    pub cluster_dns: Vec<IpAddr>,
    /// `cluster.local` unless configured otherwise (`--cluster-domain`).
    pub cluster_domain: String,
    /// The node's IPs: with no node resolv.conf, `Default` pods resolve via localhost
    /// of each of the node's families.
    pub node_ips: Vec<IpAddr>,
}

/// What a resolv.conf says, parsed the way the kubelet reads the node's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl HostDns {
    /// Nameserver lines accumulate, the last search line wins (trailing dots dropped
    /// so `a.` and `a` count once), options accumulate with later ones overriding.
    pub fn parse(text: &str) -> HostDns {
        let mut dns = HostDns::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => dns.nameservers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    dns.searches = fields
                        .map(|s| s.trim_end_matches('.'))
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                }
                Some("options") => {
                    let new: Vec<(String, Option<String>)> = fields.map(split_option).collect();
                    dns.options = merge_options(&dns.options, new);
                }
                _ => {}
            }
        }
        dns
    }
}

/// The pod's resolver configuration, plus warnings for what had to be dropped (the
/// kubelet reports them as `DNSConfigForming` / `MissingClusterDNS` events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
    pub warnings: Vec<String>,
}

impl ResolvConf {
    /// The file, in the layout containerd's CRI plugin writes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Which base configuration a pod's `dnsPolicy` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Cluster,
    Host,
    None,
}

fn policy(pod: &Pod) -> Policy {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Policy::None,
        Some("Default") => Policy::Host,
        Some("ClusterFirstWithHostNet") => Policy::Cluster,
        // ClusterFirst is the default; on the host network it means the node's DNS.
        _ if host_network => Policy::Host,
        _ => Policy::Cluster,
    }
}

/// The pod's resolv.conf. `host` is the node's resolv.conf, `None` when the node has
/// none configured (the kubelet's `--resolv-conf=""`).
pub fn resolv_conf(pod: &Pod, settings: &DnsSettings, host: Option<&HostDns>) -> ResolvConf {
    let mut conf = ResolvConf::default();
    if let Some(h) = host {
        conf.nameservers = h.nameservers.clone();
        conf.searches = h.searches.clone();
        conf.options = h.options.clone();
    }
    let mut policy = policy(pod);
    if policy == Policy::Cluster && settings.cluster_dns.is_empty() {
        conf.warnings.push(
            "MissingClusterDNS: the agent has no cluster DNS IP configured and cannot create \
             a pod using the \"ClusterFirst\" policy; falling back to the \"Default\" policy"
                .into(),
        );
        policy = Policy::Host;
    }
    match policy {
        Policy::None => {
            conf.nameservers.clear();
            conf.searches.clear();
            conf.options.clear();
        }
        Policy::Cluster => {
            conf.nameservers = settings
                .cluster_dns
                .iter()
                .map(|ip| ip.to_string())
                .collect();
            conf.searches = cluster_searches(pod, &settings.cluster_domain, &conf.searches);
            conf.options = DEFAULT_OPTIONS.iter().map(|s| s.to_string()).collect();
        }
        Policy::Host if host.is_none() => {
            // No node configuration: "nameserver localhost", as the resolver does
            // when none is given, and no search path.
            let mut servers: Vec<String> = settings
                .node_ips
                .iter()
                .map(|ip| if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.to_string())
                .collect();
            if servers.is_empty() {
                servers.push("127.0.0.1".into());
            }
            conf.nameservers = dedup(servers);
            conf.searches = vec![".".into()];
        }
        Policy::Host => {}
    }
    if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        append_dns_config(&mut conf, extra);
    }
    fit_limits(&mut conf);
    conf
}

fn cluster_searches(pod: &Pod, cluster_domain: &str, host_searches: &[String]) -> Vec<String> {
    if cluster_domain.is_empty() {
        return host_searches.to_vec();
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut searches = vec![
        format!("{namespace}.svc.{cluster_domain}"),
        format!("svc.{cluster_domain}"),
        cluster_domain.to_string(),
    ];
    searches.extend(host_searches.iter().cloned());
    dedup(searches)
}

fn append_dns_config(conf: &mut ResolvConf, extra: &PodDNSConfig) {
    let mut servers = std::mem::take(&mut conf.nameservers);
    servers.extend(extra.nameservers.iter().flatten().cloned());
    conf.nameservers = dedup(servers);
    let mut searches = std::mem::take(&mut conf.searches);
    searches.extend(extra.searches.iter().flatten().cloned());
    conf.searches = dedup(searches);
    let new = extra
        .options
        .iter()
        .flatten()
        .filter_map(|o| Some((o.name.clone()?, o.value.clone())))
        .collect();
    conf.options = merge_options(&conf.options, new);
}

/// Options are `name` or `name:value`; a later one with the same name replaces the
/// value of the earlier in place (the kubelet's merge, in a stable order).
fn merge_options(existing: &[String], new: Vec<(String, Option<String>)>) -> Vec<String> {
    let mut merged: Vec<(String, Option<String>)> =
        existing.iter().map(|o| split_option(o)).collect();
    for (name, value) in new {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
        .into_iter()
        .map(|(name, value)| match value {
            Some(v) if !v.is_empty() => format!("{name}:{v}"),
            _ => name,
        })
        .collect()
}

fn split_option(option: &str) -> (String, Option<String>) {
    match option.split_once(':') {
        Some((name, value)) => (name.to_string(), Some(value.to_string())),
        None => (option.to_string(), None),
    }
}

fn fit_limits(conf: &mut ResolvConf) {
    if conf.nameservers.len() > MAX_NAMESERVERS {
        conf.nameservers.truncate(MAX_NAMESERVERS);
        conf.warnings.push(format!(
            "DNSConfigForming: nameserver limits were exceeded, some nameservers have been \
             omitted, the applied nameserver line is: {}",
            conf.nameservers.join(" ")
        ));
    }
    let mut exceeded = false;
    if conf.searches.len() > MAX_SEARCH_PATHS {
        conf.searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = conf.searches.len();
    conf.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN);
    exceeded |= conf.searches.len() != before;
    let mut line_len = conf.searches.join(" ").len();
    while line_len > MAX_SEARCH_LINE_CHARS {
        // Domains are dropped from the end, each with its separating space.
        let Some(last) = conf.searches.pop() else {
            break;
        };
        line_len = line_len.saturating_sub(last.len() + 1);
        exceeded = true;
    }
    if exceeded {
        conf.warnings.push(format!(
            "DNSConfigForming: search line limits were exceeded, some search paths have been \
             omitted, the applied search line is: {}",
            conf.searches.join(" ")
        ));
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::{PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    const NODE: &str = "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n\
                        search corp.example. lab.example\noptions timeout:2 rotate\n";

    fn settings() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            node_ips: vec!["192.0.2.10".parse().unwrap()],
        }
    }

    fn pod(policy: Option<&str>, host_network: bool, dns: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                dns_config: dns,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn parses_a_node_resolv_conf() {
        let h = HostDns::parse(NODE);
        assert_eq!(h.nameservers, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(h.searches, ["corp.example", "lab.example"]);
        assert_eq!(h.options, ["timeout:2", "rotate"]);
        let h = HostDns::parse("search a\nsearch b c\noptions ndots:1\noptions ndots:3 edns0\n");
        assert_eq!(h.searches, ["b", "c"], "the last search line wins");
        assert_eq!(h.options, ["ndots:3", "edns0"]);
    }

    #[test]
    fn cluster_first() {
        let host = HostDns::parse(NODE);
        let conf = resolv_conf(&pod(None, false, None), &settings(), Some(&host));
        assert_eq!(
            conf.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
        assert!(conf.warnings.is_empty());
    }

    #[test]
    fn cluster_first_on_the_host_network_is_default_unless_with_host_net() {
        let host = HostDns::parse(NODE);
        let conf = resolv_conf(
            &pod(Some("ClusterFirst"), true, None),
            &settings(),
            Some(&host),
        );
        assert_eq!(conf.nameservers, ["192.0.2.53", "192.0.2.54"]);
        let conf = resolv_conf(
            &pod(Some("ClusterFirstWithHostNet"), true, None),
            &settings(),
            Some(&host),
        );
        assert_eq!(conf.nameservers, ["10.96.0.10"]);
        assert_eq!(conf.searches[0], "shop.svc.cluster.local");
    }

    #[test]
    fn default_copies_the_node_and_falls_back_to_localhost() {
        let host = HostDns::parse(NODE);
        let conf = resolv_conf(&pod(Some("Default"), false, None), &settings(), Some(&host));
        assert_eq!(
            conf.render(),
            "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n\
             options timeout:2 rotate\n"
        );
        let mut s = settings();
        s.node_ips.push("2001:db8::10".parse().unwrap());
        let conf = resolv_conf(&pod(Some("Default"), false, None), &s, None);
        assert_eq!(conf.nameservers, ["127.0.0.1", "::1"]);
        assert_eq!(conf.searches, ["."]);
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_with_a_warning() {
        let host = HostDns::parse(NODE);
        let mut s = settings();
        s.cluster_dns.clear();
        let conf = resolv_conf(&pod(None, false, None), &s, Some(&host));
        assert_eq!(conf.nameservers, ["192.0.2.53", "192.0.2.54"]);
        assert!(conf.warnings[0].starts_with("MissingClusterDNS"));
    }

    #[test]
    fn none_uses_only_dns_config() {
        let dns = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into()]),
            searches: Some(vec!["my.dns.search.suffix".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        };
        let host = HostDns::parse(NODE);
        let conf = resolv_conf(
            &pod(Some("None"), false, Some(dns)),
            &settings(),
            Some(&host),
        );
        assert_eq!(
            conf.render(),
            "search my.dns.search.suffix\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_merges_into_the_policy() {
        let dns = PodDNSConfig {
            nameservers: Some(vec!["10.96.0.10".into(), "8.8.8.8".into()]),
            searches: Some(vec!["svc.cluster.local".into(), "extra.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("1".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        };
        let conf = resolv_conf(&pod(None, false, Some(dns)), &settings(), None);
        assert_eq!(conf.nameservers, ["10.96.0.10", "8.8.8.8"]);
        assert_eq!(
            conf.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "extra.example"
            ]
        );
        assert_eq!(conf.options, ["ndots:1", "single-request"]);
    }

    #[test]
    fn limits_cut_nameservers_and_search_paths() {
        let dns = PodDNSConfig {
            nameservers: Some((1..=5).map(|i| format!("10.0.0.{i}")).collect()),
            searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
            options: None,
        };
        let conf = resolv_conf(&pod(Some("None"), false, Some(dns)), &settings(), None);
        assert_eq!(conf.nameservers.len(), 3);
        assert_eq!(conf.searches.len(), 32);
        assert_eq!(conf.searches[31], "d31.example");
        assert_eq!(conf.warnings.len(), 2);

        // 2048 characters: 9 domains of 250 characters are 2258 with spaces; the
        // last one goes for each 251 over.
        let long: Vec<String> = (0..9)
            .map(|i| format!("{}{i}", "x".repeat(249)))
            .chain(std::iter::once("y".repeat(254)))
            .collect();
        let dns = PodDNSConfig {
            nameservers: Some(vec!["10.0.0.1".into()]),
            searches: Some(long),
            options: None,
        };
        let conf = resolv_conf(&pod(Some("None"), false, Some(dns)), &settings(), None);
        assert_eq!(
            conf.searches.len(),
            8,
            "the 254-char domain and one more dropped"
        );
        assert!(conf.searches.join(" ").len() <= MAX_SEARCH_LINE_CHARS);
    }
}
