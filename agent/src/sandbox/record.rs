//! What the agent writes down about each sandbox before making any of it, so a
//! restarted agent can find every sandbox (whole or half made) and adopt or remove it.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SandboxError;

pub(crate) const RECORD_FILE: &str = "sandbox.json";
pub(crate) const NS_DIR: &str = "ns";
pub(crate) const ETC_DIR: &str = "etc";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The CNI container ID of the pod's attachment.
    pub container_id: String,
    pub ifname: String,
    /// The CNI network, set before ADD runs: whenever it is set, teardown runs DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub host_ipc: bool,
    /// The UTS hostname.
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
}

impl SandboxRecord {
    /// Replaced through a rename, so it is always whole.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), SandboxError> {
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(format!(".{RECORD_FILE}.tmp"));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Io {
                path,
                action: "write",
                source,
            }
        };
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| io_err(&path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// `Ok(None)` when there is no record.
    pub fn read(dir: &Path) -> Result<Option<SandboxRecord>, SandboxError> {
        let path = dir.join(RECORD_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SandboxError::Io {
                    path,
                    action: "read",
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SandboxError::Io {
                path,
                action: "decode",
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })
    }
}

/// A sandbox found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSandbox {
    pub uid: String,
    pub dir: PathBuf,
    /// `None` when the record is missing or unreadable: the sandbox can only be
    /// torn down.
    pub record: Option<SandboxRecord>,
    /// Whether its network namespace is still there (a reboot takes them all).
    pub netns_alive: bool,
}

/// Every sandbox under `root` (one directory per pod UID), whole or partial.
/// Directories without any sandbox file are left alone: other parts of the agent
/// keep their own files per pod.
pub fn recover(root: &Path) -> Result<Vec<RecoveredSandbox>, SandboxError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SandboxError::Io {
                path: root.to_path_buf(),
                action: "list",
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let ours = [RECORD_FILE, NS_DIR, ETC_DIR, super::shm::SHM_DIR]
            .iter()
            .any(|f| dir.join(f).exists());
        if !dir.is_dir() || !ours {
            continue;
        }
        let record = match SandboxRecord::read(&dir) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(uid, error = %e, "sandbox record unreadable; it can only be torn down");
                None
            }
        };
        let host_network = record.as_ref().is_some_and(|r| r.host_network);
        let netns_alive =
            !host_network && skiff_cni::netlink::netns::open(&dir.join(NS_DIR).join("net")).is_ok();
        found.push(RecoveredSandbox {
            uid,
            dir,
            record,
            netns_alive,
        });
    }
    found.sort_by(|a, b| a.uid.cmp(&b.uid));
    Ok(found)
}
