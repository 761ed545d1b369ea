//! A small DNS server standing for the node's upstream resolver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Answers `upstream.test.` A (TTL 60), `big.test.` TXT (too big for UDP: truncated there,
/// whole over TCP), NXDOMAIN for the rest; counts the questions it gets.
pub struct Upstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
}

fn upstream_answer(request: &Message, over_tcp: bool) -> Message {
    let mut m = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let Some(q) = request.queries.first() else {
        m.metadata.response_code = ResponseCode::FormErr;
        return m;
    };
    m.add_query(q.clone());
    let name = q.name().to_lowercase().to_ascii();
    match (name.as_str(), q.query_type()) {
        ("upstream.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A([192, 0, 2, 7].into())),
            ));
        }
        ("big.test.", RecordType::TXT) if over_tcp => {
            for i in 0..40 {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    60,
                    RData::TXT(TXT::new(vec![format!("{i:02}-{}", "x".repeat(60))])),
                ));
            }
        }
        ("big.test.", RecordType::TXT) => m.metadata.truncation = true,
        _ => {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(Record::from_rdata(
                Name::from_ascii("test.").unwrap(),
                300,
                RData::SOA(SOA::new(
                    Name::from_ascii("ns.test.").unwrap(),
                    Name::from_ascii("h.test.").unwrap(),
                    1,
                    1,
                    1,
                    1,
                    30,
                )),
            ));
        }
    }
    m
}

pub async fn start_upstream() -> Upstream {
    // The same port for UDP and TCP; another when the TCP one is taken.
    let (udp, tcp, addr) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            break (udp, tcp, addr);
        }
    };
    serve(udp, tcp, addr)
}

/// Serves on sockets made elsewhere, e.g. in a thread that entered a test's network
/// namespace: a socket stays in the namespace it was made in. Needs a tokio runtime.
pub fn start_upstream_on(udp: std::net::UdpSocket, tcp: std::net::TcpListener) -> Upstream {
    udp.set_nonblocking(true).unwrap();
    tcp.set_nonblocking(true).unwrap();
    let addr = udp.local_addr().unwrap();
    serve(
        UdpSocket::from_std(udp).unwrap(),
        TcpListener::from_std(tcp).unwrap(),
        addr,
    )
}

fn serve(udp: UdpSocket, tcp: TcpListener, addr: SocketAddr) -> Upstream {
    let queries = Arc::new(AtomicUsize::new(0));
    let count = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let out = upstream_answer(&req, false).to_vec().unwrap();
            let _ = udp.send_to(&out, from).await;
        }
    });
    let count = queries.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Ok(req) = Message::from_vec(&buf) else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let out = upstream_answer(&req, true).to_vec().unwrap();
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend(out);
                let _ = s.write_all(&framed).await;
            });
        }
    });
    Upstream { addr, queries }
}
