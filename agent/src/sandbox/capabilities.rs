//! CNI capability arguments derived from the pod, as containerd's CRI plugin passes
//! them: host ports, bandwidth limits, the pod's DNS configuration and annotations.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};
use skiff_api::quantity::Quantity;

use super::SandboxError;
use super::files::ResolvConf;

const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";
/// The kubelet's accepted range for the bandwidth annotations, in bits per second.
const MIN_BANDWIDTH: i64 = 1_000;
const MAX_BANDWIDTH: i64 = 1_000_000_000_000_000;

pub fn capability_args(pod: &Pod, dns: &ResolvConf) -> Result<Map<String, Value>, SandboxError> {
    let mut args = Map::new();
    let ports = port_mappings(pod);
    if !ports.is_empty() {
        args.insert("portMappings".into(), Value::Array(ports));
    }
    if let Some(bw) = bandwidth(pod)? {
        args.insert("bandwidth".into(), bw);
    }
    args.insert(
        "dns".into(),
        json!({"servers": dns.nameservers, "searches": dns.searches, "options": dns.options}),
    );
    if let Some(annotations) = &pod.metadata.annotations {
        args.insert(
            "io.kubernetes.cri.pod-annotations".into(),
            json!(annotations),
        );
    }
    Ok(args)
}

/// Every container port with a hostPort (sidecar init containers included, as their
/// ports are the pod's for as long as it runs), once each.
fn port_mappings(pod: &Pod) -> Vec<Value> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut out: Vec<Value> = Vec::new();
    for container in spec.containers.iter().chain(sidecars) {
        for port in container.ports.iter().flatten() {
            let Some(host_port) = port.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let protocol = port
                .protocol
                .as_deref()
                .unwrap_or("TCP")
                .to_ascii_lowercase();
            let mut m = json!({
                "hostPort": host_port,
                "containerPort": port.container_port,
                "protocol": protocol,
            });
            if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                m["hostIP"] = json!(ip);
            }
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// The bandwidth annotations, in bits per second with an unlimited burst (what
/// containerd passes; the kubelet has no burst setting).
fn bandwidth(pod: &Pod) -> Result<Option<Value>, SandboxError> {
    let Some(annotations) = &pod.metadata.annotations else {
        return Ok(None);
    };
    let mut bw = Map::new();
    for (key, rate, burst) in [
        (INGRESS_BANDWIDTH, "ingressRate", "ingressBurst"),
        (EGRESS_BANDWIDTH, "egressRate", "egressBurst"),
    ] {
        let Some(text) = annotations.get(key) else {
            continue;
        };
        let value = Quantity::parse(text)
            .map_err(|e| SandboxError::InvalidPod {
                field: key,
                reason: e.to_string(),
            })?
            .value();
        if !(MIN_BANDWIDTH..=MAX_BANDWIDTH).contains(&value) {
            return Err(SandboxError::InvalidPod {
                field: key,
                reason: format!("{text} is outside 1k..1P"),
            });
        }
        bw.insert(rate.into(), json!(value));
        bw.insert(burst.into(), json!(u32::MAX));
    }
    Ok((!bw.is_empty()).then_some(Value::Object(bw)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn port(container: i32, host: Option<i32>, protocol: Option<&str>) -> ContainerPort {
        ContainerPort {
            container_port: container,
            host_port: host,
            protocol: protocol.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn host_ports_bandwidth_dns_and_annotations() {
        let pod = Pod {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([
                    (INGRESS_BANDWIDTH.to_string(), "10M".to_string()),
                    ("team".to_string(), "a".to_string()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        port(80, Some(8080), None),
                        port(53, Some(5353), Some("UDP")),
                        port(9000, None, None),
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let dns = ResolvConf {
            nameservers: vec!["10.96.0.10".into()],
            ..Default::default()
        };
        let args = capability_args(&pod, &dns).unwrap();
        assert_eq!(
            args["portMappings"],
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
            ])
        );
        assert_eq!(args["bandwidth"]["ingressRate"], 10_000_000);
        assert!(args["bandwidth"].get("egressRate").is_none());
        assert_eq!(args["dns"]["servers"], json!(["10.96.0.10"]));
        assert_eq!(args["io.kubernetes.cri.pod-annotations"]["team"], "a");
    }

    #[test]
    fn bad_bandwidth_is_refused() {
        let pod = Pod {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    EGRESS_BANDWIDTH.to_string(),
                    "10".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(capability_args(&pod, &ResolvConf::default()).is_err());
    }
}
