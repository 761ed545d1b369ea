//! The downward API: pod fields and container resources as file contents
//! (and as environment values for `subPathExpr`), formatted as kubelet does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, Pod, ResourceFieldSelector};
use skiff_api::quantity::Quantity;

use super::error::VolumeError;
use super::payload::{FileProjection, Payload, file_mode};

/// The node's allocatable resources: what the downward API reports for a container's unset
/// `limits.*`, as kubelet does.
#[derive(Clone, Debug, Default)]
pub struct Allocatable(pub BTreeMap<String, Quantity>);

impl Allocatable {
    fn get(&self, resource: &str) -> Quantity {
        if let Some(q) = self.0.get(resource) {
            return *q;
        }
        // Without a configured allocatable, the machine's own capacity.
        match resource {
            "cpu" => {
                // SAFETY: sysconf has no memory-safety preconditions.
                let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
                Quantity::from_value(cpus, skiff_api::quantity::Format::DecimalSI)
            }
            "memory" => {
                // SAFETY: sysconf has no memory-safety preconditions.
                let (pages, size) = unsafe {
                    (
                        libc::sysconf(libc::_SC_PHYS_PAGES),
                        libc::sysconf(libc::_SC_PAGESIZE),
                    )
                };
                Quantity::from_value(
                    pages.max(0).saturating_mul(size.max(0)),
                    skiff_api::quantity::Format::BinarySI,
                )
            }
            _ => Quantity::default(),
        }
    }
}

/// The files of a downwardAPI volume or projection.
pub(crate) fn payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    allocatable: &Allocatable,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    for item in items {
        let data = if let Some(field) = &item.field_ref {
            field_value(pod, &field.field_path)?
        } else if let Some(resource) = &item.resource_field_ref {
            resource_value(pod, resource, None, allocatable)?
        } else {
            return Err(VolumeError::EmptyDownwardApiItem {
                path: item.path.clone(),
            });
        };
        let mode = file_mode(item.mode, default_mode, &item.path)?;
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: data.into_bytes(),
                mode,
            },
        );
    }
    Ok(payload)
}

/// A pod field by its `fieldPath`.
pub(crate) fn field_value(pod: &Pod, field_path: &str) -> Result<String, VolumeError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    if let Some((map_path, key)) = split_subscript(field_path) {
        let map = match map_path {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(VolumeError::UnsupportedFieldPath(field_path.to_string())),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let empty = BTreeMap::new();
    let value = match field_path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(meta.labels.as_ref().unwrap_or(&empty))),
        "metadata.annotations" => Some(format_map(meta.annotations.as_ref().unwrap_or(&empty))),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIPs" => status.and_then(|s| s.pod_ips.as_ref()).map(|ips| {
            ips.iter()
                .map(|ip| ip.ip.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        "status.hostIPs" => status.and_then(|s| s.host_ips.as_ref()).map(|ips| {
            ips.iter()
                .map(|ip| ip.ip.as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        _ => return Err(VolumeError::UnsupportedFieldPath(field_path.to_string())),
    };
    Ok(value.unwrap_or_default())
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    Some((map, key))
}

/// kubelet's label/annotation file format: sorted `key="value"` lines, the
/// value quoted the way Go's `%q` does, no trailing newline.
pub(crate) fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || c.is_whitespace() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A container resource by `resourceFieldRef`, divided by its divisor and
/// rounded up as kubelet does. `default_container` is used when the selector
/// names none (environment variables refer to their own container).
pub(crate) fn resource_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    default_container: Option<&str>,
    allocatable: &Allocatable,
) -> Result<String, VolumeError> {
    let name = selector
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(default_container)
        .ok_or_else(|| VolumeError::ContainerNameRequired {
            resource: selector.resource.clone(),
        })?;
    let container = find_container(pod, name)?;
    let divisor = match &selector.divisor {
        None => Quantity::from_value(1, skiff_api::quantity::Format::DecimalSI),
        Some(q) => Quantity::try_from(q).map_err(|e| VolumeError::Quantity {
            field: "resourceFieldRef.divisor",
            value: q.0.clone(),
            reason: e.to_string(),
        })?,
    };
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| VolumeError::UnsupportedResource(selector.resource.clone()))?;
    let supported = matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        || resource.starts_with("hugepages-");
    if !supported {
        return Err(VolumeError::UnsupportedResource(selector.resource.clone()));
    }
    let resources = container.resources.as_ref();
    let quantity = match kind {
        "limits" => resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(resource))
            .map(|q| parse(q, "resources.limits"))
            .transpose()?
            .unwrap_or_else(|| allocatable.get(resource)),
        "requests" => resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(resource))
            .map(|q| parse(q, "resources.requests"))
            .transpose()?
            .unwrap_or_default(),
        _ => return Err(VolumeError::UnsupportedResource(selector.resource.clone())),
    };
    let (amount, per) = if resource == "cpu" {
        (quantity.to_milli(), divisor.to_milli())
    } else {
        (quantity.value(), divisor.value())
    };
    if per <= 0 {
        return Err(VolumeError::Quantity {
            field: "resourceFieldRef.divisor",
            value: divisor.to_string(),
            reason: "must be positive".to_string(),
        });
    }
    Ok(ceil_div(i128::from(amount), i128::from(per)).to_string())
}

