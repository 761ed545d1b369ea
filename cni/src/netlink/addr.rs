use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::{Netlink, NetlinkError};

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    msg
}

/// The interface's own address: IFA_LOCAL when present (IFA_ADDRESS is the peer on
/// point-to-point links), IFA_ADDRESS otherwise (IPv6 usually sends only that).
fn address_of(msg: &AddressMessage) -> Option<IpNet> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

impl Netlink {
    /// Every address (IPv4 and IPv6, link-local included) of one link, filtered by
    /// the kernel.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(msg))
            .await
            .map_err(|f| f.during(format!("list addresses of link {index}")))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                // Filtered again in case the kernel ignored the index.
                RouteNetlinkMessage::NewAddress(m) if m.header.index == index => address_of(m),
                _ => None,
            })
            .collect())
    }

    /// Adds an address; Ok if the link already has it.
    pub async fn add_address(&self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        let mut msg = address_message(index, addr);
        if let IpNet::V4(net) = addr
            && net.prefix_len() < 31
        {
            // What the reference plugins set: the kernel does not derive it.
            let brd = u32::from(net.addr()) | (u32::MAX >> net.prefix_len());
            msg.attributes
                .push(AddressAttribute::Broadcast(Ipv4Addr::from(brd)));
        }
        match self
            .ack(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Err(f) if f.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(|f| f.during(format!("add address {addr} to link {index}"))),
        }
    }

    /// Removes an address; Ok if the link (or the address) is not there.
    pub async fn del_address(&self, index: u32, addr: IpNet) -> Result<(), NetlinkError> {
        match self
            .ack(
                RouteNetlinkMessage::DelAddress(address_message(index, addr)),
                0,
            )
            .await
        {
            Err(f) if matches!(f.errno(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => Ok(()),
            r => r.map_err(|f| f.during(format!("delete address {addr} from link {index}"))),
        }
    }
}
