use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::link::check_ifname;
use super::{Link, Netlink, NetlinkError};

/// "veth" and 8 random hex digits, the host-side naming of the reference CNI plugins.
pub fn random_veth_name() -> String {
    format!("veth{:08x}", rand::random::<u32>())
}

impl Netlink {
    /// Creates a veth pair: `host_name` stays in this namespace; the peer is created
    /// directly inside `peer_netns` under its final name, so a same-named link in this
    /// namespace (a host "eth0") never collides. Optional peer MAC, mtu on both ends.
    /// Brings the host side up and returns it; the peer is left down for the caller
    /// to configure inside its namespace.
    ///
    /// Fails with [`NetlinkError::LinkExists`] when either name is taken.
    pub async fn create_veth(
        &self,
        host_name: &str,
        peer_name: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<Link, NetlinkError> {
        check_ifname(host_name)?;
        check_ifname(peer_name)?;

        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_string()));
        // The fd only has to stay open until the kernel has the request, which the
        // borrow guarantees: we await the ack below.
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        if let Some(mtu) = mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }

        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes
            .push(LinkAttribute::IfName(host_name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));

        match self
            .ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
        {
            Ok(()) => {}
            Err(f) if f.errno() == Some(libc::EEXIST) => {
                return Err(NetlinkError::LinkExists(format!(
                    "{host_name} (here) or {peer_name} (in the target namespace)"
                )));
            }
            Err(f) => {
                return Err(f.during(format!("create veth {host_name} with peer {peer_name}")));
            }
        }
        tracing::debug!(host = host_name, peer = peer_name, "created veth pair");
        self.require_link(host_name).await
    }
}
