//! What each pod volume needs, worked out from the pod and the API objects it
//! references, before anything touches the disk.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ProjectedVolumeSource, Secret, Volume};

use super::claims;
use super::downward_api::{self, Allocatable};
use super::empty_dir::{self, Medium};
use super::error::VolumeError;
use super::layout::Plugin;
use super::payload::{self, DEFAULT_MODE, FileProjection, Payload, file_mode};
use super::sources::VolumeSources;

/// One volume's set-up, ready to apply.
#[derive(Clone, Debug)]
pub(crate) enum VolumePlan {
    EmptyDir(Medium),
    /// A host path (a hostPath volume, or a hostPath PersistentVolume).
    HostPath {
        path: PathBuf,
        type_: Option<String>,
        read_only: bool,
    },
    /// A local PersistentVolume: an existing directory.
    Local {
        path: PathBuf,
        read_only: bool,
    },
    /// Files projected from the API, written with the atomic writer.
    ApiData {
        plugin: Plugin,
        payload: Payload,
    },
}

/// The pod a plan is made for.
pub(crate) struct PodContext<'a> {
    pub pod: &'a Pod,
    pub namespace: &'a str,
    pub allocatable: &'a Allocatable,
}

/// Whether the volume's files come from the API and may change while the pod
/// runs (what `update` refreshes).
pub(crate) fn is_api_data(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

pub(crate) async fn plan<S: VolumeSources>(
    sources: &S,
    ctx: &PodContext<'_>,
    volume: &Volume,
) -> Result<VolumePlan, VolumeError> {
    if let Some(source) = &volume.empty_dir {
        let memory = ctx.allocatable.0.get("memory");
        return Ok(VolumePlan::EmptyDir(empty_dir::medium(
            source, ctx.pod, memory,
        )?));
    }
    if let Some(source) = &volume.host_path {
        let path = super::host_path::check_absolute(&source.path)?;
        return Ok(VolumePlan::HostPath {
            path: path.to_path_buf(),
            type_: source.type_.clone(),
            read_only: false,
        });
    }
    if let Some(source) = &volume.config_map {
        let optional = source.optional.unwrap_or(false);
        let mode = file_mode(source.default_mode, DEFAULT_MODE, "defaultMode")?;
        let payload = match config_map(sources, ctx.namespace, &source.name).await? {
            Some(cm) => payload::config_map_payload(&cm, source.items.as_deref(), mode, optional)?,
            None if optional => Payload::new(),
            None => return Err(not_found("configmap", &source.name)),
        };
        return Ok(VolumePlan::ApiData {
            plugin: Plugin::ConfigMap,
            payload,
        });
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let optional = source.optional.unwrap_or(false);
        let mode = file_mode(source.default_mode, DEFAULT_MODE, "defaultMode")?;
        let payload = match secret(sources, ctx.namespace, &name).await? {
            Some(s) => payload::secret_payload(&s, source.items.as_deref(), mode, optional)?,
            None if optional => Payload::new(),
            None => return Err(not_found("secret", &name)),
        };
        return Ok(VolumePlan::ApiData {
            plugin: Plugin::Secret,
            payload,
        });
    }
    if let Some(source) = &volume.downward_api {
        let mode = file_mode(source.default_mode, DEFAULT_MODE, "defaultMode")?;
        let items = source.items.as_deref().unwrap_or_default();
        return Ok(VolumePlan::ApiData {
            plugin: Plugin::DownwardApi,
            payload: downward_api::payload(ctx.pod, items, mode, ctx.allocatable)?,
        });
    }
    if let Some(source) = &volume.projected {
        return Ok(VolumePlan::ApiData {
            plugin: Plugin::Projected,
            payload: projected(sources, ctx, source).await?,
        });
    }
    if let Some(source) = &volume.persistent_volume_claim {
        return claims::plan(
            sources,
            ctx.pod,
            &source.claim_name,
            source.read_only.unwrap_or(false),
            false,
        )
        .await;
    }
    if volume.ephemeral.is_some() {
        // The ephemeral volume controller names the claim after pod and volume.
        let pod_name = ctx.pod.metadata.name.clone().unwrap_or_default();
        let claim = format!("{pod_name}-{}", volume.name);
        return claims::plan(sources, ctx.pod, &claim, false, true).await;
    }
    match other_kind(volume) {
        Some(kind) => Err(VolumeError::UnsupportedVolume {
            kind: kind.to_string(),
        }),
        // The API server defaults a volume without a source to an emptyDir.
        None => Ok(VolumePlan::EmptyDir(Medium::Disk)),
    }
}

async fn projected<S: VolumeSources>(
    sources: &S,
    ctx: &PodContext<'_>,
    source: &ProjectedVolumeSource,
) -> Result<Payload, VolumeError> {
    let mode = file_mode(source.default_mode, DEFAULT_MODE, "defaultMode")?;
    let mut files = Payload::new();
    for projection in source.sources.iter().flatten() {
        if let Some(cm) = &projection.config_map {
            let optional = cm.optional.unwrap_or(false);
            match config_map(sources, ctx.namespace, &cm.name).await? {
                Some(obj) => files.extend(payload::config_map_payload(
                    &obj,
                    cm.items.as_deref(),
                    mode,
                    optional,
                )?),
                None if optional => {}
                None => return Err(not_found("configmap", &cm.name)),
            }
        }
        if let Some(s) = &projection.secret {
            let optional = s.optional.unwrap_or(false);
            match secret(sources, ctx.namespace, &s.name).await? {
                Some(obj) => files.extend(payload::secret_payload(
                    &obj,
                    s.items.as_deref(),
                    mode,
                    optional,
                )?),
                None if optional => {}
                None => return Err(not_found("secret", &s.name)),
            }
        }
        if let Some(d) = &projection.downward_api {
            let items = d.items.as_deref().unwrap_or_default();
            files.extend(downward_api::payload(
                ctx.pod,
                items,
                mode,
                ctx.allocatable,
            )?);
        }
        if let Some(token) = &projection.service_account_token {
            let issued = sources
                .service_account_token(ctx.pod, token)
                .await
                .map_err(|e| VolumeError::Source {
                    kind: "serviceaccounttoken",
                    namespace: ctx.namespace.to_string(),
                    name: ctx
                        .pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_else(|| "default".to_string()),
                    source: e,
                })?
                .ok_or(VolumeError::TokenUnavailable)?;
            files.insert(
                token.path.clone(),
                FileProjection {
                    data: issued.into_bytes(),
                    mode,
                },
            );
        }
        if projection.cluster_trust_bundle.is_some() {
            return Err(VolumeError::UnsupportedVolume {
                kind: "projected clusterTrustBundle".to_string(),
            });
        }
    }
    Ok(files)
}

fn not_found(kind: &'static str, name: &str) -> VolumeError {
    VolumeError::NotFound {
        kind,
        name: name.to_string(),
    }
}

async fn config_map<S: VolumeSources>(
    sources: &S,
    namespace: &str,
    name: &str,
) -> Result<Option<ConfigMap>, VolumeError> {
    sources
        .config_map(namespace, name)
        .await
        .map_err(|source| VolumeError::Source {
            kind: "configmap",
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })
}

async fn secret<S: VolumeSources>(
    sources: &S,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, VolumeError> {
    sources
        .secret(namespace, name)
        .await
        .map_err(|source| VolumeError::Source {
            kind: "secret",
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })
}

/// The name of a volume source this node has no plugin for, if one is set.
fn other_kind(v: &Volume) -> Option<&'static str> {
    [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ]
    .into_iter()
    .find_map(|(kind, set)| set.then_some(kind))
}
