//! From the names in a request to what the handlers act on — the pod, its container's
//! runtime id, the log file of one of its runs — with kubelet's refusals.

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};

use super::ApiState;
use crate::pods::container_spec::container_id;
use crate::runtime::TaskStatus;

/// A refusal: its status and kubelet's words.
pub type Refusal = (StatusCode, String);

pub fn pod(state: &ApiState, namespace: &str, name: &str) -> Result<Arc<Pod>, Refusal> {
    state.pods.find(namespace, name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("pod {name:?} does not exist"),
        )
    })
}

fn in_spec(pod: &Pod, container: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    })
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The container must be one of the pod's.
pub fn container(pod: &Pod, container: &str) -> Result<(), Refusal> {
    if in_spec(pod, container) {
        Ok(())
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {}", name(pod)),
        ))
    }
}

/// The runtime id of the container's running process, for exec and attach.
pub async fn running_container(
    state: &ApiState,
    pod: &Pod,
    container: &str,
) -> Result<String, Refusal> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let not_found = || {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        )
    };
    let list = state.runtime.list().await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("listing containers: {e}"),
        )
    })?;
    list.into_iter()
        .filter(|c| {
            c.task.status == TaskStatus::Running
                && c.meta
                    .as_ref()
                    .is_some_and(|m| m.pod_uid == uid && m.container_name == container)
        })
        .max_by_key(|c| c.meta.as_ref().map_or(0, |m| m.attempt))
        .map(|c| c.id)
        .ok_or_else(not_found)
}

/// The pod's network namespace, for port-forwarding: the sandbox's, or the agent's own for
/// host-network pods.
pub fn netns(state: &ApiState, pod: &Pod) -> Result<PathBuf, Refusal> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    if host_network {
        return Ok(PathBuf::from("/proc/self/ns/net"));
    }
    match state.sandbox.adopt(uid) {
        Ok(Some(sb)) => sb.namespaces.net.ok_or_else(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the pod has no network namespace".into(),
            )
        }),
        Ok(None) => Err((
            StatusCode::BAD_REQUEST,
            format!("pod {} has no running sandbox", name(pod)),
        )),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn status_of<'a>(status: &'a PodStatus, container: &str) -> Option<&'a ContainerStatus> {
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == container)
}

/// Which run's log to read, by kubelet's rules: the running container, else the last one
/// that ran; with `previous` the one before; a container that never ran has none.
pub fn log_container_id(pod: &Pod, container: &str, previous: bool) -> Result<String, String> {
    let pod_name = name(pod);
    let status = pod
        .status
        .as_ref()
        .and_then(|s| status_of(s, container))
        .ok_or_else(|| format!("container {container:?} in pod {pod_name:?} is not available"))?;
    let last_id = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone())
        .filter(|id| !id.is_empty());
    let state = status.state.clone().unwrap_or_default();
    let terminated = || format!("container {container:?} in pod {pod_name:?} is terminated");
    let id = if previous {
        last_id.ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        })?
    } else if state.running.is_some() {
        status.container_id.clone().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.clone().filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => last_id.ok_or_else(terminated)?,
        }
    } else if last_id.is_some() {
        last_id.unwrap_or_default()
    } else if let Some(w) = &state.waiting {
        let why = match w.reason.as_deref().unwrap_or_default() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
        ));
    } else {
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
        ));
    };
    Ok(id
        .split_once("://")
        .map_or(id.as_str(), |(_, id)| id)
        .to_string())
}

/// The log file of the run `id` of the container (ids are derived from the attempt).
pub fn log_path(state: &ApiState, pod: &Pod, container: &str, id: &str) -> Option<PathBuf> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| status_of(s, container))
        .map_or(0, |s| s.restart_count.max(0) as u32);
    let attempt = (0..=restarts + 1).find(|a| container_id(uid, container, *a) == id)?;
    Some(
        state
            .log_dir
            .join(format!(
                "{}_{}_{uid}",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                name(pod)
            ))
            .join(container)
            .join(format!("{attempt}.log")),
    )
}
