//! Control plane settings (the command line of `skiff-controlplane`).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Etcd,
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "skiff-controlplane",
    version,
    about = "skiff's Kubernetes-compatible API server"
)]
pub struct Config {
    /// Where the store, certificates and admin.kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff/controlplane")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: String,
    /// HTTPS port (0 picks a free one; the kubeconfig names it).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Storage backend.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    /// etcd client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// The range Service ClusterIPs come from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// The address pods reach the API server at, published as the `default/kubernetes`
    /// Endpoints and EndpointSlice. Default: the bind address when it is a specific
    /// non-loopback one, else (bound to 0.0.0.0) the host's first global IPv4 address;
    /// bound to loopback, nothing is published.
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// The ClusterIP of the `kube-system/kube-dns` Service (served on every node by
    /// skiff-proxy). Default: the 10th address of --service-cluster-ip-range; an empty
    /// value makes no kube-dns Service.
    #[arg(long)]
    pub dns_service_ip: Option<String>,
    /// Addresses LoadBalancer Services get, comma-separated CIDRs and/or `A-B` IPv4
    /// ranges. Empty: LoadBalancer Services stay pending, as without a cloud provider.
    #[arg(long, default_value = "")]
    pub load_balancer_pool: String,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_sans: Vec<String>,
    /// How often old revisions are compacted away (history of one interval is kept).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub compaction_interval: Duration,
    /// Run the scheduler and the controllers (Deployments, ReplicaSets, ..., node lifecycle).
    /// `false` serves the API alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub controllers: bool,
    /// A node whose Lease is older than this goes Unknown and gets the unreachable taint.
    #[arg(long, value_parser = parse_duration, default_value = "40s")]
    pub node_monitor_grace_period: Duration,
    /// How long pods tolerate an unreachable or not-ready node unless they say otherwise.
    #[arg(long, default_value_t = 300)]
    pub default_toleration_seconds: i64,
    /// Where the built-in local-path provisioner puts volumes on nodes.
    #[arg(long, default_value = "/var/lib/skiff/local-path")]
    pub local_path_dir: PathBuf,
    /// The image of the helper pod that removes a deleted local-path volume's directory on
    /// its node (`skiff image busybox` provides it).
    #[arg(long, default_value = "busybox:1.36")]
    pub local_path_helper_image: String,
    /// Nodes per second, per zone, that get a NoExecute taint (evicting their pods).
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// The same in a zone of more than 50 nodes where most are down.
    #[arg(long, default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f64,
    /// How often every Ready node's resource metrics are scraped for `metrics.k8s.io`
    /// (`kubectl top`, the HPA), as metrics-server's flag of the same name.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub metric_resolution: Duration,
    /// How often each HorizontalPodAutoscaler is evaluated.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// The smallest relative change of the metrics (against their targets) that makes an
    /// HorizontalPodAutoscaler scale.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// How far back an HorizontalPodAutoscaler looks for a higher recommendation before it
    /// scales down (unless its behavior sets a window).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples may be skipped as start-up noise.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// How long after a pod starts an unready pod is taken as never having been ready.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    // Node IPAM (kube-controller-manager's range allocator).
    /// Give every Node a `spec.podCIDR` from `--cluster-cidr`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// The range pods' addresses come from, split into one range per Node.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each Node's range.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
}

/// Parses `300ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 5m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration {s:?}: unit must be ms, s, m or h"
        )),
    }
}

impl Config {
    /// Defaults for a given data directory (what tests and `skiff up` start from).
    pub fn for_dir(dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: dir.into(),
            bind_address: "127.0.0.1".into(),
            secure_port: 6443,
            store: StoreKind::Sqlite,
            etcd_endpoints: Vec::new(),
            service_cluster_ip_range: "10.96.0.0/12".into(),
            advertise_address: None,
            dns_service_ip: None,
            load_balancer_pool: String::new(),
            tls_sans: Vec::new(),
            compaction_interval: Duration::from_secs(300),
            controllers: true,
            node_monitor_grace_period: Duration::from_secs(40),
            default_toleration_seconds: 300,
            local_path_dir: "/var/lib/skiff/local-path".into(),
            local_path_helper_image: "busybox:1.36".into(),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            metric_resolution: Duration::from_secs(15),
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            horizontal_pod_autoscaler_tolerance: 0.1,
            horizontal_pod_autoscaler_downscale_stabilization: Duration::from_secs(300),
            horizontal_pod_autoscaler_cpu_initialization_period: Duration::from_secs(300),
            horizontal_pod_autoscaler_initial_readiness_delay: Duration::from_secs(30),
            allocate_node_cidrs: true,
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5x").is_err());
    }
}
