//! The nftables backend on a real kernel: traffic between namespaces this test creates,
//! through a table programmed in a "node" namespace. Needs root; fails without it.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::nftables::{Nftables, NftablesConfig};
use skiff_proxy::model::{
    Endpoint, Protocol, ProxyState, ServicePort, ServicePortName, changed_service_ports,
};
use support::*;

const CLUSTER_IP: &str = "10.96.0.10";
const CLUSTER_IP6: &str = "fd00:96::10";
const NODE_PORT: u16 = 30080;
const NODE_NAME: &str = "node-a";

fn name(protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: "web".into(),
        port: protocol.as_str().into(),
        protocol,
    }
}

fn endpoint(ip: &str) -> Endpoint {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: BACKEND_PORT,
        ready: true,
        serving: true,
        terminating: false,
        node_name: None,
    }
}

/// `web` with a TCP and a UDP port (both NodePorts) served by `backends`.
fn state(backends: &[&str]) -> ProxyState {
    let mut state = ProxyState::default();
    for (protocol, node_port) in [(Protocol::Tcp, NODE_PORT), (Protocol::Udp, NODE_PORT + 1)] {
        let port = ServicePort {
            cluster_ips: vec![CLUSTER_IP.parse().unwrap()],
            port: 80,
            node_port: Some(node_port),
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
        };
        let eps = backends.iter().map(|b| endpoint(b)).collect();
        state.services.insert(name(protocol), (port, eps));
    }
    state
}

fn dataplane(topology: &Topology) -> Nftables {
    let mut cfg = NftablesConfig::new(topology.table());
    cfg.nft_command = topology.nft_command();
    cfg.cluster_cidr = Some(CLUSTER_CIDRS.parse().unwrap());
    cfg.node_port_addresses = vec![NODE_IP.parse().unwrap(), NODE_IP6.parse().unwrap()];
    cfg.conntrack_command = topology.conntrack_command();
    cfg.node_name = Some(NODE_NAME.to_string());
    Nftables::new(cfg)
}

async fn sync(nft: &mut Nftables, old: &ProxyState, new: &ProxyState) -> Result<()> {
    nft.sync(new, &changed_service_ports(old, new))
        .await
        .context("sync")?;
    Ok(())
}

fn cluster_ip() -> SocketAddr {
    format!("{CLUSTER_IP}:80").parse().unwrap()
}

/// The backend name and the peer address it saw.
fn answer(reply: std::io::Result<String>) -> Result<(String, String)> {
    let reply = reply.context("request failed")?;
    let (who, peer) = reply
        .split_once(' ')
        .with_context(|| format!("odd reply {reply:?}"))?;
    Ok((who.to_string(), peer.to_string()))
}

#[tokio::test]
async fn cluster_ip_balances_tcp_and_udp_over_the_backends() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let desired = state(&[BACKEND1_IP, BACKEND2_IP]);
    let stats = nft
        .sync(&desired, &desired.services.keys().cloned().collect())
        .await?;
    ensure!(stats.full, "the first sync writes the whole table");

    let mut seen = HashSet::new();
    for _ in 0..30 {
        let (who, peer) = answer(tcp_request(&topology.client, cluster_ip())?)?;
        // From inside the cluster CIDR the source is kept.
        ensure!(peer == CLIENT_IP, "client seen as {peer}");
        seen.insert(who);
    }
    ensure!(
        seen.len() == 2,
        "TCP reached only {seen:?} in 30 connections"
    );

    let mut seen = HashSet::new();
    for _ in 0..30 {
        let (who, _) = answer(udp_request(&topology.client, cluster_ip())?)?;
        seen.insert(who);
    }
    ensure!(seen.len() == 2, "UDP reached only {seen:?} in 30 datagrams");

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
    let tables = std::process::Command::new("ip")
        .args(["netns", "exec", &topology.node, "nft", "list", "tables"])
        .output()?;
    let left = String::from_utf8_lossy(&tables.stdout);
    ensure!(left.trim().is_empty(), "cleanup left {left}");
    Ok(())
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

#[tokio::test]
async fn an_endpoint_change_is_reflected_within_a_second() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let first = state(&[BACKEND1_IP]);
    sync(&mut nft, &ProxyState::default(), &first).await?;
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");

    let second = state(&[BACKEND2_IP]);
    let start = Instant::now();
    let stats = nft
        .sync(&second, &changed_service_ports(&first, &second))
        .await?;
    ensure!(!stats.full, "an endpoint change is an incremental sync");
    loop {
        let reply = tcp_request(&topology.client, cluster_ip())?;
        if let Ok((who, _)) = answer(reply)
            && who == "backend2"
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(1) {
            bail!("still not on backend2 after {:?}", start.elapsed());
        }
    }
    // UDP too: new flows go to the new endpoint.
    let (who, _) = answer(udp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend2", "UDP answered by {who}");

    // And back, again incrementally.
    let stats = nft
        .sync(&first, &changed_service_ports(&second, &first))
        .await?;
    ensure!(!stats.full, "a second endpoint change is incremental too");
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");
    Ok(())
}

