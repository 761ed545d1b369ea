//! The address pods reach the API server at (`--advertise-address`), published as the
//! `default/kubernetes` Endpoints.

use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, thiserror::Error)]
pub enum AdvertiseError {
    #[error("--advertise-address {0:?}: not an IP address")]
    Parse(String),
    #[error("--advertise-address {0}: must be a specific address, not 0.0.0.0 or ::")]
    Unspecified(IpAddr),
}

/// The advertise address: the flag when given; else the bind address when it is a
/// specific non-loopback one; else, bound to every address, the host's first global
/// IPv4 address. `None` when bound to loopback (no address reachable from pods exists;
/// kube-apiserver likewise never advertises a loopback address it chose itself).
pub fn resolve(flag: Option<&str>, bound: IpAddr) -> Result<Option<IpAddr>, AdvertiseError> {
    if let Some(s) = flag.map(str::trim).filter(|s| !s.is_empty()) {
        let ip: IpAddr = s.parse().map_err(|_| AdvertiseError::Parse(s.into()))?;
        if ip.is_unspecified() {
            return Err(AdvertiseError::Unspecified(ip));
        }
        return Ok(Some(ip));
    }
    if bound.is_loopback() {
        tracing::warn!(
            bind_address = %bound,
            "bound to loopback only: pods cannot reach the API server, so the default/kubernetes \
             Service gets no endpoints (set --bind-address or --advertise-address)"
        );
        return Ok(None);
    }
    if !bound.is_unspecified() {
        return Ok(Some(bound));
    }
    let found = host_ipv4();
    if found.is_none() {
        tracing::warn!(
            "no global IPv4 address found on this host: the default/kubernetes Service gets \
             no endpoints (set --advertise-address)"
        );
    }
    Ok(found.map(IpAddr::V4))
}

/// The host's first global-scope IPv4 address, from `ip -j -4 addr` (iproute2 is on every
/// node already).
fn host_ipv4() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    first_global(&serde_json::from_slice(&out.stdout).ok()?)
}

fn first_global(links: &serde_json::Value) -> Option<Ipv4Addr> {
    links
        .as_array()?
        .iter()
        .flat_map(|l| l["addr_info"].as_array().into_iter().flatten())
        .filter(|a| a["family"] == "inet" && a["scope"] == "global")
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .find(|ip: &Ipv4Addr| !ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn flag_then_bind_address_then_none_on_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let specific: IpAddr = "192.168.1.4".parse().unwrap();
        assert_eq!(
            resolve(Some("10.0.0.2"), lo).unwrap(),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(resolve(None, specific).unwrap(), Some(specific));
        assert_eq!(resolve(None, lo).unwrap(), None);
        assert!(resolve(Some("nope"), lo).is_err());
        assert!(resolve(Some("0.0.0.0"), lo).is_err());
    }

    #[test]
    fn first_global_ipv4_of_ip_json() {
        let links = serde_json::json!([
            {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "scope": "host"}]},
            {"ifname": "eth0", "addr_info": [
                {"family": "inet", "local": "169.254.3.3", "scope": "link"},
                {"family": "inet", "local": "172.20.0.5", "scope": "global"}]},
            {"ifname": "eth1", "addr_info": [{"family": "inet", "local": "10.0.0.9", "scope": "global"}]},
        ]);
        assert_eq!(first_global(&links), Some(Ipv4Addr::new(172, 20, 0, 5)));
        assert_eq!(first_global(&serde_json::json!([])), None);
    }
}
