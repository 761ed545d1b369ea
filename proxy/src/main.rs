//! `skiff-proxy`: Services on nftables, iptables or IPVS, and cluster DNS.

use clap::Parser;
use skiff_proxy::dataplane::Mode;

#[derive(Parser, Debug)]
#[command(name = "skiff-proxy", version, about)]
struct Args {
    /// Kubeconfig of the cluster to watch.
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// This node's name, for the `Local` traffic policies.
    #[arg(long)]
    node_name: String,
    /// How Services are programmed.
    #[arg(long, value_enum, default_value = "nftables")]
    mode: Mode,
    /// Pod addresses; traffic from outside is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Where cluster DNS listens (the kube-dns Service's IP reaches it).
    #[arg(long)]
    dns_address: Option<String>,
    /// Where `/metrics` and `/healthz` are served.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_bind_address: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!("skiff-proxy is not implemented yet ({args:?})")
}
