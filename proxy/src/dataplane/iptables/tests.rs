//! `plan()` without a kernel: the text of full and incremental syncs.

use std::time::Duration;

use super::*;
use crate::dataplane::fixtures::{ep, name, port, state};
use crate::model::{Endpoint, Protocol, changed_service_ports};

fn on(ip: &str, node: &str) -> Endpoint {
    let mut e = ep(ip);
    e.node_name = Some(node.into());
    e
}

fn cfg() -> IptablesConfig {
    IptablesConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        node_name: Some("here".into()),
        node_port_addresses: vec!["192.168.1.10".parse().unwrap()],
        ..IptablesConfig::default()
    }
}

/// A backend that believes `state` is programmed.
fn synced(state: &ProxyState) -> Iptables {
    let mut ipt = Iptables::new(cfg());
    let plan = ipt.plan(state, &BTreeSet::new(), &Existing::default());
    ipt.commit(plan);
    ipt
}

fn incremental(old: &ProxyState, new: &ProxyState) -> Plan {
    synced(old).plan(new, &changed_service_ports(old, new), &Existing::default())
}

fn svc(n: &str) -> String {
    service_chain(&name(n))
}

fn sep(n: &str, ep: &str) -> String {
    endpoint_chain(&name(n), &format!("{ep}:8080"))
}

/// The lines of `text` that mention `needle`.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn a_full_sync_writes_every_chain_and_the_jumps() {
    let s = state(&[
        ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
        ("b", "10.96.0.2", &[]),
    ]);
    let ipt = Iptables::new(cfg());
    assert!(ipt.needs_full_sync());
    let plan = ipt.plan(&s, &BTreeSet::new(), &Existing::default());
    assert!(plan.full);
    let t = &plan.text;
    assert!(t.starts_with("*nat\n:SKIFF-"), "{t}");
    // Declared in reverse name order, which iptables-nft inserts fastest.
    let declared: Vec<&str> = t
        .lines()
        .take_while(|l| *l != "*filter")
        .filter(|l| l.starts_with(':'))
        .collect();
    let mut sorted = declared.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(declared, sorted);
    assert_eq!(
        declared.len(),
        4 + 3,
        "fixed and dispatch chains, a's three"
    );
    let (a, a1, a2) = (svc("a"), sep("a", "10.244.0.1"), sep("a", "10.244.0.2"));
    for line in [
        format!(":{a} - [0:0]"),
        format!(":{a1} - [0:0]"),
        "-I PREROUTING 1 -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES"
            .to_string(),
        "-I OUTPUT 1 -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES".to_string(),
        "-I POSTROUTING 1 -m comment --comment \"skiff postrouting rules\" -j SKIFF-POSTROUTING"
            .to_string(),
        "-A SKIFF-MARK-MASQ -j MARK --or-mark 0x4000".to_string(),
        "-A SKIFF-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN".to_string(),
        "-A SKIFF-POSTROUTING -j MASQUERADE --random-fully".to_string(),
        format!(
            "-A SKIFF-SERVICES -m comment --comment \"default/a:http cluster IP\" -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j {a}"
        ),
        "-A SKIFF-SERVICES -m comment --comment \"skiff node ports; must be last\" -d 192.168.1.10/32 -j SKIFF-NODEPORTS".to_string(),
        format!(
            "-A {a} -d 10.96.0.1/32 -p tcp -m tcp --dport 80 ! -s 10.244.0.0/16 -j SKIFF-MARK-MASQ"
        ),
        format!("-A {a} -m statistic --mode random --probability 0.5000000000 -j {a1}"),
        format!("-A {a} -j {a2}"),
        format!("-A {a1} -s 10.244.0.1/32 -j SKIFF-MARK-MASQ"),
        format!("-A {a1} -p tcp -j DNAT --to-destination 10.244.0.1:8080"),
        "*filter".to_string(),
        "-I FORWARD 1 -m conntrack --ctstate NEW -m comment --comment \"skiff services without endpoints\" -j SKIFF-SERVICES".to_string(),
        "-I INPUT 1 -m conntrack --ctstate NEW -m comment --comment \"skiff external services without endpoints\" -j SKIFF-EXTERNAL-SERVICES".to_string(),
        "-A SKIFF-SERVICES -m comment --comment \"default/b:http has no endpoints\" -d 10.96.0.2/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable".to_string(),
    ] {
        assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
    }
    // A Service without endpoints has no chain in nat.
    assert!(!t.contains(&svc("b")), "{t}");
    assert_eq!(t.matches("COMMIT\n").count(), 2);
    let mut ipt = ipt;
    ipt.commit(plan);
    // 2 fixed chains (4 rules) + 9 jumps, 2 dispatch lines + the node-port tail, 1 reject,
    // 3 rules in the service chain and 2 in each endpoint chain.
    assert_eq!(ipt.rules(), 4 + 9 + 2 + 1 + 3 + 4);
}

