//! The nftables backend on a real kernel: traffic between namespaces this test creates,
//! through a table programmed in a "node" namespace. Needs root; fails without it.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::nftables::{Nftables, NftablesConfig};
use skiff_proxy::model::{Endpoint, Protocol, ProxyState, ServicePort, changed_service_ports};
use support::scenarios::{
    self, NODE_NAME, NODE_PORT, answer, cluster_ip, endpoint, name, state, sync,
};
use support::*;

const CLUSTER_IP6: &str = "fd00:96::10";

fn dataplane(topology: &Topology) -> Nftables {
    let mut cfg = NftablesConfig::new(topology.table());
    cfg.nft_command = topology.nft_command();
    cfg.cluster_cidr = Some(CLUSTER_CIDRS.parse().unwrap());
    cfg.node_port_addresses = vec![NODE_IP.parse().unwrap(), NODE_IP6.parse().unwrap()];
    cfg.conntrack_command = topology.conntrack_command();
    cfg.node_name = Some(NODE_NAME.to_string());
    Nftables::new(cfg)
}

#[tokio::test]
async fn cluster_ip_balances_tcp_and_udp_over_the_backends() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    scenarios::cluster_ip_balances_tcp_and_udp_over_the_backends(&mut nft, &topology).await?;

    nft.cleanup().await?;
    let listed = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &topology.node,
            "nft",
            "list",
            "table",
            "ip",
        ])
        .arg(topology.table())
        .output()?;
    ensure!(!listed.status.success(), "cleanup left the table");
    Ok(())
}

#[tokio::test]
async fn a_restart_replaces_the_table_left_by_an_earlier_run() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::a_restart_replaces_the_rules_left_by_an_earlier_run(
        &mut dataplane(&topology),
        &mut dataplane(&topology),
        &topology,
    )
    .await
}

