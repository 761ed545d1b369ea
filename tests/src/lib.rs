//! Shared helpers for the integration suites: starting skiff processes on free loopback
//! ports in throwaway directories, and driving the real `kubectl` against them.
//!
//! Everything started here is stopped by PID when its guard drops, even when a test fails.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket")?;
    Ok(l.local_addr()?.port())
}

/// A child process killed (SIGKILL, by PID) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        // SAFETY: plain kill(2) on a PID this guard owns and has not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        // SAFETY: as above.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Starts `cmd` and waits for the first line it prints on stdout to begin with `ready:`
/// (skiff's daemons print one once they serve). Its stdout is drained afterwards so it
/// never blocks on a full pipe; stderr goes to the test's.
pub fn spawn_until_ready(mut cmd: Command, name: &str, timeout: Duration) -> Result<Proc> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {name}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Proc {
        child,
        name: name.to_string(),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(timeout) {
        Ok(line) if line.starts_with("ready:") => Ok(proc),
        Ok(line) => bail!("{name} printed {line:?} instead of ready"),
        Err(_) => bail!("{name} did not become ready within {timeout:?}"),
    }
}

/// A `skiff-controlplane` process on its own data directory and port.
pub struct ControlPlane {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub args: Vec<String>,
    pub proc: Option<Proc>,
    pub startup: Duration,
}

impl ControlPlane {
    /// Starts the binary at `bin` with `extra` arguments and waits until it serves.
    pub fn start(bin: &Path, extra: &[&str]) -> Result<ControlPlane> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-cp-")
            .tempdir()
            .context("creating a data dir")?;
        let mut cp = ControlPlane {
            bin: bin.to_path_buf(),
            dir,
            port: free_port()?,
            args: extra.iter().map(|s| s.to_string()).collect(),
            proc: None,
            startup: Duration::ZERO,
        };
        cp.launch()?;
        Ok(cp)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same directory and port; waits for its "ready" line.
    pub fn launch(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data-dir")
            .arg(self.dir.path())
            .arg("--secure-port")
            .arg(self.port.to_string())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        self.proc = Some(spawn_until_ready(
            cmd,
            "skiff-controlplane",
            Duration::from_secs(20),
        )?);
        self.startup = t0.elapsed();
        Ok(())
    }

    /// kill -9, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// A `kubectl` command pointed at this server.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("running kubectl {args:?}: {e} (is kubectl on PATH?)"))
    }

    /// Runs kubectl and returns stdout; panics with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs kubectl with `input` on stdin; returns stdout, panics on failure.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin_output(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `input` on stdin, whatever its outcome.
    pub fn kubectl_stdin_output(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
        child.wait_with_output().expect("kubectl output")
    }

    /// The admin bearer token (for raw HTTP checks).
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pki/admin.token"))
            .expect("reading admin token")
            .trim()
            .to_string()
    }
}

/// An `etcd` server on free loopback ports in a throwaway directory.
pub struct Etcd {
    pub dir: tempfile::TempDir,
    pub client_url: String,
    pub proc: Proc,
}

