//! What the StatefulSet and DaemonSet controllers ask of their pods: phase, readiness and
//! availability as kube-controller-manager judges them, and which pods a set owns (adopting
//! orphans its selector matches, releasing pods it no longer selects, as `ClaimPods` does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use skiff_api::labels::Selector;

use super::revision_history::controller_uid;
use super::runtime::{Cluster, ClusterError};

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Failed or Succeeded: its containers will not run again.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// The time the pod's Ready condition turned True, if it is True.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Whether the pod has been Ready for `min_ready_seconds`; when it is Ready but not yet for
/// long enough, also how long until it will be.
pub fn availability(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> (bool, Option<Duration>) {
    let Some(since) = ready_since(pod) else {
        return (false, None);
    };
    if min_ready_seconds <= 0 {
        return (true, None);
    }
    let Some(since) = since else {
        // Ready with no transition time: nothing to wait for.
        return (true, None);
    };
    let need = Duration::from_secs(min_ready_seconds as u64);
    let waited = now
        .duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO);
    if waited >= need {
        (true, None)
    } else {
        (false, Some(need - waited))
    }
}

pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    availability(pod, min_ready_seconds, now).0
}

/// The pods of `namespace` that `owner` controls, after adopting the orphans `selector` and
/// `member` accept and releasing the controlled pods `selector` no longer matches. Adoption
/// and release carry the pod's resourceVersion, so a concurrent change wins.
pub async fn claim<C: Cluster>(
    cluster: &C,
    all: Vec<Arc<Pod>>,
    namespace: &str,
    owner: &OwnerReference,
    owner_deleting: bool,
    selector: &Selector,
    member: impl Fn(&Pod) -> bool,
) -> Result<Vec<Arc<Pod>>, ClusterError> {
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for pod in all {
        if pod.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let refs = pod.metadata.owner_references.clone().unwrap_or_default();
        match controller_uid(&pod.metadata) {
            Some(uid) if uid == owner.uid => {
                if (selector.matches(labels) && member(&pod)) || owner_deleting {
                    out.push(pod);
                    continue;
                }
                let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != owner.uid).collect();
                let patch = json!({"metadata": {
                    "ownerReferences": kept,
                    "resourceVersion": pod.metadata.resource_version,
                }});
                match cluster.patch::<Pod>(Some(namespace), name, &patch).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
            None => {
                if owner_deleting
                    || is_terminating(&pod)
                    || !selector.matches(labels)
                    || !member(&pod)
                {
                    continue;
                }
                let mut refs = refs;
                refs.push(owner.clone());
                let patch = json!({"metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": pod.metadata.resource_version,
                }});
                match cluster.patch::<Pod>(Some(namespace), name, &patch).await {
                    Ok(p) => out.push(Arc::new(p)),
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}
