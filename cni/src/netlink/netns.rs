//! Network namespaces: opening, creating and removing bind-mounted ones (as
//! `ip netns` does), and running netlink work inside one.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing::Instrument;

use super::{Netlink, NetlinkError};

/// Opens a namespace file such as /var/run/netns/x or /proc/PID/ns/net.
///
/// [`NetlinkError::NetnsNotFound`] when the path is missing or is a bare mount
/// point with no namespace on it (what a reboot or a crashed runtime leaves).
pub fn open(path: &Path) -> Result<File, NetlinkError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(NetlinkError::NetnsNotFound(path.to_path_buf()));
        }
        Err(error) => {
            return Err(NetlinkError::Netns {
                path: path.to_path_buf(),
                action: "open",
                error,
            });
        }
    };
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE as _) };
    if kind == libc::CLONE_NEWNET {
        return Ok(file);
    }
    let error = if kind < 0 {
        let error = io::Error::last_os_error();
        // ENOTTY: an ordinary file, i.e. nothing is mounted there any more.
        if error.raw_os_error() == Some(libc::ENOTTY) {
            return Err(NetlinkError::NetnsNotFound(path.to_path_buf()));
        }
        error
    } else {
        io::Error::new(io::ErrorKind::InvalidInput, "not a network namespace")
    };
    Err(NetlinkError::Netns {
        path: path.to_path_buf(),
        action: "check the namespace type",
        error,
    })
}

/// Serialises the parent-directory mount dance among callers in this process.
static MOUNT_SETUP: Mutex<()> = Mutex::new(());

/// Creates a new network namespace bind-mounted at `path` (like `ip netns add`).
///
/// The parent directory is created and made a shared mount point, as iproute2
/// does, so the namespace mount propagates to other mount namespaces. The
/// namespace is made on a short-lived thread, so the caller's never changes.
pub fn create(path: &Path) -> Result<(), NetlinkError> {
    let ns_err = |action, error| NetlinkError::Netns {
        path: path.to_path_buf(),
        action,
        error,
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| NetlinkError::Invalid {
            what: "namespace path",
            value: path.display().to_string(),
            reason: "needs a parent directory",
        })?;
    {
        let _guard = MOUNT_SETUP.lock().unwrap_or_else(|p| p.into_inner());
        fs::create_dir_all(parent).map_err(|e| ns_err("create the parent directory", e))?;
        make_shared(parent).map_err(|e| ns_err("make the parent directory a shared mount", e))?;
    }
    // O_EXCL: two callers must never end up sharing one namespace.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NetlinkError::NetnsExists(path.to_path_buf()));
        }
        Err(e) => return Err(ns_err("create the mount point", e)),
    }
    let target = cstring(path)?;
    let made = std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || bind_new_netns(&target))
        .map_err(|e| ns_err("start the thread that unshares", e))
        .and_then(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the thread that unshares panicked")))
                .map_err(|e| ns_err("unshare and bind-mount", e))
        });
    if let Err(e) = made {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    tracing::debug!(netns = %path.display(), "created network namespace");
    Ok(())
}

/// On the calling thread only: a new network namespace, pinned by a bind mount.
fn bind_new_netns(target: &CString) -> io::Result<()> {
    // SAFETY: plain system calls with valid NUL-terminated strings; unshare and the
    // namespace change affect this thread only, and it exits right after.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
        let source = c"/proc/thread-self/ns/net";
        if libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"none".as_ptr(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// iproute2's recipe: make `dir` a shared mount, bind-mounting it onto itself first
/// when it is not a mount point yet.
fn make_shared(dir: &Path) -> io::Result<()> {
    let dir =
        cstring(dir).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let shared = || {
        // SAFETY: valid NUL-terminated strings; no data argument.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                dir.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED | libc::MS_REC,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    match shared() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above.
            let rc = unsafe {
                libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    c"none".as_ptr(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            shared()
        }
        r => r,
    }
}

/// Unmounts and removes a namespace made by [`create`]; Ok if absent. The
/// namespace itself goes once nothing else (a process, an open fd) holds it.
pub fn remove(path: &Path) -> Result<(), NetlinkError> {
    let target = cstring(path)?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let error = io::Error::last_os_error();
        // EINVAL: not mounted (already unmounted, or never was).
        if !matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
            return Err(NetlinkError::Netns {
                path: path.to_path_buf(),
                action: "unmount",
                error,
            });
        }
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::debug!(netns = %path.display(), "removed network namespace");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(NetlinkError::Netns {
            path: path.to_path_buf(),
            action: "remove the mount point",
            error,
        }),
    }
}

/// Runs `f` with a [`Netlink`] connected inside the namespace at `ns`.
///
/// `f` runs on a dedicated OS thread that setns()es into the namespace, with its
/// own current-thread tokio runtime and netlink socket; the caller's thread and
/// runtime never change namespace. `/proc/sys/net` reads and writes from `f` (see
/// [`super::sysctl`]) see that namespace too. Work `f` hands to other threads
/// (`spawn_blocking`, other runtimes) does not run in the namespace.
pub async fn run_in<T, F, Fut>(ns: &Path, f: F) -> Result<T, NetlinkError>
where
    F: FnOnce(Netlink) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
    T: Send + 'static,
{
    let file = open(ns)?;
    let path = ns.to_path_buf();
    let span = tracing::Span::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let _ = tx.send(run_on_this_thread(file, &thread_path, f, span));
        })
        .map_err(|error| NetlinkError::Netns {
            path: path.clone(),
            action: "start a thread",
            error,
        })?;
    rx.await.unwrap_or(Err(NetlinkError::NetnsThread {
        path,
        what: "panicked",
    }))
}

fn run_on_this_thread<T, F, Fut>(
    file: File,
    path: &Path,
    f: F,
    span: tracing::Span,
) -> Result<T, NetlinkError>
where
    F: FnOnce(Netlink) -> Fut,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    // SAFETY: setns on an fd we own; it moves only this thread, which is ours and
    // ends when f is done.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetlinkError::Netns {
            path: path.to_path_buf(),
            action: "setns",
            error: io::Error::last_os_error(),
        });
    }
    drop(file);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| NetlinkError::Netns {
            path: path.to_path_buf(),
            action: "start a runtime",
            error,
        })?;
    runtime.block_on(
        async move {
            let nl = Netlink::connect()?;
            f(nl).await
        }
        .instrument(span),
    )
}

fn cstring(path: &Path) -> Result<CString, NetlinkError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| NetlinkError::Invalid {
        what: "namespace path",
        value: path.display().to_string(),
        reason: "contains a NUL byte",
    })
}
