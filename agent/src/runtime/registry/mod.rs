//! Pulling from OCI registries: the distribution API client ([`RegistryClient`]) with its
//! authentication (anonymous, bearer tokens from the registry's token service, Basic), the
//! registry configuration (insecure hosts, extra CAs), and the credentials kubelet finds in
//! image pull secrets ([`keyring::credentials_for`]). Storing what it fetches in containerd is
//! [`crate::runtime::containerd::Containerd`]'s business.

mod auth;
mod client;
pub mod keyring;
mod verify;

use std::net::IpAddr;
use std::path::PathBuf;

pub use auth::{Challenge, TokenCache, TokenKey, parse_challenges};
pub(crate) use client::chain as error_chain;
pub use client::{MAX_MANIFEST, RegistryClient, RegistryError, Resolved, Session};
pub use keyring::{KeyringError, credentials_for};
pub use verify::VerifyingReader;

/// How to reach registries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host` or `host:port`, as in image names) that may be spoken to over plain
    /// HTTP: HTTPS is tried first, and plain HTTP used when the registry does not speak TLS.
    /// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) are always treated so.
    pub insecure: Vec<String>,
    /// PEM files of extra certificate authorities trusted besides the system's.
    pub ca_files: Vec<PathBuf>,
}

impl RegistryConfig {
    /// Whether `registry` (a host or host:port, as in an image name) may be spoken to over
    /// plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self.insecure.iter().any(|h| {
                let h = h
                    .trim()
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                h.eq_ignore_ascii_case(registry) || (!h.contains(':') && host_of(registry) == h)
            })
    }
}

/// The host part of `host[:port]` or `[v6]:port`, without brackets.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if !h.contains(':') => h,
        _ => registry,
    }
}

/// Loopback registries are insecure by default, as containerd and Docker treat them.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An image reference split into what the distribution API needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageName {
    /// The registry as the name writes it: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The repository path: `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageName {
    /// Parses a reference, normalizing it first (`busybox` is
    /// `docker.io/library/busybox:latest`). None when it cannot be an image reference.
    pub fn parse(reference: &str) -> Option<ImageName> {
        let full = super::reference::normalize(reference)?;
        let (name, digest) = match full.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (full.as_str(), None),
        };
        let last_slash = name.rfind('/')?;
        let (repo, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        let (registry, repository) = repo.split_once('/')?;
        let valid_path = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        let valid_tag = tag.as_deref().is_none_or(|t| {
            t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        let valid_digest = digest.as_deref().is_none_or(|d| {
            d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
            })
        });
        if registry.is_empty() || !valid_path || !valid_tag || !valid_digest {
            return None;
        }
        Some(ImageName {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What the manifest URL names: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host (and port) the registry's API answers on: Docker Hub's names say
    /// `docker.io`, its API lives elsewhere.
    pub fn api_host(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            r => r,
        }
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_registry_repository_and_reference() {
        let n = ImageName::parse("busybox").unwrap();
        assert_eq!(
            (n.registry.as_str(), n.repository.as_str(), n.reference()),
            ("docker.io", "library/busybox", "latest")
        );
        assert_eq!(n.api_host(), "registry-1.docker.io");
        assert_eq!(n.to_string(), "docker.io/library/busybox:latest");

        let d = format!("sha256:{}", "a".repeat(64));
        let n = ImageName::parse(&format!("127.0.0.1:5000/team/app:v1@{d}")).unwrap();
        assert_eq!(n.registry, "127.0.0.1:5000");
        assert_eq!(n.api_host(), "127.0.0.1:5000");
        assert_eq!(n.repository, "team/app");
        assert_eq!(n.tag.as_deref(), Some("v1"));
        assert_eq!(n.reference(), d);

        assert!(ImageName::parse("Busybox").is_none());
        assert!(ImageName::parse("reg.test/app@md5").is_none());
        assert!(ImageName::parse("reg.test/a..b/c$").is_none());
    }

    #[test]
    fn loopback_and_configured_registries_are_insecure() {
        let cfg = RegistryConfig {
            insecure: vec!["reg.lan".into(), "other.lan:5000".into()],
            ca_files: vec![],
        };
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
            "reg.lan",
            "reg.lan:443",
            "other.lan:5000",
        ] {
            assert!(cfg.is_insecure(r), "{r}");
        }
        for r in ["docker.io", "other.lan", "other.lan:5001", "10.0.0.1:5000"] {
            assert!(!cfg.is_insecure(r), "{r}");
        }
    }
}
