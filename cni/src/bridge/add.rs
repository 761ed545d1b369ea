use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::config::{BridgeConf, RuntimeArgs};
use super::{firewall, gateway, ipam, net_err};
use crate::firewall::{AttachmentKey, Rules, SpoofCheck};
use crate::netlink::{self, BridgeOptions, Netlink, RouteSpec, netns, sysctl};
use crate::spec::{CniResult, Command, Environment, Error, ErrorCode, Interface, NetConf};

/// What an ADD has made so far, undone in reverse when a later step fails.
#[derive(Default)]
struct Made {
    ipam: bool,
    host_veth: Option<u32>,
    firewall: bool,
}

pub async fn add(
    env: &Environment,
    conf: &NetConf,
    bc: &BridgeConf,
    rt: &RuntimeArgs,
) -> Result<CniResult, Error> {
    let ns_path = PathBuf::from(&env.netns);
    let ns = netns::open(&ns_path).map_err(|e| {
        Error::new(
            ErrorCode::UnknownContainer,
            format!("failed to open netns {:?}", env.netns),
        )
        .with_details(e.to_string())
    })?;
    let nl = Netlink::connect().map_err(|e| net_err("failed to open netlink", e))?;
    let mut made = Made::default();
    match add_steps(env, conf, bc, rt, &nl, &ns_path, ns.as_fd(), &mut made).await {
        Ok(r) => Ok(r),
        Err(e) => {
            rollback(env, conf, bc, &nl, made).await;
            Err(e)
        }
    }
}

async fn make_links(
    env: &Environment,
    bc: &BridgeConf,
    container_mac: Option<[u8; 6]>,
    nl: &Netlink,
    ns: std::os::fd::BorrowedFd<'_>,
    made: &mut Made,
) -> Result<(netlink::Link, netlink::Link, String), Error> {
    let bridge = nl
        .ensure_bridge(
            &bc.bridge,
            &BridgeOptions {
                mtu: bc.mtu,
                vlan_filtering: bc.vlan.is_some(),
                promisc: bc.promisc_mode,
            },
        )
        .await
        .map_err(|e| net_err(&format!("failed to set up bridge {:?}", bc.bridge), e))?;
    let host_name = netlink::random_veth_name();
    let host = nl
        .create_veth(
            &host_name,
            &env.ifname,
            ns,
            bc.mtu.or(Some(bridge.mtu)).filter(|m| *m > 0),
            container_mac,
        )
        .await
        .map_err(|e| {
            if e.is_exists() {
                Error::internal(
                    format!("container veth name {:?} already exists", env.ifname),
                    e,
                )
            } else {
                net_err("failed to create veth pair", e)
            }
        })?;
    made.host_veth = Some(host.index);
    nl.set_master(host.index, bridge.index)
        .await
        .map_err(|e| net_err("failed to attach veth to bridge", e))?;
    if bc.hairpin_mode {
        nl.set_hairpin(host.index, true)
            .await
            .map_err(|e| net_err("failed to set hairpin mode", e))?;
    }
    if let Some(vid) = bc.vlan {
        nl.bridge_vlan_add(host.index, vid, true, true, false)
            .await
            .map_err(|e| net_err("failed to set VLAN", e))?;
    }
    nl.set_up(host.index)
        .await
        .map_err(|e| net_err("failed to bring veth up", e))?;
    Ok((bridge, host, host_name))
}

/// The container's interface, then the bridge's gateway addresses and forwarding.
async fn configure(
    env: &Environment,
    bc: &BridgeConf,
    nl: &Netlink,
    ns_path: &Path,
    bridge: &netlink::Link,
    bridge_addrs: &[IpNet],
    result: &CniResult,
) -> Result<String, Error> {
    let container_mac = configure_container(ns_path, &env.ifname, result, bc.enabledad).await?;
    if bc.is_gateway {
        let has_v4 = bridge_addrs.iter().any(|a| a.addr().is_ipv4());
        let has_v6 = bridge_addrs.iter().any(|a| a.addr().is_ipv6());
        if has_v6 {
            // The gateway must answer at once; duplicate detection would hold it tentative.
            let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_dad", bc.bridge), "0");
        }
        for addr in bridge_addrs {
            ensure_bridge_addr(nl, bridge.index, &bc.bridge, *addr, bc.force_address).await?;
        }
        if has_v4 {
            sysctl::write("net/ipv4/ip_forward", "1")
                .map_err(|e| net_err("failed to enable IPv4 forwarding", e))?;
        }
        if has_v6 {
            sysctl::write("net/ipv6/conf/all/forwarding", "1")
                .map_err(|e| net_err("failed to enable IPv6 forwarding", e))?;
        }
    }
    Ok(container_mac)
}

