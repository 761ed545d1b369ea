//! Starting one container of a pod, as kubelet's `startContainer` does: make the image
//! present, build the environment and mounts, create the container and start it, with the
//! events a user reads in `kubectl describe pod`. Runs as its own task; the pod worker gets
//! the outcome as a message.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};

use super::api::PodApi;
use super::container_spec::{self, ContainerInputs, pod_full_name};
use super::context::PodContext;
use super::env::{EnvContext, container_env};
use super::events::{EventType, PodEvent};
use super::images::{Ensured, PullPolicy, image_id};
use super::record::Kind;
use crate::cgroups::{PodCgroup, QosClass, container_resources};
use crate::runtime::registry::credentials_for;
use crate::runtime::{Error as RuntimeError, RegistryAuth};
use crate::sandbox::SandboxInfo;
use crate::volumes::PreparedVolumes;

/// Everything one start needs, owned, so the start runs on its own task.
pub struct StartRequest {
    pub pod: Arc<Pod>,
    pub container: Container,
    pub kind: Kind,
    pub attempt: u32,
    pub sandbox: SandboxInfo,
    pub volumes: PreparedVolumes,
    pub cgroup: Option<PodCgroup>,
    pub qos: QosClass,
}

/// A container that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub container_id: String,
    pub image_id: String,
    pub started_at: Timestamp,
}

/// Why a start did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// Nothing ran: the container waits with this reason (`ErrImagePull`,
    /// `ErrImageNeverPull`, `InvalidImageName`, `CreateContainerConfigError`,
    /// `CreateContainerError`). `pull` marks image failures, which back off on their own.
    Waiting {
        reason: &'static str,
        message: String,
        pull: bool,
    },
    /// The runtime could not start the process: kubelet counts that as a run that ended
    /// with code 128 (`StartError`) and restarts it with back-off.
    StartFailed {
        container_id: String,
        message: String,
    },
}

/// Go's rendering of a duration truncated to milliseconds, as kubelet's pull events show
/// it (`850ms`, `1.5s`, `12.034s`).
pub fn go_millis(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        format!("{secs}s")
    } else {
        let f = format!("{frac:03}");
        format!("{secs}.{}s", f.trim_end_matches('0'))
    }
}

fn event(req: &StartRequest, type_: EventType, reason: &str, message: String) -> PodEvent {
    PodEvent::new(&req.pod, type_, reason, message)
        .container(&req.container.name, req.kind != Kind::App)
}

/// The credentials of the pod's image pull secrets for `image`. Secrets that are missing are
/// skipped, as kubelet skips them.
async fn pull_credentials<A: PodApi>(
    ctx: &PodContext<A>,
    pod: &Pod,
    image: &str,
) -> Result<Vec<RegistryAuth>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut secrets: Vec<Secret> = Vec::new();
    for r in pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
    {
        match ctx.api.secret(namespace, &r.name).await {
            Ok(Some(s)) => secrets.push(s),
            Ok(None) => tracing::warn!(secret = %r.name, "image pull secret not found"),
            Err(e) => return Err(format!("couldn't get secret {namespace}/{}: {e}", r.name)),
        }
    }
    credentials_for(image, &secrets).map_err(|e| e.to_string())
}

