//! A budget's status from its pods and their controllers' scale: upstream's
//! getExpectedPodCount, buildDisruptedPodMap, countHealthyPods and updatePdbStatus, without
//! the cluster, so each rule is tested on its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::clock::after;
use crate::controllers::pod_util::is_ready;

/// How long an evicted pod may take to start deleting before the budget counts it again
/// (upstream's DeletionTimeout).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(2 * 60);

pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// The scale of the controllers of a budget's pods.
#[derive(Debug, Default)]
pub struct Scales {
    /// Controller uid → desired replicas.
    pub replicas: BTreeMap<String, i32>,
    /// Pods without a controller.
    pub unmanaged: Vec<String>,
    /// A pod whose controller has no known scale.
    pub error: Option<String>,
}

impl Scales {
    fn total(&self) -> Result<i32, String> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(self.replicas.values().sum()),
        }
    }
}

/// What a sync found.
#[derive(Debug)]
pub struct Computed {
    pub status: PodDisruptionBudgetStatus,
    /// When the earliest disrupted pod's grace runs out, to look again then.
    pub recheck: Option<Timestamp>,
    /// Disrupted pods that were not deleted in time (each gets a NotDeleted event).
    pub not_deleted: Vec<String>,
    /// Whether the expected count came from the controllers' scale.
    pub used_scale: bool,
}

/// `value` of `total`: an integer as is, a percentage rounded up.
pub fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let p = crate::apiserver::kinds::pdb::parse_percent(s)
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let p = i64::try_from(p).map_err(|_| format!("percentage {s} is too large"))?;
            let n = (p * i64::from(total) + 99) / 100;
            i32::try_from(n).map_err(|_| format!("percentage {s} of {total} is too large"))
        }
    }
}

/// The status the budget should have now.
pub fn compute(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scales: &Scales,
    now: Timestamp,
) -> Result<Computed, String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let pod_count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let (expected, desired, used_scale) = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = scales.total()?;
            let max = scaled(max, expected)?;
            (expected, (expected - max).max(0), true)
        }
        (None, Some(IntOrString::Int(n))) => (pod_count, *n, false),
        (None, Some(min)) => {
            let expected = scales.total()?;
            (expected, scaled(min, expected)?, true)
        }
        (None, None) => (0, 0, false),
    };

    let old = pdb.status.clone().unwrap_or_default();
    let recorded = old.disrupted_pods.clone().unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut not_deleted = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        let deadline = after(at.0, DELETION_TIMEOUT);
        if deadline < now {
            not_deleted.push(name);
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            disrupted.insert(name, at.clone());
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted
                .get(name)
                .is_none_or(|at: &Time| after(at.0, DELETION_TIMEOUT) <= now)
        })
        .filter(|p| is_ready(p))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = pdb.metadata.generation;
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: Some(disrupted).filter(|m| !m.is_empty()),
        observed_generation: generation,
        conditions: old.conditions.clone(),
    };
    let (value, reason) = if allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    set_condition(&mut status, value, reason, "", now);
    Ok(Computed {
        status,
        recheck,
        not_deleted,
        used_scale,
    })
}

/// The status of a budget whose sync failed: no disruption allowed, and why.
pub fn set_failed(
    pdb: &PodDisruptionBudget,
    error: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    set_condition(&mut status, "False", SYNC_FAILED, error, now);
    status
}

/// Sets the DisruptionAllowed condition, moving its transition time only when its
/// status changes (as apimachinery's SetStatusCondition).
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let observed = status.observed_generation;
    let conds = status.conditions.get_or_insert_with(Vec::new);
    match conds.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Time(now);
                c.status = value.into();
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = observed;
        }
        None => conds.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: observed,
            last_transition_time: Time(now),
        }),
    }
}
