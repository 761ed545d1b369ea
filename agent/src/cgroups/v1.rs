//! cgroup v1: one hierarchy per controller group (`cpu`, `cpuacct`, `memory`, ...,
//! or combined like `cpu,cpuacct`), each mounted under the cgroup mount root; a
//! cgroup path names the same relative directory in every one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::backend::Backend;
use super::error::CgroupError;
use super::fs;
use super::resources::{CgroupResources, NoSwap};
use super::stats::{CgroupStats, working_set};

/// Controllers the pod tree cannot do without.
const REQUIRED: [&str; 3] = ["cpu", "cpuacct", "memory"];

#[derive(Debug)]
pub(crate) struct V1 {
    mount_root: PathBuf,
    hierarchies: Vec<Hierarchy>,
    /// The cgroup2 mount of a hybrid host. Nothing is configured there, but runc
    /// places containers in it too, so removal and listing look there as well.
    unified: Option<PathBuf>,
}

#[derive(Debug)]
struct Hierarchy {
    mount: PathBuf,
    controllers: Vec<String>,
}

impl V1 {
    /// Finds the v1 hierarchies mounted in the directories under `mount_root`,
    /// named after their controllers as every distribution mounts them.
    pub(crate) fn open(mount_root: &Path) -> Result<V1, CgroupError> {
        let mut names = fs::subdirs(mount_root)?;
        names.sort();
        let mut seen = BTreeSet::new();
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for name in names {
            let dir = mount_root.join(&name);
            // Symlinks such as cpu -> cpu,cpuacct lead to a hierarchy seen already.
            let dir =
                std::fs::canonicalize(&dir).map_err(|e| CgroupError::io("resolve", &dir, e))?;
            if !seen.insert(dir.clone()) {
                continue;
            }
            if dir.join("cgroup.controllers").exists() {
                unified = Some(dir);
                continue;
            }
            if !dir.join("cgroup.procs").exists() {
                continue;
            }
            let controllers = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect();
            hierarchies.push(Hierarchy {
                mount: dir,
                controllers,
            });
        }
        if hierarchies.is_empty() {
            return Err(CgroupError::NoCgroupfs {
                mount_root: mount_root.to_path_buf(),
            });
        }
        let v1 = V1 {
            mount_root: mount_root.to_path_buf(),
            hierarchies,
            unified,
        };
        for controller in REQUIRED {
            v1.mount(controller)?;
        }
        Ok(v1)
    }

    fn find(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount.as_path())
    }

    fn mount(&self, controller: &str) -> Result<&Path, CgroupError> {
        self.find(controller)
            .ok_or_else(|| CgroupError::MissingController {
                controller: controller.to_string(),
                mount_root: self.mount_root.clone(),
            })
    }

    fn dir(&self, controller: &str, path: &str) -> Result<PathBuf, CgroupError> {
        Ok(fs::join(self.mount(controller)?, path))
    }

    /// Every mount a cgroup may have a directory in.
    fn all_mounts(&self) -> impl Iterator<Item = &Path> {
        self.hierarchies
            .iter()
            .map(|h| h.mount.as_path())
            .chain(self.unified.as_deref())
    }

    /// New cpuset cgroups start with no cpus and no memory nodes, and no process can
    /// join them like that; give every empty level its parent's.
    fn fill_cpuset(mount: &Path, path: &str) -> Result<(), CgroupError> {
        let mut parent = mount.to_path_buf();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let dir = parent.join(part);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = fs::read(&dir.join(file))?;
                if own.trim().is_empty() {
                    let inherited = fs::read(&parent.join(file))?;
                    fs::write(&dir.join(file), inherited.trim())?;
                }
            }
            parent = dir;
        }
        Ok(())
    }

    fn apply_cpu(dir: &Path, res: &CgroupResources) -> Result<(), CgroupError> {
        fs::write(&dir.join("cpu.shares"), &res.cpu_shares.to_string())?;
        let period = dir.join("cpu.cfs_period_us");
        let quota = dir.join("cpu.cfs_quota_us");
        let period_value = res.cpu_period_us.to_string();
        let quota_value = res.cpu_quota_us.unwrap_or(-1).to_string();
        // The kernel checks quota against the current period, so the order that
        // passes depends on which way both move; try the other if the first fails.
        let first =
            fs::write(&period, &period_value).and_then(|()| fs::write(&quota, &quota_value));
        match first {
            Ok(()) => Ok(()),
            Err(_) => {
                fs::write(&quota, &quota_value)?;
                fs::write(&period, &period_value)
            }
        }
    }
}

impl Backend for V1 {
    fn create(&self, path: &str) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            fs::mkdir_all(&fs::join(&h.mount, path))?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                Self::fill_cpuset(&h.mount, path)?;
            }
        }
        Ok(())
    }

    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError> {
        Self::apply_cpu(&self.dir("cpu", path)?, res)?;
        let memory = self.dir("memory", path)?;
        let limit = res.memory_limit_bytes.unwrap_or(-1).to_string();
        fs::write(&memory.join("memory.limit_in_bytes"), &limit)?;
        match (self.find("pids"), res.pids_limit) {
            (Some(mount), limit) => {
                let value = limit.map_or_else(|| "max".to_string(), |l| l.to_string());
                fs::write(&fs::join(mount, path).join("pids.max"), &value)?;
            }
            (None, Some(_)) => {
                self.mount("pids")?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        self.all_mounts().any(|m| fs::join(m, path).is_dir())
    }

    fn children(&self, path: &str) -> Result<Vec<String>, CgroupError> {
        let mut names = BTreeSet::new();
        for mount in self.all_mounts() {
            names.extend(fs::subdirs(&fs::join(mount, path))?);
        }
        Ok(names.into_iter().collect())
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        let mut busy = None;
        let mut failed = None;
        for mount in self.all_mounts() {
            match fs::remove_tree(&fs::join(mount, path)) {
                Ok(()) => {}
                Err(e) if e.is_busy() => {
                    busy.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed.or(busy) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let cpu_usage_ns = fs::read_u64(&self.dir("cpuacct", path)?.join("cpuacct.usage"))?;
        let memory = self.dir("memory", path)?;
        let usage = fs::read_u64(&memory.join("memory.usage_in_bytes"))?;
        let stat = fs::read_keyed(&memory.join("memory.stat"))?;
        let pids = match self.find("pids") {
            Some(mount) => {
                let file = fs::join(mount, path).join("pids.current");
                fs::read_optional(&file)?
                    .map(|s| fs::parse_u64(&file, &s))
                    .transpose()?
            }
            None => None,
        };
        Ok(CgroupStats {
            cpu_usage_ns,
            memory_usage_bytes: usage,
            memory_working_set_bytes: working_set(usage, stat.get("total_inactive_file").copied()),
            pids,
        })
    }

    fn oom_kills(&self, path: &str) -> Result<Option<u64>, CgroupError> {
        let control = fs::read_keyed(&self.dir("memory", path)?.join("memory.oom_control"))?;
        Ok(control.get("oom_kill").copied())
    }

    fn no_swap(&self, _path: &str) -> NoSwap {
        let memsw = self
            .find("memory")
            .is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists());
        if memsw {
            NoSwap::MemswEqualsLimit
        } else {
            NoSwap::Unavailable
        }
    }
}
