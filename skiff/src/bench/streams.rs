//! `skiff bench streams`: the interactive paths through the API server to the agent, timed
//! with the real kubectl against references in the same run:
//! - `kubectl exec … true` round trip, against `ctr task exec` of the same command on the
//!   same containerd (what exec costs without the API server, the agent and kubectl);
//! - `kubectl logs -f` throughput from a pod writing flat out (container → logger → CRI
//!   log file → agent → API server → kubectl), measured from the first byte kubectl prints;
//! - `kubectl port-forward` throughput of an HTTP download, against the same download
//!   straight from the pod's IP.
//!
//! A control plane and an agent run in throwaway directories; all is removed at the end.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use skiff_agent::runtime::Runtime;
use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::reference;
use skiff_agent::runtime::testimage::TestImage;

use super::exec_client::ExecClient;
use super::pods::{NODE, Seen, ok, start_agent, summary, wait_running, watch_running};
use super::{ms, procs};

const MIB: f64 = 1024.0 * 1024.0;

fn pod(name: &str, image: &str, script: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}],
        }
    }))?)
}

fn kubectl(kubeconfig: &Path) -> Command {
    let mut c = Command::new("kubectl");
    c.arg("--kubeconfig").arg(kubeconfig);
    c
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// Downloads `path` over HTTP/1.0 from `addr`; returns the bytes received and the time.
fn download(addr: &str, path: &str) -> anyhow::Result<(usize, Duration)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n")?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => total += n,
        }
    }
    Ok((total, t0.elapsed()))
}

