//! A ReplicaSet's status: counts of its active pods, and a ReplicaFailure condition while
//! pods cannot be created or deleted.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::controllers::pod_util;
use crate::controllers::runtime::{Cluster, ClusterError};

/// Go's omitempty leaves zero counts out; so does the status written here.
fn nz(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The status `owned` pods give `rs`, with the failure of the last create/delete, if any.
pub fn calculate(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    manage_err: Option<&ClusterError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for p in owned {
        let labels = p.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            labeled += 1;
        }
        if pod_util::is_ready(p) {
            ready += 1;
            if pod_util::is_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "ReplicaFailure");
    match manage_err {
        Some(e) if !has_failure => {
            let want = super::desired(rs);
            let reason = if owned.len() < want {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(e.message.clone()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(cs) = status.conditions.as_mut() {
                cs.retain(|c| c.type_ != "ReplicaFailure");
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
        }
        _ => {}
    }
    status.replicas = i32::try_from(owned.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = nz(labeled);
    status.ready_replicas = nz(ready);
    status.available_replicas = nz(available);
    status
}

/// Writes `new` unless nothing changed; stamps the generation it was computed for.
pub async fn update<C: Cluster>(
    cluster: &C,
    rs: &ReplicaSet,
    mut new: ReplicaSetStatus,
) -> Result<(), ClusterError> {
    let old = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation;
    if old.replicas == new.replicas
        && old.fully_labeled_replicas.unwrap_or(0) == new.fully_labeled_replicas.unwrap_or(0)
        && old.ready_replicas.unwrap_or(0) == new.ready_replicas.unwrap_or(0)
        && old.available_replicas.unwrap_or(0) == new.available_replicas.unwrap_or(0)
        && old.observed_generation == generation
        && old.conditions == new.conditions
    {
        return Ok(());
    }
    new.observed_generation = generation;
    // Every field named, null for the omitted ones: a merge patch leaves out nothing stale.
    let patch = json!({"status": {
        "replicas": new.replicas,
        "fullyLabeledReplicas": new.fully_labeled_replicas,
        "readyReplicas": new.ready_replicas,
        "availableReplicas": new.available_replicas,
        "observedGeneration": new.observed_generation,
        "conditions": new.conditions.as_ref().map_or(Value::Null, |c| json!(c)),
    }});
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    match cluster
        .patch_status::<ReplicaSet>(rs.metadata.namespace.as_deref(), name, &patch)
        .await
    {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}
