//! hostPath `type` checks, worded as kubelet words them. The path itself is
//! mounted where it is: nothing of it is copied into the pod directory, so
//! removing a pod can never reach its contents.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::VolumeError;

/// Checks (or creates) `path` as its hostPath `type` says. Symlinks are
/// followed, as a bind mount follows them.
pub(crate) fn check_type(path: &Path, type_: Option<&str>) -> Result<(), VolumeError> {
    let type_ = type_.unwrap_or("");
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(VolumeError::io("stat", path, e)),
    };
    let fail = |expected| {
        Err(VolumeError::HostPathType {
            path: path.to_path_buf(),
            expected,
        })
    };
    let kind = meta.as_ref().map(|m| m.file_type());
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if kind.is_none() => make_dir(path),
        "DirectoryOrCreate" | "Directory" => match kind {
            Some(k) if k.is_dir() => Ok(()),
            _ => fail("directory"),
        },
        "FileOrCreate" if kind.is_none() => make_file(path),
        "FileOrCreate" | "File" => match kind {
            Some(k) if k.is_file() => Ok(()),
            _ => fail("file"),
        },
        "Socket" => match kind {
            Some(k) if k.is_socket() => Ok(()),
            _ => fail("socket file"),
        },
        "CharDevice" => match kind {
            Some(k) if k.is_char_device() => Ok(()),
            _ => fail("character device"),
        },
        "BlockDevice" => match kind {
            Some(k) if k.is_block_device() => Ok(()),
            _ => fail("block device"),
        },
        other => Err(VolumeError::InvalidHostPathType {
            type_: other.to_string(),
        }),
    }
}

/// `DirectoryOrCreate`: parents too, mode 0755.
fn make_dir(path: &Path) -> Result<(), VolumeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| VolumeError::io("create directory", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| VolumeError::io("chmod", path, e))
}

/// `FileOrCreate`: an empty file, mode 0644; like kubelet, the parent
/// directory must already exist.
fn make_file(path: &Path) -> Result<(), VolumeError> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
    {
        Ok(_) => fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(|e| VolumeError::io("chmod", path, e)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(VolumeError::io("create", path, e)),
    }
}

/// A hostPath must be absolute: a relative one would be relative to wherever
/// the agent happens to run.
pub(crate) fn check_absolute(path: &str) -> Result<&Path, VolumeError> {
    let p = Path::new(path);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(VolumeError::RelativeHostPath {
            path: path.to_string(),
        })
    }
}
