//! `skiff join` as a command: the TLS bootstrap (`join::bootstrap`), then this machine's
//! node agent and proxy with the credentials it got.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use skiff_agent::daemon::{self, AgentConfig};
use skiff_proxy::daemon::ProxyOptions;

use crate::join::{self, JoinOptions};

/// The cluster DNS address and pod network of a `skiff up` cluster.
const CLUSTER_DNS: &str = "10.96.0.10:53";
const CLUSTER_CIDR: &str = "10.244.0.0/16";

#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    /// The API server, `https://host:port`.
    #[arg(long)]
    server: String,
    /// A bootstrap token (`skiff token create`).
    #[arg(long, env = "SKIFF_JOIN_TOKEN")]
    token: String,
    /// The CA's public key hash, `sha256:<hex>` (repeatable).
    #[arg(long = "ca-cert-hash")]
    ca_cert_hashes: Vec<String>,
    /// Trust the CA cluster-info names without checking its hash.
    #[arg(long)]
    discovery_token_unsafe_skip_ca_verification: bool,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's address (its InternalIP, and what other nodes send pod traffic to).
    /// Default: the address of the default route, which on a machine with several
    /// interfaces may not be the one other nodes reach.
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
    /// How pods reach pods on other nodes: `vxlan`, `host-gw` (the nodes must share a
    /// link) or `none`.
    #[arg(long, default_value = "vxlan")]
    pod_network: skiff_agent::network::Mode,
    /// How many pods the node takes.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// How long to wait for the certificate to be issued, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Stop once `node.kubeconfig` is written; do not start the node.
    #[arg(long)]
    bootstrap_only: bool,
    #[command(flatten)]
    layout: NodeLayout,
}

/// Where a node keeps what is not under its data directory; several nodes on one machine
/// (`skiff lab`) each need their own. `skiff down` takes the same flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodeLayout {
    /// The cgroup of the node's pods (default `/kubepods`).
    #[arg(long)]
    cgroup_root: Option<String>,
    /// Where pods' container logs are written (default `/var/log/pods`).
    #[arg(long)]
    pod_logs_dir: Option<PathBuf>,
}

impl NodeLayout {
    pub fn apply(&self, cfg: &mut AgentConfig) {
        if let Some(root) = &self.cgroup_root {
            cfg.cgroup_root = root.clone();
        }
        if let Some(dir) = &self.pod_logs_dir {
            cfg.pod_logs_dir = dir.clone();
        }
    }
}

pub async fn run(args: JoinArgs) -> anyhow::Result<()> {
    let node_name = args.node_name.clone().unwrap_or_else(crate::up::node_name);
    let opts = JoinOptions {
        server: args.server.clone(),
        token: args.token.clone(),
        ca_cert_hashes: args.ca_cert_hashes.clone(),
        unsafe_skip_ca_verification: args.discovery_token_unsafe_skip_ca_verification,
        node_name: node_name.clone(),
        data_dir: args.data_dir.clone(),
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    // As the kubelet does, credentials from an earlier join are used while they are
    // valid, so a restart needs no (possibly expired) token.
    let existing = args.data_dir.join("node.kubeconfig");
    let kubeconfig = match join::kubeconfig_cert_expiry(&existing) {
        Some(until) if until > jiff::Timestamp::now() => {
            println!(
                "node {node_name} uses its existing credentials: {} (valid until {until})",
                existing.display()
            );
            existing
        }
        _ => {
            let path = join::bootstrap(&opts).await?;
            println!("node {node_name} has its credentials: {}", path.display());
            path
        }
    };
    if args.bootstrap_only {
        return Ok(());
    }
    let mut agent_cfg = AgentConfig::new(
        kubeconfig.clone(),
        node_name.clone(),
        args.data_dir.join("agent"),
    );
    agent_cfg.node_ip = args.node_ip;
    agent_cfg.pod_network = args.pod_network;
    agent_cfg.max_pods = args.max_pods;
    args.layout.apply(&mut agent_cfg);
    let agent = daemon::run(agent_cfg)
        .await
        .context("starting the node agent")?;
    let mut proxy_opts = ProxyOptions::new(kubeconfig, node_name.clone());
    proxy_opts.dns_address = Some(CLUSTER_DNS.parse().context("cluster DNS address")?);
    proxy_opts.cluster_cidr = Some(
        CLUSTER_CIDR
            .parse()
            .map_err(|e| anyhow::anyhow!("cluster CIDR: {e}"))?,
    );
    let proxy = match skiff_proxy::daemon::start(proxy_opts).await {
        Ok(p) => p,
        Err(e) => {
            agent.stop().await;
            return Err(e).context("starting the node proxy");
        }
    };
    println!("node {node_name} joined the cluster at {}", args.server);
    println!("Ctrl-C stops the node (pods keep running).");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    proxy.stop().await;
    agent.stop().await;
    Ok(())
}
