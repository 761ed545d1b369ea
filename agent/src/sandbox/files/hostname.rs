//! The pod's hostname and DNS domain, as the kubelet derives them.

use k8s_openapi::api::core::v1::Pod;

use super::FilesError;

/// A DNS label (RFC 1123) is at most this long; longer pod names are cut to it.
const MAX_LABEL: usize = 63;
/// What the kernel accepts as a hostname (and so an FQDN set as one).
const MAX_HOSTNAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHostname {
    /// `spec.hostname`, else the pod name cut to 63 characters.
    pub hostname: String,
    /// `<subdomain>.<namespace>.svc.<cluster domain>` when `spec.subdomain` is set.
    pub domain: Option<String>,
    /// What the UTS namespace gets: the FQDN with `setHostnameAsFQDN`, else `hostname`.
    pub uts: String,
}

impl PodHostname {
    pub fn fqdn(&self) -> Option<String> {
        self.domain
            .as_ref()
            .map(|d| format!("{}.{d}", self.hostname))
    }
}

pub fn pod_hostname(pod: &Pod, cluster_domain: &str) -> Result<PodHostname, FilesError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(FilesError::InvalidPod {
            field: "metadata.name",
            reason: "is empty".into(),
        });
    }
    let spec = pod.spec.as_ref();
    let requested = spec.and_then(|s| s.hostname.as_deref()).unwrap_or_default();
    let hostname = if requested.is_empty() {
        name
    } else {
        check_label("spec.hostname", requested)?;
        requested
    };
    let hostname = truncate(hostname).ok_or_else(|| FilesError::InvalidPod {
        field: "metadata.name",
        reason: format!("{hostname:?} leaves no hostname once cut to {MAX_LABEL} characters"),
    })?;
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .unwrap_or_default();
    let domain = if subdomain.is_empty() {
        None
    } else {
        check_label("spec.subdomain", subdomain)?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = format!("{subdomain}.{namespace}.svc.{cluster_domain}");
        Some(domain.trim_end_matches('.').to_string())
    };
    let as_fqdn = spec.and_then(|s| s.set_hostname_as_fqdn).unwrap_or(false);
    let uts = match &domain {
        Some(d) if as_fqdn => {
            let fqdn = format!("{hostname}.{d}");
            if fqdn.len() > MAX_HOSTNAME {
                return Err(FilesError::InvalidPod {
                    field: "spec.setHostnameAsFQDN",
                    reason: format!(
                        "FQDN {fqdn} is too long ({MAX_HOSTNAME} characters is the max, {} characters requested)",
                        fqdn.len()
                    ),
                });
            }
            fqdn
        }
        _ => hostname.clone(),
    };
    Ok(PodHostname {
        hostname,
        domain,
        uts,
    })
}

/// The kubelet cuts long pod names and then drops trailing '-' and '.'.
fn truncate(name: &str) -> Option<String> {
    let mut end = name.len().min(MAX_LABEL);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].trim_end_matches(['-', '.']);
    (!cut.is_empty()).then(|| cut.to_string())
}

fn check_label(field: &'static str, value: &str) -> Result<(), FilesError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_LABEL
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(FilesError::InvalidPod {
            field,
            reason: format!("{value:?} is not a valid DNS label"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn the_pod_name_is_the_default_hostname() {
        let h = pod_hostname(&pod("web-0", PodSpec::default()), "cluster.local").unwrap();
        assert_eq!(h.hostname, "web-0");
        assert_eq!(h.domain, None);
        assert_eq!(h.uts, "web-0");
    }

    #[test]
    fn hostname_and_subdomain_make_the_fqdn() {
        let spec = PodSpec {
            hostname: Some("db".into()),
            subdomain: Some("backend".into()),
            ..Default::default()
        };
        let h = pod_hostname(&pod("db-xyz", spec.clone()), "cluster.local").unwrap();
        assert_eq!(h.hostname, "db");
        assert_eq!(
            h.fqdn().as_deref(),
            Some("db.backend.shop.svc.cluster.local")
        );
        assert_eq!(h.uts, "db");
        let as_fqdn = PodSpec {
            set_hostname_as_fqdn: Some(true),
            ..spec
        };
        let h = pod_hostname(&pod("db-xyz", as_fqdn), "cluster.local").unwrap();
        assert_eq!(h.uts, "db.backend.shop.svc.cluster.local");
    }

    #[test]
    fn long_names_are_cut_and_an_fqdn_over_64_is_refused() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let h = pod_hostname(&pod(&long, PodSpec::default()), "cluster.local").unwrap();
        assert_eq!(
            h.hostname,
            "a".repeat(62),
            "cut at 63 and the trailing '-' dropped"
        );
        let spec = PodSpec {
            hostname: Some("h".repeat(40)),
            subdomain: Some("s".repeat(20)),
            set_hostname_as_fqdn: Some(true),
            ..Default::default()
        };
        let err = pod_hostname(&pod("p", spec), "cluster.local").unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn invalid_labels_are_refused() {
        for bad in ["Upper", "-lead", "trail-", "dot.ted"] {
            let spec = PodSpec {
                hostname: Some(bad.into()),
                ..Default::default()
            };
            assert!(pod_hostname(&pod("p", spec), "c").is_err(), "{bad}");
        }
        assert!(pod_hostname(&Pod::default(), "c").is_err());
    }
}
