//! `skiff up`: the one-node cluster — the control plane on the embedded store and this
//! machine's agent (with its own containerd and the default skiff-bridge network), in one
//! process. `skiff down` removes all of it.

use std::net::IpAddr;
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

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Where the cluster's state lives.
    #[arg(long, default_value = "/var/lib/skiff")]
    pub data_dir: PathBuf,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// The address joining nodes and pods reach the API server at (published in
    /// cluster-info, as the `kubernetes` Service's endpoint and in the serving
    /// certificate). Default: the host's first global IPv4 address.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// This node's address (its InternalIP, and what other nodes send pod traffic to).
    /// Default: the advertise address when given, else the address of the default route.
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Addresses LoadBalancer Services get (comma-separated CIDRs or `A-B` ranges of IPv4
    /// addresses routed to this machine); empty: they stay pending.
    #[arg(long, default_value = "")]
    pub load_balancer_pool: String,
    /// Where the node keeps what is not under --data-dir (its pods' cgroup and logs):
    /// two clusters on one machine each need their own. `skiff down` takes the same.
    #[command(flatten)]
    pub layout: crate::node::NodeLayout,
}

impl UpArgs {
    /// A machine with several interfaces (a VM with a NAT link and a private network) is
    /// one node at one address: the one the control plane advertises, unless told otherwise.
    pub fn node_ip(&self) -> Option<IpAddr> {
        self.node_ip.or(self.advertise_address)
    }
}

/// The control plane's settings for `skiff up`.
pub fn controlplane_config(args: &UpArgs) -> Config {
    let mut cfg = Config::for_dir(args.data_dir.join("controlplane"));
    cfg.secure_port = args.port;
    // On every address, as kube-apiserver: pods reach it through the `kubernetes` Service,
    // whose endpoint is this machine's address.
    cfg.bind_address = "0.0.0.0".into();
    cfg.advertise_address = args.advertise_address.map(|ip| ip.to_string());
    cfg.load_balancer_pool = args.load_balancer_pool.clone();
    cfg.local_path_dir = args.data_dir.join("local-path");
    cfg
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    skiff_controlplane::tune_allocator();
    let data_dir = args.data_dir.clone();
    let cfg = controlplane_config(&args);
    let mut stop = StopSignals::listen()?;
    let running = tokio::select! {
        r = skiff_controlplane::start(cfg) => r.context("starting the control plane")?,
        () = stop.recv() => {
            println!("stopping skiff");
            return Ok(());
        }
    };
    // Keep the kubeconfig where the README says it is.
    let kubeconfig = data_dir.join("admin.kubeconfig");
    std::fs::copy(&running.kubeconfig, &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let mut agent_cfg = agent_config(&data_dir);
    agent_cfg.node_ip = args.node_ip();
    args.layout.record(&data_dir)?;
    args.layout.apply(&mut agent_cfg);
    // Stopped half-way, the agent's start is dropped: that kills the private containerd if
    // it was started (pods' containers live on in their shims, as after a clean stop).
    let agent = tokio::select! {
        r = daemon::run(agent_cfg.clone()) => r.context("starting the node agent")?,
        () = stop.recv() => {
            println!("stopping skiff");
            running.shutdown().await;
            return Ok(());
        }
    };
    let proxy = tokio::select! {
        r = skiff_proxy::daemon::start(proxy_options(&data_dir, &agent_cfg)) => {
            r.context("starting the service proxy")?
        }
        () = stop.recv() => {
            println!("stopping skiff");
            agent.stop().await;
            running.shutdown().await;
            return Ok(());
        }
    };
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
    stop.recv().await;
    println!("stopping skiff");
    proxy.stop().await;
    agent.stop().await;
    running.shutdown().await;
    Ok(())
}

/// Ctrl-C and SIGTERM, listened for from the moment `skiff up` starts: one that comes
/// while the cluster is coming up stops it as cleanly as later. (Left to their default
/// action they would kill skiff and leave its containerd running.)
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    fn parse(args: &[&str]) -> UpArgs {
        Cli::try_parse_from(std::iter::once("up").chain(args.iter().copied()))
            .unwrap()
            .up
    }

    #[test]
    fn defaults_advertise_nothing_and_bind_everywhere() {
        let args = parse(&[]);
        let cfg = controlplane_config(&args);
        assert_eq!(cfg.bind_address, "0.0.0.0");
        assert_eq!(cfg.secure_port, 6443);
        assert_eq!(cfg.advertise_address, None);
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/skiff/controlplane"));
        assert_eq!(args.node_ip(), None);
        let mut agent = agent_config(&args.data_dir);
        args.layout.apply(&mut agent);
        assert_eq!(agent.cgroup_root, "/kubepods");
        assert_eq!(agent.pod_logs_dir, PathBuf::from("/var/log/pods"));
    }

    #[test]
    fn a_second_cluster_on_the_machine_has_a_cgroup_and_logs_of_its_own() {
        let args = parse(&["--cgroup-root", "/two", "--pod-logs-dir", "/d/logs"]);
        let mut agent = agent_config(&args.data_dir);
        args.layout.apply(&mut agent);
        assert_eq!(agent.cgroup_root, "/two");
        assert_eq!(agent.pod_logs_dir, PathBuf::from("/d/logs"));
    }

    #[test]
    fn the_advertise_address_is_the_nodes_address_too() {
        let args = parse(&["--advertise-address", "192.168.56.10", "--data-dir", "/d"]);
        let cfg = controlplane_config(&args);
        assert_eq!(cfg.advertise_address.as_deref(), Some("192.168.56.10"));
        assert_eq!(cfg.bind_address, "0.0.0.0");
        assert_eq!(cfg.local_path_dir, PathBuf::from("/d/local-path"));
        assert_eq!(args.node_ip(), Some("192.168.56.10".parse().unwrap()));
    }

    #[test]
    fn a_node_ip_of_its_own_wins() {
        let args = parse(&[
            "--advertise-address",
            "192.168.56.10",
            "--node-ip",
            "10.0.0.5",
        ]);
        assert_eq!(args.node_ip(), Some("10.0.0.5".parse().unwrap()));
        assert!(
            Cli::try_parse_from(["up", "--advertise-address", "not-an-ip"]).is_err(),
            "addresses are checked when parsed"
        );
    }
}
