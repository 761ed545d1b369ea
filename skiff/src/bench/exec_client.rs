//! A minimal `pods/exec` client for the benchmark: the WebSocket `v5.channel.k8s.io`
//! session kubectl opens, without kubectl's own process start, so the round trip through
//! the API server, the agent and containerd can be timed on its own.

use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_agent::streams::websocket::{self, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub struct ExecClient {
    tls: TlsConnector,
    addr: String,
    name: ServerName<'static>,
}

fn pem_data(b64: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .with_context(|| format!("decoding {what}"))
}

impl ExecClient {
    /// From a kubeconfig with embedded CA, client certificate and key (as the control
    /// plane writes its admin kubeconfig).
    pub fn from_kubeconfig(path: &std::path::Path) -> anyhow::Result<ExecClient> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let kc: serde_json::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let field = |ptr: &str| -> anyhow::Result<String> {
            kc.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("kubeconfig has no {ptr}"))
        };
        let decode = |ptr: &str| -> anyhow::Result<Vec<u8>> { pem_data(&field(ptr)?, ptr) };
        let ca = decode("/clusters/0/cluster/certificate-authority-data")?;
        let cert = decode("/users/0/user/client-certificate-data")?;
        let key = decode("/users/0/user/client-key-data")?;
        let server = field("/clusters/0/cluster/server")?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(c?)?;
        }
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut cert.as_slice()).collect::<Result<_, _>>()?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut key.as_slice())?.context("no private key")?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
        let addr = server
            .strip_prefix("https://")
            .context("server is not https")?
            .trim_end_matches('/')
            .to_string();
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let name = ServerName::try_from(host.to_string())?;
        Ok(ExecClient {
            tls: TlsConnector::from(Arc::new(config)),
            addr,
            name,
        })
    }

    /// Runs `command` in the pod's first container and returns the status message's
    /// `status` (`Success` or `Failure`) once the session reports it.
    pub async fn exec(&self, ns: &str, pod: &str, command: &[&str]) -> anyhow::Result<String> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = self.tls.connect(self.name.clone(), tcp).await?;
        let query: String = command
            .iter()
            .map(|c| format!("command={c}&"))
            .collect::<String>()
            + "stdout=true&stderr=true";
        let req = format!(
            "GET /api/v1/namespaces/{ns}/pods/{pod}/exec?{query} HTTP/1.1\r\nHost: {}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: c2tpZmYtYmVuY2gtZXhlYw==\r\n\
             Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
            self.addr
        );
        tls.write_all(req.as_bytes()).await?;
        // The response head, byte by byte: what follows it is already the session.
        let mut head = Vec::with_capacity(512);
        while !head.ends_with(b"\r\n\r\n") {
            let b = tls
                .read_u8()
                .await
                .context("reading the upgrade response")?;
            head.push(b);
            if head.len() > 16 * 1024 {
                bail!("upgrade response head too long");
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            bail!(
                "exec not upgraded: {}",
                head.lines().next().unwrap_or_default()
            );
        }
        let mut r = websocket::Reader::new(tls);
        while let Some(m) = r.next().await? {
            if let Message::Binary(b) = m
                && b.first() == Some(&3)
            {
                let status: serde_json::Value = serde_json::from_slice(&b[1..])?;
                return Ok(status["status"].as_str().unwrap_or_default().to_string());
            }
        }
        bail!("the session ended without a status")
    }
}
