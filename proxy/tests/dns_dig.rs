//! Cluster DNS on a loopback port, asked by Debian's `dig` for every record type, with
//! names outside the cluster forwarded to a small test DNS server on another loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use common::dig;
use common::upstream::{Upstream, start_upstream};
use skiff_proxy::dns::store::{EndpointAddress, PortSpec, ServiceKind, ServiceRecord, SliceRecord};
use skiff_proxy::dns::{ClusterData, DnsConfig, DnsHandle, serve_with_data};

// ---- the cluster -------------------------------------------------------------------------

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port(name: &str, protocol: &str, port: i32) -> PortSpec {
    PortSpec {
        name: name.into(),
        protocol: protocol.into(),
        port,
    }
}

fn cluster() -> ClusterData {
    let mut d = ClusterData::new();
    d.add_namespace("ns");
    d.upsert_service(
        "ns",
        "web",
        ServiceRecord {
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.10")]),
            ports: vec![port("http", "tcp", 80)],
        },
    );
    d.upsert_service(
        "ns",
        "db",
        ServiceRecord {
            kind: ServiceKind::Headless,
            ports: vec![port("pg", "tcp", 5432)],
        },
    );
    d.upsert_slice(
        "ns",
        "db-1",
        SliceRecord {
            service: "db".into(),
            addresses: vec![
                EndpointAddress {
                    ip: ip("10.0.0.1"),
                    hostname: Some("db-0".into()),
                },
                EndpointAddress {
                    ip: ip("10.0.0.2"),
                    hostname: Some("db-1".into()),
                },
            ],
            ports: vec![port("pg", "tcp", 5432)],
        },
    );
    d.upsert_service(
        "ns",
        "ext",
        ServiceRecord {
            kind: ServiceKind::ExternalName("upstream.test.".into()),
            ports: vec![],
        },
    );
    d.set_synced(true);
    d
}

async fn start(upstream: &Upstream) -> DnsHandle {
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams: vec![upstream.addr],
        ..DnsConfig::default()
    };
    serve_with_data(Arc::new(RwLock::new(cluster())), config)
        .await
        .unwrap()
}

