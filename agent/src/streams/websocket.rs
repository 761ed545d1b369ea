//! The WebSocket protocol (RFC 6455) as far as the agent's sessions need it: the server's
//! handshake answer, and messages read from and written to an upgraded connection. The client
//! side (masking) is here too, for tests and for anything that dials a session.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Messages larger than this end the session: nothing kubectl sends comes near it.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade<B>(req: &http::Request<B>) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(http::header::UPGRADE, "websocket") && req.headers().contains_key("sec-websocket-key")
}

/// The subprotocols the client offers, in its order of preference.
pub fn offered_protocols<B>(req: &http::Request<B>) -> Vec<String> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<u16>),
}

/// Encodes one (final) frame. Clients mask with `mask`; servers pass `None`.
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The encoded form of a message.
pub fn encode(msg: &Message, mask: Option<[u8; 4]>) -> Vec<u8> {
    match msg {
        Message::Text(b) => encode_frame(OP_TEXT, b, mask),
        Message::Binary(b) => encode_frame(OP_BINARY, b, mask),
        Message::Ping(b) => encode_frame(OP_PING, b, mask),
        Message::Pong(b) => encode_frame(OP_PONG, b, mask),
        Message::Close(code) => {
            let payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
            encode_frame(OP_CLOSE, &payload, mask)
        }
    }
}

/// Reads whole messages, joining fragments. Control frames may come between fragments.
pub struct Reader<R> {
    r: R,
    partial: Option<(u8, BytesMut)>,
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(r: R) -> Self {
        Reader { r, partial: None }
    }

    /// The next message; `None` when the connection ended cleanly between frames.
    pub async fn next(&mut self) -> std::io::Result<Option<Message>> {
        loop {
            let mut head = [0u8; 2];
            match self.r.read_exact(&mut head[..1]).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            self.r.read_exact(&mut head[1..]).await?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.r.read_u16().await?),
                127 => self.r.read_u64().await?,
                n => u64::from(n),
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= MAX_MESSAGE)
                .ok_or_else(|| invalid("websocket frame too large"))?;
            let mut key = [0u8; 4];
            if masked {
                self.r.read_exact(&mut key).await?;
            }
            let mut payload = vec![0u8; len];
            self.r.read_exact(&mut payload).await?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= key[i % 4];
                }
            }
            match opcode {
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Message::Close(code)));
                }
                OP_PING => return Ok(Some(Message::Ping(payload.into()))),
                OP_PONG => return Ok(Some(Message::Pong(payload.into()))),
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(invalid("websocket message inside a fragmented one"));
                    }
                    if fin {
                        let b = Bytes::from(payload);
                        return Ok(Some(if opcode == OP_TEXT {
                            Message::Text(b)
                        } else {
                            Message::Binary(b)
                        }));
                    }
                    self.partial = Some((opcode, BytesMut::from(&payload[..])));
                }
                OP_CONTINUATION => {
                    let (op, mut buf) = self
                        .partial
                        .take()
                        .ok_or_else(|| invalid("websocket continuation without a start"))?;
                    if buf.len() + payload.len() > MAX_MESSAGE {
                        return Err(invalid("websocket message too large"));
                    }
                    buf.extend_from_slice(&payload);
                    if fin {
                        let b = buf.freeze();
                        return Ok(Some(if op == OP_TEXT {
                            Message::Text(b)
                        } else {
                            Message::Binary(b)
                        }));
                    }
                    self.partial = Some((op, buf));
                }
                _ => return Err(invalid("unknown websocket opcode")),
            }
        }
    }
}

/// Writes one message.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &Message,
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    w.write_all(&encode(msg, mask)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn frames_round_trip_masked_and_not() {
        let big = vec![7u8; 70_000];
        let msgs = vec![
            Message::Binary(Bytes::from_static(b"\x01hello")),
            Message::Text(Bytes::from_static(b"hi")),
            Message::Binary(Bytes::from(vec![1u8; 300])),
            Message::Binary(Bytes::from(big)),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Close(Some(1000)),
        ];
        for mask in [None, Some([1, 2, 3, 4])] {
            let mut wire = Vec::new();
            for m in &msgs {
                wire.extend(encode(m, mask));
            }
            let mut r = Reader::new(&wire[..]);
            for m in &msgs {
                assert_eq!(r.next().await.unwrap().as_ref(), Some(m));
            }
            assert_eq!(r.next().await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn fragments_are_joined_around_control_frames() {
        let mut wire = vec![OP_BINARY, 2, b'a', b'b'];
        wire.extend(encode_frame(OP_PING, b"x", None));
        wire.extend([OP_CONTINUATION, 1, b'c']);
        wire.extend([0x80 | OP_CONTINUATION, 1, b'd']);
        let mut r = Reader::new(&wire[..]);
        assert_eq!(
            r.next().await.unwrap(),
            Some(Message::Ping(Bytes::from_static(b"x")))
        );
        assert_eq!(
            r.next().await.unwrap(),
            Some(Message::Binary(Bytes::from_static(b"abcd")))
        );
    }

    #[test]
    fn upgrade_detection_and_protocols() {
        let req = http::Request::builder()
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Key", "abc")
            .header(
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io, v4.channel.k8s.io",
            )
            .body(())
            .unwrap();
        assert!(is_upgrade(&req));
        assert_eq!(
            offered_protocols(&req),
            vec!["v5.channel.k8s.io", "v4.channel.k8s.io"]
        );
        let spdy = http::Request::builder()
            .header("Upgrade", "SPDY/3.1")
            .body(())
            .unwrap();
        assert!(!is_upgrade(&spdy));
    }
}
