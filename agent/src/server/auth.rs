//! Who may use the API: clients with a certificate from the cluster CA whose subject is the
//! API server's kubelet client (or any member of `system:masters`), as a kubelet with
//! anonymous access off and the control plane's identity as its only authorized user.

use rustls::pki_types::CertificateDer;

use super::tls::ClientCa;

/// The API server's client identity towards agents.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
pub const MASTERS_GROUP: &str = "system:masters";

/// The outcome of authentication and authorization of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// No certificate, or one the cluster CA did not sign: 401.
    Unauthorized,
    /// A cluster identity that may not use the agent: 403.
    Forbidden {
        user: String,
    },
}

/// (CN, O...) of a certificate.
fn subject(der: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((user, groups))
}

pub fn check(ca: &ClientCa, chain: Option<&[CertificateDer<'static>]>) -> Access {
    let Some(chain) = chain.filter(|c| !c.is_empty()) else {
        return Access::Unauthorized;
    };
    if let Err(e) = ca.verify(chain) {
        tracing::debug!(error = %e, "client certificate refused");
        return Access::Unauthorized;
    }
    let Some((user, groups)) = subject(&chain[0]) else {
        return Access::Unauthorized;
    };
    if user == KUBELET_CLIENT_USER || groups.iter().any(|g| g == MASTERS_GROUP) {
        Access::Allowed
    } else {
        Access::Forbidden { user }
    }
}
