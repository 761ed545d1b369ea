//! What a pod's container becomes in the runtime: kubelet's `generateContainerConfig` and
//! CRI's container config rolled into one pure function from the pod, its sandbox, its
//! volumes and the image to a [`ContainerSpec`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};

use crate::cgroups::{PodCgroup, QosClass};
use crate::runtime::labels::ContainerMeta;
use crate::runtime::spec::{
    BindMount, CapabilityChanges, ContainerSpec, LogTarget, NamespaceMode, Namespaces, Propagation,
    Resources,
};
use crate::runtime::user::UserSpec;
use crate::runtime::{ImageConfig, image};
use crate::sandbox::SandboxInfo;
use crate::volumes::{self, expand};

/// Why a container cannot be configured: kubelet's `CreateContainerConfigError` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})"
    )]
    RunsAsRoot { pod: String, container: String },
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {container})"
    )]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    #[error("invalid container {container}: {reason}")]
    Invalid { container: String, reason: String },
}

/// Kubernetes' default `terminationMessagePath`.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The container's identity in the runtime: deterministic, so a restarted agent recomputes
/// the id of any attempt, and 64 hex digits like the ids CRI runtimes give out.
pub fn container_id(pod_uid: &str, name: &str, attempt: u32) -> String {
    image::sha256_digest(format!("{pod_uid}/{name}/{attempt}").as_bytes())
        .trim_start_matches("sha256:")
        .to_string()
}

/// `name_namespace(uid)`, as kubelet names a pod in messages.
pub fn pod_full_name(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Everything the container's spec is made of.
pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// Which start of this container this is (its restart count).
    pub attempt: u32,
    pub sandbox: &'a SandboxInfo,
    /// The image reference the runtime knows the image by (normalized).
    pub image_name: &'a str,
    pub image: &'a ImageConfig,
    pub env: &'a [(String, String)],
    pub volume_mounts: &'a [volumes::Mount],
    pub cgroup: Option<&'a PodCgroup>,
    pub limits: Resources,
    pub qos: QosClass,
    /// The node's memory, for the oom_score_adj of Burstable containers.
    pub memory_capacity: u64,
    pub log_path: PathBuf,
    /// The logger binary and its rotation; `None` has the shim write the file itself.
    pub logger: Option<&'a (PathBuf, crate::logs::Rotation)>,
    /// A file on the host bind-mounted at `terminationMessagePath`.
    pub termination_log: Option<PathBuf>,
}

/// The container's security context over the pod's, field by field, as Kubernetes merges
/// them.
struct Security<'a> {
    pod: Option<&'a k8s_openapi::api::core::v1::PodSecurityContext>,
    container: Option<&'a SecurityContext>,
}

impl Security<'_> {
    fn run_as_user(&self) -> Option<i64> {
        self.container
            .and_then(|c| c.run_as_user)
            .or_else(|| self.pod.and_then(|p| p.run_as_user))
    }
    fn run_as_group(&self) -> Option<i64> {
        self.container
            .and_then(|c| c.run_as_group)
            .or_else(|| self.pod.and_then(|p| p.run_as_group))
    }
    fn run_as_non_root(&self) -> bool {
        self.container
            .and_then(|c| c.run_as_non_root)
            .or_else(|| self.pod.and_then(|p| p.run_as_non_root))
            .unwrap_or(false)
    }
    fn privileged(&self) -> bool {
        self.container.and_then(|c| c.privileged).unwrap_or(false)
    }
}

fn id_u32(container: &str, field: &str, v: i64) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| ConfigError::Invalid {
        container: container.to_string(),
        reason: format!("{field} {v} is not a valid id"),
    })
}

