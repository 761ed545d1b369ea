//! Applying a [`VolumePlan`] on the host (blocking filesystem work).

use std::fs;
use std::io;
use std::path::Path;

use super::atomic_writer;
use super::empty_dir;
use super::error::VolumeError;
use super::host_path;
use super::kernel_mounts;
use super::layout::{Plugin, PodDirs};
use super::plan::VolumePlan;
use super::prepared::PreparedVolume;

/// Makes the volume exist on the host. Returns it and whether its projected
/// files changed. Idempotent: data, mounts and unchanged files are kept.
pub(crate) fn apply(
    dirs: &PodDirs,
    name: &str,
    plan: &VolumePlan,
    mountinfo: &Path,
) -> Result<(PreparedVolume, bool), VolumeError> {
    match plan {
        VolumePlan::EmptyDir(medium) => {
            let dir = dirs.volume(Plugin::EmptyDir, name);
            empty_dir::set_up(&dir, *medium, mountinfo)?;
            Ok((PreparedVolume::writable(dir, false), false))
        }
        VolumePlan::HostPath {
            path,
            type_,
            read_only,
        } => {
            host_path::check_type(path, type_.as_deref())?;
            Ok((PreparedVolume::writable(path.clone(), *read_only), false))
        }
        VolumePlan::Local { path, read_only } => {
            match fs::metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(VolumeError::LocalVolumePath {
                        path: path.clone(),
                        reason: "it is not a directory".to_string(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(VolumeError::LocalVolumePath {
                        path: path.clone(),
                        reason: "it does not exist".to_string(),
                    });
                }
                Err(e) => return Err(VolumeError::io("stat", path, e)),
            }
            Ok((PreparedVolume::writable(path.clone(), *read_only), false))
        }
        VolumePlan::ApiData { plugin, payload } => {
            let dir = dirs.volume(*plugin, name);
            empty_dir::make_shared_dir(&dir)?;
            if plugin.in_memory() && !kernel_mounts::is_mount_point(mountinfo, &dir)? {
                kernel_mounts::mount_tmpfs(&dir, None)?;
            }
            let changed = atomic_writer::write(&dir, payload)?;
            Ok((PreparedVolume::api_data(dir), changed))
        }
    }
}
