//! IPVS over generic netlink: the messages, as bytes.
//!
//! Layouts follow the kernel's uapi headers: `linux/netlink.h` (`nlmsghdr`, `nlattr`,
//! `nlmsgerr`), `linux/genetlink.h` (`genlmsghdr`, the controller family) and
//! `linux/ip_vs.h` (commands and attributes). Numbers are in host byte order except ports,
//! which IPVS keeps in network order (`__be16`). Every attribute is padded to 4 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dataplane::DataplaneError;
use crate::model::Protocol;

// linux/netlink.h
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
/// The type bits of `nla_type` (without NLA_F_NESTED / NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/genetlink.h
pub const GENL_HDRLEN: usize = 4;
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;

// linux/ip_vs.h
pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x1;
/// `IP_VS_CONN_F_MASQ`: real servers are reached by DNAT (the only method kube-proxy uses).
pub const IP_VS_CONN_F_MASQ: u32 = 0x0;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// What identifies a virtual server: address, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub addr: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{}:{a}:{}", self.protocol.as_str(), self.port),
            IpAddr::V6(a) => write!(f, "{}:[{a}]:{}", self.protocol.as_str(), self.port),
        }
    }
}

/// How a virtual server schedules: the scheduler and, for ClientIP affinity, the
/// persistence timeout in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceSpec {
    pub scheduler: String,
    pub persistence: Option<u32>,
}

/// A virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub spec: ServiceSpec,
}

/// A real server of a virtual server (always masquerade forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// One IPVS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    NewDest(ServiceKey, Dest),
    SetDest(ServiceKey, Dest),
    DelDest(ServiceKey, Dest),
    /// Dump every virtual server.
    GetServices,
    /// Dump the real servers of one virtual server.
    GetDests(ServiceKey),
}

impl Request {
    fn command(&self) -> u8 {
        match self {
            Request::NewService(_) => IPVS_CMD_NEW_SERVICE,
            Request::SetService(_) => IPVS_CMD_SET_SERVICE,
            Request::DelService(_) => IPVS_CMD_DEL_SERVICE,
            Request::NewDest(..) => IPVS_CMD_NEW_DEST,
            Request::SetDest(..) => IPVS_CMD_SET_DEST,
            Request::DelDest(..) => IPVS_CMD_DEL_DEST,
            Request::GetServices => IPVS_CMD_GET_SERVICE,
            Request::GetDests(_) => IPVS_CMD_GET_DEST,
        }
    }

    /// Whether an error reply only says the thing is already gone.
    pub fn is_gone(&self, errno: i32) -> bool {
        // IPVS answers ESRCH for an unknown virtual server, ENOENT for an unknown real server.
        matches!(self, Request::DelService(_) | Request::DelDest(..))
            && (errno == libc::ESRCH || errno == libc::ENOENT)
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::NewService(s) => write!(f, "adding virtual server {}", s.key),
            Request::SetService(s) => write!(f, "updating virtual server {}", s.key),
            Request::DelService(k) => write!(f, "deleting virtual server {k}"),
            Request::NewDest(k, d) => write!(f, "adding real server {} to {k}", d.addr),
            Request::SetDest(k, d) => write!(f, "updating real server {} of {k}", d.addr),
            Request::DelDest(k, d) => write!(f, "deleting real server {} of {k}", d.addr),
            Request::GetServices => write!(f, "listing virtual servers"),
            Request::GetDests(k) => write!(f, "listing real servers of {k}"),
        }
    }
}

pub fn failed(message: String) -> DataplaneError {
    DataplaneError::Program {
        backend: "ipvs",
        message,
    }
}

