//! cgroup v2: one unified hierarchy; controllers reach a cgroup only when every
//! ancestor lists them in `cgroup.subtree_control`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::backend::Backend;
use super::error::CgroupError;
use super::fs;
use super::resources::{CgroupResources, NoSwap, shares_to_weight};
use super::stats::{CgroupStats, working_set};

/// Controllers the pod tree delegates, the first two being indispensable.
const WANTED: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug)]
pub(crate) struct V2 {
    mount: PathBuf,
    /// The wanted controllers this host offers.
    controllers: Vec<&'static str>,
}

impl V2 {
    /// Uses the cgroup2 filesystem mounted at `mount`.
    pub(crate) fn open(mount: &Path) -> Result<V2, CgroupError> {
        let available = fs::read(&mount.join("cgroup.controllers"))?;
        let available: BTreeSet<&str> = available.split_whitespace().collect();
        let controllers: Vec<&'static str> = WANTED
            .into_iter()
            .filter(|c| available.contains(c))
            .collect();
        for required in ["cpu", "memory"] {
            if !controllers.contains(&required) {
                return Err(CgroupError::MissingController {
                    controller: required.to_string(),
                    mount_root: mount.to_path_buf(),
                });
            }
        }
        Ok(V2 {
            mount: mount.to_path_buf(),
            controllers,
        })
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.contains(&controller)
    }

    /// Enables the controllers for `dir`'s children, writing only the missing ones.
    fn delegate(&self, dir: &Path) -> Result<(), CgroupError> {
        let file = dir.join("cgroup.subtree_control");
        let current = fs::read_optional(&file)?.unwrap_or_default();
        let enabled: BTreeSet<&str> = current
            .split_whitespace()
            .map(|c| c.trim_start_matches('+'))
            .collect();
        let missing: Vec<String> = self
            .controllers
            .iter()
            .filter(|c| !enabled.contains(*c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        fs::write(&file, &missing.join(" "))
    }
}

impl Backend for V2 {
    fn create(&self, path: &str) -> Result<(), CgroupError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut dir = self.mount.clone();
        for part in parts {
            // The cgroup itself is left without delegation: it may hold processes,
            // and v2 forbids processes beside enabled controllers. runc delegates
            // from a pod cgroup when it puts containers below it.
            self.delegate(&dir)?;
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::io("mkdir", &dir, e)),
            }
        }
        Ok(())
    }

    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError> {
        let dir = fs::join(&self.mount, path);
        fs::write(
            &dir.join("cpu.weight"),
            &shares_to_weight(res.cpu_shares).to_string(),
        )?;
        let quota = res
            .cpu_quota_us
            .map_or_else(|| "max".to_string(), |q| q.to_string());
        fs::write(
            &dir.join("cpu.max"),
            &format!("{quota} {}", res.cpu_period_us),
        )?;
        let memory = res
            .memory_limit_bytes
            .map_or_else(|| "max".to_string(), |m| m.to_string());
        fs::write(&dir.join("memory.max"), &memory)?;
        if self.has("pids") {
            let pids = res
                .pids_limit
                .map_or_else(|| "max".to_string(), |p| p.to_string());
            fs::write(&dir.join("pids.max"), &pids)?;
        } else if res.pids_limit.is_some() {
            return Err(CgroupError::MissingController {
                controller: "pids".to_string(),
                mount_root: self.mount.clone(),
            });
        }
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        fs::join(&self.mount, path).is_dir()
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CgroupError> {
        fs::subdirs(&fs::join(&self.mount, path))
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        fs::remove_tree(&fs::join(&self.mount, path))
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let dir = fs::join(&self.mount, path);
        let cpu_file = dir.join("cpu.stat");
        let cpu = fs::read_keyed(&cpu_file)?;
        let usage_usec = cpu
            .get("usage_usec")
            .copied()
            .ok_or_else(|| fs::parse_error(&cpu_file, "usage_usec", ""))?;
        let usage = fs::read_u64(&dir.join("memory.current"))?;
        let stat = fs::read_keyed(&dir.join("memory.stat"))?;
        let pids_file = dir.join("pids.current");
        let pids = fs::read_optional(&pids_file)?
            .map(|s| fs::parse_u64(&pids_file, &s))
            .transpose()?;
        Ok(CgroupStats {
            cpu_usage_ns: usage_usec.saturating_mul(1000),
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set(usage, stat.get("inactive_file").copied()),
            pids,
        })
    }

    fn oom_kills(&self, path: &str) -> Result<Option<u64>, CgroupError> {
        let events = fs::read_keyed(&fs::join(&self.mount, path).join("memory.events"))?;
        Ok(events.get("oom_kill").copied())
    }

    fn no_swap(&self, path: &str) -> NoSwap {
        // The root cgroup has no memory.swap.max, so look where pods live.
        if fs::join(&self.mount, path).join("memory.swap.max").exists() {
            NoSwap::SwapMaxZero
        } else {
            NoSwap::Unavailable
        }
    }
}
