use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::FirewallError;

/// One pod attachment, as CNI names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttachmentKey {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

impl AttachmentKey {
    pub fn new(
        network: impl Into<String>,
        container_id: impl Into<String>,
        ifname: impl Into<String>,
    ) -> AttachmentKey {
        AttachmentKey {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// The parts become file names and iptables comments, so they are held to the
    /// character sets the CNI spec and the kernel allow, which keeps both unambiguous.
    pub(super) fn validate(&self) -> Result<(), FirewallError> {
        let invalid = |what: &str, value: &str| {
            FirewallError::InvalidKey(format!("{what} {value:?}: {}", self.describe()))
        };
        if !is_cni_name(&self.network) {
            return Err(invalid("network name", &self.network));
        }
        if !is_cni_name(&self.container_id) {
            return Err(invalid("container ID", &self.container_id));
        }
        if !is_ifname(&self.ifname) {
            return Err(invalid("interface name", &self.ifname));
        }
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "network names and container IDs are an alphanumeric followed by [A-Za-z0-9_.-]; \
         interface names are 1-15 of [A-Za-z0-9_.@+-] and not . or .."
    }
}

impl fmt::Display for AttachmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.network, self.container_id, self.ifname)
    }
}

/// Network names become directory names under the state directory.
pub(super) fn validate_network(network: &str) -> Result<(), FirewallError> {
    if is_cni_name(network) {
        Ok(())
    } else {
        Err(FirewallError::InvalidKey(format!(
            "network name {network:?}: an alphanumeric followed by [A-Za-z0-9_.-]"
        )))
    }
}

/// The CNI spec's rule for network names and container IDs.
fn is_cni_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Stricter than the kernel (which takes anything but '/', ':' and spaces) so the name
/// needs no quoting in an nft string, an iptables comment or a file name.
pub(super) fn is_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name nft, iptables and CNI's portMappings all use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = FirewallError;

    /// Case-insensitive, since runtimes send both `tcp` and `TCP`.
    fn from_str(s: &str) -> Result<Protocol, FirewallError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(FirewallError::InvalidRules(format!(
                "unknown protocol {s:?} (tcp, udp or sctp)"
            ))),
        }
    }
}

/// One entry of the CNI `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None` (or an unspecified address) maps the port on every local address.
    pub host_ip: Option<IpAddr>,
}

/// What one pod attachment needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// The bridge the pod is on.
    pub bridge: String,
    /// Pod addresses with their subnet prefix (e.g. 10.22.0.5/16): traffic from the pod
    /// address to anything outside that subnet, except multicast, is masqueraded.
    pub masquerade: Vec<IpNet>,
    pub port_mappings: Vec<PortMapping>,
    /// DNAT targets, one per family.
    pub container_ips: Vec<IpAddr>,
    /// `macspoofchk`: the only source MAC the pod's bridge port lets in. Absent from
    /// records written before it existed, and from those of attachments without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoof_check: Option<SpoofCheck>,
    /// Ranges masqueraded pods reach with their own address, besides their subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_masquerade: Vec<IpNet>,
}

/// Frames entering the bridge from `port` whose source MAC is not `mac` are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoofCheck {
    /// The host end of the pod's veth: the bridge port its frames enter by.
    pub port: String,
    /// The container interface's MAC. Recorded as `ip link` prints it, so a person
    /// reading the state directory can compare.
    #[serde(with = "mac_text")]
    pub mac: [u8; 6],
}

mod mac_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::netlink::{format_mac, parse_mac};

    pub fn serialize<S: Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_mac(*mac))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
        let text = String::deserialize(d)?;
        parse_mac(&text).map_err(D::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// One hostPort rule for one address family: what the backends actually program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Dnat {
    pub family: Family,
    /// `None` for every local address.
    pub host_ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub host_port: u16,
    pub target: IpAddr,
    pub target_port: u16,
}

impl Dnat {
    /// What two attachments must not share.
    pub(super) fn slot(&self) -> (Family, Option<IpAddr>, Protocol, u16) {
        (self.family, self.host_ip, self.protocol, self.host_port)
    }

    pub(super) fn describe(&self) -> String {
        let on = match (self.host_ip, self.family) {
            (Some(ip), _) => ip.to_string(),
            (None, Family::V4) => "0.0.0.0".to_string(),
            (None, Family::V6) => "::".to_string(),
        };
        format!("{}/{} on {on}", self.protocol, self.host_port)
    }
}

/// A masqueraded pod address and the subnet it reaches directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Masquerade {
    pub family: Family,
    pub pod: IpAddr,
    pub subnet: IpNet,
}

