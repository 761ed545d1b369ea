//! The pod's network, IPC and UTS namespaces, made by the agent and pinned by bind
//! mounts so every container of the pod can join them by path.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest hostname the kernel accepts (HOST_NAME_MAX).
const MAX_HOSTNAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("invalid hostname {hostname:?}: {reason}")]
    InvalidHostname {
        hostname: String,
        reason: &'static str,
    },
    #[error("pod namespaces already exist at {}", path.display())]
    Exists { path: PathBuf },
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> NamespaceError {
    let path = path.to_path_buf();
    move |source| NamespaceError::Io {
        path,
        action,
        source,
    }
}

/// Which of the pod's namespaces are the host's own (`hostNetwork`, `hostIPC`).
/// A host-network pod also keeps the host's UTS namespace, as with the kubelet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostNamespaces {
    pub network: bool,
    pub ipc: bool,
}

/// Bind-mounted namespace files of one pod. `None`: the pod shares the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub dir: PathBuf,
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Net, Kind::Ipc, Kind::Uts];

    fn file(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }

    fn flag(self) -> libc::c_int {
        match self {
            Kind::Net => libc::CLONE_NEWNET,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
        }
    }

    fn proc_path(self) -> &'static std::ffi::CStr {
        match self {
            Kind::Net => c"/proc/thread-self/ns/net",
            Kind::Ipc => c"/proc/thread-self/ns/ipc",
            Kind::Uts => c"/proc/thread-self/ns/uts",
        }
    }
}

impl Namespaces {
    /// New network, IPC and UTS namespaces pinned under `dir` (`dir/net`, `dir/ipc`,
    /// `dir/uts`), with `hostname` set and loopback up.
    pub fn create(dir: &Path, hostname: &str) -> Result<Namespaces, NamespaceError> {
        Namespaces::create_with(dir, hostname, HostNamespaces::default())
    }

    /// As [`Namespaces::create`], leaving out those the pod shares with the host.
    ///
    /// All namespaces come from one `unshare` on a short-lived thread: unshare moves
    /// only the calling thread (its own nsproxy), so the agent's other threads never
    /// change namespace, and the thread's namespaces outlive it through the mounts.
    pub fn create_with(
        dir: &Path,
        hostname: &str,
        host: HostNamespaces,
    ) -> Result<Namespaces, NamespaceError> {
        let mut kinds = Vec::with_capacity(3);
        if !host.network {
            kinds.extend([Kind::Net, Kind::Uts]);
        }
        if !host.ipc {
            kinds.push(Kind::Ipc);
        }
        let made = Namespaces {
            dir: dir.to_path_buf(),
            net: (!host.network).then(|| dir.join(Kind::Net.file())),
            ipc: (!host.ipc).then(|| dir.join(Kind::Ipc.file())),
            uts: (!host.network).then(|| dir.join(Kind::Uts.file())),
        };
        if kinds.is_empty() {
            return Ok(made);
        }
        if made.uts.is_some() {
            validate_hostname(hostname)?;
        }
        let result = make_namespaces(dir, hostname, &kinds);
        if let Err(e) = result {
            // Only what this call made is removed: a second create on the same dir
            // must not tear down the first one's namespaces.
            if !matches!(e, NamespaceError::Exists { .. }) {
                let _ = remove_dir(dir);
            }
            return Err(e);
        }
        tracing::debug!(dir = %dir.display(), hostname, "created pod namespaces");
        Ok(made)
    }

    /// Unmounts and deletes the namespace files and their directory; Ok when they are
    /// already gone. A namespace itself goes once no process or fd holds it.
    pub fn remove(&self) -> Result<(), NamespaceError> {
        remove_dir(&self.dir)
    }
}

/// Whether a namespace (of any kind) is mounted at `path`; a bare mount point left by a
/// reboot is not one.
pub fn is_namespace(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which we own.
    unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE as _) >= 0 }
}

fn validate_hostname(hostname: &str) -> Result<(), NamespaceError> {
    let reason = if hostname.is_empty() {
        "empty"
    } else if hostname.len() > MAX_HOSTNAME {
        "longer than 64 bytes"
    } else if hostname
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        "contains a NUL, '/' or whitespace"
    } else {
        return Ok(());
    };
    Err(NamespaceError::InvalidHostname {
        hostname: hostname.to_string(),
        reason,
    })
}

