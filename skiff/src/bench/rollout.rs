//! `skiff bench rollout`: a Deployment on simulated nodes, timed from apply to every
//! replica Available, then through a full rolling update to every replica updated and
//! Available. Pods are bound by the control plane's scheduler when it has one, else by
//! the stand-in binder; the simulated kubelet makes bound pods Running and Ready at once,
//! so the figures are the control plane's own: API server, controllers, binding.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use skiff_controlplane::testing::{FakeNode, FakeNodes, StandInBinder};

use super::{ms, procs};

const NS: &str = "default";
const NAME: &str = "bench";

fn deployment(replicas: usize) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/bench/app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    }))?)
}

async fn client(dir: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(dir.join("admin.kubeconfig"))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Whether something in the control plane binds a pod within `wait`.
async fn scheduler_binds(client: &kube::Client, wait: Duration) -> anyhow::Result<bool> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": "bench-scheduler-probe"},
        "spec": {"containers": [{"name": "c", "image": "probe"}]},
    }))?;
    pods.create(&PostParams::default(), &probe).await?;
    let deadline = Instant::now() + wait;
    let mut bound = false;
    while Instant::now() < deadline {
        let p = pods.get("bench-scheduler-probe").await?;
        if p.spec.and_then(|s| s.node_name).is_some() {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = pods
        .delete(
            "bench-scheduler-probe",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await;
    Ok(bound)
}

/// Waits until the Deployment, at `generation` or later, reports `replicas` updated and
/// available and nothing else left; returns when that was seen.
async fn until_complete(
    api: &Api<Deployment>,
    generation: i64,
    replicas: i32,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut stream = watcher::watcher(api.clone(), cfg).default_backoff().boxed();
    let done = async {
        while let Some(ev) = stream.next().await {
            let d = match ev {
                Ok(Event::Apply(d) | Event::InitApply(d)) => d,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "deployment watch interrupted");
                    continue;
                }
            };
            let Some(s) = d.status.as_ref() else { continue };
            if d.metadata.generation.unwrap_or(0) >= generation
                && s.observed_generation >= d.metadata.generation
                && s.updated_replicas == Some(replicas)
                && s.available_replicas == Some(replicas)
                && s.replicas == Some(replicas)
            {
                return Ok(Instant::now());
            }
        }
        bail!("deployment watch ended")
    };
    tokio::time::timeout(timeout, done)
        .await
        .context("the rollout did not complete in time")?
}

pub async fn run(replicas: usize, nodes: usize) -> anyhow::Result<()> {
    let bin = procs::sibling("skiff-controlplane")?;
    let (cp, _port, ready) = procs::control_plane(&bin)?;
    println!(
        "skiff bench rollout — a Deployment of {replicas} replicas on {nodes} simulated nodes"
    );
    println!("control plane ready in {}", ms(ready));
    let client = client(cp.dir.path()).await?;
    let names: Vec<String> = (1..=nodes).map(|i| format!("bench-node-{i}")).collect();
    let _nodes = FakeNodes::start(
        client.clone(),
        names.iter().map(|n| FakeNode::new(n)).collect(),
    )
    .await?;
    let binder = if scheduler_binds(&client, Duration::from_secs(2)).await? {
        println!("pods bound by: the control plane's scheduler");
        None
    } else {
        println!("pods bound by: the stand-in binder (no scheduler in this control plane)");
        Some(StandInBinder::start(client.clone(), names, Duration::ZERO))
    };

    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let want = i32::try_from(replicas)?;
    let timeout = Duration::from_secs(300);
    let t0 = Instant::now();
    let waiting = {
        let api = api.clone();
        tokio::spawn(async move { until_complete(&api, 1, want, timeout).await })
    };
    api.create(&PostParams::default(), &deployment(replicas)?)
        .await
        .context("creating the Deployment")?;
    let t1 = waiting.await??;
    let create = t1 - t0;
    println!(
        "apply → {replicas}/{replicas} Available: {}  ({:.0} pods/s)",
        ms(create),
        replicas as f64 / create.as_secs_f64()
    );

    let generation = api.get(NAME).await?.metadata.generation.unwrap_or(1) + 1;
    let waiting = {
        let api = api.clone();
        tokio::spawn(async move { until_complete(&api, generation, want, timeout).await })
    };
    let t2 = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/bench/app:2"}]}}}});
    api.patch(NAME, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .context("changing the image")?;
    let t3 = waiting.await??;
    let update = t3 - t2;
    println!(
        "rolling update (maxSurge 25%, maxUnavailable 25%) → {replicas}/{replicas} updated and Available: {}  ({:.0} pods replaced/s)",
        ms(update),
        replicas as f64 / update.as_secs_f64()
    );
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), NS);
    let sets = rs.list(&Default::default()).await?;
    println!(
        "ReplicaSets: {}; control plane RSS {:.1} MiB",
        sets.items.len(),
        cp.rss_mib()?
    );
    if let Some(b) = binder {
        println!("stand-in binder bound {} pods", b.bound());
    }
    Ok(())
}
