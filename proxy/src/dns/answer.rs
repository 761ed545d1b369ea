//! How a query is answered from [`ClusterData`], the way CoreDNS's kubernetes plugin answers
//! it with the default kubeadm Corefile (`pods insecure`, reverse zones that fall through).
//!
//! Names under the cluster zone:
//! - `svc.ns.svc.<zone>`: a ClusterIP Service's cluster IPs; a headless Service's ready
//!   endpoint addresses; an ExternalName Service's CNAME.
//! - `ep.svc.ns.svc.<zone>`: one endpoint of any Service, by hostname or dashed IP.
//! - `_port._proto.svc.ns.svc.<zone>`: SRV (and A/AAAA) for a named port.
//! - `a-b-c-d.ns.pod.<zone>`: the address written in the name (`pods insecure`).
//! - `dns-version.<zone>` TXT, the apex SOA and NS.
//!
//! A name that exists without records of the queried type is NOERROR with no answers (NODATA);
//! one that does not exist is NXDOMAIN; both carry the zone's SOA. Reverse names answer PTR
//! for cluster IPs and ready endpoint addresses and go upstream otherwise, as does every name
//! outside the zone.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::store::{ClusterData, PortSpec, ServiceKind};

/// CoreDNS's default TTL for cluster records.
pub const TTL: u32 = 5;
/// The schema version `dns-version.<zone>` answers, and its TTL.
const SCHEMA_VERSION: &str = "1.1.0";
const SCHEMA_VERSION_TTL: u32 = 28800;
/// How many CNAMEs inside the zone are followed before giving up.
const MAX_CNAME_DEPTH: usize = 8;

/// The cluster zone and what its apex says of itself.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Lowercase, fully qualified (`cluster.local.`).
    name: Name,
    /// Addresses the zone's nameserver (`ns.dns.<zone>`) is reached at.
    nameservers: Vec<IpAddr>,
}

impl Zone {
    pub fn new(domain: &str, nameservers: Vec<IpAddr>) -> Result<Self, hickory_proto::ProtoError> {
        let mut name = Name::from_ascii(domain)?.to_lowercase();
        name.set_fqdn(true);
        Ok(Self { name, nameservers })
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    fn child(&self, labels: &[&str]) -> Option<Name> {
        let mut text = labels.join(".");
        text.push('.');
        Name::from_ascii(text).ok()?.append_domain(&self.name).ok()
    }

    fn ns_name(&self) -> Option<Name> {
        self.child(&["ns", "dns"])
    }
}

/// What to do with a query.
#[derive(Debug)]
pub enum Resolution {
    /// Not ours: ask the upstream resolvers.
    Forward,
    /// Answered here, authoritatively.
    Answer(Answer),
}

/// An authoritative answer.
#[derive(Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The target of an ExternalName CNAME outside the zone: its records of the queried type
    /// are to be looked up upstream and appended. When that lookup fails, the CNAME is
    /// dropped and the answer becomes NODATA, as CoreDNS does.
    pub chase: Option<Name>,
}

/// The zone's SOA record (authority of every negative answer).
pub fn soa(data: &ClusterData, zone: &Zone) -> Record {
    let mname = zone.ns_name().unwrap_or_else(|| zone.name.clone());
    let rname = zone
        .child(&["hostmaster"])
        .unwrap_or_else(|| zone.name.clone());
    Record::from_rdata(
        zone.name.clone(),
        TTL,
        RData::SOA(SOA::new(
            mname,
            rname,
            data.serial(),
            7200,
            1800,
            86400,
            TTL,
        )),
    )
}

/// Answers `qname`/`qtype` from `data`.
pub fn resolve(data: &ClusterData, zone: &Zone, qname: &Name, qtype: RecordType) -> Resolution {
    let lower = qname.to_lowercase();
    if zone.name.zone_of(&lower) {
        let labels = relative_labels(&lower, &zone.name);
        return Resolution::Answer(in_zone(data, zone, qname, &labels, qtype));
    }
    if qtype == RecordType::PTR
        && let Some(records) = reverse(data, zone, qname)
    {
        return Resolution::Answer(Answer {
            answers: records,
            ..Answer::default()
        });
    }
    Resolution::Forward
}

