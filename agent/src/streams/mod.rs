//! Interactive sessions with a pod, as kubelet serves them to the API server: `exec` and
//! `attach` (stdin, stdout, stderr, a terminal and its resizes) and `port-forward` (TCP
//! streams into the pod's network namespace), each over the upgraded HTTP connection the
//! API server passes through from kubectl.
//!
//! exec and attach speak kubectl's channel protocols over WebSocket (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`) or SPDY/3.1 (`X-Stream-Protocol-Version` `v4.channel.k8s.io` down to
//! `channel.k8s.io`); port-forward speaks `portforward.k8s.io` over SPDY/3.1, either on the
//! upgraded connection itself or inside WebSocket binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`).

pub mod channel;
pub mod logs;
pub mod portforward;
pub mod session;
pub mod spdy;
mod spdy_dict;
pub mod status;
pub mod websocket;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use self::channel::Streams;
use self::session::Pipes;
use self::status::Outcome;
use crate::runtime::{ExecOptions, Runtime};

/// Response bodies of the agent's HTTP API.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The WebSocket subprotocols of exec and attach, most preferred first.
const WS_CHANNEL_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// The SPDY channel protocol versions, most preferred first, with their numbers.
const SPDY_CHANNEL_PROTOCOLS: &[(&str, u8)] = &[
    ("v4.channel.k8s.io", 4),
    ("v3.channel.k8s.io", 3),
    ("v2.channel.k8s.io", 2),
    ("channel.k8s.io", 1),
];
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
const WS_PORT_FORWARD_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// `GET|POST /exec/{namespace}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…`
/// on the container `container_id`, already resolved from the pod by the caller.
pub async fn exec(
    req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    container_id: String,
) -> Response<Body> {
    let q = Query::parse(req.uri().query());
    let streams = q.streams();
    if let Some(refusal) = q.refusal() {
        return text(StatusCode::BAD_REQUEST, &refusal);
    }
    let cmd = q.all("command");
    if cmd.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let opts = ExecOptions {
        cmd,
        stdin: streams.stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
        tty: streams.tty,
        size: None,
    };
    upgrade(req, streams, move |pipes| async move {
        session::exec(runtime, &container_id, opts, pipes).await
    })
}

/// `GET|POST /attach/{namespace}/{pod}/{container}?stdin=…&stdout=…&stderr=…&tty=…`.
pub async fn attach(
    req: Request<Incoming>,
    runtime: Arc<dyn Runtime>,
    container_id: String,
) -> Response<Body> {
    let q = Query::parse(req.uri().query());
    let streams = q.streams();
    if let Some(refusal) = q.refusal() {
        return text(StatusCode::BAD_REQUEST, &refusal);
    }
    let target = match runtime.attach(&container_id, false).await {
        Ok(t) => t,
        Err(e) => return text(StatusCode::NOT_FOUND, &e.to_string()),
    };
    if !target.running {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("container {container_id} is not running"),
        );
    }
    let name = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Some(refusal) = session::attach_refusal(
        target.stdin_enabled,
        target.tty,
        streams.stdin,
        streams.tty,
        &name,
    ) {
        return text(StatusCode::BAD_REQUEST, &refusal);
    }
    upgrade(req, streams, move |pipes| async move {
        session::attach(
            runtime,
            &container_id,
            streams.stdin,
            streams.stdout,
            streams.stderr,
            pipes,
        )
        .await
    })
}

/// `GET|POST /portForward/{namespace}/{pod}`: connections to the pod's ports, made from
/// inside its network namespace `netns`.
pub async fn port_forward(req: Request<Incoming>, netns: PathBuf) -> Response<Body> {
    if websocket::is_upgrade(&req) {
        if !websocket::offered_protocols(&req)
            .iter()
            .any(|p| p == WS_PORT_FORWARD_PROTOCOL)
        {
            return text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unable to upgrade: the WebSocket subprotocol must be {WS_PORT_FORWARD_PROTOCOL}"
                ),
            );
        }
        let res = websocket_accept(&req, WS_PORT_FORWARD_PROTOCOL);
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let bytes = websocket_bytes(TokioIo::new(up));
                    portforward::serve(bytes, netns).await;
                }
                Err(e) => tracing::debug!(error = %e, "port-forward upgrade"),
            }
        });
        return res;
    }
    if !is_spdy_upgrade(&req) {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let offered = stream_protocols(&req);
    if !offered.iter().any(|p| p == PORT_FORWARD_PROTOCOL) {
        return text(
            StatusCode::FORBIDDEN,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{PORT_FORWARD_PROTOCOL}\"]"
            ),
        );
    }
    let res = spdy_accept(PORT_FORWARD_PROTOCOL);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => portforward::serve(TokioIo::new(up), netns).await,
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade"),
        }
    });
    res
}

