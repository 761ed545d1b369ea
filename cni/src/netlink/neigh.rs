use std::net::IpAddr;

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};

use super::mac::format_mac;
use super::{Netlink, NetlinkError};

/// A vxlan forwarding entry: frames for `mac` go to the tunnel endpoint `dst`
/// (`bridge fdb … dev VXLAN dst IP self permanent`).
fn fdb_message(index: u32, mac: [u8; 6], dst: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
    msg
}

fn neighbour_message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    msg
}

impl Netlink {
    /// Points `mac` on a vxlan device at the remote endpoint `dst`. A unicast MAC is
    /// replaced (its node moved); the all-zero MAC collects one entry per endpoint,
    /// since it lists where broadcast and unknown frames are flooded to.
    pub async fn add_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        let mode = if mac == [0; 6] {
            NLM_F_APPEND
        } else {
            NLM_F_REPLACE
        };
        match self
            .ack(
                RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, dst)),
                NLM_F_CREATE | mode,
            )
            .await
        {
            Err(f) if f.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(|f| {
                f.during(format!(
                    "add fdb {} dst {dst} on link {index}",
                    format_mac(mac)
                ))
            }),
        }
    }

    /// Removes one vxlan forwarding entry; Ok if absent.
    pub async fn del_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        match self
            .ack(
                RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, dst)),
                0,
            )
            .await
        {
            Err(f) if matches!(f.errno(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
            r => r.map_err(|f| {
                f.during(format!(
                    "delete fdb {} dst {dst} on link {index}",
                    format_mac(mac)
                ))
            }),
        }
    }

    /// A permanent neighbour (ARP/NDP) entry, replacing whatever was learned.
    pub async fn add_neighbour(
        &self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        let mut msg = neighbour_message(index, ip);
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|f| {
            f.during(format!(
                "add neighbour {ip} lladdr {} on link {index}",
                format_mac(mac)
            ))
        })
    }

    /// Removes a neighbour entry; Ok if absent.
    pub async fn del_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        match self
            .ack(
                RouteNetlinkMessage::DelNeighbour(neighbour_message(index, ip)),
                0,
            )
            .await
        {
            Err(f) if matches!(f.errno(), Some(libc::ENOENT | libc::ENODEV)) => Ok(()),
            r => r.map_err(|f| f.during(format!("delete neighbour {ip} on link {index}"))),
        }
    }
}
