//! A private containerd for the agent when it is given no socket: its own configuration,
//! root, state and sockets under one directory (so several run side by side on one machine),
//! started and checked with a `version` call, restarted when it dies, and stopped by PID.
//!
//! Tasks live in their runc shims, not in containerd: stopping or restarting containerd leaves
//! them running, and a new containerd on the same directory reconnects to them. Killing the
//! shims is the caller's decision ([`kill_shims`]).

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::containerd::ContainerdConfig;
use super::{Error, Result};

/// Longest socket path we accept: the kernel's limit is 108 bytes, and containerd derives
/// longer names (the ttrpc socket) from it.
const MAX_SOCKET_PATH: usize = 100;

/// How to run the private containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperviseConfig {
    /// Everything goes under `dir/containerd/`.
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    /// containerd's log level (its log is `dir/containerd/containerd.log`).
    pub log_level: String,
}

impl SuperviseConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SuperviseConfig {
            dir: dir.into(),
            binary: "containerd".into(),
            ready_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(10),
            log_level: "info".into(),
        }
    }
}

/// The files and directories of one supervised containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub base: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub ttrpc_socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub pid_file: PathBuf,
    pub lock: PathBuf,
    /// runc's state directory for this instance's containers.
    pub runc_root: PathBuf,
    pub opt: PathBuf,
    /// The output FIFOs of execs in this instance's containers.
    pub exec: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        let base = dir.join("containerd");
        Paths {
            root: base.join("root"),
            state: base.join("state"),
            socket: base.join("containerd.sock"),
            ttrpc_socket: base.join("containerd.sock.ttrpc"),
            config: base.join("config.toml"),
            log: base.join("containerd.log"),
            pid_file: base.join("containerd.pid"),
            lock: base.join("supervisor.lock"),
            runc_root: base.join("runc"),
            opt: base.join("opt"),
            exec: base.join("exec"),
            base,
        }
    }
}