#[test]
fn an_unchanged_state_needs_no_restore() {
    let s = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    let ipt = synced(&s);
    assert_eq!(
        ipt.plan(&s, &BTreeSet::new(), &Existing::default()).text,
        ""
    );
    // Named as changed but the same rules: still nothing.
    let all = s.services.keys().cloned().collect();
    assert_eq!(ipt.plan(&s, &all, &Existing::default()).text, "");
}

#[test]
fn an_endpoint_change_writes_only_that_services_chains() {
    let old = state(&[
        ("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"]),
        ("b", "10.96.0.2", &["10.244.0.9"]),
    ]);
    let new = state(&[
        ("a", "10.96.0.1", &["10.244.0.2", "10.244.0.3"]),
        ("b", "10.96.0.2", &["10.244.0.9"]),
    ]);
    let plan = incremental(&old, &new);
    assert!(!plan.full);
    let (a, gone, kept, added) = (
        svc("a"),
        sep("a", "10.244.0.1"),
        sep("a", "10.244.0.2"),
        sep("a", "10.244.0.3"),
    );
    // The kept endpoint's chain (and so its affinity list) is not touched; the dispatch
    // chains did not change and are not written; the filter table is not touched.
    let text = &plan.text;
    assert!(text.starts_with("*nat\n"), "{text}");
    assert!(!text.contains("*filter"), "{text}");
    assert!(!text.contains("SKIFF-SERVICES"), "{text}");
    assert!(!text.contains(&format!(":{kept} ")), "{text}");
    assert!(!text.contains(&format!("-A {kept} ")), "{text}");
    assert!(!text.contains(&svc("b")), "{text}");
    assert_eq!(
        lines_with(text, &gone),
        [format!(":{gone} - [0:0]"), format!("-X {gone}")]
    );
    assert!(text.contains(&format!(
        "-A {a} -m statistic --mode random --probability 0.5000000000 -j "
    )));
    assert!(text.contains(&format!(
        "-A {added} -p tcp -j DNAT --to-destination 10.244.0.3:8080\n"
    )));
    assert!(text.ends_with(&format!("-X {gone}\nCOMMIT\n")), "{text}");
}

#[test]
fn a_removed_service_loses_its_jump_before_its_chains() {
    let old = state(&[
        ("a", "10.96.0.1", &["10.244.0.1"]),
        ("b", "10.96.0.2", &["10.244.0.2"]),
    ]);
    let new = state(&[("b", "10.96.0.2", &["10.244.0.2"])]);
    let mut ipt = synced(&old);
    let plan = ipt.plan(
        &new,
        &changed_service_ports(&old, &new),
        &Existing::default(),
    );
    let (a, a1) = (svc("a"), sep("a", "10.244.0.1"));
    let text = plan.text.clone();
    assert!(!text.contains("*filter"), "{text}");
    // SKIFF-SERVICES is rewritten without a's line (b's and the node-port tail stay).
    assert!(text.contains(":SKIFF-SERVICES - [0:0]\n"), "{text}");
    assert_eq!(lines_with(&text, "-A SKIFF-SERVICES ").len(), 2, "{text}");
    assert!(!text.contains(&format!("-j {a}")), "{text}");
    let x_a = text.find(&format!("-X {a}\n")).unwrap();
    let x_a1 = text.find(&format!("-X {a1}\n")).unwrap();
    let last_rule = text.rfind("-A ").unwrap();
    assert!(last_rule < x_a && last_rule < x_a1, "{text}");
    ipt.commit(plan);
    assert_eq!(
        ipt.programmed.as_ref().unwrap(),
        synced(&new).programmed.as_ref().unwrap()
    );
}