// ---- the tests -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_every_cluster_record_type() {
    let upstream = start_upstream().await;
    let dns = start(&upstream).await;
    let at = dns.local_addr();

    let a = dig(at, &["web.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.status, "NOERROR");
    assert!(a.flags.contains(&"aa".to_string()), "{a:?}");
    assert_eq!(a.answers("A"), ["10.96.0.10"]);
    assert_eq!(a.answer[0][1], "5", "TTL");

    let a = dig(at, &["+tcp", "web.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("A"), ["10.96.0.10"]);

    let a = dig(at, &["web.ns.svc.cluster.local", "AAAA"]).await;
    assert_eq!(a.status, "NOERROR");
    assert!(a.answer.is_empty() && a.has_soa(), "{a:?}");

    let a = dig(at, &["db.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("A"), ["10.0.0.1", "10.0.0.2"]);
    let a = dig(at, &["db-1.db.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("A"), ["10.0.0.2"]);

    let a = dig(at, &["_http._tcp.web.ns.svc.cluster.local", "SRV"]).await;
    assert_eq!(a.answers("SRV"), ["0 100 80 web.ns.svc.cluster.local."]);
    assert!(
        a.additional
            .iter()
            .any(|r| r[0] == "web.ns.svc.cluster.local." && r[4] == "10.96.0.10")
    );
    let a = dig(at, &["_pg._tcp.db.ns.svc.cluster.local", "SRV"]).await;
    assert_eq!(
        a.answers("SRV"),
        [
            "0 50 5432 db-0.db.ns.svc.cluster.local.",
            "0 50 5432 db-1.db.ns.svc.cluster.local."
        ]
    );

    let a = dig(at, &["-x", "10.96.0.10"]).await;
    assert_eq!(a.answers("PTR"), ["web.ns.svc.cluster.local."]);
    let a = dig(at, &["-x", "10.0.0.1"]).await;
    assert_eq!(a.answers("PTR"), ["db-0.db.ns.svc.cluster.local."]);

    // ExternalName: the CNAME, and the target's address from upstream.
    let a = dig(at, &["ext.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("CNAME"), ["upstream.test."]);
    assert_eq!(a.answers("A"), ["192.0.2.7"]);
    let a = dig(at, &["ext.ns.svc.cluster.local", "CNAME"]).await;
    assert_eq!(a.answers("CNAME"), ["upstream.test."]);

    let a = dig(at, &["dns-version.cluster.local", "TXT"]).await;
    assert_eq!(a.answers("TXT"), ["\"1.1.0\""]);
    let a = dig(at, &["cluster.local", "SOA"]).await;
    assert_eq!(a.answers("SOA").len(), 1);

    let a = dig(at, &["missing.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.status, "NXDOMAIN");
    assert!(a.has_soa(), "{a:?}");
    let a = dig(at, &["_nope._tcp.web.ns.svc.cluster.local", "SRV"]).await;
    assert_eq!(a.status, "NXDOMAIN");
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_cluster_go_upstream_and_are_cached() {
    let upstream = start_upstream().await;
    let dns = start(&upstream).await;
    let at = dns.local_addr();

    let a = dig(at, &["upstream.test", "A"]).await;
    assert_eq!(a.status, "NOERROR");
    assert!(a.flags.contains(&"ra".to_string()), "{a:?}");
    assert!(!a.flags.contains(&"aa".to_string()), "{a:?}");
    assert_eq!(a.answers("A"), ["192.0.2.7"]);
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);

    // Again, from the cache: upstream is not asked, and the TTL is no longer than it said.
    let a = dig(at, &["UPSTREAM.test", "A"]).await;
    assert_eq!(a.answers("A"), ["192.0.2.7"]);
    let ttl: u32 = a.answer[0][1].parse().unwrap();
    assert!(ttl <= 30, "TTL {ttl} above the cache's 30 s cap");
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);

    // Upstream's NXDOMAIN passes through (and is cached for its SOA's 30 s).
    let a = dig(at, &["nope.test", "A"]).await;
    assert_eq!(a.status, "NXDOMAIN");
    let before = upstream.queries.load(Ordering::SeqCst);
    dig(at, &["nope.test", "A"]).await;
    assert_eq!(upstream.queries.load(Ordering::SeqCst), before);

    // Too big for UDP upstream: fetched over TCP; too big for dig's UDP buffer: truncated,
    // and dig's own retry over TCP gets all of it.
    let a = dig(at, &["big.test", "TXT"]).await;
    assert_eq!(a.answers("TXT").len(), 40, "{a:?}");
    let a = dig(at, &["+notcp", "+ignore", "big.test", "TXT"]).await;
    assert!(a.flags.contains(&"tc".to_string()), "{a:?}");

    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_come_from_resolv_conf() {
    // A resolv.conf naming a loopback address nothing listens on: forwarding fails with
    // SERVFAIL, while cluster names are still answered.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "search example.org\nnameserver 127.0.0.254\n").unwrap();
    let config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        resolv_conf: path,
        upstream_timeout: std::time::Duration::from_millis(300),
        ..DnsConfig::default()
    };
    let dns = serve_with_data(Arc::new(RwLock::new(cluster())), config)
        .await
        .unwrap();
    let at = dns.local_addr();
    let a = dig(at, &["upstream.test", "A"]).await;
    assert_eq!(a.status, "SERVFAIL");
    let a = dig(at, &["web.ns.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("A"), ["10.96.0.10"]);
    dns.shutdown().await;

    let missing = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        resolv_conf: dir.path().join("absent"),
        ..DnsConfig::default()
    };
    let err = serve_with_data(Arc::new(RwLock::new(cluster())), missing)
        .await
        .err()
        .expect("a missing resolv.conf is an error");
    assert!(err.to_string().contains("absent"), "{err}");
}
