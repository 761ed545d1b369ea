//! A pod's prepared volumes, and the mounts each container gets from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::downward_api::Allocatable;
use super::env_expansion::{container_env, expand_sub_path};
use super::error::VolumeError;
use super::layout::{PodDirs, check_component};
use super::mount::{Mount, Propagation};
use super::subpath::{self, SubPathMount};

/// One volume ready on the host.
#[derive(Clone, Debug)]
pub(crate) struct PreparedVolume {
    /// What a container mounts (without subPath).
    pub path: PathBuf,
    /// Every mount of it is read-only, whatever the volumeMount says.
    pub read_only: bool,
    /// Containers can change its contents (so subPaths need a safe bind).
    pub writable_by_pod: bool,
}

impl PreparedVolume {
    pub(crate) fn writable(path: PathBuf, read_only: bool) -> Self {
        PreparedVolume {
            path,
            read_only,
            writable_by_pod: true,
        }
    }

    /// Files projected from the API are always mounted read-only, as kubelet
    /// mounts them.
    pub(crate) fn api_data(path: PathBuf) -> Self {
        PreparedVolume {
            path,
            read_only: true,
            writable_by_pod: false,
        }
    }
}

/// The volumes of one pod, set up on the host by
/// [`VolumeManager::prepare`](super::VolumeManager::prepare).
#[derive(Clone, Debug)]
pub struct PreparedVolumes {
    pub(crate) pod: Pod,
    pub(crate) dirs: PodDirs,
    pub(crate) proc_dir: PathBuf,
    pub(crate) allocatable: Allocatable,
    pub(crate) volumes: BTreeMap<String, PreparedVolume>,
}

impl PreparedVolumes {
    /// The pod's directory on the host.
    pub fn pod_dir(&self) -> &Path {
        self.dirs.pod()
    }

    /// The host path of a volume (what a mount without subPath binds).
    pub fn host_path(&self, volume: &str) -> Option<&Path> {
        self.volumes.get(volume).map(|v| v.path.as_path())
    }

    /// The names of the pod's volumes.
    pub fn volume_names(&self) -> impl Iterator<Item = &str> {
        self.volumes.keys().map(String::as_str)
    }

    /// The bind mounts for `container`'s `volumeMounts`, in their order.
    ///
    /// subPaths are resolved here (and created when missing); for volumes the
    /// pod can write to, this bind-mounts them under the pod's
    /// `volume-subpaths/`, so it does (quick, blocking) mount syscalls.
    pub fn mounts_for(&self, container: &Container) -> Result<Vec<Mount>, VolumeError> {
        check_component("container name", &container.name)?;
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        let mut env = None;
        let mut mounts = Vec::new();
        for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
            let volume = self
                .volumes
                .get(&vm.name)
                .ok_or_else(|| VolumeError::VolumeNotFound {
                    volume: vm.name.clone(),
                    container: container.name.clone(),
                })?;
            let propagation = match vm.mount_propagation.as_deref() {
                None | Some("None") => Propagation::Private,
                Some("HostToContainer") => Propagation::HostToContainer,
                Some("Bidirectional") if privileged => Propagation::Bidirectional,
                Some("Bidirectional") => {
                    return Err(VolumeError::BidirectionalUnprivileged {
                        container: container.name.clone(),
                    });
                }
                Some(other) => return Err(VolumeError::InvalidPropagation(other.to_string())),
            };
            let sub_path = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                Some(expr) => {
                    let env = env.get_or_insert_with(|| {
                        container_env(&self.pod, container, &self.allocatable)
                    });
                    expand_sub_path(expr, env).map_err(VolumeError::SubPathExprMissing)?
                }
                None => vm.sub_path.clone().unwrap_or_default(),
            };
            let host_path = if sub_path.is_empty() {
                volume.path.clone()
            } else {
                let request = SubPathMount {
                    volume_name: &vm.name,
                    volume,
                    sub_path: &sub_path,
                    container: &container.name,
                    index,
                };
                subpath::resolve(&self.dirs, &self.proc_dir, &request)?
            };
            let container_path = if vm.mount_path.starts_with('/') {
                vm.mount_path.clone()
            } else {
                format!("/{}", vm.mount_path)
            };
            mounts.push(Mount {
                volume: vm.name.clone(),
                host_path,
                container_path,
                read_only: vm.read_only.unwrap_or(false) || volume.read_only,
                propagation,
            });
        }
        Ok(mounts)
    }
}
