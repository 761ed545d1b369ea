//! Pod volumes on the host.
//!
//! [`VolumeManager::prepare`] sets up each volume of a pod under
//! `<root>/pods/<uid>/volumes/<plugin>/<name>` in kubelet's layout
//! (`kubernetes.io~empty-dir`, `~configmap`, `~secret`, `~downward-api`,
//! `~projected`); hostPath and PersistentVolume (hostPath, local) volumes are
//! used in place. [`PreparedVolumes::mounts_for`] turns a container's
//! `volumeMounts` into bind [`Mount`]s for its OCI spec.
//!
//! Files projected from the API are written with kubelet's atomic writer, so
//! [`VolumeManager::update`] changes them in running pods all at once.
//! Secrets and projected volumes live on tmpfs, as do `medium: Memory`
//! emptyDirs. [`VolumeManager::teardown`] unmounts and removes all of it and
//! never deletes anything outside the pod directory.
//!
//! Not provided: fsGroup ownership changes, SELinux relabelling, volume
//! plugins that attach or mount network or cloud storage.

mod atomic_writer;
mod claims;
mod downward_api;
mod empty_dir;
pub(crate) mod env_expansion;
mod error;
mod host_path;
mod kernel_mounts;
mod layout;
mod manager;
mod map_sources;
mod mount;
mod payload;
mod plan;
mod prepared;
mod setup;
mod sources;
mod subpath;
mod teardown;

pub use downward_api::Allocatable;
pub(crate) use downward_api::{field_value, resource_value};
pub(crate) use env_expansion::expand;
pub use error::VolumeError;
pub use manager::VolumeManager;
pub use map_sources::MapSources;
pub use mount::{Mount, Propagation};
pub use prepared::PreparedVolumes;
pub use sources::{ApiSources, SourceError, VolumeSources};