impl Rules {
    pub(super) fn validate(&self) -> Result<(), FirewallError> {
        let bad = |msg: String| Err(FirewallError::InvalidRules(msg));
        // Port mappings need the bridge: hairpin traffic is recognised by it.
        if (!self.port_mappings.is_empty() || !self.bridge.is_empty()) && !is_ifname(&self.bridge) {
            return bad(format!(
                "bridge name {:?} is not an interface name",
                self.bridge
            ));
        }
        let mut families = HashSet::new();
        for ip in &self.container_ips {
            if ip.is_unspecified() || ip.is_multicast() {
                return bad(format!("container IP {ip} cannot be a DNAT target"));
            }
            if !families.insert(Family::of(*ip)) {
                return bad(format!(
                    "more than one container IP of the family of {ip}: {:?}",
                    self.container_ips
                ));
            }
        }
        let mut pods = HashSet::new();
        for net in &self.masquerade {
            if net.addr().is_unspecified() || net.addr().is_multicast() {
                return bad(format!("{net} is not a pod address"));
            }
            if !pods.insert(net.addr()) {
                return bad(format!("pod address {} listed twice", net.addr()));
            }
        }
        for m in &self.port_mappings {
            if m.host_port == 0 || m.container_port == 0 {
                return bad(format!(
                    "port mapping {}/{} -> {}: ports must be 1-65535",
                    m.protocol, m.host_port, m.container_port
                ));
            }
            if let Some(ip) = m.host_ip
                && (ip.is_multicast() || ip.is_loopback() && Family::of(ip) == Family::V6)
            {
                return bad(format!("host IP {ip} cannot receive hostPort traffic"));
            }
        }
        if let Some(sc) = &self.spoof_check {
            if !is_ifname(&sc.port) {
                return bad(format!(
                    "spoof-check port {:?} is not an interface name",
                    sc.port
                ));
            }
            // Neither can be a frame's source: the check would drop everything.
            if sc.mac[0] & 1 == 1 || sc.mac == [0; 6] {
                return bad(format!(
                    "spoof-check MAC {} is not a unicast address",
                    crate::netlink::format_mac(sc.mac)
                ));
            }
        }
        let mut slots = HashSet::new();
        for d in self.dnats()? {
            if !slots.insert(d.slot()) {
                return bad(format!("hostPort {} is mapped twice", d.describe()));
            }
        }
        Ok(())
    }

    /// Expands the port mappings per family: a mapping without a host IP applies to
    /// every family the pod has, one with a host IP only to that IP's family.
    pub(super) fn dnats(&self) -> Result<Vec<Dnat>, FirewallError> {
        let mut out = Vec::new();
        for m in &self.port_mappings {
            let wanted = m.host_ip.map(Family::of);
            let host_ip = m.host_ip.filter(|ip| !ip.is_unspecified());
            let before = out.len();
            for &target in &self.container_ips {
                let family = Family::of(target);
                if wanted.is_some_and(|f| f != family) {
                    continue;
                }
                out.push(Dnat {
                    family,
                    host_ip,
                    protocol: m.protocol,
                    host_port: m.host_port,
                    target,
                    target_port: m.container_port,
                });
            }
            if out.len() == before {
                return Err(FirewallError::InvalidRules(format!(
                    "port mapping {}/{}{} has no container IP of its family among {:?}",
                    m.protocol,
                    m.host_port,
                    m.host_ip.map(|ip| format!(" on {ip}")).unwrap_or_default(),
                    self.container_ips
                )));
            }
        }
        Ok(out)
    }

    pub(super) fn masquerades(&self) -> Vec<Masquerade> {
        self.masquerade
            .iter()
            .map(|net| Masquerade {
                family: Family::of(net.addr()),
                pod: net.addr(),
                subnet: net.trunc(),
            })
            .collect()
    }