#[test]
fn losing_every_endpoint_moves_the_service_to_the_reject_chain() {
    let mut old = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    old.services.get_mut(&name("a")).unwrap().0.node_port = Some(30080);
    let mut new = old.clone();
    new.services.get_mut(&name("a")).unwrap().1.clear();
    let text = incremental(&old, &new).text;
    let filter = &text[text.find("*filter\n").unwrap()..];
    assert!(filter.contains(
        "-A SKIFF-SERVICES -m comment --comment \"default/a:http has no endpoints\" -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\n"
    ), "{text}");
    // The NodePort is refused on the configured node address only.
    assert!(filter.contains(
        "-A SKIFF-EXTERNAL-SERVICES -m comment --comment \"default/a:http has no endpoints\" -d 192.168.1.10/32 -p tcp -m tcp --dport 30080 -j REJECT --reject-with icmp-port-unreachable\n"
    ), "{text}");
    // Its nat chains go, and with them its lines in the nat dispatch chains.
    assert!(text.contains(&format!("-X {}\n", svc("a"))));
    assert!(text.contains(&format!("-X {}\n", external_chain(&name("a")))));
    assert!(text.contains(":SKIFF-NODEPORTS - [0:0]\n"));
    assert!(lines_with(&text, "-A SKIFF-NODEPORTS").is_empty());
}

#[test]
fn node_ports_and_external_addresses_go_through_the_external_chain_and_are_marked() {
    let mut s = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    {
        let p = &mut s.services.get_mut(&name("a")).unwrap().0;
        p.node_port = Some(30080);
        p.external_ips = vec!["192.0.2.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        p.load_balancer_ips = vec!["198.51.100.1".parse().unwrap()];
    }
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &Existing::default())
        .text;
    let ext = external_chain(&name("a"));
    for line in [
        format!(
            "-A SKIFF-SERVICES -m comment --comment \"default/a:http external IP\" -d 192.0.2.1/32 -p tcp -m tcp --dport 80 -j {ext}"
        ),
        format!(
            "-A SKIFF-SERVICES -m comment --comment \"default/a:http load balancer IP\" -d 198.51.100.1/32 -p tcp -m tcp --dport 80 -j {ext}"
        ),
        format!(
            "-A SKIFF-NODEPORTS -m comment --comment \"default/a:http node port\" -p tcp -m tcp --dport 30080 -j {ext}"
        ),
        format!("-A {ext} -j SKIFF-MARK-MASQ"),
        format!("-A {ext} -j {}", svc("a")),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!text.contains("fd00"), "IPv6 addresses are skipped: {text}");
    // The node-port jump is the last rule of SKIFF-SERVICES.
    let services = lines_with(&text, "-A SKIFF-SERVICES ");
    assert!(services.last().unwrap().ends_with("-j SKIFF-NODEPORTS"));
}

#[test]
fn client_ip_affinity_checks_and_records_per_endpoint_lists() {
    let mut s = state(&[("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"])]);
    s.services.get_mut(&name("a")).unwrap().0.affinity = Some(Duration::from_secs(600));
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &Existing::default())
        .text;
    let (a, a1, a2) = (svc("a"), sep("a", "10.244.0.1"), sep("a", "10.244.0.2"));
    let chain: Vec<&str> = lines_with(&text, &format!("-A {a} "));
    assert_eq!(
        chain,
        [
            format!(
                "-A {a} -d 10.96.0.1/32 -p tcp -m tcp --dport 80 ! -s 10.244.0.0/16 -j SKIFF-MARK-MASQ"
            ),
            format!("-A {a} -m recent --name {a1} --rcheck --seconds 600 --reap -j {a1}"),
            format!("-A {a} -m recent --name {a2} --rcheck --seconds 600 --reap -j {a2}"),
            format!("-A {a} -m statistic --mode random --probability 0.5000000000 -j {a1}"),
            format!("-A {a} -j {a2}"),
        ]
    );
    assert!(text.contains(&format!(
        "-A {a1} -p tcp -m recent --name {a1} --set -j DNAT --to-destination 10.244.0.1:8080\n"
    )));
}