/// Negotiates the protocol of an exec or attach session, answers 101 and serves the
/// session on the upgraded connection.
fn upgrade<F, Fut>(req: Request<Incoming>, streams: Streams, run: F) -> Response<Body>
where
    F: FnOnce(Pipes) -> Fut + Send + 'static,
    Fut: Future<Output = Option<Outcome>> + Send,
{
    if websocket::is_upgrade(&req) {
        let offered = websocket::offered_protocols(&req);
        let Some(proto) = WS_CHANNEL_PROTOCOLS
            .iter()
            .find(|p| offered.iter().any(|o| o == *p))
        else {
            return text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {WS_CHANNEL_PROTOCOLS:?}"
                ),
            );
        };
        let v5 = *proto == "v5.channel.k8s.io";
        let res = websocket_accept(&req, proto);
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(up) => channel::serve_websocket(TokioIo::new(up), v5, run).await,
                Err(e) => tracing::debug!(error = %e, "session upgrade"),
            }
        });
        return res;
    }
    if !is_spdy_upgrade(&req) {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    }
    let offered = stream_protocols(&req);
    let Some((proto, version)) = offered
        .iter()
        .find_map(|o| SPDY_CHANNEL_PROTOCOLS.iter().find(|(p, _)| p == o))
        .copied()
    else {
        let server: Vec<&str> = SPDY_CHANNEL_PROTOCOLS.iter().map(|(p, _)| *p).collect();
        return text(
            StatusCode::FORBIDDEN,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {server:?}"
            ),
        );
    };
    let res = spdy_accept(proto);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => channel::serve_spdy(TokioIo::new(up), version, streams, run).await,
            Err(e) => tracing::debug!(error = %e, "session upgrade"),
        }
    });
    res
}

fn is_spdy_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.trim().eq_ignore_ascii_case("SPDY/3.1"))
    })
}

/// The `X-Stream-Protocol-Version` values the client offers, in its order.
fn stream_protocols<B>(req: &Request<B>) -> Vec<String> {
    req.headers()
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn switching(upgrade: &'static str) -> Response<Body> {
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    res
}

fn spdy_accept(proto: &'static str) -> Response<Body> {
    let mut res = switching("SPDY/3.1");
    res.headers_mut()
        .insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(proto));
    res
}

fn websocket_accept<B>(req: &Request<B>, proto: &'static str) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut res = switching("websocket");
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&websocket::accept_key(key)) {
        h.insert("sec-websocket-accept", v);
    }
    h.insert("sec-websocket-protocol", HeaderValue::from_static(proto));
    res
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// The byte stream carried in a WebSocket connection's binary messages, both ways.
pub fn websocket_bytes<IO>(io: IO) -> tokio::io::DuplexStream
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (rd, mut wr) = tokio::io::split(io);
    let (mut brd, mut bwr) = tokio::io::split(ours);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    tokio::spawn(async move {
        let mut r = websocket::Reader::new(rd);
        while let Ok(Some(m)) = r.next().await {
            match m {
                websocket::Message::Binary(b) if bwr.write_all(&b).await.is_err() => break,
                websocket::Message::Ping(p) => {
                    let _ = pong_tx.send(p).await;
                }
                websocket::Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = bwr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                n = brd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let m = websocket::Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if websocket::write(&mut wr, &m, None).await.is_err() {
                            return;
                        }
                    }
                },
                Some(p) = pong_rx.recv() => {
                    if websocket::write(&mut wr, &websocket::Message::Pong(p), None).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = websocket::write(&mut wr, &websocket::Message::Close(Some(1000)), None).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
    });
    theirs
}

/// The query string of a session request.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .is_some_and(|(_, v)| v == "1" || v.eq_ignore_ascii_case("true"))
    }

    fn streams(&self) -> Streams {
        let tty = self.flag("tty");
        Streams {
            stdin: self.flag("stdin"),
            stdout: self.flag("stdout"),
            // A terminal has one output stream.
            stderr: self.flag("stderr") && !tty,
            tty,
        }
    }

    /// kubelet's refusals of a session's stream options.
    fn refusal(&self) -> Option<String> {
        let s = self.streams();
        if !s.stdin && !s.stdout && !self.flag("stderr") {
            return Some("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        None
    }
}

#[cfg(test)]
mod tests;
