//! Host-side helpers the kernel suites share: unique names, free ports, and removing the
//! cgroups and mounts a test made, even after a failure.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// `tag-<pid>-<n>`: unique across the tests of this process and of concurrent ones.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command that must succeed; returns its stdout.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every cgroup directory named `parent` (one per hierarchy).
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.path().canonicalize().ok())
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    roots.dedup();
    roots
        .into_iter()
        .map(|r| r.join(parent.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

pub fn subdirs_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(subdirs_deepest_first(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// PIDs in the cgroup `path` (in any hierarchy that has it).
pub fn cgroup_pids(path: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(path)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in the cgroups under `parent`.
pub fn kill_cgroup_procs(parent: &str) {
    for root in cgroup_dirs(parent) {
        for dir in subdirs_deepest_first(&root) {
            for file in ["cgroup.procs", "tasks"] {
                if let Ok(s) = std::fs::read_to_string(dir.join(file)) {
                    for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: kill(2) on processes in the test's own cgroups.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
    }
}

/// Kills what runs in the cgroups under `parent` and removes them, in every hierarchy.
pub fn remove_cgroups(parent: &str) {
    for _ in 0..100 {
        kill_cgroup_procs(parent);
        let mut left = false;
        for root in cgroup_dirs(parent) {
            for dir in subdirs_deepest_first(&root) {
                if std::fs::remove_dir(&dir).is_err() && dir.exists() {
                    left = true;
                }
            }
        }
        if !left {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("cgroups under {parent} could not be removed");
}

/// Unmounts everything mounted under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: a valid path; only mounts under the test's own directory.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
