//! Building the [`ProxyState`] from Services and EndpointSlices, as kube-proxy reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Endpoint, Protocol, ProxyState, ServicePort, ServicePortName};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (three hours, as the API defaults).
const DEFAULT_AFFINITY_SECONDS: u64 = 10_800;

/// Endpoints of one Service by (port name, protocol).
type PortEndpoints = BTreeMap<(String, Protocol), BTreeSet<Endpoint>>;

/// Every service port the data plane programs. Headless and ExternalName Services are left
/// out (they are DNS only); endpoints are matched to service ports by port name and protocol.
/// Objects with unparsable fields lose only those fields, never the whole state.
pub fn build_state<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> ProxyState {
    // (namespace, service) → (port name, protocol) → endpoints.
    let mut endpoints: BTreeMap<(&str, &str), PortEndpoints> = BTreeMap::new();
    for slice in slices {
        let Some(namespace) = slice.metadata.namespace.as_deref() else {
            continue;
        };
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        if slice.address_type == "FQDN" {
            continue;
        }
        let per_port = endpoints.entry((namespace, service.as_str())).or_default();
        for port in slice.ports.iter().flatten() {
            let (Some(protocol), Some(number)) = (
                Protocol::parse(port.protocol.as_deref()),
                port.port.and_then(|p| u16::try_from(p).ok()),
            ) else {
                continue;
            };
            let set = per_port
                .entry((port.name.clone().unwrap_or_default(), protocol))
                .or_default();
            for endpoint in &slice.endpoints {
                // Only the first address counts: the others are, by the API's contract, the
                // same endpoint's and consumers use the first.
                let Some(ip) = endpoint
                    .addresses
                    .first()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                let conditions = endpoint.conditions.as_ref();
                // Unknown readiness counts as ready, unknown serving as serving (API docs).
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(true);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                set.insert(Endpoint {
                    ip,
                    port: number,
                    ready,
                    serving,
                    terminating,
                    node_name: endpoint.node_name.clone(),
                });
            }
        }
    }

    let mut state = ProxyState::default();
    for service in services {
        let (Some(namespace), Some(name), Some(spec)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
            service.spec.as_ref(),
        ) else {
            continue;
        };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind == "ExternalName" {
            continue;
        }
        let cluster_ips = cluster_ips(spec);
        if cluster_ips.is_empty() {
            // Headless (clusterIP None) or not yet allocated: nothing to program.
            continue;
        }
        let external_ips = parse_ips(spec.external_ips.iter().flatten());
        let load_balancer_ips = if kind == "LoadBalancer" {
            parse_ips(
                service
                    .status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.ip.as_ref()),
            )
        } else {
            Vec::new()
        };
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            let seconds = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(DEFAULT_AFFINITY_SECONDS);
            Duration::from_secs(seconds)
        });
        let has_node_ports = matches!(kind, "NodePort" | "LoadBalancer");
        let service_endpoints = endpoints.get(&(namespace, name));
        for port in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(number)) = (
                Protocol::parse(port.protocol.as_deref()),
                u16::try_from(port.port),
            ) else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            let node_port = if has_node_ports {
                port.node_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
            } else {
                None
            };
            let eps = service_endpoints
                .and_then(|m| m.get(&(port_name.clone(), protocol)))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            state.services.insert(
                ServicePortName {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    port: port_name,
                    protocol,
                },
                (
                    ServicePort {
                        cluster_ips: cluster_ips.clone(),
                        port: number,
                        node_port,
                        external_ips: external_ips.clone(),
                        load_balancer_ips: load_balancer_ips.clone(),
                        affinity,
                        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    },
                    eps,
                ),
            );
        }
    }
    state
}

fn cluster_ips(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Vec<IpAddr> {
    match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => parse_ips(ips.iter()),
        _ => parse_ips(spec.cluster_ip.iter()),
    }
}