#[tokio::test]
async fn a_service_without_endpoints_refuses_connections() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let served = state(&[BACKEND1_IP]);
    sync(&mut nft, &ProxyState::default(), &served).await?;
    answer(tcp_request(&topology.client, cluster_ip())?)?;

    let empty = state(&[]);
    sync(&mut nft, &served, &empty).await?;
    let start = Instant::now();
    match tcp_request(&topology.client, cluster_ip())? {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => bail!("expected connection refused, got {other:?}"),
    }
    ensure!(
        start.elapsed() < Duration::from_secs(1),
        "refusal took {:?}: an ICMP reject is immediate",
        start.elapsed()
    );
    // NodePort from outside the node is refused the same way.
    let node_port: SocketAddr = format!("{NODE_IP}:{NODE_PORT}").parse()?;
    match tcp_request(&topology.outside, node_port)? {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => bail!("expected NodePort connection refused, got {other:?}"),
    }

    // Endpoints come back: served again.
    sync(&mut nft, &empty, &served).await?;
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1");
    Ok(())
}

#[tokio::test]
async fn node_port_from_outside_the_node_is_masqueraded() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let desired = state(&[BACKEND1_IP]);
    sync(&mut nft, &ProxyState::default(), &desired).await?;

    let tcp: SocketAddr = format!("{NODE_IP}:{NODE_PORT}").parse()?;
    let (who, peer) = answer(tcp_request(&topology.outside, tcp)?)?;
    ensure!(who == "backend1", "answered by {who}");
    // The backend sees the node's address on its link, so replies return through the node.
    ensure!(peer == "10.244.2.1", "outside client seen as {peer}");

    let udp: SocketAddr = format!("{NODE_IP}:{}", NODE_PORT + 1).parse()?;
    let (who, peer) = answer(udp_request(&topology.outside, udp)?)?;
    ensure!(
        who == "backend1" && peer == "10.244.2.1",
        "UDP: {who} saw {peer}"
    );

    // A ClusterIP reached from outside the cluster CIDR is masqueraded as well.
    let (_, peer) = answer(tcp_request(&topology.outside, cluster_ip())?)?;
    ensure!(
        peer == "10.244.2.1",
        "outside ClusterIP client seen as {peer}"
    );

    // A port that is no NodePort is not touched.
    let other: SocketAddr = format!("{NODE_IP}:30999").parse()?;
    ensure!(
        tcp_request(&topology.outside, other)?.is_err(),
        "nothing listens on 30999"
    );
    Ok(())
}

