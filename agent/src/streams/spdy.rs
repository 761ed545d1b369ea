//! SPDY/3.1 framing as kubectl's streams use it (Go's spdystream): frames, header blocks
//! compressed with one zlib stream per direction preset with the SPDY/3 dictionary, and a
//! connection that multiplexes streams over any byte stream (an upgraded HTTP connection, or
//! WebSocket messages carrying SPDY). Flow control is not enforced in either direction:
//! spdystream neither sends WINDOW_UPDATE nor waits for one.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy_dict::dictionary;

pub const VERSION: u16 = 3;
pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status: the stream was cancelled.
pub const RST_CANCEL: u32 = 5;

/// Frames larger than this end the connection (the length field allows 16 MiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// A decompressed header block larger than this ends the connection.
const MAX_HEADERS: usize = 1024 * 1024;

/// Header names (lower case) and values, in order.
pub type Headers = Vec<(String, String)>;

pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this side does not know; skipped.
    Unknown(u16),
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One direction's header compression state.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // A fresh stream accepts a dictionary; nothing else can fail here.
        let _ = c.set_dictionary(dictionary());
        Deflater(c)
    }
}

impl Deflater {
    pub fn compress(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            for s in [k.to_ascii_lowercase().as_str(), v.as_str()] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.0.total_in();
            self.0
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("compress SPDY headers: {e}")))?;
            let used = (self.0.total_in() - before) as usize;
            input = &input[used..];
            // Room left after a sync flush means the flush is complete.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The other direction's header decompression state.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    pub fn decompress(&mut self, block: &[u8]) -> io::Result<Headers> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            if out.len() > MAX_HEADERS {
                return Err(invalid("SPDY header block too large"));
            }
            out.reserve(1024);
            let before = self.0.total_in();
            let r = self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.0.total_in() - before) as usize;
            input = &input[used..];
            match r {
                Ok(_) => {
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| invalid(format!("SPDY header dictionary: {e}")))?;
                }
                Err(e) => return Err(invalid(format!("decompress SPDY headers: {e}"))),
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(b: &[u8]) -> io::Result<Headers> {
    let mut pos = 0;
    let u32_at = |pos: &mut usize| -> io::Result<usize> {
        let s = b
            .get(*pos..*pos + 4)
            .ok_or_else(|| invalid("truncated SPDY header block"))?;
        *pos += 4;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let n = u32_at(&mut pos)?;
    let mut headers = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let len = u32_at(&mut pos)?;
            let bytes = b
                .get(pos..pos + len)
                .ok_or_else(|| invalid("truncated SPDY header block"))?;
            pos += len;
            *s = String::from_utf8_lossy(bytes).into_owned();
        }
        let [k, v] = pair;
        // Several values of one name are joined by NUL.
        for v in v.split('\0') {
            headers.push((k.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(headers)
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    let len = body.len() as u32;
    out.push(flags);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

/// Encodes a frame; header blocks go through `deflater`, so frames must be written in the
/// order they were encoded.
pub fn encode(frame: &Frame, deflater: &mut Deflater) -> io::Result<Vec<u8>> {
    let id = |i: u32| (i & 0x7fff_ffff).to_be_bytes();
    Ok(match frame {
        Frame::SynStream {
            stream_id,
            associated,
            priority,
            flags,
            headers,
        } => {
            let mut body = Vec::new();
            body.extend_from_slice(&id(*stream_id));
            body.extend_from_slice(&id(*associated));
            body.push((priority & 0x7) << 5);
            body.push(0);
            body.extend(deflater.compress(headers)?);
            control(SYN_STREAM, *flags, &body)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => {
            let mut body = id(*stream_id).to_vec();
            body.extend(deflater.compress(headers)?);
            control(SYN_REPLY, *flags, &body)
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let mut body = id(*stream_id).to_vec();
            body.extend(deflater.compress(headers)?);
            control(HEADERS, *flags, &body)
        }
        Frame::RstStream { stream_id, status } => {
            let mut body = id(*stream_id).to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &body)
        }
        Frame::Settings => control(SETTINGS, 0, &0u32.to_be_bytes()),
        Frame::Ping(n) => control(PING, 0, &n.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            let mut body = id(*last_good).to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(GOAWAY, 0, &body)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut body = id(*stream_id).to_vec();
            body.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            control(WINDOW_UPDATE, 0, &body)
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&id(*stream_id));
            out.push(*flags);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(data);
            out
        }
        Frame::Unknown(_) => return Err(invalid("cannot encode an unknown frame")),
    })
}

/// Reads the next frame; `None` at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    inflater: &mut Inflater,
) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(invalid("SPDY frame too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let word = |i: usize| -> io::Result<u32> {
        body.get(i..i + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| invalid("truncated SPDY frame"))
    };
    if head[0] & 0x80 == 0 {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        return Ok(Some(Frame::Data {
            stream_id,
            flags,
            data: Bytes::from(body),
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
    if version != VERSION {
        return Err(invalid(format!("SPDY version {version} is not supported")));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let frame = match kind {
        SYN_STREAM => {
            if body.len() < 10 {
                return Err(invalid("truncated SYN_STREAM"));
            }
            Frame::SynStream {
                stream_id: word(0)? & 0x7fff_ffff,
                associated: word(4)? & 0x7fff_ffff,
                priority: body[8] >> 5,
                flags,
                headers: inflater.decompress(&body[10..])?,
            }
        }
        SYN_REPLY => Frame::SynReply {
            stream_id: word(0)? & 0x7fff_ffff,
            flags,
            headers: inflater.decompress(body.get(4..).unwrap_or_default())?,
        },
        HEADERS => Frame::Headers {
            stream_id: word(0)? & 0x7fff_ffff,
            flags,
            headers: inflater.decompress(body.get(4..).unwrap_or_default())?,
        },
        RST_STREAM => Frame::RstStream {
            stream_id: word(0)? & 0x7fff_ffff,
            status: word(4)?,
        },
        SETTINGS => Frame::Settings,
        PING => Frame::Ping(word(0)?),
        GOAWAY => Frame::GoAway {
            last_good: word(0)? & 0x7fff_ffff,
            status: word(4).unwrap_or(0),
        },
        WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: word(0)? & 0x7fff_ffff,
            delta: word(4)? & 0x7fff_ffff,
        },
        other => Frame::Unknown(other),
    };
    Ok(Some(frame))
}

/// A stream the peer opened: its headers and the data it sends, which ends at its FIN (or
/// when it is reset, or the connection ends).
pub struct IncomingStream {
    pub id: u32,
    pub headers: Headers,
    pub data: mpsc::Receiver<Bytes>,
}

enum Out {
    Frame(Frame),
    /// Flush, say GOAWAY and shut the connection's write side.
    Close,
}

/// Writes to a connection's streams. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Out>,
    streams: Arc<Mutex<HashMap<u32, mpsc::Sender<Bytes>>>>,
    next_id: Arc<Mutex<u32>>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "SPDY connection closed")
}

impl Writer {
    async fn send(&self, f: Frame) -> io::Result<()> {
        self.tx.send(Out::Frame(f)).await.map_err(|_| gone())
    }

    pub async fn data(&self, stream_id: u32, data: Bytes) -> io::Result<()> {
        // spdystream cannot take frames as long as the 24-bit length allows: keep them small.
        for chunk in data.chunks(32 * 1024) {
            self.send(Frame::Data {
                stream_id,
                flags: 0,
                data: data.slice_ref(chunk),
            })
            .await?;
        }
        Ok(())
    }

    /// Half-closes our side of the stream.
    pub async fn fin(&self, stream_id: u32) -> io::Result<()> {
        self.send(Frame::Data {
            stream_id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        })
        .await
    }

    pub async fn reset(&self, stream_id: u32) -> io::Result<()> {
        self.send(Frame::RstStream {
            stream_id,
            status: RST_CANCEL,
        })
        .await
    }

    /// Opens a stream (the client side): its id and the data the peer sends on it.
    pub async fn open(&self, headers: Headers) -> io::Result<(u32, mpsc::Receiver<Bytes>)> {
        let id = {
            let mut n = self.next_id.lock().map_err(|_| gone())?;
            let id = *n;
            *n += 2;
            id
        };
        let (tx, rx) = mpsc::channel(64);
        if let Ok(mut m) = self.streams.lock() {
            m.insert(id, tx);
        }
        self.send(Frame::SynStream {
            stream_id: id,
            associated: 0,
            priority: 0,
            flags: 0,
            headers,
        })
        .await?;
        Ok((id, rx))
    }

    /// Ends the connection once everything queued before is written.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::Close).await;
    }
}

/// Serves a SPDY connection over `io`: returns a writer and the streams the peer opens. A
/// server answers each stream with an empty SYN_REPLY at once; a client's streams get odd
/// ids. The connection's tasks end when the peer closes it, or after [`Writer::close`], or
/// when every `Writer` clone and the stream receiver are dropped.
pub fn connect<IO>(io: IO, server: bool) -> (Writer, mpsc::Receiver<IncomingStream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let (in_tx, in_rx) = mpsc::channel::<IncomingStream>(16);
    let streams: Arc<Mutex<HashMap<u32, mpsc::Sender<Bytes>>>> = Arc::default();
    let writer = Writer {
        tx: out_tx.clone(),
        streams: streams.clone(),
        next_id: Arc::new(Mutex::new(if server { 2 } else { 1 })),
    };

    tokio::spawn(async move {
        let mut deflater = Deflater::default();
        while let Some(out) = out_rx.recv().await {
            let frame = match out {
                Out::Frame(f) => f,
                Out::Close => {
                    if let Ok(b) = encode(
                        &Frame::GoAway {
                            last_good: 0,
                            status: 0,
                        },
                        &mut deflater,
                    ) {
                        let _ = wr.write_all(&b).await;
                    }
                    break;
                }
            };
            let bytes = match encode(&frame, &mut deflater) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY encode");
                    break;
                }
            };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
            if out_rx.is_empty() && wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });

    let weak_out = out_tx.downgrade();
    drop(out_tx);
    tokio::spawn(async move {
        let mut inflater = Inflater::default();
        loop {
            let frame = match read_frame(&mut rd, &mut inflater).await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY connection");
                    break;
                }
            };
            let reply = |f: Frame| {
                let out = weak_out.upgrade();
                async move {
                    if let Some(out) = out {
                        let _ = out.send(Out::Frame(f)).await;
                    }
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    flags,
                    headers,
                    ..
                } => {
                    let (tx, rx) = mpsc::channel(64);
                    if flags & FLAG_FIN == 0
                        && let Ok(mut m) = streams.lock()
                    {
                        m.insert(stream_id, tx);
                    }
                    if server {
                        reply(Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: Vec::new(),
                        })
                        .await;
                    }
                    let stream = IncomingStream {
                        id: stream_id,
                        headers,
                        data: rx,
                    };
                    if in_tx.send(stream).await.is_err() {
                        tracing::debug!(stream_id, "SPDY stream nobody takes");
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let tx = streams.lock().ok().and_then(|m| m.get(&stream_id).cloned());
                    if let Some(tx) = tx
                        && !data.is_empty()
                    {
                        // A reader that went away just drops what comes.
                        let _ = tx.send(data).await;
                    }
                    if flags & FLAG_FIN != 0
                        && let Ok(mut m) = streams.lock()
                    {
                        m.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    if let Ok(mut m) = streams.lock() {
                        m.remove(&stream_id);
                    }
                }
                Frame::SynReply {
                    stream_id, flags, ..
                }
                | Frame::Headers {
                    stream_id, flags, ..
                } => {
                    if flags & FLAG_FIN != 0
                        && let Ok(mut m) = streams.lock()
                    {
                        m.remove(&stream_id);
                    }
                }
                Frame::Ping(n) => reply(Frame::Ping(n)).await,
                Frame::GoAway { .. } => break,
                Frame::Settings | Frame::WindowUpdate { .. } | Frame::Unknown(_) => {}
            }
        }
        // The peer is gone: every stream's data ends.
        if let Ok(mut m) = streams.lock() {
            m.clear();
        }
    });
    (writer, in_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn frames_round_trip_with_compressed_headers() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 2,
                flags: 0,
                headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            // The second block relies on the first one's compression state.
            Frame::SynStream {
                stream_id: 3,
                associated: 0,
                priority: 0,
                flags: FLAG_FIN,
                headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: Vec::new(),
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::Ping(7),
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 65536,
            },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
        ];
        let mut d = Deflater::default();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(encode(f, &mut d).unwrap());
        }
        let mut inf = Inflater::default();
        let mut r = &wire[..];
        for f in &frames {
            assert_eq!(
                read_frame(&mut r, &mut inf).await.unwrap().as_ref(),
                Some(f)
            );
        }
        assert_eq!(read_frame(&mut r, &mut inf).await.unwrap(), None);
    }

    #[test]
    fn header_blocks_use_the_spdy_dictionary() {
        let mut d = Deflater::default();
        let block = d.compress(&h(&[("streamtype", "stdout")])).unwrap();
        // A zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(block[0] & 0x0f, 8);
        assert_ne!(block[1] & 0x20, 0);
        // An inflater without the dictionary cannot read it.
        let mut plain = Decompress::new(true);
        let mut out = Vec::with_capacity(256);
        let err = plain
            .decompress_vec(&block, &mut out, FlushDecompress::Sync)
            .unwrap_err();
        assert!(err.needs_dictionary().is_some());
        // Several values of one name, joined by NUL, come apart.
        let mut d = Deflater::default();
        let block = d
            .compress(&h(&[("x-stream-protocol-version", "a\0b")]))
            .unwrap();
        let got = Inflater::default().decompress(&block).unwrap();
        assert_eq!(
            got,
            h(&[
                ("x-stream-protocol-version", "a"),
                ("x-stream-protocol-version", "b")
            ])
        );
    }

    #[tokio::test]
    async fn connection_replies_to_streams_and_carries_data_both_ways() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (server_w, mut incoming) = connect(a, true);
        let (client_w, _client_in) = connect(b, false);
        let (id, mut from_server) = client_w.open(h(&[("streamtype", "stdin")])).await.unwrap();
        assert_eq!(id, 1);
        let mut s = incoming.recv().await.unwrap();
        assert_eq!(header(&s.headers, "streamType"), Some("stdin"));
        client_w
            .data(id, Bytes::from_static(b"ping"))
            .await
            .unwrap();
        client_w.fin(id).await.unwrap();
        assert_eq!(s.data.recv().await.unwrap(), Bytes::from_static(b"ping"));
        assert_eq!(s.data.recv().await, None);
        server_w
            .data(id, Bytes::from_static(b"pong"))
            .await
            .unwrap();
        server_w.fin(id).await.unwrap();
        assert_eq!(
            from_server.recv().await.unwrap(),
            Bytes::from_static(b"pong")
        );
        assert_eq!(from_server.recv().await, None);
        // Closing the server ends the client's view of the connection.
        let (_id2, mut rx2) = client_w.open(h(&[("streamtype", "x")])).await.unwrap();
        let _s2 = incoming.recv().await.unwrap();
        server_w.close().await;
        assert_eq!(rx2.recv().await, None);
    }
}