#[test]
fn external_traffic_policy_local_picks_this_nodes_endpoints_unmarked() {
    let mut s = ProxyState::default();
    let mut p = port("10.96.0.1");
    p.node_port = Some(30080);
    p.external_local = true;
    s.services.insert(
        name("a"),
        (p, vec![on("10.244.0.1", "here"), on("10.244.0.2", "there")]),
    );
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &Existing::default())
        .text;
    let ext = external_chain(&name("a"));
    assert_eq!(
        lines_with(&text, &format!("-A {ext} ")),
        [format!("-A {ext} -j {}", sep("a", "10.244.0.1"))]
    );
    // Cluster traffic still reaches both.
    assert_eq!(lines_with(&text, &format!("-A {} ", svc("a"))).len(), 3);

    // Every local endpoint gone (one elsewhere remains): NodePort traffic is dropped.
    let mut remote = s.clone();
    remote.services.get_mut(&name("a")).unwrap().1.remove(0);
    let text = incremental(&s, &remote).text;
    assert!(text.contains(
        "-A SKIFF-EXTERNAL-SERVICES -m comment --comment \"default/a:http has no local endpoints\" -d 192.168.1.10/32 -p tcp -m tcp --dport 30080 -j DROP\n"
    ), "{text}");
    assert!(text.contains(&format!("-X {ext}\n")), "{text}");

    // All endpoints local: external traffic goes through the cluster chain, whose
    // masquerade rule matches the ClusterIP only, so the client's address is kept.
    let mut all_here = s.clone();
    all_here.services.get_mut(&name("a")).unwrap().1.remove(1);
    let text = Iptables::new(cfg())
        .plan(&all_here, &BTreeSet::new(), &Existing::default())
        .text;
    assert_eq!(
        lines_with(&text, &format!("-A {ext} ")),
        [format!("-A {ext} -j {}", svc("a"))]
    );
}

#[test]
fn internal_traffic_policy_local_limits_cluster_traffic_to_this_node() {
    let mut s = ProxyState::default();
    let mut p = port("10.96.0.1");
    p.internal_local = true;
    s.services.insert(
        name("a"),
        (
            p.clone(),
            vec![on("10.244.0.1", "here"), on("10.244.0.2", "there")],
        ),
    );
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &Existing::default())
        .text;
    let a = svc("a");
    assert_eq!(
        lines_with(&text, &format!("-A {a} -j ")),
        [format!("-A {a} -j {}", sep("a", "10.244.0.1"))]
    );
    assert!(
        !text.contains(&sep("a", "10.244.0.2")),
        "an endpoint nobody picks has no chain"
    );

    let mut remote = ProxyState::default();
    remote
        .services
        .insert(name("a"), (p, vec![on("10.244.0.2", "there")]));
    let text = incremental(&s, &remote).text;
    assert!(text.contains(
        "-A SKIFF-SERVICES -m comment --comment \"default/a:http has no local endpoints\" -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j DROP\n"
    ), "{text}");
}

#[test]
fn every_endpoint_chain_masquerades_its_own_hairpin_traffic() {
    let s = state(&[("a", "10.96.0.1", &["10.244.0.1", "10.244.0.2"])]);
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &Existing::default())
        .text;
    for ip in ["10.244.0.1", "10.244.0.2"] {
        let chain = sep("a", ip);
        assert_eq!(
            lines_with(&text, &format!("-A {chain} ")).first().copied(),
            Some(format!("-A {chain} -s {ip}/32 -j SKIFF-MARK-MASQ").as_str())
        );
    }
}

