//! `skiff join` as a command: the TLS bootstrap (`join::bootstrap`), then this machine's
//! node agent and proxy with the credentials it got.

use std::path::{Path, PathBuf};
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
/// (`skiff lab`) each need their own. `skiff down` takes the same flags, and without them
/// uses what the node recorded in its data directory.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeLayout {
    /// The cgroup of the node's pods (default `/kubepods`).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroup_root: Option<String>,
    /// Where pods' container logs are written (default `/var/log/pods`).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod_logs_dir: Option<PathBuf>,
}

/// The file under the data directory that records a node's layout.
const LAYOUT_FILE: &str = "layout.json";

impl NodeLayout {
    /// Records the layout in `data_dir`, so that `skiff down` without flags removes what
    /// this node made, not what the defaults name (maybe another node's).
    pub fn record(&self, data_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let file = data_dir.join(LAYOUT_FILE);
        let text = serde_json::to_vec_pretty(self).context("encoding the node's layout")?;
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
    }

    /// The flags given, and for those not given what the node in `data_dir` recorded.
    pub fn or_recorded(self, data_dir: &Path) -> anyhow::Result<NodeLayout> {
        let file = data_dir.join(LAYOUT_FILE);
        let recorded: NodeLayout = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => NodeLayout::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        Ok(NodeLayout {
            cgroup_root: self.cgroup_root.or(recorded.cgroup_root),
            pod_logs_dir: self.pod_logs_dir.or(recorded.pod_logs_dir),
        })
    }

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
    args.layout.record(&args.data_dir)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn down_uses_the_recorded_layout_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Nothing recorded: the flags alone (or the defaults).
        assert_eq!(
            NodeLayout::default().or_recorded(&data).unwrap(),
            NodeLayout::default()
        );
        let started = NodeLayout {
            cgroup_root: Some("/two".into()),
            pod_logs_dir: Some("/two/logs".into()),
        };
        started.record(&data).unwrap();
        assert_eq!(NodeLayout::default().or_recorded(&data).unwrap(), started);
        let told = NodeLayout {
            cgroup_root: Some("/other".into()),
            pod_logs_dir: None,
        };
        let got = told.or_recorded(&data).unwrap();
        assert_eq!(got.cgroup_root.as_deref(), Some("/other"));
        assert_eq!(got.pod_logs_dir, Some(PathBuf::from("/two/logs")));
        // A default layout records nothing to override.
        NodeLayout::default().record(&data).unwrap();
        assert_eq!(
            NodeLayout::default().or_recorded(&data).unwrap(),
            NodeLayout::default()
        );
    }
}
