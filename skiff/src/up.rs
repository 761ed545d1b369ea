//! `skiff up`: the one-node cluster — the control plane on the embedded store and this
//! machine's agent (with its own containerd and the default skiff-bridge network), in one
//! process. `skiff down` removes all of it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use skiff_agent::daemon::{self, AgentConfig};
use skiff_controlplane::Config;
use skiff_proxy::daemon::ProxyOptions;

/// The pod addresses of every node (each node's pod CIDR lies in it).
const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The node's name: the machine's hostname, as kubelet registers it.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "skiff-node".into())
}

/// The agent's settings under `data_dir`, the same for `up` and `down`.
pub fn agent_config(data_dir: &Path) -> AgentConfig {
    AgentConfig::new(
        data_dir.join("admin.kubeconfig"),
        node_name(),
        data_dir.join("agent"),
    )
}

/// The proxy's settings: Services for the pod network, cluster DNS on the kube-dns
/// address the agent gives pods.
pub fn proxy_options(data_dir: &Path, agent: &AgentConfig) -> ProxyOptions {
    let mut o = ProxyOptions::new(data_dir.join("admin.kubeconfig"), agent.node_name.clone());
    o.cluster_cidr = CLUSTER_CIDR.parse().ok();
    o.dns_address = agent
        .cluster_dns
        .first()
        .map(|ip| std::net::SocketAddr::new(*ip, 53));
    o.cluster_domain = agent.cluster_domain.clone();
    o
}

pub async fn run(data_dir: PathBuf, port: u16, load_balancer_pool: String) -> anyhow::Result<()> {
    skiff_controlplane::tune_allocator();
    let mut cfg = Config::for_dir(data_dir.join("controlplane"));
    cfg.secure_port = port;
    // On every address, as kube-apiserver: pods reach it through the `kubernetes` Service,
    // whose endpoint is this machine's address.
    cfg.bind_address = "0.0.0.0".into();
    cfg.load_balancer_pool = load_balancer_pool;
    cfg.local_path_dir = data_dir.join("local-path");
    let running = skiff_controlplane::start(cfg)
        .await
        .context("starting the control plane")?;
    // Keep the kubeconfig where the README says it is.
    let kubeconfig = data_dir.join("admin.kubeconfig");
    std::fs::copy(&running.kubeconfig, &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let agent_cfg = agent_config(&data_dir);
    let agent = daemon::run(agent_cfg.clone())
        .await
        .context("starting the node agent")?;
    let proxy = skiff_proxy::daemon::start(proxy_options(&data_dir, &agent_cfg))
        .await
        .context("starting the service proxy")?;
    let mut shown = running.address;
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    println!("skiff is up: API server at https://{shown}");
    println!("node: {} (pods run here)", node_name());
    println!("kubeconfig: {}", kubeconfig.display());
    println!();
    println!("Try:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get nodes");
    println!(
        "  skiff image busybox --data-dir {}   # an image, without a registry",
        data_dir.display()
    );
    println!(
        "  kubectl run hello --image=busybox:1.36 --overrides='{{\"spec\":{{\"nodeName\":\"{}\"}}}}' -- httpd -f -p 8080 -h /etc",
        node_name()
    );
    println!("  kubectl get pods -o wide");
    println!();
    println!("Ctrl-C stops skiff (pods keep running); `skiff up` again brings it back as it was;");
    println!("`skiff down` removes everything.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    println!("stopping skiff");
    proxy.stop().await;
    agent.stop().await;
    running.shutdown().await;
    Ok(())
}
