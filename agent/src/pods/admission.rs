//! kubelet's admission: a pod bound to this node runs only if it fits next to the pods
//! already admitted, and asks for nothing the node refuses. A rejected pod fails at once
//! with kubelet's reason (`OutOfcpu`, `OutOfmemory`, `OutOfpods`, `SysctlForbidden`).

use k8s_openapi::api::core::v1::Pod;

use crate::cgroups::pod_request_totals;

/// What the node can give pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeResources {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

/// Why a pod was refused; `message` goes into status.message after "Pod was rejected: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

/// Namespaced sysctls kubelet allows without `--allowed-unsafe-sysctls`.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Admits `pod` next to `admitted` (the node's other pods that still hold resources) or says
/// why not, in kubelet's words.
pub fn admit<'a>(
    pod: &Pod,
    admitted: impl IntoIterator<Item = &'a Pod>,
    node: NodeResources,
    allowed_unsafe_sysctls: &[String],
) -> Result<(), Rejection> {
    let spec = pod.spec.as_ref();
    for s in spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.sysctls.as_ref())
        .into_iter()
        .flatten()
    {
        let allowed = SAFE_SYSCTLS.contains(&s.name.as_str())
            || allowed_unsafe_sysctls.iter().any(|a| {
                a == &s.name
                    || a.strip_suffix('*')
                        .is_some_and(|prefix| s.name.starts_with(prefix))
            });
        if !allowed {
            return Err(Rejection {
                reason: "SysctlForbidden".into(),
                message: format!("forbidden sysctl: \"{}\" not allowlisted", s.name),
            });
        }
    }

    let (cpu, memory) = pod_request_totals(pod).map_err(|e| Rejection {
        reason: "UnexpectedAdmissionError".into(),
        message: e.to_string(),
    })?;
    let (mut used_cpu, mut used_memory, mut used_pods) = (0i64, 0i64, 0i64);
    for other in admitted {
        if other.metadata.uid == pod.metadata.uid {
            continue;
        }
        // Admitted pods were checked when they came; a broken quantity counts as nothing.
        let (c, m) = pod_request_totals(other).unwrap_or((0, 0));
        used_cpu += c;
        used_memory += m;
        used_pods += 1;
    }
    let checks = [
        ("pods", 1, used_pods, node.pods),
        ("cpu", cpu, used_cpu, node.cpu_milli),
        ("memory", memory, used_memory, node.memory_bytes),
    ];
    for (resource, requested, used, capacity) in checks {
        if requested > 0 && used.saturating_add(requested) > capacity {
            return Err(Rejection {
                reason: format!("OutOf{resource}"),
                message: format!(
                    "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn pod(uid: &str, cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "uid": uid},
            "spec": {"containers": [{"name": "c", "image": "x",
                "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        }))
        .unwrap()
    }

    const NODE: NodeResources = NodeResources {
        cpu_milli: 2000,
        memory_bytes: 1 << 30,
        pods: 3,
    };

    #[test]
    fn fits_until_a_resource_runs_out() {
        let running = [pod("a", "500m", "256Mi"), pod("b", "1", "256Mi")];
        assert!(admit(&pod("c", "500m", "512Mi"), &running, NODE, &[]).is_ok());
        let r = admit(&pod("c", "600m", "10Mi"), &running, NODE, &[]).unwrap_err();
        assert_eq!(r.reason, "OutOfcpu");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
        );
        let r = admit(&pod("c", "10m", "600Mi"), &running, NODE, &[]).unwrap_err();
        assert_eq!(r.reason, "OutOfmemory");
        let full = [pod("a", "0", "0"), pod("b", "0", "0"), pod("d", "0", "0")];
        let r = admit(&pod("c", "0", "0"), &full, NODE, &[]).unwrap_err();
        assert_eq!(r.reason, "OutOfpods");
        // A pod is never counted against itself.
        assert!(admit(&full[0], &full, NODE, &[]).is_ok());
    }

    #[test]
    fn unsafe_sysctls_need_the_node_to_allow_them() {
        let mut p = pod("s", "0", "0");
        p.spec.as_mut().unwrap().security_context = Some(
            serde_json::from_value(
                json!({"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}),
            )
            .unwrap(),
        );
        let r = admit(&p, &[], NODE, &[]).unwrap_err();
        assert_eq!(r.reason, "SysctlForbidden");
        assert!(admit(&p, &[], NODE, &["net.core.*".into()]).is_ok());
    }
}
