//! The whole proxy as one call: the `skiff-proxy` binary runs it, and so does `skiff up`
//! inside its own process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::dataplane::cidr::Ipv4Cidr;
use crate::dataplane::iptables::{Iptables, IptablesConfig};
use crate::dataplane::ipvs::{Ipvs, IpvsConfig};
use crate::dataplane::nftables::{ClusterCidrs, Family, Nftables, NftablesConfig};
use crate::dataplane::{Dataplane, DataplaneError, Mode};
use crate::dns::local_address::{self, LocalAddressError};
use crate::dns::{self, DnsConfig, DnsError, DnsHandle};
use crate::http::{self, HttpError, TlsFiles};
use crate::metrics::{Health, ProxyMetrics};
use crate::sync::{self, SyncSettings, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("finding the node's addresses: {0}")]
    NodeAddresses(String),
    #[error("serving cluster DNS: {0}")]
    Dns(#[from] DnsError),
    #[error("holding the DNS address {addr} on {link}: {source}")]
    DnsAddress {
        addr: IpAddr,
        link: String,
        source: LocalAddressError,
    },
    #[error("serving /metrics and /healthz: {0}")]
    Http(#[from] HttpError),
}

/// Everything the proxy is told at start.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    pub mode: Mode,
    /// Pod addresses, one range per family; traffic to a ClusterIP from outside them is
    /// masqueraded.
    pub cluster_cidr: Option<ClusterCidrs>,
    /// Where cluster DNS answers; `None`: no DNS.
    pub dns_address: Option<SocketAddr>,
    /// The device that holds `dns_address` when no interface has it.
    pub dns_interface: String,
    pub cluster_domain: String,
    pub resolv_conf: PathBuf,
    /// Where `/metrics`, `/healthz` and `/livez` are served; `None`: nowhere.
    pub metrics_bind_address: Option<SocketAddr>,
    pub tls: Option<TlsFiles>,
    pub healthz_timeout: Duration,
    /// Addresses NodePorts answer on; empty: every global address of the node.
    pub nodeport_addresses: Vec<IpAddr>,
    /// The nftables table the proxy owns.
    pub table: String,
    pub min_sync_period: Duration,
}

