//! The nftables backend on a real kernel: traffic between namespaces this test creates,
//! through a table programmed in a "node" namespace. Needs root; fails without it.

#![allow(clippy::unwrap_used)]

mod support;

use anyhow::{Result, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::nftables::{Nftables, NftablesConfig};
use support::scenarios::{self, NODE_NAME};
use support::*;

fn dataplane(topology: &Topology) -> Nftables {
    let mut cfg = NftablesConfig::new(topology.table());
    cfg.nft_command = topology.nft_command();
    cfg.cluster_cidr = Some(CLUSTER_CIDR.parse().unwrap());
    cfg.node_port_addresses = vec![NODE_IP.parse().unwrap()];
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
