//! `skiff bench cluster` (root): a two-worker `skiff lab` of its own (unique bridge, subnet,
//! namespaces, port and directory; taken down at the end, also on error or Ctrl-C):
//! - startup: `lab up --nodes 2` until every node is Ready (and busybox imported);
//! - pod-to-pod TCP throughput: this process puts a thread into one pod's network namespace
//!   (the one the agent pins under the worker's directory) to listen, and one into another
//!   pod's to send; same worker (the reference: veth pairs through the worker's bridge)
//!   against across workers (VXLAN, then host-gw);
//! - density: N busybox `sleep` pods of a Deployment pinned to one worker, until all Ready,
//!   with the node process's (agent and proxy) and containerd's CPU and memory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

const MIB: f64 = 1024.0 * 1024.0;

/// The density the issue asks one worker to hold.
const DENSITY_TARGET: usize = 250;

/// The lab's names, unique to this run.
struct Lab {
    exe: PathBuf,
    workdir: PathBuf,
    bridge: String,
    netns_prefix: String,
    subnet: String,
    port: u16,
}

impl Lab {
    fn new(salt: u32) -> anyhow::Result<Lab> {
        // 230..=248: clear of the lab tests' subnets (20..=220).
        let id = std::process::id() % 18 + 230 + salt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("a free port")?
            .port();
        Ok(Lab {
            exe: std::env::current_exe().context("locating skiff")?,
            workdir: std::env::temp_dir()
                .join(format!("skbench-cluster-{}-{salt}", std::process::id())),
            bridge: format!("skbc{id}"),
            netns_prefix: format!("skbc{id}-"),
            subnet: format!("172.31.{id}.0/24"),
            port,
        })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.workdir.join("admin.kubeconfig")
    }

    /// A worker's directory (`lab up` makes it WORKDIR/NAME).
    fn worker_dir(&self, node: &str) -> PathBuf {
        let dir = self.workdir.join(node);
        dir.canonicalize().unwrap_or(dir)
    }

    async fn up(
        &self,
        pod_network: &str,
        max_pods: usize,
        node_cidr_mask_size: u8,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let out = tokio::process::Command::new(&self.exe)
            .args(["lab", "up", "--nodes", "2", "--bridge", &self.bridge])
            .args([
                "--subnet",
                &self.subnet,
                "--netns-prefix",
                &self.netns_prefix,
            ])
            .args([
                "--port",
                &self.port.to_string(),
                "--pod-network",
                pod_network,
            ])
            .args(["--max-pods", &max_pods.to_string()])
            .args([
                "--node-cidr-mask-size",
                &node_cidr_mask_size.to_string(),
                "--workdir",
            ])
            .arg(&self.workdir)
            .kill_on_drop(true)
            .output()
            .await
            .context("running skiff lab up")?;
        if !out.status.success() {
            bail!(
                "skiff lab up: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(started.elapsed())
    }

    fn down(&self) -> anyhow::Result<()> {
        let out = Command::new(&self.exe)
            .args(["lab", "down", "--workdir"])
            .arg(&self.workdir)
            .output()
            .context("running skiff lab down")?;
        if !out.status.success() {
            bail!(
                "skiff lab down: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn kubectl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .context("running kubectl")
    }

    fn apply(&self, manifest: &str) -> anyhow::Result<()> {
        let file = self.workdir.join("bench.json");
        std::fs::write(&file, manifest).with_context(|| format!("writing {}", file.display()))?;
        let path = file.to_string_lossy().into_owned();
        let out = self.kubectl(&["apply", "--validate=false", "-f", &path])?;
        if !out.status.success() {
            bail!(
                "kubectl apply: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The prefix length of a worker's pod range that holds `pods` pods: host-local's rules
/// leave out the network address, the gateway (the bridge) and the broadcast address.
/// Never wider than needed, never narrower than the usual /24.
pub fn node_cidr_mask_size(pods: usize) -> u8 {
    let mut mask = 24u8;
    while mask > 17 && (1usize << (32 - mask)) - 3 < pods {
        mask -= 1;
    }
    mask
}

fn sleeper(name: &str, node: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "tp"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "busybox:1.36",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "100000"]}],
        }
    })
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Pods matching `selector` that are Ready, polled every `every` until `want` or the
/// deadline (measured from `since`); progress to stderr every 10 s.
async fn wait_ready(
    pods: &Api<Pod>,
    selector: &str,
    want: usize,
    since: Instant,
    timeout: Duration,
    every: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let mut told = Instant::now();
    loop {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .context("listing pods")?;
        let ready = list.items.iter().filter(|p| is_ready(p)).count();
        if ready >= want || since.elapsed() >= timeout {
            return Ok((ready, since.elapsed()));
        }
        if told.elapsed() >= Duration::from_secs(10) {
            eprintln!("  {ready}/{want} Ready after {}", secs(since.elapsed()));
            told = Instant::now();
        }
        tokio::time::sleep(every).await;
    }
}

/// MiB/s of `bytes` in `d`.
pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    bytes as f64 / MIB / d.as_secs_f64()
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Moves the calling thread into the network namespace at `path` for good (the thread is
/// one of ours, started for this and ended after).
fn enter_netns(path: &Path) -> anyhow::Result<()> {
    let ns = std::fs::File::open(path)
        .with_context(|| format!("opening the network namespace {}", path.display()))?;
    // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("entering the network namespace {}", path.display()));
    }
    Ok(())
}

/// Runs `f` on a thread of its own inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: PathBuf,
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            enter_netns(&netns)?;
            f()
        })
        .context("starting a thread")
}