#[allow(clippy::too_many_arguments)]
async fn add_steps(
    env: &Environment,
    conf: &NetConf,
    bc: &BridgeConf,
    rt: &RuntimeArgs,
    nl: &Netlink,
    ns_path: &Path,
    ns: std::os::fd::BorrowedFd<'_>,
    made: &mut Made,
) -> Result<CniResult, Error> {
    let fw = if bc.ip_masq || !rt.port_mappings.is_empty() || bc.macspoofchk {
        let fw = firewall(bc)?;
        if bc.macspoofchk {
            // Before anything is made, so a refusal leaves nothing to undo.
            fw.spoof_check_available()
                .map_err(|e| Error::config(e.to_string()))?;
        }
        Some(fw)
    } else {
        None
    };
    // The spoof check needs the container's MAC when the firewall job starts, which is
    // before the container is configured: when the runtime names none, the MAC is
    // picked here (as the kernel would) instead of read back from the netns.
    let container_mac = rt.mac.or_else(|| bc.macspoofchk.then(random_mac));

    // IPAM runs on its own thread while the links are made: neither needs the other
    // until addresses are configured.
    let ipam_job = {
        let (env, conf, ipam_type) = (env.clone(), conf.clone(), bc.ipam_type(conf).to_string());
        std::thread::spawn(move || ipam::call(Command::Add, &env, &conf, &ipam_type))
    };
    let links = make_links(env, bc, container_mac, nl, ns, made).await;
    let ipam_result = ipam_job
        .join()
        .unwrap_or_else(|_| Err(Error::new(ErrorCode::Internal, "IPAM thread panicked")));
    if let Ok(Some(_)) = &ipam_result {
        made.ipam = true;
    }
    let (bridge, host, host_name) = links?;
    let mut result = ipam_result?
        .ok_or_else(|| Error::new(ErrorCode::Internal, "IPAM plugin returned no result"))?;
    if result.ips.is_empty() {
        return Err(Error::new(
            ErrorCode::Internal,
            "IPAM plugin returned no IP configuration",
        ));
    }
    let bridge_addrs = gateway::apply(&mut result, bc.is_gateway, bc.is_default_gateway)?;
    for ip in &mut result.ips {
        ip.interface = Some(2);
    }

    // The firewall is an exec of nft or iptables-restore: it runs while the container
    // and the bridge are configured.
    let firewall_job = if let Some(fw) = fw {
        let rules = Rules {
            bridge: bc.bridge.clone(),
            masquerade: if bc.ip_masq {
                result.ips.iter().map(|i| i.address).collect()
            } else {
                Vec::new()
            },
            non_masquerade: if bc.ip_masq {
                bc.non_masquerade_cidrs.clone()
            } else {
                Vec::new()
            },
            port_mappings: rt.port_mappings.clone(),
            container_ips: first_of_each_family(&result),
            spoof_check: container_mac
                .filter(|_| bc.macspoofchk)
                .map(|mac| SpoofCheck {
                    port: host_name.clone(),
                    mac,
                }),
        };
        made.firewall = true;
        let key = key(conf, env);
        Some(std::thread::spawn(move || fw.add(&key, &rules)))
    } else {
        None
    };
    let configured = configure(env, bc, nl, ns_path, &bridge, &bridge_addrs, &result).await;
    if let Some(job) = firewall_job {
        match job.join() {
            Ok(done) => done.map_err(|e| Error::internal("failed to program the firewall", e))?,
            Err(_) => return Err(Error::new(ErrorCode::Internal, "firewall thread panicked")),
        }
    }
    let container_mac = configured?;

    let bridge_now = nl
        .link_by_index(bridge.index)
        .await
        .ok()
        .flatten()
        .unwrap_or(bridge);
    result.interfaces = vec![
        Interface {
            name: bc.bridge.clone(),
            mac: bridge_now.mac.map(netlink::format_mac).unwrap_or_default(),
            ..Default::default()
        },
        Interface {
            name: host_name,
            mac: host.mac.map(netlink::format_mac).unwrap_or_default(),
            ..Default::default()
        },
        Interface {
            name: env.ifname.clone(),
            mac: container_mac,
            sandbox: Some(env.netns.clone()),
            ..Default::default()
        },
    ];
    Ok(result)
}

