use std::path::PathBuf;

use super::add::key;
use super::config::{BridgeConf, RuntimeArgs};
use super::{firewall, ipam, net_err};
use crate::netlink::{self, Netlink, netns};
use crate::spec::{CniResult, Command, Environment, Error, ErrorCode, NetConf};

/// Verifies that what ADD made (the prevResult) is still in place.
pub async fn check(
    env: &Environment,
    conf: &NetConf,
    bc: &BridgeConf,
    rt: &RuntimeArgs,
) -> Result<(), Error> {
    let prev = conf
        .prev_result
        .clone()
        .ok_or_else(|| Error::config("CHECK needs prevResult"))?;
    ipam::call(Command::Check, env, conf, bc.ipam_type(conf))?;

    let nl = Netlink::connect().map_err(|e| net_err("failed to open netlink", e))?;
    let bridge = nl
        .link_by_name(&bc.bridge)
        .await
        .map_err(|e| net_err("failed to look up the bridge", e))?
        .ok_or_else(|| fail(format!("bridge {:?} does not exist", bc.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(fail(format!("{:?} is not a bridge", bc.bridge)));
    }
    let container_idx = prev
        .interfaces
        .iter()
        .position(|i| i.sandbox.is_some() && i.name == env.ifname)
        .ok_or_else(|| {
            fail(format!(
                "prevResult has no interface {:?} in a sandbox",
                env.ifname
            ))
        })?;
    if let Some(host) = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_none() && i.name != bc.bridge)
    {
        let link = nl
            .link_by_name(&host.name)
            .await
            .map_err(|e| net_err("failed to look up the host veth", e))?
            .ok_or_else(|| fail(format!("host interface {:?} does not exist", host.name)))?;
        if link.master != Some(bridge.index) {
            return Err(fail(format!(
                "host interface {:?} is not attached to bridge {:?}",
                host.name, bc.bridge
            )));
        }
    }
    check_container(env, &prev, container_idx).await?;
    if bc.ip_masq || !rt.port_mappings.is_empty() || bc.macspoofchk {
        firewall(bc)?
            .check(&key(conf, env))
            .map_err(|e| fail(format!("firewall rules missing: {e}")))?;
    }
    Ok(())
}

async fn check_container(
    env: &Environment,
    prev: &CniResult,
    container_idx: usize,
) -> Result<(), Error> {
    let ifname = env.ifname.clone();
    let want_mac = prev.interfaces[container_idx].mac.to_ascii_lowercase();
    let want_ips: Vec<_> = prev
        .ips
        .iter()
        .filter(|i| i.interface.is_none_or(|x| x == container_idx))
        .map(|i| i.address)
        .collect();
    let want_routes: Vec<_> = prev.routes.iter().map(|r| r.dst).collect();
    let outcome = netns::run_in(&PathBuf::from(&env.netns), move |nl| async move {
        let Some(link) = nl.link_by_name(&ifname).await? else {
            return Ok(Err(format!(
                "interface {ifname:?} does not exist in the container"
            )));
        };
        let mac = link.mac.map(netlink::format_mac).unwrap_or_default();
        if !want_mac.is_empty() && mac != want_mac {
            return Ok(Err(format!(
                "interface {ifname:?} has MAC {mac}, expected {want_mac}"
            )));
        }
        let have = nl.addresses(link.index).await?;
        for ip in &want_ips {
            if !have
                .iter()
                .any(|h| h.addr() == ip.addr() && h.prefix_len() == ip.prefix_len())
            {
                return Ok(Err(format!(
                    "interface {ifname:?} does not have address {ip}"
                )));
            }
        }
        let routes = nl.routes(netlink::Family::All).await?;
        for dst in &want_routes {
            if !routes.iter().any(|r| r.dst == *dst) {
                return Ok(Err(format!("route to {dst} is missing in the container")));
            }
        }
        Ok(Ok(()))
    })
    .await
    .map_err(|e| net_err("failed to inspect the container", e))?;
    outcome.map_err(fail)
}

fn fail(msg: String) -> Error {
    Error::new(ErrorCode::Internal, msg)
}