const CHUNK: usize = 1 << 20;

/// Accepts one connection (until `deadline`) and reads it to the end: bytes and the time
/// from the accept to the end of the stream.
fn receive(listener: TcpListener, deadline: Instant) -> anyhow::Result<(u64, Duration)> {
    listener
        .set_nonblocking(true)
        .context("a non-blocking listener")?;
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("no connection from the sending pod");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context("accepting"),
        }
    };
    let started = Instant::now();
    conn.set_nonblocking(false).context("a blocking socket")?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .context("a read timeout")?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    Ok((got, started.elapsed()))
}

/// Connects to `to` (retried until `deadline`: a route may not be there yet) and sends
/// `bytes` bytes.
fn send(to: SocketAddr, bytes: u64, deadline: Instant) -> anyhow::Result<()> {
    let mut conn = loop {
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("connecting to {to}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    conn.set_write_timeout(Some(Duration::from_secs(30)))
        .context("a write timeout")?;
    let buf = vec![0u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        conn.write_all(&buf[..n]).context("sending")?;
        left -= n as u64;
    }
    conn.shutdown(std::net::Shutdown::Write)
        .context("closing the sending side")
}

/// One transfer of `bytes` from the pod whose network namespace is `from` to a listener
/// on `port` in the pod at `to` (namespace `to_netns`, address `to_ip`).
fn transfer(
    from: PathBuf,
    to_netns: PathBuf,
    to_ip: Ipv4Addr,
    port: u16,
    bytes: u64,
) -> anyhow::Result<(u64, Duration)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let receiver = in_netns(to_netns, "bench-receive", move || {
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port));
        let ok = l.is_ok();
        let _ = bound_tx.send(ok);
        receive(l.context("listening in the receiving pod")?, deadline)
    })?;
    if bound_rx.recv().unwrap_or(false) {
        let sender = in_netns(from, "bench-send", move || {
            send(SocketAddr::from((to_ip, port)), bytes, deadline)
        })?;
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    }
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?
}

/// Where a pod's network is: its network namespace and its IPv4 address.
struct PodNet {
    netns: PathBuf,
    ip: Ipv4Addr,
}

async fn pod_net(lab: &Lab, pods: &Api<Pod>, name: &str) -> anyhow::Result<PodNet> {
    let p = pods
        .get(name)
        .await
        .with_context(|| format!("pod {name}"))?;
    let uid = p.metadata.uid.clone().context("no uid")?;
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .context("no node")?;
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("no pod IP")?
        .parse()
        .with_context(|| format!("the IP of {name}"))?;
    // Where the agent pins a pod's namespaces (agent/src/sandbox: ROOT/pods/UID/ns/net).
    let netns = lab
        .worker_dir(&node)
        .join("agent/pods")
        .join(uid)
        .join("ns/net");
    if !netns.exists() {
        bail!("{name}'s network namespace is not at {}", netns.display());
    }
    Ok(PodNet { netns, ip })
}

