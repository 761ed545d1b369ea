//! subPath: a part of a volume as the mount source, which must stay inside
//! the volume.
//!
//! The subPath is resolved (symlinks included) and refused if it lands
//! outside. Missing directories are created without following symlinks. For
//! volumes the pod can write to, a container could swap a checked directory
//! for a symlink before the runtime mounts it, so the checked object is
//! opened component by component without following symlinks and bind-mounted
//! under `volume-subpaths/`; the runtime then mounts that bind, which cannot
//! change under it. Volumes projected from the API are read-only to the pod
//! and are used directly (a bind inside them would block their updates).

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::error::VolumeError;
use super::kernel_mounts;
use super::layout::PodDirs;
use super::prepared::PreparedVolume;

/// Where a container's subPath mount comes from.
pub(crate) struct SubPathMount<'a> {
    pub volume_name: &'a str,
    pub volume: &'a PreparedVolume,
    pub sub_path: &'a str,
    pub container: &'a str,
    pub index: usize,
}

/// The host path to mount for a subPath.
pub(crate) fn resolve(
    dirs: &PodDirs,
    proc_dir: &Path,
    request: &SubPathMount<'_>,
) -> Result<PathBuf, VolumeError> {
    let rel = Path::new(request.sub_path);
    if rel.is_absolute() {
        return Err(VolumeError::SubPathAbsolute(request.sub_path.to_string()));
    }
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err(VolumeError::SubPathBacksteps(request.sub_path.to_string()));
    }
    let escapes = || VolumeError::SubPathEscapes {
        volume: request.volume_name.to_string(),
        sub_path: request.sub_path.to_string(),
    };
    let base = fs::canonicalize(&request.volume.path)
        .map_err(|e| VolumeError::io("resolve", &request.volume.path, e))?;
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();

    make_missing_dirs(&base, &parts, &escapes)?;
    let full = base.join(rel);
    let resolved = fs::canonicalize(&full).map_err(|e| VolumeError::io("resolve", &full, e))?;
    let Ok(inside) = resolved.strip_prefix(&base) else {
        tracing::warn!(
            volume = request.volume_name,
            sub_path = request.sub_path,
            resolved = %resolved.display(),
            "subPath leaves its volume"
        );
        return Err(escapes());
    };
    if !request.volume.writable_by_pod {
        return Ok(resolved);
    }

    let inside: Vec<&OsStr> = inside.iter().collect();
    let fd = open_beneath(&base, &inside, libc::O_PATH, &escapes)?;
    let target = dirs.subpath_target(request.volume_name, request.container, request.index);
    bind_fd(&fd, &target, proc_dir)?;
    Ok(target)
}

/// Creates the missing tail of `parts` under `base` as directories with the
/// volume's own mode, refusing to create anything outside `base`.
fn make_missing_dirs(
    base: &Path,
    parts: &[&OsStr],
    escapes: &dyn Fn() -> VolumeError,
) -> Result<(), VolumeError> {
    let mut existing = 0;
    let mut probe = base.to_path_buf();
    for part in parts {
        probe.push(part);
        match fs::symlink_metadata(&probe) {
            Ok(_) => existing += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(VolumeError::io("stat", &probe, e)),
        }
    }
    if existing == parts.len() {
        return Ok(());
    }
    let prefix: PathBuf = parts[..existing]
        .iter()
        .fold(base.to_path_buf(), |p, c| p.join(c));
    let real = fs::canonicalize(&prefix).map_err(|e| VolumeError::io("resolve", &prefix, e))?;
    let inside: Vec<&OsStr> = match real.strip_prefix(base) {
        Ok(rest) => rest.iter().collect(),
        Err(_) => return Err(escapes()),
    };
    let mode = fs::metadata(base)
        .map_err(|e| VolumeError::io("stat", base, e))?
        .mode()
        & 0o7777;
    let mut dir = open_beneath(base, &inside, libc::O_RDONLY | libc::O_DIRECTORY, escapes)?;
    let mut path = real;
    for part in &parts[existing..] {
        path.push(part);
        let name = c_name(part, &path)?;
        // SAFETY: `dir` is an open directory and `name` a valid C string.
        let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(VolumeError::io("create directory", &path, e));
            }
        }
        let next = open_at(&dir, part, libc::O_RDONLY | libc::O_DIRECTORY, &path)?;
        // The umask narrowed the mode given to mkdirat.
        // SAFETY: `next` is an open file descriptor.
        if unsafe { libc::fchmod(next.as_raw_fd(), mode) } != 0 {
            return Err(VolumeError::io("chmod", &path, io::Error::last_os_error()));
        }
        dir = next;
    }
    Ok(())
}

