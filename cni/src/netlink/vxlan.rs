use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::link::check_ifname;
use super::{Link, Netlink, NetlinkError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanOptions {
    pub vni: u32,
    /// Source address of the outer packets.
    pub local: Option<IpAddr>,
    /// Index of the underlay device the tunnel sends through.
    pub underlay: Option<u32>,
    /// UDP destination port; 4789 is the IANA port (the kernel's default is 8472).
    pub port: u16,
    /// Learn remote MACs from incoming packets; off when the fdb is programmed.
    pub learning: bool,
    pub mtu: Option<u32>,
}

impl Default for VxlanOptions {
    fn default() -> Self {
        VxlanOptions {
            vni: 1,
            local: None,
            underlay: None,
            port: 4789,
            learning: false,
            mtu: None,
        }
    }
}

impl Netlink {
    /// Creates a vxlan device and brings it up. A taken name or VNI is an error for
    /// which [`NetlinkError::is_exists`] holds.
    pub async fn create_vxlan(
        &self,
        name: &str,
        opts: &VxlanOptions,
    ) -> Result<Link, NetlinkError> {
        check_ifname(name)?;
        if opts.vni >= 1 << 24 {
            return Err(NetlinkError::Invalid {
                what: "VXLAN id",
                value: opts.vni.to_string(),
                reason: "must fit in 24 bits",
            });
        }
        let mut data = vec![InfoVxlan::Id(opts.vni)];
        match opts.local {
            Some(IpAddr::V4(ip)) => data.push(InfoVxlan::Local(ip)),
            Some(IpAddr::V6(ip)) => data.push(InfoVxlan::Local6(ip)),
            None => {}
        }
        if let Some(dev) = opts.underlay {
            data.push(InfoVxlan::Link(dev));
        }
        data.push(InfoVxlan::Port(opts.port));
        data.push(InfoVxlan::Learning(opts.learning));

        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = opts.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        // EEXIST here is either the name or another device with the same VNI and
        // port; the kernel's extended ack says which, so keep it.
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|f| f.during(format!("create vxlan {name} (vni {})", opts.vni)))?;
        tracing::debug!(vxlan = name, vni = opts.vni, "created vxlan device");
        self.require_link(name).await
    }
}
