//! kubectl's channel protocols, over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) or
//! SPDY/3.1 streams (`v4.channel.k8s.io` down to `channel.k8s.io`): how a session's input,
//! output and outcome map onto them.
//!
//! WebSocket: each binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (the outcome), 4 resize (`{"Width":w,"Height":h}`); v5 adds 255, whose second
//! byte names a channel the client closed (its stdin). SPDY: one stream per channel, typed
//! by its `streamType` header; the client opens them all, the outcome ends the session.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::session::{Input, Output, Pipes};
use super::spdy::{self, IncomingStream};
use super::status::Outcome;
use super::websocket::{self, Message};
use crate::runtime::TermSize;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// How long a SPDY client has to open the streams it asked for (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Which streams a session has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A resize message: `{"Width":80,"Height":24}` (field names matched as Go does, ignoring
/// case).
pub fn parse_resize(b: &[u8]) -> Option<TermSize> {
    let v: serde_json::Value = serde_json::from_slice(b).ok()?;
    let obj = v.as_object()?;
    let get = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_u64())
            .and_then(|n| u16::try_from(n).ok())
    };
    Some(TermSize {
        width: get("width")?,
        height: get("height")?,
    })
}

/// Serves a session over a WebSocket connection speaking a channel protocol.
pub async fn serve_websocket<IO, F, Fut>(io: IO, v5: bool, run: F)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(Pipes) -> Fut,
    Fut: Future<Output = Option<Outcome>>,
{
    let (rd, mut wr) = tokio::io::split(io);
    let (ws_tx, mut ws_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = ws_rx.recv().await {
            let last = matches!(m, Message::Close(_));
            if websocket::write(&mut wr, &m, None).await.is_err() || last {
                break;
            }
        }
    });
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let pong = ws_tx.clone();
    let reader = tokio::spawn(async move {
        let mut r = websocket::Reader::new(rd);
        loop {
            let msg = match r.next().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket session");
                    break;
                }
            };
            let input = match msg {
                Message::Binary(b) => match b.first() {
                    Some(&STDIN) if b.len() > 1 => Input::Stdin(b.slice(1..)),
                    Some(&RESIZE) => match parse_resize(&b[1..]) {
                        Some(size) => Input::Resize(size),
                        None => continue,
                    },
                    Some(&CLOSE) if v5 && b.get(1) == Some(&STDIN) => Input::StdinEnd,
                    _ => continue,
                },
                Message::Ping(p) => {
                    let _ = pong.send(Message::Pong(p)).await;
                    continue;
                }
                Message::Close(_) => break,
                Message::Text(_) | Message::Pong(_) => continue,
            };
            if in_tx.send(input).await.is_err() {
                break;
            }
        }
    });
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(64);
    let session = run(Pipes {
        input: in_rx,
        output: out_tx,
    });
    tokio::pin!(session);
    let frame = |o: Output| {
        let (ch, data) = match o {
            Output::Stdout(d) => (STDOUT, d),
            Output::Stderr(d) => (STDERR, d),
        };
        let mut b = Vec::with_capacity(data.len() + 1);
        b.push(ch);
        b.extend_from_slice(&data);
        Message::Binary(b.into())
    };
    let outcome = loop {
        tokio::select! {
            outcome = &mut session => break outcome,
            Some(o) = out_rx.recv() => {
                if ws_tx.send(frame(o)).await.is_err() {
                    break None;
                }
            }
        }
    };
    while let Ok(o) = out_rx.try_recv() {
        let _ = ws_tx.send(frame(o)).await;
    }
    if let Some(outcome) = outcome {
        let mut b = vec![ERROR];
        b.extend(outcome.encode(true));
        let _ = ws_tx.send(Message::Binary(b.into())).await;
        let _ = ws_tx.send(Message::Close(Some(1000))).await;
    }
    drop(ws_tx);
    let _ = writer.await;
    reader.abort();
}

/// Forwards a client stream's data as session input; `end` (if any) when it ends.
fn forward_stream(
    mut s: IncomingStream,
    input: mpsc::Sender<Input>,
    map: fn(Bytes) -> Option<Input>,
    end: Option<Input>,
) {
    tokio::spawn(async move {
        while let Some(b) = s.data.recv().await {
            if let Some(i) = map(b)
                && input.send(i).await.is_err()
            {
                return;
            }
        }
        if let Some(e) = end {
            let _ = input.send(e).await;
        }
    });
}

