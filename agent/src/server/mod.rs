//! The agent's HTTPS API, the part of kubelet's the API server uses: `/healthz`,
//! `/metrics`, `/metrics/resource`, `/stats/summary`, `/pods`, `/containerLogs/...`, and
//! the interactive `/exec/...`,
//! `/attach/...` and `/portForward/...` (whose protocols live in [`crate::streams`]). Only
//! the control plane's client certificate is let in.

mod auth;
mod resolve;
mod routes;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pods::manager::RunningPods;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;

pub use auth::{Access, KUBELET_CLIENT_USER, MASTERS_GROUP};
pub use tls::{kubeconfig_ca, serving_cert};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers read: the node's pods, the runtime, the sandboxes, the log files and
/// the resource usage.
pub struct ApiState {
    pub pods: RunningPods,
    pub runtime: Arc<dyn Runtime>,
    pub sandbox: Arc<Sandbox>,
    pub log_dir: PathBuf,
    pub stats: Arc<crate::stats::Collector>,
}

/// Where and how to serve.
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The CA of accepted client certificates (PEM).
    pub client_ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Binds the port and serves in a task until it is aborted.
pub async fn start(
    cfg: ServerConfig,
    state: Arc<ApiState>,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let (tls, ca) = tls::server_config(&cfg.client_ca_pem, &cfg.cert_pem, &cfg.key_pem)?;
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.addr,
            source,
        })?;
    let acceptor = TlsAcceptor::from(tls);
    tracing::info!(addr = %cfg.addr, "agent API listening");
    Ok(tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an API connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, ca, state) = (acceptor.clone(), ca.clone(), state.clone());
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let access = auth::check(&ca, stream.get_ref().1.peer_certificates());
                let svc = service_fn(move |req| {
                    let (state, access) = (state.clone(), access.clone());
                    async move {
                        let started = std::time::Instant::now();
                        let (method, uri) = (req.method().clone(), req.uri().to_string());
                        let res = routes::handle(req, &access, state).await;
                        crate::metrics::request(&method, &uri, started);
                        Ok::<_, std::convert::Infallible>(res)
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, error = %e, "API connection ended");
                }
            });
        }
    }))
}
