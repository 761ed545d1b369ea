//! The iptables backend on a real kernel: traffic between namespaces this test creates,
//! through `SKIFF-*` chains programmed with iptables-restore inside a "node" namespace (the
//! host's iptables is the nf_tables flavour, whose tables are per namespace). Needs root;
//! fails without it.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::iptables::{Existing, Iptables, IptablesConfig, Table};
use skiff_proxy::model::ProxyState;
use support::scenarios::{self, NODE_NAME, NODE_PORT, answer, state, sync};
use support::*;

fn dataplane(topology: &Topology) -> Iptables {
    Iptables::new(IptablesConfig {
        iptables_restore_command: topology.node_command("iptables-restore"),
        iptables_save_command: topology.node_command("iptables-save"),
        conntrack_command: topology.conntrack_command(),
        cluster_cidr: Some(CLUSTER_CIDR.parse().unwrap()),
        node_name: Some(NODE_NAME.to_string()),
        node_port_addresses: vec![NODE_IP.parse().unwrap()],
        ..IptablesConfig::default()
    })
}

/// `iptables-save -t table` in the node namespace.
fn save(topology: &Topology, table: &str) -> Result<String> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &topology.node,
            "iptables-save",
            "-t",
            table,
        ])
        .output()
        .context("running iptables-save")?;
    ensure!(out.status.success(), "iptables-save failed: {out:?}");
    Ok(String::from_utf8(out.stdout)?)
}

/// The lines of both tables that mention our chains.
fn ours(topology: &Topology) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for table in ["nat", "filter"] {
        lines.extend(
            save(topology, table)?
                .lines()
                .filter(|l| l.contains("SKIFF-"))
                .map(|l| format!("{table} {l}")),
        );
    }
    Ok(lines)
}

#[tokio::test]
async fn cluster_ip_balances_tcp_and_udp_over_the_backends() -> Result<()> {
    let topology = Topology::new()?;
    let mut ipt = dataplane(&topology);
    scenarios::cluster_ip_balances_tcp_and_udp_over_the_backends(&mut ipt, &topology).await?;

    ipt.cleanup().await?;
    let left = ours(&topology)?;
    ensure!(left.is_empty(), "cleanup left {left:#?}");
    Ok(())
}

#[tokio::test]
async fn a_restart_reuses_the_jumps_and_deletes_chains_it_no_longer_wants() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::a_restart_replaces_the_rules_left_by_an_earlier_run(
        &mut dataplane(&topology),
        &mut dataplane(&topology),
        &topology,
    )
    .await?;
    // A third run with no Services at all: the Service's chains go, the jumps stay single.
    let mut third = dataplane(&topology);
    third.sync(&ProxyState::default(), &BTreeSet::new()).await?;
    let nat = save(&topology, "nat")?;
    ensure!(
        !nat.contains("SKIFF-SVC-") && !nat.contains("SKIFF-SEP-"),
        "stale chains:\n{nat}"
    );
    let filter = save(&topology, "filter")?;
    for (table, text, chain, target, count) in [
        ("nat", &nat, "PREROUTING", "SKIFF-SERVICES", 1),
        ("nat", &nat, "OUTPUT", "SKIFF-SERVICES", 1),
        ("nat", &nat, "POSTROUTING", "SKIFF-POSTROUTING", 1),
        ("filter", &filter, "INPUT", "SKIFF-SERVICES", 1),
        ("filter", &filter, "FORWARD", "SKIFF-EXTERNAL-SERVICES", 1),
        ("filter", &filter, "OUTPUT", "SKIFF-SERVICES", 1),
    ] {
        let found = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("-A {chain} ")) && l.ends_with(&format!("-j {target}"))
            })
            .count();
        ensure!(
            found == count,
            "{table} {chain} has {found} jumps to {target}:\n{text}"
        );
    }
    // iptables-save prints the jumps as they were written, so a later start changes none.
    let mut existing = Existing::default();
    existing.parse(Table::Nat, &nat);
    existing.parse(Table::Filter, &filter);
    let plan = dataplane(&topology).plan(&ProxyState::default(), &BTreeSet::new(), &existing);
    let churn: Vec<&str> = plan
        .text
        .lines()
        .filter(|l| l.starts_with("-D ") || l.starts_with("-I "))
        .collect();
    ensure!(churn.is_empty(), "jumps rewritten on restart: {churn:#?}");
    Ok(())
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
async fn an_endpoint_change_is_reflected_within_a_second() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::an_endpoint_change_is_reflected_within_a_second(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn traffic_policy_local_keeps_traffic_on_this_node() -> Result<()> {
    let topology = Topology::new()?;
    scenarios::traffic_policy_local_keeps_traffic_on_this_node(&mut dataplane(&topology), &topology)
        .await
}

#[tokio::test]
async fn external_traffic_policy_local_keeps_the_client_address_when_every_endpoint_is_here()
-> Result<()> {
    let topology = Topology::new()?;
    let mut ipt = dataplane(&topology);
    // Every endpoint is on this node, so external and cluster traffic share the cluster
    // chain: its masquerade rule for clients outside the cluster CIDR must not catch
    // NodePort traffic.
    let mut local = state(&[BACKEND1_IP]);
    for (port, eps) in local.services.values_mut() {
        port.external_local = true;
        for e in eps.iter_mut() {
            e.node_name = Some(NODE_NAME.to_string());
        }
    }
    sync(&mut ipt, &ProxyState::default(), &local).await?;
    let node_port: std::net::SocketAddr = format!("{NODE_IP}:{NODE_PORT}").parse()?;
    let (who, peer) = answer(tcp_request(&topology.outside, node_port)?)?;
    ensure!(who == "backend1" && peer == OUTSIDE_IP, "{who} saw {peer}");
    Ok(())
}
