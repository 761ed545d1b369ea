//! `skiff-proxy`: Services on nftables, iptables or IPVS, and cluster DNS.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use skiff_proxy::dataplane::nftables::{ClusterCidrs, Family, Nftables, NftablesConfig};
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
    /// Pod addresses, one CIDR per family, comma-separated; traffic to a ClusterIP from
    /// outside them is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<ClusterCidrs>,
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
    /// Node addresses NodePorts answer on (comma-separated, either family); default: every
    /// global IPv4 and IPv6 address of the node.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<IpAddr>,
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

/// The node's global addresses of both families, from `ip -j addr`.
async fn node_addresses() -> Result<Vec<IpAddr>> {
    let out = tokio::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .await
        .context("running ip -j addr show")?;
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

    let mut cfg = NftablesConfig::new(&args.table);
    if !Path::new("/proc/net/if_inet6").exists() {
        // IPv6 is disabled on this host: an ip6 table could not be hooked.
        cfg.families = vec![Family::V4];
    }
    cfg.cluster_cidr = args.cluster_cidr;
    cfg.node_name = Some(args.node_name.clone());
    cfg.node_port_addresses = if args.nodeport_addresses.is_empty() {
        node_addresses().await?
    } else {
        args.nodeport_addresses.clone()
    };
    let mut dataplane = Nftables::new(cfg);
    if args.cleanup {
        dataplane.cleanup().await?;
        return Ok(());
    }
    tracing::info!(
        node = %args.node_name,
        mode = args.mode.as_str(),
        table = %args.table,
        nodeport_addresses = ?dataplane.config().node_port_addresses,
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
        &mut dataplane,
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
