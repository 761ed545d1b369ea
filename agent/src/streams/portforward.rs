//! Port-forwarding (`portforward.k8s.io` over SPDY/3.1): the client opens two streams per
//! TCP connection, `streamType: error` and `streamType: data`, carrying the pod's `port` and
//! a `requestID` that pairs them. Each pair becomes one TCP connection to localhost in the
//! pod's network namespace, dialled from a short-lived thread that entered the namespace
//! (never from a runtime worker, whose namespace would stay changed). A failed dial is
//! reported on the error stream as kubelet words it. The connection's end ends every pair.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::spdy::{self, IncomingStream, Writer};

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one direction of a forwarded connection may go on after the other ended.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// An error as Go prints a failed dial: `dial tcp4 127.0.0.1:80: connect: connection refused`.
fn go_dial_error(net: &str, addr: &SocketAddr, e: &io::Error) -> String {
    let text = e.to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut chars = text.chars();
    let lower = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    };
    format!("dial {net} {addr}: connect: {lower}")
}

/// Connects to `port` on localhost inside the network namespace at `netns`: IPv4 first,
/// then IPv6, as kubelet's runtime does.
pub async fn dial_in_netns(netns: &Path, port: u16) -> Result<TcpStream, String> {
    let (tx, rx) = oneshot::channel();
    let path = netns.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("port-forward-dial".into())
        .spawn(move || {
            let _ = tx.send(dial_blocking(&path, port));
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start a thread to dial: {e}"));
    }
    let stream = rx
        .await
        .map_err(|_| "the dialling thread died".to_string())??;
    stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
        .map_err(|e| e.to_string())
}

/// Runs on a thread of its own, which it moves into the namespace for good: the thread
/// ends right after.
fn dial_blocking(netns: &Path, port: u16) -> Result<StdTcpStream, String> {
    let ns = std::fs::File::open(netns).map_err(|e| {
        format!(
            "failed to open network namespace {:?}: {e}",
            netns.display().to_string()
        )
    })?;
    // SAFETY: setns on a descriptor we own, affecting only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "failed to enter network namespace {:?}: {}",
            netns.display().to_string(),
            io::Error::last_os_error()
        ));
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let err4 = match StdTcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => go_dial_error("tcp4", &v4, &e),
    };
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let err6 = match StdTcpStream::connect_timeout(&v6, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => go_dial_error("tcp6", &v6, &e),
    };
    let sandbox = netns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(format!(
        "failed to execute portforward in network namespace {:?}: failed to connect to localhost:{port} inside namespace {sandbox:?}, IPv4: {err4} IPv6 {err6} ",
        netns.display().to_string()
    ))
}

#[derive(Default)]
struct Pair {
    error: Option<IncomingStream>,
    data: Option<IncomingStream>,
}

/// Serves port-forwarding over a SPDY connection until it ends.
pub async fn serve<IO>(io: IO, netns: PathBuf)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (w, mut incoming) = spdy::connect(io, true);
    let (closed_tx, closed_rx) = watch::channel(false);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(s) = incoming.recv().await {
        let kind = spdy::header(&s.headers, "streamtype").unwrap_or_default();
        let Some(request) = spdy::header(&s.headers, "requestid").map(str::to_string) else {
            tracing::debug!(stream = s.id, "port-forward stream without requestID");
            let _ = w.reset(s.id).await;
            continue;
        };
        let pair = pairs.entry(request.clone()).or_default();
        match kind {
            "error" => pair.error = Some(s),
            "data" => pair.data = Some(s),
            other => {
                tracing::debug!(stream_type = other, "unexpected port-forward stream");
                let _ = w.reset(s.id).await;
                continue;
            }
        }
        if pair.error.is_some()
            && pair.data.is_some()
            && let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = pairs.remove(&request)
        {
            tokio::spawn(forward(
                w.clone(),
                netns.clone(),
                error,
                data,
                closed_rx.clone(),
            ));
        }
    }
    let _ = closed_tx.send(true);
    w.close().await;
}

async fn forward(
    w: Writer,
    netns: PathBuf,
    error: IncomingStream,
    mut data: IncomingStream,
    mut closed: watch::Receiver<bool>,
) {
    let port_header = spdy::header(&data.headers, "port")
        .unwrap_or_default()
        .to_string();
    let port = match port_header.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            let msg = format!("invalid port {port_header:?}");
            let _ = w.data(error.id, Bytes::from(msg)).await;
            let _ = w.fin(error.id).await;
            let _ = w.reset(data.id).await;
            return;
        }
    };
    let sandbox = netns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tcp = match dial_in_netns(&netns, port).await {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {sandbox}, uid : {e}");
            tracing::debug!(%msg, "port-forward");
            let _ = w.data(error.id, Bytes::from(msg)).await;
            let _ = w.fin(error.id).await;
            let _ = w.fin(data.id).await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let id = data.id;
    let up = async {
        while let Some(b) = data.data.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w.data(id, Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = w.fin(id).await;
    };
    tokio::pin!(up, down);
    // When one direction ends, the other gets a moment to finish (as kubelet's runtime
    // does), then both streams end: kubectl waits for the error stream's end.
    let mut down_done = false;
    tokio::select! {
        () = &mut up => {
            down_done = tokio::time::timeout(CLOSE_GRACE, &mut down).await.is_ok();
        }
        () = &mut down => {
            down_done = true;
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut up).await;
        }
        () = async { let _ = closed.wait_for(|c| *c).await; } => {}
    }
    if !down_done {
        let _ = w.fin(id).await;
    }
    let _ = w.fin(error.id).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_errors_read_like_go() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 80));
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            go_dial_error("tcp4", &addr, &e),
            "dial tcp4 127.0.0.1:80: connect: connection refused"
        );
    }

    #[tokio::test]
    async fn dials_in_our_own_namespace() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
        let _conn = dial_in_netns(&ns, port).await.unwrap();
        drop(listener);
        let err = dial_in_netns(&ns, port).await.unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        assert!(
            err.contains(&format!("failed to connect to localhost:{port}")),
            "{err}"
        );
    }
}
