//! `skiff bench api`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{ms, percentile, procs};

/// A pod the size of a typical Deployment's: two containers, env, probes, volumes.
fn pod(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"app": "bench", "tier": "web", "pod-template-hash": "5d8f7c9b6"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.local/bench/app:1.4.2", "command": ["/app", "--port=8080"],
                 "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                 "env": [{"name": "MODE", "value": "production"}, {"name": "LOG_LEVEL", "value": "info"},
                         {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                 "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "initialDelaySeconds": 10},
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "cache", "mountPath": "/cache"}]},
                {"name": "sidecar", "image": "registry.local/bench/proxy:2.0", "args": ["--upstream=127.0.0.1:8080"],
                 "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}}
            ],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}, {"name": "cache", "emptyDir": {}}],
            "nodeName": "bench-node"
        }
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
    dir: std::path::PathBuf,
    port: u16,
}

impl Client {
    /// Another client to the same server, on a connection of its own.
    fn fresh(&self) -> anyhow::Result<Client> {
        Client::new(&self.dir, self.port)
    }

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
            dir: dir.to_path_buf(),
            port,
        })
    }

    async fn create(&self, ns: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v1/namespaces/{ns}/pods", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!(
                "create answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Runs operations `0..total` spread over `workers` (one task each, taking the next index
/// as it finishes the last); returns (operations per second, sorted latencies).
async fn drive<W, F, Fut>(
    total: usize,
    workers: Vec<W>,
    op: F,
) -> anyhow::Result<(f64, Vec<Duration>)>
where
    W: Clone + Send + 'static,
    F: Fn(W, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in workers {
        let next = next.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(w.clone(), i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok((total as f64 / t0.elapsed().as_secs_f64(), all))
}

/// `total` pod creates at `conc` concurrency, each worker on its own connection as the
/// etcd reference's clients are; bodies are serialized before the clock starts.
async fn creates(
    c: &Arc<Client>,
    ns: &str,
    prefix: &str,
    total: usize,
    conc: usize,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..total)
            .map(|i| serde_json::to_vec(&pod(ns, &format!("{prefix}-{i}"))))
            .collect::<Result<_, _>>()?,
    );
    let mut clients = Vec::new();
    for _ in 0..conc {
        clients.push(Arc::new(c.fresh()?));
    }
    let ns = Arc::new(ns.to_string());
    drive(total, clients, move |c: Arc<Client>, i| {
        let body = bodies[i].clone();
        let ns = ns.clone();
        async move { c.create(&ns, body).await }
    })
    .await
}

/// The reference: `total` raw puts of `value` into etcd from `conc` clients.
async fn etcd_puts(
    url: &str,
    total: usize,
    conc: usize,
    value: Vec<u8>,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let mut clients = Vec::new();
    for _ in 0..conc {
        clients.push(etcd_client::Client::connect([url], None).await?);
    }
    let value = Arc::new(value);
    drive(total, clients, move |mut c: etcd_client::Client, i| {
        let value = value.clone();
        async move {
            c.put(format!("/bench/{conc}/{i}"), value.as_slice(), None)
                .await?;
            Ok(())
        }
    })
    .await
}

pub async fn run(pods: usize, watchers: usize) -> anyhow::Result<()> {
    let bin = procs::sibling("skiff-controlplane")?;
    let (cp, port, ready) = procs::control_plane(&bin)?;
    println!("skiff bench api — {pods} pods, {watchers} watchers");
    println!("control plane ready in {}", ms(ready));
    let c = Arc::new(Client::new(cp.dir.path(), port)?);
    let rss_empty = cp.rss_mib()?;
    let pod_bytes = serde_json::to_vec(&pod("default", "bench-size"))?.len();
    println!("pod JSON size: {pod_bytes} bytes");

    let (rate1, lat1) = creates(&c, "default", "c1", 500, 1).await?;
    let (rate16, lat16) = creates(&c, "default", "c16", 4000, 16).await?;
    println!(
        "creates  c=1 : {rate1:>8.0}/s  p50 {}  p99 {}",
        ms(percentile(&lat1, 50.0)),
        ms(percentile(&lat1, 99.0))
    );
    println!(
        "creates  c=16: {rate16:>8.0}/s  p50 {}  p99 {}",
        ms(percentile(&lat16, 50.0)),
        ms(percentile(&lat16, 99.0))
    );

    // Watchers on a namespace of their own, then a burst of creates there.
    let ns = "watched";
    let nsbody = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    c.http
        .post(format!("{}/api/v1/namespaces", c.base))
        .json(&nsbody)
        .send()
        .await?;
    let events = 1000usize;
    let received = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    // Watchers get a connection of their own: dropping their streams resets them, which
    // must not count against the connection the creates use.
    let wc = Client::new(cp.dir.path(), port)?;
    for _ in 0..watchers {
        let resp = wc
            .http
            .get(format!(
                "{}/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion=0",
                c.base
            ))
            .send()
            .await?;
        let received = received.clone();
        handles.push(tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut n = 0usize;
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                let k = chunk.iter().filter(|b| **b == b'\n').count();
                n += k;
                received.fetch_add(k, Ordering::Relaxed);
                if n >= events {
                    break;
                }
            }
            n
        }));
    }
    let tw = Instant::now();
    creates(&c, ns, "w", events, 16).await?;
    let mut complete = 0;
    for h in handles {
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(60), h).await
            && n >= events
        {
            complete += 1;
        }
    }
    let watch_time = tw.elapsed();
    println!(
        "watch: {complete}/{watchers} watchers received all {events} events ({} delivered) in {}",
        received.load(Ordering::Relaxed),
        ms(watch_time)
    );

    let stored = 500 + 4000 + events;
    if pods > stored {
        creates(&c, "default", "fill", pods - stored, 16).await?;
    }
    let mut list_lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let body = c
            .http
            .get(format!("{}/api/v1/pods", c.base))
            .send()
            .await?
            .bytes()
            .await?;
        list_lat.push(t.elapsed());
        let v: Value = serde_json::from_slice(&body)?;
        let n = v["items"].as_array().map_or(0, Vec::len);
        if n < pods.min(stored.max(pods)) {
            bail!("list returned {n} pods");
        }
    }
    list_lat.sort();
    let mut paged = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        c.http
            .get(format!("{}/api/v1/pods?limit=500", c.base))
            .send()
            .await?
            .bytes()
            .await?;
        paged.push(t.elapsed());
    }
    paged.sort();
    println!(
        "list {} pods: p50 {}  (first page of 500: p50 {})",
        pods.max(stored),
        ms(percentile(&list_lat, 50.0)),
        ms(percentile(&paged, 50.0))
    );
    let rss_full = cp.rss_mib()?;
    println!(
        "server RSS: {rss_empty:.1} MiB empty, {rss_full:.1} MiB with {} pods",
        pods.max(stored)
    );
    drop(cp);

    let (etcd, url) = procs::etcd()?;
    let value = vec![b'x'; pod_bytes + 600];
    let (e1, elat1) = etcd_puts(&url, 500, 1, value.clone()).await?;
    let (e16, elat16) = etcd_puts(&url, 4000, 16, value).await?;
    drop(etcd);
    println!(
        "etcd puts c=1 : {e1:>8.0}/s  p50 {}  p99 {}",
        ms(percentile(&elat1, 50.0)),
        ms(percentile(&elat1, 99.0))
    );
    println!(
        "etcd puts c=16: {e16:>8.0}/s  p50 {}  p99 {}",
        ms(percentile(&elat16, 50.0)),
        ms(percentile(&elat16, 99.0))
    );
    println!();
    println!(
        "ratio skiff creates / etcd puts: c=1 {:.2}x, c=16 {:.2}x (target ≥ 1.0 at c=16)",
        rate1 / e1,
        rate16 / e16
    );
    println!(
        "p99 create latency c=16: {} (target ≤ 50 ms)",
        ms(percentile(&lat16, 99.0))
    );
    println!(
        "RSS with {} pods: {rss_full:.1} MiB (target ≤ 100 MiB)",
        pods.max(stored)
    );
    Ok(())
}
