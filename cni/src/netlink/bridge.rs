use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort,
    InfoData, InfoKind, InfoPortData, InfoPortKind, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::link::{by_index, check_ifname};
use super::{Link, Netlink, NetlinkError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeOptions {
    pub mtu: Option<u32>,
    /// Turned on when asked; never turned off (another network may rely on it).
    pub vlan_filtering: bool,
    pub promisc: bool,
}

/// What an existing bridge lacks compared with the options asked for: the change
/// message and the names of what it changes.
fn bridge_changes(
    msg: &LinkMessage,
    opts: &BridgeOptions,
) -> Option<(LinkMessage, Vec<&'static str>)> {
    let link = Link::from_message(msg);
    let filtering = msg.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| match i {
            LinkInfo::Data(InfoData::Bridge(opts)) => opts
                .iter()
                .any(|o| matches!(o, InfoBridge::VlanFiltering(true))),
            _ => false,
        }),
        _ => false,
    });
    let mut change = by_index(link.index);
    let mut what = Vec::new();
    if !link.up {
        change.header.flags |= LinkFlags::Up;
        change.header.change_mask |= LinkFlags::Up;
        what.push("up");
    }
    if opts.promisc && !link.promisc {
        change.header.flags |= LinkFlags::Promisc;
        change.header.change_mask |= LinkFlags::Promisc;
        what.push("promisc");
    }
    if let Some(mtu) = opts.mtu.filter(|m| *m != link.mtu) {
        change.attributes.push(LinkAttribute::Mtu(mtu));
        what.push("mtu");
    }
    if opts.vlan_filtering && !filtering {
        change.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)])),
        ]));
        what.push("vlan_filtering");
    }
    (!what.is_empty()).then_some((change, what))
}

fn is_bridge(msg: &LinkMessage) -> Result<(), NetlinkError> {
    let link = Link::from_message(msg);
    if link.kind.as_deref() == Some("bridge") {
        Ok(())
    } else {
        Err(NetlinkError::NotABridge {
            name: link.name,
            kind: link.kind,
        })
    }
}

/// `bridge vlan add dev X vid N [pvid] [untagged] [self]`, byte for byte as
/// iproute2 sends it: AF_BRIDGE RTM_SETLINK with IFLA_AF_SPEC.
fn vlan_message(index: u32, vid: u16, pvid: bool, untagged: bool, self_: bool) -> LinkMessage {
    let mut flags = BridgeVlanInfoFlags::empty();
    flags.set(BridgeVlanInfoFlags::Pvid, pvid);
    flags.set(BridgeVlanInfoFlags::Untagged, untagged);
    let mut spec = Vec::new();
    if self_ {
        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
    }
    spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { vid, flags }));
    let mut msg = by_index(index);
    msg.header.interface_family = AddressFamily::Bridge;
    msg.attributes.push(LinkAttribute::AfSpecBridge(spec));
    msg
}