    /// For each masqueraded pod, the ranges it reaches unmasqueraded: its subnet, then
    /// the `non_masquerade` ranges of its family. Of two ranges one inside the other only
    /// the wider is kept: nftables' interval sets refuse overlapping elements, and the
    /// narrower adds nothing.
    pub(super) fn masquerade_exceptions(&self) -> Vec<Masquerade> {
        let mut out = Vec::new();
        for m in self.masquerades() {
            let mut nets = vec![m.subnet];
            nets.extend(
                self.non_masquerade
                    .iter()
                    .map(IpNet::trunc)
                    .filter(|n| Family::of(n.addr()) == m.family),
            );
            for (i, n) in nets.iter().enumerate() {
                let covered = nets
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != i && o.contains(n) && (o != n || j < i));
                if !covered {
                    out.push(Masquerade { subnet: *n, ..m });
                }
            }
        }
        out
    }

    /// Families this attachment programs anything for.
    pub(super) fn families(&self) -> Vec<Family> {
        let mut fams: Vec<Family> = self
            .masquerade
            .iter()
            .map(|n| Family::of(n.addr()))
            .chain(self.dnats().unwrap_or_default().iter().map(|d| d.family))
            .collect();
        fams.sort();
        fams.dedup();
        fams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host_port: u16, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    fn rules(mappings: Vec<PortMapping>) -> Rules {
        Rules {
            bridge: "cni0".into(),
            masquerade: vec!["10.22.0.5/16".parse().unwrap()],
            port_mappings: mappings,
            container_ips: vec!["10.22.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
            spoof_check: None,
            non_masquerade: Vec::new(),
        }
    }

    #[test]
    fn wildcard_mapping_applies_to_each_family() {
        let d = rules(vec![mapping(8080, None)]).dnats().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].family, Family::V4);
        assert_eq!(d[1].family, Family::V6);
        assert!(d.iter().all(|d| d.host_ip.is_none()));
    }

    #[test]
    fn unspecified_host_ip_is_a_wildcard_of_its_family() {
        let d = rules(vec![mapping(8080, Some("0.0.0.0"))]).dnats().unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].family, d[0].host_ip), (Family::V4, None));
    }

    #[test]
    fn specific_host_ip_needs_its_family() {
        let mut r = rules(vec![mapping(8080, Some("fd00::1"))]);
        r.container_ips.truncate(1);
        assert!(matches!(r.validate(), Err(FirewallError::InvalidRules(_))));
    }

    #[test]
    fn duplicate_mapping_is_rejected() {
        let r = rules(vec![mapping(8080, None), mapping(8080, Some("0.0.0.0"))]);
        assert!(matches!(r.validate(), Err(FirewallError::InvalidRules(_))));
        let r = rules(vec![mapping(8080, None), mapping(8080, Some("10.0.0.1"))]);
        r.validate().unwrap();
    }

    #[test]
    fn two_ips_of_one_family_are_rejected() {
        let mut r = rules(vec![]);
        r.container_ips.push("10.22.0.6".parse().unwrap());
        assert!(r.validate().is_err());
    }

    #[test]
    fn zero_port_is_rejected() {
        assert!(rules(vec![mapping(0, None)]).validate().is_err());
    }

    #[test]
    fn non_masquerade_ranges_keep_the_widest_of_nested_ones() {
        let mut r = rules(vec![]);
        r.non_masquerade = vec![
            "10.0.0.0/8".parse().unwrap(),
            "10.22.7.0/24".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ];
        let got: Vec<String> = r
            .masquerade_exceptions()
            .iter()
            .filter(|m| m.family == Family::V4)
            .map(|m| format!("{} {}", m.pod, m.subnet))
            .collect();
        assert_eq!(got, ["10.22.0.5 10.0.0.0/8", "10.22.0.5 192.168.0.0/16"]);
    }

    #[test]
    fn masquerade_subnet_is_truncated() {
        let m = rules(vec![]).masquerades();
        assert_eq!(m[0].subnet.to_string(), "10.22.0.0/16");
        assert_eq!(m[0].pod.to_string(), "10.22.0.5");
    }

    #[test]
    fn key_validation() {
        AttachmentKey::new("net-1", "abc123", "eth0")
            .validate()
            .unwrap();
        for (n, c, i) in [
            ("", "abc", "eth0"),
            ("../x", "abc", "eth0"),
            ("net", "a/b", "eth0"),
            ("net", "abc", "eth:0"),
            ("net", "abc", ".."),
            ("net", "abc", "a-very-long-ifname0"),
            ("net", "abc", "eth\"0"),
        ] {
            assert!(
                AttachmentKey::new(n, c, i).validate().is_err(),
                "{n} {c} {i}"
            );
        }
    }

    #[test]
    fn spoof_check_validation_and_record_form() {
        let mut r = rules(vec![]);
        r.spoof_check = Some(SpoofCheck {
            port: "veth0a1b2c3d".into(),
            mac: [0x02, 0x42, 0xac, 0x11, 0x00, 0x02],
        });
        r.validate().unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["spoof_check"]["mac"], "02:42:ac:11:00:02");
        assert_eq!(serde_json::from_value::<Rules>(json).unwrap(), r);
        for (port, mac) in [
            ("veth 1", [2, 0, 0, 0, 0, 1]),
            ("", [2, 0, 0, 0, 0, 1]),
            ("veth1", [1, 0, 0x5e, 0, 0, 1]),
            ("veth1", [0; 6]),
        ] {
            r.spoof_check = Some(SpoofCheck {
                port: port.into(),
                mac,
            });
            assert!(r.validate().is_err(), "{port} {mac:?}");
        }
        // Records from before the field existed still read.
        let old = r#"{"bridge":"cni0","masquerade":[],"port_mappings":[],"container_ips":[]}"#;
        assert_eq!(
            serde_json::from_str::<Rules>(old).unwrap().spoof_check,
            None
        );
        assert!(
            !serde_json::to_string(&rules(vec![]))
                .unwrap()
                .contains("spoof_check")
        );
    }

    #[test]
    fn protocol_parses_case_insensitively() {
        assert_eq!("TCP".parse::<Protocol>().unwrap(), Protocol::Tcp);
        assert_eq!("sctp".parse::<Protocol>().unwrap(), Protocol::Sctp);
        assert!("icmp".parse::<Protocol>().is_err());
    }
}
