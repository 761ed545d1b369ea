use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::spec::{Attachment, Error, ErrorCode};

const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is held by another process for more than {}s", path.display(), LOCK_WAIT.as_secs())]
    Busy { path: PathBuf },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        let code = match e {
            StoreError::Busy { .. } => ErrorCode::TryAgainLater,
            StoreError::Io { .. } => ErrorCode::Io,
        };
        Error::new(code, e.to_string())
    }
}

/// How long an operation waits for the network's lock before telling the runtime to
/// try again later, rather than hanging behind a stuck process.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Who holds an address, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// host-local 0.7 and later: `<containerID>\r\n<ifname>`.
    Attachment {
        container_id: String,
        ifname: String,
    },
    /// Older host-local wrote the container ID only.
    Container(String),
    /// An empty file, left by a writer that died between creating and filling it.
    Nobody,
}

impl Owner {
    fn parse(text: &str) -> Owner {
        let text = text.trim();
        match text.split_once('\n') {
            Some((id, ifname)) => Owner::Attachment {
                container_id: id.trim().to_string(),
                ifname: ifname.trim().to_string(),
            },
            None if text.is_empty() => Owner::Nobody,
            None => Owner::Container(text.to_string()),
        }
    }

    /// This attachment's, exactly.
    pub fn is_exactly(&self, container_id: &str, ifname: &str) -> bool {
        matches!(self, Owner::Attachment { container_id: c, ifname: i } if c == container_id && i == ifname)
    }

    /// This attachment's, counting old-format files of the same container.
    pub fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.is_exactly(container_id, ifname)
            || matches!(self, Owner::Container(c) if c == container_id)
    }

    /// Whether any of `valid` may own this address.
    pub fn is_any_of(&self, valid: &[Attachment]) -> bool {
        valid.iter().any(|a| self.is(&a.container_id, &a.ifname))
    }
}

/// One address file in the network's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub owner: Owner,
}

/// A network's directory under the data dir, laid out exactly as host-local lays it out
/// (one file per address, `last_reserved_ip.<set>`, and `lock`), held under host-local's
/// lock so both plugins can work on one node at once.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    // Closing the descriptor releases the flock.
    _lock: File,
}

impl Store {
    /// Opens the network's directory, creating it, and waits for the lock.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, StoreError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Store::lock(dir)
    }

    /// Like [`Store::open`], but `None` when the network has never had an allocation
    /// here: DEL, CHECK, STATUS and GC have nothing to look at and must not create it.
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<Store>, StoreError> {
        let dir = data_dir.join(network);
        match fs::metadata(&dir) {
            Ok(_) => Store::lock(dir).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &dir)(e)),
        }
    }

    fn lock(dir: PathBuf) -> Result<Store, StoreError> {
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            // std only creates files opened for writing; host-local opens it read-only.
            .custom_flags(libc::O_CREAT)
            .mode(0o644)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        let deadline = std::time::Instant::now() + lock_wait();
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            // SAFETY: flock on a descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Busy { path });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(1));
                }
                _ => return Err(io_err("lock", &path)(err)),
            }
        }
        Ok(Store { dir, _lock: file })
    }

    /// Every address file of the network. Files whose names are not addresses (the lock,
    /// `last_reserved_ip.*`, strays) are skipped; so are files that vanish mid-scan.
    pub fn scan(&self) -> Result<Vec<Allocation>, StoreError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("read", &self.dir))? {
            let entry = entry.map_err(io_err("read", &self.dir))?;
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            let path = entry.path();
            match fs::read(&path) {
                Ok(bytes) => out.push(Allocation {
                    ip,
                    owner: Owner::parse(&String::from_utf8_lossy(&bytes)),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // A directory or unreadable file named like an address still blocks it.
                Err(_) => out.push(Allocation {
                    ip,
                    owner: Owner::Nobody,
                }),
            }
        }
        Ok(out)
    }

    /// Takes `ip` for the attachment; `false` if its file already exists. Not yet
    /// durable: see [`Store::sync`].
    pub fn reserve(
        &self,
        ip: IpAddr,
        container_id: &str,
        ifname: &str,
    ) -> Result<bool, StoreError> {
        let path = self.path_of(ip);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err("create", &path)(e)),
        };
        let body = format!("{}\r\n{}", container_id.trim(), ifname);
        if let Err(e) = file.write_all(body.as_bytes()) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_err("write", &path)(e));
        }
        Ok(true)
    }

    /// Frees `ip`; freeing a free address is not an error.
    pub fn release(&self, ip: IpAddr) -> Result<(), StoreError> {
        let path = self.path_of(ip);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }

    /// The address last handed out from range set `set`, where round-robin resumes.
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let text =
            fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"))).ok()?;
        text.trim().parse().ok()
    }

    /// Not flushed: the file is only a hint, and a lost or torn one restarts the
    /// round-robin at the range start, which is harmless.
    pub fn set_last_reserved(&self, set: usize, ip: IpAddr) -> Result<(), StoreError> {
        let path = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        fs::write(&path, ip.to_string()).map_err(io_err("write", &path))
    }

    /// Makes the files of `ips` and their names durable, so a crash cannot leave an
    /// address handed out but unrecorded or recorded with no owner. Called once after
    /// every write of an operation: the first flush commits the file system's journal
    /// with all of them (`last_reserved_ip.*` included), so the rest cost little.
    pub fn sync(&self, ips: &[IpAddr]) -> Result<(), StoreError> {
        for ip in ips {
            let path = self.path_of(*ip);
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(io_err("sync", &path))?;
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", &self.dir))
    }

    fn path_of(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }
}

/// `SKIFF_IPAM_LOCK_WAIT_MS` shortens the wait (tests use it to see the error quickly).
fn lock_wait() -> std::time::Duration {
    std::env::var("SKIFF_IPAM_LOCK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(LOCK_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_in_both_formats() {
        let new = Owner::parse("abc\r\neth0");
        assert!(new.is_exactly("abc", "eth0"));
        assert!(!new.is("abc", "eth1"));
        let old = Owner::parse("abc\n");
        assert_eq!(old, Owner::Container("abc".into()));
        assert!(old.is("abc", "eth1"));
        assert!(!old.is_exactly("abc", "eth1"));
        assert_eq!(Owner::parse(""), Owner::Nobody);
        assert!(!Owner::Nobody.is_any_of(&[Attachment {
            container_id: "abc".into(),
            ifname: "eth0".into()
        }]));
    }

    #[test]
    fn reserve_is_exclusive_and_release_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(store.reserve(ip, "c1", "eth0").unwrap());
        assert!(!store.reserve(ip, "c2", "eth0").unwrap());
        assert_eq!(
            fs::read_to_string(tmp.path().join("net/10.0.0.2")).unwrap(),
            "c1\r\neth0"
        );
        store.set_last_reserved(0, ip).unwrap();
        assert_eq!(store.last_reserved(0), Some(ip));
        assert_eq!(store.last_reserved(1), None);
        let all = store.scan().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].owner.is_exactly("c1", "eth0"));
        store.release(ip).unwrap();
        store.release(ip).unwrap();
        assert!(store.scan().unwrap().is_empty());
        assert!(Store::open_existing(tmp.path(), "other").unwrap().is_none());
        assert!(!tmp.path().join("other").exists());
    }
}
