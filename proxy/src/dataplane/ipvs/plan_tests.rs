use std::time::Duration;

use super::*;
use crate::dataplane::fixtures::{ep, name, port, state};
use crate::dataplane::ipvs::companion::ipset_full;
use crate::model::changed_service_ports;

fn cfg() -> IpvsConfig {
    let mut c = IpvsConfig::new();
    c.node_name = Some("here".into());
    c
}

fn key(ip: &str, port: u16) -> ServiceKey {
    ServiceKey {
        addr: ip.parse().unwrap(),
        protocol: Protocol::Tcp,
        port,
    }
}

fn rr(persistence: Option<u32>) -> ServiceSpec {
    ServiceSpec {
        scheduler: "rr".into(),
        persistence,
    }
}

fn dest(ip: &str, weight: u32) -> Dest {
    Dest {
        addr: ip.parse().unwrap(),
        port: 8080,
        weight,
    }
}

fn first(cfg: &IpvsConfig, s: &ProxyState, kernel: Option<&KernelView>) -> Plan {
    plan(cfg, None, kernel, s, &BTreeSet::new())
}

/// The record after a first sync of `s` on an empty kernel.
fn synced(cfg: &IpvsConfig, s: &ProxyState) -> Record {
    commit(None, first(cfg, s, None))
}

fn next(cfg: &IpvsConfig, record: &Record, old: &ProxyState, new: &ProxyState) -> Plan {
    plan(
        cfg,
        Some(record),
        None,
        new,
        &changed_service_ports(old, new),
    )
}

fn entry(set: IpSet, e: &str) -> Entry {
    (set, e.to_string())
}

#[test]
fn the_first_sync_creates_every_virtual_server_and_binds_its_addresses() {
    let s = state(&[
        ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
        ("b", "10.96.0.2", &[]),
    ]);
    let p = first(&cfg(), &s, None);
    assert!(p.full);
    assert_eq!(
        p.requests,
        vec![
            Request::NewService(Service {
                key: key("10.96.0.1", 80),
                spec: rr(None)
            }),
            Request::NewDest(key("10.96.0.1", 80), dest("10.244.0.1", 1)),
            Request::NewDest(key("10.96.0.1", 80), dest("10.244.0.2", 1)),
            Request::NewService(Service {
                key: key("10.96.0.2", 80),
                spec: rr(None)
            }),
        ]
    );
    assert_eq!(
        p.add_addresses,
        vec![
            "10.96.0.1".parse::<Ipv4Addr>().unwrap(),
            "10.96.0.2".parse().unwrap()
        ]
    );
    // b has no endpoints: its address is rejected by the companion rules.
    let all = p.all_entries.clone().unwrap();
    let expected: BTreeSet<Entry> = [
        entry(IpSet::ClusterIp, "10.96.0.1,tcp:80"),
        entry(IpSet::ClusterIp, "10.96.0.2,tcp:80"),
        entry(IpSet::LoopBack, "10.244.0.1,tcp:8080,10.244.0.1"),
        entry(IpSet::LoopBack, "10.244.0.2,tcp:8080,10.244.0.2"),
        entry(IpSet::NoEndpoints, "10.96.0.2,tcp:80"),
    ]
    .into_iter()
    .collect();
    assert_eq!(all, expected);
    assert!(ipset_full(&all).contains("add SKIFF-NO-ENDPOINTS 10.96.0.2,tcp:80\n"));
    assert!(p.conntrack.is_empty());
    let record = commit(None, p);
    assert_eq!(record.size, 2 + 1 + 1);
    let unchanged = next(&cfg(), &record, &s, &s);
    assert!(unchanged.requests.is_empty() && unchanged.add_addresses.is_empty());
}