fn relative_labels(name: &Name, zone: &Name) -> Vec<String> {
    let total = name.iter().count();
    let ours = zone.iter().count();
    name.iter()
        .take(total.saturating_sub(ours))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// The name does not exist (NXDOMAIN).
#[derive(Debug, PartialEq, Eq)]
struct NotFound;

/// Where a name leads: an address or, for ExternalName, another name.
#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    Name(Name),
}

/// One thing a name stands for, with the port (-1: none) and the name SRV targets at.
#[derive(Debug, Clone)]
struct Entry {
    host: Host,
    port: i32,
    target: Name,
}

fn in_zone(
    data: &ClusterData,
    zone: &Zone,
    qname: &Name,
    labels: &[String],
    qtype: RecordType,
) -> Answer {
    let mut additionals = Vec::new();
    let mut chase = None;
    let found: Result<Vec<Record>, NotFound> =
        match qtype {
            RecordType::SOA => Ok(if labels.is_empty() {
                vec![soa(data, zone)]
            } else {
                Vec::new()
            }),
            RecordType::NS if labels.is_empty() => {
                let mut records = Vec::new();
                if let Some(ns) = zone.ns_name() {
                    records.push(Record::from_rdata(
                        qname.clone(),
                        TTL,
                        RData::NS(NS(ns.clone())),
                    ));
                    additionals.extend(zone.nameservers.iter().map(|ip| address(&ns, *ip)));
                }
                Ok(records)
            }
            RecordType::TXT => {
                if labels.len() == 1 && labels[0] == "dns-version" {
                    Ok(vec![Record::from_rdata(
                        qname.clone(),
                        SCHEMA_VERSION_TTL,
                        RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                    )])
                } else {
                    match find(data, zone, qname, labels) {
                        Ok(entries) if !entries.is_empty() => Ok(Vec::new()),
                        _ => Err(NotFound),
                    }
                }
            }
            RecordType::A | RecordType::AAAA => {
                addresses(data, zone, qname, labels, qtype, 0).map(|(records, c)| {
                    chase = c;
                    records
                })
            }
            RecordType::CNAME => find(data, zone, qname, labels).map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|e| match e.host {
                        Host::Name(target) => Some(Record::from_rdata(
                            qname.clone(),
                            TTL,
                            RData::CNAME(CNAME(target)),
                        )),
                        Host::Ip(_) => None,
                    })
                    .collect()
            }),
            RecordType::SRV => find(data, zone, qname, labels).map(|entries| {
                let (records, extra) = srv(qname, entries);
                additionals = extra;
                records
            }),
            RecordType::PTR => find(data, zone, qname, labels).map(|entries| {
                let mut seen = HashSet::new();
                entries
                    .into_iter()
                    .filter_map(|e| match e.host {
                        Host::Name(target) if seen.insert(target.clone()) => Some(
                            Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(target))),
                        ),
                        _ => None,
                    })
                    .collect()
            }),
            _ => find(data, zone, qname, labels).map(|_| Vec::new()),
        };
    match found {
        Ok(answers) if !answers.is_empty() => Answer {
            rcode: ResponseCode::NoError,
            answers,
            authority: Vec::new(),
            additionals,
            chase,
        },
        Ok(_) => Answer {
            rcode: ResponseCode::NoError,
            authority: vec![soa(data, zone)],
            ..Answer::default()
        },
        Err(NotFound) => Answer {
            // Before the first listing a missing name proves nothing.
            rcode: if data.synced() {
                ResponseCode::NXDomain
            } else {
                ResponseCode::ServFail
            },
            authority: vec![soa(data, zone)],
            ..Answer::default()
        },
    }
}

