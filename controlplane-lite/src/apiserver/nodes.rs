//! Reaching a node's agent, as kube-apiserver reaches kubelets: at the Node's InternalIP
//! and `status.daemonEndpoints.kubeletEndpoint.Port`, over TLS with the API server's
//! kubelet-client certificate, without verifying the agent's self-signed serving
//! certificate (kube-apiserver does not without `--kubelet-certificate-authority`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::handlers::Api;
use super::registry;
use super::server::ServeError;
use super::status::ApiError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts any serving certificate, but still checks the handshake's signatures with it.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens connections to agents.
pub struct NodeConnector {
    tls: TlsConnector,
}

impl NodeConnector {
    /// With the kubelet-client certificate and key (PEM).
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<NodeConnector, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ServeError::Tls(format!("kubelet client certificate: {e}")))?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| ServeError::Tls(format!("kubelet client key: {e}")))?
            .ok_or_else(|| ServeError::Tls("no kubelet client key".into()))?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| ServeError::Tls(format!("kubelet client certificate: {e}")))?;
        // Upgraded sessions are HTTP/1.1 byte streams.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(NodeConnector {
            tls: TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// Sends `req` to the agent of node `node` (its path and query are the agent's) and
    /// returns the agent's answer; upgrades stay possible on both.
    pub async fn send<B>(
        &self,
        api: &Api,
        node: &str,
        mut req: http::Request<B>,
    ) -> Result<http::Response<Incoming>, ApiError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (ip, port) = node_endpoint(api, node).await?;
        let unreachable = |what: String| {
            ApiError::new(502, "BadGateway", format!("error dialing backend: {what}"))
        };
        let addr = std::net::SocketAddr::new(ip, port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("dial tcp {addr}: i/o timeout")))?
            .map_err(|e| unreachable(format!("dial tcp {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await
            .map_err(|e| unreachable(format!("tls: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "agent connection ended");
            }
        });
        let host = http::HeaderValue::from_str(&addr.to_string())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        req.headers_mut().insert(http::header::HOST, host);
        sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }
}

/// The agent's address and port from the Node object.
async fn node_endpoint(api: &Api, node: &str) -> Result<(IpAddr, u16), ApiError> {
    let info = registry::lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let (obj, _) = api
        .read(info, None, node)
        .await?
        .ok_or_else(|| ApiError::not_found(info, node))?;
    let status = &obj["status"];
    let ip = status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .find_map(|a| a["address"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
        .ok_or_else(|| ApiError::bad_request(format!("node {node:?} has no InternalIP address")))?;
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!("node {node:?} publishes no kubelet endpoint port"))
        })?;
    Ok((ip, port))
}

/// Reads at most 1 KiB of an error answer, as kube-apiserver does before quoting it.
pub async fn error_text(res: http::Response<Incoming>) -> String {
    let limited = http_body_util::Limited::new(res.into_body(), 1024);
    match limited.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    }
}

/// A JSON value's string at a path, or "".
pub fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}
