//! emptyDir: a directory of the pod, on the node's disk or, with
//! `medium: Memory`, on a tmpfs sized like kubelet sizes it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod};
use skiff_api::quantity::Quantity;

use super::error::VolumeError;
use super::kernel_mounts;

/// Where an emptyDir keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Medium {
    Disk,
    /// tmpfs, with its size in bytes when one applies.
    Memory(Option<i64>),
}

/// Reads `medium` and computes the tmpfs size: the smallest of `sizeLimit`,
/// the pod's memory limit and the node's allocatable memory, as far as known.
pub(crate) fn medium(
    source: &EmptyDirVolumeSource,
    pod: &Pod,
    allocatable_memory: Option<&Quantity>,
) -> Result<Medium, VolumeError> {
    match source.medium.as_deref().unwrap_or("") {
        "" => Ok(Medium::Disk),
        "Memory" => {
            let size_limit = source
                .size_limit
                .as_ref()
                .map(|q| {
                    Quantity::try_from(q).map_err(|e| VolumeError::Quantity {
                        field: "emptyDir.sizeLimit",
                        value: q.0.clone(),
                        reason: e.to_string(),
                    })
                })
                .transpose()?
                .map(|q| q.value())
                .filter(|v| *v > 0);
            let size = [
                size_limit,
                pod_memory_limit(pod),
                allocatable_memory.map(Quantity::value).filter(|v| *v > 0),
            ]
            .into_iter()
            .flatten()
            .min();
            Ok(Medium::Memory(size))
        }
        other => Err(VolumeError::UnsupportedMedium(other.to_string())),
    }
}

/// The pod's memory limit the way kubelet adds it up: the sum over app
/// containers, or the largest init container's if that is more.
fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &k8s_openapi::api::core::v1::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| Quantity::try_from(q).ok())
            .map(|q| q.value())
    };
    let sum: i64 = spec.containers.iter().filter_map(limit).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(limit)
        .max()
        .unwrap_or(0);
    Some(sum.max(init)).filter(|v| *v > 0)
}

/// Creates the directory (mode 0777, so that any container user may write)
/// and mounts the tmpfs when the medium is memory and it is not mounted yet.
/// Idempotent: existing contents and mounts are kept.
pub(crate) fn set_up(dir: &Path, medium: Medium, mountinfo: &Path) -> Result<(), VolumeError> {
    make_shared_dir(dir)?;
    if let Medium::Memory(size) = medium
        && !kernel_mounts::is_mount_point(mountinfo, dir)?
    {
        kernel_mounts::mount_tmpfs(dir, size)?;
        tracing::debug!(dir = %dir.display(), ?size, "tmpfs mounted");
    }
    Ok(())
}

/// Creates `dir` with mode 0777 unless it exists; an existing directory's
/// mode is the pod's business.
pub(crate) fn make_shared_dir(dir: &Path) -> Result<(), VolumeError> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| VolumeError::io("create directory", parent, e))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
            .map_err(|e| VolumeError::io("chmod", dir, e)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(VolumeError::io("create directory", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
    use std::collections::BTreeMap;

    fn memory(size: Option<&str>) -> EmptyDirVolumeSource {
        EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: size.map(|s| K8sQuantity(s.into())),
        }
    }

    fn pod_with_limits(limits: &[Option<&str>]) -> Pod {
        let containers = limits
            .iter()
            .enumerate()
            .map(|(i, l)| Container {
                name: format!("c{i}"),
                resources: l.map(|l| ResourceRequirements {
                    limits: Some(BTreeMap::from([("memory".into(), K8sQuantity(l.into()))])),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn tmpfs_size_is_the_smallest_known_bound() {
        let pod = pod_with_limits(&[Some("100Mi"), Some("28Mi")]);
        let mib = |n: i64| n * 1024 * 1024;
        assert_eq!(
            medium(&memory(Some("64Mi")), &pod, None).unwrap(),
            Medium::Memory(Some(mib(64)))
        );
        assert_eq!(
            medium(&memory(Some("1Gi")), &pod, None).unwrap(),
            Medium::Memory(Some(mib(128)))
        );
        let alloc = Quantity::parse("32Mi").unwrap();
        assert_eq!(
            medium(&memory(None), &pod, Some(&alloc)).unwrap(),
            Medium::Memory(Some(mib(32)))
        );
        assert_eq!(
            medium(&memory(None), &pod_with_limits(&[None]), None).unwrap(),
            Medium::Memory(None)
        );
    }

    #[test]
    fn media() {
        let pod = Pod::default();
        assert_eq!(
            medium(&EmptyDirVolumeSource::default(), &pod, None).unwrap(),
            Medium::Disk
        );
        let huge = EmptyDirVolumeSource {
            medium: Some("HugePages".into()),
            ..Default::default()
        };
        assert_eq!(
            medium(&huge, &pod, None).unwrap_err().to_string(),
            "emptyDir medium \"HugePages\" is not supported by this node"
        );
    }
}