#[tokio::test]
async fn a_backend_reaching_itself_through_its_service_is_masqueraded() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let desired = state(&[BACKEND1_IP]);
    sync(&mut nft, &ProxyState::default(), &desired).await?;
    let (who, peer) = answer(tcp_request(&topology.backend1, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");
    ensure!(peer == "10.244.2.1", "hairpin client seen as {peer}");
    Ok(())
}

#[tokio::test]
async fn a_restart_replaces_the_table_left_by_an_earlier_run() -> Result<()> {
    let topology = Topology::new()?;
    let old = state(&[BACKEND1_IP]);
    dataplane(&topology)
        .sync(&old, &BTreeSet::new())
        .await
        .context("first run")?;
    // A new process knows nothing of the old table and writes everything again.
    let mut nft = dataplane(&topology);
    let new = state(&[BACKEND2_IP]);
    let stats = nft.sync(&new, &BTreeSet::new()).await?;
    ensure!(stats.full);
    for _ in 0..10 {
        let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
        ensure!(who == "backend2", "stale rule sent traffic to {who}");
    }
    Ok(())
}

#[tokio::test]
async fn client_ip_affinity_keeps_a_client_on_one_backend() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let plain = state(&[BACKEND1_IP, BACKEND2_IP]);
    let mut sticky = plain.clone();
    for (port, _) in sticky.services.values_mut() {
        port.affinity = Some(Duration::from_secs(600));
    }
    sync(&mut nft, &ProxyState::default(), &sticky).await?;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        seen.insert(answer(tcp_request(&topology.client, cluster_ip())?)?.0);
    }
    ensure!(seen.len() == 1, "with affinity the client reached {seen:?}");
    let mut udp_seen = HashSet::new();
    for _ in 0..10 {
        udp_seen.insert(answer(udp_request(&topology.client, cluster_ip())?)?.0);
    }
    ensure!(
        udp_seen.len() == 1,
        "with affinity UDP reached {udp_seen:?}"
    );

    // The client's backend goes away: it moves to the other one and stays there.
    let kept = if seen.contains("backend1") {
        BACKEND2_IP
    } else {
        BACKEND1_IP
    };
    let mut moved = sticky.clone();
    for (_, eps) in moved.services.values_mut() {
        eps.retain(|e| e.ip.to_string() == kept);
    }
    let stats = nft
        .sync(&moved, &changed_service_ports(&sticky, &moved))
        .await?;
    ensure!(!stats.full);
    let mut after = HashSet::new();
    for _ in 0..5 {
        after.insert(answer(tcp_request(&topology.client, cluster_ip())?)?.0);
    }
    ensure!(
        after.len() == 1 && !after.is_subset(&seen),
        "after the change: {after:?}"
    );

    // Affinity off again (incrementally): both backends serve.
    sync(&mut nft, &moved, &plain).await?;
    let mut seen = HashSet::new();
    for _ in 0..30 {
        seen.insert(answer(tcp_request(&topology.client, cluster_ip())?)?.0);
    }
    ensure!(
        seen.len() == 2,
        "without affinity the client reached only {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_udp_flow_leaves_an_endpoint_that_is_removed() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    let both = state(&[BACKEND1_IP, BACKEND2_IP]);
    sync(&mut nft, &ProxyState::default(), &both).await?;

    // One client socket: one conntrack flow, pinned to whichever backend it first reached.
    let flow = UdpFlow::open(&topology.client, cluster_ip())?;
    let (first, _) = answer(flow.send()?)?;
    for _ in 0..5 {
        let (again, _) = answer(flow.send()?)?;
        ensure!(again == first, "one flow moved from {first} to {again}");
    }

    // That backend leaves the Service (its server keeps running, so a stale flow would
    // still be answered by it): the very next datagram goes to the other one.
    let remaining = if first == "backend1" {
        BACKEND2_IP
    } else {
        BACKEND1_IP
    };
    let fewer = state(&[remaining]);
    sync(&mut nft, &both, &fewer).await?;
    let (next, _) = answer(flow.send()?)?;
    ensure!(
        next != first,
        "the flow still reaches the removed endpoint {first}"
    );

    // A flow that began while the Service had no endpoints is NATed once one appears.
    let none = state(&[]);
    sync(&mut nft, &fewer, &none).await?;
    let waiting = UdpFlow::open(&topology.client, cluster_ip())?;
    ensure!(waiting.send()?.is_err(), "no endpoints, yet an answer");
    sync(&mut nft, &none, &fewer).await?;
    let (who, _) = answer(waiting.send()?)?;
    ensure!(who != first, "answered by the removed {who}");
    Ok(())
}

#[tokio::test]
async fn traffic_policy_local_keeps_traffic_on_this_node() -> Result<()> {
    let topology = Topology::new()?;
    let mut nft = dataplane(&topology);
    // backend1 runs on this node, backend2 elsewhere.
    let mut local = state(&[BACKEND1_IP, BACKEND2_IP]);
    for (port, eps) in local.services.values_mut() {
        port.external_local = true;
        for e in eps.iter_mut() {
            let node = if e.ip.to_string() == BACKEND1_IP {
                NODE_NAME
            } else {
                "node-b"
            };
            e.node_name = Some(node.to_string());
        }
    }
    sync(&mut nft, &ProxyState::default(), &local).await?;

    // From outside through the NodePort: only the local backend, and it sees the client.
    let node_port: SocketAddr = format!("{NODE_IP}:{NODE_PORT}").parse()?;
    for _ in 0..10 {
        let (who, peer) = answer(tcp_request(&topology.outside, node_port)?)?;
        ensure!(
            who == "backend1",
            "externalTrafficPolicy Local reached {who}"
        );
        ensure!(
            peer == OUTSIDE_IP,
            "the client address was not kept: {peer}"
        );
    }
    // ClusterIP traffic still goes everywhere.
    let mut seen = HashSet::new();
    for _ in 0..30 {
        seen.insert(answer(tcp_request(&topology.client, cluster_ip())?)?.0);
    }
    ensure!(seen.len() == 2, "ClusterIP reached only {seen:?}");

    // internalTrafficPolicy Local: ClusterIP traffic too stays on this node.
    let mut internal = local.clone();
    for (port, _) in internal.services.values_mut() {
        port.internal_local = true;
    }
    sync(&mut nft, &local, &internal).await?;
    for _ in 0..10 {
        let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
        ensure!(
            who == "backend1",
            "internalTrafficPolicy Local reached {who}"
        );
    }

    // No endpoint on this node: NodePort traffic is dropped rather than sent elsewhere.
    let mut remote_only = local.clone();
    for (_, eps) in remote_only.services.values_mut() {
        eps.retain(|e| e.ip.to_string() == BACKEND2_IP);
    }
    sync(&mut nft, &internal, &remote_only).await?;
    match tcp_request(&topology.outside, node_port)? {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => bail!("expected a drop (timeout), got {other:?}"),
    }
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(
        who == "backend2",
        "ClusterIP (Cluster policy) answered by {who}"
    );
    Ok(())
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
