/// Usage of one cgroup and everything below it, in kubelet's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Total cpu time consumed, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged, page cache included.
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file pages: what kubelet reports and evicts on
    /// (v1: usage − total_inactive_file, v2: current − inactive_file, never below 0).
    pub memory_working_set_bytes: u64,
    /// Tasks in the cgroup, when the pids controller is there.
    pub pids: Option<u64>,
}

/// Kubelet's working set: usage less inactive file pages, floored at zero.
pub(crate) fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}
