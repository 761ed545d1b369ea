//! [`VolumeManager`]: prepares, refreshes and removes pods' volumes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use skiff_api::quantity::Quantity;
use tracing::Instrument;

use super::downward_api::Allocatable;
use super::error::VolumeError;
use super::layout::{PodDirs, check_component};
use super::plan::{self, PodContext, VolumePlan};
use super::prepared::PreparedVolumes;
use super::setup;
use super::sources::VolumeSources;
use super::teardown;

/// Prepares pods' volumes under `<root>/pods/<uid>/` and removes them.
///
/// Operations on one pod are serialized; different pods proceed in parallel.
/// Every operation is idempotent, so the caller may simply repeat it.
pub struct VolumeManager {
    root: PathBuf,
    proc_dir: PathBuf,
    allocatable: Allocatable,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl VolumeManager {
    /// Pods' volumes go under `root/pods/<uid>/`; `proc_dir` is where procfs
    /// is mounted (`/proc`): the mount table and descriptors are read there.
    pub fn new(root: impl Into<PathBuf>, proc_dir: impl Into<PathBuf>) -> Self {
        VolumeManager {
            root: root.into(),
            proc_dir: proc_dir.into(),
            allocatable: Allocatable::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`...):
    /// what the downward API reports for an unset limit and the ceiling of
    /// memory-backed emptyDirs. Without it, the machine's CPUs and memory.
    pub fn with_node_allocatable(mut self, allocatable: BTreeMap<String, Quantity>) -> Self {
        self.allocatable = Allocatable(allocatable);
        self
    }

    /// The directory of the pod with this UID.
    pub fn pod_dir(&self, uid: &str) -> Result<PathBuf, VolumeError> {
        Ok(PodDirs::new(&self.root, uid)?.pod().to_path_buf())
    }

    fn mountinfo(&self) -> PathBuf {
        self.proc_dir.join("self/mountinfo")
    }

    fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(uid.to_string()).or_default().clone()
    }

    /// Sets up every volume of `pod` (fetching what they reference from
    /// `sources`) and returns them, ready for [`PreparedVolumes::mounts_for`].
    /// Repeating it keeps data, mounts and unchanged files.
    pub async fn prepare<S: VolumeSources>(
        &self,
        pod: &Pod,
        sources: &S,
    ) -> Result<PreparedVolumes, VolumeError> {
        let (uid, span) = identify(pod)?;
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        async {
            let plans = self.plans(pod, sources).await?;
            let dirs = PodDirs::new(&self.root, &uid)?;
            let mountinfo = self.mountinfo();
            let volumes = tokio::task::spawn_blocking(move || {
                let dirs = dirs.canonical()?;
                let mut volumes = BTreeMap::new();
                for (name, plan) in &plans {
                    let (volume, _) = setup::apply(&dirs, name, plan, &mountinfo)
                        .map_err(|e| VolumeError::set_up(name, e))?;
                    volumes.insert(name.clone(), volume);
                }
                Ok::<_, VolumeError>((dirs, volumes))
            })
            .await??;
            tracing::debug!(volumes = volumes.1.len(), "volumes prepared");
            Ok(PreparedVolumes {
                pod: pod.clone(),
                dirs: volumes.0,
                proc_dir: self.proc_dir.clone(),
                allocatable: self.allocatable.clone(),
                volumes: volumes.1,
            })
        }
        .instrument(span)
        .await
    }

    /// Rewrites the pod's configMap, secret, downwardAPI and projected volumes
    /// whose contents changed (atomically, so running containers see the old
    /// or the new files, never a mix) and returns their names. Volumes not
    /// prepared on this node are skipped; one failing volume keeps its old
    /// files and does not stop the others.
    pub async fn update<S: VolumeSources>(
        &self,
        pod: &Pod,
        sources: &S,
    ) -> Result<Vec<String>, VolumeError> {
        let (uid, span) = identify(pod)?;
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        async {
            let dirs = PodDirs::new(&self.root, &uid)?;
            let mut errors = Vec::new();
            let mut plans = Vec::new();
            for volume in pod_volumes(pod).filter(|v| plan::is_api_data(v)) {
                let ctx = context(pod, &self.allocatable);
                match plan::plan(sources, &ctx, volume).await {
                    Ok(plan) => plans.push((volume.name.clone(), plan)),
                    Err(e) => errors.push(VolumeError::set_up(&volume.name, e)),
                }
            }
            let mountinfo = self.mountinfo();
            let (changed, apply_errors) = tokio::task::spawn_blocking(move || {
                let mut changed = Vec::new();
                let mut errors = Vec::new();
                // A pod without a directory here was never prepared here.
                if !dirs.pod().is_dir() {
                    return (changed, errors);
                }
                let dirs = match dirs.canonical() {
                    Ok(dirs) => dirs,
                    Err(e) => {
                        errors.push(e);
                        return (changed, errors);
                    }
                };
                for (name, plan) in &plans {
                    let VolumePlan::ApiData { plugin, .. } = plan else {
                        continue;
                    };
                    if !dirs.volume(*plugin, name).is_dir() {
                        continue;
                    }
                    match setup::apply(&dirs, name, plan, &mountinfo) {
                        Ok((_, true)) => changed.push(name.clone()),
                        Ok((_, false)) => {}
                        Err(e) => errors.push(VolumeError::set_up(name, e)),
                    }
                }
                (changed, errors)
            })
            .await?;
            errors.extend(apply_errors);
            if !changed.is_empty() {
                tracing::info!(?changed, "projected volumes updated");
            }
            VolumeError::collect(errors).map(|()| changed)
        }
        .instrument(span)
        .await
    }

    /// Unmounts and removes the volumes of the pod with this UID. hostPath and
    /// PersistentVolume contents are never deleted. Idempotent.
    pub async fn teardown(&self, uid: &str) -> Result<(), VolumeError> {
        check_component("pod uid", uid)?;
        let lock = self.pod_lock(uid);
        let guard = lock.lock().await;
        let dirs = PodDirs::new(&self.root, uid)?;
        let mountinfo = self.mountinfo();
        let span = tracing::info_span!("volumes", pod_uid = uid);
        let result = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            teardown::teardown(&dirs, &mountinfo)
        })
        .await?;
        drop(guard);
        if result.is_ok() {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.get(uid).is_some_and(|l| Arc::strong_count(l) <= 2) {
                locks.remove(uid);
            }
        }
        result
    }

    async fn plans<S: VolumeSources>(
        &self,
        pod: &Pod,
        sources: &S,
    ) -> Result<Vec<(String, VolumePlan)>, VolumeError> {
        let ctx = context(pod, &self.allocatable);
        let mut plans = Vec::new();
        for volume in pod_volumes(pod) {
            check_component("volume name", &volume.name)?;
            let plan = plan::plan(sources, &ctx, volume)
                .await
                .map_err(|e| VolumeError::set_up(&volume.name, e))?;
            plans.push((volume.name.clone(), plan));
        }
        Ok(plans)
    }

    /// The root directory given at construction.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn pod_volumes(pod: &Pod) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten())
}

fn context<'a>(pod: &'a Pod, allocatable: &'a Allocatable) -> PodContext<'a> {
    PodContext {
        pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        allocatable,
    }
}

/// The pod's UID (its directory name) and a span naming it.
fn identify(pod: &Pod) -> Result<(String, tracing::Span), VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| VolumeError::MissingUid {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    check_component("pod uid", &uid)?;
    let span = tracing::info_span!("volumes", pod = %format!("{namespace}/{name}"), %uid);
    Ok((uid, span))
}
