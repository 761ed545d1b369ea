//! Kubernetes QoS classes, computed exactly as the API server and kubelet do.

use k8s_openapi::api::core::v1::Pod;
use skiff_api::quantity::Quantity;

use super::resources::{CPU, MEMORY, ResourceList, default_requests, pod_level, quantity_lenient};

/// A pod's quality-of-service class, which places its cgroup and ranks it for
/// eviction and OOM killing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has cpu and memory limits equal to its requests.
    Guaranteed,
    /// Some requests or limits, but not Guaranteed.
    Burstable,
    /// No cpu or memory requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The name Kubernetes uses in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// Parses a `status.qosClass` value.
    pub fn parse(s: &str) -> Option<QosClass> {
        match s {
            "Guaranteed" => Some(QosClass::Guaranteed),
            "Burstable" => Some(QosClass::Burstable),
            "BestEffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod's QoS class as kubelet sees it: `status.qosClass` when the API server
/// has recorded it (it never changes for a pod, even when its resources are resized),
/// otherwise [`compute_qos_class`].
pub fn qos_class(pod: &Pod) -> QosClass {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .and_then(QosClass::parse)
        .unwrap_or_else(|| compute_qos_class(pod))
}

/// The QoS class from the pod spec alone, by Kubernetes' rules. Only cpu and memory
/// count, only positive amounts count, and requests default to limits as API
/// defaulting would have done. With pod-level resources (`spec.resources`) set,
/// they alone decide. Quantities that do not parse count as absent (the API server
/// never admits them).
pub fn compute_qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let mut requests = Sums::default();
    let mut limits = Sums::default();
    let mut guaranteed = true;
    if let Some(pod_res) = pod_level(spec) {
        let pod_limits = pod_res.limits.as_ref();
        let pod_requests = default_requests(pod_res.requests.as_ref(), pod_limits);
        requests.add_positive(&pod_requests);
        match pod_limits {
            Some(l) if !l.is_empty() => {
                limits.add_positive(l);
                if !(l.contains_key(CPU) && l.contains_key(MEMORY)) {
                    guaranteed = false;
                }
            }
            _ => guaranteed = false,
        }
    } else {
        let init = spec.init_containers.iter().flatten();
        for c in spec.containers.iter().chain(init) {
            let res = c.resources.as_ref();
            let container_limits = res.and_then(|r| r.limits.as_ref());
            let container_requests =
                default_requests(res.and_then(|r| r.requests.as_ref()), container_limits);
            requests.add_positive(&container_requests);
            let found = container_limits
                .map(|l| limits.add_positive(l))
                .unwrap_or_default();
            if !(found.cpu && found.memory) {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed {
        let same = |req: Option<Quantity>, lim: Option<Quantity>| match req {
            None => true,
            Some(r) => lim == Some(r),
        };
        guaranteed = same(requests.cpu, limits.cpu) && same(requests.memory, limits.memory);
    }
    if guaranteed && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// Sums of positive cpu and memory amounts; `None` where nothing positive was seen.
#[derive(Debug, Default)]
struct Sums {
    cpu: Option<Quantity>,
    memory: Option<Quantity>,
}

#[derive(Debug, Default)]
struct Found {
    cpu: bool,
    memory: bool,
}

impl Sums {
    fn add_positive(&mut self, list: &ResourceList) -> Found {
        let mut found = Found::default();
        for (name, q) in list {
            let Some(q) = quantity_lenient(name, q) else {
                continue;
            };
            if q.signum() <= 0 {
                continue;
            }
            let slot = match name.as_str() {
                CPU => {
                    found.cpu = true;
                    &mut self.cpu
                }
                MEMORY => {
                    found.memory = true;
                    &mut self.memory
                }
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |s| s + q));
        }
        found
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn len(&self) -> usize {
        usize::from(self.cpu.is_some()) + usize::from(self.memory.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::resources::test_pods::*;

    #[test]
    fn no_resources_is_best_effort() {
        assert_eq!(
            compute_qos_class(&pod(vec![ctr(&[], &[])], vec![])),
            QosClass::BestEffort
        );
        // Other resources do not count.
        let p = pod(
            vec![ctr(
                &[("ephemeral-storage", "1Gi")],
                &[("nvidia.com/gpu", "1")],
            )],
            vec![],
        );
        assert_eq!(compute_qos_class(&p), QosClass::BestEffort);
        // Zero amounts do not count either.
        let p = pod(vec![ctr(&[("cpu", "0")], &[])], vec![]);
        assert_eq!(compute_qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn equal_limits_and_requests_everywhere_is_guaranteed() {
        let full = || {
            ctr(
                &[("cpu", "500m"), ("memory", "128Mi")],
                &[("cpu", "0.5"), ("memory", "134217728")],
            )
        };
        assert_eq!(
            compute_qos_class(&pod(vec![full(), full()], vec![full()])),
            QosClass::Guaranteed
        );
        // Requests default to limits.
        let limits_only = ctr(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(
            compute_qos_class(&pod(vec![limits_only], vec![])),
            QosClass::Guaranteed
        );
    }

    #[test]
    fn anything_less_is_burstable() {
        // Requests below limits.
        let p = pod(
            vec![ctr(
                &[("cpu", "1"), ("memory", "1Gi")],
                &[("cpu", "2"), ("memory", "1Gi")],
            )],
            vec![],
        );
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
        // Only cpu limited.
        let p = pod(vec![ctr(&[], &[("cpu", "1")])], vec![]);
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
        // One container guaranteed, the other best-effort.
        let g = ctr(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(
            compute_qos_class(&pod(vec![g.clone(), ctr(&[], &[])], vec![])),
            QosClass::Burstable
        );
        // An init container without limits spoils it too.
        let init = ctr(&[("memory", "10Mi")], &[]);
        assert_eq!(
            compute_qos_class(&pod(vec![g], vec![init])),
            QosClass::Burstable
        );
        // Requests only.
        let p = pod(vec![ctr(&[("memory", "10Mi")], &[])], vec![]);
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn status_wins_over_the_spec() {
        let mut p = pod(vec![ctr(&[], &[])], vec![]);
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            qos_class: Some("Burstable".into()),
            ..Default::default()
        });
        assert_eq!(qos_class(&p), QosClass::Burstable);
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            qos_class: Some("nonsense".into()),
            ..Default::default()
        });
        assert_eq!(qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn pod_level_resources_decide_alone() {
        let mut p = pod(vec![ctr(&[], &[])], vec![]);
        set_pod_level(&mut p, &[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(compute_qos_class(&p), QosClass::Guaranteed);
        set_pod_level(
            &mut p,
            &[("cpu", "500m")],
            &[("cpu", "1"), ("memory", "1Gi")],
        );
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
        set_pod_level(&mut p, &[("memory", "1Gi")], &[]);
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn names_round_trip() {
        for q in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ] {
            assert_eq!(QosClass::parse(q.as_str()), Some(q));
            assert_eq!(q.to_string(), q.as_str());
        }
    }
}
