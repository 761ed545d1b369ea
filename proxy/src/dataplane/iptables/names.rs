//! Chain names. Per-service chains are named like kube-proxy names them: a prefix and the
//! first 16 characters of the base32 SHA-256 of the service port (and endpoint), so a name is
//! stable across restarts, fits iptables' 28-character limit and changes with what it holds.

use sha2::{Digest, Sha256};

use crate::model::ServicePortName;

/// The fixed chains, in `nat`.
pub const SERVICES: &str = "SKIFF-SERVICES";
pub const NODEPORTS: &str = "SKIFF-NODEPORTS";
pub const POSTROUTING: &str = "SKIFF-POSTROUTING";
pub const MARK_MASQ: &str = "SKIFF-MARK-MASQ";
/// In `filter`: rejects (or drops) new connections to ClusterIPs without usable endpoints…
pub const FILTER_SERVICES: &str = "SKIFF-SERVICES";
/// … and to external addresses and NodePorts without usable endpoints.
pub const EXTERNAL_SERVICES: &str = "SKIFF-EXTERNAL-SERVICES";
/// Every chain this backend owns starts with it.
pub const PREFIX: &str = "SKIFF-";

/// RFC 4648 base32 (with the standard alphabet, as kube-proxy uses) of `bytes`, unpadded.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn hash16(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    let mut encoded = base32(&hasher.finalize());
    encoded.truncate(16);
    encoded
}

/// `namespace/name:port` and the protocol, as kube-proxy hashes them.
fn port_key(name: &ServicePortName) -> String {
    format!("{}/{}:{}", name.namespace, name.name, name.port)
}

/// The chain choosing among the endpoints of cluster traffic.
pub fn service_chain(name: &ServicePortName) -> String {
    format!(
        "SKIFF-SVC-{}",
        hash16(&[&port_key(name), name.protocol.as_str()])
    )
}

/// The chain for traffic to the external addresses and the NodePort.
pub fn external_chain(name: &ServicePortName) -> String {
    format!(
        "SKIFF-EXT-{}",
        hash16(&[&port_key(name), name.protocol.as_str()])
    )
}

/// The chain that DNATs to one endpoint (its name is also the endpoint's affinity list).
pub fn endpoint_chain(name: &ServicePortName, endpoint: &str) -> String {
    format!(
        "SKIFF-SEP-{}",
        hash16(&[&port_key(name), name.protocol.as_str(), endpoint])
    )
}

/// A comment naming the service port, for people reading `iptables-save`.
pub fn comment(name: &ServicePortName, what: &str) -> String {
    format!("-m comment --comment \"{} {what}\"", port_key(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn names_are_kube_proxy_shaped_and_fit_iptables() {
        let name = ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        // sha256("default/web:httptcp"), base32, first 16 characters: what kube-proxy
        // would call KUBE-SVC-….
        let svc = service_chain(&name);
        assert_eq!(svc, "SKIFF-SVC-CDGGSHYLG3RE2FKL");
        assert!(svc.len() <= 28);
        assert_eq!(svc, service_chain(&name.clone()));
        assert_eq!(&svc[10..], &external_chain(&name)[10..]);
        let mut udp = name.clone();
        udp.protocol = Protocol::Udp;
        assert_ne!(svc, service_chain(&udp));
        assert_ne!(
            endpoint_chain(&name, "10.0.0.1:80"),
            endpoint_chain(&name, "10.0.0.2:80")
        );
        assert!(
            svc[10..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
    }
}
