//! `skiff bench scheduler`: a control plane (its scheduler in-process), simulated nodes
//! registered as plain Node objects (no kubelet), and a burst of pods with mixed
//! requests, node affinity and tolerations; pods/s and per-pod create → bound latency,
//! as a watch sees them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ms, percentile, procs};

/// HTTPS client to the control plane with the admin token.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(dir: &std::path::Path, port: u16) -> anyhow::Result<Client> {
        let ca = std::fs::read(dir.join("pki/ca.crt")).context("reading CA")?;
        let token =
            std::fs::read_to_string(dir.join("pki/admin.token")).context("reading token")?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse()?,
        );
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
            .default_headers(headers)
            .build()?;
        Ok(Client {
            http,
            base: format!("https://127.0.0.1:{port}"),
        })
    }

    /// The response body, unparsed: the client shares the machine with the server, so
    /// it decodes only what it reads.
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Vec<u8>> {
        let r = req.send().await.with_context(|| what.to_string())?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(req, &format!("POST {path}")).await
    }

    async fn patch_status(&self, path: &str, body: &Value) -> anyhow::Result<Vec<u8>> {
        let req = self
            .http
            .patch(format!("{}{path}/status", self.base))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            )
            .body(serde_json::to_vec(body)?);
        self.send(req, &format!("PATCH {path}/status")).await
    }
}

/// kube-scheduler's pass marks in scheduler_perf (pods/s, 5,000 nodes; SchedulingBasic
/// and its affinity/taint variants): the range a healthy upstream build stays above.
const UPSTREAM_FLOOR: (f64, f64) = (680.0, 1100.0);

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const NS: &str = "bench";

/// Node `i`: mixed sizes, three zones, one in ten tainted for infrastructure pods.
fn node(i: usize) -> (Value, Value) {
    let name = format!("node-{i:04}");
    let (cpu, mem) = match i % 10 {
        0 => ("16", "64Gi"),
        1..=3 => ("8", "32Gi"),
        _ => ("4", "16Gi"),
    };
    let mut taints = vec![];
    if i % 10 == 9 {
        taints.push(json!({"key": "dedicated", "value": "infra", "effect": "NoSchedule"}));
    }
    let obj = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": ZONES[i % 3],
            "node.skiff.dev/class": if i % 10 < 4 { "large" } else { "standard" },
        }},
        "spec": {"taints": taints},
    });
    let res = json!({"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "100Gi"});
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"capacity": res, "allocatable": res, "conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    (obj, status)
}

/// Pod `i`: requests from best-effort to 1 cpu; a fifth with required or preferred
/// node affinity, a tenth tolerating the infrastructure taint (and pinned to a zone),
/// a tenth preferring to stay off hosts that already run its app.
fn pod(i: usize) -> Value {
    let cpu = ["50m", "100m", "250m", "500m", "1"][i % 5];
    let mem = ["64Mi", "128Mi", "256Mi", "512Mi", "1Gi"][(i / 5) % 5];
    let resources = if i % 10 == 7 {
        json!({})
    } else {
        json!({"requests": {"cpu": cpu, "memory": mem}})
    };
    let mut spec = json!({
        "containers": [{"name": "app", "image": "registry.local/bench/app:1", "resources": resources}],
    });
    match i % 10 {
        1 => {
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a", "zone-b"]}]}]}}});
        }
        2 => {
            spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [
                    {"key": "node.skiff.dev/class", "operator": "In", "values": ["large"]}]}}]}});
        }
        3 => {
            spec["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]);
            spec["nodeSelector"] = json!({"topology.kubernetes.io/zone": ZONES[i % 3]});
        }
        4 => {
            spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app": format!("bench-{}", i % 50)}}}}]}});
        }
        _ => {}
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "namespace": NS, "labels": {"app": format!("bench-{}", i % 50)}},
        "spec": spec,
    })
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: WatchObject,
}

#[derive(Deserialize)]
struct WatchObject {
    metadata: WatchMeta,
    #[serde(default)]
    spec: Option<WatchSpec>,
}

#[derive(Deserialize)]
struct WatchMeta {
    name: String,
}

#[derive(Deserialize)]
struct WatchSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

