//! `skiff bench …`: measurements against the reference tools, in one run, with ratios.

use std::time::Duration;

use clap::Subcommand;

mod api;
mod cluster;
mod cni;
mod exec_client;
mod pods;
mod procs;
mod proxy;
mod proxy_dns;
mod rollout;
mod scheduler;
mod streams;

#[derive(Subcommand)]
pub enum Which {
    /// API server: creates/s and latency at concurrency 1 and 16, list and watch at
    /// 10,000 pods, RSS — against raw etcd puts in the same run.
    Api {
        /// Pods stored for the list/RSS measurements.
        #[arg(long, default_value_t = 10_000)]
        pods: usize,
        /// Concurrent watchers.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
    },
    /// CNI: ADD and DEL latency of skiff-bridge + skiff-ipam against the reference
    /// bridge + host-local (/usr/lib/cni) with the same configuration.
    Cni {
        /// Pods (network namespaces) per round.
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// Rounds of ADD-all then DEL-all per plugin.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// Cluster (root): a two-worker `skiff lab` of its own: startup to all nodes Ready,
    /// pod-to-pod TCP throughput across workers (VXLAN, host-gw) against the same worker, and
    /// how long a Deployment of N pods on one worker takes to be Ready.
    Cluster {
        /// Pods of the density Deployment on one worker (0 skips it).
        #[arg(long, default_value_t = 250)]
        density: usize,
        /// MiB per throughput transfer.
        #[arg(long, default_value_t = 256)]
        mib: usize,
        /// Skip the second lab with `--pod-network host-gw`.
        #[arg(long)]
        no_host_gw: bool,
        /// How long to wait for the density pods, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
    /// Controllers: a Deployment on simulated nodes, apply → all Available, then a full
    /// rolling update → all updated and Available.
    Rollout {
        /// Replicas of the Deployment.
        #[arg(long, default_value_t = 100)]
        replicas: usize,
        /// Simulated nodes.
        #[arg(long, default_value_t = 10)]
        nodes: usize,
    },
    /// Agent (root): pod create → Running latency one at a time and in a burst, and the
    /// agent's memory — against `ctr run -d` of the same image in the same run.
    Pods {
        /// Pods created one after the other.
        #[arg(long, default_value_t = 20)]
        sequential: usize,
        /// Pods created at once.
        #[arg(long, default_value_t = 30)]
        burst: usize,
        /// `ctr run -d` runs for the reference.
        #[arg(long, default_value_t = 20)]
        ref_runs: usize,
    },
    /// Proxy (root): nftables full sync and one-Service change at each scale, against raw
    /// `nft -f` of the equivalent kube-proxy-shaped ruleset, in a throwaway netns; then
    /// cluster DNS queries/s and latency on loopback, against dnsmasq when installed.
    Proxy {
        /// Numbers of Services (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        services: Vec<usize>,
        /// Endpoints per Service.
        #[arg(long, default_value_t = 5)]
        endpoints: usize,
        /// Runs of each one-Service change (the median is shown).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// NAT tables per family the Services are spread over (skiff-proxy's default: 8).
        #[arg(long, default_value_t = 8)]
        nat_shards: usize,
        /// Service names in the cluster DNS measurement.
        #[arg(long, default_value_t = 1000)]
        dns_services: usize,
        /// Concurrent DNS clients, one query each in flight.
        #[arg(long, default_value_t = 8)]
        dns_clients: usize,
        /// Seconds of each DNS measurement (0 skips DNS).
        #[arg(long, default_value_t = 5.0)]
        dns_seconds: f64,
    },
    /// Scheduler: pods/s and create → bound latency for a burst of pods (mixed requests,
    /// node affinity, tolerations) on simulated nodes registered as Node objects.
    Scheduler {
        /// Simulated nodes.
        #[arg(long, default_value_t = 500)]
        nodes: usize,
        /// Pods created in the burst.
        #[arg(long, default_value_t = 5000)]
        pods: usize,
        /// Concurrent creates.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Streams (root): `kubectl exec … true` round trip against `ctr task exec`, `kubectl
    /// logs -f` throughput, and `kubectl port-forward` download throughput against the same
    /// download straight from the pod IP.
    Streams {
        /// `kubectl exec` round trips (and as many `ctr task exec`).
        #[arg(long, default_value_t = 30)]
        execs: usize,
        /// MiB of logs the chatty pod writes and kubectl follows.
        #[arg(long, default_value_t = 64)]
        log_mib: usize,
        /// Size of the file downloaded through port-forward and directly, in MiB.
        #[arg(long, default_value_t = 64)]
        download_mib: usize,
    },
}

pub async fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Api { pods, watchers } => api::run(pods, watchers).await,
        Which::Pods {
            sequential,
            burst,
            ref_runs,
        } => pods::run(sequential, burst, ref_runs).await,
        Which::Scheduler {
            nodes,
            pods,
            concurrency,
        } => scheduler::run(nodes, pods, concurrency).await,
        Which::Streams {
            execs,
            log_mib,
            download_mib,
        } => streams::run(execs, log_mib, download_mib).await,
        Which::Proxy {
            services,
            endpoints,
            repeats,
            nat_shards,
            dns_services,
            dns_clients,
            dns_seconds,
        } => {
            proxy::run(services, endpoints, repeats, nat_shards).await?;
            if dns_seconds > 0.0 {
                proxy_dns::run(dns_services, dns_clients, dns_seconds).await?;
            }
            Ok(())
        }
        Which::Cluster {
            density,
            mib,
            no_host_gw,
            timeout_seconds,
        } => cluster::run(density, mib, !no_host_gw, timeout_seconds).await,
        Which::Rollout { replicas, nodes } => rollout::run(replicas, nodes).await,
        Which::Cni { pods, rounds } => {
            tokio::task::spawn_blocking(move || cni::run(pods, rounds)).await?
        }
    }
}

/// p-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