fn protocol_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn protocol_from(n: u16) -> Option<Protocol> {
    match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

fn family(addr: &IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// The address bytes: 4 for IPv4 (the kernel copies them into a zeroed
/// `union nf_inet_addr`), 16 for IPv6.
fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink message.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, cmd: u8, version: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
        buf.extend_from_slice(&[cmd, version, 0, 0]); // genlmsghdr
        Message { buf }
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn u16(&mut self, kind: u16, v: u16) {
        self.attr(kind, &v.to_ne_bytes());
    }

    fn u32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_ne_bytes());
    }

    fn be16(&mut self, kind: u16, v: u16) {
        self.attr(kind, &v.to_be_bytes());
    }

    fn string(&mut self, kind: u16, s: &str) {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    /// A nested attribute holding what `fill` adds. IPVS parses nests the old way, so
    /// NLA_F_NESTED is left out, as ipvsadm and the kernel's own replies do.
    fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Message)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        fill(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// The attributes that name a virtual server (all a DEL_SERVICE or a DEST command needs).
fn service_key_attrs(m: &mut Message, key: &ServiceKey) {
    m.u16(IPVS_SVC_ATTR_AF, family(&key.addr));
    m.u16(IPVS_SVC_ATTR_PROTOCOL, protocol_number(key.protocol));
    m.attr(IPVS_SVC_ATTR_ADDR, &addr_bytes(&key.addr));
    m.be16(IPVS_SVC_ATTR_PORT, key.port);
}

/// A full virtual server: NEW/SET_SERVICE need the scheduler, flags, timeout and netmask.
fn service_attrs(m: &mut Message, s: &Service) {
    service_key_attrs(m, &s.key);
    m.string(IPVS_SVC_ATTR_SCHED_NAME, &s.spec.scheduler);
    let flags = if s.spec.persistence.is_some() {
        IP_VS_SVC_F_PERSISTENT
    } else {
        0
    };
    // struct ip_vs_flags { __u32 flags; __u32 mask; }: the mask says which bits to set, so
    // a SET_SERVICE also clears persistence.
    let mut both = flags.to_ne_bytes().to_vec();
    both.extend_from_slice(&u32::MAX.to_ne_bytes());
    m.attr(IPVS_SVC_ATTR_FLAGS, &both);
    m.u32(IPVS_SVC_ATTR_TIMEOUT, s.spec.persistence.unwrap_or(0));
    // Persistence granularity: per client address.
    let netmask = match s.key.addr {
        IpAddr::V4(_) => u32::MAX,
        IpAddr::V6(_) => 128,
    };
    m.u32(IPVS_SVC_ATTR_NETMASK, netmask);
}

fn dest_attrs(m: &mut Message, d: &Dest, full: bool) {
    m.attr(IPVS_DEST_ATTR_ADDR, &addr_bytes(&d.addr));
    m.be16(IPVS_DEST_ATTR_PORT, d.port);
    if full {
        m.u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_MASQ);
        m.u32(IPVS_DEST_ATTR_WEIGHT, d.weight);
        m.u32(IPVS_DEST_ATTR_U_THRESH, 0);
        m.u32(IPVS_DEST_ATTR_L_THRESH, 0);
    }
    m.u16(IPVS_DEST_ATTR_ADDR_FAMILY, family(&d.addr));
}

/// The bytes of `request` for the IPVS family `family_id`.
pub fn encode(request: &Request, family_id: u16, seq: u32) -> Vec<u8> {
    let flags = match request {
        Request::GetServices | Request::GetDests(_) => NLM_F_REQUEST | NLM_F_DUMP,
        _ => NLM_F_REQUEST | NLM_F_ACK,
    };
    let mut m = Message::new(family_id, flags, seq, request.command(), IPVS_GENL_VERSION);
    match request {
        Request::NewService(s) | Request::SetService(s) => {
            m.nest(IPVS_CMD_ATTR_SERVICE, |m| service_attrs(m, s));
        }
        Request::DelService(k) | Request::GetDests(k) => {
            m.nest(IPVS_CMD_ATTR_SERVICE, |m| service_key_attrs(m, k));
        }
        Request::NewDest(k, d) | Request::SetDest(k, d) => {
            m.nest(IPVS_CMD_ATTR_SERVICE, |m| service_key_attrs(m, k));
            m.nest(IPVS_CMD_ATTR_DEST, |m| dest_attrs(m, d, true));
        }
        Request::DelDest(k, d) => {
            m.nest(IPVS_CMD_ATTR_SERVICE, |m| service_key_attrs(m, k));
            m.nest(IPVS_CMD_ATTR_DEST, |m| dest_attrs(m, d, false));
        }
        Request::GetServices => {}
    }
    m.finish()
}

