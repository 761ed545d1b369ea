//! Removing a pod's volumes: unmount everything mounted in its volume
//! directories (tmpfs, subPath binds), and only when nothing is mounted there
//! any more delete the directories. Deleting never follows symlinks, and with
//! no mount left nothing outside the pod directory is reachable, so hostPath
//! and PersistentVolume contents are never touched.

use std::fs;
use std::io;
use std::path::Path;

use super::error::VolumeError;
use super::kernel_mounts;
use super::layout::PodDirs;

/// Passes over the mount table; stacked mounts need one pass per layer.
const UNMOUNT_PASSES: usize = 8;

pub(crate) fn teardown(dirs: &PodDirs, mountinfo: &Path) -> Result<(), VolumeError> {
    if fs::symlink_metadata(dirs.pod()).is_err() {
        return Ok(());
    }
    let pod =
        fs::canonicalize(dirs.pod()).map_err(|e| VolumeError::io("resolve", dirs.pod(), e))?;
    let owned = [pod.join("volumes"), pod.join("volume-subpaths")];
    let mut errors = Vec::new();

    for _ in 0..UNMOUNT_PASSES {
        let mounted = mounts_in(&owned, mountinfo)?;
        if mounted.is_empty() {
            break;
        }
        errors.clear();
        // Newest first, so that mounts on top of others go first.
        for target in mounted.iter().rev() {
            match kernel_mounts::unmount(target) {
                Ok(()) => tracing::debug!(target = %target.display(), "unmounted"),
                Err(e) => errors.push(e),
            }
        }
    }
    if let Some(target) = mounts_in(&owned, mountinfo)?.into_iter().next() {
        errors.push(VolumeError::StillMounted { target });
        return VolumeError::collect(errors);
    }

    for dir in &owned {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(VolumeError::io("remove", dir, e)),
        }
    }
    // The pod directory goes too once nothing else of the pod is left in it.
    match fs::remove_dir(&pod) {
        Ok(()) => {}
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
        Err(e) => errors.push(VolumeError::io("remove", &pod, e)),
    }
    VolumeError::collect(errors)
}

fn mounts_in(
    dirs: &[std::path::PathBuf],
    mountinfo: &Path,
) -> Result<Vec<std::path::PathBuf>, VolumeError> {
    Ok(kernel_mounts::read_mountinfo(mountinfo)?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .collect())
}
