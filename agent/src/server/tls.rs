//! The API's TLS: a self-signed serving certificate the agent makes and keeps under its
//! root dir (the API server does not verify it, as kube-apiserver does not verify kubelets
//! without `--kubelet-certificate-authority`), and client certificates checked against the
//! cluster CA after the handshake, so that a missing or foreign certificate gets kubelet's
//! HTTP 401 rather than a TLS alert.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use super::ServerError;

const CERT_FILE: &str = "agent.crt";
const KEY_FILE: &str = "agent.key";
const SANS_FILE: &str = "agent.sans";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |e| ServerError::Tls(format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// The serving certificate and key (PEM) under `dir`, made when missing or when the names
/// it must carry changed.
pub fn serving_cert(dir: &Path, sans: &[String]) -> Result<(String, String), ServerError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let (cert_path, key_path, sans_path) =
        (dir.join(CERT_FILE), dir.join(KEY_FILE), dir.join(SANS_FILE));
    let wanted = sans.join(",");
    let current = fs::read_to_string(&sans_path).unwrap_or_default();
    if !cert_path.exists() || !key_path.exists() || current != wanted {
        let key = rcgen::KeyPair::generate().map_err(|e| ServerError::Tls(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(sans.to_vec())
            .map_err(|e| ServerError::Tls(format!("serving certificate names: {e}")))?;
        let cn = sans.first().map_or("skiff-agent", String::as_str);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{cn}@skiff-agent"));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .self_signed(&key)
            .map_err(|e| ServerError::Tls(format!("serving certificate: {e}")))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
        write_private(&sans_path, wanted.as_bytes())?;
    }
    Ok((
        fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?,
        fs::read_to_string(&key_path).map_err(io_err(&key_path))?,
    ))
}

/// The CA (PEM) of the kubeconfig's current cluster: its `certificate-authority-data`, or
/// the file `certificate-authority` names (relative to the kubeconfig).
pub fn kubeconfig_ca(path: &Path) -> Result<String, ServerError> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", path.display())))?;
    let context = kc.current_context.as_deref().and_then(|name| {
        kc.contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
    });
    let cluster = kc
        .clusters
        .iter()
        .find(|c| context.is_none_or(|ctx| ctx.cluster == c.name))
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| ServerError::Tls(format!("{}: no cluster", path.display())))?;
    if let Some(data) = &cluster.certificate_authority_data {
        use base64::Engine;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| ServerError::Tls(format!("certificate-authority-data: {e}")))?;
        return String::from_utf8(pem)
            .map_err(|e| ServerError::Tls(format!("certificate-authority-data: {e}")));
    }
    if let Some(file) = &cluster.certificate_authority {
        let mut p = PathBuf::from(file);
        if p.is_relative()
            && let Some(dir) = path.parent()
        {
            p = dir.join(p);
        }
        return fs::read_to_string(&p).map_err(io_err(&p));
    }
    Err(ServerError::Tls(format!(
        "{}: the cluster names no certificate authority; give --client-ca-file",
        path.display()
    )))
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ServerError::Tls("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Asks for a client certificate and proves the client holds its key, but leaves the chain
/// to [`ClientCa::verify`] after the handshake.
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The CA client certificates must chain to.
#[derive(Clone)]
pub struct ClientCa(Arc<dyn ClientCertVerifier>);

impl ClientCa {
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (end, intermediates) = chain.split_first().ok_or("no client certificate")?;
        self.0
            .verify_client_cert(end, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The server's TLS configuration and the CA its clients are checked against.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Arc<rustls::ServerConfig>, ClientCa), ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem)? {
        roots
            .add(c)
            .map_err(|e| ServerError::Tls(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| ServerError::Tls(format!("key PEM: {e}")))?
        .ok_or_else(|| ServerError::Tls("no private key in PEM".into()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(Deferred(verifier.clone())))
        .with_single_cert(pem_certs(cert_pem)?, key)
        .map_err(|e| ServerError::Tls(format!("serving certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), ClientCa(verifier)))
}
