//! `skiff bench cluster` (root): a two-worker `skiff lab` of its own (unique bridge, subnet,
//! namespaces, port and directory; taken down at the end, also on error or Ctrl-C):
//! - startup: `lab up --nodes 2` until every node is Ready (and busybox imported);
//! - pod-to-pod TCP throughput with busybox `nc`, same worker (the reference: a veth pair
//!   through the worker's bridge) against across workers (VXLAN, then host-gw);
//! - density: N busybox `sleep` pods of a Deployment pinned to one worker, until all Ready.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

const MIB: f64 = 1024.0 * 1024.0;

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
        let id = std::process::id() % 20 + 230 + salt;
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

    async fn up(&self, pod_network: &str, max_pods: usize) -> anyhow::Result<Duration> {
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
            .args(["--max-pods", &max_pods.to_string(), "--workdir"])
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

fn pod(name: &str, node: &str, script: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "busybox:1.36",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}],
        }
    })
    .to_string()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Pods matching `selector` that are Ready, polled until `want` or the deadline.
async fn wait_ready(
    pods: &Api<Pod>,
    selector: &str,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    loop {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .context("listing pods")?;
        let ready = list.items.iter().filter(|p| is_ready(p)).count();
        if ready >= want || started.elapsed() >= timeout {
            return Ok((ready, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// MiB/s of `bytes` in `d`.
pub fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    bytes as f64 / MIB / d.as_secs_f64()
}

/// The byte count `wc -c` printed (the last number of the output).
pub fn parse_count(out: &str) -> Option<u64> {
    out.split_whitespace().last()?.parse().ok()
}

/// One transfer of `mib` MiB from the server pod to `client`: the server sends zeros, the
/// client counts them. Timed from the host around `kubectl exec`, minus the exec's own
/// round trip (`base`). Returns the bytes received and the time.
fn transfer(
    lab: &Lab,
    client: &str,
    server_ip: &str,
    base: Duration,
) -> anyhow::Result<(u64, Duration)> {
    // busybox nc quits at the end of its stdin: a FIFO held open keeps it reading until
    // the server closes.
    let script = format!(
        "rm -f /tmp/f; mkfifo /tmp/f; nc {server_ip} 5001 < /tmp/f | wc -c & exec 3>/tmp/f; wait"
    );
    let started = Instant::now();
    let out = lab.kubectl(&["exec", client, "--", "sh", "-c", &script])?;
    let took = started.elapsed().saturating_sub(base);
    if !out.status.success() {
        bail!(
            "exec in {client}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let got = parse_count(&String::from_utf8_lossy(&out.stdout)).context("no byte count")?;
    Ok((got, took))
}

/// Same-node and cross-node throughput on a lab that is up: (same, cross) MiB/s, or why not.
async fn throughput(lab: &Lab, mib: usize) -> anyhow::Result<(String, String, Option<f64>)> {
    let client = crate::lab::client(&lab.kubeconfig()).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let serve = format!(
        "while true; do dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | nc -l -p 5001; done"
    );
    let mut manifest = String::new();
    for (name, node, script) in [
        ("tp-server", "w1", serve.as_str()),
        ("tp-same", "w1", "sleep 100000"),
        ("tp-cross", "w2", "sleep 100000"),
    ] {
        manifest.push_str(&pod(name, node, script));
        manifest.push('\n');
    }
    let mut list = String::from(r#"{"apiVersion":"v1","kind":"List","items":["#);
    list.push_str(&manifest.trim_end().replace('\n', ","));
    list.push_str("]}");
    let labelled = list.replace(
        r#""namespace":"default"}"#,
        r#""namespace":"default","labels":{"bench":"tp"}}"#,
    );
    lab.apply(&labelled)?;
    let (ready, _) = wait_ready(&pods, "bench=tp", 3, Duration::from_secs(120)).await?;
    if ready < 3 {
        bail!("throughput pods: {ready}/3 Ready within 120s");
    }
    let server_ip = pods
        .get("tp-server")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("the server pod has no IP")?;
    let mut base = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        lab.kubectl(&["exec", "tp-same", "--", "true"])?;
        base.push(t.elapsed());
    }
    base.sort();
    let base = base[1];
    let want = (mib as u64) * 1024 * 1024;
    let mut rates = Vec::new();
    for client in ["tp-same", "tp-cross"] {
        let mut best: Option<f64> = None;
        let mut last = String::new();
        for _ in 0..3 {
            match transfer(lab, client, &server_ip, base) {
                Ok((got, took)) if got == want => {
                    let r = mib_per_s(got, took);
                    best = Some(best.map_or(r, |b| b.max(r)));
                }
                Ok((got, _)) => last = format!("received {got} of {want} bytes"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
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

async fn density(lab: &Lab, n: usize, timeout: Duration) -> anyhow::Result<(usize, Duration)> {
    let client = crate::lab::client(&lab.kubeconfig()).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // The throughput pods go first: the worker's pod range is a /24.
    let _ = lab.kubectl(&[
        "delete",
        "pod",
        "-l",
        "bench=tp",
        "--wait=true",
        "--timeout=60s",
    ]);
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
    lab.apply(&deploy.to_string())?;
    wait_ready(&pods, "app=density", n, timeout).await
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
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
    let startup = lab.up(pod_network, (density_n + 10).max(110)).await?;
    rows.push((
        format!("startup, lab up --nodes 2 → Ready ({pod_network})"),
        secs(startup),
    ));
    eprintln!("throughput ({mib} MiB per transfer)…");
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
        eprintln!("density: {density_n} pods on w1…");
        let (ready, took) = density(lab, density_n, timeout).await?;
        rows.push((
            format!("density, Deployment of {density_n} on one node"),
            format!("{ready}/{density_n} Ready in {}", secs(took)),
        ));
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
        "reference: same-node pod→pod throughput in the same lab (veth through the worker's bridge)"
    );
    println!(
        "targets: cross-node ≥ 0.5x same-node; density {} pods Ready on one node",
        250
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
    fn counts_and_rates() {
        assert_eq!(parse_count("  268435456\n"), Some(268_435_456));
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("oops"), None);
        let r = mib_per_s(256 * 1024 * 1024, Duration::from_secs(2));
        assert!((r - 128.0).abs() < 1e-9);
        assert_eq!(mib_per_s(1, Duration::ZERO), 0.0);
        assert_eq!(secs(Duration::from_millis(1250)), "1.2 s");
    }
}
