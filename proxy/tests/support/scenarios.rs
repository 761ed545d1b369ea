//! Scenarios every backend must pass on a real kernel, run against the [`Topology`]: each
//! takes the backend (configured for the topology's node namespace) and drives traffic
//! through it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::model::{
    Endpoint, Protocol, ProxyState, ServicePort, ServicePortName, changed_service_ports,
};

use super::*;

pub const CLUSTER_IP: &str = "10.96.0.10";
pub const NODE_PORT: u16 = 30080;
pub const NODE_NAME: &str = "node-a";

pub fn name(protocol: Protocol) -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: "web".into(),
        port: protocol.as_str().into(),
        protocol,
    }
}

pub fn endpoint(ip: &str) -> Endpoint {
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
pub fn state(backends: &[&str]) -> ProxyState {
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

pub async fn sync(dp: &mut dyn Dataplane, old: &ProxyState, new: &ProxyState) -> Result<()> {
    dp.sync(new, &changed_service_ports(old, new))
        .await
        .context("sync")?;
    Ok(())
}

pub fn cluster_ip() -> SocketAddr {
    format!("{CLUSTER_IP}:80").parse().unwrap()
}

/// The backend name and the peer address it saw.
pub fn answer(reply: std::io::Result<String>) -> Result<(String, String)> {
    let reply = reply.context("request failed")?;
    let (who, peer) = reply
        .split_once(' ')
        .with_context(|| format!("odd reply {reply:?}"))?;
    Ok((who.to_string(), peer.to_string()))
}

pub async fn cluster_ip_balances_tcp_and_udp_over_the_backends(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let desired = state(&[BACKEND1_IP, BACKEND2_IP]);
    let stats = dp
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
    Ok(())
}

pub async fn an_endpoint_change_is_reflected_within_a_second(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let first = state(&[BACKEND1_IP]);
    sync(dp, &ProxyState::default(), &first).await?;
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");

    let second = state(&[BACKEND2_IP]);
    let start = Instant::now();
    let stats = dp
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
    let stats = dp
        .sync(&first, &changed_service_ports(&second, &first))
        .await?;
    ensure!(!stats.full, "a second endpoint change is incremental too");
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");
    Ok(())
}

pub async fn a_service_without_endpoints_refuses_connections(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let served = state(&[BACKEND1_IP]);
    sync(dp, &ProxyState::default(), &served).await?;
    answer(tcp_request(&topology.client, cluster_ip())?)?;

    let empty = state(&[]);
    sync(dp, &served, &empty).await?;
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
    sync(dp, &empty, &served).await?;
    let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
    ensure!(who == "backend1");
    Ok(())
}

pub async fn node_port_from_outside_the_node_is_masqueraded(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let desired = state(&[BACKEND1_IP]);
    sync(dp, &ProxyState::default(), &desired).await?;

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

pub async fn a_backend_reaching_itself_through_its_service_is_masqueraded(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let desired = state(&[BACKEND1_IP]);
    sync(dp, &ProxyState::default(), &desired).await?;
    let (who, peer) = answer(tcp_request(&topology.backend1, cluster_ip())?)?;
    ensure!(who == "backend1", "answered by {who}");
    ensure!(peer == "10.244.2.1", "hairpin client seen as {peer}");
    Ok(())
}

/// `first` and `second` are two runs of the proxy on the same node, one after the other.
pub async fn a_restart_replaces_the_rules_left_by_an_earlier_run(
    first: &mut dyn Dataplane,
    second: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let old = state(&[BACKEND1_IP]);
    first
        .sync(&old, &BTreeSet::new())
        .await
        .context("first run")?;
    // A new process knows nothing of the old rules and writes everything again.
    let new = state(&[BACKEND2_IP]);
    let stats = second.sync(&new, &BTreeSet::new()).await?;
    ensure!(stats.full);
    for _ in 0..10 {
        let (who, _) = answer(tcp_request(&topology.client, cluster_ip())?)?;
        ensure!(who == "backend2", "stale rule sent traffic to {who}");
    }
    Ok(())
}

pub async fn client_ip_affinity_keeps_a_client_on_one_backend(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let plain = state(&[BACKEND1_IP, BACKEND2_IP]);
    let mut sticky = plain.clone();
    for (port, _) in sticky.services.values_mut() {
        port.affinity = Some(Duration::from_secs(600));
    }
    sync(dp, &ProxyState::default(), &sticky).await?;
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
    let stats = dp
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
    sync(dp, &moved, &plain).await?;
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

pub async fn a_udp_flow_leaves_an_endpoint_that_is_removed(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
    let both = state(&[BACKEND1_IP, BACKEND2_IP]);
    sync(dp, &ProxyState::default(), &both).await?;

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
    sync(dp, &both, &fewer).await?;
    let (next, _) = answer(flow.send()?)?;
    ensure!(
        next != first,
        "the flow still reaches the removed endpoint {first}"
    );

    // A flow that began while the Service had no endpoints is NATed once one appears.
    let none = state(&[]);
    sync(dp, &fewer, &none).await?;
    let waiting = UdpFlow::open(&topology.client, cluster_ip())?;
    ensure!(waiting.send()?.is_err(), "no endpoints, yet an answer");
    sync(dp, &none, &fewer).await?;
    let (who, _) = answer(waiting.send()?)?;
    ensure!(who != first, "answered by the removed {who}");
    Ok(())
}

pub async fn traffic_policy_local_keeps_traffic_on_this_node(
    dp: &mut dyn Dataplane,
    topology: &Topology,
) -> Result<()> {
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
    sync(dp, &ProxyState::default(), &local).await?;

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
    sync(dp, &local, &internal).await?;
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
    sync(dp, &internal, &remote_only).await?;
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