/// Parses addresses, dropping "None", empty and malformed entries and duplicates.
fn parse_ips<'a>(ips: impl Iterator<Item = &'a String>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ips.filter_map(|s| s.parse::<IpAddr>().ok()) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    fn key(name: &str, port: &str, protocol: Protocol) -> ServicePortName {
        ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: port.into(),
            protocol,
        }
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.20",
                "clusterIPs": ["10.96.0.20"],
                "externalIPs": ["192.0.2.7", "bogus"],
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}
                ]
            }
        }))
    }

    fn web_slice() -> EndpointSlice {
        slice(json!({
            "metadata": {"namespace": "default", "name": "web-abc",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.2.6"],
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.3.7"], "conditions": {}}
            ]
        }))
    }

    #[test]
    fn ports_are_matched_by_name_and_protocol() {
        let state = build_state(&[web()], &[web_slice()]);
        assert_eq!(state.services.len(), 2);
        let (http, eps) = &state.services[&key("web", "http", Protocol::Tcp)];
        assert_eq!(http.port, 80);
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(
            http.cluster_ips,
            vec!["10.96.0.20".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            http.external_ips,
            vec!["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(eps.len(), 3);
        assert!(eps.iter().all(|e| e.port == 8080));
        let first = eps
            .iter()
            .find(|e| e.ip.to_string() == "10.244.1.5")
            .unwrap();
        assert_eq!(first.node_name.as_deref(), Some("n1"));
        let terminating = eps
            .iter()
            .find(|e| e.ip.to_string() == "10.244.2.6")
            .unwrap();
        assert!(!terminating.ready && terminating.serving && terminating.terminating);
        // Unknown conditions: ready and serving, not terminating.
        let unknown = eps
            .iter()
            .find(|e| e.ip.to_string() == "10.244.3.7")
            .unwrap();
        assert!(unknown.ready && unknown.serving && !unknown.terminating);

        let (dns, eps) = &state.services[&key("web", "dns", Protocol::Udp)];
        assert_eq!(dns.node_port, Some(30053));
        assert!(eps.iter().all(|e| e.port == 5353));
    }

    #[test]
    fn headless_and_external_name_services_are_left_out() {
        let headless = service(json!({
            "metadata": {"namespace": "default", "name": "db"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
        }));
        let external = service(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com",
                     "ports": [{"port": 80}]}
        }));
        assert!(build_state(&[headless, external], &[]).services.is_empty());
    }

    #[test]
    fn cluster_ip_services_have_no_node_port_and_load_balancers_their_ingress() {
        let cluster_ip = service(json!({
            "metadata": {"namespace": "default", "name": "a"},
            "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80, "nodePort": 30001}]}
        }));
        let lb = service(json!({
            "metadata": {"namespace": "default", "name": "b"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.31",
                     "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                     "ports": [{"port": 443, "nodePort": 30443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.4"}]}}
        }));
        let state = build_state(&[cluster_ip, lb], &[]);
        let (a, eps) = &state.services[&key("a", "", Protocol::Tcp)];
        assert_eq!(a.node_port, None);
        assert!(eps.is_empty());
        let (b, _) = &state.services[&key("b", "", Protocol::Tcp)];
        assert_eq!(b.node_port, Some(30443));
        assert_eq!(
            b.load_balancer_ips,
            vec!["198.51.100.4".parse::<IpAddr>().unwrap()]
        );
        assert!(b.external_local);
        assert_eq!(
            b.affinity,
            Some(Duration::from_secs(DEFAULT_AFFINITY_SECONDS))
        );
    }

    #[test]
    fn slices_of_other_services_or_namespaces_do_not_match() {
        let mut other_ns = web_slice();
        other_ns.metadata.namespace = Some("other".into());
        let mut unlabelled = web_slice();
        unlabelled.metadata.labels = None;
        let state = build_state(&[web()], &[other_ns, unlabelled]);
        assert!(state.services.values().all(|(_, eps)| eps.is_empty()));
    }

    #[test]
    fn a_dual_stack_service_keeps_both_cluster_ips_and_its_ipv6_slices() {
        let svc = service(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {
                "clusterIP": "10.96.0.20",
                "clusterIPs": ["10.96.0.20", "fd00:96::20"],
                "ipFamilies": ["IPv4", "IPv6"],
                "ports": [{"name": "http", "port": 80}]
            }
        }));
        let v6 = slice(json!({
            "metadata": {"namespace": "default", "name": "web-v6",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv6",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["fd00:244::5"], "conditions": {"ready": true}}]
        }));
        let state = build_state(&[svc], &[web_slice(), v6]);
        let (http, eps) = &state.services[&key("web", "http", Protocol::Tcp)];
        assert_eq!(
            http.cluster_ips,
            vec![
                "10.96.0.20".parse::<IpAddr>().unwrap(),
                "fd00:96::20".parse::<IpAddr>().unwrap()
            ]
        );
        // Both families' endpoints are kept; each backend table takes its own family's.
        assert_eq!(eps.len(), 4);
        assert_eq!(eps.iter().filter(|e| e.ip.is_ipv6()).count(), 1);
    }

    #[test]
    fn endpoints_from_several_slices_are_merged_without_duplicates() {
        let mut second = web_slice();
        second.metadata.name = Some("web-def".into());
        second
            .endpoints
            .push(serde_json::from_value(json!({"addresses": ["10.244.9.9"]})).unwrap());
        let state = build_state(&[web()], &[web_slice(), second]);
        let (_, eps) = &state.services[&key("web", "http", Protocol::Tcp)];
        assert_eq!(eps.len(), 4);
    }
}
