//! `/etc/hosts` for a pod, in the kubelet's format.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::HostAlias;

use super::PodHostname;

const HEADER: &str = "# Kubernetes-managed hosts file.\n";
const HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

/// A pod with its own network: localhost, the IPv6 names, the pod's IPs with its
/// hostname (FQDN first when it has a subdomain), then `hostAliases`.
pub fn hosts_file(pod_ips: &[IpAddr], name: &PodHostname, aliases: &[HostAlias]) -> String {
    let mut out = String::from(HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        match name.fqdn() {
            Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{}\n", name.hostname)),
            None => out.push_str(&format!("{ip}\t{}\n", name.hostname)),
        }
    }
    out.push_str(&alias_lines(aliases));
    out
}

/// A host-network pod sees the node's own hosts file, plus its `hostAliases`.
pub fn host_network_hosts_file(node_hosts: &str, aliases: &[HostAlias]) -> String {
    let mut out = String::from(HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    if !node_hosts.is_empty() && !node_hosts.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&alias_lines(aliases));
    out
}

fn alias_lines(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn name(domain: Option<&str>) -> PodHostname {
        PodHostname {
            hostname: "web".into(),
            domain: domain.map(str::to_string),
            uts: "web".into(),
        }
    }

    #[test]
    fn pod_hosts_file_matches_the_kubelet() {
        let ips: Vec<IpAddr> = vec!["10.200.0.4".parse().unwrap()];
        assert_eq!(
            hosts_file(&ips, &name(None), &[]),
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.200.0.4\tweb\n"
        );
    }

    #[test]
    fn every_ip_gets_the_fqdn_and_aliases_follow() {
        let ips: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let aliases = vec![
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["foo.remote".into()]),
            },
        ];
        let text = hosts_file(&ips, &name(Some("sub.ns.svc.cluster.local")), &aliases);
        assert!(text.contains("10.1.0.5\tweb.sub.ns.svc.cluster.local\tweb\n"));
        assert!(text.contains("fd00::5\tweb.sub.ns.svc.cluster.local\tweb\n"));
        assert!(text.ends_with(
            "fe00::2\tip6-allrouters\n10.1.0.5\tweb.sub.ns.svc.cluster.local\tweb\n\
             fd00::5\tweb.sub.ns.svc.cluster.local\tweb\n\n\
             # Entries added by HostAliases.\n\
             127.0.0.1\tfoo.local\tbar.local\n\
             10.1.2.3\tfoo.remote\n"
        ));
    }

    #[test]
    fn host_network_pods_get_the_node_file() {
        let aliases = vec![HostAlias {
            ip: "1.2.3.4".into(),
            hostnames: Some(vec!["x".into()]),
        }];
        assert_eq!(
            host_network_hosts_file("127.0.0.1 localhost\n10.0.0.1 node", &aliases),
            "# Kubernetes-managed hosts file (host network).\n\
             127.0.0.1 localhost\n10.0.0.1 node\n\n\
             # Entries added by HostAliases.\n1.2.3.4\tx\n"
        );
    }
}
