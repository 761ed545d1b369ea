//! The pod's `/dev/shm`: one tmpfs for all its containers, as the pause container's is under
//! CRI runtimes, so POSIX shared memory works across containers of a pod (they share the IPC
//! namespace too). Pods on the host's IPC namespace use the host's `/dev/shm` instead.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// The directory under the sandbox the tmpfs is mounted on.
pub(crate) const SHM_DIR: &str = "shm";
/// containerd's size for a sandbox's shm.
const SIZE: &str = "size=65536k,mode=1777";

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Mounts the pod's shm tmpfs under `dir`; returns where.
pub(crate) fn create(dir: &Path) -> Result<PathBuf, SandboxError> {
    let target = dir.join(SHM_DIR);
    std::fs::create_dir_all(&target).map_err(io_err(&target, "create"))?;
    let c_target = c_path(&target).map_err(io_err(&target, "mount shm on"))?;
    let options = CString::new(SIZE).map_err(|_| {
        io_err(&target, "mount shm on")(io::Error::new(io::ErrorKind::InvalidInput, "options"))
    })?;
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"shm".as_ptr(),
            c_target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io_err(&target, "mount shm on")(io::Error::last_os_error()));
    }
    Ok(target)
}

/// Unmounts and removes the pod's shm under `dir`; absent is fine.
pub(crate) fn remove(dir: &Path) -> Result<(), SandboxError> {
    let target = dir.join(SHM_DIR);
    if !target.exists() {
        return Ok(());
    }
    let c_target = c_path(&target).map_err(io_err(&target, "unmount"))?;
    // A container still holding it keeps it alive until it goes; the pod no longer sees it.
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (left by a crash between mkdir and mount).
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(io_err(&target, "unmount")(e));
        }
    }
    match std::fs::remove_dir(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&target, "remove")(e)),
    }
}
