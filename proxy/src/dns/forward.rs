//! Forwarding names outside the cluster to the node's upstream resolvers.
//!
//! Queries go over UDP (EDNS, 1232-byte buffer) and are retried over TCP when the answer is
//! truncated; each upstream is tried in turn until one answers. Answers are cached by TTL.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::DnsError;
use super::cache::Cache;

/// The UDP buffer size advertised upstream (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// The `nameserver` addresses of a resolv.conf, on port 53.
pub fn read_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DnsError::ResolvConf {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_resolv_conf(&text))
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // A scoped IPv6 address (`fe80::1%eth0`) keeps only the address.
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Why an upstream query failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    #[error("upstream {upstream}: {message}")]
    Upstream {
        upstream: SocketAddr,
        message: String,
    },
}

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Cache,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache: Cache) -> Self {
        Self {
            upstreams,
            timeout,
            cache,
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The answer to name/type/class from the cache or an upstream.
    pub async fn lookup(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
    ) -> Result<Message, ForwardError> {
        if let Some(m) = self.cache.get(name, qtype, class) {
            return Ok(m);
        }
        let mut last = ForwardError::NoUpstreams;
        for upstream in &self.upstreams {
            match self.ask(*upstream, name, qtype, class).await {
                Ok(mut m) => {
                    self.cache.put(name, qtype, class, &m);
                    self.cache.cap(&mut m);
                    return Ok(m);
                }
                Err(e) => {
                    tracing::debug!(%upstream, error = %e, "upstream query failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn ask(
        &self,
        upstream: SocketAddr,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
    ) -> Result<Message, ForwardError> {
        let fail = |message: String| ForwardError::Upstream { upstream, message };
        let id: u16 = rand::random();
        let mut query = Query::query(name.clone(), qtype);
        query.set_query_class(class);
        let mut request = Message::new(id, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = true;
        request.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        request.set_edns(edns);
        let bytes = request.to_vec().map_err(|e| fail(e.to_string()))?;

        let udp = tokio::time::timeout(self.timeout, udp_exchange(upstream, &bytes, id, &query))
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(fail)?;
        if !udp.metadata.truncation {
            return Ok(udp);
        }
        tokio::time::timeout(self.timeout, tcp_exchange(upstream, &bytes, id))
            .await
            .map_err(|_| fail("timed out over TCP".into()))?
            .map_err(fail)
    }
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, String> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(upstream).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // Anything that is not the answer to this question (a late answer to an earlier
        // one, a spoofing attempt) is ignored.
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
            && m.queries.first().is_some_and(|q| {
                q.name().eq_ignore_root(query.name()) && q.query_type() == query.query_type()
            })
        {
            return Ok(m);
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(bytes.len()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("answer with another id".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n\
                    nameserver  2001:db8::35 \noptions ndots:5\nnameserver bogus\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "[2001:db8::35]:53".parse().unwrap(),
            ]
        );
    }
}