/// Kills a child process (kubectl) when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kubectl port-forward pod/web 0:8080` and returns it with its local port.
fn port_forward(kubeconfig: &Path) -> anyhow::Result<(Kill, u16)> {
    let mut child = kubectl(kubeconfig)
        .args(["port-forward", "pod/web", "0:8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kubectl port-forward")?;
    let stdout = child.stdout.take().context("port-forward stdout")?;
    let guard = Kill(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let line = lines
        .next()
        .context("port-forward printed nothing")?
        .context("reading port-forward")?;
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("unexpected port-forward output {line:?}"))?;
    std::thread::spawn(move || for _ in lines {});
    Ok((guard, port))
}

/// Best of `runs` downloads, in MiB/s.
fn throughput(addr: &str, runs: usize, expect: usize) -> anyhow::Result<f64> {
    let mut best: f64 = 0.0;
    for _ in 0..runs {
        let (n, t) = download(addr, "/big")?;
        if n < expect {
            bail!("download from {addr} got {n} bytes, expected at least {expect}");
        }
        best = best.max(n as f64 / MIB / t.as_secs_f64().max(1e-9));
    }
    Ok(best)
}

pub async fn run(execs: usize, log_mib: usize, download_mib: usize) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("skiff bench streams needs root (namespaces, cgroups, containerd)");
    }
    let (cp, _port, _) = procs::control_plane(&procs::sibling("skiff-controlplane")?)?;
    let kubeconfig = cp.dir.path().join("admin.kubeconfig");
    // Large log files, so the follower is measured, not rotation.
    let agent = start_agent(
        cp.dir.path(),
        &[
            "--container-log-max-size",
            "1Gi",
            "--container-log-max-files",
            "2",
        ],
    )?;
    let socket = agent.dir().join("root/containerd/containerd.sock");
    let image = reference::normalize("skiff.bench/busybox:1").context("image name")?;
    let archive = agent.dir().join("busybox.tar");
    TestImage::busybox(&image)
        .write_oci_archive(&archive)
        .context("building the busybox image (install busybox-static)")?;
    let rt = Containerd::connect(ContainerdConfig::new(&socket, "skiff")).await?;
    rt.import_archive(&archive).await.context("importing")?;

    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let seen: Seen = Arc::default();
    let watch = tokio::spawn(watch_running(pods.clone(), seen.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "skiff bench streams: {execs} execs, {log_mib} MiB of logs followed, {download_mib} MiB downloads through port-forward and direct\n"
    );
    let web = format!(
        "mkdir -p /www && head -c {} /dev/zero > /www/big && exec httpd -f -p 8080 -h /www",
        download_mib * 1024 * 1024
    );
    pods.create(&PostParams::default(), &pod("web", &image, &web)?)
        .await?;
    wait_running(&seen, "web", Duration::from_secs(60)).await?;
    let web_pod = pods.get("web").await?;
    let status = web_pod.status.unwrap_or_default();
    let pod_ip = status.pod_ip.clone().context("web has no pod IP")?;
    let container_id = status
        .container_statuses
        .unwrap_or_default()
        .first()
        .and_then(|c| c.container_id.clone())
        .and_then(|id| id.strip_prefix("containerd://").map(str::to_string))
        .context("web has no container id")?;
    // httpd answers once the file is written.
    let direct = format!("{pod_ip}:8080");
    let deadline = Instant::now() + Duration::from_secs(60);
    while download(&direct, "/big").map(|(n, _)| n).unwrap_or(0) < download_mib * 1024 * 1024 {
        if Instant::now() > deadline {
            bail!("web never served /big");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eprintln!("exec round trips…");
    let mut kexec = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t0 = Instant::now();
        run_ok(kubectl(&kubeconfig).args(["exec", "web", "--", "true"]))?;
        kexec.push(t0.elapsed());
    }
    let client = ExecClient::from_kubeconfig(&kubeconfig)?;
    let mut wexec = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t0 = Instant::now();
        let status = client.exec("default", "web", &["true"]).await?;
        if status != "Success" {
            bail!("exec true ended with {status}");
        }
        wexec.push(t0.elapsed());
    }
    let mut kget = Vec::with_capacity(execs);
    for _ in 0..execs {
        let t0 = Instant::now();
        run_ok(kubectl(&kubeconfig).args(["get", "pod", "web", "-o", "name"]))?;
        kget.push(t0.elapsed());
    }
    let mut cexec = Vec::with_capacity(execs);
    for i in 0..execs {
        let t0 = Instant::now();
        run_ok(
            Command::new("ctr")
                .arg("-a")
                .arg(&socket)
                .args(["-n", "skiff", "task", "exec", "--exec-id"])
                .arg(format!("bench-{i}"))
                .args([&container_id, "true"]),
        )?;
        cexec.push(t0.elapsed());
    }

    eprintln!("downloads through port-forward and direct…");
    let want = download_mib * 1024 * 1024;
    let direct_mibs = throughput(&direct, 3, want)?;
    let (pf, port) = port_forward(&kubeconfig)?;
    let cpu = |pf: &Kill| -> anyhow::Result<[Duration; 3]> {
        Ok([
            procs::cpu_time_of(pf.0.id())?,
            cp.cpu_time()?,
            agent.cpu_time()?,
        ])
    };
    let before = cpu(&pf)?;
    let forwarded_mibs = throughput(&format!("127.0.0.1:{port}"), 3, want)?;
    let after = cpu(&pf)?;
    drop(pf);
    // CPU milliseconds per MiB forwarded, per process.
    let per_mib: Vec<f64> = (0..3)
        .map(|i| (after[i] - before[i]).as_secs_f64() * 1e3 / (3 * download_mib) as f64)
        .collect();

    // Log follow: a pod writing flat out, followed from its first line.
    let line = "0123456789abcdef".repeat(8);
    // Whole lines only: a last line without its newline stays in the logger until it ends.
    let lines = log_mib * 1024 * 1024 / (line.len() + 1);
    let want_logs = lines * (line.len() + 1);
    let script = format!("yes {line} | head -n {lines} ; sleep 3600");
    pods.create(&PostParams::default(), &pod("chatty", &image, &script)?)
        .await?;
    wait_running(&seen, "chatty", Duration::from_secs(60)).await?;
    let mut follow = kubectl(&kubeconfig)
        .args(["logs", "-f", "chatty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kubectl logs -f")?;
    let mut out = follow.stdout.take().context("logs stdout")?;
    eprintln!("following the logs of a pod writing {log_mib} MiB…");
    let follow = Kill(follow);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Instant)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0usize;
        while got < want_logs {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got += n;
                    if tx.send((got, Instant::now())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut first: Option<Instant> = None;
    let (mut got, mut last) = (0usize, Instant::now());
    // A follower that stalls for 20 s has lost the stream: say how far it got.
    while got < want_logs {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((n, at)) => {
                first.get_or_insert(at);
                (got, last) = (n, at);
            }
            Err(_) => break,
        }
    }
    drop(follow);
    if got < want_logs {
        bail!("kubectl logs -f stalled after {got} of {want_logs} bytes");
    }
    let elapsed = first.map(|f| last.duration_since(f)).unwrap_or_default();
    let follow_mibs = got as f64 / MIB / elapsed.as_secs_f64().max(1e-9);
    watch.abort();

    let (k50, k99) = summary("kubectl exec -- true", &mut kexec);
    let (c50, _) = summary("ctr task exec true (reference)", &mut cexec);
    summary("kubectl get pod (kubectl's own cost)", &mut kget);
    let (w50, _) = summary("exec true, WebSocket client (no kubectl)", &mut wexec);
    println!();
    println!(
        "{:<34} {:>8.1} MiB/s",
        "port-forward download", forwarded_mibs
    );
    println!(
        "{:<34} {:>8.1} MiB/s",
        "direct to pod IP (reference)", direct_mibs
    );
    println!(
        "{:<34} kubectl {:.2}, control plane {:.2}, agent {:.2}",
        "port-forward CPU ms per MiB", per_mib[0], per_mib[1], per_mib[2]
    );
    println!(
        "{:<34} {:>8.1} MiB/s   ({log_mib} MiB)",
        "kubectl logs -f", follow_mibs
    );
    println!();
    let pf_ratio = forwarded_mibs / direct_mibs.max(1e-9);
    println!(
        "ratio: kubectl exec p50 {:.2}x ctr task exec; port-forward {:.0}% of direct",
        k50.as_secs_f64() / c50.as_secs_f64().max(1e-9),
        pf_ratio * 100.0
    );
    println!(
        "targets: exec round trip p50 <= 100 ms: kubectl [{}] (p99 {}), without kubectl's start [{}] ({}); port-forward >= 50% of direct [{}]",
        ok(k50 <= Duration::from_millis(100)),
        ms(k99),
        ok(w50 <= Duration::from_millis(100)),
        ms(w50),
        ok(pf_ratio >= 0.5),
    );
    drop(agent);
    drop(cp);
    Ok(())
}
