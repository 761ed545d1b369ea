//! Cluster DNS: names of Services and their endpoints answered as CoreDNS's kubernetes plugin
//! answers them, everything else forwarded to the node's resolvers with a cache.
//!
//! [`serve`] starts the server on UDP and TCP and keeps its records current from watches of
//! Namespaces, Services and EndpointSlices; [`serve_with_data`] serves a store filled by
//! hand (tests, benchmarks).

pub mod answer;
pub mod bench;
pub mod cache;
pub mod forward;
pub mod handler;
pub mod local_address;
pub mod store;
pub mod watch;

#[cfg(test)]
mod answer_tests;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

pub use answer::Zone;
pub use store::ClusterData;

/// How cluster DNS runs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to listen, UDP and TCP (port 0: any free port, the same for both).
    pub listen: SocketAddr,
    /// The cluster domain.
    pub domain: String,
    /// Where the upstream resolvers are listed.
    pub resolv_conf: PathBuf,
    /// Upstreams to use instead of those of `resolv_conf` (any port).
    pub upstreams: Vec<SocketAddr>,
    /// The addresses `ns.dns.<domain>` answers (the kube-dns Service's IPs).
    pub nameservers: Vec<IpAddr>,
    /// How long one upstream is waited for.
    pub upstream_timeout: Duration,
    /// The longest an upstream answer is cached, whatever its TTL.
    pub cache_max_ttl: Duration,
    /// How many upstream answers are cached.
    pub cache_capacity: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 53)),
            domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            upstreams: Vec::new(),
            nameservers: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
            // The kubeadm Corefile's `cache 30`.
            cache_max_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("reading upstream resolvers from {path}: {source}")]
    ResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid cluster domain {domain:?}: {message}")]
    Domain { domain: String, message: String },
    #[error("binding DNS {proto} on {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running DNS server. Dropping it (or [`DnsHandle::shutdown`]) stops the server and its
/// watches.
pub struct DnsHandle {
    local_addr: SocketAddr,
    data: Arc<RwLock<ClusterData>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
}

impl DnsHandle {
    /// Where it answers, UDP and TCP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store it answers from.
    pub fn data(&self) -> Arc<RwLock<ClusterData>> {
        self.data.clone()
    }

    /// Whether every watch has listed once.
    pub fn synced(&self) -> bool {
        self.data.read().map(|d| d.synced()).unwrap_or(false)
    }

    pub async fn shutdown(mut self) {
        self.stop_all();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    fn stop_all(&mut self) {
        for w in &self.watches {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Serves cluster DNS for the cluster `client` talks to.
///
/// hickory-server logs every query at `info`: a binary that logs at `info` should filter
/// `hickory_server=warn`.
pub async fn serve(client: kube::Client, config: DnsConfig) -> Result<DnsHandle, DnsError> {
    let data = Arc::new(RwLock::new(ClusterData::new()));
    let mut handle = serve_with_data(data.clone(), config).await?;
    handle.watches = watch::spawn(client, data);
    Ok(handle)
}

/// Serves DNS from `data` as it is (nothing updates it but the caller).
pub async fn serve_with_data(
    data: Arc<RwLock<ClusterData>>,
    config: DnsConfig,
) -> Result<DnsHandle, DnsError> {
    let zone =
        Zone::new(&config.domain, config.nameservers.clone()).map_err(|e| DnsError::Domain {
            domain: config.domain.clone(),
            message: e.to_string(),
        })?;
    let upstreams = if config.upstreams.is_empty() {
        forward::read_resolv_conf(&config.resolv_conf)?
    } else {
        config.upstreams.clone()
    };
    if upstreams.is_empty() {
        tracing::warn!(path = %config.resolv_conf.display(), "no upstream resolvers: names outside the cluster will fail");
    }
    let (udp, tcp, local_addr) = bind(config.listen).await?;
    // Forwarding to ourselves (a resolv.conf naming this very server) would loop.
    let is_self = |u: &SocketAddr| {
        u.port() == local_addr.port()
            && (u.ip() == local_addr.ip()
                || (local_addr.ip().is_unspecified() && u.ip().is_loopback()))
    };
    let (ours, upstreams): (Vec<SocketAddr>, Vec<SocketAddr>) =
        upstreams.into_iter().partition(is_self);
    if !ours.is_empty() {
        tracing::warn!(?ours, "not forwarding to this server itself");
    }
    let forwarder = forward::Forwarder::new(
        upstreams,
        config.upstream_timeout,
        cache::Cache::new(config.cache_max_ttl, config.cache_capacity),
    );
    let handler = handler::DnsHandler {
        data: data.clone(),
        zone,
        forwarder: Arc::new(forwarder),
    };
    let mut server = Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 64 * 1024);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Stop on request or when the handle is gone.
        let _ = stopped.await;
        if let Err(e) = server.shutdown_gracefully().await {
            tracing::warn!(error = %e, "DNS server stopped with an error");
        }
    });
    tracing::info!(addr = %local_addr, "cluster DNS listening");
    Ok(DnsHandle {
        local_addr,
        data,
        stop: Some(stop),
        server: Some(task),
        watches: Vec::new(),
    })
}

/// A UDP socket and a TCP listener on the same address. With port 0 the UDP port is chosen
/// first; when its TCP twin is taken, another is tried.
async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), DnsError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                proto: "UDP",
                addr: listen,
                source,
            })?;
        let local_addr = udp.local_addr().map_err(|source| DnsError::Bind {
            proto: "UDP",
            addr: listen,
            source,
        })?;
        match TcpListener::bind(local_addr).await {
            Ok(tcp) => return Ok((udp, tcp, local_addr)),
            Err(e)
                if listen.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempts < 20 =>
            {
                continue;
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    proto: "TCP",
                    addr: local_addr,
                    source,
                });
            }
        }
    }
}