#[tokio::test]
async fn an_endpoint_change_is_reflected_within_a_second() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::an_endpoint_change_is_reflected_within_a_second(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn a_service_without_endpoints_refuses_connections() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::a_service_without_endpoints_refuses_connections(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn node_port_from_outside_the_node_is_masqueraded() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::node_port_from_outside_the_node_is_masqueraded(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn a_backend_reaching_itself_through_its_service_is_masqueraded() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::a_backend_reaching_itself_through_its_service_is_masqueraded(
        &mut dataplane(&topology),
        &topology,
    )
    .await
}

#[tokio::test]
async fn client_ip_affinity_keeps_a_client_on_one_backend() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::client_ip_affinity_keeps_a_client_on_one_backend(
        &mut dataplane(&topology),
        &topology,
    )
    .await
}

#[tokio::test]
async fn a_udp_flow_leaves_an_endpoint_that_is_removed() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::a_udp_flow_leaves_an_endpoint_that_is_removed(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn traffic_policy_local_keeps_traffic_on_this_node() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::traffic_policy_local_keeps_traffic_on_this_node(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn services_in_different_nat_tables_are_all_served() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let cfg = nft.config().clone();
    // Services named so that they land in at least three NAT tables.
    let mut state = ProxyState::default();
    let mut shards = HashSet::new();
    for i in 0..8 {
        let mut n = name(Protocol::Tcp);
        n.name = format!("web{i}");
        shards.insert(cfg.shard_of(&n.namespace, &n.name));
        let (mut port, _) = state_port();
        port.cluster_ips = vec![format!("10.96.1.{}", i + 1).parse().unwrap()];
        let backend = if i % 2 == 0 { BACKEND1_IP } else { BACKEND2_IP };
        state.services.insert(n, (port, vec![endpoint(backend)]));
    }
    ensure!(shards.len() >= 3, "only {shards:?}");
    sync(&mut nft, &ProxyState::default(), &state).await?;
    for i in 0..8 {
        let addr: SocketAddr = format!("10.96.1.{}:80", i + 1).parse()?;
        let (who, _) = answer(tcp_request(&topology.client, addr)?)?;
        let expected = if i % 2 == 0 { "backend1" } else { "backend2" };
        ensure!(who == expected, "web{i} answered by {who}");
    }
    // One Service changes (only its table is rewritten): it moves, the others stay.
    let mut next = state.clone();
    for (n, (_, eps)) in next.services.iter_mut() {
        if n.name == "web0" {
            *eps = vec![endpoint(BACKEND2_IP)];
        }
    }
    sync(&mut nft, &state, &next).await?;
    let (who, _) = answer(tcp_request(&topology.client, "10.96.1.1:80".parse()?)?)?;
    ensure!(who == "backend2", "web0 answered by {who}");
    let (who, _) = answer(tcp_request(&topology.client, "10.96.1.3:80".parse()?)?)?;
    ensure!(who == "backend1", "web2 answered by {who}");
    Ok(())
}

/// The port of `web` (TCP) as [`state`] builds it.
fn state_port() -> (ServicePort, Vec<Endpoint>) {
    state(&[]).services.remove(&name(Protocol::Tcp)).unwrap()
}

/// `web` as a dual-stack Service: both cluster IPs, and every backend by both addresses.
fn dual_stack(backends: &[(&str, &str)]) -> ProxyState {
    let v4: Vec<&str> = backends.iter().map(|(v4, _)| *v4).collect();
    let mut state = state(&v4);
    for (port, eps) in state.services.values_mut() {
        port.cluster_ips.push(CLUSTER_IP6.parse().unwrap());
        eps.extend(backends.iter().map(|(_, v6)| endpoint(v6)));
    }
    state
}

fn cluster_ip6() -> SocketAddr {
    format!("[{CLUSTER_IP6}]:80").parse().unwrap()
}

#[tokio::test]
async fn a_dual_stack_service_serves_ipv6_cluster_ip_node_port_and_rejects() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let both = [(BACKEND1_IP, BACKEND1_IP6), (BACKEND2_IP, BACKEND2_IP6)];
    let desired = dual_stack(&both);
    let stats = nft
        .sync(&desired, &desired.services.keys().cloned().collect())
        .await?;
    ensure!(stats.full);

    // IPv6 ClusterIP, TCP and UDP: both backends, reached by their IPv6 addresses, and the
    // client (inside the IPv6 pod range) keeps its address.
    let mut seen = HashSet::new();
    for _ in 0..30 {
        let (who, peer) = answer(tcp_request(&topology.client, cluster_ip6())?)?;
        ensure!(peer == CLIENT_IP6, "IPv6 client seen as {peer}");
        seen.insert(who);
    }
    ensure!(seen.len() == 2, "IPv6 TCP reached only {seen:?}");
    let mut seen = HashSet::new();
    for _ in 0..30 {
        let (who, peer) = answer(udp_request(&topology.client, cluster_ip6())?)?;
        ensure!(peer == CLIENT_IP6, "IPv6 UDP client seen as {peer}");
        seen.insert(who);
    }
    ensure!(seen.len() == 2, "IPv6 UDP reached only {seen:?}");
    // The IPv4 cluster IP of the same Service still goes to IPv4 endpoints.
    let (_, peer) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(peer == CLIENT_IP, "IPv4 client seen as {peer}");

    // NodePort on the node's IPv6 address, from outside: served and masqueraded to the
    // node's IPv6 address on the backend's link.
    let node_port: SocketAddr = format!("[{NODE_IP6}]:{NODE_PORT}").parse()?;
    for _ in 0..10 {
        let (who, peer) = answer(tcp_request(&topology.outside, node_port)?)?;
        let node_side = if who == "backend1" {
            "fd00:244:2::1"
        } else {
            "fd00:244:3::1"
        };
        ensure!(peer == node_side, "IPv6 NodePort client seen as {peer}");
    }
    let udp_node_port: SocketAddr = format!("[{NODE_IP6}]:{}", NODE_PORT + 1).parse()?;
    answer(udp_request(&topology.outside, udp_node_port)?)?;

    // A backend reaching itself through the IPv6 ClusterIP is masqueraded (hairpin).
    let mut only_one = dual_stack(&[(BACKEND1_IP, BACKEND1_IP6)]);
    sync(&mut nft, &desired, &only_one).await?;
    let (who, peer) = answer(tcp_request(&topology.backend1, cluster_ip6())?)?;
    ensure!(
        who == "backend1" && peer == "fd00:244:2::1",
        "IPv6 hairpin: {who} saw {peer}"
    );

    // No IPv6 endpoints (the IPv4 ones stay): IPv6 is refused at once, by ICMPv6, on the
    // ClusterIP and the NodePort, while IPv4 is still served.
    let v4_only = only_one.clone();
    for (_, eps) in only_one.services.values_mut() {
        eps.retain(|e| e.ip.is_ipv4());
    }
    sync(&mut nft, &v4_only, &only_one).await?;
    let start = Instant::now();
    match tcp_request(&topology.client, cluster_ip6())? {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => bail!("expected IPv6 connection refused, got {other:?}"),
    }
    // Refused, not timed out: the ICMPv6 error comes back. Over veth it arrives while the
    // client's own connect() still holds the socket, and Linux then keeps it as a soft
    // error (TcpExtLockDroppedIcmps), so the refusal lands on the SYN's first retransmission
    // at one second; a drop would run into the two-second timeout instead.
    ensure!(
        start.elapsed() < Duration::from_millis(1800),
        "IPv6 refusal took {:?}",
        start.elapsed()
    );
    match tcp_request(&topology.outside, node_port)? {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => bail!("expected IPv6 NodePort connection refused, got {other:?}"),
    }
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1", "IPv4 answered by {who}");

    nft.cleanup().await?;
    for family in ["ip", "ip6"] {
        let listed = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &topology.node,
                "nft",
                "list",
                "table",
                family,
            ])
            .arg(topology.table())
            .output()?;
        ensure!(!listed.status.success(), "cleanup left the {family} table");
    }
    Ok(())
}

