//! The VXLAN device: VNI [`VXLAN_VNI`], UDP [`VXLAN_PORT`], no learning (the agent fills
//! the forwarding table), its local address the node's, on the link that address is on,
//! with an MTU [`VXLAN_OVERHEAD`] below that link's. It holds this node's VTEP address
//! (its range's network address, /32), which remote nodes route to.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::ip::{json, run};
use super::plan::vtep_ip;
use super::{NetError, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI};

/// The device's MAC, derived from the node's address so it survives the device being made
/// again (and the annotation other nodes read stays right): locally administered, unicast.
pub fn vtep_mac(local: Ipv4Addr) -> String {
    let o = local.octets();
    format!("0e:53:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The link holding `addr` and its MTU.
pub fn underlay(addr: Ipv4Addr) -> Result<(String, u32), NetError> {
    let want = addr.to_string();
    for link in json("ip", &["-json", "addr", "show"])? {
        let holds = link["addr_info"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["local"].as_str() == Some(&want)));
        if holds && let Some(name) = link["ifname"].as_str() {
            let mtu = link["mtu"].as_u64().unwrap_or(1500) as u32;
            return Ok((name.to_string(), mtu));
        }
    }
    Err(NetError::Setup(format!(
        "the node address {addr} is on no link of this network namespace; VXLAN needs it as the tunnel's local address (set --node-ip)"
    )))
}

/// Whether the existing device is the one wanted.
fn matches(link: &Value, local: Ipv4Addr, mac: &str, underlay: &str) -> bool {
    let info = &link["linkinfo"];
    let data = &info["info_data"];
    info["info_kind"] == "vxlan"
        && data["id"].as_u64() == Some(u64::from(VXLAN_VNI))
        && data["local"].as_str() == Some(&local.to_string())
        && data["port"].as_u64() == Some(u64::from(VXLAN_PORT))
        && data["learning"].as_bool() == Some(false)
        && link["link"].as_str().is_none_or(|l| l == underlay)
        && link["address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(mac))
}

/// Makes (or fixes) the device for a node at `local` with range `pod_cidr`; returns its MAC.
pub fn ensure(local: Ipv4Addr, pod_cidr: Ipv4Net) -> Result<String, NetError> {
    let (link, mtu) = underlay(local)?;
    let mac = vtep_mac(local);
    let existing = json(
        "ip",
        &["-details", "-json", "link", "show", "dev", VXLAN_DEVICE],
    )
    .ok();
    let keep = existing
        .as_ref()
        .and_then(|l| l.first())
        .is_some_and(|l| matches(l, local, &mac, &link));
    if existing.is_some() && !keep {
        tracing::info!(
            device = VXLAN_DEVICE,
            "VXLAN device has other settings; making it again"
        );
        run("ip", &["link", "del", "dev", VXLAN_DEVICE])?;
    }
    if !keep {
        let (vni, port, local) = (
            VXLAN_VNI.to_string(),
            VXLAN_PORT.to_string(),
            local.to_string(),
        );
        run(
            "ip",
            &[
                "link",
                "add",
                VXLAN_DEVICE,
                "address",
                &mac,
                "type",
                "vxlan",
                "id",
                &vni,
                "local",
                &local,
                "dev",
                &link,
                "dstport",
                &port,
                "nolearning",
            ],
        )?;
    }
    let mtu = mtu.saturating_sub(VXLAN_OVERHEAD).to_string();
    run(
        "ip",
        &["link", "set", "dev", VXLAN_DEVICE, "mtu", &mtu, "up"],
    )?;
    // Exactly this node's VTEP address: a range that changed leaves no old address behind.
    let want = format!("{}/32", vtep_ip(&pod_cidr));
    for l in json("ip", &["-json", "-4", "addr", "show", "dev", VXLAN_DEVICE])? {
        for a in l["addr_info"].as_array().into_iter().flatten() {
            let have = format!(
                "{}/{}",
                a["local"].as_str().unwrap_or_default(),
                a["prefixlen"].as_u64().unwrap_or(32)
            );
            if have != want {
                run("ip", &["addr", "del", &have, "dev", VXLAN_DEVICE])?;
            }
        }
    }
    run("ip", &["addr", "replace", &want, "dev", VXLAN_DEVICE])?;
    Ok(mac)
}

/// Removes the device when it is a VXLAN device (a link of another kind with the name is
/// not the agent's).
pub fn remove() -> Result<(), NetError> {
    let Ok(links) = json(
        "ip",
        &["-details", "-json", "link", "show", "dev", VXLAN_DEVICE],
    ) else {
        return Ok(());
    };
    if links
        .first()
        .is_some_and(|l| l["linkinfo"]["info_kind"] == "vxlan")
    {
        run("ip", &["link", "del", "dev", VXLAN_DEVICE])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_stable_and_local() {
        let mac = vtep_mac(Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(mac, "0e:53:c6:12:00:01");
        assert!(super::super::node::parse_mac(&mac).is_some());
    }
}
