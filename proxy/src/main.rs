//! `skiff-proxy`: Services on nftables, iptables or IPVS, and cluster DNS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use skiff_proxy::daemon::{self, ProxyOptions};
use skiff_proxy::dataplane::Mode;
use skiff_proxy::dataplane::nftables::ClusterCidrs;
use skiff_proxy::http::TlsFiles;

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
    /// The device that holds `--dns-address` when no interface has it.
    #[arg(long, default_value = "skiff-dns0")]
    dns_interface: String,
    /// Where `/metrics`, `/healthz` and `/livez` are served: plain HTTP on loopback, TLS
    /// (`--tls-cert-file`) elsewhere.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: SocketAddr,
    /// Certificate (PEM) for the metrics port off loopback.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Key (PEM) of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// `/healthz` fails once a change has waited this long (seconds) to be programmed.
    #[arg(long, default_value_t = 60)]
    healthz_timeout_seconds: u64,
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

impl Args {
    fn options(&self) -> Result<ProxyOptions> {
        let mut o = ProxyOptions::new(&self.kubeconfig, &self.node_name);
        o.mode = self.mode;
        o.cluster_cidr = self.cluster_cidr.clone();
        o.dns_address = self.dns_address.as_deref().map(dns_listen).transpose()?;
        o.dns_interface = self.dns_interface.clone();
        o.cluster_domain = self.cluster_domain.clone();
        o.resolv_conf = self.resolv_conf.clone();
        o.metrics_bind_address = Some(self.metrics_bind_address);
        o.tls = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        o.healthz_timeout = Duration::from_secs(self.healthz_timeout_seconds);
        o.nodeport_addresses = self.nodeport_addresses.clone();
        o.table = self.table.clone();
        o.min_sync_period = Duration::from_millis(self.min_sync_period_ms);
        Ok(o)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    skiff_api::prom::mark_start();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // hickory logs every query at info.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .init();
    let args = Args::parse();
    let opts = args.options()?;
    if args.cleanup {
        // Whichever mode ran before, everything skiff-proxy may have programmed goes.
        return daemon::cleanup(&opts)
            .await
            .context("removing what skiff-proxy programmed");
    }
    let proxy = daemon::start(opts).await.context("starting skiff-proxy")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for a signal")?,
        _ = terminate.recv() => {}
    }
    proxy.stop().await;
    Ok(())
}
