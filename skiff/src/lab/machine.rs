//! Every process that belongs to a worker: those in its network namespace (its node,
//! containerd, shims, loggers) and those in its cgroup tree (its pods' containers, which
//! run in namespaces of their own).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::net;
use super::state::Pid;

/// The worker's processes now, never this process.
pub fn processes(netns: &str, cgroup_root: &str) -> Vec<Pid> {
    let mut pids = BTreeSet::new();
    in_netns(&net::netns_path(netns), &mut pids);
    in_cgroup_tree(cgroup_root, &mut pids);
    pids.remove(&std::process::id());
    pids.into_iter().filter_map(Pid::of).collect()
}

/// Processes whose network namespace is the one bound at `ns` (compared by device and
/// inode, as `ip netns identify` does).
fn in_netns(ns: &Path, out: &mut BTreeSet<u32>) {
    let Ok(want) = std::fs::metadata(ns) else {
        return;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            && m.dev() == want.dev()
            && m.ino() == want.ino()
        {
            out.insert(pid);
        }
    }
}

/// Processes in the cgroups under `root`, in every hierarchy (on cgroup v1 a process may
/// be placed in some hierarchies only).
fn in_cgroup_tree(root: &str, out: &mut BTreeSet<u32>) {
    let rel = root.trim_start_matches('/');
    if rel.is_empty() {
        // The whole machine's tree is never a worker's.
        return;
    }
    let Ok(mounts) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut tops: Vec<_> = mounts.flatten().map(|m| m.path().join(rel)).collect();
    // On a cgroup2-only host the tree is directly under /sys/fs/cgroup.
    tops.push(Path::new("/sys/fs/cgroup").join(rel));
    for top in tops {
        collect_procs(&top, out);
    }
}

fn collect_procs(dir: &Path, out: &mut BTreeSet<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&e.path(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cgroup_is_never_a_workers() {
        let mut pids = BTreeSet::new();
        in_cgroup_tree("/", &mut pids);
        assert!(pids.is_empty());
    }

    #[test]
    fn a_missing_namespace_or_tree_has_no_processes() {
        assert!(processes("skiff-no-such-netns", "/skiff-no-such-cgroup").is_empty());
    }
}
