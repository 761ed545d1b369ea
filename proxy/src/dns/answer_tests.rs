//! Every record type and negative answer, on a store built by hand.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::answer::{Answer, Resolution, TTL, Zone, resolve};
use super::store::{
    ClusterData, EndpointAddress, PortSpec, ServiceKind, ServiceRecord, SliceRecord,
};

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

fn addr(ip_: &str, hostname: Option<&str>) -> EndpointAddress {
    EndpointAddress {
        ip: ip(ip_),
        hostname: hostname.map(String::from),
    }
}

fn cluster() -> ClusterData {
    let mut d = ClusterData::new();
    for ns in ["ns", "empty-ns", "default"] {
        d.add_namespace(ns);
    }
    d.upsert_service(
        "ns",
        "web",
        ServiceRecord {
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.10")]),
            ports: vec![port("http", "tcp", 80), port("dns", "udp", 53)],
        },
    );
    d.upsert_slice(
        "ns",
        "web-1",
        SliceRecord {
            service: "web".into(),
            addresses: vec![addr("10.0.1.1", None), addr("10.0.1.2", None)],
            ports: vec![port("http", "tcp", 8080)],
        },
    );
    d.upsert_service(
        "ns",
        "plain",
        ServiceRecord {
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.12")]),
            ports: vec![port("", "tcp", 8000)],
        },
    );
    d.upsert_service(
        "ns",
        "dual",
        ServiceRecord {
            kind: ServiceKind::ClusterIp(vec![ip("10.96.0.11"), ip("fd00::11")]),
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
        "db-v4",
        SliceRecord {
            service: "db".into(),
            addresses: vec![
                addr("10.0.0.1", Some("db-0")),
                addr("10.0.0.2", Some("db-1")),
                addr("10.0.0.3", None),
            ],
            ports: vec![port("pg", "tcp", 5432)],
        },
    );
    d.upsert_slice(
        "ns",
        "db-v6",
        SliceRecord {
            service: "db".into(),
            addresses: vec![addr("fd00::1", Some("db-0"))],
            ports: vec![port("pg", "tcp", 5432)],
        },
    );
    d.upsert_service(
        "ns",
        "empty",
        ServiceRecord {
            kind: ServiceKind::Headless,
            ports: vec![],
        },
    );
    d.upsert_service(
        "ns",
        "noports",
        ServiceRecord {
            kind: ServiceKind::Headless,
            ports: vec![],
        },
    );
    d.upsert_slice(
        "ns",
        "noports-1",
        SliceRecord {
            service: "noports".into(),
            addresses: vec![addr("10.0.2.1", None)],
            ports: vec![port("", "", -1)],
        },
    );
    d.upsert_service(
        "ns",
        "ext",
        ServiceRecord {
            kind: ServiceKind::ExternalName("example.com.".into()),
            ports: vec![],
        },
    );
    d.upsert_service(
        "ns",
        "alias",
        ServiceRecord {
            kind: ServiceKind::ExternalName("web.ns.svc.cluster.local.".into()),
            ports: vec![],
        },
    );
    d.upsert_service(
        "ns",
        "ipname",
        ServiceRecord {
            kind: ServiceKind::ExternalName("192.0.2.1".into()),
            ports: vec![],
        },
    );
    d.set_synced(true);
    d.touch(1234);
    d
}

fn zone() -> Zone {
    Zone::new("cluster.local", vec![ip("10.96.0.53")]).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn ask_in(d: &ClusterData, q: &str, t: RecordType) -> Answer {
    match resolve(d, &zone(), &name(q), t) {
        Resolution::Answer(a) => a,
        Resolution::Forward => panic!("{q} {t} was forwarded"),
    }
}

fn ask(q: &str, t: RecordType) -> Answer {
    ask_in(&cluster(), q, t)
}

fn data(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

fn assert_positive(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(!a.answers.is_empty(), "no answers: {a:?}");
    assert!(a.authority.is_empty());
}

fn assert_nodata(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NoError, "{a:?}");
    assert!(a.answers.is_empty(), "{a:?}");
    assert_soa(a);
}

fn assert_nxdomain(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
    assert!(a.answers.is_empty());
    assert_soa(a);
}

fn assert_soa(a: &Answer) {
    assert_eq!(a.authority.len(), 1);
    let soa = &a.authority[0];
    assert_eq!(soa.name, name("cluster.local."));
    assert_eq!(soa.ttl, TTL);
    let RData::SOA(s) = &soa.data else {
        panic!("not a SOA: {soa:?}")
    };
    assert_eq!(s.mname, name("ns.dns.cluster.local."));
    assert_eq!(s.rname, name("hostmaster.cluster.local."));
    assert_eq!(
        (s.serial, s.refresh, s.retry, s.expire, s.minimum),
        (1234, 7200, 1800, 86400, 5)
    );
}

#[test]
fn cluster_ip_service_a_and_nodata_aaaa() {
    let a = ask("web.ns.svc.cluster.local.", RecordType::A);
    assert_positive(&a);
    assert_eq!(data(&a.answers), ["10.96.0.10"]);
    assert_eq!(a.answers[0].ttl, 5);
    assert_eq!(a.answers[0].name, name("web.ns.svc.cluster.local."));
    assert_nodata(&ask("web.ns.svc.cluster.local.", RecordType::AAAA));
}

#[test]
fn dual_stack_service_answers_both_families() {
    assert_eq!(
        data(&ask("dual.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.96.0.11"]
    );
    assert_eq!(
        data(&ask("dual.ns.svc.cluster.local.", RecordType::AAAA).answers),
        ["fd00::11"]
    );
}

#[test]
fn answers_keep_the_case_of_the_question() {
    let a = ask("Web.NS.svc.Cluster.Local.", RecordType::A);
    assert_eq!(data(&a.answers), ["10.96.0.10"]);
    assert!(
        a.answers[0]
            .name
            .eq_case(&name("Web.NS.svc.Cluster.Local."))
    );
}

#[test]
fn headless_service_answers_ready_endpoints() {
    let a = ask("db.ns.svc.cluster.local.", RecordType::A);
    assert_positive(&a);
    assert_eq!(data(&a.answers), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    assert_eq!(
        data(&ask("db.ns.svc.cluster.local.", RecordType::AAAA).answers),
        ["fd00::1"]
    );
    // Without ports declared, still the addresses.
    assert_eq!(
        data(&ask("noports.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.0.2.1"]
    );
}

#[test]
fn headless_service_without_endpoints_does_not_exist() {
    assert_nxdomain(&ask("empty.ns.svc.cluster.local.", RecordType::A));
}

#[test]
fn endpoint_names_by_hostname_or_dashed_ip() {
    assert_eq!(
        data(&ask("db-0.db.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.0.0.1"]
    );
    assert_eq!(
        data(&ask("db-0.db.ns.svc.cluster.local.", RecordType::AAAA).answers),
        ["fd00::1"]
    );
    assert_eq!(
        data(&ask("10-0-0-3.db.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.0.0.3"]
    );
    // Endpoints of a ClusterIP Service are named too.
    assert_eq!(
        data(&ask("10-0-1-2.web.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.0.1.2"]
    );
    // A name with a hostname is not also reachable by its IP.
    assert_nxdomain(&ask("10-0-0-1.db.ns.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("db-9.db.ns.svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("db-1.db.ns.svc.cluster.local.", RecordType::AAAA));
}

fn srv_fields(records: &[Record]) -> Vec<(u16, u16, u16, String)> {
    let mut v: Vec<_> = records
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => (s.priority, s.weight, s.port, s.target.to_string()),
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn srv_for_a_named_port_of_a_cluster_ip_service() {
    let a = ask("_http._tcp.web.ns.svc.cluster.local.", RecordType::SRV);
    assert_positive(&a);
    assert_eq!(
        srv_fields(&a.answers),
        [(0, 100, 80, "web.ns.svc.cluster.local.".into())]
    );
    assert_eq!(
        a.answers[0].name,
        name("_http._tcp.web.ns.svc.cluster.local.")
    );
    assert_eq!(a.additionals.len(), 1);
    assert_eq!(a.additionals[0].name, name("web.ns.svc.cluster.local."));
    assert_eq!(data(&a.additionals), ["10.96.0.10"]);
    // UDP port by its protocol.
    let a = ask("_dns._udp.web.ns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srv_fields(&a.answers),
        [(0, 100, 53, "web.ns.svc.cluster.local.".into())]
    );
    // The service name alone gives every port, weights shared.
    let a = ask("web.ns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srv_fields(&a.answers),
        [
            (0, 50, 53, "web.ns.svc.cluster.local.".into()),
            (0, 50, 80, "web.ns.svc.cluster.local.".into())
        ]
    );
    // The SRV name answers A too.
    assert_eq!(
        data(&ask("_http._tcp.web.ns.svc.cluster.local.", RecordType::A).answers),
        ["10.96.0.10"]
    );
}

#[test]
fn srv_for_a_headless_service_names_each_endpoint() {
    let a = ask("_pg._tcp.db.ns.svc.cluster.local.", RecordType::SRV);
    assert_positive(&a);
    // Four entries (db-0 twice, once per family) share the weight; db-0's SRV is given once.
    assert_eq!(
        srv_fields(&a.answers),
        [
            (0, 25, 5432, "10-0-0-3.db.ns.svc.cluster.local.".into()),
            (0, 25, 5432, "db-0.db.ns.svc.cluster.local.".into()),
            (0, 25, 5432, "db-1.db.ns.svc.cluster.local.".into()),
        ]
    );
    assert_eq!(
        data(&a.additionals),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1"]
    );
}

#[test]
fn srv_for_unknown_ports_does_not_exist() {
    assert_nxdomain(&ask(
        "_nope._tcp.web.ns.svc.cluster.local.",
        RecordType::SRV,
    ));
    assert_nxdomain(&ask(
        "_http._udp.web.ns.svc.cluster.local.",
        RecordType::SRV,
    ));
    // An unnamed port is only reached through the service name.
    let a = ask("plain.ns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srv_fields(&a.answers),
        [(0, 100, 8000, "plain.ns.svc.cluster.local.".into())]
    );
    // No ports at all: the name exists, without SRV.
    assert_nodata(&ask("noports.ns.svc.cluster.local.", RecordType::SRV));
}

#[test]
fn external_name_is_a_cname() {
    let a = ask("ext.ns.svc.cluster.local.", RecordType::A);
    assert_positive(&a);
    assert_eq!(data(&a.answers), ["example.com."]);
    assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(a.chase, Some(name("example.com.")));
    let a = ask("ext.ns.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(data(&a.answers), ["example.com."]);
    assert_eq!(a.chase, None);
    // No SRV for ExternalName, but the name exists.
    assert_nodata(&ask("ext.ns.svc.cluster.local.", RecordType::SRV));
    // Nor endpoints.
    assert_nxdomain(&ask("x.ext.ns.svc.cluster.local.", RecordType::A));
    // An IP is not a name to alias.
    assert_nxdomain(&ask("ipname.ns.svc.cluster.local.", RecordType::A));
}

#[test]
fn external_name_inside_the_zone_is_followed() {
    let a = ask("alias.ns.svc.cluster.local.", RecordType::A);
    assert_eq!(a.chase, None);
    assert_eq!(a.answers.len(), 2);
    assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(a.answers[1].name, name("web.ns.svc.cluster.local."));
    assert_eq!(data(&a.answers[1..]), ["10.96.0.10"]);
    // Nothing at the end of the chain: no CNAME either.
    assert_nodata(&ask("alias.ns.svc.cluster.local.", RecordType::AAAA));
}

fn ptr(q: &str) -> Resolution {
    resolve(&cluster(), &zone(), &name(q), RecordType::PTR)
}

fn ptr_targets(q: &str) -> Vec<String> {
    match ptr(q) {
        Resolution::Answer(a) => {
            assert_positive(&a);
            assert!(a.answers.iter().all(|r| r.ttl == TTL));
            data(&a.answers)
        }
        Resolution::Forward => panic!("{q} forwarded"),
    }
}

#[test]
fn ptr_for_cluster_ips_and_endpoints() {
    assert_eq!(
        ptr_targets("10.0.96.10.in-addr.arpa."),
        ["web.ns.svc.cluster.local."]
    );
    assert_eq!(
        ptr_targets("1.0.0.10.in-addr.arpa."),
        ["db-0.db.ns.svc.cluster.local."]
    );
    assert_eq!(
        ptr_targets("3.0.0.10.in-addr.arpa."),
        ["10-0-0-3.db.ns.svc.cluster.local."]
    );
    assert_eq!(
        ptr_targets("1.1.0.10.in-addr.arpa."),
        ["10-0-1-1.web.ns.svc.cluster.local."]
    );
    let v6 = "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(ptr_targets(v6), ["dual.ns.svc.cluster.local."]);
    // Addresses that are not the cluster's go upstream.
    assert!(matches!(
        ptr("1.2.0.192.in-addr.arpa."),
        Resolution::Forward
    ));
    assert!(matches!(ptr("0.10.in-addr.arpa."), Resolution::Forward));
    assert!(matches!(
        resolve(
            &cluster(),
            &zone(),
            &name("10.0.96.10.in-addr.arpa."),
            RecordType::A
        ),
        Resolution::Forward
    ));
}

#[test]
fn names_that_do_not_exist() {
    for q in [
        "missing.ns.svc.cluster.local.",
        "web.nons.svc.cluster.local.",
        "nons.svc.cluster.local.",
        "web.ns.other.cluster.local.",
        "foo.cluster.local.",
        "a.b._http._tcp.web.ns.svc.cluster.local.",
        "dns-version.cluster.local.",
    ] {
        assert_nxdomain(&ask(q, RecordType::A));
    }
    assert_nxdomain(&ask("missing.ns.svc.cluster.local.", RecordType::MX));
    assert_nxdomain(&ask("missing.ns.svc.cluster.local.", RecordType::TXT));
    assert_nxdomain(&ask("missing.ns.svc.cluster.local.", RecordType::SRV));
}

#[test]
fn names_that_exist_without_the_type() {
    for q in [
        "cluster.local.",
        "svc.cluster.local.",
        "pod.cluster.local.",
        "ns.svc.cluster.local.",
        "empty-ns.svc.cluster.local.",
    ] {
        assert_nodata(&ask(q, RecordType::A));
    }
    assert_nodata(&ask("web.ns.svc.cluster.local.", RecordType::MX));
    assert_nodata(&ask("web.ns.svc.cluster.local.", RecordType::TXT));
    assert_nodata(&ask("web.ns.svc.cluster.local.", RecordType::CNAME));
    assert_nodata(&ask("web.ns.svc.cluster.local.", RecordType::PTR));
    // SOA below the apex: NODATA whatever the name.
    assert_nodata(&ask("missing.ns.svc.cluster.local.", RecordType::SOA));
}

#[test]
fn apex_soa_ns_and_schema_version() {
    let a = ask("cluster.local.", RecordType::SOA);
    assert_positive(&a);
    assert_eq!(a.answers[0].record_type(), RecordType::SOA);
    let a = ask("cluster.local.", RecordType::NS);
    assert_eq!(data(&a.answers), ["ns.dns.cluster.local."]);
    assert_eq!(data(&a.additionals), ["10.96.0.53"]);
    assert_eq!(
        data(&ask("ns.dns.cluster.local.", RecordType::A).answers),
        ["10.96.0.53"]
    );
    let a = ask("dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(data(&a.answers), ["1.1.0"]);
    assert_eq!(a.answers[0].ttl, 28800);
}

#[test]
fn pod_names_stand_for_their_address() {
    assert_eq!(
        data(&ask("10-0-0-9.ns.pod.cluster.local.", RecordType::A).answers),
        ["10.0.0.9"]
    );
    assert_eq!(
        data(&ask("fd00--9.ns.pod.cluster.local.", RecordType::AAAA).answers),
        ["fd00::9"]
    );
    assert_nodata(&ask("10-0-0-9.ns.pod.cluster.local.", RecordType::AAAA));
    assert_nxdomain(&ask("10-0-0-9.nons.pod.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("not-an-ip.ns.pod.cluster.local.", RecordType::A));
}

#[test]
fn before_the_first_listing_missing_names_are_server_failures() {
    let mut d = cluster();
    d.set_synced(false);
    assert_eq!(
        ask_in(&d, "missing.ns.svc.cluster.local.", RecordType::A).rcode,
        ResponseCode::ServFail
    );
    assert_eq!(
        ask_in(&d, "web.ns.svc.cluster.local.", RecordType::A).rcode,
        ResponseCode::NoError
    );
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    for q in ["example.com.", "local.", "cluster.local.example.com."] {
        assert!(matches!(
            resolve(&cluster(), &zone(), &name(q), RecordType::A),
            Resolution::Forward
        ));
    }
}

#[test]
fn the_cluster_domain_is_a_parameter() {
    let z = Zone::new("corp.internal", vec![]).unwrap();
    let d = cluster();
    let Resolution::Answer(a) = resolve(&d, &z, &name("web.ns.svc.corp.internal."), RecordType::A)
    else {
        panic!("forwarded")
    };
    assert_eq!(data(&a.answers), ["10.96.0.10"]);
    assert!(matches!(
        resolve(&d, &z, &name("web.ns.svc.cluster.local."), RecordType::A),
        Resolution::Forward
    ));
}