fn parse(
    q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    field: &'static str,
) -> Result<Quantity, VolumeError> {
    Quantity::try_from(q).map_err(|e| VolumeError::Quantity {
        field,
        value: q.0.clone(),
        reason: e.to_string(),
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

pub(crate) fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, VolumeError> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| VolumeError::ContainerNotFound(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("prod".into());
        pod.metadata.uid = Some("u-1".into());
        pod.metadata.labels = Some(BTreeMap::from([
            ("tier".into(), "front".into()),
            ("app".into(), "web".into()),
        ]));
        pod.metadata.annotations = Some(BTreeMap::from([(
            "note".into(),
            "say \"hi\"\n\tüber\\".into(),
        )]));
        let container = Container {
            name: "main".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("cpu".into(), K8sQuantity("250m".into())),
                    ("memory".into(), K8sQuantity("64Mi".into())),
                ])),
                requests: Some(BTreeMap::from([(
                    "cpu".into(),
                    K8sQuantity("1500m".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.spec = Some(PodSpec {
            containers: vec![container],
            node_name: Some("node-a".into()),
            service_account_name: Some("robot".into()),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            pod_ip: Some("10.1.0.7".into()),
            host_ip: Some("192.168.1.2".into()),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn fields() {
        let pod = pod();
        let get = |p| field_value(&pod, p).unwrap();
        assert_eq!(get("metadata.name"), "web");
        assert_eq!(get("metadata.namespace"), "prod");
        assert_eq!(get("metadata.uid"), "u-1");
        assert_eq!(get("metadata.labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(get("metadata.labels['tier']"), "front");
        assert_eq!(get("metadata.labels['none']"), "");
        assert_eq!(get("spec.nodeName"), "node-a");
        assert_eq!(get("spec.serviceAccountName"), "robot");
        assert_eq!(get("status.podIP"), "10.1.0.7");
        assert_eq!(get("status.hostIP"), "192.168.1.2");
        assert_eq!(
            field_value(&pod, "spec.hostname").unwrap_err().to_string(),
            "unsupported fieldPath: spec.hostname"
        );
    }

    #[test]
    fn annotations_are_go_quoted() {
        assert_eq!(
            field_value(&pod(), "metadata.annotations").unwrap(),
            r#"note="say \"hi\"\n\tüber\\""#
        );
        assert_eq!(go_quote("a\u{1}\u{7f}\u{a0}"), r#""a\x01\x7f\u00a0""#);
    }

    fn selector(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            container_name: Some("main".into()),
            resource: resource.into(),
            divisor: divisor.map(|d| K8sQuantity(d.into())),
        }
    }

    #[test]
    fn resources_round_up_by_divisor() {
        let pod = pod();
        let alloc = Allocatable(BTreeMap::from([(
            "ephemeral-storage".into(),
            Quantity::parse("10Gi").unwrap(),
        )]));
        let get = |r, d| resource_value(&pod, &selector(r, d), None, &alloc).unwrap();
        assert_eq!(get("limits.cpu", None), "1");
        assert_eq!(get("limits.cpu", Some("1m")), "250");
        assert_eq!(get("requests.cpu", None), "2");
        assert_eq!(get("limits.memory", None), "67108864");
        assert_eq!(get("limits.memory", Some("1Mi")), "64");
        assert_eq!(get("requests.memory", None), "0");
        assert_eq!(get("limits.ephemeral-storage", Some("1Gi")), "10");
        assert!(resource_value(&pod, &selector("limits.gpu", None), None, &alloc).is_err());
        let mut other = selector("limits.cpu", None);
        other.container_name = Some("sidecar".into());
        assert_eq!(
            resource_value(&pod, &other, None, &alloc)
                .unwrap_err()
                .to_string(),
            "container sidecar not found"
        );
    }
}