impl Etcd {
    pub fn start() -> Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("skiff-etcd-").tempdir()?;
        let client = free_port()?;
        let peer = free_port()?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(format!("skiff-test-{client}"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("skiff-test-{client}={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting etcd (install Debian's etcd-server)")?;
        let proc = Proc {
            child,
            name: "etcd".into(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return Ok(Etcd {
                    dir,
                    client_url,
                    proc,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("etcd did not listen on {client_url} within 20 s")
    }
}

/// Polls `f` until it returns Some, or panics after `timeout` with `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A binary of another workspace crate, from the target directory this test binary runs
/// in (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo nextest run
/// --workspace` builds every binary before running tests.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary is not under target/<profile>/deps")?;
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} not built: run the tests with `cargo nextest run --workspace` (or `cargo build --workspace` first)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Where e2e node slots are claimed: a slot names a node's bridge, firewall table and pod
/// subnet (198.18.<slot>.0/24), so suites run in parallel without sharing them.
const NODE_SLOTS: &str = "/run/skiff-e2e-slots";

fn claim_slot() -> Result<(u32, PathBuf)> {
    std::fs::create_dir_all(NODE_SLOTS).context("creating the slot directory")?;
    for slot in 1..=250u32 {
        let lock = Path::new(NODE_SLOTS).join(slot.to_string());
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            writeln!(f, "{}", std::process::id())?;
            return Ok((slot, lock));
        }
        // A slot whose owner is gone is free again.
        let owner = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        // SAFETY: kill(pid, 0) only probes for existence.
        if owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0) {
            let _ = std::fs::remove_file(&lock);
        }
    }
    bail!("no free node slot under {NODE_SLOTS}")
}

/// A `skiff-agent` process registered as a node of `cp`, with its own private containerd,
/// state directory, cgroup tree, bridge, firewall table and pod subnet. On drop the agent is
/// killed and `skiff-agent --down` removes everything it made; the bridge and table go too.
pub struct AgentNode {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub slot: u32,
    lock: PathBuf,
    pub bin: PathBuf,
    pub proc: Option<Proc>,
    pub startup: Duration,
    pub extra: Vec<String>,
    /// The port of the agent's API (on loopback): a free one, since several agents run at
    /// once.
    pub port: u16,
}

impl AgentNode {
    /// Starts a node named `name` against `cp`, with `extra` flags.
    pub fn start(cp: &ControlPlane, name: &str, extra: &[&str]) -> Result<AgentNode> {
        let (slot, lock) = claim_slot()?;
        let dir = tempfile::Builder::new()
            .prefix("skiff-node-")
            .tempdir()
            .context("creating the node directory")?;
        let mut node = AgentNode {
            name: name.to_string(),
            dir,
            slot,
            lock,
            bin: workspace_bin("skiff-agent")?,
            proc: None,
            startup: Duration::ZERO,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            port: free_port()?,
        };
        node.clean_network();
        node.write_cni_config()?;
        std::fs::copy(cp.kubeconfig(), node.kubeconfig()).context("copying the kubeconfig")?;
        node.launch()?;
        Ok(node)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
    pub fn socket(&self) -> PathBuf {
        self.root().join("containerd/containerd.sock")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }
    pub fn bridge(&self) -> String {
        format!("ske{}", self.slot)
    }
    pub fn table(&self) -> String {
        format!("skiff-e2e-{}", self.slot)
    }
    /// The pod subnet's prefix, e.g. `198.18.7.`.
    pub fn subnet_prefix(&self) -> String {
        format!("198.18.{}.", self.slot)
    }
    pub fn cgroup_root(&self) -> String {
        format!("/skiff-e2e-{}/kubepods", self.slot)
    }

    fn write_cni_config(&self) -> Result<()> {
        std::fs::create_dir_all(self.cni_conf_dir())?;
        let conf = serde_json::json!({
            "cniVersion": "1.1.0",
            "name": format!("skiff-e2e-{}", self.slot),
            "plugins": [{
                "type": "skiff-bridge",
                "bridge": self.bridge(),
                "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "firewallTable": self.table(),
                "stateDir": self.dir.path().join("cni-state"),
                "capabilities": {"portMappings": true},
                "ipam": {
                    "type": "skiff-ipam",
                    "dataDir": self.dir.path().join("ipam"),
                    "ranges": [[{"subnet": format!("198.18.{}.0/24", self.slot)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }],
        });
        std::fs::write(
            self.cni_conf_dir().join("10-e2e.conflist"),
            serde_json::to_vec_pretty(&conf)?,
        )?;
        Ok(())
    }

    /// The flags every run and the final `--down` share.
    fn args(&self) -> Result<Vec<String>> {
        let plugins = workspace_bin("skiff-bridge")?
            .parent()
            .context("plugin dir")?
            .display()
            .to_string();
        let mut a = vec![
            "--kubeconfig".into(),
            self.kubeconfig().display().to_string(),
            "--node-name".into(),
            self.name.clone(),
            "--root-dir".into(),
            self.root().display().to_string(),
            "--cni-bin-dir".into(),
            format!("{plugins},/usr/lib/cni"),
            "--cni-conf-dir".into(),
            self.cni_conf_dir().display().to_string(),
            "--pod-logs-dir".into(),
            self.logs_dir().display().to_string(),
            "--cgroup-root".into(),
            self.cgroup_root(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            // Several test nodes share this machine's network namespace: none of them
            // routes to the others' pods.
            "--pod-network".into(),
            "none".into(),
        ];
        if !self
            .extra
            .iter()
            .any(|e| e == "--port" || e.starts_with("--port="))
        {
            a.extend([
                "--port".into(),
                self.port.to_string(),
                "--address".into(),
                "127.0.0.1".into(),
            ]);
        }
        a.extend(self.extra.iter().cloned());
        Ok(a)
    }

    /// (Re)starts the agent; waits for its "ready" line.
    pub fn launch(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let mut cmd = Command::new(&self.bin);
        cmd.args(self.args()?).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,skiff_agent=info".into()),
        );
        self.proc = Some(spawn_until_ready(
            cmd,
            "skiff-agent",
            Duration::from_secs(60),
        )?);
        self.startup = t0.elapsed();
        Ok(())
    }

    /// kill -9 of the agent alone, as a crash would (containerd and containers live on).
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// SIGTERM, as a service manager stops it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(20));
        }
    }

    /// Builds a busybox image named `name` and imports it into this node.
    pub fn import_busybox(&self, name: &str) -> Result<()> {
        let out = Command::new(workspace_bin("skiff")?)
            .args(["image", "busybox", "--name", name, "--containerd-socket"])
            .arg(self.socket())
            .output()
            .context("running skiff image busybox")?;
        if !out.status.success() {
            bail!(
                "skiff image busybox failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn clean_network(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["ip", "link", "del", &self.bridge()]);
        for family in ["inet", "bridge", "ip", "ip6"] {
            quiet(&["nft", "delete", "table", family, &self.table()]);
        }
    }

    /// Removes everything the agent made; returns what `--down` reported.
    pub fn down(&mut self) -> Result<()> {
        self.crash();
        let out = Command::new(&self.bin)
            .args(self.args()?)
            .arg("--down")
            .env("RUST_LOG", "error")
            .output()
            .context("running skiff-agent --down")?;
        self.clean_network();
        if !out.status.success() {
            bail!(
                "skiff-agent --down: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for AgentNode {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("cleaning up node {}: {e}", self.name);
        }
        let top = format!("/skiff-e2e-{}", self.slot);
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(top.trim_start_matches('/')));
            }
        }
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Every process whose command line names `dir`, as `PID: command line`.
pub fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

/// The answer of busybox `nslookup`: its last `Address:` line (the first ones name the
/// server).
pub fn nslookup_address(output: &str) -> String {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(str::trim)
        .next_back()
        .unwrap_or_default()
        .to_string()
}