impl ProxyOptions {
    /// kube-proxy's defaults, nftables mode, no DNS.
    pub fn new(kubeconfig: impl Into<PathBuf>, node_name: impl Into<String>) -> Self {
        ProxyOptions {
            kubeconfig: kubeconfig.into(),
            node_name: node_name.into(),
            mode: Mode::Nftables,
            cluster_cidr: None,
            dns_address: None,
            dns_interface: "skiff-dns0".into(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            metrics_bind_address: Some(SocketAddr::from(([127, 0, 0, 1], 10249))),
            tls: None,
            healthz_timeout: Duration::from_secs(60),
            nodeport_addresses: Vec::new(),
            table: "skiff-proxy".into(),
            min_sync_period: Duration::from_millis(200),
        }
    }
}

/// The node's global addresses of both families, from `ip -j addr`.
async fn node_addresses() -> Result<Vec<IpAddr>, DaemonError> {
    let err = |m: String| DaemonError::NodeAddresses(m);
    let out = tokio::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .await
        .map_err(|e| err(format!("running ip -j addr show: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("ip addr show failed: {}", out.status)));
    }
    let links: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| err(format!("parsing ip -j addr output: {e}")))?;
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

async fn client(kubeconfig: &Path) -> Result<kube::Client, DaemonError> {
    let err = |message: String| DaemonError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(cfg).map_err(|e| err(e.to_string()))
}

/// The three backends' settings from one set of options.
struct Backends {
    nftables: NftablesConfig,
    iptables: IptablesConfig,
    ipvs: IpvsConfig,
}

impl Backends {
    async fn new(opts: &ProxyOptions) -> Result<Backends, DaemonError> {
        let node_ports = if opts.nodeport_addresses.is_empty() {
            node_addresses().await?
        } else {
            opts.nodeport_addresses.clone()
        };
        let mut nftables = NftablesConfig::new(&opts.table);
        if !Path::new("/proc/net/if_inet6").exists() {
            // IPv6 is disabled on this host: an ip6 table could not be hooked.
            nftables.families = vec![Family::V4];
        }
        nftables.cluster_cidr = opts.cluster_cidr.clone();
        nftables.node_name = Some(opts.node_name.clone());
        nftables.node_port_addresses = node_ports.clone();
        // The iptables and IPVS backends are IPv4-only.
        let cidr_v4 = opts
            .cluster_cidr
            .as_ref()
            .and_then(|c| c.of(Family::V4))
            .and_then(|c| match c.addr {
                IpAddr::V4(addr) => Some(Ipv4Cidr {
                    addr,
                    prefix: c.prefix,
                }),
                IpAddr::V6(_) => None,
            });
        let ports_v4: Vec<Ipv4Addr> = node_ports
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let iptables = IptablesConfig {
            cluster_cidr: cidr_v4,
            node_name: Some(opts.node_name.clone()),
            node_port_addresses: ports_v4.clone(),
            ..IptablesConfig::default()
        };
        let mut ipvs = IpvsConfig::new();
        ipvs.cluster_cidr = cidr_v4;
        ipvs.node_name = Some(opts.node_name.clone());
        ipvs.node_port_addresses = ports_v4;
        Ok(Backends {
            nftables,
            iptables,
            ipvs,
        })
    }

    fn build(&self, mode: Mode) -> Box<dyn Dataplane> {
        match mode {
            Mode::Nftables => Box::new(Nftables::new(self.nftables.clone())),
            Mode::Iptables => Box::new(Iptables::new(self.iptables.clone())),
            Mode::Ipvs => Box::new(Ipvs::new(self.ipvs.clone())),
        }
    }

    /// Every mode this host can run: those whose leftovers may be in the kernel.
    fn available(proc: &Path) -> Vec<Mode> {
        [Mode::Nftables, Mode::Iptables, Mode::Ipvs]
            .into_iter()
            .filter(|m| m.check_available(proc).is_ok())
            .collect()
    }
}

/// Removes everything any mode of the proxy programmed, and the DNS address device.
pub async fn cleanup(opts: &ProxyOptions) -> Result<(), DaemonError> {
    let backends = Backends::new(opts).await?;
    for mode in Backends::available(Path::new("/proc")) {
        backends.build(mode).cleanup().await?;
    }
    local_address::remove(&opts.dns_interface)
        .await
        .map_err(|source| DaemonError::DnsAddress {
            addr: opts
                .dns_address
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip()),
            link: opts.dns_interface.clone(),
            source,
        })
}

/// A running proxy.
pub struct RunningProxy {
    sync: JoinHandle<()>,
    trigger: Trigger,
    dns: Option<DnsHandle>,
    metrics_addr: Option<SocketAddr>,
}

impl RunningProxy {
    /// Where cluster DNS answers, if it runs.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().map(DnsHandle::local_addr)
    }

    /// Where `/metrics` and `/healthz` answer, if they do.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops syncing and answering. Rules stay in place, as kube-proxy leaves them:
    /// Services keep working while the proxy restarts, and the next start replaces them.
    pub async fn stop(self) {
        self.sync.abort();
        let _ = self.sync.await;
        drop(self.trigger);
        drop(self.dns);
    }
}

/// Checks the mode, removes other modes' leftovers, starts metrics, DNS and the sync loop.
pub async fn start(opts: ProxyOptions) -> Result<RunningProxy, DaemonError> {
    let proc = Path::new("/proc");
    opts.mode.check_available(proc)?;
    let backends = Backends::new(&opts).await?;
    let mut dataplane = backends.build(opts.mode);
    // Another mode's rules would still DNAT (both act in the kernel): they go first, as
    // kube-proxy removes other modes' leftovers when it starts.
    for mode in Backends::available(proc)
        .into_iter()
        .filter(|m| *m != opts.mode)
    {
        if let Err(e) = backends.build(mode).cleanup().await {
            tracing::warn!(error = %e, mode = mode.as_str(), "removing another mode's rules");
        }
    }
    tracing::info!(
        node = %opts.node_name,
        mode = opts.mode.as_str(),
        nodeport_addresses = ?backends.nftables.node_port_addresses,
        "starting the proxy"
    );

    let metrics = ProxyMetrics::new(opts.mode, Health::new(opts.healthz_timeout));
    let metrics_addr = match opts.metrics_bind_address {
        Some(addr) => {
            let bound = http::serve(addr, opts.tls.clone(), metrics.clone()).await?;
            tracing::info!(addr = %bound, "serving /metrics, /healthz and /livez");
            Some(bound)
        }
        None => None,
    };

    let client = client(&opts.kubeconfig).await?;
    let dns = match opts.dns_address {
        Some(listen) => {
            let ip = listen.ip();
            if !ip.is_unspecified() && !ip.is_loopback() {
                let added = local_address::ensure(ip, &opts.dns_interface)
                    .await
                    .map_err(|source| DaemonError::DnsAddress {
                        addr: ip,
                        link: opts.dns_interface.clone(),
                        source,
                    })?;
                if added {
                    tracing::info!(addr = %ip, link = %opts.dns_interface, "DNS address added");
                }
            }
            let config = DnsConfig {
                listen,
                domain: opts.cluster_domain.clone(),
                resolv_conf: opts.resolv_conf.clone(),
                nameservers: vec![ip],
                ..DnsConfig::default()
            };
            let handle = dns::serve(client.clone(), config).await?;
            tracing::info!(addr = %handle.local_addr(), domain = %opts.cluster_domain, "cluster DNS");
            Some(handle)
        }
        None => None,
    };

    let (trigger, notices) = Trigger::new();
    let caches = sync::watch::start(client, trigger.clone());
    let settings = SyncSettings {
        min_interval: opts.min_sync_period,
        ..SyncSettings::default()
    };
    let sync = tokio::spawn(async move {
        let mut observer = metrics;
        sync::run(
            dataplane.as_mut(),
            move || caches.snapshot(),
            notices,
            settings,
            &mut observer,
        )
        .await;
    });
    Ok(RunningProxy {
        sync,
        trigger,
        dns,
        metrics_addr,
    })
}
