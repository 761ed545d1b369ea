//! What the node offers pods: capacity read from the kernel, and the allocatable
//! share left after reservations, as kubelet reports and enforces it.

use std::path::Path;

use super::error::CgroupError;
use super::fs;
use super::resources::{CgroupResources, milli_cpu_to_shares};

/// The machine's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// Logical cpus.
    pub cpus: u32,
    /// `MemTotal` from meminfo, in bytes.
    pub memory_bytes: u64,
    /// `kernel.pid_max`: how many processes the node can hold.
    pub pids: u64,
}

/// What the node keeps back from pods (kubelet's system-reserved plus kube-reserved),
/// and the hard eviction threshold for memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservations {
    /// Reserved cpu, in millicores.
    pub cpu_milli: u64,
    /// Reserved memory, in bytes.
    pub memory_bytes: u64,
    /// Reserved process ids.
    pub pids: u64,
    /// `memory.available` hard eviction threshold, in bytes.
    pub eviction_memory_bytes: u64,
}

/// What the scheduler may place on the node (`status.allocatable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    /// Allocatable cpu, in millicores.
    pub cpu_milli: u64,
    /// Allocatable memory, in bytes.
    pub memory_bytes: u64,
    /// Allocatable process ids.
    pub pids: u64,
}

/// Reads the node's capacity from a proc filesystem (normally `/proc`): cpus from
/// `cpuinfo`, memory from `meminfo`, process ids from `sys/kernel/pid_max`.
pub fn node_capacity(proc_root: &Path) -> Result<NodeCapacity, CgroupError> {
    let cpuinfo_path = proc_root.join("cpuinfo");
    let cpuinfo = fs::read(&cpuinfo_path)?;
    let cpus = count_cpus(&cpuinfo);
    if cpus == 0 {
        return Err(fs::parse_error(
            &cpuinfo_path,
            "processor entries",
            &cpuinfo,
        ));
    }
    let meminfo_path = proc_root.join("meminfo");
    let meminfo = fs::read(&meminfo_path)?;
    let memory_bytes =
        mem_total(&meminfo).ok_or_else(|| fs::parse_error(&meminfo_path, "MemTotal", &meminfo))?;
    let pids = fs::read_u64(&proc_root.join("sys/kernel/pid_max"))?;
    Ok(NodeCapacity {
        cpus,
        memory_bytes,
        pids,
    })
}

fn count_cpus(cpuinfo: &str) -> u32 {
    let n = cpuinfo
        .lines()
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|key| key.trim() == "processor")
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut it = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

impl NodeCapacity {
    /// Capacity in millicores.
    pub fn cpu_milli(&self) -> u64 {
        u64::from(self.cpus) * 1000
    }

    /// Kubelet's allocatable: capacity less reservations, and for memory less the
    /// hard eviction threshold too; never below zero.
    pub fn allocatable(&self, reserved: &Reservations) -> NodeAllocatable {
        NodeAllocatable {
            cpu_milli: self.cpu_milli().saturating_sub(reserved.cpu_milli),
            memory_bytes: self
                .memory_bytes
                .saturating_sub(reserved.memory_bytes)
                .saturating_sub(reserved.eviction_memory_bytes),
            pids: self.pids.saturating_sub(reserved.pids),
        }
    }

    /// The values kubelet enforces on the pod tree root (enforce-node-allocatable
    /// "pods"): shares for the cpu left after reservations, and memory and pid
    /// limits at capacity less reservations. The eviction threshold is not
    /// subtracted, so pods are evicted before the kernel OOM-kills them.
    pub fn pod_tree_resources(&self, reserved: &Reservations) -> CgroupResources {
        let cpu = self.cpu_milli().saturating_sub(reserved.cpu_milli);
        let memory = self.memory_bytes.saturating_sub(reserved.memory_bytes);
        let pids = self.pids.saturating_sub(reserved.pids);
        CgroupResources {
            cpu_shares: milli_cpu_to_shares(i64::try_from(cpu).unwrap_or(i64::MAX)),
            memory_limit_bytes: Some(i64::try_from(memory).unwrap_or(i64::MAX)),
            pids_limit: Some(i64::try_from(pids).unwrap_or(i64::MAX)),
            ..CgroupResources::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_proc() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("cpuinfo"),
            "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n\nprocessor\t: 2\n",
        )
        .unwrap();
        std::fs::write(
            p.join("meminfo"),
            "MemTotal:        2048 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        std::fs::create_dir_all(p.join("sys/kernel")).unwrap();
        std::fs::write(p.join("sys/kernel/pid_max"), "4194304\n").unwrap();
        let c = node_capacity(p).unwrap();
        assert_eq!(
            c,
            NodeCapacity {
                cpus: 3,
                memory_bytes: 2048 * 1024,
                pids: 4_194_304
            }
        );
    }

    #[test]
    fn refuses_proc_files_without_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("cpuinfo"), "model name: x\n").unwrap();
        assert!(matches!(node_capacity(p), Err(CgroupError::Parse { .. })));
        std::fs::write(p.join("cpuinfo"), "processor: 0\n").unwrap();
        std::fs::write(p.join("meminfo"), "MemFree: 1 kB\n").unwrap();
        assert!(matches!(node_capacity(p), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn allocatable_subtracts_reservations() {
        let c = NodeCapacity {
            cpus: 4,
            memory_bytes: 8 << 30,
            pids: 32768,
        };
        let r = Reservations {
            cpu_milli: 500,
            memory_bytes: 1 << 30,
            pids: 1000,
            eviction_memory_bytes: 100 << 20,
        };
        let a = c.allocatable(&r);
        assert_eq!(a.cpu_milli, 3500);
        assert_eq!(a.memory_bytes, (7 << 30) - (100 << 20));
        assert_eq!(a.pids, 31768);
        let tree = c.pod_tree_resources(&r);
        assert_eq!(tree.cpu_shares, milli_cpu_to_shares(3500));
        assert_eq!(tree.memory_limit_bytes, Some(7 << 30));
        assert_eq!(tree.pids_limit, Some(31768));
        assert_eq!(tree.cpu_quota_us, None);
        let everything = Reservations {
            cpu_milli: 10_000,
            memory_bytes: u64::MAX,
            ..Default::default()
        };
        assert_eq!(c.allocatable(&everything).cpu_milli, 0);
        assert_eq!(c.allocatable(&everything).memory_bytes, 0);
    }
}