/// Same-node and cross-node throughput on a lab that is up: (same, cross) as printed, and
/// the ratio cross/same.
async fn throughput(lab: &Lab, mib: usize) -> anyhow::Result<(String, String, Option<f64>)> {
    let client = crate::lab::client(&lab.kubeconfig()).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let items: Vec<serde_json::Value> =
        [("tp-server", "w1"), ("tp-same", "w1"), ("tp-cross", "w2")]
            .into_iter()
            .map(|(name, node)| sleeper(name, node))
            .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    lab.apply(&list.to_string())?;
    let (ready, _) = wait_ready(
        &pods,
        "bench=tp",
        3,
        Instant::now(),
        Duration::from_secs(120),
        Duration::from_millis(250),
    )
    .await?;
    if ready < 3 {
        bail!("throughput pods: {ready}/3 Ready within 120s");
    }
    let server = pod_net(lab, &pods, "tp-server").await?;
    let bytes = (mib as u64) * 1024 * 1024;
    let mut rates = Vec::new();
    let mut port = 5001;
    for client in ["tp-same", "tp-cross"] {
        let from = pod_net(lab, &pods, client).await?;
        let mut best: Option<f64> = None;
        let mut last = String::new();
        for _ in 0..3 {
            port += 1;
            let (f, t, ip) = (from.netns.clone(), server.netns.clone(), server.ip);
            let r = tokio::task::spawn_blocking(move || transfer(f, t, ip, port, bytes))
                .await
                .context("the transfer task")?;
            match r {
                Ok((got, took)) if got == bytes => {
                    let r = mib_per_s(got, took);
                    best = Some(best.map_or(r, |b| b.max(r)));
                }
                Ok((got, _)) => last = format!("received {got} of {bytes} bytes"),
                Err(e) => last = format!("{e:#}"),
            }
        }
        rates.push(match best {
            Some(r) => (format!("{r:.0} MiB/s"), Some(r)),
            None => (format!("n/a ({last})"), None),
        });
    }
    let ratio = match (rates[0].1, rates[1].1) {
        (Some(s), Some(c)) if s > 0.0 => Some(c / s),
        _ => None,
    };
    Ok((rates[0].0.clone(), rates[1].0.clone(), ratio))
}

/// CPU time and memory of some processes, from /proc: resident (RSS) and proportional
/// (PSS: shared pages divided among their users, so the shims' common binary counts once).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub processes: usize,
    pub cpu: Duration,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl Usage {
    fn of(pids: &[u32]) -> Usage {
        let mut u = Usage::default();
        for &pid in pids {
            let Ok(cpu) = super::procs::cpu_time_of(pid) else {
                continue;
            };
            u.processes += 1;
            u.cpu += cpu;
            u.rss_kib += std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .as_deref()
                .and_then(|s| kib_field(s, "VmRSS:"))
                .unwrap_or(0);
            u.pss_kib += std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .ok()
                .as_deref()
                .and_then(|s| kib_field(s, "Pss:"))
                .unwrap_or(0);
        }
        u
    }
}

/// A `Name:  N kB` field of /proc/PID/status or smaps_rollup, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What a worker's processes are: its `skiff join` (agent and proxy), its containerd, that
/// containerd's shims (one per container) and the containers' log drivers (skiff itself,
/// one per container), told apart by their command lines (NUL-separated).
#[derive(Debug, PartialEq)]
pub enum Role {
    Node,
    Containerd,
    Shim,
    Logger,
}

pub fn role(cmdline: &[u8], worker_dir: &Path) -> Option<Role> {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let dir = worker_dir.as_os_str().as_encoded_bytes();
    let under = |a: &[u8]| a.starts_with(dir) && a.get(dir.len()).is_none_or(|b| *b == b'/');
    if !args.iter().any(|a| under(a)) {
        return None;
    }
    let program = args
        .first()
        .map(|p| p.rsplit(|b| *b == b'/').next().unwrap_or(p))?;
    let logger = skiff_agent::logs::logger::MODE_KEY.as_bytes();
    if program.starts_with(b"containerd-shim") {
        Some(Role::Shim)
    } else if args.contains(&logger) {
        Some(Role::Logger)
    } else if program == b"containerd" {
        Some(Role::Containerd)
    } else if args.iter().any(|a| *a == b"join") {
        Some(Role::Node)
    } else {
        None
    }
}

/// The worker's processes by role: PIDs of the node, containerd, shims and loggers.
#[derive(Default)]
struct WorkerPids {
    node: Vec<u32>,
    containerd: Vec<u32>,
    shims: Vec<u32>,
    loggers: Vec<u32>,
}