/// kubelet's oom_score_adj: Guaranteed pods are killed last, BestEffort first, Burstable in
/// proportion to how little of the node's memory they asked for.
pub fn oom_score_adj(qos: QosClass, memory_request: u64, memory_capacity: u64) -> i32 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            if memory_capacity == 0 {
                return 999;
            }
            let adj = 1000 - (1000 * i128::from(memory_request) / i128::from(memory_capacity));
            let adj = i32::try_from(adj.clamp(-1000, 1000)).unwrap_or(1000);
            if adj < 3 {
                3
            } else if adj == 1000 {
                999
            } else {
                adj
            }
        }
    }
}

/// The score, unless it cannot be set: lowering a score below the runtime's own needs
/// CAP_SYS_RESOURCE, and runc fails the whole start when the kernel refuses. Without the
/// capability a Guaranteed container keeps the score it inherits.
fn settable_oom_score_adj(adj: i32) -> Option<i32> {
    let can_lower = crate::runtime::spec::held_capabilities().contains(&"CAP_SYS_RESOURCE");
    (adj >= 0 || can_lower).then_some(adj)
}

fn memory_request(c: &Container) -> u64 {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("memory"))
        .and_then(|q| skiff_api::quantity::Quantity::try_from(q).ok())
        .map(|q| u64::try_from(q.value()).unwrap_or(0))
        .unwrap_or(0)
}

/// Checks `runAsNonRoot` against what the process will run as.
fn verify_non_root(
    sec: &Security<'_>,
    image_user: &str,
    pod: &Pod,
    container: &str,
) -> Result<(), ConfigError> {
    if !sec.run_as_non_root() {
        return Ok(());
    }
    let pod_name = pod_full_name(pod);
    let uid = match sec.run_as_user() {
        Some(uid) => uid,
        None => {
            let user = image_user.split(':').next().unwrap_or_default();
            if user.is_empty() {
                0
            } else {
                match user.parse::<i64>() {
                    Ok(uid) => uid,
                    Err(_) => {
                        return Err(ConfigError::NonNumericUser {
                            user: user.to_string(),
                            pod: pod_name,
                            container: container.to_string(),
                        });
                    }
                }
            }
        }
    };
    if uid == 0 {
        return Err(ConfigError::RunsAsRoot {
            pod: pod_name,
            container: container.to_string(),
        });
    }
    Ok(())
}

fn ns_mode(path: &Option<PathBuf>) -> NamespaceMode {
    match path {
        Some(p) => NamespaceMode::Path(p.clone()),
        None => NamespaceMode::Host,
    }
}