/// A/AAAA records for a name; CNAMEs of ExternalName Services are followed inside the zone
/// and handed back as `chase` outside it.
fn addresses(
    data: &ClusterData,
    zone: &Zone,
    qname: &Name,
    labels: &[String],
    qtype: RecordType,
    depth: usize,
) -> Result<(Vec<Record>, Option<Name>), NotFound> {
    let entries = find(data, zone, qname, labels)?;
    let mut records = Vec::new();
    let mut chase = None;
    let mut seen = HashSet::new();
    for e in entries {
        match e.host {
            Host::Ip(ip) => {
                let family_ok = match qtype {
                    RecordType::A => ip.is_ipv4(),
                    _ => ip.is_ipv6(),
                };
                if family_ok && seen.insert(ip) {
                    records.push(address(qname, ip));
                }
            }
            Host::Name(target) => {
                if target.to_lowercase() == qname.to_lowercase() {
                    continue;
                }
                let cname =
                    Record::from_rdata(qname.clone(), TTL, RData::CNAME(CNAME(target.clone())));
                let lower = target.to_lowercase();
                if zone.name.zone_of(&lower) {
                    if depth >= MAX_CNAME_DEPTH {
                        continue;
                    }
                    let next = relative_labels(&lower, &zone.name);
                    if let Ok((more, next_chase)) =
                        addresses(data, zone, &target, &next, qtype, depth + 1)
                        && !more.is_empty()
                    {
                        records.push(cname);
                        records.extend(more);
                        chase = chase.or(next_chase);
                    }
                } else {
                    records.push(cname);
                    chase = Some(target);
                }
            }
        }
    }
    Ok((records, chase))
}

fn address(name: &Name, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), TTL, rdata)
}

/// SRV records (and their targets' addresses as additionals). Every entry weighs the same,
/// so each gets 100/n (at least 1), priority 0; entries without a port give no SRV.
fn srv(qname: &Name, entries: Vec<Entry>) -> (Vec<Record>, Vec<Record>) {
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| matches!(e.host, Host::Ip(_)))
        .collect();
    let weight = if entries.is_empty() {
        1
    } else {
        ((100.0 / entries.len() as f64).floor() as u16).max(1)
    };
    let mut records = Vec::new();
    let mut extra = Vec::new();
    let mut seen_srv = HashSet::new();
    let mut seen_addr = HashSet::new();
    for e in entries {
        let Host::Ip(ip) = e.host else { continue };
        let Ok(port) = u16::try_from(e.port) else {
            continue;
        };
        if seen_srv.insert((e.target.clone(), port)) {
            records.push(Record::from_rdata(
                qname.clone(),
                TTL,
                RData::SRV(SRV::new(0, weight, port, e.target.clone())),
            ));
        }
        if seen_addr.insert((e.target.clone(), ip)) {
            extra.push(address(&e.target, ip));
        }
    }
    (records, extra)
}