fn worker_pids(worker_dir: &Path) -> WorkerPids {
    let mut by = WorkerPids::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return by;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        match role(&cmdline, worker_dir) {
            Some(Role::Node) => by.node.push(pid),
            Some(Role::Containerd) => by.containerd.push(pid),
            Some(Role::Shim) => by.shims.push(pid),
            Some(Role::Logger) => by.loggers.push(pid),
            None => {}
        }
    }
    by
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

async fn density(
    lab: &Lab,
    n: usize,
    timeout: Duration,
    rows: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let client = crate::lab::client(&lab.kubeconfig()).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // The throughput pods go first: their addresses count against the worker's range.
    let _ = lab.kubectl(&[
        "delete",
        "pod",
        "-l",
        "bench=tp",
        "--wait=true",
        "--timeout=60s",
    ]);
    let dir = lab.worker_dir("w1");
    let before = worker_pids(&dir);
    let (node0, containerd0) = (Usage::of(&before.node), Usage::of(&before.containerd));
    let deploy = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "density", "namespace": "default"},
        "spec": {
            "replicas": n,
            "selector": {"matchLabels": {"app": "density"}},
            "template": {
                "metadata": {"labels": {"app": "density"}},
                "spec": {
                    "nodeName": "w1",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "sleep", "image": "busybox:1.36",
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["sleep", "100000"]}],
                }
            }
        }
    });
    let started = Instant::now();
    lab.apply(&deploy.to_string())?;
    // Listing hundreds of pods costs the two cores too: polled twice a second.
    let (ready, took) = wait_ready(
        &pods,
        "app=density",
        n,
        started,
        timeout,
        Duration::from_millis(500),
    )
    .await?;
    let after = worker_pids(&dir);
    let (node1, containerd1) = (Usage::of(&after.node), Usage::of(&after.containerd));
    let ratio = ready as f64 / DENSITY_TARGET as f64;
    rows.push((
        format!("density, Deployment of {n} on one node"),
        format!(
            "{ready}/{n} Ready in {} ({ratio:.2}x the {DENSITY_TARGET} target)",
            secs(took)
        ),
    ));
    if ready > 0 {
        rows.push((
            "  pods Ready per second".into(),
            format!("{:.1}", ready as f64 / took.as_secs_f64().max(1e-3)),
        ));
    }
    rows.push((
        "  w1's skiff join (agent + proxy)".into(),
        format!(
            "{} CPU during, RSS {} after",
            secs(node1.cpu.saturating_sub(node0.cpu)),
            mib(node1.rss_kib)
        ),
    ));
    rows.push((
        "  w1's containerd".into(),
        format!(
            "{} CPU during, RSS {} after",
            secs(containerd1.cpu.saturating_sub(containerd0.cpu)),
            mib(containerd1.rss_kib)
        ),
    ));
    for (what, pids) in [
        ("  w1's containerd shims", &after.shims),
        ("  w1's container log drivers", &after.loggers),
    ] {
        let u = Usage::of(pids);
        rows.push((
            what.into(),
            format!(
                "{} processes, {} CPU, PSS {} (RSS {}) in all",
                u.processes,
                secs(u.cpu),
                mib(u.pss_kib),
                mib(u.rss_kib)
            ),
        ));
    }
    Ok(())
}

async fn on_lab(
    lab: &Lab,
    pod_network: &str,
    mib: usize,
    density_n: usize,
    timeout: Duration,
    rows: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    eprintln!("lab up ({pod_network})…");
    // Room for the density pods next to the throughput pods still terminating.
    let mask = node_cidr_mask_size(density_n + 5);
    let startup = lab.up(pod_network, (density_n + 10).max(110), mask).await?;
    rows.push((
        format!("startup, lab up --nodes 2 → Ready ({pod_network})"),
        secs(startup),
    ));
    eprintln!("throughput ({mib} MiB per transfer, best of 3)…");
    let (same, cross, ratio) = throughput(lab, mib).await?;
    if pod_network == "vxlan" {
        rows.push(("pod→pod same node (reference)".into(), same));
    } else {
        rows.push((format!("pod→pod same node ({pod_network} lab)"), same));
    }
    let ratio = ratio.map_or("n/a".into(), |r| format!("{r:.2}x same-node"));
    rows.push((
        format!("pod→pod cross node, {pod_network}"),
        format!("{cross} ({ratio})"),
    ));
    if density_n > 0 {
        eprintln!("density: {density_n} pods on w1 (pod range /{mask})…");
        density(lab, density_n, timeout, rows).await?;
    }
    Ok(())
}