/// Opens `base/parts...` without following any symlink on the way; a symlink
/// anywhere (someone swapped one in since the check) is an escape.
fn open_beneath(
    base: &Path,
    parts: &[&OsStr],
    last_flags: libc::c_int,
    escapes: &dyn Fn() -> VolumeError,
) -> Result<OwnedFd, VolumeError> {
    let first_flags = if parts.is_empty() {
        last_flags
    } else {
        libc::O_PATH
    };
    let mut fd: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(first_flags | libc::O_DIRECTORY)
        .open(base)
        .map_err(|e| VolumeError::io("open", base, e))?
        .into();
    let mut path = base.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let flags = if i + 1 == parts.len() {
            last_flags
        } else {
            libc::O_PATH | libc::O_DIRECTORY
        };
        fd = match open_at(&fd, part, flags, &path) {
            Ok(next) => next,
            Err(VolumeError::Io { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::ELOOP) | Some(libc::ENOTDIR)
                ) =>
            {
                return Err(escapes());
            }
            Err(e) => return Err(e),
        };
        if is_symlink(fd.as_raw_fd()) {
            return Err(escapes());
        }
    }
    Ok(fd)
}

fn open_at(
    dir: &OwnedFd,
    name: &OsStr,
    flags: libc::c_int,
    path: &Path,
) -> Result<OwnedFd, VolumeError> {
    let c = c_name(name, path)?;
    // SAFETY: `dir` is an open descriptor and `c` a valid C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(VolumeError::io("open", path, io::Error::last_os_error()));
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn c_name(name: &OsStr, path: &Path) -> Result<CString, VolumeError> {
    CString::new(name.as_bytes()).map_err(|_| {
        VolumeError::io(
            "open",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"),
        )
    })
}

fn fstat(fd: RawFd) -> Option<libc::stat> {
    // SAFETY: `st` is written by fstat before it is read; zeroed is a valid stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` points to a stat buffer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

fn is_symlink(fd: RawFd) -> bool {
    fstat(fd).is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

/// Bind-mounts the object open at `fd` on `target`, reusing a bind of the
/// same object from an earlier start of the container.
fn bind_fd(fd: &OwnedFd, target: &Path, proc_dir: &Path) -> Result<(), VolumeError> {
    let st = fstat(fd.as_raw_fd())
        .ok_or_else(|| VolumeError::io("stat", target, io::Error::last_os_error()))?;
    if let Ok(meta) = fs::metadata(target)
        && meta.dev() == st.st_dev
        && meta.ino() == st.st_ino
    {
        return Ok(());
    }
    let mountinfo = proc_dir.join("self/mountinfo");
    for _ in 0..8 {
        if !kernel_mounts::is_mount_point(&mountinfo, target)? {
            break;
        }
        kernel_mounts::unmount(target)?;
    }
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    make_target(target, is_dir)?;
    let source = proc_dir.join("self/fd").join(fd.as_raw_fd().to_string());
    kernel_mounts::bind(&source, target)
}

fn make_target(target: &Path, is_dir: bool) -> Result<(), VolumeError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| VolumeError::io("create directory", parent, e))?;
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => return Ok(()),
        Ok(m) if m.is_dir() => {
            fs::remove_dir(target).map_err(|e| VolumeError::io("remove", target, e))?
        }
        Ok(_) => fs::remove_file(target).map_err(|e| VolumeError::io("remove", target, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(VolumeError::io("stat", target, e)),
    }
    if is_dir {
        fs::create_dir(target).map_err(|e| VolumeError::io("create directory", target, e))
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(target)
            .map(drop)
            .map_err(|e| VolumeError::io("create", target, e))
    }
}
