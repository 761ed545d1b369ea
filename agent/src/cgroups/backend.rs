use std::fmt::Debug;

use super::error::CgroupError;
use super::resources::{CgroupResources, NoSwap};
use super::stats::CgroupStats;

/// What differs between cgroup v1 and v2: how a cgroup path maps to directories and
/// files. Paths are normalised cgroup paths (`/kubepods/pod1`); the pod logic on top
/// is shared by both versions.
pub(crate) trait Backend: Send + Sync + Debug + 'static {
    /// Creates the cgroup and its missing ancestors, ready to hold processes or
    /// child cgroups (v1: in every hierarchy; v2: with controllers delegated to it).
    fn create(&self, path: &str) -> Result<(), CgroupError>;

    /// Writes every value of `res` to the cgroup.
    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError>;

    /// Whether the cgroup exists (v1: in any hierarchy).
    fn exists(&self, path: &str) -> bool;

    /// Names of the cgroup's child cgroups (v1: in any hierarchy).
    fn children(&self, path: &str) -> Result<Vec<String>, CgroupError>;

    /// Removes the cgroup and its child cgroups wherever they exist; absent is fine.
    /// Fails with a busy error while processes remain.
    fn remove(&self, path: &str) -> Result<(), CgroupError>;

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError>;

    /// OOM kills counted for the cgroup, `None` when the kernel does not count them.
    fn oom_kills(&self, path: &str) -> Result<Option<u64>, CgroupError>;

    /// How containers below `path` get swap disabled.
    fn no_swap(&self, path: &str) -> NoSwap;
}
