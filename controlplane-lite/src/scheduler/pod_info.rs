//! [`PodInfo`]: what the scheduler needs of a pod, parsed once — its requests, host
//! ports, tolerations, affinity terms and spread constraints — both for the pod being
//! scheduled and for the pods already on nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use skiff_api::labels::Selector;

use super::plugins::inter_pod_affinity::{AffinityTerm, WeightedTerm};
use super::plugins::node_affinity::{self, PreferredTerm, RequiredNodeAffinity};
use super::plugins::node_ports::HostPort;
use super::plugins::pod_topology_spread::Constraints;
use super::plugins::taint_toleration::Toleration;
use super::plugins::volume_binding::{PodClaim, pod_claims};
use super::resources::{Resources, pod_requests};

/// The scheduler's name for itself; pods naming another scheduler are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub node_name: Option<String>,
    pub priority: i32,
    /// What the pod requests (the fit filter; BalancedAllocation).
    pub requests: Resources,
    /// Requests with the scoring defaults for containers that name none (LeastAllocated).
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    pub tolerations: Vec<Toleration>,
    pub node_affinity: RequiredNodeAffinity,
    pub preferred_node_affinity: Vec<PreferredTerm>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    pub spread: Constraints,
    /// What the pod's Services and controller select, when it has no spread
    /// constraints of its own: the system default spreading applies to it.
    pub default_spread: Option<Selector>,
    pub terminating: bool,
    pub preempt_never: bool,
    pub nominated_node: Option<String>,
    pub gated: bool,
    /// When the pod started (or was created): preemption prefers to evict newer pods.
    pub start_time: Option<Timestamp>,
    pub scheduler_name: String,
    /// The claims its volumes use (VolumeBinding).
    pub claims: Vec<PodClaim>,
}

fn terms(
    list: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<AffinityTerm> {
    list.into_iter()
        .flatten()
        .map(|t| AffinityTerm::parse(t, ns, labels))
        .collect()
}

fn weighted(
    list: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<WeightedTerm> {
    list.into_iter()
        .flatten()
        .filter(|w| w.weight != 0)
        .map(|w| WeightedTerm {
            weight: w.weight as i64,
            term: AffinityTerm::parse(&w.pod_affinity_term, ns, labels),
        })
        .collect()
}

impl PodInfo {
    pub fn new(pod: &Pod) -> PodInfo {
        let empty = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty);
        let m = &pod.metadata;
        let ns = m.namespace.clone().unwrap_or_default();
        let labels = m.labels.clone().unwrap_or_default();
        let pa = spec.affinity.as_ref().and_then(|a| a.pod_affinity.as_ref());
        let paa = spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref());
        let status = pod.status.as_ref();
        PodInfo {
            uid: m.uid.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(spec, false),
            non_zero: pod_requests(spec, true),
            host_ports: HostPort::of_pod(spec),
            tolerations: spec
                .tolerations
                .iter()
                .flatten()
                .map(Toleration::parse)
                .collect(),
            node_affinity: RequiredNodeAffinity::parse(spec),
            preferred_node_affinity: node_affinity::parse_preferred(spec),
            required_affinity: terms(
                pa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
                &labels,
            ),
            required_anti_affinity: terms(
                paa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
                &labels,
            ),
            preferred_affinity: weighted(
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
                &labels,
            ),
            preferred_anti_affinity: weighted(
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                &ns,
                &labels,
            ),
            spread: Constraints::parse(spec, &labels),
            default_spread: None,
            terminating: m.deletion_timestamp.is_some(),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            nominated_node: status
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty()),
            gated: spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
            start_time: status
                .and_then(|s| s.start_time.as_ref())
                .or(m.creation_timestamp.as_ref())
                .map(|t| t.0),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| SCHEDULER_NAME.into()),
            claims: pod_claims(m.name.as_deref().unwrap_or_default(), spec),
            namespace: ns,
            labels,
        }
    }

    /// Whether the pod has any pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// `namespace/name`, as messages name pods.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Whether this scheduler should place `pod`: it names this scheduler (or none), has no
/// node yet, and is neither finished nor being deleted.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let named = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or(SCHEDULER_NAME);
    named == SCHEDULER_NAME
        && spec
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

/// A pod that ran to completion holds no resources any more.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