/// CTRL_CMD_GETFAMILY for `name`: the reply carries the family's id.
pub fn encode_get_family(name: &str, seq: u32) -> Vec<u8> {
    let mut m = Message::new(
        GENL_ID_CTRL,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        CTRL_CMD_GETFAMILY,
        1,
    );
    m.string(CTRL_ATTR_FAMILY_NAME, name);
    m.finish()
}

/// One message of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// NLMSG_ERROR with error 0.
    Ack { seq: u32 },
    /// NLMSG_ERROR with a (positive) errno.
    Error { seq: u32, errno: i32 },
    /// The end of a dump.
    Done { seq: u32 },
    /// A generic netlink message: its command and attributes (after the genl header).
    Data { seq: u32, cmd: u8, attrs: &'a [u8] },
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a datagram into its messages.
pub fn parse_messages(buf: &[u8]) -> Result<Vec<Reply<'_>>, DataplaneError> {
    let bad = |what: &str| failed(format!("malformed netlink reply: {what}"));
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, at).ok_or_else(|| bad("header"))? as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(bad("message length"));
        }
        let kind = u16_at(buf, at + 4).ok_or_else(|| bad("header"))?;
        let seq = u32_at(buf, at + 8).ok_or_else(|| bad("header"))?;
        let body = &buf[at + NLMSG_HDRLEN..at + len];
        match kind {
            NLMSG_ERROR => {
                // struct nlmsgerr { int error; struct nlmsghdr msg; ... }
                let error = u32_at(body, 0).ok_or_else(|| bad("error message"))? as i32;
                if error == 0 {
                    out.push(Reply::Ack { seq });
                } else {
                    out.push(Reply::Error {
                        seq,
                        errno: error.saturating_neg(),
                    });
                }
            }
            NLMSG_DONE => out.push(Reply::Done { seq }),
            _ => {
                if body.len() < GENL_HDRLEN {
                    return Err(bad("generic netlink header"));
                }
                out.push(Reply::Data {
                    seq,
                    cmd: body[0],
                    attrs: &body[GENL_HDRLEN..],
                });
            }
        }
        at += align4(len);
    }
    Ok(out)
}

/// The attributes in `buf` as (type, payload), in order.
pub fn attrs(buf: &[u8]) -> Result<Vec<(u16, &[u8])>, DataplaneError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= buf.len() {
        let len = u16_at(buf, at).unwrap_or(0) as usize;
        let kind = u16_at(buf, at + 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < 4 || at + len > buf.len() {
            return Err(failed("malformed netlink attribute".to_string()));
        }
        out.push((kind, &buf[at + 4..at + len]));
        at += align4(len);
    }
    Ok(out)
}

fn find<'a>(list: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    list.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn get_u16(list: &[(u16, &[u8])], kind: u16) -> Option<u16> {
    find(list, kind).and_then(|v| u16_at(v, 0))
}

fn get_u32(list: &[(u16, &[u8])], kind: u16) -> Option<u32> {
    find(list, kind).and_then(|v| u32_at(v, 0))
}

fn get_be16(list: &[(u16, &[u8])], kind: u16) -> Option<u16> {
    find(list, kind).and_then(|v| Some(u16::from_be_bytes(v.get(0..2)?.try_into().ok()?)))
}

/// The kernel sends a whole `union nf_inet_addr` (16 bytes); IPv4 is its first 4.
fn get_addr(list: &[(u16, &[u8])], kind: u16, family: u16) -> Option<IpAddr> {
    let v = find(list, kind)?;
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(v.get(0..4)?).ok()?,
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(v.get(0..16)?).ok()?,
        ))),
        _ => None,
    }
}

