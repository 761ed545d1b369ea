//! `skiff bench pods`: how fast the agent gets pods running and how much memory it needs,
//! against `ctr run -d` of the same image on the same containerd, in one run.
//!
//! A control plane and a `skiff-agent` (with its private containerd) are started in
//! throwaway directories, the busybox image is imported, then: pods created one at a time
//! (create → Running), a burst created at once, the agent's RSS with none and with all of them
//! running, and `ctr run -d` of the same image for reference. Everything is removed at the end.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::testimage::TestImage;
use skiff_agent::runtime::{Runtime, reference};

use super::{ms, percentile, procs};

pub(super) const NODE: &str = "bench-node";
const REF_NAMESPACE: &str = "skiff-bench-ref";
const BRIDGE: &str = "skbench0";
const TABLE: &str = "skiff-bench";
const CGROUP_ROOT: &str = "/skiff-bench/kubepods";

/// The agent under test and what it needs removed afterwards.
pub(super) struct Agent {
    guard: Option<procs::Guard>,
    bin: PathBuf,
    args: Vec<String>,
}

impl Agent {
    pub(super) fn rss_mib(&self) -> anyhow::Result<f64> {
        self.guard.as_ref().context("agent not running")?.rss_mib()
    }
    pub(super) fn cpu_time(&self) -> anyhow::Result<Duration> {
        self.guard.as_ref().context("agent not running")?.cpu_time()
    }
    pub(super) fn dir(&self) -> &Path {
        self.guard
            .as_ref()
            .map_or(Path::new("/nonexistent"), |g| g.dir.path())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        // The agent goes first (its directory stays for `--down`), then all it made.
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(g.pid() as i32, libc::SIGKILL) };
        let _ = g.child.wait();
        match Command::new(&self.bin)
            .args(&self.args)
            .arg("--down")
            .env("RUST_LOG", "error")
            .output()
        {
            Ok(o) if !o.status.success() => {
                eprintln!("cleanup: {}", String::from_utf8_lossy(&o.stderr));
            }
            Err(e) => eprintln!("cleanup: {e}"),
            Ok(_) => {}
        }
        let quiet = |cmd: &str, args: &[&str]| {
            let _ = Command::new(cmd).args(args).stderr(Stdio::null()).status();
        };
        quiet("ip", &["link", "del", BRIDGE]);
        for family in ["inet", "bridge"] {
            quiet("nft", &["delete", "table", family, TABLE]);
        }
        // Our pod tree, and the cgroup containerd made for the reference containers'
        // namespace.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                for dir in ["skiff-bench", REF_NAMESPACE] {
                    let _ = std::fs::remove_dir(h.path().join(dir));
                }
            }
        }
    }
}

fn write_cni_config(dir: &Path) -> anyhow::Result<()> {
    let conf = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "skiff-bench",
        "plugins": [{
            "type": "skiff-bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "firewallTable": TABLE,
            "stateDir": dir.join("cni-state"),
            "ipam": {
                "type": "skiff-ipam",
                "dataDir": dir.join("ipam"),
                "ranges": [[{"subnet": "10.253.0.0/24"}]],
            },
        }],
    });
    std::fs::create_dir_all(dir.join("net.d"))?;
    std::fs::write(
        dir.join("net.d/10-bench.conflist"),
        serde_json::to_vec(&conf)?,
    )?;
    Ok(())
}

pub(super) fn start_agent(cp_dir: &Path, extra: &[&str]) -> anyhow::Result<Agent> {
    let bin = procs::sibling("skiff-agent")?;
    let plugins = procs::sibling("skiff-bridge")?
        .parent()
        .context("plugin dir")?
        .display()
        .to_string();
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-node-")
        .tempdir()?;
    write_cni_config(dir.path())?;
    let mut args: Vec<String> = vec![
        "--kubeconfig".into(),
        cp_dir.join("admin.kubeconfig").display().to_string(),
        "--node-name".into(),
        NODE.into(),
        "--root-dir".into(),
        dir.path().join("root").display().to_string(),
        "--cni-conf-dir".into(),
        dir.path().join("net.d").display().to_string(),
        "--cni-bin-dir".into(),
        format!("{plugins},/usr/lib/cni"),
        "--pod-logs-dir".into(),
        dir.path().join("logs").display().to_string(),
        "--cgroup-root".into(),
        CGROUP_ROOT.into(),
        "--node-ip".into(),
        "127.0.0.1".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut child = Command::new(&bin)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("agent stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
        for _ in lines {}
    });
    let agent = Agent {
        guard: Some(procs::Guard { child, dir }),
        bin,
        args,
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(l) if l.starts_with("ready:") => Ok(agent),
        Ok(l) => bail!("skiff-agent printed {l:?}"),
        Err(_) => bail!("skiff-agent did not become ready"),
    }
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        }
    }))
    .unwrap_or_default()
}

/// When each pod was first seen Running.
pub(super) type Seen = Arc<Mutex<HashMap<String, Instant>>>;

pub(super) async fn watch_running(api: Api<Pod>, seen: Seen) {
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            _ => continue,
        };
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if running && let Some(name) = pod.metadata.name {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name)
                .or_insert_with(Instant::now);
        }
    }
}

