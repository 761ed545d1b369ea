//! One worker's processes: `skiff join` in the worker's namespace (its agent, with a
//! containerd of its own, and its proxy), started detached, killed by PID, cleaned up with
//! `skiff down` in the same namespace.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use super::state::{Join, Pid, Worker};
use super::{machine, net};

/// Opens (appending) a log file for a detached process's stdout and stderr.
fn log_file(path: &Path) -> anyhow::Result<(std::fs::File, std::fs::File)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let g = f
        .try_clone()
        .with_context(|| format!("opening {}", path.display()))?;
    Ok((f, g))
}

/// Starts `cmd` in a session of its own, output to `log`: it outlives `skiff lab up` and
/// a terminal's signals are not its.
pub fn spawn_detached(mut cmd: std::process::Command, log: &Path) -> anyhow::Result<Pid> {
    let (out, err) = log_file(log)?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid(2) is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("spawning")?;
    let pid = child.id();
    // Not waited for: once `lab up` exits, init reaps it.
    drop(child);
    Pid::of(pid).with_context(|| format!("process {pid} exited at once; see {}", log.display()))
}

/// Starts the worker's node: `skiff join` with its own data directory, cgroup tree and pod
/// log directory, in its namespace (nsenter execs, so the PID is skiff's own).
pub fn start(exe: &Path, w: &Worker, join: &Join, flags: &[String]) -> anyhow::Result<Pid> {
    std::fs::create_dir_all(&w.dir).with_context(|| format!("creating {}", w.dir.display()))?;
    let mut cmd = net::in_netns(&w.netns, exe);
    cmd.args(["join", "--server", &join.server])
        .args(["--ca-cert-hash", &join.ca_cert_hash])
        .args(["--node-name", &w.name])
        .arg("--data-dir")
        .arg(&w.dir)
        .args(["--cgroup-root", &w.cgroup_root])
        .arg("--pod-logs-dir")
        .arg(w.pod_logs_dir())
        .args(flags)
        // Through the environment, not the command line `ps` shows.
        .env("SKIFF_JOIN_TOKEN", &join.token);
    spawn_detached(cmd, &w.log()).with_context(|| format!("starting worker {}", w.name))
}

/// The worker's containerd, when its PID file names a running containerd of this worker
/// (checked by its command line, so a reused PID is never taken for it).
pub fn containerd(w: &Worker) -> Option<Pid> {
    let pid: u32 = std::fs::read_to_string(w.containerd_pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let config = w.containerd_config();
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config.as_os_str().as_encoded_bytes());
    if !ours {
        return None;
    }
    Pid::of(pid)
}

/// SIGKILL of everything the worker runs, as a machine failure stops it: the node process
/// and its containerd (no goodbye to the control plane), then the shims and loggers in
/// the worker's namespace and the containers in its cgroup tree, so its pods stop
/// answering too. What is on disk stays, for `restart-node`.
pub async fn kill(w: &Worker) {
    // The agent first, so its supervisor does not restart the containerd killed next.
    let cd = containerd(w);
    if let Some(p) = w.process {
        p.kill().await;
    }
    if let Some(p) = cd {
        p.kill().await;
    }
    // Again until none is left: a shim may still start a process while the first round
    // is killed.
    for _ in 0..10 {
        let left = machine::processes(&w.netns, &w.cgroup_root);
        if left.is_empty() {
            return;
        }
        for p in left {
            p.kill().await;
        }
    }
}

/// SIGTERM (the node stops its proxy, agent and containerd), SIGKILL after `grace`; a
/// containerd left behind is killed too.
pub async fn stop(w: &Worker, grace: Duration) {
    let cd = containerd(w);
    if let Some(p) = w.process {
        p.stop(grace).await;
    }
    if let Some(p) = cd.filter(Pid::alive) {
        p.stop(Duration::from_secs(5)).await;
    }
}

/// `skiff down` for the worker, in its namespace: containers, shims, containerd, sandboxes,
/// cgroups, its bridge, VXLAN device, routes and firewall tables, and its directory.
pub fn cleanup(exe: &Path, w: &Worker) -> anyhow::Result<()> {
    // Never in the host's namespace, where it would take the host's own skiff network
    // down: a namespace deleted already is made again (empty) for it, and goes after.
    if !net::netns_exists(&w.netns) {
        net::add_netns(&w.netns)?;
    }
    let out = net::in_netns(&w.netns, exe)
        .args(down_args(w))
        .output()
        .context("running skiff down in the worker's namespace")?;
    if !out.status.success() {
        bail!(
            "skiff down for worker {}: {}",
            w.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn down_args(w: &Worker) -> Vec<std::ffi::OsString> {
    vec![
        "down".into(),
        "--data-dir".into(),
        w.dir.clone().into(),
        "--cgroup-root".into(),
        w.cgroup_root.clone().into(),
        "--pod-logs-dir".into(),
        w.pod_logs_dir().into(),
    ]
}