/// Builds the runtime's spec of one start of a container.
pub fn container_spec(i: &ContainerInputs<'_>) -> Result<ContainerSpec, ConfigError> {
    let c = i.container;
    let pod_spec = i.pod.spec.as_ref();
    let sec = Security {
        pod: pod_spec.and_then(|s| s.security_context.as_ref()),
        container: c.security_context.as_ref(),
    };
    verify_non_root(&sec, &i.image.user, i.pod, &c.name)?;
    let uid = i.pod.metadata.uid.clone().unwrap_or_default();
    let id = container_id(&uid, &c.name, i.attempt);

    // command and args see the container's environment, as `$(VAR)`.
    let env_map: BTreeMap<&str, &str> = i
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|s| expand(s, |name| env_map.get(name).map(|v| v.to_string())))
            .collect()
    };

    let mut user = UserSpec {
        run_as_user: sec
            .run_as_user()
            .map(|v| id_u32(&c.name, "runAsUser", v))
            .transpose()?,
        run_as_group: sec
            .run_as_group()
            .map(|v| id_u32(&c.name, "runAsGroup", v))
            .transpose()?,
        supplemental_groups: Vec::new(),
    };
    if let Some(p) = sec.pod {
        for g in p.supplemental_groups.iter().flatten() {
            user.supplemental_groups
                .push(id_u32(&c.name, "supplementalGroups", *g)?);
        }
        // fsGroup owners get the group too, so they can use volumes made for it.
        if let Some(g) = p.fs_group {
            user.supplemental_groups
                .push(id_u32(&c.name, "fsGroup", g)?);
        }
    }

    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref());
    let capabilities = CapabilityChanges {
        add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
    };

    let mut mounts: Vec<BindMount> = i
        .volume_mounts
        .iter()
        .map(|m| BindMount {
            source: m.host_path.clone(),
            destination: m.container_path.clone(),
            readonly: m.read_only,
            propagation: match m.propagation {
                volumes::Propagation::Private => Propagation::None,
                volumes::Propagation::HostToContainer => Propagation::HostToContainer,
                volumes::Propagation::Bidirectional => Propagation::Bidirectional,
            },
        })
        .collect();
    let mounted = |dest: &str, mounts: &[BindMount]| mounts.iter().any(|m| m.destination == dest);
    // The pod's own files, unless a volume already covers the path.
    let files = &i.sandbox.files;
    for (dest, source) in [
        ("/etc/hosts", &files.hosts),
        ("/etc/resolv.conf", &files.resolv_conf),
        ("/etc/hostname", &files.hostname),
    ] {
        if !mounted(dest, &mounts) {
            mounts.push(BindMount {
                source: source.clone(),
                destination: dest.to_string(),
                readonly: false,
                propagation: Propagation::None,
            });
        }
    }
    // The pod's shared /dev/shm, unless a volume takes its place.
    if let Some(shm) = &i.sandbox.shm
        && !mounted("/dev/shm", &mounts)
    {
        mounts.push(BindMount {
            source: shm.clone(),
            destination: "/dev/shm".to_string(),
            readonly: false,
            propagation: Propagation::None,
        });
    }
    if let Some(log) = &i.termination_log {
        let dest = c
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| TERMINATION_MESSAGE_PATH.to_string());
        if !mounted(&dest, &mounts) {
            mounts.push(BindMount {
                source: log.clone(),
                destination: dest,
                readonly: false,
                propagation: Propagation::None,
            });
        }
    }

    let host_pid = pod_spec.and_then(|s| s.host_pid).unwrap_or(false);
    let ns = &i.sandbox.namespaces;
    let namespaces = Namespaces {
        network: ns_mode(&ns.net),
        ipc: ns_mode(&ns.ipc),
        uts: ns_mode(&ns.uts),
        pid: if host_pid {
            NamespaceMode::Host
        } else {
            NamespaceMode::Private
        },
    };

    let sysctls: BTreeMap<String, String> = sec
        .pod
        .and_then(|p| p.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();

    let meta = ContainerMeta {
        pod_uid: uid,
        pod_namespace: i
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod_name: i.pod.metadata.name.clone().unwrap_or_default(),
        container_name: c.name.clone(),
        attempt: i.attempt,
    };

    let privileged = sec.privileged();
    Ok(ContainerSpec {
        cgroups_path: i.cgroup.map(|cg| format!("{}/{id}", cg.path)),
        id,
        image: i.image_name.to_string(),
        meta: Some(meta),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        env: i.env.to_vec(),
        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
        user,
        hostname: Some(i.sandbox.hostname.clone()),
        readonly_rootfs: c
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        privileged,
        no_new_privileges: c
            .security_context
            .as_ref()
            .and_then(|s| s.allow_privilege_escalation)
            == Some(false),
        capabilities,
        mounts,
        namespaces,
        resources: i.limits.clone(),
        oom_score_adj: settable_oom_score_adj(oom_score_adj(
            i.qos,
            memory_request(c),
            i.memory_capacity,
        )),
        nofile_limit: None,
        sysctls,
        devices: Vec::new(),
        log: match i.logger {
            Some((bin, rotation)) => LogTarget::Binary {
                path: bin.clone(),
                args: crate::logs::logger::uri_args(&i.log_path, *rotation),
            },
            None => LogTarget::File(i.log_path.clone()),
        },
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
    })
}

#[cfg(test)]
#[path = "container_spec_tests.rs"]
mod tests;
