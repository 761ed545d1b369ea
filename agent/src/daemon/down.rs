//! Removing everything an agent made on the machine: its containers (tasks, snapshots,
//! leases), its private containerd and shims, pod sandboxes (CNI DEL, namespaces), volumes,
//! cgroups, mounts, logs and state. What `skiff down` does for each node, and what tests use
//! to leave the machine as they found it.

use std::path::Path;

use super::{AgentConfig, NAMESPACE};
use crate::cgroups::{self, CgroupConfig};
use crate::runtime::Runtime;
use crate::runtime::containerd::{Containerd, ContainerdConfig};
use crate::runtime::supervise::{self, Paths, SuperviseConfig, Supervisor};
use crate::sandbox::cni::{Cni, CniConfig};
use crate::sandbox::files::DnsSettings;
use crate::sandbox::{Sandbox, SandboxParams};
use crate::volumes::VolumeManager;

/// What [`down`] could not remove; empty when the machine is clean.
#[derive(Debug, Default)]
pub struct Leftovers(pub Vec<String>);

impl Leftovers {
    fn note(&mut self, what: impl std::fmt::Display) {
        tracing::warn!(%what, "could not remove");
        self.0.push(what.to_string());
    }
}

async fn remove_containers(rt: &Containerd, left: &mut Leftovers) {
    match rt.list().await {
        Ok(list) => {
            for c in list {
                if let Err(e) = rt.delete(&c.id).await {
                    left.note(format!("container {}: {e}", c.id));
                }
            }
        }
        Err(e) => left.note(format!("listing containers: {e}")),
    }
}

/// Mount points under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| std::path::PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unmount_all(dir: &Path, left: &mut Leftovers) {
    for m in mounts_under(dir) {
        let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: a valid C path; only mounts under the agent's own directory.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            left.note(format!(
                "unmount {}: {}",
                m.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// Removes all the agent made. Pods are not stopped gracefully: this is for taking a node
/// away. Returns what could not be removed.
pub async fn down(cfg: &AgentConfig) -> Leftovers {
    let mut left = Leftovers::default();
    let paths = Paths::new(&cfg.root_dir);

    // Containers first, through containerd, so snapshots and leases go too.
    match &cfg.containerd_socket {
        Some(socket) => match Containerd::connect(ContainerdConfig::new(socket, NAMESPACE)).await {
            Ok(rt) => remove_containers(&rt, &mut left).await,
            Err(e) => left.note(format!("containerd at {}: {e}", socket.display())),
        },
        None if paths.base.exists() => {
            // Starting the supervisor replaces any containerd a dead agent left running.
            match Supervisor::start(SuperviseConfig::new(&cfg.root_dir)).await {
                Ok(s) => {
                    match Containerd::connect(s.client_config(NAMESPACE)).await {
                        Ok(rt) => remove_containers(&rt, &mut left).await,
                        Err(e) => left.note(format!("containerd: {e}")),
                    }
                    if let Err(e) = s.stop().await {
                        left.note(format!("stopping containerd: {e}"));
                    }
                }
                Err(e) => left.note(format!("containerd: {e}")),
            }
            supervise::kill_shims(&paths.socket);
        }
        None => {}
    }

    // Sandboxes: CNI DEL gives addresses and rules back, then the namespaces go.
    let cni = CniConfig::load(&cfg.cni_conf_dir(), &cfg.cni_bin_dirs)
        .ok()
        .map(|c| Cni::new(c, &cfg.root_dir.join("cni/cache")));
    let sandbox = Sandbox::new(
        SandboxParams {
            root: cfg.root_dir.join("pods"),
            ifname: "eth0".into(),
            dns: DnsSettings {
                cluster_dns: Vec::new(),
                cluster_domain: cfg.cluster_domain.clone(),
                node_ips: Vec::new(),
            },
            resolv_conf: None,
            hosts_file: "/etc/hosts".into(),
        },
        cni,
    );
    let mut uids: Vec<String> = std::fs::read_dir(cfg.root_dir.join("pods"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    uids.sort();
    for uid in &uids {
        if let Err(e) = sandbox.teardown(uid).await {
            left.note(format!("sandbox {uid}: {e}"));
        }
    }
    if let Err(e) = sandbox.gc_network().await {
        left.note(format!("CNI garbage collection: {e}"));
    }
    let volumes = VolumeManager::new(&cfg.root_dir, "/proc");
    for uid in &uids {
        if let Err(e) = volumes.teardown(uid).await {
            left.note(format!("volumes of {uid}: {e}"));
        }
        let logs_prefix = format!("_{uid}");
        if let Ok(d) = std::fs::read_dir(&cfg.pod_logs_dir) {
            for e in d.flatten() {
                if e.file_name().to_string_lossy().ends_with(&logs_prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    match cgroups::open(&CgroupConfig::new(&cfg.cgroup_mount_root, &cfg.cgroup_root)) {
        Ok(m) => {
            for uid in m.list_pods().unwrap_or_default() {
                if let Err(e) = m.remove_pod(&uid).await {
                    left.note(format!("cgroup of {uid}: {e}"));
                }
            }
            if let Err(e) = m.remove_tree() {
                left.note(format!("cgroup tree {}: {e}", cfg.cgroup_root));
            }
        }
        Err(e) => left.note(format!("cgroups: {e}")),
    }

    // The pod network: the VXLAN device and the agent's routes (in this network namespace).
    if cfg.pod_network != crate::network::Mode::None {
        for problem in crate::network::down() {
            left.note(problem);
        }
    }

    unmount_all(&cfg.root_dir, &mut left);
    if let Err(e) = std::fs::remove_dir_all(&cfg.root_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        left.note(format!("remove {}: {e}", cfg.root_dir.display()));
    }
    left
}