impl Netlink {
    /// Creates the bridge if missing (with vlan_filtering when asked), sets mtu if
    /// given, brings it up; returns it. Errors if a non-bridge link has the name.
    /// An existing bridge that already matches costs one lookup.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        opts: &BridgeOptions,
    ) -> Result<Link, NetlinkError> {
        check_ifname(name)?;
        let mut existing = self.link_message_by_name(name).await?;
        if existing.is_none() {
            match self.create_bridge(name, opts).await {
                Ok(()) => tracing::debug!(bridge = name, "created bridge"),
                // Someone else (a concurrent ADD) made it first: fall through and check it.
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e),
            }
            existing = self.link_message_by_name(name).await?;
        }
        let msg = existing.ok_or_else(|| NetlinkError::LinkNotFound(name.to_string()))?;
        is_bridge(&msg)?;
        let Some((change, what)) = bridge_changes(&msg, opts) else {
            return Ok(Link::from_message(&msg));
        };
        let what = what.join(", ");
        self.ack(RouteNetlinkMessage::NewLink(change), 0)
            .await
            .map_err(|f| f.during(format!("update bridge {name} ({what})")))?;
        tracing::debug!(bridge = name, changed = what, "updated bridge");
        self.require_link(name).await
    }

    async fn create_bridge(&self, name: &str, opts: &BridgeOptions) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if opts.promisc {
            msg.header.flags |= LinkFlags::Promisc;
            msg.header.change_mask |= LinkFlags::Promisc;
        }
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = opts.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if opts.vlan_filtering {
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::VlanFiltering(true),
            ])));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        match self
            .ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
        {
            Err(f) if f.errno() == Some(libc::EEXIST) => {
                Err(NetlinkError::LinkExists(name.to_string()))
            }
            r => r.map_err(|f| {
                let filtering = if opts.vlan_filtering {
                    " with vlan_filtering"
                } else {
                    ""
                };
                f.during(format!("create bridge {name}{filtering}"))
            }),
        }
    }

    /// Hairpin mode (IFLA_BRPORT_MODE) on a bridge port: lets frames go back out the
    /// port they came in on, so a pod can reach itself through a Service.
    pub async fn set_hairpin(&self, index: u32, on: bool) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0)
            .await
            .map_err(|f| {
                f.during(format!(
                    "set hairpin {} on link {index}",
                    if on { "on" } else { "off" }
                ))
            })
    }

    /// The hairpin flag of a bridge port; `None` when the link is not a bridge port.
    pub async fn hairpin(&self, index: u32) -> Result<Option<bool>, NetlinkError> {
        let msg = self
            .link_message(index)
            .await?
            .ok_or_else(|| NetlinkError::LinkNotFound(index.to_string()))?;
        let mut port = None;
        for attr in &msg.attributes {
            if let LinkAttribute::LinkInfo(infos) = attr {
                for info in infos {
                    if let LinkInfo::PortData(InfoPortData::BridgePort(opts)) = info {
                        port = Some(
                            opts.iter()
                                .any(|o| matches!(o, InfoBridgePort::HairpinMode(true))),
                        );
                    }
                }
            }
        }
        Ok(port)
    }

    /// Adds VLAN `vid` to a bridge port, or to the bridge itself with `self_`
    /// (like `bridge vlan add dev X vid N [pvid] [untagged] [self]`).
    pub async fn bridge_vlan_add(
        &self,
        index: u32,
        vid: u16,
        pvid: bool,
        untagged: bool,
        self_: bool,
    ) -> Result<(), NetlinkError> {
        if !(1..=4094).contains(&vid) {
            return Err(NetlinkError::Invalid {
                what: "VLAN id",
                value: vid.to_string(),
                reason: "must be 1 to 4094",
            });
        }
        let msg = vlan_message(index, vid, pvid, untagged, self_);
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(|f| f.during(format!("add vlan {vid} to link {index}")))
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::Emitable;

    use super::*;

    fn bytes(msg: &LinkMessage) -> Vec<u8> {
        let mut buf = vec![0; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    // What `bridge vlan add` (iproute2 6.1) sends, captured with strace: kernels
    // without CONFIG_BRIDGE_VLAN_FILTERING refuse it, so this is checked here too.
    #[test]
    fn vlan_message_matches_iproute2() {
        #[rustfmt::skip]
        let port: &[u8] = &[
            7, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            12, 0, 26, 0, 8, 0, 2, 0, 6, 0, 100, 0,
        ];
        assert_eq!(bytes(&vlan_message(4, 100, true, true, false)), port);
        #[rustfmt::skip]
        let bridge_self: &[u8] = &[
            7, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            20, 0, 26, 0, 6, 0, 0, 0, 2, 0, 0, 0, 8, 0, 2, 0, 0, 0, 100, 0,
        ];
        assert_eq!(
            bytes(&vlan_message(2, 100, false, false, true)),
            bridge_self
        );
    }
}