#[test]
fn the_first_sync_reconciles_with_the_kernel_and_leaves_others_alone() {
    let s = state(&[
        ("a", "10.96.0.1", &["10.244.0.1"]),
        ("b", "10.96.0.2", &["10.244.0.3"]),
    ]);
    let mut kernel = KernelView::default();
    // a is right already; b has a stale real server and the wrong scheduler.
    kernel.services.insert(
        key("10.96.0.1", 80),
        Wanted {
            spec: rr(None),
            dests: [(("10.244.0.1".parse().unwrap(), 8080), 1)].into(),
        },
    );
    kernel.services.insert(
        key("10.96.0.2", 80),
        Wanted {
            spec: ServiceSpec {
                scheduler: "wlc".into(),
                persistence: None,
            },
            dests: [(("10.244.0.9".parse().unwrap(), 8080), 1)].into(),
        },
    );
    // Ours (its address is on the device) but no longer wanted; and someone else's.
    kernel.services.insert(
        key("10.96.0.9", 53),
        Wanted {
            spec: rr(None),
            dests: Default::default(),
        },
    );
    kernel.services.insert(
        key("192.0.2.50", 80),
        Wanted {
            spec: rr(None),
            dests: Default::default(),
        },
    );
    kernel.device_addresses = vec!["10.96.0.1".parse().unwrap(), "10.96.0.9".parse().unwrap()];
    let p = first(&cfg(), &s, Some(&kernel));
    assert_eq!(
        p.requests,
        vec![
            Request::SetService(Service {
                key: key("10.96.0.2", 80),
                spec: rr(None)
            }),
            Request::DelDest(key("10.96.0.2", 80), dest("10.244.0.9", 1)),
            Request::NewDest(key("10.96.0.2", 80), dest("10.244.0.3", 1)),
            Request::DelService(key("10.96.0.9", 53)),
        ]
    );
    assert_eq!(
        p.add_addresses,
        vec!["10.96.0.2".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        p.del_addresses,
        vec!["10.96.0.9".parse::<Ipv4Addr>().unwrap()]
    );
}

#[test]
fn endpoint_changes_are_real_server_operations_only() {
    let old = state(&[
        ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
        ("b", "10.96.0.2", &["10.244.0.9"]),
    ]);
    let new = state(&[
        ("a", "10.96.0.1", &["10.244.0.2", "10.244.0.3"]),
        ("b", "10.96.0.2", &["10.244.0.9"]),
    ]);
    let record = synced(&cfg(), &old);
    let p = next(&cfg(), &record, &old, &new);
    assert!(!p.full);
    assert_eq!(
        p.requests,
        vec![
            Request::DelDest(key("10.96.0.1", 80), dest("10.244.0.1", 1)),
            Request::NewDest(key("10.96.0.1", 80), dest("10.244.0.3", 1)),
        ]
    );
    assert!(p.add_addresses.is_empty() && p.del_addresses.is_empty());
    assert_eq!(
        p.add_entries,
        vec![entry(IpSet::LoopBack, "10.244.0.3,tcp:8080,10.244.0.3")]
    );
    assert_eq!(
        p.del_entries,
        vec![entry(IpSet::LoopBack, "10.244.0.1,tcp:8080,10.244.0.1")]
    );
    let size = record.size;
    let record = commit(Some(record), p);
    assert_eq!(record.size, size);
    assert!(next(&cfg(), &record, &new, &new).requests.is_empty());
}

#[test]
fn affinity_makes_the_virtual_server_persistent() {
    let old = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    let mut new = old.clone();
    new.services.get_mut(&name("a")).unwrap().0.affinity = Some(Duration::from_secs(10800));
    let record = synced(&cfg(), &old);
    let p = next(&cfg(), &record, &old, &new);
    assert_eq!(
        p.requests,
        vec![Request::SetService(Service {
            key: key("10.96.0.1", 80),
            spec: rr(Some(10800))
        })]
    );
    let record = commit(Some(record), p);
    // And back: the flag goes again.
    let p = next(&cfg(), &record, &new, &old);
    assert_eq!(
        p.requests,
        vec![Request::SetService(Service {
            key: key("10.96.0.1", 80),
            spec: rr(None)
        })]
    );
}

#[test]
fn a_removed_service_is_deleted_and_its_address_leaves_the_device() {
    let old = state(&[("a", "10.96.0.1", &["10.244.0.1"]), ("b", "10.96.0.2", &[])]);
    let new = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    let record = synced(&cfg(), &old);
    let p = next(&cfg(), &record, &old, &new);
    assert_eq!(p.requests, vec![Request::DelService(key("10.96.0.2", 80))]);
    assert_eq!(
        p.del_addresses,
        vec!["10.96.0.2".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        p.del_entries,
        vec![
            entry(IpSet::ClusterIp, "10.96.0.2,tcp:80"),
            entry(IpSet::NoEndpoints, "10.96.0.2,tcp:80"),
        ]
    );
    let record = commit(Some(record), p);
    assert_eq!(record.size, 2);
    assert_eq!(record.addresses().count(), 1);
}

#[test]
fn an_address_shared_by_two_ports_stays_until_both_are_gone() {
    let mut old = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    let mut other = name("a");
    other.port = "https".into();
    let mut p443 = port("10.96.0.1");
    p443.port = 443;
    old.services
        .insert(other.clone(), (p443, vec![ep("10.244.0.1")]));
    let record = synced(&cfg(), &old);
    let mut new = old.clone();
    new.services.remove(&other);
    let p = next(&cfg(), &record, &old, &new);
    assert_eq!(p.requests, vec![Request::DelService(key("10.96.0.1", 443))]);
    assert!(p.del_addresses.is_empty());
}

#[test]
fn local_policies_send_external_traffic_to_this_nodes_endpoints_only() {
    let mut s = ProxyState::default();
    let mut p = port("10.96.0.1");
    p.external_ips = vec!["192.0.2.1".parse().unwrap()];
    p.load_balancer_ips = vec!["198.51.100.1".parse().unwrap()];
    p.external_local = true;
    let mut here = ep("10.244.0.1");
    here.node_name = Some("here".into());
    let mut there = ep("10.244.1.1");
    there.node_name = Some("there".into());
    s.services.insert(name("a"), (p, vec![here, there]));
    let plan = first(&cfg(), &s, None);
    let dests_of = |k: ServiceKey| -> Vec<Dest> {
        plan.requests
            .iter()
            .filter_map(|r| match r {
                Request::NewDest(key, d) if *key == k => Some(*d),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        dests_of(key("10.96.0.1", 80)),
        vec![dest("10.244.0.1", 1), dest("10.244.1.1", 1)]
    );
    assert_eq!(dests_of(key("192.0.2.1", 80)), vec![dest("10.244.0.1", 1)]);
    assert_eq!(
        dests_of(key("198.51.100.1", 80)),
        vec![dest("10.244.0.1", 1)]
    );
    // No masquerade for Local: the backend sees the client.
    let all = plan.all_entries.unwrap();
    assert!(
        !all.iter()
            .any(|(s, _)| matches!(s, IpSet::ExternalIp | IpSet::LoadBalancer))
    );

    // internalTrafficPolicy: Local with no endpoint here: the cluster IP has no real server.
    let mut s2 = s.clone();
    let entry_a = s2.services.get_mut(&name("a")).unwrap();
    entry_a.0.internal_local = true;
    entry_a.0.external_local = false;
    entry_a
        .1
        .retain(|e| e.node_name.as_deref() == Some("there"));
    let plan = first(&cfg(), &s2, None);
    let cluster: Vec<&Request> = plan
        .requests
        .iter()
        .filter(|r| matches!(r, Request::NewDest(k, _) if *k == key("10.96.0.1", 80)))
        .collect();
    assert!(cluster.is_empty(), "{:?}", plan.requests);
    assert!(plan.requests.contains(&Request::NewDest(
        key("192.0.2.1", 80),
        dest("10.244.1.1", 1)
    )));
}

#[test]
fn a_service_without_endpoints_gets_reject_entries_until_one_comes() {
    let mut old = ProxyState::default();
    let mut p = port("10.96.0.5");
    p.node_port = Some(30080);
    old.services.insert(name("a"), (p.clone(), vec![]));
    let mut c = cfg();
    c.node_port_addresses = vec!["192.168.1.10".parse().unwrap()];
    let plan = first(&c, &old, None);
    let all = plan.all_entries.unwrap();
    assert!(all.contains(&entry(IpSet::NoEndpoints, "10.96.0.5,tcp:80")));
    assert!(all.contains(&entry(IpSet::NoEndpoints, "192.168.1.10,tcp:30080")));
    let record = synced(&c, &old);
    let mut new = ProxyState::default();
    new.services.insert(name("a"), (p, vec![ep("10.244.0.1")]));
    let plan = next(&c, &record, &old, &new);
    assert_eq!(
        plan.del_entries,
        vec![
            entry(IpSet::NoEndpoints, "10.96.0.5,tcp:80"),
            entry(IpSet::NoEndpoints, "192.168.1.10,tcp:30080"),
        ]
    );
    assert_eq!(
        plan.requests,
        vec![
            Request::NewDest(key("10.96.0.5", 80), dest("10.244.0.1", 1)),
            Request::NewDest(key("192.168.1.10", 30080), dest("10.244.0.1", 1)),
        ]
    );
}

#[test]
fn node_ports_are_virtual_servers_on_every_node_address() {
    let mut s = ProxyState::default();
    let mut p = port("10.96.0.1");
    p.node_port = Some(30080);
    s.services.insert(name("a"), (p, vec![ep("10.244.0.1")]));
    let mut c = cfg();
    c.node_port_addresses = vec![
        "192.168.1.10".parse().unwrap(),
        "172.16.0.10".parse().unwrap(),
    ];
    let plan = first(&c, &s, None);
    let services: Vec<ServiceKey> = plan
        .requests
        .iter()
        .filter_map(|r| match r {
            Request::NewService(s) => Some(s.key),
            _ => None,
        })
        .collect();
    assert_eq!(
        services,
        vec![
            key("10.96.0.1", 80),
            key("172.16.0.10", 30080),
            key("192.168.1.10", 30080)
        ]
    );
    // Node addresses are the node's own: never bound to the dummy device.
    assert_eq!(
        plan.add_addresses,
        vec!["10.96.0.1".parse::<Ipv4Addr>().unwrap()]
    );
    assert!(
        plan.all_entries
            .unwrap()
            .contains(&entry(IpSet::NodePortTcp, "30080"))
    );

    // At the next start, a NodePort virtual server no longer wanted is ours to delete.
    let mut kernel = KernelView::default();
    kernel.services.insert(
        key("192.168.1.10", 31000),
        Wanted {
            spec: rr(None),
            dests: Default::default(),
        },
    );
    let plan = first(&c, &s, Some(&kernel));
    assert!(
        plan.requests
            .contains(&Request::DelService(key("192.168.1.10", 31000)))
    );
}

#[test]
fn terminating_tcp_endpoints_drain_at_weight_zero_and_udp_ones_go() {
    let old = state(&[("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"])]);
    let mut new = old.clone();
    {
        let eps = &mut new.services.get_mut(&name("a")).unwrap().1;
        eps[0].ready = false;
        eps[0].terminating = true;
    }
    let record = synced(&cfg(), &old);
    let p = next(&cfg(), &record, &old, &new);
    assert_eq!(
        p.requests,
        vec![Request::SetDest(
            key("10.96.0.1", 80),
            dest("10.244.0.1", 0)
        )]
    );
    let record = commit(Some(record), p);
    let gone = state(&[("a", "10.96.0.1", &["10.244.0.2"])]);
    let p = next(&cfg(), &record, &new, &gone);
    assert_eq!(
        p.requests,
        vec![Request::DelDest(
            key("10.96.0.1", 80),
            dest("10.244.0.1", 0)
        )]
    );

    // UDP: deleted at once, and its flows with it.
    let udp = |s: &ProxyState| -> ProxyState {
        let mut out = ProxyState::default();
        for (n, v) in &s.services {
            let mut n = n.clone();
            n.protocol = Protocol::Udp;
            out.services.insert(n, v.clone());
        }
        out
    };
    let (old, new) = (udp(&old), udp(&new));
    let record = synced(&cfg(), &old);
    let p = next(&cfg(), &record, &old, &new);
    let ukey = ServiceKey {
        protocol: Protocol::Udp,
        ..key("10.96.0.1", 80)
    };
    assert_eq!(
        p.requests,
        vec![Request::DelDest(ukey, dest("10.244.0.1", 1))]
    );
    assert_eq!(
        p.conntrack,
        vec![Flush::ToEndpoint {
            address: Some("10.96.0.1".parse().unwrap()),
            port: Some(80),
            endpoint: "10.244.0.1".parse().unwrap()
        }]
    );
}

#[test]
fn two_services_on_one_address_and_port_keep_the_first() {
    let mut s = ProxyState::default();
    let mut a = port("10.96.0.1");
    a.external_ips = vec!["192.0.2.1".parse().unwrap()];
    let mut b = port("10.96.0.2");
    b.external_ips = vec!["192.0.2.1".parse().unwrap()];
    s.services.insert(name("a"), (a, vec![ep("10.244.0.1")]));
    s.services
        .insert(name("b"), (b.clone(), vec![ep("10.244.0.2")]));
    let record = synced(&cfg(), &s);
    let shared = record
        .programmed()
        .find(|(k, _)| **k == key("192.0.2.1", 80))
        .map(|(_, w)| w.clone())
        .unwrap();
    assert_eq!(
        shared.dests.keys().next().unwrap().0.to_string(),
        "10.244.0.1"
    );
    // a goes: b takes the address over, the address stays on the device.
    let mut new = ProxyState::default();
    new.services.insert(name("b"), (b, vec![ep("10.244.0.2")]));
    let p = next(&cfg(), &record, &s, &new);
    assert_eq!(
        p.requests,
        vec![
            Request::DelService(key("10.96.0.1", 80)),
            Request::DelDest(key("192.0.2.1", 80), dest("10.244.0.1", 1)),
            Request::NewDest(key("192.0.2.1", 80), dest("10.244.0.2", 1)),
        ]
    );
    assert_eq!(
        p.del_addresses,
        vec!["10.96.0.1".parse::<Ipv4Addr>().unwrap()]
    );
}

#[test]
fn ipv6_only_services_are_left_out() {
    let s = state(&[("a", "fd00::1", &["fd00:1::1"])]);
    let p = first(&cfg(), &s, None);
    assert!(p.requests.is_empty());
    assert!(p.all_entries.unwrap().is_empty());
}

#[test]
fn one_change_among_ten_thousand_services_is_one_service_of_work() {
    let mut s = ProxyState::default();
    for i in 0..10_000u32 {
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        let ep_ip = format!("10.244.{}.{}", i / 250, i % 250 + 1);
        s.services
            .insert(name(&format!("svc-{i}")), (port(&ip), vec![ep(&ep_ip)]));
    }
    let c = cfg();
    let t = std::time::Instant::now();
    let p = first(&c, &s, None);
    let full = t.elapsed();
    assert_eq!(p.requests.len(), 20_000);
    let t = std::time::Instant::now();
    let bytes: usize = p
        .requests
        .iter()
        .map(|r| crate::dataplane::ipvs::netlink::encode(r, 36, 1).len())
        .sum();
    let encode = t.elapsed();
    let record = commit(None, p);
    let mut new = s.clone();
    new.services
        .get_mut(&name("svc-77"))
        .unwrap()
        .1
        .push(ep("10.250.0.1"));
    let changed = changed_service_ports(&s, &new);
    let t = std::time::Instant::now();
    let p = plan(&c, Some(&record), None, &new, &changed);
    let one = t.elapsed();
    assert_eq!(p.requests.len(), 1);
    eprintln!(
        "plan at 10,000 services: first sync {full:?} (encoding its {} requests: {bytes} bytes \
         in {encode:?}), one endpoint added {one:?}",
        20_000
    );
}
