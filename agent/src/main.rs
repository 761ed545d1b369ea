//! `skiff-agent`: the node agent. Runs the pods the API server binds to this node until
//! Ctrl-C or SIGTERM; the pods keep running when it stops, and it adopts them when it starts
//! again.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_agent::daemon::{self, AgentConfig};
use skiff_agent::logs::{Rotation, logger};
use skiff_agent::runtime::registry::RegistryConfig;

#[derive(Parser, Debug)]
#[command(name = "skiff-agent", version, about = "skiff's node agent")]
struct Args {
    /// Credentials for the API server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The Node's name.
    #[arg(long)]
    node_name: String,
    /// Where the agent keeps its state (and its private containerd).
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    root_dir: PathBuf,
    /// containerd's socket; without it the agent runs its own containerd under the root dir.
    #[arg(long)]
    containerd_socket: Option<PathBuf>,
    /// Directories holding CNI plugins, searched in order (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cni_bin_dir: Vec<PathBuf>,
    /// The CNI configuration directory; without it the agent writes a skiff-bridge
    /// configuration under the root dir.
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// The node's pod range: the Node registers with it and the configuration the agent
    /// writes uses it. Without it the agent waits for the control plane to give its Node one
    /// (node IPAM).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// How pods reach pods on other nodes: `vxlan` (a VXLAN tunnel between the nodes),
    /// `host-gw` (routes via the other nodes' addresses; the nodes must share a link) or
    /// `none` (no routes between nodes).
    #[arg(long, default_value = "vxlan")]
    pod_network: skiff_agent::network::Mode,
    /// The cluster's pod range: pod traffic to it is not masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// How long to wait for the Node's pod range from the control plane, in seconds.
    #[arg(long, default_value_t = 120)]
    pod_cidr_timeout_seconds: u64,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Cluster DNS server addresses for pods' resolv.conf (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    cluster_dns: Vec<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The address the Node reports; by default the address of the route out.
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Labels the Node registers with (`key=value`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Where container logs go.
    #[arg(long, default_value = "/var/log/pods")]
    pod_logs_dir: PathBuf,
    /// The cgroup pods go under.
    #[arg(long, default_value = "/kubepods")]
    cgroup_root: String,
    /// The resolv.conf `Default` pods get ("" for none).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Registries that may be reached over plain HTTP (`host[:port]`, comma-separated);
    /// loopback registries always may.
    #[arg(long, value_delimiter = ',')]
    insecure_registry: Vec<String>,
    /// Extra certificate authorities (PEM files) trusted for registries.
    #[arg(long, value_delimiter = ',')]
    registry_ca_file: Vec<PathBuf>,
    /// Unsafe sysctls pods may set (names or `prefix.*`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    allowed_unsafe_sysctls: Vec<String>,
    /// How often configMap, secret and downwardAPI volumes are refreshed, in seconds.
    #[arg(long, default_value_t = 10)]
    volume_refresh_seconds: u64,
    /// The port of the agent's HTTPS API (0 turns it off).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// The address the agent's API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The CA that signs the client certificates the API accepts; by default the CA of the
    /// kubeconfig's cluster.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// A container's log file is rotated at this size (a quantity: `10Mi`, `500Ki`).
    #[arg(long, default_value = "10Mi")]
    container_log_max_size: String,
    /// How many log files of a container are kept, the live one included.
    #[arg(long, default_value_t = 5)]
    container_log_max_files: u32,
    /// Instead of running: remove everything an agent with these settings made on this
    /// machine (containers, containerd, sandboxes, volumes, cgroups, state), then exit.
    #[arg(long)]
    down: bool,
}

impl Args {
    fn into_config(self) -> anyhow::Result<AgentConfig> {
        let mut cfg = AgentConfig::new(self.kubeconfig, self.node_name, self.root_dir);
        cfg.containerd_socket = self.containerd_socket;
        if !self.cni_bin_dir.is_empty() {
            cfg.cni_bin_dirs = self.cni_bin_dir;
        }
        cfg.cni_conf_dir = self.cni_conf_dir;
        cfg.pod_cidr = self.pod_cidr;
        cfg.pod_network = self.pod_network;
        cfg.cluster_cidr = self.cluster_cidr;
        cfg.pod_cidr_timeout = Duration::from_secs(self.pod_cidr_timeout_seconds.max(1));
        cfg.max_pods = self.max_pods;
        cfg.cluster_dns = self.cluster_dns;
        cfg.cluster_domain = self.cluster_domain;
        cfg.node_ip = self.node_ip;
        cfg.node_labels = self
            .node_labels
            .iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| format!("--node-labels: {l:?} is not key=value"))
            })
            .collect::<anyhow::Result<_>>()?;
        cfg.pod_logs_dir = self.pod_logs_dir;
        cfg.cgroup_root = self.cgroup_root;
        cfg.resolv_conf = Some(self.resolv_conf).filter(|p| !p.as_os_str().is_empty());
        cfg.registries = RegistryConfig {
            insecure: self.insecure_registry,
            ca_files: self.registry_ca_file,
        };
        cfg.allowed_unsafe_sysctls = self.allowed_unsafe_sysctls;
        cfg.volume_refresh = Duration::from_secs(self.volume_refresh_seconds.max(1));
        cfg.port = (self.port != 0).then_some(self.port);
        cfg.address = self.address;
        cfg.client_ca_file = self.client_ca_file;
        let max_size = skiff_api::quantity::Quantity::parse(&self.container_log_max_size)
            .with_context(|| {
                format!(
                    "--container-log-max-size: {:?} is not a quantity",
                    self.container_log_max_size
                )
            })?
            .value();
        anyhow::ensure!(max_size > 0, "--container-log-max-size must be positive");
        anyhow::ensure!(
            self.container_log_max_files >= 1,
            "--container-log-max-files must be at least 1"
        );
        cfg.log_rotation = Rotation {
            max_size: max_size as u64,
            max_files: self.container_log_max_files,
        };
        Ok(cfg)
    }
}

fn main() -> anyhow::Result<()> {
    // Run by a container's shim as its log driver: no runtime, no flags of the agent's own.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if logger::invoked(&args) {
        std::process::exit(logger::run(&args));
    }
    agent_main()
}

#[tokio::main]
async fn agent_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let down = args.down;
    let cfg = args.into_config()?;
    if down {
        let left = daemon::down(&cfg).await;
        if left.0.is_empty() {
            println!("removed everything under {}", cfg.root_dir.display());
            return Ok(());
        }
        anyhow::bail!("could not remove: {}", left.0.join("; "));
    }
    let node = cfg.node_name.clone();
    let agent = daemon::run(cfg).await.context("starting skiff-agent")?;
    println!("ready: node {node}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping; pods keep running");
    agent.stop().await;
    Ok(())
}
