//! persistentVolumeClaim (and generic ephemeral) volumes: claim → bound
//! PersistentVolume → a path on this node. Only hostPath and local volumes
//! have one; everything else needs an attach/mount plugin this node lacks.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeSpec, Pod};

use super::error::VolumeError;
use super::plan::VolumePlan;
use super::sources::VolumeSources;

pub(crate) async fn plan<S: VolumeSources>(
    sources: &S,
    pod: &Pod,
    claim_name: &str,
    read_only: bool,
    ephemeral: bool,
) -> Result<VolumePlan, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let claim = sources
        .persistent_volume_claim(&namespace, claim_name)
        .await
        .map_err(|source| VolumeError::Source {
            kind: "persistentvolumeclaim",
            namespace: namespace.clone(),
            name: claim_name.to_string(),
            source,
        })?
        .ok_or_else(|| VolumeError::NotFound {
            kind: "persistentvolumeclaim",
            name: claim_name.to_string(),
        })?;

    if claim.metadata.deletion_timestamp.is_some() {
        return Err(VolumeError::ClaimBeingDeleted {
            namespace,
            claim: claim_name.to_string(),
        });
    }
    if ephemeral {
        let pod_uid = pod.metadata.uid.as_deref();
        let owned = claim
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == pod_uid);
        if !owned {
            return Err(VolumeError::ClaimNotOwned {
                namespace,
                claim: claim_name.to_string(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
            });
        }
    }
    let phase = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if phase != "Bound" || volume_name.is_empty() {
        return Err(VolumeError::ClaimNotBound {
            namespace,
            claim: claim_name.to_string(),
            phase,
            volume_name,
        });
    }

    let volume = sources
        .persistent_volume(&volume_name)
        .await
        .map_err(|source| VolumeError::Source {
            kind: "persistentvolume",
            namespace: String::new(),
            name: volume_name.clone(),
            source,
        })?
        .ok_or_else(|| VolumeError::NotFound {
            kind: "persistentvolume",
            name: volume_name.clone(),
        })?;
    let claim_uid = claim.metadata.uid.clone().unwrap_or_default();
    let bound_to = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    if bound_to != claim_uid {
        return Err(VolumeError::VolumeNotBoundToClaim {
            volume: volume_name,
            found: bound_to,
            expected: claim_uid,
        });
    }
    volume_plan(&volume_name, &volume, read_only)
}

fn volume_plan(
    name: &str,
    volume: &PersistentVolume,
    read_only: bool,
) -> Result<VolumePlan, VolumeError> {
    let unsupported = |kind: &str| VolumeError::UnsupportedPersistentVolume {
        volume: name.to_string(),
        kind: kind.to_string(),
    };
    let spec = volume.spec.as_ref().ok_or_else(|| unsupported("empty"))?;
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(unsupported("volumeMode Block"));
    }
    if let Some(host) = &spec.host_path {
        let path = super::host_path::check_absolute(&host.path)?;
        return Ok(VolumePlan::HostPath {
            path: path.to_path_buf(),
            type_: host.type_.clone(),
            read_only,
        });
    }
    if let Some(local) = &spec.local {
        let path = super::host_path::check_absolute(&local.path)?;
        return Ok(VolumePlan::Local {
            path: PathBuf::from(path),
            read_only,
        });
    }
    Err(unsupported(source_kind(spec)))
}

fn source_kind(s: &PersistentVolumeSpec) -> &'static str {
    [
        ("awsElasticBlockStore", s.aws_elastic_block_store.is_some()),
        ("azureDisk", s.azure_disk.is_some()),
        ("azureFile", s.azure_file.is_some()),
        ("cephfs", s.cephfs.is_some()),
        ("cinder", s.cinder.is_some()),
        ("csi", s.csi.is_some()),
        ("fc", s.fc.is_some()),
        ("flexVolume", s.flex_volume.is_some()),
        ("flocker", s.flocker.is_some()),
        ("gcePersistentDisk", s.gce_persistent_disk.is_some()),
        ("glusterfs", s.glusterfs.is_some()),
        ("iscsi", s.iscsi.is_some()),
        ("nfs", s.nfs.is_some()),
        ("photonPersistentDisk", s.photon_persistent_disk.is_some()),
        ("portworxVolume", s.portworx_volume.is_some()),
        ("quobyte", s.quobyte.is_some()),
        ("rbd", s.rbd.is_some()),
        ("scaleIO", s.scale_io.is_some()),
        ("storageos", s.storageos.is_some()),
        ("vsphereVolume", s.vsphere_volume.is_some()),
    ]
    .into_iter()
    .find_map(|(kind, set)| set.then_some(kind))
    .unwrap_or("sourceless")
}
