//! A measurement of cluster DNS on loopback: queries per second for Service names answered
//! from memory, and the latency distribution, with clients that keep one query each in
//! flight. Meant for `skiff bench dns`; the clients are plain threads in this process, so
//! they share the machine's cores with the server.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::store::{ClusterData, PortSpec, ServiceKind, ServiceRecord};
use super::{DnsConfig, DnsError, serve_with_data};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Services in the store (all ClusterIP, in namespace `bench`); queries cycle over them.
    pub services: usize,
    /// Concurrent clients, each with one query in flight.
    pub clients: usize,
    /// How long the measurement runs (after a short warm-up).
    pub duration: Duration,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            services: 1000,
            clients: 8,
            duration: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub services: usize,
    pub clients: usize,
    /// Queries answered (NOERROR with an answer) during the measurement.
    pub answered: u64,
    /// Queries that failed (timeout, wrong answer).
    pub failed: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} services, {} clients: {:.0} queries/s ({} answered, {} failed), p50 {:?}, p99 {:?}, max {:?}",
            self.services,
            self.clients,
            self.per_second,
            self.answered,
            self.failed,
            self.p50,
            self.p99,
            self.max
        )
    }
}

/// A store of `n` ClusterIP Services `svc-<i>.bench` with addresses in 10.96.0.0/16 and up.
pub fn synthetic_cluster(n: usize) -> ClusterData {
    let mut d = ClusterData::new();
    d.add_namespace("bench");
    for i in 0..n {
        let ip = service_ip(i);
        d.upsert_service(
            "bench",
            &format!("svc-{i}"),
            ServiceRecord {
                kind: ServiceKind::ClusterIp(vec![ip.into()]),
                ports: vec![PortSpec {
                    name: "http".into(),
                    protocol: "tcp".into(),
                    port: 80,
                }],
            },
        );
    }
    d.set_synced(true);
    d
}

/// Runs a server on 127.0.0.1 with a synthetic store and measures it.
pub async fn measure(config: BenchConfig) -> Result<BenchReport, DnsError> {
    let data = Arc::new(RwLock::new(synthetic_cluster(config.services.max(1))));
    let dns = serve_with_data(
        data,
        DnsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            // Nothing here goes upstream; an address that drops everything makes that visible.
            upstreams: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            ..DnsConfig::default()
        },
    )
    .await?;
    let report = measure_at(dns.local_addr(), &config).await;
    dns.shutdown().await;
    Ok(report)
}

/// The cluster IP `synthetic_cluster` gives Service `i`.
pub fn service_ip(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x0a60_0000u32 + 1 + i as u32)
}

/// The name `synthetic_cluster` gives Service `i`, as a query asks for it.
pub fn service_name(i: usize) -> String {
    format!("svc-{i}.bench.svc.cluster.local")
}

/// Measures any DNS server on `server` that answers A queries for
/// [`service_name`]`(0..config.services)`, with the same clients `measure` uses: how a
/// reference resolver is compared in the same run.
pub async fn measure_at(server: SocketAddr, config: &BenchConfig) -> BenchReport {
    let names: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..config.services.max(1))
            .filter_map(|i| {
                let name = Name::from_ascii(format!("{}.", service_name(i))).ok()?;
                let mut m = Message::new(0, MessageType::Query, OpCode::Query);
                m.metadata.recursion_desired = true;
                m.add_query(Query::query(name, RecordType::A));
                m.to_vec().ok()
            })
            .collect(),
    );
    let clients = config.clients.max(1);
    let duration = config.duration;
    let results = tokio::task::spawn_blocking(move || {
        let start = Instant::now() + Duration::from_millis(200);
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let names = names.clone();
                std::thread::spawn(move || client(server, &names, c, start, start + duration))
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();

    let mut latencies: Vec<Duration> = Vec::new();
    let mut failed = 0;
    for (l, f) in results {
        latencies.extend(l);
        failed += f;
    }
    latencies.sort();
    let pct = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    BenchReport {
        services: config.services,
        clients,
        answered: latencies.len() as u64,
        failed,
        per_second: latencies.len() as f64 / duration.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

/// One client: queries back to back until `end`; latencies of answers from `start` on.
fn client(
    server: SocketAddr,
    names: &[Vec<u8>],
    index: usize,
    start: Instant,
    end: Instant,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return (latencies, 1);
    };
    if socket.connect(server).is_err()
        || socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_err()
    {
        return (latencies, 1);
    }
    let mut buf = [0u8; 1500];
    let mut id: u16 = (index as u16).wrapping_mul(7919);
    let mut n = index;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut query = names[n % names.len()].clone();
        n = n.wrapping_add(1);
        id = id.wrapping_add(1);
        query[..2].copy_from_slice(&id.to_be_bytes());
        let sent = Instant::now();
        if socket.send(&query).is_err() {
            failed += 1;
            continue;
        }
        let ok = loop {
            match socket.recv(&mut buf) {
                // A late answer to an earlier (timed-out) query is skipped.
                Ok(len) if len >= 12 && buf[..2] != id.to_be_bytes() => continue,
                Ok(len) => {
                    let rcode = buf[3] & 0x0f;
                    let answers = u16::from_be_bytes([buf[6], buf[7]]);
                    break len >= 12 && rcode == 0 && answers > 0;
                }
                Err(_) => break false,
            }
        };
        if sent < start {
            continue;
        }
        if ok {
            latencies.push(sent.elapsed());
        } else {
            failed += 1;
        }
    }
    (latencies, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measures_answered_queries() {
        let report = measure(BenchConfig {
            services: 50,
            clients: 2,
            duration: Duration::from_millis(500),
        })
        .await
        .unwrap();
        assert!(report.answered > 0, "{report}");
        assert_eq!(report.failed, 0, "{report}");
        assert!(
            report.p50 <= report.p99 && report.p99 <= report.max,
            "{report}"
        );
    }
}