/// Random, unicast and locally administered: what the kernel gives a new veth.
fn random_mac() -> [u8; 6] {
    let mut mac: [u8; 6] = rand::random();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

pub fn key(conf: &NetConf, env: &Environment) -> AttachmentKey {
    AttachmentKey {
        network: conf.name.clone(),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    }
}

fn first_of_each_family(result: &CniResult) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in &result.ips {
        if !out
            .iter()
            .any(|o| o.is_ipv4() == ip.address.addr().is_ipv4())
        {
            out.push(ip.address.addr());
        }
    }
    out
}

/// Addresses, link state and routes inside the container, on a thread in its netns.
async fn configure_container(
    ns_path: &Path,
    ifname: &str,
    result: &CniResult,
    enable_dad: bool,
) -> Result<String, Error> {
    let ifname = ifname.to_string();
    let ips = result.ips.clone();
    let routes = result.routes.clone();
    netns::run_in(ns_path, move |nl| async move {
        let link = nl
            .link_by_name(&ifname)
            .await?
            .ok_or_else(|| netlink::NetlinkError::LinkNotFound(ifname.clone()))?;
        if ips.iter().any(|i| i.address.addr().is_ipv6()) && !enable_dad {
            // A freshly made veth never collides, and DAD would leave the address unusable for a second.
            sysctl::write(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
        }
        if ips.iter().any(|i| i.address.addr().is_ipv4()) {
            let _ = sysctl::write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        }
        for ip in &ips {
            nl.add_address(link.index, ip.address).await?;
        }
        nl.set_up(link.index).await?;
        for r in &routes {
            let v4 = r.dst.addr().is_ipv4();
            let gw = r.gw.or_else(|| {
                ips.iter()
                    .filter(|i| i.address.addr().is_ipv4() == v4)
                    .find_map(|i| i.gateway)
            });
            nl.add_route(&RouteSpec {
                dst: r.dst,
                gateway: gw,
                oif: Some(link.index),
                mtu: r.mtu,
                advmss: r.advmss,
                priority: r.priority,
                table: r.table,
                scope: r.scope,
                src: None,
            })
            .await?;
        }
        Ok(link.mac.map(netlink::format_mac).unwrap_or_default())
    })
    .await
    .map_err(|e| net_err("failed to configure the container interface", e))
}

/// Gives the bridge its gateway address. Another address of the same subnet on the
/// bridge is an error unless `forceAddress` is set, in which case it is replaced.
async fn ensure_bridge_addr(
    nl: &Netlink,
    index: u32,
    name: &str,
    addr: IpNet,
    force: bool,
) -> Result<(), Error> {
    let existing = nl
        .addresses(index)
        .await
        .map_err(|e| net_err("failed to list bridge addresses", e))?;
    if existing
        .iter()
        .any(|a| a.addr() == addr.addr() && a.prefix_len() == addr.prefix_len())
    {
        return Ok(());
    }
    for other in existing
        .iter()
        .filter(|a| a.addr().is_ipv4() == addr.addr().is_ipv4())
    {
        if other.addr().is_ipv6() && other.addr().to_string().starts_with("fe80") {
            continue;
        }
        if other.contains(&addr.addr()) || addr.contains(&other.addr()) {
            if !force {
                return Err(Error::config(format!(
                    "{name:?} already has an IP address different from {addr}"
                )));
            }
            nl.del_address(index, *other)
                .await
                .map_err(|e| net_err("failed to remove the old bridge address", e))?;
        }
    }
    nl.add_address(index, addr)
        .await
        .map_err(|e| net_err("failed to add the gateway address to the bridge", e))
}

async fn rollback(env: &Environment, conf: &NetConf, bc: &BridgeConf, nl: &Netlink, made: Made) {
    if made.firewall
        && let Ok(fw) = firewall(bc)
        && let Err(e) = fw.del(&key(conf, env))
    {
        tracing::warn!(error = %e, "rollback: firewall removal failed");
    }
    if made.ipam
        && let Err(e) = ipam::call(Command::Del, env, conf, bc.ipam_type(conf))
    {
        tracing::warn!(error = %e, "rollback: IPAM release failed");
    }
    if let Some(index) = made.host_veth
        && let Err(e) = nl.delete_link(index).await
    {
        tracing::warn!(error = %e, "rollback: veth removal failed");
    }
}