/// The family id in a CTRL_CMD_GETFAMILY reply.
pub fn decode_family_id(attrs_buf: &[u8]) -> Result<u16, DataplaneError> {
    get_u16(&attrs(attrs_buf)?, CTRL_ATTR_FAMILY_ID)
        .ok_or_else(|| failed("family reply without an id".to_string()))
}

/// A virtual server of a GET_SERVICE dump. `None` for what this backend never programs
/// (firewall-mark services, unknown protocols or families).
pub fn decode_service(attrs_buf: &[u8]) -> Result<Option<Service>, DataplaneError> {
    let top = attrs(attrs_buf)?;
    let nested = find(&top, IPVS_CMD_ATTR_SERVICE)
        .ok_or_else(|| failed("service reply without IPVS_CMD_ATTR_SERVICE".to_string()))?;
    let a = attrs(nested)?;
    if get_u32(&a, IPVS_SVC_ATTR_FWMARK).is_some_and(|m| m != 0) {
        return Ok(None);
    }
    let Some(af) = get_u16(&a, IPVS_SVC_ATTR_AF) else {
        return Ok(None);
    };
    let (Some(addr), Some(protocol), Some(port)) = (
        get_addr(&a, IPVS_SVC_ATTR_ADDR, af),
        get_u16(&a, IPVS_SVC_ATTR_PROTOCOL).and_then(protocol_from),
        get_be16(&a, IPVS_SVC_ATTR_PORT),
    ) else {
        return Ok(None);
    };
    let scheduler = find(&a, IPVS_SVC_ATTR_SCHED_NAME)
        .map(|v| {
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
        .unwrap_or_default();
    let flags = get_u32(&a, IPVS_SVC_ATTR_FLAGS).unwrap_or(0);
    let persistence = (flags & IP_VS_SVC_F_PERSISTENT != 0)
        .then(|| get_u32(&a, IPVS_SVC_ATTR_TIMEOUT).unwrap_or(0));
    Ok(Some(Service {
        key: ServiceKey {
            addr,
            protocol,
            port,
        },
        spec: ServiceSpec {
            scheduler,
            persistence,
        },
    }))
}

/// A real server of a GET_DEST dump; `service_family` is used when the kernel is too old to
/// send IPVS_DEST_ATTR_ADDR_FAMILY.
pub fn decode_dest(attrs_buf: &[u8], service_family: IpAddr) -> Result<Dest, DataplaneError> {
    let top = attrs(attrs_buf)?;
    let nested = find(&top, IPVS_CMD_ATTR_DEST)
        .ok_or_else(|| failed("destination reply without IPVS_CMD_ATTR_DEST".to_string()))?;
    let a = attrs(nested)?;
    let af = get_u16(&a, IPVS_DEST_ATTR_ADDR_FAMILY).unwrap_or(family(&service_family));
    let bad = |what: &str| failed(format!("destination reply without a valid {what}"));
    Ok(Dest {
        addr: get_addr(&a, IPVS_DEST_ATTR_ADDR, af).ok_or_else(|| bad("address"))?,
        port: get_be16(&a, IPVS_DEST_ATTR_PORT).ok_or_else(|| bad("port"))?,
        weight: get_u32(&a, IPVS_DEST_ATTR_WEIGHT).ok_or_else(|| bad("weight"))?,
    })
}

/// A clear error for an NLMSG_ERROR reply to `request`.
pub fn error_for(request: &str, errno: i32) -> DataplaneError {
    let hint = match errno {
        libc::ENOENT | libc::ESRCH => " (no such virtual or real server)",
        libc::EEXIST => " (it already exists)",
        libc::EPERM => " (needs CAP_NET_ADMIN)",
        _ => "",
    };
    failed(format!(
        "{request}: {}{hint}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

#[cfg(test)]
#[path = "netlink_tests.rs"]
mod tests;
