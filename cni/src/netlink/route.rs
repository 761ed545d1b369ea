use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

use super::{Netlink, NetlinkError};

const RT_TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    All,
}

impl Family {
    fn families(self) -> &'static [AddressFamily] {
        match self {
            Family::V4 => &[AddressFamily::Inet],
            Family::V6 => &[AddressFamily::Inet6],
            Family::All => &[AddressFamily::Inet, AddressFamily::Inet6],
        }
    }
}

/// A unicast route. `table: None` is the main table; `scope: None` on add means
/// "link" without a gateway and "universe" with one, as `ip route add` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
    pub src: Option<IpAddr>,
}

impl RouteSpec {
    /// A route to `dst` with everything else left to the kernel.
    pub fn to(dst: IpNet) -> RouteSpec {
        RouteSpec {
            dst,
            gateway: None,
            oif: None,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
            src: None,
        }
    }

    fn table_id(&self) -> u32 {
        self.table.unwrap_or(RT_TABLE_MAIN)
    }

    /// Whether `other` is the same route as far as the kernel's identity goes:
    /// destination, gateway and table, plus device and priority when both name one.
    pub fn same_route(&self, other: &RouteSpec) -> bool {
        self.dst.trunc() == other.dst.trunc()
            && self.gateway == other.gateway
            && self.table_id() == other.table_id()
            && (self.oif.is_none() || other.oif.is_none() || self.oif == other.oif)
            && (self.priority.is_none()
                || other.priority.is_none()
                || self.priority == other.priority)
    }

    fn check(&self) -> Result<(), NetlinkError> {
        let v4 = self.dst.addr().is_ipv4();
        for (what, ip) in [("route gateway", self.gateway), ("route source", self.src)] {
            if let Some(ip) = ip
                && ip.is_ipv4() != v4
            {
                return Err(NetlinkError::Invalid {
                    what,
                    value: ip.to_string(),
                    reason: "is not of the destination's address family",
                });
            }
        }
        Ok(())
    }

    /// The message for RTM_NEWROUTE, or RTM_DELROUTE with `delete`, where unset
    /// fields match anything.
    fn message(&self, delete: bool) -> RouteMessage {
        let dst = self.dst.trunc();
        let mut msg = RouteMessage::default();
        msg.header.address_family = match dst {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = dst.prefix_len();
        let table = self.table_id();
        msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        if table > 255 {
            msg.attributes.push(RouteAttribute::Table(table));
        }
        if delete {
            msg.header.scope = self.scope.map_or(RouteScope::NoWhere, RouteScope::from);
        } else {
            msg.header.protocol = RouteProtocol::Boot;
            msg.header.kind = RouteType::Unicast;
            msg.header.scope = match (self.scope, self.gateway) {
                (Some(scope), _) => RouteScope::from(scope),
                (None, None) => RouteScope::Link,
                (None, Some(_)) => RouteScope::Universe,
            };
        }
        if dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        }
        if let Some(gw) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(priority) = self.priority {
            msg.attributes.push(RouteAttribute::Priority(priority));
        }
        if !delete {
            if let Some(src) = self.src {
                msg.attributes
                    .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
            }
            let mut metrics = Vec::new();
            if let Some(mtu) = self.mtu {
                metrics.push(RouteMetric::Mtu(mtu));
            }
            if let Some(advmss) = self.advmss {
                metrics.push(RouteMetric::Advmss(advmss));
            }
            if !metrics.is_empty() {
                msg.attributes.push(RouteAttribute::Metrics(metrics));
            }
        }
        msg
    }

