//! `skiff-proxy`: Services on nftables, iptables or IPVS, and cluster DNS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use skiff_proxy::dataplane::iptables::{Iptables, IptablesConfig};
use skiff_proxy::dataplane::nftables::{Ipv4Cidr, Nftables, NftablesConfig};
use skiff_proxy::dataplane::{Dataplane, Mode};
use skiff_proxy::dns::{self, DnsConfig};
use skiff_proxy::sync::{self, SyncSettings, Trigger};

#[derive(Parser, Debug)]
#[command(name = "skiff-proxy", version, about)]
struct Args {
    /// Kubeconfig of the cluster to watch.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// This node's name, for the `Local` traffic policies.
    #[arg(long)]
    node_name: String,
    /// How Services are programmed.
    #[arg(long, value_enum, default_value = "nftables")]
    mode: Mode,
    /// Pod addresses; traffic to a ClusterIP from outside them is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<Ipv4Cidr>,
    /// Where cluster DNS listens, `IP` (port 53) or `IP:PORT`; the kube-dns Service's
    /// IP must reach it. Without it no DNS is served.
    #[arg(long)]
    dns_address: Option<String>,
    /// The cluster domain DNS answers for.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where the upstream resolvers for other names are listed.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: String,
    /// Node addresses NodePorts answer on (comma-separated); default: every global IPv4
    /// address of the node.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<Ipv4Addr>,
    /// The nftables table skiff-proxy owns.
    #[arg(long, default_value = "skiff-proxy")]
    table: String,
    /// Least time between two syncs, in milliseconds.
    #[arg(long, default_value_t = 200)]
    min_sync_period_ms: u64,
    /// Remove everything skiff-proxy programmed and exit.
    #[arg(long)]
    cleanup: bool,
}

/// The node's global IPv4 addresses, from `ip -j -4 addr`.
async fn node_addresses() -> Result<Vec<Ipv4Addr>> {
    let out = tokio::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .await
        .context("running ip -j -4 addr show")?;
    anyhow::ensure!(out.status.success(), "ip addr show failed: {}", out.status);
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing ip -j addr output")?;
    let mut addrs = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if info["scope"] == "global"
                && let Some(ip) = info["local"].as_str().and_then(|s| s.parse().ok())
            {
                addrs.push(ip);
            }
        }
    }
    Ok(addrs)
}

/// `IP` or `IP:PORT` (IPv6 in brackets with a port), port 53 by default.
fn dns_listen(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .parse()
        .with_context(|| format!("--dns-address {s:?}: expected IP or IP:PORT"))?;
    Ok(SocketAddr::new(ip, 53))
}

async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("kubeconfig")?;
    kube::Client::try_from(cfg).context("building the API client")
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // hickory logs every query at info.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .init();
    let args = Args::parse();
    args.mode.check_available(Path::new("/proc"))?;

    let node_port_addresses = if args.nodeport_addresses.is_empty() {
        node_addresses().await?
    } else {
        args.nodeport_addresses.clone()
    };
    let mut nft_cfg = NftablesConfig::new(&args.table);
    nft_cfg.cluster_cidr = args.cluster_cidr;
    nft_cfg.node_name = Some(args.node_name.clone());
    nft_cfg.node_port_addresses = node_port_addresses.clone();
    let ipt_cfg = IptablesConfig {
        cluster_cidr: args.cluster_cidr,
        node_name: Some(args.node_name.clone()),
        node_port_addresses: node_port_addresses.clone(),
        ..IptablesConfig::default()
    };
    if args.cleanup {
        // Whichever mode ran before, everything skiff-proxy may have programmed goes.
        Nftables::new(nft_cfg).cleanup().await?;
        if Mode::Iptables.check_available(Path::new("/proc")).is_ok() {
            Iptables::new(ipt_cfg).cleanup().await?;
        }
        return Ok(());
    }
    // Rules another mode left would still DNAT (both run in the kernel): they go first,
    // as kube-proxy removes the other modes' leftovers when it starts.
    let (mut dataplane, mut leftovers): (Box<dyn Dataplane>, Option<Box<dyn Dataplane>>) =
        match args.mode {
            Mode::Nftables => {
                let iptables = Mode::Iptables.check_available(Path::new("/proc")).is_ok();
                (
                    Box::new(Nftables::new(nft_cfg)),
                    iptables.then(|| Box::new(Iptables::new(ipt_cfg)) as Box<dyn Dataplane>),
                )
            }
            Mode::Iptables => (
                Box::new(Iptables::new(ipt_cfg)),
                Some(Box::new(Nftables::new(nft_cfg))),
            ),
            Mode::Ipvs => {
                anyhow::bail!("ipvs mode is not available in this build; use --mode nftables")
            }
        };
    if let Some(other) = leftovers.as_mut()
        && let Err(e) = other.cleanup().await
    {
        tracing::warn!(error = %e, mode = other.name(), "removing another mode's rules");
    }
    tracing::info!(
        node = %args.node_name,
        mode = args.mode.as_str(),
        table = %args.table,
        nodeport_addresses = ?node_port_addresses,
        "starting"
    );

    let client = client(&args.kubeconfig).await?;
    let _dns = match &args.dns_address {
        Some(addr) => {
            let listen = dns_listen(addr)?;
            let config = DnsConfig {
                listen,
                domain: args.cluster_domain.clone(),
                resolv_conf: args.resolv_conf.clone(),
                nameservers: vec![listen.ip()],
                ..DnsConfig::default()
            };
            let handle = dns::serve(client.clone(), config)
                .await
                .with_context(|| format!("serving cluster DNS on {listen}"))?;
            tracing::info!(addr = %handle.local_addr(), domain = %args.cluster_domain, "cluster DNS");
            Some(handle)
        }
        None => None,
    };
    let (trigger, notices) = Trigger::new();
    let caches = sync::watch::start(client, trigger.clone());
    let settings = SyncSettings {
        min_interval: Duration::from_millis(args.min_sync_period_ms),
        ..SyncSettings::default()
    };
    let mut observer = ();
    let sync_loop = sync::run(
        dataplane.as_mut(),
        move || caches.snapshot(),
        notices,
        settings,
        &mut observer,
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // Rules stay in place on exit, as kube-proxy leaves them: Services keep working while
    // the proxy restarts, and the next start replaces the table in one transaction.
    tokio::select! {
        () = sync_loop => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for a signal")?,
        _ = terminate.recv() => {}
    }
    drop(trigger);
    Ok(())
}