/// Makes the container's image present, with kubelet's events.
async fn ensure_image<A: PodApi>(
    ctx: &PodContext<A>,
    req: &StartRequest,
) -> Result<Ensured, StartError> {
    let c = &req.container;
    let image = c.image.clone().unwrap_or_default();
    let policy = PullPolicy::of(&image, c.image_pull_policy.as_deref());
    let auth = if policy == PullPolicy::Never {
        Vec::new()
    } else {
        pull_credentials(ctx, &req.pod, &image)
            .await
            .map_err(|message| StartError::Waiting {
                reason: "ErrImagePull",
                message,
                pull: true,
            })?
    };
    let started = std::time::Instant::now();
    let result = ctx
        .images
        .ensure(&image, policy, &auth, || {
            ctx.events.record(event(
                req,
                EventType::Normal,
                "Pulling",
                format!("Pulling image \"{image}\""),
            ));
        })
        .await;
    match result {
        Ok(Ensured::Present { image: name }) => {
            ctx.events.record(event(
                req,
                EventType::Normal,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ));
            Ok(Ensured::Present { image: name })
        }
        Ok(pulled @ Ensured::Pulled { .. }) => {
            if let Ensured::Pulled { took, .. } = &pulled {
                let size = ctx
                    .runtime
                    .image_config(pulled.name())
                    .await
                    .map(|c| c.size)
                    .unwrap_or(0);
                ctx.events.record(event(
                    req,
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {size} bytes.",
                        go_millis(*took),
                        go_millis(started.elapsed()),
                    ),
                ));
            }
            Ok(pulled)
        }
        Err(e) => {
            let (reason, message) = match e.reason {
                "ErrImagePull" => {
                    ctx.events.record(event(
                        req,
                        EventType::Warning,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {}", e.message),
                    ));
                    ctx.events.record(event(
                        req,
                        EventType::Warning,
                        "Failed",
                        "Error: ErrImagePull".into(),
                    ));
                    ("ErrImagePull", e.message)
                }
                other => {
                    ctx.events
                        .record(event(req, EventType::Warning, other, e.message.clone()));
                    ctx.events.record(event(
                        req,
                        EventType::Warning,
                        "Failed",
                        format!("Error: {other}"),
                    ));
                    (other, e.message)
                }
            };
            Err(StartError::Waiting {
                reason,
                message,
                pull: true,
            })
        }
    }
}

fn config_error<A: PodApi>(
    ctx: &PodContext<A>,
    req: &StartRequest,
    reason: &'static str,
    message: String,
) -> StartError {
    ctx.events.record(event(
        req,
        EventType::Warning,
        "Failed",
        format!("Error: {message}"),
    ));
    StartError::Waiting {
        reason,
        message,
        pull: false,
    }
}

