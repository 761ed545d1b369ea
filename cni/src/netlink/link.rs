use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage};

use super::conn::Failure;
use super::mac::{format_mac, mac_from_bytes};
use super::{Netlink, NetlinkError};

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// The bridge (or other controller) this link is a port of.
    pub master: Option<u32>,
    /// "bridge", "veth", "vxlan", …; `None` for devices without rtnl link ops (e.g. lo).
    pub kind: Option<String>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// IFLA_LINK: for a veth, the peer's index, which lives in the peer's namespace.
    pub peer_index: Option<u32>,
    pub promisc: bool,
}

impl Link {
    pub(super) fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            master: None,
            kind: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            peer_index: None,
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(bytes) => link.mac = mac_from_bytes(bytes),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
                LinkAttribute::Link(peer) if *peer != 0 => link.peer_index = Some(*peer),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

/// Interface names the kernel accepts: 1–15 bytes, no '/', ':' or whitespace.
pub(super) fn check_ifname(name: &str) -> Result<(), NetlinkError> {
    let invalid = |reason| NetlinkError::Invalid {
        what: "interface name",
        value: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 15 {
        return Err(invalid("must be 1 to 15 bytes long"));
    }
    if name == "." || name == ".." {
        return Err(invalid("is reserved"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(invalid("must not contain '/', ':', NUL or whitespace"));
    }
    Ok(())
}

/// A link message addressed to an existing link by index.
pub(super) fn by_index(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

impl Netlink {
    /// Looks one link up by name; no dump.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        check_ifname(name)?;
        Ok(self
            .link_message_by_name(name)
            .await?
            .map(|m| Link::from_message(&m)))
    }

    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>, NetlinkError> {
        Ok(self
            .link_message(index)
            .await?
            .map(|m| Link::from_message(&m)))
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .await
            .map_err(|f| f.during("list links"))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
                _ => None,
            })
            .collect())
    }

    pub(super) async fn link_message_by_name(
        &self,
        name: &str,
    ) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(msg)
            .await
            .map_err(|f| f.during(format!("look up link {name}")))
    }

    pub(super) async fn link_message(
        &self,
        index: u32,
    ) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link(msg)
            .await
            .map_err(|f| f.during(format!("look up link {index}")))
    }

    async fn get_link(&self, msg: LinkMessage) -> Result<Option<LinkMessage>, Failure> {
        match self
            .get_one(RouteNetlinkMessage::GetLink(msg), libc::ENODEV)
            .await?
        {
            None => Ok(None),
            Some(RouteNetlinkMessage::NewLink(m)) => Ok(Some(m)),
            Some(other) => Err(Failure::Unexpected(format!("{:?}", other.message_type()))),
        }
    }

    /// Like [`Netlink::link_by_name`], for callers that need the link to be there.
    pub async fn require_link(&self, name: &str) -> Result<Link, NetlinkError> {
        self.link_by_name(name)
            .await?
            .ok_or_else(|| NetlinkError::LinkNotFound(name.to_string()))
    }

    /// Deletes a link (and, for a veth, its peer wherever it lives). Ok if already gone.
    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        match self
            .ack(RouteNetlinkMessage::DelLink(by_index(index)), 0)
            .await
        {
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(|f| f.during(format!("delete link {index}"))),
        }
    }

    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        self.set_flag(index, LinkFlags::Up, true, "bring up").await
    }

    pub async fn set_down(&self, index: u32) -> Result<(), NetlinkError> {
        self.set_flag(index, LinkFlags::Up, false, "bring down")
            .await
    }

    pub async fn set_promisc(&self, index: u32, on: bool) -> Result<(), NetlinkError> {
        let what = if on {
            "turn promisc on"
        } else {
            "turn promisc off"
        };
        self.set_flag(index, LinkFlags::Promisc, on, what).await
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(msg, || format!("set mtu {mtu} on link {index}"))
            .await
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.set_link(msg, || {
            format!("set mac {} on link {index}", format_mac(mac))
        })
        .await
    }

    /// Makes `index` a port of `master` (e.g. a bridge).
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.set_link(msg, || format!("attach link {index} to {master}"))
            .await
    }

    /// Detaches `index` from its bridge, if any.
    pub async fn set_nomaster(&self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.attributes.push(LinkAttribute::Controller(0));
        self.set_link(msg, || format!("detach link {index} from its master"))
            .await
    }

    async fn set_flag(
        &self,
        index: u32,
        flag: LinkFlags,
        on: bool,
        what: &str,
    ) -> Result<(), NetlinkError> {
        let mut msg = by_index(index);
        msg.header.flags.set(flag, on);
        msg.header.change_mask |= flag;
        self.set_link(msg, || format!("{what} link {index}")).await
    }

    async fn set_link(
        &self,
        msg: LinkMessage,
        op: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(|f| f.during(op()))
    }
}