/// CPU time (user + system) this process has used.
fn own_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `total` requests over `conc` tasks; returns when all are done.
async fn fan_out<F, Fut>(total: usize, conc: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (next, op) = (next.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                op(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

pub async fn run(nodes: usize, pods: usize, concurrency: usize) -> anyhow::Result<()> {
    let bin = procs::sibling("skiff-controlplane")?;
    let (cp, port, ready) = procs::control_plane(&bin)?;
    println!(
        "skiff bench scheduler — {nodes} nodes, {pods} pods, {concurrency} concurrent creates"
    );
    println!("control plane ready in {}", ms(ready));
    let dir = cp.dir.path().to_path_buf();
    let c = Client::new(&dir, port)?;

    let t = Instant::now();
    let nc = c.clone();
    fan_out(nodes, 16, move |i| {
        let c = nc.clone();
        async move {
            let (obj, status) = node(i);
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            c.post("/api/v1/nodes", serde_json::to_vec(&obj)?).await?;
            c.patch_status(&format!("/api/v1/nodes/{name}"), &status)
                .await?;
            Ok(())
        }
    })
    .await?;
    println!("{nodes} nodes registered in {}", ms(t.elapsed()));
    let nsbody = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    c.post("/api/v1/namespaces", serde_json::to_vec(&nsbody)?)
        .await?;

    // The scheduler sees nodes through its own watch: a canary pinned to the last node
    // is bound only once it has seen them all.
    let mut canary = pod(0);
    canary["metadata"]["name"] = json!("canary");
    canary["spec"]["nodeSelector"] =
        json!({"kubernetes.io/hostname": format!("node-{:04}", nodes - 1)});
    canary["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    let made: Value = serde_json::from_slice(
        &c.post(
            &format!("/api/v1/namespaces/{NS}/pods"),
            serde_json::to_vec(&canary)?,
        )
        .await?,
    )
    .context("decoding the canary")?;
    let rv = made["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    let resp = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv}",
            c.base
        ))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("watch: {}", resp.status());
    }
    let bound_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; pods]));
    let (canary_tx, canary_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let bound_at = bound_at.clone();
        tokio::spawn(async move {
            let mut canary_tx = Some(canary_tx);
            let mut done_tx = Some(done_tx);
            let mut stream = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut bound = 0usize;
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                let now = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    // Only a bound pod's event names a node: skip decoding the rest.
                    if !line.windows(11).any(|w| w == b"\"nodeName\":") {
                        continue;
                    }
                    let Ok(ev) = serde_json::from_slice::<WatchEvent>(&line) else {
                        continue;
                    };
                    if ev.kind != "MODIFIED" && ev.kind != "ADDED" {
                        continue;
                    }
                    let on_node = ev
                        .object
                        .spec
                        .and_then(|s| s.node_name)
                        .is_some_and(|n| !n.is_empty());
                    if !on_node {
                        continue;
                    }
                    let name = ev.object.metadata.name;
                    if name == "canary" {
                        if let Some(tx) = canary_tx.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    let Some(i) = name
                        .strip_prefix("p-")
                        .and_then(|n| n.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let mut b = bound_at.lock().unwrap_or_else(|p| p.into_inner());
                    if i < b.len() && b[i].is_none() {
                        b[i] = Some(now);
                        bound += 1;
                        if bound == b.len()
                            && let Some(tx) = done_tx.take()
                        {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(30), canary_rx)
        .await
        .context("the canary pod was not scheduled within 30 s")??;

    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..pods)
            .map(|i| serde_json::to_vec(&pod(i)))
            .collect::<Result<_, _>>()?,
    );
    let created_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; pods]));
    let cpu0 = cp.cpu_time().unwrap_or_default();
    let own0 = own_cpu();
    let t0 = Instant::now();
    let (cc, ca) = (c.clone(), created_at.clone());
    let path = format!("/api/v1/namespaces/{NS}/pods");
    fan_out(pods, concurrency, move |i| {
        let (c, ca, bodies, path) = (cc.clone(), ca.clone(), bodies.clone(), path.clone());
        async move {
            let t = Instant::now();
            c.post(&path, bodies[i].clone()).await?;
            ca.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(t);
            Ok(())
        }
    })
    .await?;
    let created = t0.elapsed();
    let all_bound = tokio::time::timeout(Duration::from_secs(300), done_rx).await;
    let end = Instant::now();
    watcher.abort();
    let cpu = cp.cpu_time().unwrap_or_default().saturating_sub(cpu0);
    let own = own_cpu().saturating_sub(own0);
    let rss = cp.rss_mib().unwrap_or(0.0);
    let bound = bound_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let created_at = created_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let n_bound = bound.iter().filter(|b| b.is_some()).count();
    if all_bound.is_err() {
        bail!("only {n_bound} of {pods} pods were bound within 300 s");
    }
    let last = bound.iter().flatten().max().copied().unwrap_or(end);
    let total = last.duration_since(t0);
    let mut lat: Vec<Duration> = bound
        .iter()
        .zip(&created_at)
        .filter_map(|(b, c)| Some(b.as_ref()?.saturating_duration_since(*c.as_ref()?)))
        .collect();
    lat.sort();
    println!(
        "created {pods} pods in {} ({:.0}/s)",
        ms(created),
        pods as f64 / created.as_secs_f64()
    );
    let rate = pods as f64 / total.as_secs_f64();
    println!(
        "all {pods} bound {} after the first create: {rate:.0} pods/s end to end (target ≥ 2,000)",
        ms(total),
    );
    println!(
        "kube-scheduler scheduler_perf floors {:.0}–{:.0} pods/s (5,000 nodes): skiff {:.1}×–{:.1}×",
        UPSTREAM_FLOOR.0,
        UPSTREAM_FLOOR.1,
        rate / UPSTREAM_FLOOR.1,
        rate / UPSTREAM_FLOOR.0,
    );
    let last_create = created_at.iter().flatten().max().copied().unwrap_or(t0);
    println!(
        "last pod bound {} after the last create",
        ms(last.saturating_duration_since(last_create))
    );
    println!(
        "create → bound: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 90.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default())
    );
    // On a shared machine the wall-clock rate says as much about the neighbours as about
    // skiff; the CPU the control plane spent per pod (create, schedule, bind, watch
    // fan-out) does not.
    println!(
        "control plane CPU for the burst: {} ({:.0} µs per pod, creates and binds included)",
        ms(cpu),
        cpu.as_secs_f64() * 1e6 / pods as f64
    );
    println!(
        "this client's CPU for the burst (creates, TLS, watch decoding): {}",
        ms(own)
    );
    println!("control plane RSS after: {rss:.1} MiB");
    drop(cp);
    Ok(())
}
