//! The kernel's mount table and the few mounts volumes need: tmpfs for
//! memory-backed volumes, binds for subPaths, and unmounting.

use std::ffi::CString;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::error::VolumeError;

/// One line of `mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
}

/// Reads a `mountinfo` file (`<proc>/self/mountinfo`), in mount order.
pub(crate) fn read_mountinfo(path: &Path) -> Result<Vec<MountEntry>, VolumeError> {
    let text = std::fs::read_to_string(path).map_err(|e| VolumeError::io("read", path, e))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

pub(crate) fn is_mount_point(mountinfo: &Path, path: &Path) -> Result<bool, VolumeError> {
    Ok(read_mountinfo(mountinfo)?
        .iter()
        .any(|m| m.mount_point == path))
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fs_type: fs_type.to_string(),
        super_options: super_options.to_string(),
    })
}

/// The kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Mounts a tmpfs on `target`, limited to `size_bytes` when given.
pub(crate) fn mount_tmpfs(target: &Path, size_bytes: Option<i64>) -> Result<(), VolumeError> {
    let fail = |source| VolumeError::Mount {
        what: "tmpfs".to_string(),
        target: target.to_path_buf(),
        source,
    };
    let c_target = c_path(target).map_err(fail)?;
    let options = size_bytes.map(|s| format!("size={s}")).unwrap_or_default();
    let c_options = CString::new(options).map_err(|_| {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad tmpfs options",
        ))
    })?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c_target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c_options.as_ptr().cast(),
        )
    };
    check(rc).map_err(fail)
}

/// Bind-mounts `source` (recursively) on `target`.
pub(crate) fn bind(source: &Path, target: &Path) -> Result<(), VolumeError> {
    let fail = |e| VolumeError::Mount {
        what: source.display().to_string(),
        target: target.to_path_buf(),
        source: e,
    };
    let c_source = c_path(source).map_err(fail)?;
    let c_target = c_path(target).map_err(fail)?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    };
    check(rc).map_err(fail)
}

/// Unmounts `target`; when something still holds it, detaches it instead so
/// that it disappears from the pod directory now and is freed when released.
/// A target that is not mounted (any more) is fine.
pub(crate) fn unmount(target: &Path) -> Result<(), VolumeError> {
    let fail = |source| VolumeError::Unmount {
        target: target.to_path_buf(),
        source,
    };
    let c_target = c_path(target).map_err(fail)?;
    // SAFETY: a valid NUL-terminated path that outlives the call.
    let result = check(unsafe { libc::umount2(c_target.as_ptr(), 0) });
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            tracing::warn!(target = %target.display(), "busy, detaching the mount");
            // SAFETY: as above.
            check(unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) }).map_err(fail)
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let line = "36 35 0:32 / /var/lib/skiff/pods/u/volumes/kubernetes.io~empty-dir/a\\040b rw,nosuid,nodev,relatime shared:1 - tmpfs tmpfs rw,size=65536k";
        let entry = parse_line(line).unwrap();
        assert_eq!(
            entry.mount_point,
            Path::new("/var/lib/skiff/pods/u/volumes/kubernetes.io~empty-dir/a b")
        );
        assert_eq!(entry.fs_type, "tmpfs");
        assert_eq!(entry.super_options, "rw,size=65536k");
    }

    #[test]
    fn parses_lines_without_optional_fields() {
        let line = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw,errors=remount-ro";
        let entry = parse_line(line).unwrap();
        assert_eq!(entry.mount_point, Path::new("/"));
        assert_eq!(entry.fs_type, "ext4");
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\134b\\011"), b"a\\b\t");
        assert_eq!(unescape("trailing\\"), b"trailing\\");
        assert_eq!(unescape("\\12"), b"\\12");
    }
}
