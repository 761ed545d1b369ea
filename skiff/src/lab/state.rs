//! What a lab is made of and what runs in it, saved as `WORKDIR/lab.json` before anything
//! is created, so `skiff lab down` can remove a lab whose `up` failed half-way.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

const FILE: &str = "lab.json";

/// A process the lab started. The start time (in clock ticks since boot, from
/// `/proc/PID/stat`) tells it from a later process that reused the PID.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pid {
    pub pid: u32,
    pub start: u64,
}

impl Pid {
    /// The process `pid` as it is now; `None` when there is none.
    pub fn of(pid: u32) -> Option<Pid> {
        start_time(pid).map(|start| Pid { pid, start })
    }

    /// Whether this very process still exists (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start) && !zombie(self.pid)
    }

    /// Sends `sig` if this is still the process that was recorded.
    pub fn signal(&self, sig: i32) -> bool {
        if !self.alive() {
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill(2) on a PID checked above to be the recorded process.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process is gone (or after a
    /// last short wait following the SIGKILL).
    pub async fn stop(&self, grace: Duration) {
        if self.signal(libc::SIGTERM) {
            let deadline = Instant::now() + grace;
            while self.alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.kill().await;
    }

    /// SIGKILL and a short wait for the process to go.
    pub async fn kill(&self) {
        if self.signal(libc::SIGKILL) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Field 22 of `/proc/PID/stat` (after the parenthesised command name, which may hold
/// spaces).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].to_string();
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

/// One worker: its namespace, link, address and the `skiff join` process in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Worker {
    pub name: String,
    pub netns: String,
    /// The host end of its veth (on the lab bridge).
    pub host_link: String,
    pub address: String,
    pub cgroup_root: String,
    pub dir: PathBuf,
    pub process: Option<Pid>,
}

impl Worker {
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    /// The worker's private containerd (its PID file, written by the agent's supervisor).
    pub fn containerd_pid_file(&self) -> PathBuf {
        self.dir.join("agent/containerd/containerd.pid")
    }

    pub fn containerd_config(&self) -> PathBuf {
        self.dir.join("agent/containerd/config.toml")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }
}

/// How workers join: what `skiff lab up` got from its control plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    pub server: String,
    pub token: String,
    pub ca_cert_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub workdir: PathBuf,
    pub bridge: String,
    /// The host's address on the bridge, with its prefix length (`172.31.0.1/24`).
    pub host_address: String,
    pub netns_prefix: String,
    pub port: u16,
    pub controlplane: Option<Pid>,
    /// The control plane's command line after `skiff`, so it can be started again as it
    /// was.
    #[serde(default)]
    pub controlplane_args: Vec<String>,
    pub join: Option<Join>,
    pub workers: Vec<Worker>,
    /// What every worker's `skiff join` is given (`--pod-network`, `--max-pods`).
    #[serde(default)]
    pub node_flags: Vec<String>,
}

impl State {
    pub fn path(workdir: &Path) -> PathBuf {
        workdir.join(FILE)
    }

    /// The saved state; `None` when there is no lab in `workdir`.
    pub fn load(workdir: &Path) -> anyhow::Result<Option<State>> {
        let path = Self::path(workdir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written whole and renamed, so a crash never leaves half a file.
    pub fn save(&self) -> anyhow::Result<()> {
        let path = Self::path(&self.workdir);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).context("encoding the lab state")?;
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn worker(&self, name: &str) -> anyhow::Result<&Worker> {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .with_context(|| {
                let names: Vec<&str> = self.workers.iter().map(|w| w.name.as_str()).collect();
                format!(
                    "no worker {name:?} in this lab (it has {})",
                    names.join(", ")
                )
            })
    }

    pub fn worker_mut(&mut self, name: &str) -> anyhow::Result<&mut Worker> {
        let known: Vec<String> = self.workers.iter().map(|w| w.name.clone()).collect();
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .with_context(|| {
                format!(
                    "no worker {name:?} in this lab (it has {})",
                    known.join(", ")
                )
            })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.workdir.join("admin.kubeconfig")
    }

    pub fn controlplane_dir(&self) -> PathBuf {
        self.workdir.join("controlplane")
    }

    /// The kubeconfig the control plane writes in its own directory.
    pub fn controlplane_kubeconfig(&self) -> PathBuf {
        self.controlplane_dir().join("admin.kubeconfig")
    }

    pub fn controlplane_log(&self) -> PathBuf {
        self.controlplane_dir().join("controlplane.log")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_pid_is_recognised_by_its_start_time() {
        let me = Pid::of(std::process::id()).unwrap();
        assert!(me.alive());
        let other = Pid {
            start: me.start + 1,
            ..me
        };
        assert!(!other.alive());
        assert!(!other.signal(0));
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(State::load(dir.path()).unwrap().is_none());
        let s = State {
            workdir: dir.path().to_path_buf(),
            bridge: "skiff-lab0".into(),
            host_address: "172.31.0.1/24".into(),
            netns_prefix: "skiff-lab-".into(),
            port: 6443,
            controlplane: Some(Pid { pid: 1, start: 2 }),
            controlplane_args: vec!["lab".into(), "controlplane".into()],
            join: None,
            workers: vec![],
            node_flags: vec!["--max-pods=300".into()],
        };
        s.save().unwrap();
        let back = State::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.bridge, "skiff-lab0");
        assert_eq!(back.controlplane, Some(Pid { pid: 1, start: 2 }));
        assert_eq!(back.controlplane_args, ["lab", "controlplane"]);
        assert_eq!(back.node_flags, ["--max-pods=300"]);
        assert!(back.worker("w1").is_err());
    }
}
