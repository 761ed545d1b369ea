//! TLS for HTTPS probes and hooks: like kubelet, no certificate verification (a container's
//! certificate is usually self-signed or for a name the pod IP is not), but handshake
//! signatures are still checked against the certificate presented.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// The shared client configuration: ring, TLS 1.2 and 1.3, HTTP/1.1 only.
pub(crate) fn client_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// The name to present (SNI) and check signatures for: the URL's host, as Go does.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("tls: invalid server name {host:?}: {e}"))
}

/// Go's text for a failed handshake, as far as the two libraries' errors correspond.
pub(crate) fn handshake_error(
    err: &std::io::Error,
    local: Option<std::net::SocketAddr>,
    peer: Option<std::net::SocketAddr>,
) -> String {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        // A plain HTTP server answering: its "HTTP/1.1 ..." is no TLS record.
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            HTTP_TO_HTTPS.to_string()
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("remote error: tls: {}", words(&format!("{alert:?}")))
        }
        Some(other) => format!("tls: {other}"),
        None => super::net::conn_error(err, local, peer),
    }
}

/// What Go's client reports when an HTTPS request gets a plain HTTP answer.
pub(crate) const HTTP_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";

/// `HandshakeFailure` → `handshake failure`.
fn words(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_words() {
        assert_eq!(words("HandshakeFailure"), "handshake failure");
        assert_eq!(words("BadCertificate"), "bad certificate");
    }

    #[test]
    fn config_builds() {
        assert!(client_config().is_ok());
        assert!(server_name("10.0.0.5").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("app.example").is_ok());
    }
}
