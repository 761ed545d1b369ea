//! What `add` installed, per attachment, so `del` can remove exactly that without the
//! netns, without prevResult and after a reboot emptied the kernel tables.
//!
//! Layout: `<root>/<network>/<containerID>:<ifname>`, one small JSON file each. The
//! separator is ':' because neither a container ID nor an interface name may contain
//! one, so two keys never share a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rules::{AttachmentKey, Rules};
use super::{Backend, FirewallError};

/// One attachment's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    /// `del` must undo with the backend that installed, whatever is detected later.
    pub backend: Backend,
    pub key: AttachmentKey,
    pub rules: Rules,
    /// The boot that installed the rules: a record from an earlier boot describes rules
    /// the reboot removed, so it holds no hostPort any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// This boot's identity, from the kernel.
pub(super) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

impl Record {
    pub(super) fn is_of_this_boot(&self, boot: Option<&str>) -> bool {
        match (self.boot_id.as_deref(), boot) {
            (Some(recorded), Some(now)) => recorded == now,
            // Unknown either way: assume the rules are still there.
            _ => true,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct StateDir {
    root: PathBuf,
}

/// Held while an operation reads state, programs the kernel and writes state, so
/// concurrent plugin invocations see each other's records (conflict checks, GC). One
/// operation at a time, whatever the backend: iptables' conflict checks and
/// save-then-restore read what others did, and concurrent `nft` processes each fetch the
/// ruleset again whenever another commits first: 40 ADDs at once cost five times the CPU
/// of the same 40 one after another, which a burst of pods on a small node pays for. The
/// wait is one `nft` run (a few ms) per operation ahead.
pub(super) struct Lock {
    _file: File,
}

impl StateDir {
    pub(super) fn new(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    fn network_dir(&self, network: &str) -> PathBuf {
        self.root.join(network)
    }

    pub(super) fn path(&self, key: &AttachmentKey) -> PathBuf {
        self.network_dir(&key.network)
            .join(format!("{}:{}", key.container_id, key.ifname))
    }

    pub(super) fn lock(&self) -> Result<Lock, FirewallError> {
        let err = |source| FirewallError::State {
            path: self.root.clone(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(err)?;
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| FirewallError::State {
                path: path.clone(),
                source,
            })?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Lock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(FirewallError::State { path, source: e });
            }
        }
    }

    pub(super) fn read(&self, key: &AttachmentKey) -> Result<Option<Record>, FirewallError> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(bytes) => {
                let record: Record = serde_json::from_slice(&bytes)
                    .map_err(|source| FirewallError::StateFormat { path, source })?;
                Ok(Some(record))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FirewallError::State { path, source }),
        }
    }

    /// Write-then-rename, so a crash leaves the old record or the new one, never half.
    pub(super) fn write(&self, record: &Record) -> Result<(), FirewallError> {
        let path = self.path(&record.key);
        let dir = self.network_dir(&record.key.network);
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FirewallError::State { path, source }
        };
        fs::create_dir_all(&dir).map_err(err(&dir))?;
        let tmp = dir.join(format!(
            ".{}:{}.tmp",
            record.key.container_id, record.key.ifname
        ));
        let bytes = serde_json::to_vec(record).map_err(|source| FirewallError::StateFormat {
            path: path.clone(),
            source,
        })?;
        fs::write(&tmp, bytes).map_err(err(&tmp))?;
        fs::rename(&tmp, &path).map_err(err(&path))
    }

    pub(super) fn remove(&self, key: &AttachmentKey) -> Result<(), FirewallError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FirewallError::State { path, source }),
        }
    }

    /// The records of one network. Unreadable files are reported, not fatal: one corrupt
    /// record must not stop GC of the others.
    pub(super) fn list(
        &self,
        network: &str,
    ) -> Result<(Vec<Record>, Vec<FirewallError>), FirewallError> {
        let dir = self.network_dir(network);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(source) => return Err(FirewallError::State { path: dir, source }),
        };
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| FirewallError::State {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            match fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                    Ok(r) => records.push(r),
                    Err(source) => errors.push(FirewallError::StateFormat { path, source }),
                },
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => errors.push(FirewallError::State { path, source }),
            }
        }
        records.sort_by(|a, b| {
            (&a.key.container_id, &a.key.ifname).cmp(&(&b.key.container_id, &b.key.ifname))
        });
        Ok((records, errors))
    }

    /// Every record of every network; best effort, for naming who holds a hostPort.
    pub(super) fn list_all(&self) -> Vec<Record> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .flat_map(|n| self.list(&n).map(|(r, _)| r).unwrap_or_default())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rules::{PortMapping, Protocol};

    fn record(cid: &str) -> Record {
        Record {
            backend: Backend::Nftables,
            key: AttachmentKey::new("net", cid, "eth0"),
            boot_id: boot_id(),
            rules: Rules {
                bridge: "cni0".into(),
                masquerade: vec!["10.22.0.5/16".parse().unwrap()],
                port_mappings: vec![PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                }],
                container_ips: vec!["10.22.0.5".parse().unwrap()],
                spoof_check: None,
                non_masquerade: Vec::new(),
            },
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let r = record("c1");
        assert_eq!(state.read(&r.key).unwrap(), None);
        state.write(&r).unwrap();
        assert!(dir.path().join("net").join("c1:eth0").is_file());
        assert_eq!(state.read(&r.key).unwrap(), Some(r.clone()));
        state.write(&record("c2")).unwrap();
        let (all, errors) = state.list("net").unwrap();
        assert!(errors.is_empty());
        assert_eq!(all.len(), 2);
        assert_eq!(state.list_all().len(), 2);
        state.remove(&r.key).unwrap();
        state.remove(&r.key).unwrap();
        assert_eq!(state.read(&r.key).unwrap(), None);
        assert_eq!(state.list("other").unwrap().0.len(), 0);
    }

    #[test]
    fn corrupt_record_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.write(&record("c1")).unwrap();
        fs::write(dir.path().join("net").join("junk:eth0"), b"{").unwrap();
        let (records, errors) = state.list("net").unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(errors.len(), 1);
        let _lock = state.lock().unwrap();
    }

    #[test]
    fn records_of_an_earlier_boot_are_recognised() {
        let mut r = record("c1");
        let now = boot_id();
        assert!(now.is_some());
        assert!(r.is_of_this_boot(now.as_deref()));
        r.boot_id = Some("earlier".into());
        assert!(!r.is_of_this_boot(now.as_deref()));
        r.boot_id = None;
        assert!(r.is_of_this_boot(now.as_deref()));
    }
}
