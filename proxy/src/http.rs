//! `/metrics`, `/healthz` and `/livez`: plain HTTP on a loopback address (kube-proxy's
//! 127.0.0.1:10249), and only over TLS anywhere else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics::ProxyMetrics;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "{addr} is not a loopback address: metrics and health are served there only over TLS \
         (give --tls-cert-file and --tls-private-key-file)"
    )]
    PlainOffLoopback { addr: SocketAddr },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|source| HttpError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, HttpError> {
    let pem_err = |path: &Path, message: String| HttpError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let certs = rustls_pemfile::certs(&mut read(&files.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(&files.cert, "no certificate in it".into()));
    }
    let key = rustls_pemfile::private_key(&mut read(&files.key)?.as_slice())
        .map_err(|e| pem_err(&files.key, e.to_string()))?
        .ok_or_else(|| pem_err(&files.key, "no private key in it".into()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn respond(metrics: &ProxyMetrics, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            skiff_api::prom::CONTENT_TYPE,
            skiff_api::prom::global().render(),
        ),
        "/healthz" => {
            let report = metrics.health().report();
            let status = if report.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            metrics.healthz_answered(status.as_u16());
            (status, "application/json", report.body)
        }
        // The process answers: that is all liveness means here.
        "/livez" => (StatusCode::OK, "text/plain", "ok".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// Binds `addr` and serves until the runtime ends. Returns the bound address (port 0 picks
/// one).
pub async fn serve(
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    metrics: ProxyMetrics,
) -> Result<SocketAddr, HttpError> {
    let acceptor = match &tls {
        Some(files) => Some(acceptor(files)?),
        None if !addr.ip().is_loopback() => return Err(HttpError::PlainOffLoopback { addr }),
        None => None,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics connection");
                    continue;
                }
            };
            let metrics = metrics.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = respond(&metrics, req.uri().path());
                    async move { Ok::<_, Infallible>(resp) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake on the metrics port");
                            return;
                        }
                    },
                    None => builder.serve_connection(TokioIo::new(stream), svc).await,
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Mode;
    use crate::metrics::Health;
    use std::time::Duration;

    #[tokio::test]
    async fn plain_http_is_refused_off_loopback() {
        let metrics = ProxyMetrics::new(Mode::Nftables, Health::new(Duration::from_secs(1)));
        let err = serve("0.0.0.0:0".parse().unwrap(), None, metrics)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only over TLS"), "{err}");
    }

    #[tokio::test]
    async fn serves_health_and_metrics_on_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let metrics = ProxyMetrics::new(Mode::Nftables, Health::new(Duration::from_secs(1)));
        let addr = serve("127.0.0.1:0".parse().unwrap(), None, metrics)
            .await
            .unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        // Not synced yet.
        assert!(get("/healthz").await.starts_with("HTTP/1.1 503"));
        assert!(get("/livez").await.starts_with("HTTP/1.1 200"));
        let m = get("/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("kubeproxy_healthz_total{code=\"503\"}"), "{m}");
    }
}
