//! Stopping containers and removing a pod from the node, as kubelet's `killContainer` and
//! pod cleanup do: the preStop hook, the stop signal, the grace period, SIGKILL; then the
//! containers, volumes, sandbox, cgroup and files of the pod, leaving nothing behind.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::api::PodApi;
use super::container_spec::pod_full_name;
use super::context::PodContext;
use super::events::{EventType, PodEvent};
use crate::probes::{self, ProbeTarget};

/// The shortest grace period a pod gets, even when deleted with `--grace-period=0`
/// (kubelet's minimum).
pub const MIN_GRACE: Duration = Duration::from_secs(2);
/// How long a SIGKILLed container may take to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The grace period of a pod being deleted, or of one of its containers being stopped.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).max(MIN_GRACE)
}

/// The signal that asks a container to stop: its image's `StopSignal`, else SIGTERM.
pub fn stop_signal(image_signal: Option<&str>) -> i32 {
    let Some(s) = image_signal.map(str::trim).filter(|s| !s.is_empty()) else {
        return libc::SIGTERM;
    };
    if let Ok(n) = s.parse::<i32>() {
        return n;
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        "PWR" => libc::SIGPWR,
        _ => libc::SIGTERM,
    }
}

/// Stops one running container within `grace`: preStop hook, stop signal, wait, SIGKILL.
/// Returns when the process is gone (or could not be waited for).
#[allow(clippy::too_many_arguments)]
pub async fn stop_container<A: PodApi>(
    ctx: Arc<PodContext<A>>,
    pod: Arc<Pod>,
    container: Container,
    init: bool,
    container_id: String,
    image: String,
    pod_ip: Option<IpAddr>,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    let runtime = ctx.runtime.clone();
    if let Some(handler) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    {
        let target = ProbeTarget {
            pod_ip,
            container_id: container_id.clone(),
            runtime: runtime.clone(),
            container: container.clone(),
            pod: probes::PodIdentity::of(&pod),
        };
        // A hook cut short by the grace period is no failure worth an event (kubelet's
        // rule): the hook's own timeout lies beyond it.
        let pod_name = pod_full_name(&pod);
        let hook = probes::run_handler(handler, &target, &pod_name, grace * 2);
        if let Ok(Err(message)) = tokio::time::timeout(grace, hook).await {
            ctx.events.record(
                PodEvent::new(&pod, EventType::Warning, "FailedPreStopHook", message)
                    .container(&container.name, init),
            );
        }
    }
    let signal = match runtime.image_config(&image).await {
        Ok(cfg) => stop_signal(cfg.stop_signal.as_deref()),
        Err(_) => libc::SIGTERM,
    };
    if let Err(e) = runtime.kill(&container_id, signal).await {
        tracing::warn!(container = %container.name, error = %e, "stop signal failed");
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(remaining, runtime.wait(&container_id))
        .await
        .is_ok()
    {
        return;
    }
    tracing::info!(container = %container.name, "grace period over; killing");
    if let Err(e) = runtime.kill(&container_id, libc::SIGKILL).await {
        tracing::warn!(container = %container.name, error = %e, "SIGKILL failed");
    }
    let _ = tokio::time::timeout(KILL_WAIT, runtime.wait(&container_id)).await;
}

/// Removes everything the pod holds on the node: every runtime container labelled with its
/// uid, its volumes, its sandbox (CNI DEL included), its cgroup and its files. Errors are
/// collected; what could be removed is removed.
pub async fn tear_down<A: PodApi>(ctx: &PodContext<A>, uid: &str) -> Result<(), String> {
    let mut errors = Vec::new();
    match ctx.runtime.list().await {
        Ok(list) => {
            for c in list
                .into_iter()
                .filter(|c| c.meta.as_ref().is_some_and(|m| m.pod_uid == uid))
            {
                if let Err(e) = ctx.runtime.delete(&c.id).await {
                    errors.push(format!("remove container {}: {e}", c.id));
                }
            }
        }
        Err(e) => errors.push(format!("list containers: {e}")),
    }
    if let Err(e) = ctx.volumes.teardown(uid).await {
        errors.push(format!("volumes: {e}"));
    }
    let containers = ctx.pod_state_dir(uid).join("containers");
    match std::fs::remove_dir_all(&containers) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("remove {}: {e}", containers.display())),
    }
    if let Err(e) = ctx.sandbox.teardown(uid).await {
        errors.push(format!("sandbox: {e}"));
    }
    if let Err(e) = ctx.cgroups.remove_pod(uid).await {
        errors.push(format!("cgroup: {e}"));
    }
    let dir = ctx.pod_state_dir(uid);
    match std::fs::remove_dir(&dir) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) => {}
        Err(e) => errors.push(format!("remove {}: {e}", dir.display())),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals() {
        assert_eq!(stop_signal(None), libc::SIGTERM);
        assert_eq!(stop_signal(Some("SIGQUIT")), libc::SIGQUIT);
        assert_eq!(stop_signal(Some("usr1")), libc::SIGUSR1);
        assert_eq!(stop_signal(Some("9")), 9);
        assert_eq!(stop_signal(Some("SIGRTMIN+3")), libc::SIGTERM);
    }
}