/// Removes log files (and their rotated files) of attempts before the previous one:
/// `kubectl logs --previous` needs only the last run.
fn prune_logs(dir: &std::path::Path, attempt: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let n = name
            .to_str()
            .and_then(|n| n.split_once(".log").map(|(n, _)| n))
            .and_then(|n| n.parse::<u32>().ok());
        if n.is_some_and(|n| n + 1 < attempt) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Starts one container.
pub async fn start_container<A: PodApi>(
    ctx: Arc<PodContext<A>>,
    req: StartRequest,
) -> Result<Started, StartError> {
    let ensured = ensure_image(&ctx, &req).await?;
    let image_name = ensured.name().to_string();
    let image = ctx
        .runtime
        .image_config(&image_name)
        .await
        .map_err(|e| config_error(&ctx, &req, "CreateContainerError", e.to_string()))?;

    // The environment sees the pod's and node's addresses, known only now.
    let mut pod = (*req.pod).clone();
    {
        let status = pod.status.get_or_insert_with(Default::default);
        let ips: Vec<String> = req.sandbox.ips.iter().map(|i| i.to_string()).collect();
        status.pod_ip = ips.first().cloned();
        status.pod_ips = Some(
            ips.iter()
                .map(|ip| k8s_openapi::api::core::v1::PodIP { ip: ip.clone() })
                .collect(),
        );
        let host: Vec<String> = ctx
            .settings
            .node_ips
            .iter()
            .map(|i| i.to_string())
            .collect();
        status.host_ip = host.first().cloned();
        status.host_ips = Some(
            host.iter()
                .map(|ip| k8s_openapi::api::core::v1::HostIP { ip: ip.clone() })
                .collect(),
        );
    }
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let services = ctx.api.services(&namespace).await.map_err(|e| {
        config_error(
            &ctx,
            &req,
            "CreateContainerConfigError",
            format!("couldn't list services: {e}"),
        )
    })?;
    let env = container_env(
        ctx.api.as_ref(),
        &EnvContext {
            pod: &pod,
            container: &req.container,
            allocatable: &ctx.settings.allocatable,
            services: &services,
        },
    )
    .await
    .map_err(|e| config_error(&ctx, &req, "CreateContainerConfigError", e.to_string()))?;
    if !env.skipped.is_empty() {
        ctx.events.record(PodEvent::new(
            &pod,
            EventType::Warning,
            "InvalidEnvironmentVariableNames",
            format!(
                "Keys [{}] from the EnvFrom configMap were skipped since they are invalid environment variable names.",
                env.skipped.join(", ")
            ),
        ));
    }
    let volume_mounts = req
        .volumes
        .mounts_for(&req.container)
        .map_err(|e| config_error(&ctx, &req, "CreateContainerConfigError", e.to_string()))?;

    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = container_spec::container_id(&uid, &req.container.name, req.attempt);
    let log_path = ctx.log_path(&pod, &req.container.name, req.attempt);
    let termination_log = ctx.termination_log(&uid, &id);
    for dir in [log_path.parent(), termination_log.parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            config_error(
                &ctx,
                &req,
                "CreateContainerError",
                format!("create {}: {e}", dir.display()),
            )
        })?;
    }
    if let Some(dir) = log_path.parent() {
        prune_logs(dir, req.attempt);
    }
    std::fs::write(&termination_log, b"").map_err(|e| {
        config_error(
            &ctx,
            &req,
            "CreateContainerError",
            format!("create {}: {e}", termination_log.display()),
        )
    })?;
    let limits = container_resources(&req.container)
        .map(|r| ctx.cgroups.container_limits(&r))
        .map_err(|e| config_error(&ctx, &req, "CreateContainerConfigError", e.to_string()))?;
    let spec = container_spec::container_spec(&ContainerInputs {
        pod: &pod,
        container: &req.container,
        attempt: req.attempt,
        sandbox: &req.sandbox,
        image_name: &image_name,
        image: &image,
        env: &env.vars,
        volume_mounts: &volume_mounts,
        cgroup: req.cgroup.as_ref(),
        limits,
        qos: req.qos,
        memory_capacity: ctx.settings.memory_capacity,
        log_path,
        logger: ctx.settings.logger.as_ref(),
        termination_log: Some(termination_log),
    })
    .map_err(|e| config_error(&ctx, &req, "CreateContainerConfigError", e.to_string()))?;

    let created = match ctx.runtime.create_container(&spec).await {
        Err(e) if e.is_already_exists() => {
            // Left by an earlier run of the agent that died between create and start.
            let _ = ctx.runtime.delete(&spec.id).await;
            ctx.runtime.create_container(&spec).await
        }
        other => other,
    };
    created.map_err(|e| config_error(&ctx, &req, "CreateContainerError", e.to_string()))?;
    ctx.events.record(event(
        &req,
        EventType::Normal,
        "Created",
        format!("Created container {}", req.container.name),
    ));
    match ctx.runtime.start(&spec.id).await {
        Ok(_pid) => {}
        Err(e) => {
            let message = match e {
                RuntimeError::StartFailed { message, .. } => message,
                other => other.to_string(),
            };
            ctx.events.record(event(
                &req,
                EventType::Warning,
                "Failed",
                format!("Error: {message}"),
            ));
            let _ = ctx.runtime.delete(&spec.id).await;
            return Err(StartError::StartFailed {
                container_id: spec.id,
                message,
            });
        }
    }
    ctx.events.record(event(
        &req,
        EventType::Normal,
        "Started",
        format!("Started container {}", req.container.name),
    ));
    tracing::info!(pod = %pod_full_name(&pod), container = %req.container.name, attempt = req.attempt, "container started");
    Ok(Started {
        container_id: spec.id,
        image_id: image_id(&image_name, &image.target_digest),
        started_at: Timestamp::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_in_milliseconds() {
        assert_eq!(go_millis(Duration::from_millis(850)), "850ms");
        assert_eq!(go_millis(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_millis(Duration::from_millis(12_034)), "12.034s");
        assert_eq!(go_millis(Duration::from_secs(2)), "2s");
    }
}
