//! The node's own figures, as cAdvisor reads them for kubelet: the root cgroup's CPU time
//! and working set (usage less inactive file pages). cgroup v2 has no memory files in its
//! root, so there the kernel's totals stand in (`/proc/meminfo`), as they do for cAdvisor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::StatsError;
use crate::cgroups::{CgroupManager, CgroupStats, CgroupVersion};

/// Where the host's own files are (parameters, so tests can use their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFiles {
    /// Normally `/proc`.
    pub proc_dir: PathBuf,
    /// Normally `/sys/fs/cgroup`.
    pub cgroup_mount_root: PathBuf,
}

impl Default for HostFiles {
    fn default() -> Self {
        HostFiles {
            proc_dir: "/proc".into(),
            cgroup_mount_root: "/sys/fs/cgroup".into(),
        }
    }
}

/// The memory figures of `/proc/meminfo` the node's numbers need, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    pub inactive_file: u64,
}

/// Reads `/proc/meminfo` text (`Key:   123 kB` lines).
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let fields: HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (key, rest) = l.split_once(':')?;
            let mut it = rest.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            let scale = if it.next() == Some("kB") { 1024 } else { 1 };
            Some((key.trim(), n.saturating_mul(scale)))
        })
        .collect();
    Some(MemInfo {
        total: *fields.get("MemTotal")?,
        free: *fields.get("MemFree")?,
        inactive_file: fields.get("Inactive(file)").copied().unwrap_or(0),
    })
}

/// The boot time in `/proc/stat` (`btime <seconds since the epoch>`).
pub fn parse_boot_time(proc_stat: &str) -> Option<SystemTime> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// The CPU time of every CPU, from the `cpu` line of `/proc/stat` (in USER_HZ ticks, which
/// Linux fixes at 100 per second for this file), without idle and iowait.
pub fn parse_proc_stat_cpu_ns(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| ticks.get(*i))
        .sum();
    Some(busy.saturating_mul(10_000_000))
}

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The whole node's usage, its memory capacity and its boot time.
pub fn read_node(
    cgroups: &dyn CgroupManager,
    host: &HostFiles,
) -> Result<(CgroupStats, Option<MemInfo>, Option<SystemTime>), StatsError> {
    let meminfo_path = host.proc_dir.join("meminfo");
    let meminfo = read(&meminfo_path).ok().and_then(|t| parse_meminfo(&t));
    let proc_stat = read(&host.proc_dir.join("stat")).ok();
    let boot = proc_stat.as_deref().and_then(parse_boot_time);
    let stats = match cgroups.version() {
        CgroupVersion::V1 => cgroups.container_stats("/")?,
        CgroupVersion::V2 => {
            let cpu_file = host.cgroup_mount_root.join("cpu.stat");
            let from_cgroup = read(&cpu_file).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us.saturating_mul(1000))
            });
            let cpu_usage_ns = from_cgroup
                .or_else(|| proc_stat.as_deref().and_then(parse_proc_stat_cpu_ns))
                .ok_or(StatsError::Missing {
                    path: cpu_file,
                    what: "usage_usec",
                })?;
            let mem = meminfo.ok_or(StatsError::Missing {
                path: meminfo_path,
                what: "MemTotal and MemFree",
            })?;
            let usage = mem.total.saturating_sub(mem.free);
            CgroupStats {
                cpu_usage_ns,
                memory_usage_bytes: usage,
                memory_working_set_bytes: usage.saturating_sub(mem.inactive_file),
                pids: None,
            }
        }
    };
    Ok((stats, meminfo, boot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:       16303092 kB\nMemFree:         1893408 kB\nMemAvailable:   9000000 kB\nInactive(file):  4000000 kB\nHugePages_Total:       0\n",
        )
        .unwrap();
        assert_eq!(m.total, 16_303_092 * 1024);
        assert_eq!(m.free, 1_893_408 * 1024);
        assert_eq!(m.inactive_file, 4_000_000 * 1024);
        assert!(parse_meminfo("MemFree: 1 kB\n").is_none());
    }

    #[test]
    fn proc_stat() {
        let text = "cpu  100 5 50 9000 7 1 2 3 0 0\ncpu0 1 2 3 4\nbtime 1733400000\n";
        assert_eq!(
            parse_boot_time(text),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_733_400_000))
        );
        // user + nice + system + irq + softirq + steal = 161 ticks of 10 ms.
        assert_eq!(parse_proc_stat_cpu_ns(text), Some(1_610_000_000));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }
}