/// What a name in the zone stands for.
fn find(
    data: &ClusterData,
    zone: &Zone,
    qname: &Name,
    labels: &[String],
) -> Result<Vec<Entry>, NotFound> {
    if labels.len() == 2 && labels[0] == "ns" && labels[1] == "dns" {
        return Ok(zone
            .nameservers
            .iter()
            .map(|ip| Entry {
                host: Host::Ip(*ip),
                port: -1,
                target: qname.to_lowercase(),
            })
            .collect());
    }
    let n = labels.len();
    // The apex, `svc.<zone>` and `pod.<zone>` exist, empty.
    if n == 0 || (n == 1 && (labels[0] == "svc" || labels[0] == "pod")) {
        return Ok(Vec::new());
    }
    let kind = labels[n - 1].as_str();
    if (kind != "svc" && kind != "pod") || n > 5 {
        return Err(NotFound);
    }
    let ns = labels[n - 2].as_str();
    if !data.has_namespace(ns) {
        return Err(NotFound);
    }
    if n == 2 {
        return Ok(Vec::new());
    }
    let name = labels[n - 3].as_str();
    let (endpoint, port, proto) = match n {
        4 => (Some(labels[0].as_str()), None, None),
        5 => (
            None,
            Some(strip_underscore(&labels[0])),
            Some(strip_underscore(&labels[1])),
        ),
        _ => (None, None, None),
    };
    if kind == "pod" {
        return pod(zone, ns, name);
    }
    let Some(service) = data.service(ns, name) else {
        return Err(NotFound);
    };
    let service_name = zone.child(&[name, ns, "svc"]).ok_or(NotFound)?;
    let mut out = Vec::new();
    let mut found = false;
    match &service.kind {
        ServiceKind::ExternalName(target) => {
            // An IP written as an external name is not a CNAME target; nothing answers it.
            if endpoint.is_some() || target.trim_end_matches('.').parse::<IpAddr>().is_ok() {
                return Err(NotFound);
            }
            let target = Name::from_ascii(target).map_err(|_| NotFound)?;
            out.push(Entry {
                host: Host::Name(target),
                port: -1,
                target: service_name,
            });
            found = true;
        }
        kind if *kind == ServiceKind::Headless || endpoint.is_some() => {
            for slice in data.slices(ns, name) {
                for addr in &slice.addresses {
                    let label = addr.label();
                    if endpoint.is_some_and(|e| !e.eq_ignore_ascii_case(&label)) {
                        continue;
                    }
                    let Some(target) = zone.child(&[&label, name, ns, "svc"]) else {
                        continue;
                    };
                    for p in &slice.ports {
                        if !port_matches(port, proto, p) {
                            continue;
                        }
                        found = true;
                        out.push(Entry {
                            host: Host::Ip(addr.ip),
                            port: p.port,
                            target: target.clone(),
                        });
                    }
                }
            }
        }
        ServiceKind::ClusterIp(ips) => {
            for p in &service.ports {
                if !port_matches(port, proto, p) {
                    continue;
                }
                found = true;
                out.extend(ips.iter().map(|ip| Entry {
                    host: Host::Ip(*ip),
                    port: p.port,
                    target: service_name.clone(),
                }));
            }
        }
        ServiceKind::Headless => {}
    }
    if found { Ok(out) } else { Err(NotFound) }
}

/// `a-b-c-d.ns.pod.<zone>` (or an IPv6 address with dashes for colons) stands for that
/// address in any existing namespace, as with `pods insecure`.
fn pod(zone: &Zone, ns: &str, name: &str) -> Result<Vec<Entry>, NotFound> {
    let text = if name.matches('-').count() == 3 && !name.contains("--") {
        name.replace('-', ".")
    } else {
        name.replace('-', ":")
    };
    let ip: IpAddr = text.parse().map_err(|_| NotFound)?;
    let target = zone.child(&[name, ns, "pod"]).ok_or(NotFound)?;
    Ok(vec![Entry {
        host: Host::Ip(ip),
        port: -1,
        target,
    }])
}

fn strip_underscore(label: &str) -> &str {
    label.strip_prefix('_').unwrap_or(label)
}

/// An empty or missing port/protocol in the question matches any.
fn port_matches(port: Option<&str>, proto: Option<&str>, spec: &PortSpec) -> bool {
    let port_ok = port.is_none_or(|p| p.is_empty() || p.eq_ignore_ascii_case(&spec.name));
    let proto_ok = proto.is_none_or(|p| p.is_empty() || p.eq_ignore_ascii_case(&spec.protocol));
    port_ok && proto_ok
}

/// PTR records for a reverse name: the Service whose cluster IP it is, or else every ready
/// endpoint with that address. None when the address is not the cluster's.
fn reverse(data: &ClusterData, zone: &Zone, qname: &Name) -> Option<Vec<Record>> {
    let net = qname.to_lowercase().parse_arpa_name().ok()?;
    let ip = net.addr();
    let full = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if net.prefix_len() != full {
        return None;
    }
    let ptr = |target: Name| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(target)));
    if let Some((ns, name)) = data.services_with_ip(&ip).next() {
        return Some(vec![ptr(zone.child(&[name, ns, "svc"])?)]);
    }
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    for (ns, service) in data.endpoint_owners(&ip) {
        for slice in data.slices(ns, service) {
            for addr in slice.addresses.iter().filter(|a| a.ip == ip) {
                if let Some(target) = zone.child(&[&addr.label(), service, ns, "svc"])
                    && seen.insert(target.clone())
                {
                    records.push(ptr(target));
                }
            }
        }
    }
    (!records.is_empty()).then_some(records)
}