/// Serves a session over a SPDY connection speaking channel protocol `version` (1 to 4;
/// 4 writes the outcome as a Status, earlier ones as text and nothing on success).
pub async fn serve_spdy<IO, F, Fut>(io: IO, version: u8, want: Streams, run: F)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(Pipes) -> Fut,
    Fut: Future<Output = Option<Outcome>>,
{
    let (w, mut incoming) = spdy::connect(io, true);
    let (in_tx, in_rx) = mpsc::channel::<Input>(64);
    let mut error = None;
    let mut stdout = None;
    let mut stderr = None;
    let (mut got_stdin, mut got_resize) = (false, false);
    let expected_resize = want.tty && version >= 3;
    let complete = |e: &Option<u32>, o: &Option<u32>, r: &Option<u32>, i: bool, z: bool| {
        e.is_some()
            && (o.is_some() || !want.stdout)
            && (r.is_some() || !want.stderr || want.tty)
            && (i || !want.stdin)
            && (z || !expected_resize)
    };
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !complete(&error, &stdout, &stderr, got_stdin, got_resize) {
        let s = match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!("SPDY client did not open its streams in time");
                w.close().await;
                return;
            }
        };
        match spdy::header(&s.headers, "streamtype").unwrap_or_default() {
            "error" => error = Some(s.id),
            "stdout" => stdout = Some(s.id),
            "stderr" => stderr = Some(s.id),
            "stdin" => {
                got_stdin = true;
                forward_stream(
                    s,
                    in_tx.clone(),
                    |b| Some(Input::Stdin(b)),
                    Some(Input::StdinEnd),
                );
            }
            "resize" => {
                got_resize = true;
                // One JSON object per line.
                let (tx, mut rx) = mpsc::channel::<Bytes>(8);
                let input = in_tx.clone();
                forward_stream_raw(s, tx);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(b) = rx.recv().await {
                        buf.extend_from_slice(&b);
                        while let Some(nl) = buf.iter().position(|&c| c == b'\n') {
                            let line: Vec<u8> = buf.drain(..=nl).collect();
                            if let Some(size) = parse_resize(&line)
                                && input.send(Input::Resize(size)).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
            other => tracing::debug!(stream_type = other, "unexpected SPDY stream"),
        }
    }
    // The input ends (the client is gone) once the connection ends.
    tokio::spawn(async move {
        while incoming.recv().await.is_some() {}
        drop(in_tx);
    });
    let (out_tx, mut out_rx) = mpsc::channel::<Output>(64);
    let session = run(Pipes {
        input: in_rx,
        output: out_tx,
    });
    tokio::pin!(session);
    let send = |o: Output| {
        let w = w.clone();
        async move {
            let r: io::Result<()> = match o {
                Output::Stdout(d) => match stdout {
                    Some(id) => w.data(id, d).await,
                    None => Ok(()),
                },
                Output::Stderr(d) => match stderr {
                    Some(id) => w.data(id, d).await,
                    None => Ok(()),
                },
            };
            r
        }
    };
    let outcome = loop {
        tokio::select! {
            outcome = &mut session => break outcome,
            Some(o) = out_rx.recv() => {
                if send(o).await.is_err() {
                    break None;
                }
            }
        }
    };
    while let Ok(o) = out_rx.try_recv() {
        let _ = send(o).await;
    }
    if let (Some(outcome), Some(error)) = (outcome, error) {
        let msg = outcome.encode(version >= 4);
        if !msg.is_empty() {
            let _ = w.data(error, msg.into()).await;
        }
        for id in [Some(error), stdout, stderr].into_iter().flatten() {
            let _ = w.fin(id).await;
        }
    }
    w.close().await;
}

fn forward_stream_raw(mut s: IncomingStream, tx: mpsc::Sender<Bytes>) {
    tokio::spawn(async move {
        while let Some(b) = s.data.recv().await {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages() {
        assert_eq!(
            parse_resize(br#"{"Width":100,"Height":40}"#),
            Some(TermSize {
                width: 100,
                height: 40
            })
        );
        assert_eq!(
            parse_resize(b"{\"width\":1,\"height\":2}\n"),
            Some(TermSize {
                width: 1,
                height: 2
            })
        );
        assert_eq!(parse_resize(b"{}"), None);
    }
}
