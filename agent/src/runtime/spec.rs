//! What a container should be ([`ContainerSpec`]) and the OCI runtime spec it becomes
//! ([`generate`]): a pure function of the spec, the image's configuration and the resolved
//! user, with containerd's CRI defaults (capabilities, mounts, masked paths, devices).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::labels::ContainerMeta;
use super::oci;
use super::types::ImageConfig;
use super::user::{ResolvedUser, UserSpec};
use super::{Error, Result};

/// The PATH a container gets when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities of an unprivileged container, as containerd grants them.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines, in number order: what a privileged container gets.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths an unprivileged container cannot read (containerd's defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths an unprivileged container can read but not write (containerd's defaults).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How a container gets one of its namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// The host's (the runtime's) namespace.
    Host,
    /// Joins the namespace bind-mounted at this path (the pod sandbox's).
    Path(PathBuf),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub network: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub pid: NamespaceMode,
}

/// Mount propagation of a bind mount, as Kubernetes names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
    pub propagation: Propagation,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapabilityChanges {
    /// Names with or without the `CAP_` prefix, any case; `ALL` means every capability.
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// Per-container cgroup limits (already converted from Kubernetes quantities).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    /// Memory plus swap; equal to `memory_limit` to forbid swap on cgroup v1.
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
    /// cgroup v2 files, e.g. `memory.swap.max`.
    pub unified: BTreeMap<String, String>,
}

/// Where the container's stdout and stderr go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// Discarded.
    #[default]
    Null,
    /// Both streams appended to this file by the shim (it survives runtime restarts).
    File(PathBuf),
    /// A logging binary the shim starts with the streams as fds 3 and 4 (containerd's
    /// `binary://` scheme); `args` become its query string.
    Binary {
        path: PathBuf,
        args: Vec<(String, String)>,
    },
}

impl LogTarget {
    /// The file the container's output ends up in: the file itself, or the `path`
    /// argument of a logging binary.
    pub fn log_file(&self) -> Option<PathBuf> {
        match self {
            LogTarget::Null => None,
            LogTarget::File(p) => Some(p.clone()),
            LogTarget::Binary { args, .. } => args
                .iter()
                .find(|(k, _)| k == "path")
                .map(|(_, v)| PathBuf::from(v)),
        }
    }
}

/// Everything the pod logic decides about one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The runtime's id for the container, unique in its namespace.
    pub id: String,
    pub image: String,
    /// Becomes labels (see [`super::labels`]), so the container can be adopted later.
    pub meta: Option<ContainerMeta>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Kubernetes `command`: replaces the image's entrypoint.
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image's cmd.
    pub args: Vec<String>,
    /// Merged over the image's environment, later entries winning.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: UserSpec,
    /// Set in the container's UTS namespace (and as HOSTNAME); None leaves it as it is.
    pub hostname: Option<String>,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// Kubernetes `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    pub capabilities: CapabilityChanges,
    pub mounts: Vec<BindMount>,
    pub namespaces: Namespaces,
    pub resources: Resources,
    /// cgroupfs-style path, e.g. `/kubepods/burstable/pod<uid>/<container id>`.
    pub cgroups_path: Option<String>,
    pub oom_score_adj: Option<i32>,
    /// RLIMIT_NOFILE, soft and hard; None inherits the runtime's (raising a hard limit
    /// needs CAP_SYS_RESOURCE, which not every runtime has).
    pub nofile_limit: Option<u64>,
    pub sysctls: BTreeMap<String, String>,
    /// Device nodes to create (and allow) in the container.
    pub devices: Vec<oci::Device>,
    pub log: LogTarget,
    /// Kubernetes `stdin`: the process gets a standard input that attach sessions write to.
    pub stdin: bool,
    /// Kubernetes `stdinOnce`: the first attach session that ends closes that input.
    pub stdin_once: bool,
    /// Kubernetes `tty`: the process runs on a terminal.
    pub tty: bool,
}

impl ContainerSpec {
    pub fn new(id: impl Into<String>, image: impl Into<String>) -> Self {
        ContainerSpec {
            id: id.into(),
            image: image.into(),
            ..Default::default()
        }
    }

    /// The labels the container record carries.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        if let Some(meta) = &self.meta {
            labels.extend(meta.to_labels());
        }
        labels
    }

    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidSpec {
            id: self.id.clone(),
            reason: reason.into(),
        }
    }
}

/// The process's argv, by Kubernetes' rules: `command` replaces the entrypoint (and drops the
/// image's cmd), `args` replaces the cmd.
pub fn process_args(spec: &ContainerSpec, image: &ImageConfig) -> Result<Vec<String>> {
    let args: Vec<String> = if !spec.command.is_empty() {
        spec.command.iter().chain(&spec.args).cloned().collect()
    } else if !spec.args.is_empty() {
        image.entrypoint.iter().chain(&spec.args).cloned().collect()
    } else {
        image.entrypoint.iter().chain(&image.cmd).cloned().collect()
    };
    if args.is_empty() {
        return Err(spec.invalid(format!(
            "no command: neither the container nor image {} sets one",
            spec.image
        )));
    }
    Ok(args)
}