#[tokio::test]
async fn an_ipv6_udp_flow_leaves_an_endpoint_that_is_removed() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let both = dual_stack(&[(BACKEND1_IP, BACKEND1_IP6), (BACKEND2_IP, BACKEND2_IP6)]);
    sync(&mut nft, &ProxyState::default(), &both).await?;
    let flow = UdpFlow::open(&topology.client, cluster_ip6())?;
    let (first, _) = answer(flow.send()?)?;
    let remaining = if first == "backend1" {
        (BACKEND2_IP, BACKEND2_IP6)
    } else {
        (BACKEND1_IP, BACKEND1_IP6)
    };
    let fewer = dual_stack(&[remaining]);
    sync(&mut nft, &both, &fewer).await?;
    let (next, _) = answer(flow.send()?)?;
    ensure!(
        next != first,
        "the IPv6 flow still reaches the removed endpoint {first}"
    );
    Ok(())
}

#[tokio::test]
async fn ipv6_affinity_and_local_policy_work_like_ipv4() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let plain = dual_stack(&[(BACKEND1_IP, BACKEND1_IP6), (BACKEND2_IP, BACKEND2_IP6)]);
    let mut sticky = plain.clone();
    for (port, eps) in sticky.services.values_mut() {
        port.affinity = Some(Duration::from_secs(600));
        port.external_local = true;
        port.external_ips = vec!["2001:db8::7".parse().unwrap()];
        for e in eps.iter_mut() {
            let here = [BACKEND1_IP, BACKEND1_IP6].contains(&e.ip.to_string().as_str());
            e.node_name = Some(if here { NODE_NAME } else { "node-b" }.to_string());
        }
    }
    sync(&mut nft, &ProxyState::default(), &sticky).await?;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        seen.insert(answer(tcp_request(&topology.client, cluster_ip6())?)?.0);
    }
    ensure!(
        seen.len() == 1,
        "with affinity the IPv6 client reached {seen:?}"
    );

    // externalTrafficPolicy Local over IPv6: only this node's backend, client address kept.
    let node_port: SocketAddr = format!("[{NODE_IP6}]:{NODE_PORT}").parse()?;
    for _ in 0..5 {
        let (who, peer) = answer(tcp_request(&topology.outside, node_port)?)?;
        ensure!(
            who == "backend1" && peer == OUTSIDE_IP6,
            "IPv6 Local NodePort: {who} saw {peer}"
        );
    }
    // Back to plain, incrementally.
    let stats = nft
        .sync(&plain, &changed_service_ports(&sticky, &plain))
        .await?;
    ensure!(!stats.full);
    let mut seen = HashSet::new();
    for _ in 0..30 {
        seen.insert(answer(tcp_request(&topology.client, cluster_ip6())?)?.0);
    }
    ensure!(
        seen.len() == 2,
        "without affinity IPv6 reached only {seen:?}"
    );
    Ok(())
}
