//! TCP connections to probe targets, with Go's error text.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::gofmt;

/// Connects to `host` (an IP address or a name) on `port`, trying each address of a name in
/// turn. Errors read as Go's dialer writes them: `dial tcp 10.0.0.5:81: connect: connection
/// refused`, `dial tcp: lookup db.local: no such host`. No timeout: callers bound it.
pub(crate) async fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => addrs.collect(),
            Err(_) => Vec::new(),
        },
    };
    let mut last = format!("dial tcp: lookup {host}: no such host");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("dial tcp {addr}: connect: {}", gofmt::io_error(&e)),
        }
    }
    Err(last)
}

/// Go's text for an error on an established connection: `read tcp 10.0.0.1:40000->10.0.0.5:80:
/// read: connection reset by peer`, `EOF`.
pub(crate) fn conn_error(
    err: &std::io::Error,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
) -> String {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        return "EOF".to_string();
    }
    let op = if err.raw_os_error() == Some(libc::EPIPE) {
        "write"
    } else {
        "read"
    };
    match (err.raw_os_error(), local, peer) {
        (Some(_), Some(local), Some(peer)) => {
            format!("{op} tcp {local}->{peer}: {op}: {}", gofmt::io_error(err))
        }
        _ => gofmt::io_error(err),
    }
}