    fn from_message(msg: &RouteMessage) -> Option<RouteSpec> {
        if msg.header.kind != RouteType::Unicast {
            return None;
        }
        let ip = |a: &RouteAddress| match a {
            RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
            RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
            _ => None,
        };
        let any: IpAddr = match msg.header.address_family {
            AddressFamily::Inet => IpAddr::from([0u8; 4]),
            AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
            _ => return None,
        };
        let mut dst = None;
        let mut route = RouteSpec::to(IpNet::new(any, 0).ok()?);
        let mut table = u32::from(msg.header.table);
        route.scope = Some(u8::from(msg.header.scope));
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = ip(a),
                RouteAttribute::Gateway(a) => route.gateway = ip(a),
                RouteAttribute::PrefSource(a) => route.src = ip(a),
                RouteAttribute::Oif(oif) => route.oif = Some(*oif),
                RouteAttribute::Priority(p) => route.priority = Some(*p),
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Metrics(metrics) => {
                    for m in metrics {
                        match m {
                            RouteMetric::Mtu(v) => route.mtu = Some(*v),
                            RouteMetric::Advmss(v) => route.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        route.dst = IpNet::new(dst.unwrap_or(any), msg.header.destination_prefix_length).ok()?;
        route.table = (table != RT_TABLE_MAIN).then_some(table);
        Some(route)
    }
}

impl Netlink {
    /// Unicast routes of the main table.
    pub async fn routes(&self, family: Family) -> Result<Vec<RouteSpec>, NetlinkError> {
        self.routes_in_table(family, RT_TABLE_MAIN).await
    }

    /// Unicast routes of one table, filtered by the kernel; empty if the table does
    /// not exist.
    pub async fn routes_in_table(
        &self,
        family: Family,
        table: u32,
    ) -> Result<Vec<RouteSpec>, NetlinkError> {
        let mut out = Vec::new();
        for af in family.families() {
            let mut msg = RouteMessage::default();
            msg.header.address_family = *af;
            msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
            msg.attributes.push(RouteAttribute::Table(table));
            let replies = match self.dump(RouteNetlinkMessage::GetRoute(msg)).await {
                Ok(replies) => replies,
                Err(f) if f.errno() == Some(libc::ENOENT) => continue,
                Err(f) => return Err(f.during(format!("list routes of table {table}"))),
            };
            out.extend(replies.iter().filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => {
                    RouteSpec::from_message(m).filter(|r| r.table_id() == table)
                }
                _ => None,
            }));
        }
        Ok(out)
    }

    /// Adds a route. Ok if the same route (see [`RouteSpec::same_route`]) is already
    /// there; a different route to the same destination is an EEXIST error.
    pub async fn add_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        route.check()?;
        let op = || format!("add route to {}", route.dst);
        match self
            .ack(
                RouteNetlinkMessage::NewRoute(route.message(false)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == Some(libc::EEXIST) => {
                let family = if route.dst.addr().is_ipv4() {
                    Family::V4
                } else {
                    Family::V6
                };
                let present = self.routes_in_table(family, route.table_id()).await?;
                if present.iter().any(|r| r.same_route(route)) {
                    Ok(())
                } else {
                    Err(f.during(op()))
                }
            }
            Err(f) => Err(f.during(op())),
        }
    }

    /// Adds a route or replaces the one with the same destination, table and priority.
    pub async fn replace_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        route.check()?;
        self.ack(
            RouteNetlinkMessage::NewRoute(route.message(false)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|f| f.during(format!("replace route to {}", route.dst)))
    }

    /// Deletes a route; unset fields of `route` match anything. Ok if absent.
    pub async fn del_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        route.check()?;
        match self
            .ack(RouteNetlinkMessage::DelRoute(route.message(true)), 0)
            .await
        {
            Err(f) if matches!(f.errno(), Some(libc::ESRCH | libc::ENODEV)) => Ok(()),
            r => r.map_err(|f| f.during(format!("delete route to {}", route.dst))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_route_ignores_unset_device_and_priority() {
        let a = RouteSpec {
            gateway: Some("10.1.0.1".parse().unwrap()),
            ..RouteSpec::to("0.0.0.0/0".parse().unwrap())
        };
        let b = RouteSpec {
            oif: Some(3),
            priority: Some(0),
            table: Some(254),
            ..a.clone()
        };
        assert!(a.same_route(&b));
        let c = RouteSpec {
            gateway: Some("10.1.0.2".parse().unwrap()),
            ..a.clone()
        };
        assert!(!a.same_route(&c));
        let d = RouteSpec {
            table: Some(100),
            ..a.clone()
        };
        assert!(!a.same_route(&d));
    }

    #[test]
    fn message_round_trips() {
        let route = RouteSpec {
            gateway: Some("fd00::1".parse().unwrap()),
            oif: Some(2),
            mtu: Some(1400),
            advmss: Some(1360),
            priority: Some(100),
            table: Some(1000),
            scope: Some(0),
            src: Some("fd00::5".parse().unwrap()),
            ..RouteSpec::to("fd00:1::/64".parse().unwrap())
        };
        let back = RouteSpec::from_message(&route.message(false)).unwrap();
        assert_eq!(back, route);
    }

    #[test]
    fn rejects_mixed_families() {
        let route = RouteSpec {
            gateway: Some("fd00::1".parse().unwrap()),
            ..RouteSpec::to("10.0.0.0/8".parse().unwrap())
        };
        assert!(route.check().is_err());
    }
}