/// The process's environment: the image's, then the container's (replacing same-named
/// entries in place), then PATH and HOSTNAME when still unset.
pub fn process_env(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(name, _)| name == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for entry in &image.env {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(k, v);
    }
    for (k, v) in &spec.env {
        set(k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if let Some(h) = &spec.hostname
        && !env.iter().any(|(k, _)| k == "HOSTNAME")
    {
        env.push(("HOSTNAME".into(), h.clone()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn cap_name(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capabilities in a CapBnd-style mask (bit n is capability n).
pub fn capabilities_in_mask(mask: u64) -> Vec<&'static str> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The capabilities this process may hand on (its bounding set): what "every capability"
/// means for a privileged container, as containerd grants it. A runtime that runs with fewer
/// than all (in a container of its own, say) cannot give more.
pub fn held_capabilities() -> &'static [&'static str] {
    static HELD: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let mask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX);
        capabilities_in_mask(mask)
    })
}

/// The capability set: the default (or, privileged, every held) capability, minus `drop`,
/// plus `add`, in number order.
pub fn capabilities(spec: &ContainerSpec) -> Result<Vec<String>> {
    if spec.privileged {
        return Ok(held_capabilities().iter().map(|c| c.to_string()).collect());
    }
    let known = |c: &str| ALL_CAPABILITIES.contains(&c);
    let mut set: BTreeSet<&str> = DEFAULT_CAPABILITIES.iter().copied().collect();
    for d in &spec.capabilities.drop {
        let name = cap_name(d);
        if name == "CAP_ALL" {
            set.clear();
        } else if known(&name) {
            set.retain(|c| *c != name);
        } else {
            return Err(spec.invalid(format!("unknown capability {d:?} in drop")));
        }
    }
    for a in &spec.capabilities.add {
        let name = cap_name(a);
        if name == "CAP_ALL" {
            set.extend(held_capabilities().iter().copied());
        } else if let Some(c) = ALL_CAPABILITIES.iter().find(|c| **c == name) {
            set.insert(c);
        } else {
            return Err(spec.invalid(format!("unknown capability {a:?} in add")));
        }
    }
    Ok(ALL_CAPABILITIES
        .iter()
        .filter(|c| set.contains(*c))
        .map(|c| c.to_string())
        .collect())
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> oci::Mount {
    oci::Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// The file systems every container gets (as containerd's CRI plugin mounts them).
pub fn default_mounts(privileged: bool) -> Vec<oci::Mount> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        ),
    ]
}

fn clean_dest(dest: &str) -> String {
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn is_under(path: &str, dir: &str) -> bool {
    path == dir || dir == "/" || path.starts_with(&format!("{dir}/"))
}

/// Default mounts that no bind mount covers, then the bind mounts, parents before children.
pub fn mounts(spec: &ContainerSpec) -> Result<Vec<oci::Mount>> {
    let mut binds = Vec::with_capacity(spec.mounts.len());
    for m in &spec.mounts {
        if !m.destination.starts_with('/') || m.destination.split('/').any(|p| p == "..") {
            return Err(spec.invalid(format!(
                "mount destination {:?} is not a clean absolute path",
                m.destination
            )));
        }
        if !m.source.is_absolute() {
            return Err(spec.invalid(format!(
                "mount source {} is not absolute",
                m.source.display()
            )));
        }
        let propagation = match m.propagation {
            Propagation::None => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        };
        let rw = if m.readonly { "ro" } else { "rw" };
        binds.push(oci::Mount {
            destination: clean_dest(&m.destination),
            kind: "bind".into(),
            source: m.source.to_string_lossy().into_owned(),
            options: vec!["rbind".into(), propagation.into(), rw.into()],
        });
    }
    binds.sort_by_key(|m| m.destination.split('/').filter(|p| !p.is_empty()).count());
    let mut all: Vec<oci::Mount> = default_mounts(spec.privileged)
        .into_iter()
        .filter(|d| {
            !binds
                .iter()
                .any(|b| is_under(&d.destination, &b.destination))
        })
        .collect();
    all.extend(binds);
    Ok(all)
}

fn namespace(kind: &str, mode: &NamespaceMode) -> Option<oci::Namespace> {
    match mode {
        NamespaceMode::Host => None,
        NamespaceMode::Private => Some(oci::Namespace {
            kind: kind.into(),
            path: None,
        }),
        NamespaceMode::Path(p) => Some(oci::Namespace {
            kind: kind.into(),
            path: Some(p.to_string_lossy().into_owned()),
        }),
    }
}

/// The OCI runtime spec of the container. The root file system is the bundle's `rootfs`.
pub fn generate(
    spec: &ContainerSpec,
    image: &ImageConfig,
    user: &ResolvedUser,
) -> Result<oci::Spec> {
    if spec.id.is_empty() {
        return Err(spec.invalid("empty container id"));
    }
    let caps = capabilities(spec)?;
    let cwd = spec
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| Some(image.working_dir.clone()).filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(spec.invalid(format!("working directory {cwd:?} is not absolute")));
    }

    let ns = &spec.namespaces;
    let namespaces: Vec<oci::Namespace> = [
        namespace("pid", &ns.pid),
        namespace("ipc", &ns.ipc),
        namespace("uts", &ns.uts),
        Some(oci::Namespace {
            kind: "mount".into(),
            path: None,
        }),
        namespace("network", &ns.network),
    ]
    .into_iter()
    .flatten()
    .collect();
    // runc refuses a hostname without a UTS namespace of the container's own (or joined).
    let hostname = match ns.uts {
        NamespaceMode::Host => None,
        _ => spec.hostname.clone(),
    };

    let mounts = mounts(spec)?;
    let rootfs_propagation = if spec
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        Some("rshared".to_string())
    } else if spec
        .mounts
        .iter()
        .any(|m| m.propagation == Propagation::HostToContainer)
    {
        Some("rslave".to_string())
    } else {
        None
    };

    let mut device_rules = vec![oci::DeviceCgroup {
        allow: spec.privileged,
        kind: None,
        major: None,
        minor: None,
        access: Some("rwm".into()),
    }];
    if !spec.privileged {
        device_rules.extend(spec.devices.iter().map(|d| oci::DeviceCgroup {
            allow: true,
            kind: Some(d.kind.clone()),
            major: Some(d.major),
            minor: Some(d.minor),
            access: Some("rwm".into()),
        }));
    }
    let r = &spec.resources;
    let cpu = (r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some())
        .then_some(oci::Cpu {
            shares: r.cpu_shares,
            quota: r.cpu_quota,
            period: r.cpu_period,
        });
    let resources = oci::Resources {
        devices: device_rules,
        memory: r.memory_limit.map(|limit| oci::Memory {
            limit: Some(limit),
            swap: r.memory_swap,
        }),
        cpu,
        pids: r.pids_limit.map(|limit| oci::Pids { limit }),
        unified: r.unified.clone(),
    };

    let (masked_paths, readonly_paths) = if spec.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
            READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
        )
    };

    Ok(oci::Spec {
        oci_version: "1.0.2-dev".into(),
        process: oci::Process {
            terminal: spec.tty,
            user: oci::User {
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids.clone(),
            },
            args: process_args(spec, image)?,
            env: process_env(spec, image),
            cwd,
            capabilities: Some(oci::Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
            }),
            rlimits: spec
                .nofile_limit
                .map(|n| oci::Rlimit {
                    kind: "RLIMIT_NOFILE".into(),
                    hard: n,
                    soft: n,
                })
                .into_iter()
                .collect(),
            no_new_privileges: spec.no_new_privileges && !spec.privileged,
            oom_score_adj: spec.oom_score_adj,
        },
        root: oci::Root {
            path: "rootfs".into(),
            readonly: spec.readonly_rootfs,
        },
        hostname,
        mounts,
        annotations: spec.annotations.clone(),
        linux: oci::Linux {
            sysctl: spec.sysctls.clone(),
            resources,
            cgroups_path: spec.cgroups_path.clone(),
            namespaces,
            devices: spec.devices.clone(),
            rootfs_propagation,
            masked_paths,
            readonly_paths,
        },
    })
}

/// The device nodes under `dev` (normally `/dev`), for privileged containers, which get all
/// of the host's devices. Unreadable entries are skipped.
pub fn host_devices(dev: &Path) -> Vec<oci::Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![dev.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            let name = entry.file_name();
            if ft.is_dir() {
                // Mounted per container, or not devices at all.
                if !matches!(name.to_str(), Some("pts" | "shm" | "mqueue" | "fd")) {
                    stack.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if name == "console" || name == "ptmx" {
                continue;
            }
            let Ok(rel) = path.strip_prefix(dev) else {
                continue;
            };
            let rdev = meta.rdev();
            out.push(oci::Device {
                kind: kind.into(),
                path: format!("/dev/{}", rel.to_string_lossy()),
                major: i64::from(libc::major(rdev)),
                minor: i64::from(libc::minor(rdev)),
                file_mode: Some(meta.mode() & 0o7777),
                uid: Some(meta.uid()),
                gid: Some(meta.gid()),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
