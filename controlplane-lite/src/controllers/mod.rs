//! Control loops that run inside the control plane process.

use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::handlers::Api;

pub mod apiserver_endpoints;
#[cfg(test)]
mod apps_fixtures;
pub mod certificates;
pub mod clock;
pub mod compactor;
pub mod context;
pub mod controller_ref;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod namespace_cache;
pub mod nodeipam;
pub mod nodes;
pub mod pod_util;
pub mod replica_set;
pub mod revision_history;
pub mod runtime;
pub mod service_lb;
pub mod serviceaccount;
pub mod set_pods;
pub mod statefulset;
pub mod volumes;

/// Starts the scheduler and the workload controllers as clients of the API server at
/// `kubeconfig` (this process's own, over loopback), once their caches are filled. The
/// returned handle runs until aborted.
pub fn spawn_workloads(
    kubeconfig: std::path::PathBuf,
    settings: context::Settings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match client(&kubeconfig).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "controllers cannot reach the API server; not started");
                return;
            }
        };
        let (informers, mut tasks) = context::Informers::start(&client);
        informers.synced().await;
        let ctx = context::Ctx {
            cluster: Arc::new(runtime::KubeCluster::new(
                client,
                "skiff-controller-manager",
            )),
            informers,
            settings,
        };
        tasks.extend(start_all(&ctx));
        tracing::info!(tasks = tasks.len(), "scheduler and controllers running");
        // Aborting this task drops the handles; the tasks themselves are aborted with it.
        let _guard = AbortOnDrop(tasks);
        std::future::pending::<()>().await;
    })
}

/// Every workload controller and the scheduler, on `ctx`.
pub fn start_all<C: runtime::Cluster>(ctx: &context::Ctx<C>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![crate::scheduler::start(ctx)];
    tasks.extend(nodes::start(ctx));
    tasks.extend(nodeipam::start(ctx));
    tasks.extend(volumes::start(ctx));
    tasks.extend(statefulset::start(ctx));
    tasks.extend(daemonset::start(ctx));
    tasks.extend(job::start(ctx));
    tasks.extend(cronjob::start(ctx));
    tasks.extend(endpoints::start(ctx));
    tasks.extend(serviceaccount::start(ctx));
    tasks.extend(replica_set::start(ctx));
    tasks.extend(deployment::start(ctx));
    tasks.extend(hpa::start(ctx));
    tasks.extend(disruption::start(ctx));
    tasks.extend(apiserver_endpoints::start(ctx));
    tasks.extend(service_lb::start(ctx));
    tasks.extend(certificates::start(ctx));
    tasks
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn client(kubeconfig: &std::path::Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

/// Starts every controller; the returned handle aborts them all.
pub fn spawn(
    api: Arc<Api>,
    compaction_interval: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ns = tokio::spawn(namespace::run(api.clone()));
        let nsc = tokio::spawn(namespace_cache::run(api.clone()));
        let gc = tokio::spawn(gc::run(api.clone()));
        let compact = tokio::spawn(compactor::run(api.store.clone(), compaction_interval));
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
        ns.abort();
        nsc.abort();
        gc.abort();
        compact.abort();
    })
}