fn toml_string(p: &Path) -> String {
    let s = p.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// containerd's configuration: private paths, no CRI plugin, no debug or metrics listener.
pub fn config_toml(paths: &Paths, log_level: &str) -> String {
    format!(
        r#"# Written by skiff-agent; rewritten on every start.
version = 2
root = {root}
state = {state}
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""
  level = "{log_level}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
        root = toml_string(&paths.root),
        state = toml_string(&paths.state),
        socket = toml_string(&paths.socket),
        ttrpc = toml_string(&paths.ttrpc_socket),
        opt = toml_string(&paths.opt),
    )
}

struct Shared {
    pid: AtomicU32,
    restarts: AtomicU32,
}

/// A running, supervised containerd.
pub struct Supervisor {
    cfg: SuperviseConfig,
    paths: Paths,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    monitor: Option<JoinHandle<()>>,
    _lock: File,
}

fn supervise_err(cfg: &SuperviseConfig, reason: impl Into<String>) -> Error {
    Error::Supervise {
        dir: cfg.dir.clone(),
        reason: reason.into(),
    }
}

fn signal(pid: u32, sig: i32) -> bool {
    match i32::try_from(pid) {
        // SAFETY: kill(2) with a positive pid only sends a signal.
        Ok(p) if p > 0 => unsafe { libc::kill(p, sig) == 0 },
        _ => false,
    }
}

fn alive(pid: u32) -> bool {
    signal(pid, 0)
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Stops a process that is not our child: SIGTERM, then SIGKILL after `timeout`.
async fn stop_foreign(pid: u32, timeout: Duration) {
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if alive(pid) {
        signal(pid, libc::SIGKILL);
        while alive(pid) && Instant::now() < deadline + Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Stops our child: SIGTERM, then SIGKILL after `timeout`.
async fn stop_child(child: &mut Child, timeout: Duration) {
    if let Some(pid) = child.id() {
        signal(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

fn spawn(cfg: &SuperviseConfig, paths: &Paths) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|e| Error::io("open", &paths.log, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("dup", &paths.log, e))?;
    let child = Command::new(&cfg.binary)
        .arg("--config")
        .arg(&paths.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Not in the agent's process group: a terminal's ^C is for the agent, which then
        // stops containerd itself.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io("spawn", &cfg.binary, e))?;
    if let Some(pid) = child.id() {
        let _ = std::fs::write(&paths.pid_file, pid.to_string());
    }
    Ok(child)
}

async fn answers(socket: &Path) -> bool {
    let probe = async {
        let client = containerd_client::Client::from_path(socket).await.ok()?;
        client.version().version(()).await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(_))
    )
}

/// Waits until containerd answers `version`, failing early if the child exits.
async fn wait_ready(child: &mut Child, cfg: &SuperviseConfig, paths: &Paths) -> Result<()> {
    let deadline = Instant::now() + cfg.ready_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(supervise_err(
                cfg,
                format!(
                    "containerd exited during start-up ({status}); see {}",
                    paths.log.display()
                ),
            ));
        }
        if paths.socket.exists() && answers(&paths.socket).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("containerd on {}", paths.socket.display()),
                after: cfg.ready_timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Supervisor {
    /// Writes the configuration, stops a containerd a previous agent left on this directory,
    /// starts containerd and waits until it answers.
    pub async fn start(cfg: SuperviseConfig) -> Result<Supervisor> {
        let paths = Paths::new(&cfg.dir);
        if paths.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(supervise_err(
                &cfg,
                format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes",
                    paths.socket.display()
                ),
            ));
        }
        for d in [
            &paths.base,
            &paths.root,
            &paths.state,
            &paths.runc_root,
            &paths.opt,
        ] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
        }
        let lock = File::create(&paths.lock).map_err(|e| Error::io("create", &paths.lock, e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(supervise_err(
                &cfg,
                "another supervisor runs containerd on this directory",
            ));
        }
        if let Some(old) = std::fs::read_to_string(&paths.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            && alive(old)
            && cmdline(old).iter().any(|a| Path::new(a) == paths.config)
        {
            tracing::info!(
                pid = old,
                "stopping the containerd a previous agent left running"
            );
            stop_foreign(old, cfg.stop_timeout).await;
        }
        std::fs::write(&paths.config, config_toml(&paths, &cfg.log_level))
            .map_err(|e| Error::io("write", &paths.config, e))?;

        let started = Instant::now();
        let mut child = spawn(&cfg, &paths)?;
        if let Err(e) = wait_ready(&mut child, &cfg, &paths).await {
            stop_child(&mut child, cfg.stop_timeout).await;
            return Err(e);
        }
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, socket = %paths.socket.display(), elapsed = ?started.elapsed(), "containerd ready");

        let shared = Arc::new(Shared {
            pid: AtomicU32::new(pid),
            restarts: AtomicU32::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let monitor = tokio::spawn(monitor(
            child,
            cfg.clone(),
            paths.clone(),
            shared.clone(),
            stop_rx,
        ));
        Ok(Supervisor {
            cfg,
            paths,
            shared,
            stop,
            monitor: Some(monitor),
            _lock: lock,
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn socket(&self) -> &Path {
        &self.paths.socket
    }

    /// The client configuration for this containerd, in `namespace`.
    pub fn client_config(&self, namespace: &str) -> ContainerdConfig {
        let mut c = ContainerdConfig::new(&self.paths.socket, namespace);
        c.runc_root = Some(self.paths.runc_root.clone());
        c.exec_dir = self.paths.exec.clone();
        c
    }

    /// The current containerd's PID; 0 while it is being restarted.
    pub fn pid(&self) -> u32 {
        self.shared.pid.load(Ordering::SeqCst)
    }

    /// How many times containerd was restarted after dying.
    pub fn restarts(&self) -> u32 {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    /// Waits until containerd answers (e.g. after a restart).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.pid() != 0 && answers(&self.paths.socket).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("containerd on {}", self.paths.socket.display()),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops containerd (SIGTERM, then SIGKILL after the stop timeout). Its shims, and so the
    /// containers, keep running.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(m) = self.monitor.take() {
            m.await
                .map_err(|e| supervise_err(&self.cfg, format!("monitor task: {e}")))?;
        }
        let _ = std::fs::remove_file(&self.paths.pid_file);
        Ok(())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            // No way to wait here: kill at once; the child's kill-on-drop is the backstop.
            signal(self.pid(), libc::SIGKILL);
            m.abort();
        }
    }
}

async fn monitor(
    mut child: Child,
    cfg: SuperviseConfig,
    paths: Paths,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut started = Instant::now();
    loop {
        tokio::select! {
            status = child.wait() => {
                shared.pid.store(0, Ordering::SeqCst);
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(?status, log = %paths.log.display(), "containerd exited; restarting it");
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(100);
                }
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    match spawn(&cfg, &paths) {
                        Ok(mut c) => match wait_ready(&mut c, &cfg, &paths).await {
                            Ok(()) => {
                                child = c;
                                break;
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "restarted containerd is not ready");
                                stop_child(&mut c, cfg.stop_timeout).await;
                            }
                        },
                        Err(e) => tracing::error!(error = %e, "cannot restart containerd"),
                    }
                }
                started = Instant::now();
                shared.restarts.fetch_add(1, Ordering::SeqCst);
                shared.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
                tracing::info!(pid = shared.pid.load(Ordering::SeqCst), "containerd restarted");
            }
            _ = stop.changed() => {
                stop_child(&mut child, cfg.stop_timeout).await;
                shared.pid.store(0, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// PIDs of the runc shims serving the containerd on `socket` (they name it in their
/// arguments).
pub fn shim_pids(socket: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let socket = socket.to_string_lossy();
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let args = cmdline(*pid);
            args.first().is_some_and(|a| a.contains("containerd-shim"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-address" && w[1] == socket.as_ref())
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Kills (SIGKILL) the shims of the containerd on `socket` and returns their PIDs. Their
/// containers' processes are not killed by this.
pub fn kill_shims(socket: &Path) -> Vec<u32> {
    let pids = shim_pids(socket);
    for pid in &pids {
        signal(*pid, libc::SIGKILL);
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_private_paths_and_no_cri() {
        let paths = Paths::new(Path::new("/var/lib/skiff"));
        let toml = config_toml(&paths, "info");
        assert!(toml.contains(r#"root = "/var/lib/skiff/containerd/root""#));
        assert!(toml.contains(r#"state = "/var/lib/skiff/containerd/state""#));
        assert!(toml.contains(r#"address = "/var/lib/skiff/containerd/containerd.sock""#));
        assert!(toml.contains(r#"address = "/var/lib/skiff/containerd/containerd.sock.ttrpc""#));
        assert!(toml.contains(r#""io.containerd.grpc.v1.cri""#));
        assert!(toml.contains("[debug]\n  address = \"\""));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(Path::new(r#"/a"b\c"#)), r#""/a\"b\\c""#);
    }
}