#[test]
fn a_full_sync_replaces_what_an_earlier_run_left() {
    let s = state(&[("a", "10.96.0.1", &["10.244.0.1"])]);
    let mut existing = Existing::default();
    existing.parse(
        Table::Nat,
        &format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:SKIFF-SERVICES - [0:0]\n:SKIFF-SVC-OLD - [0:0]\n:{} - [0:0]\n\
             -A PREROUTING -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES\n\
             -A PREROUTING -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES\n\
             -A POSTROUTING -j SKIFF-GONE\n\
             -A MINE -j SKIFF-SERVICES\n\
             -A OUTPUT -j SKIFF-SERVICES\n\
             -A SKIFF-SERVICES -j SKIFF-SVC-OLD\nCOMMIT\n",
            svc("a")
        ),
    );
    existing.parse(Table::Filter, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
    let text = Iptables::new(cfg())
        .plan(&s, &BTreeSet::new(), &existing)
        .text;
    let nat = &text[..text.find("*filter").unwrap()];
    // One jump from PREROUTING stays, the duplicate and the jump to a chain we do not
    // want go, the missing jumps are added.
    assert_eq!(
        lines_with(nat, "PREROUTING"),
        ["-D PREROUTING -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES"]
    );
    assert!(nat.contains("-D POSTROUTING -j SKIFF-GONE\n"));
    assert!(
        !nat.contains("MINE"),
        "someone else's jump to a chain that stays is kept"
    );
    assert!(nat.contains(
        "-I POSTROUTING 1 -m comment --comment \"skiff postrouting rules\" -j SKIFF-POSTROUTING\n"
    ));
    // Another shape of our jump is replaced by the current one.
    assert!(nat.contains("-D OUTPUT -j SKIFF-SERVICES\n"));
    assert!(nat.contains(
        "-I OUTPUT 1 -m comment --comment \"skiff service portals\" -j SKIFF-SERVICES\n"
    ));
    assert_eq!(
        lines_with(nat, "SKIFF-SVC-OLD"),
        [":SKIFF-SVC-OLD - [0:0]", "-X SKIFF-SVC-OLD"]
    );
    assert!(!nat.contains(&format!("-X {}", svc("a"))));
}

#[test]
fn cleanup_removes_jumps_then_chains() {
    let mut existing = Existing::default();
    existing.parse(
        Table::Filter,
        "*filter\n:SKIFF-SERVICES - [0:0]\n-A INPUT -m conntrack --ctstate NEW -j SKIFF-SERVICES\nCOMMIT\n",
    );
    assert_eq!(
        cleanup_text(&existing),
        "*filter\n:SKIFF-SERVICES - [0:0]\n-D INPUT -m conntrack --ctstate NEW -j SKIFF-SERVICES\n-X SKIFF-SERVICES\nCOMMIT\n"
    );
    assert_eq!(cleanup_text(&Existing::default()), "");
}

#[test]
fn incremental_syncs_keep_the_same_record_as_a_full_rebuild() {
    let mut s0 = state(&[
        ("a", "10.96.0.1", &["10.244.0.1"]),
        ("b", "10.96.0.2", &["10.244.0.1", "10.244.0.2"]),
    ]);
    s0.services.get_mut(&name("a")).unwrap().0.external_ips = vec!["192.0.2.1".parse().unwrap()];
    let mut s1 = s0.clone();
    s1.services.remove(&name("a"));
    let mut s2 = s1.clone();
    s2.services.insert(name("a"), (port("10.96.0.1"), vec![]));
    let mut s3 = s2.clone();
    {
        let (p, eps) = s3.services.get_mut(&name("b")).unwrap();
        p.affinity = Some(Duration::from_secs(60));
        p.node_port = Some(30080);
        p.external_local = true;
        eps[0].node_name = Some("here".into());
    }
    let mut s4 = s3.clone();
    s4.services.get_mut(&name("b")).unwrap().1[0].node_name = None;
    let mut s5 = s4.clone();
    s5.services.get_mut(&name("b")).unwrap().0.internal_local = true;

    let mut ipt = synced(&s0);
    let mut previous = s0.clone();
    for next in [s1, s2, s3, s4, s5, s0] {
        let plan = ipt.plan(
            &next,
            &changed_service_ports(&previous, &next),
            &Existing::default(),
        );
        assert!(!plan.full);
        ipt.commit(plan);
        assert_eq!(ipt.programmed, synced(&next).programmed);
        assert_eq!(ipt.rules(), synced(&next).rules());
        previous = next;
    }
}

#[test]
fn udp_changes_ask_for_stale_flows_to_be_deleted() {
    let udp = |eps: &[&str]| {
        let mut s = ProxyState::default();
        let mut n = name("dns");
        n.protocol = Protocol::Udp;
        let mut p = port("10.96.0.10");
        p.port = 53;
        s.services
            .insert(n, (p, eps.iter().map(|e| ep(e)).collect()));
        s
    };
    let old = udp(&["10.244.0.1", "10.244.0.2"]);
    let new = udp(&["10.244.0.2"]);
    assert_eq!(
        incremental(&old, &new).conntrack,
        [Flush::ToEndpoint {
            address: Some("10.96.0.10".parse().unwrap()),
            port: Some(53),
            endpoint: "10.244.0.1".parse().unwrap(),
        }]
    );
}