pub async fn run(
    density_n: usize,
    mib: usize,
    host_gw: bool,
    timeout_seconds: u64,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(timeout_seconds);
    let mut rows = Vec::new();
    let mut plan = vec![("vxlan", density_n)];
    if host_gw {
        plan.push(("host-gw", 0));
    }
    let mut result = Ok(());
    for (salt, (mode, n)) in plan.into_iter().enumerate() {
        let lab = Lab::new(salt as u32)?;
        let r = tokio::select! {
            r = on_lab(&lab, mode, mib, n, timeout, &mut rows) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        eprintln!("lab down…");
        let down = lab.down();
        if let Err(e) = r {
            result = Err(e).with_context(|| format!("the {mode} lab"));
            if let Err(d) = down {
                eprintln!("{d:#}");
            }
            break;
        }
        down?;
    }
    println!();
    println!("skiff bench cluster: a two-worker skiff lab (network namespaces on one machine)");
    for (what, value) in &rows {
        println!("  {what:<50} {value}");
    }
    println!();
    println!(
        "reference: same-node pod→pod TCP in the same lab (veth pairs through the worker's bridge)"
    );
    println!(
        "targets: cross-node ≥ 0.5x same-node; density {DENSITY_TARGET} pods Ready on one node"
    );
    if !host_gw {
        println!("host-gw: skipped (--no-host-gw)");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_seconds() {
        let r = mib_per_s(256 * 1024 * 1024, Duration::from_secs(2));
        assert!((r - 128.0).abs() < 1e-9);
        assert_eq!(mib_per_s(1, Duration::ZERO), 0.0);
        assert_eq!(secs(Duration::from_millis(1250)), "1.2 s");
    }

    #[test]
    fn the_pod_range_grows_only_when_the_pods_do_not_fit() {
        assert_eq!(node_cidr_mask_size(0), 24);
        assert_eq!(node_cidr_mask_size(110), 24);
        // A /24 gives 253 addresses to pods.
        assert_eq!(node_cidr_mask_size(253), 24);
        assert_eq!(node_cidr_mask_size(254), 23);
        assert_eq!(node_cidr_mask_size(255), 23);
        assert_eq!(node_cidr_mask_size(509), 23);
        assert_eq!(node_cidr_mask_size(510), 22);
        // Not wider than a /17 of the cluster's /16.
        assert_eq!(node_cidr_mask_size(1_000_000), 17);
    }

    #[test]
    fn memory_from_proc() {
        let status = "Name:\tskiff\nVmPeak:\t  99 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(51234));
        assert_eq!(kib_field("Name:\tx\n", "VmRSS:"), None);
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  13000 kB\nPss:   2600 kB\nPss_Anon: 2000 kB\n";
        assert_eq!(kib_field(rollup, "Pss:"), Some(2600));
    }

    #[test]
    fn a_workers_processes_by_their_command_lines() {
        let dir = Path::new("/tmp/skb-1/w1");
        let cmd = |args: &[&str]| args.join("\0").into_bytes();
        assert_eq!(
            role(
                &cmd(&["/x/skiff", "join", "--data-dir", "/tmp/skb-1/w1", ""]),
                dir
            ),
            Some(Role::Node)
        );
        assert_eq!(
            role(
                &cmd(&[
                    "containerd",
                    "--config",
                    "/tmp/skb-1/w1/agent/containerd/config.toml"
                ]),
                dir
            ),
            Some(Role::Containerd)
        );
        assert_eq!(
            role(
                &cmd(&[
                    "/usr/bin/containerd-shim-runc-v2",
                    "-namespace",
                    "k8s.io",
                    "-address",
                    "/tmp/skb-1/w1/agent/containerd/containerd.sock"
                ]),
                dir
            ),
            Some(Role::Shim)
        );
        // Another worker (w10 starts with w1) and other processes are not w1's.
        assert_eq!(
            role(
                &cmd(&["/x/skiff", "join", "--data-dir", "/tmp/skb-1/w10"]),
                dir
            ),
            None
        );
        assert_eq!(
            role(
                &cmd(&[
                    "/x/skiff",
                    "path",
                    "/tmp/skb-1/w1/pod-logs/default_p_u/c/0.log",
                    "skiff-container-logger",
                    "1"
                ]),
                dir
            ),
            Some(Role::Logger)
        );
        assert_eq!(role(&cmd(&["sleep", "100000"]), dir), None);
        assert_eq!(role(b"", dir), None);
    }
}