pub(super) async fn wait_running(
    seen: &Seen,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(*t);
        }
        if Instant::now() > deadline {
            bail!("pod {name} not Running within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn ctr(socket: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ctr")
        .arg("-a")
        .arg(socket)
        .args(["-n", REF_NAMESPACE])
        .args(args)
        .output()
        .context("running ctr")?;
    if !out.status.success() {
        bail!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub(super) fn summary(label: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(samples, 50.0), percentile(samples, 99.0));
    println!(
        "{label:<34} p50 {:>10}   p99 {:>10}   (n={})",
        ms(p50),
        ms(p99),
        samples.len()
    );
    (p50, p99)
}

pub async fn run(sequential: usize, burst: usize, ref_runs: usize) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("skiff bench pods needs root (namespaces, cgroups, containerd)");
    }
    let (cp, _port, _) = procs::control_plane(&procs::sibling("skiff-controlplane")?)?;
    let agent = start_agent(cp.dir.path(), &[])?;
    let socket = agent.dir().join("root/containerd/containerd.sock");

    // The image, for the pods and for ctr.
    let image = reference::normalize("skiff.bench/busybox:1").context("image name")?;
    let archive = agent.dir().join("busybox.tar");
    TestImage::busybox(&image)
        .write_oci_archive(&archive)
        .context("building the busybox image (install busybox-static)")?;
    let rt = Containerd::connect(ContainerdConfig::new(&socket, "skiff")).await?;
    rt.import_archive(&archive).await.context("importing")?;
    ctr(
        &socket,
        &["images", "import", &archive.display().to_string()],
    )?;

    let kc = kube::config::Kubeconfig::read_from(cp.dir.path().join("admin.kubeconfig"))?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let seen: Seen = Arc::default();
    let watch = tokio::spawn(watch_running(pods.clone(), seen.clone()));
    // The node must be Ready before pods are timed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = agent.rss_mib()?;

    println!(
        "skiff bench pods: {sequential} pods one at a time, a burst of {burst}, {ref_runs} `ctr run -d` for reference\n"
    );
    // One pod at a time: create → Running.
    let mut one = Vec::with_capacity(sequential);
    for i in 0..sequential {
        let name = format!("seq-{i}");
        let t0 = Instant::now();
        pods.create(&PostParams::default(), &pod(&name, &image))
            .await?;
        let t = wait_running(&seen, &name, Duration::from_secs(60)).await?;
        one.push(t.duration_since(t0));
    }
    // A burst created at once.
    let t0 = Instant::now();
    let creates = (0..burst).map(|i| {
        let pods = pods.clone();
        let image = image.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("burst-{i}"), &image))
                .await
        }
    });
    for r in futures::future::join_all(creates).await {
        r?;
    }
    let mut burst_lat = Vec::with_capacity(burst);
    for i in 0..burst {
        let t = wait_running(&seen, &format!("burst-{i}"), Duration::from_secs(120)).await?;
        burst_lat.push(t.duration_since(t0));
    }
    let all_running = burst_lat.iter().max().copied().unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_full = agent.rss_mib()?;
    watch.abort();

    // The reference: `ctr run -d` of the same image on the same containerd.
    let mut reference = Vec::with_capacity(ref_runs);
    for i in 0..ref_runs {
        let id = format!("bench-ref-{i}");
        let t0 = Instant::now();
        ctr(&socket, &["run", "-d", &image, &id, "sleep", "3600"])?;
        reference.push(t0.elapsed());
    }
    let refrt = Containerd::connect(ContainerdConfig::new(&socket, REF_NAMESPACE)).await?;
    for c in refrt.list().await? {
        let _ = refrt.delete(&c.id).await;
    }

    let (p50, p99) = summary("pod create → Running, one at a time", &mut one);
    let (b50, b99) = summary(
        &format!("pod create → Running, burst of {burst}"),
        &mut burst_lat,
    );
    let (r50, r99) = summary("ctr run -d (reference)", &mut reference);
    println!();
    println!("{:<34} {}", "burst: all Running after", ms(all_running));
    println!("{:<34} {:.1} MiB", "agent RSS, 0 pods", rss_idle);
    println!(
        "{:<34} {:.1} MiB",
        format!("agent RSS, {} pods", sequential + burst),
        rss_full
    );
    println!();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "ratio to ctr run -d: p50 {:.2}x, p99 {:.2}x (burst p50 {:.2}x, p99 {:.2}x)",
        ratio(p50, r50),
        ratio(p99, r99),
        ratio(b50, r50),
        ratio(b99, r99)
    );
    println!(
        "targets: p50 <= 2x ctr run -d [{}], p99 <= 500 ms [{}], burst of {burst} <= 5 s [{}], RSS at 50 pods <= 40 MiB [{}]",
        ok(ratio(p50, r50) <= 2.0),
        ok(p99 <= Duration::from_millis(500)),
        ok(all_running <= Duration::from_secs(5)),
        ok(rss_full <= 40.0),
    );
    drop(agent);
    drop(cp);
    Ok(())
}

pub(super) fn ok(b: bool) -> &'static str {
    if b { "met" } else { "MISSED" }
}
