//! skiff-controlplane: a Kubernetes-compatible API server on an embedded store.

pub mod advertise;
pub mod apiserver;
pub mod bootstrap;
pub mod config;
pub mod controllers;
pub mod metrics_api;
pub mod pki;
pub mod scheduler;
pub mod store;
pub mod testing;

use std::sync::Arc;
use std::time::Instant;

use apiserver::alloc::ServiceAllocator;
use apiserver::handlers::Api;
use apiserver::server::{self, Authenticator, Identity};
pub use config::{Config, StoreKind};
use store::DynStore;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error("--service-cluster-ip-range: {0}")]
    Cidr(#[from] apiserver::alloc::CidrError),
    #[error("bootstrapping the cluster: {0}")]
    Bootstrap(String),
    #[error("--store etcd needs --etcd-endpoints")]
    NoEtcdEndpoints,
    #[error(transparent)]
    Advertise(#[from] advertise::AdvertiseError),
    #[error("--dns-service-ip {0:?}: {1}")]
    DnsServiceIp(String, String),
    #[error("--load-balancer-pool: {0}")]
    LoadBalancerPool(#[from] controllers::service_lb::pool::PoolError),
}

/// The kube-dns Service's address: the flag (empty: none), else the 10th of the range.
fn dns_service_ip(
    flag: Option<&str>,
    range: &apiserver::alloc::Ipv4Cidr,
) -> Result<Option<std::net::Ipv4Addr>, RunError> {
    let ip = match flag.map(str::trim) {
        Some("") => return Ok(None),
        Some(s) => s
            .parse()
            .map_err(|_| RunError::DnsServiceIp(s.into(), "not an IPv4 address".into()))?,
        None => range.nth(10),
    };
    if !range.contains(ip) || ip == range.nth(0) || ip == range.nth(1) {
        return Err(RunError::DnsServiceIp(
            ip.to_string(),
            format!("must be a free address of --service-cluster-ip-range {range}"),
        ));
    }
    Ok(Some(ip))
}

/// Opens the configured store.
pub async fn open_store(cfg: &Config) -> Result<DynStore, RunError> {
    Ok(match cfg.store {
        StoreKind::Sqlite => {
            let s: DynStore = store::sqlite::SqliteStore::open(&cfg.data_dir.join("state.db"))?;
            s
        }
        StoreKind::Etcd => {
            if cfg.etcd_endpoints.is_empty() {
                return Err(RunError::NoEtcdEndpoints);
            }
            let s: DynStore = store::etcd::EtcdStore::connect(&cfg.etcd_endpoints).await?;
            s
        }
    })
}

/// A running server's handle: where it listens and how to stop it.
pub struct Running {
    pub address: std::net::SocketAddr,
    pub kubeconfig: std::path::PathBuf,
    pub api: Arc<Api>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests and waits for the server task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the control plane; returns once it is serving.
pub async fn start(cfg: Config) -> Result<Running, RunError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| RunError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    let range: apiserver::alloc::Ipv4Cidr = cfg.service_cluster_ip_range.parse()?;
    let allocator = ServiceAllocator::new(range)?;
    let dns_ip = dns_service_ip(cfg.dns_service_ip.as_deref(), &range)?;
    let lb_pool: controllers::service_lb::pool::Pool = cfg.load_balancer_pool.parse()?;
    let listener = server::bind(&format!("{}:{}", cfg.bind_address, cfg.secure_port)).await?;
    let local = listener
        .local_addr()
        .map_err(|source| server::ServeError::Io {
            what: "reading the listening address".into(),
            source,
        })?;
    let apiserver_endpoint = advertise::resolve(cfg.advertise_address.as_deref(), local.ip())?
        .map(|ip| std::net::SocketAddr::new(ip, local.port()));
    let mut sans = vec![
        cfg.bind_address.clone(),
        allocator.apiserver_ip().to_string(),
    ];
    // Nodes joining from other machines reach the server at its advertised address.
    if let Some(endpoint) = apiserver_endpoint {
        sans.push(endpoint.ip().to_string());
    }
    sans.extend(cfg.tls_sans.iter().cloned());
    let pki = pki::Pki::load_or_create(&cfg.data_dir, &sans)?;
    let store = open_store(&cfg).await?;
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    let server_address = format!("{host}:{}", local.port());
    let api = Arc::new(Api {
        store,
        services: tokio::sync::Mutex::new(allocator),
        server_address: server_address.clone(),
        namespaces: Default::default(),
        admission: apiserver::kinds::admission::Admission {
            default_toleration_seconds: cfg.default_toleration_seconds,
        },
        nodes: Some(Arc::new(apiserver::nodes::NodeConnector::new(
            &pki.kubelet_client_cert_pem,
            &pki.kubelet_client_key_pem,
        )?)),
        metrics: Arc::new(metrics_api::MetricsStore::new(cfg.metric_resolution)),
    });
    bootstrap::run(&api, dns_ip)
        .await
        .map_err(|e| RunError::Bootstrap(e.to_string()))?;
    // Joining nodes reach the advertised address when there is one.
    let public_address =
        apiserver_endpoint.map_or_else(|| server_address.clone(), |a| a.to_string());
    bootstrap::cluster_info(&api, &format!("https://{public_address}"), &pki.ca_pem)
        .await
        .map_err(|e| RunError::Bootstrap(e.to_string()))?;
    let tls = server::tls_config(&pki.ca_pem, &pki.serving_cert_pem, &pki.serving_key_pem)?;
    let mut auth = Authenticator::default();
    auth.tokens.insert(
        pki.admin_token.clone(),
        Identity {
            user: pki::ADMIN_USER.into(),
            groups: vec![pki::MASTERS_GROUP.into()],
        },
    );
    let kubeconfig = cfg.data_dir.join("admin.kubeconfig");
    pki.write_admin_kubeconfig(&kubeconfig, &format!("https://{server_address}"))?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let ctl = controllers::spawn(api.clone(), cfg.compaction_interval, stopped.clone());
    let scraper = metrics_api::scraper::spawn(api.clone(), api.metrics.clone());
    let workloads = cfg.controllers.then(|| {
        controllers::spawn_workloads(
            kubeconfig.clone(),
            controllers::context::Settings {
                node_monitor_grace: cfg.node_monitor_grace_period,
                default_toleration_seconds: cfg.default_toleration_seconds,
                local_path_dir: cfg.local_path_dir.clone(),
                local_path_helper_image: cfg.local_path_helper_image.clone(),
                node_eviction_rate: cfg.node_eviction_rate,
                secondary_node_eviction_rate: cfg.secondary_node_eviction_rate,
                hpa_sync_period: cfg.horizontal_pod_autoscaler_sync_period,
                hpa_tolerance: cfg.horizontal_pod_autoscaler_tolerance,
                hpa_downscale_stabilization: cfg.horizontal_pod_autoscaler_downscale_stabilization,
                hpa_cpu_initialization_period: cfg
                    .horizontal_pod_autoscaler_cpu_initialization_period,
                hpa_initial_readiness_delay: cfg.horizontal_pod_autoscaler_initial_readiness_delay,
                apiserver_endpoint,
                load_balancer_pool: lb_pool,
                node_ipam: cfg.allocate_node_cidrs.then(|| {
                    controllers::nodeipam::NodeIpamSettings {
                        cluster_cidr: cfg.cluster_cidr.clone(),
                        node_cidr_mask_size: cfg.node_cidr_mask_size,
                    }
                }),
                cluster_signing_cert_file: Some(pki.dir.join(pki::CA_CERT)),
                cluster_signing_key_file: Some(pki.dir.join(pki::CA_KEY)),
                ..Default::default()
            },
        )
    });
    let serve_api = api.clone();
    let task = tokio::spawn(async move {
        server::serve(listener, tls, serve_api, Arc::new(auth), async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        ctl.abort();
        scraper.abort();
        if let Some(w) = workloads {
            w.abort();
        }
    });
    tracing::info!(address = %local, elapsed_ms = t0.elapsed().as_millis() as u64, kubeconfig = %kubeconfig.display(), "control plane serving");
    Ok(Running {
        address: local,
        kubeconfig,
        api,
        stop,
        task,
    })
}

/// mimalloc's option number for `purge_delay` (its header's `mi_option_purge_delay`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once: a list of 10,000 objects allocates tens of MiB
/// for a moment, and the default 10 ms purge delay keeps that resident under steady load.
/// `MIMALLOC_PURGE_DELAY` in the environment still wins, for tuning in the field.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide allocator option; mimalloc documents it as safe at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}