fn make_namespaces(dir: &Path, hostname: &str, kinds: &[Kind]) -> Result<(), NamespaceError> {
    fs::create_dir_all(dir).map_err(io_err(dir, "create"))?;
    make_shared_mount(dir).map_err(io_err(dir, "make a shared mount point of"))?;
    let mut targets = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let path = dir.join(kind.file());
        // O_EXCL: two sandboxes must never end up sharing one namespace.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                for (made, _) in &targets {
                    let _ = fs::remove_file(dir.join(Kind::file(*made)));
                }
                return Err(NamespaceError::Exists { path });
            }
            Err(e) => return Err(io_err(&path, "create the mount point")(e)),
        }
        targets.push((*kind, cstring(&path)?));
    }
    let hostname = hostname.as_bytes().to_vec();
    std::thread::Builder::new()
        .name("pod-namespaces".into())
        .spawn(move || unshare_and_pin(&targets, &hostname))
        .map_err(io_err(dir, "start the thread that unshares for"))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread that unshares panicked")))
        .map_err(io_err(dir, "unshare and bind-mount namespaces in"))
}

/// Runs on a thread of its own that ends right after: new namespaces for this
/// thread only, set up and pinned by bind mounts.
fn unshare_and_pin(targets: &[(Kind, CString)], hostname: &[u8]) -> io::Result<()> {
    let flags = targets.iter().fold(0, |f, (k, _)| f | k.flag());
    // SAFETY: unshare with namespace flags only changes this thread's namespaces.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for (kind, _) in targets {
        match kind {
            // SAFETY: a valid buffer and its length; affects the new UTS namespace only.
            Kind::Uts => unsafe {
                if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            },
            Kind::Net => loopback_up()?,
            Kind::Ipc => {}
        }
    }
    for (kind, target) in targets {
        // SAFETY: valid NUL-terminated strings; a plain bind mount.
        let rc = unsafe {
            libc::mount(
                kind.proc_path().as_ptr(),
                target.as_ptr(),
                c"none".as_ptr(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `ip link set lo up` in this thread's network namespace: one ioctl pair is much
/// cheaper than a netlink socket and runtime for a single flag.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the union
    // member used is the flags one for both requests.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// iproute2's recipe for its netns directory: a shared mount point, so a namespace
/// mount made or removed here propagates to mount namespaces copied from this one
/// (a container's, before it pivots) instead of pinning the namespace there.
fn make_shared_mount(dir: &Path) -> io::Result<()> {
    let dir = cstring(dir).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let shared = || {
        // SAFETY: valid NUL-terminated strings, no data argument.
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
        // EINVAL: not a mount point yet.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // SAFETY: as above; binds the directory onto itself.
            let rc = unsafe {
                libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    c"none".as_ptr(),
                    libc::MS_BIND,
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

/// Unmounts and deletes `dir/{net,ipc,uts}`, then `dir` itself (made by
/// [`Namespaces::create`]). Anything already gone is fine.
pub fn remove_dir(dir: &Path) -> Result<(), NamespaceError> {
    let mut first: Option<NamespaceError> = None;
    for kind in Kind::ALL {
        let path = dir.join(kind.file());
        if let Err(e) = unmount(&path).and_then(|()| remove_file(&path)) {
            first.get_or_insert(e);
        }
    }
    if let Some(e) = first {
        return Err(e);
    }
    unmount(dir)?;
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir, "remove")(e)),
    }
}

fn unmount(path: &Path) -> Result<(), NamespaceError> {
    let target = cstring(path)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // EINVAL: not a mount point (never mounted, or already unmounted).
    if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
        Ok(())
    } else {
        Err(io_err(path, "unmount")(e))
    }
}

fn remove_file(path: &Path) -> Result<(), NamespaceError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "remove")(e)),
    }
}

fn cstring(path: &Path) -> Result<CString, NamespaceError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| NamespaceError::Io {
        path: path.to_path_buf(),
        action: "use",
        source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_the_kernel_refuses_are_refused_first() {
        assert!(validate_hostname("web-0").is_ok());
        assert!(validate_hostname(&"a".repeat(64)).is_ok());
        assert!(validate_hostname(&"a".repeat(65)).is_err());
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("a b").is_err());
    }
}
