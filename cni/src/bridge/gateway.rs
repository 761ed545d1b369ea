use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::spec::{CniResult, Error, Route};

/// The gateway of a pod address: the one IPAM named, else the subnet's first host,
/// as the reference plugin computes it.
pub fn gateway_for(addr: &IpNet, given: Option<IpAddr>) -> IpAddr {
    given.unwrap_or_else(|| match addr.network() {
        IpAddr::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n).wrapping_add(1))),
        IpAddr::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n).wrapping_add(1))),
    })
}

/// Fills in gateways when the bridge is the gateway, and adds default routes through
/// them when it is the default gateway. Returns the bridge's gateway addresses (with
/// the pod subnet's prefix).
pub fn apply(
    result: &mut CniResult,
    is_gateway: bool,
    is_default_gateway: bool,
) -> Result<Vec<IpNet>, Error> {
    let mut bridge_addrs = Vec::new();
    if !is_gateway {
        return Ok(bridge_addrs);
    }
    let mut defaults = Vec::new();
    for ip in &mut result.ips {
        let gw = gateway_for(&ip.address, ip.gateway);
        ip.gateway = Some(gw);
        if let Ok(net) = IpNet::new(gw, ip.address.prefix_len())
            && !bridge_addrs.contains(&net)
        {
            bridge_addrs.push(net);
        }
        if is_default_gateway
            && !defaults
                .iter()
                .any(|g: &IpAddr| g.is_ipv4() == gw.is_ipv4())
        {
            defaults.push(gw);
        }
    }
    for gw in defaults {
        let dst: IpNet = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }
            .parse()
            .map_err(|_| Error::config("bad default route"))?;
        match result.routes.iter().find(|r| r.dst == dst) {
            Some(r) if r.gw.is_some_and(|g| g != gw) => {
                return Err(Error::config(format!(
                    "isDefaultGateway ineffective because IPAM sets default route via {}",
                    r.gw.map(|g| g.to_string()).unwrap_or_default()
                )));
            }
            Some(_) => {
                for r in result.routes.iter_mut().filter(|r| r.dst == dst) {
                    r.gw = Some(gw);
                }
            }
            None => result.routes.push(Route::new(dst, Some(gw))),
        }
    }
    Ok(bridge_addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::IpConfig;

    #[test]
    fn default_gateway_routes() {
        let mut r = CniResult {
            ips: vec![
                IpConfig {
                    interface: None,
                    address: "10.1.2.7/24".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: None,
                    address: "fd00:1::7/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            ..Default::default()
        };
        let addrs = apply(&mut r, true, true).unwrap();
        assert_eq!(
            addrs,
            vec![
                "10.1.2.1/24".parse::<IpNet>().unwrap(),
                "fd00:1::1/64".parse().unwrap()
            ]
        );
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[0].gw, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(r.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
    }

    #[test]
    fn conflicting_default_route() {
        let mut r = CniResult {
            ips: vec![IpConfig {
                interface: None,
                address: "10.1.2.7/24".parse().unwrap(),
                gateway: None,
            }],
            routes: vec![Route::new(
                "0.0.0.0/0".parse().unwrap(),
                Some("10.1.2.254".parse().unwrap()),
            )],
            ..Default::default()
        };
        assert!(apply(&mut r, true, true).is_err());
    }
}
