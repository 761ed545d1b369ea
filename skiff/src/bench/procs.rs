//! Processes the benchmarks start: killed by PID when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Guard {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size from /proc, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS missing")?;
        Ok(kb / 1024.0)
    }
}

impl Guard {
    /// CPU time (user + system) the process has used so far, from /proc.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time_of(self.pid())
    }
}

/// CPU time (user + system) process `pid` has used so far, from /proc.
pub fn cpu_time_of(pid: u32) -> anyhow::Result<Duration> {
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name may hold spaces: fields are counted after its closing ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(Duration::from_secs_f64(ticks as f64 / hz))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of a child this guard owns and has not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on port {port}")
}

/// The sibling binary `name` of the running `skiff`.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating the skiff binary")?;
    let p = me.parent().map(|d| d.join(name)).context("no parent dir")?;
    if !p.exists() {
        bail!(
            "{} not found next to skiff (build the workspace: cargo build --release --bins)",
            p.display()
        );
    }
    Ok(p)
}

/// Starts `skiff-controlplane` on a fresh dir; returns (guard, port, ready time).
pub fn control_plane(bin: &Path) -> anyhow::Result<(Guard, u16, Duration)> {
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-cp-")
        .tempdir()?;
    let port = free_port()?;
    let t0 = Instant::now();
    let child = Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--secure-port")
        .arg(port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let g = Guard { child, dir };
    wait_port(port, "skiff-controlplane")?;
    // The port opens before bootstrap completes only if the kubeconfig is missing.
    let kc = g.dir.path().join("admin.kubeconfig");
    while !kc.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((g, port, t0.elapsed()))
}

/// Starts `etcd` on fresh loopback ports; returns (guard, client URL).
pub fn etcd() -> anyhow::Result<(Guard, String)> {
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-etcd-")
        .tempdir()?;
    let client = free_port()?;
    let peer = free_port()?;
    let curl = format!("http://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args(["--initial-cluster", &format!("bench={purl}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting etcd (apt-get install etcd-server)")?;
    let g = Guard { child, dir };
    wait_port(client, "etcd")?;
    Ok((g, curl))
}
