use std::io;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};

use rtnetlink::sys::AsyncSocket;

use super::NetlinkError;

/// A netlink connection in the network namespace of the thread that created it.
///
/// Cheap to clone: clones share one socket, driven by a task on the runtime that
/// was current in [`Netlink::connect`].
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a route-netlink socket in the calling thread's network namespace and
    /// spawns the task that drives it on the current tokio runtime.
    pub fn connect() -> Result<Netlink, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (mut conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        let socket = conn.socket_mut().socket_mut();
        // Strict checking lets dumps be filtered by the kernel (addresses of one link,
        // routes of one table) instead of shipping everything to us.
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(NetlinkError::Connect)?;
        // Extended acks carry the kernel's reason for a refusal; capped acks keep
        // them from echoing our whole request back.
        socket.set_ext_ack(true).map_err(NetlinkError::Connect)?;
        socket.set_cap_ack(true).map_err(NetlinkError::Connect)?;
        runtime.spawn(conn);
        Ok(Netlink { handle })
    }

    /// Sends a request the kernel only acknowledges.
    pub(super) async fn ack(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), Failure> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags)
            .await
            .map(drop)
    }

    /// Sends a dump request and collects every reply.
    pub(super) async fn dump(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP).await
    }

    /// Sends a get request for one object; `Ok(None)` when the kernel has no such
    /// object (`not_found` is the errno it uses to say so).
    pub(super) async fn get_one(
        &self,
        msg: RouteNetlinkMessage,
        not_found: i32,
    ) -> Result<Option<RouteNetlinkMessage>, Failure> {
        match self.exchange(msg, NLM_F_REQUEST).await {
            Ok(replies) => Ok(replies.into_iter().next()),
            Err(Failure::Errno { errno, .. }) if errno == not_found => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn exchange(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        req.finalize();
        let mut replies = self
            .handle
            .clone()
            .request(req)
            .map_err(|_| Failure::Closed)?;
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            let reply_flags = reply.header.flags;
            match reply.payload {
                NetlinkPayload::InnerMessage(inner) => out.push(inner),
                NetlinkPayload::Error(err) => {
                    if let Some(code) = err.code {
                        return Err(Failure::Errno {
                            errno: code.get().abs(),
                            detail: ext_ack_message(reply_flags, &err.header),
                        });
                    }
                }
                NetlinkPayload::Done(_) | NetlinkPayload::Noop => {}
                other => {
                    return Err(Failure::Unexpected(format!(
                        "message type {}",
                        other.message_type()
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// A request that failed, before the caller says what it was doing.
#[derive(Debug)]
pub(super) enum Failure {
    Errno { errno: i32, detail: Option<String> },
    Closed,
    Unexpected(String),
}

impl Failure {
    pub(super) fn errno(&self) -> Option<i32> {
        match self {
            Failure::Errno { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Attaches what was being done, e.g. "add address 10.0.0.2/24 to link 7".
    pub(super) fn during(self, op: impl Into<String>) -> NetlinkError {
        let op = op.into();
        match self {
            Failure::Errno { errno, detail } => NetlinkError::Kernel {
                op,
                error: io::Error::from_raw_os_error(errno),
                detail,
            },
            Failure::Closed => NetlinkError::Closed { op },
            Failure::Unexpected(detail) => NetlinkError::Unexpected { op, detail },
        }
    }
}

/// Digs NLMSGERR_ATTR_MSG out of an error reply's payload (after the errno): the
/// echoed request header (just the header when capped), then attributes.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const NLMSG_HDRLEN: usize = 16;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let mut at = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len: [u8; 4] = payload.get(..4)?.try_into().ok()?;
        u32::from_ne_bytes(len) as usize
    };
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &payload[at + 4..at + len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_message_from_capped_payload() {
        let mut payload = vec![0u8; 16];
        let text = b"Nexthop device is not up\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(),
            Some("Nexthop device is not up")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload[..18]),
            None
        );
    }
}
