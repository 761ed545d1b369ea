use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::firewall::{Backend, PortMapping, Protocol};
use crate::spec::{Error, ErrorCode, NetConf};

/// skiff-bridge's configuration: the reference `bridge` plugin's keys, plus three of
/// skiff's own for where its firewall state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeConf {
    #[serde(default = "default_bridge")]
    pub bridge: String,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub force_address: bool,
    #[serde(default)]
    pub ip_masq: bool,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default = "yes")]
    pub preserve_default_vlan: bool,
    #[serde(default)]
    pub macspoofchk: bool,
    #[serde(default)]
    pub enabledad: bool,
    /// `nftables` or `iptables`; otherwise picked at run time.
    #[serde(default)]
    pub firewall_backend: Option<String>,
    /// The nftables table / iptables chain prefix for masquerade and hostPort rules.
    #[serde(default = "default_table")]
    pub firewall_table: String,
    /// Where the plugin records what it installed for each attachment, so DEL works
    /// without the netns or a prevResult.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// skiff's own: with `ipMasq`, pod traffic to these ranges keeps its source address
    /// too (the cluster's pod range, when other nodes' pods are routed to).
    #[serde(default, rename = "nonMasqueradeCIDRs")]
    pub non_masquerade_cidrs: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub args: Option<Value>,
}

pub const KNOWN_KEYS: &[&str] = &[
    "bridge",
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "mtu",
    "hairpinMode",
    "promiscMode",
    "vlan",
    "preserveDefaultVlan",
    "macspoofchk",
    "enabledad",
    "firewallBackend",
    "firewallTable",
    "stateDir",
    "nonMasqueradeCIDRs",
];

/// Keys of the reference plugin that skiff-bridge does not implement: refused with
/// code 2 rather than silently ignored.
const UNSUPPORTED_KEYS: &[&str] = &["vlanTrunk", "disableContainerInterface", "portIsolation"];

fn default_bridge() -> String {
    "cni0".into()
}
fn default_table() -> String {
    "skiff-cni".into()
}
fn default_state_dir() -> String {
    "/var/lib/cni/skiff-bridge".into()
}
fn yes() -> bool {
    true
}

/// What the runtime passes through capability arguments (`runtimeConfig`) and
/// `args.cni`.
#[derive(Debug, Clone, Default)]
pub struct RuntimeArgs {
    pub port_mappings: Vec<PortMapping>,
    pub mac: Option<[u8; 6]>,
}

impl BridgeConf {
    pub fn from_netconf(conf: &NetConf) -> Result<BridgeConf, Error> {
        if let Some(key) = UNSUPPORTED_KEYS.iter().find(|k| conf.raw.contains_key(**k)) {
            return Err(Error::new(
                ErrorCode::UnsupportedField,
                format!("skiff-bridge does not support {key:?}"),
            ));
        }
        let mut c: BridgeConf = conf.decode(KNOWN_KEYS)?;
        if c.is_default_gateway {
            c.is_gateway = true;
        }
        if c.bridge.is_empty() || c.bridge.len() > 15 || c.bridge.contains(['/', ':', ' ']) {
            return Err(Error::config(format!("invalid bridge name {:?}", c.bridge)));
        }
        if let Some(v) = c.vlan
            && v > 4094
        {
            return Err(Error::config(format!(
                "invalid VLAN ID {v} (must be between 0 and 4094)"
            )));
        }
        if c.vlan == Some(0) {
            c.vlan = None;
        }
        if let Some(mtu) = c.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::config(format!(
                "invalid MTU {mtu} (must be between 68 and 65535)"
            )));
        }
        if c.mtu == Some(0) {
            c.mtu = None;
        }
        if let Some(b) = &c.firewall_backend
            && !matches!(b.as_str(), "nftables" | "iptables")
        {
            return Err(Error::config(format!(
                "invalid firewallBackend {b:?} (nftables or iptables)"
            )));
        }
        if conf
            .ipam()
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(Error::config(
                "ipam.type is required: skiff-bridge needs an IPAM plugin",
            ));
        }
        Ok(c)
    }

    pub fn backend(&self) -> Option<Backend> {
        match self.firewall_backend.as_deref() {
            Some("iptables") => Some(Backend::Iptables),
            Some("nftables") => Some(Backend::Nftables),
            _ => None,
        }
    }

    pub fn ipam_type<'a>(&self, conf: &'a NetConf) -> &'a str {
        conf.ipam()
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePortMapping {
    host_port: i64,
    container_port: i64,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    host_ip: Option<String>,
}

impl RuntimeArgs {
    pub fn from_netconf(conf: &NetConf) -> Result<RuntimeArgs, Error> {
        let mut out = RuntimeArgs::default();
        if let Some(pm) = conf.runtime_config.get("portMappings")
            && !pm.is_null()
        {
            let wire: Vec<WirePortMapping> = serde_json::from_value(pm.clone()).map_err(|e| {
                Error::new(
                    ErrorCode::Decode,
                    "failed to decode runtimeConfig.portMappings",
                )
                .with_details(e.to_string())
            })?;
            for w in wire {
                out.port_mappings.push(port_mapping(w)?);
            }
        }
        let mac = conf.runtime_config.get("mac").or_else(|| {
            conf.raw
                .get("args")
                .and_then(|a| a.get("cni"))
                .and_then(|c| c.get("mac"))
        });
        if let Some(mac) = mac.and_then(Value::as_str).filter(|m| !m.is_empty()) {
            out.mac = Some(parse_mac(mac)?);
        }
        Ok(out)
    }
}

fn port_mapping(w: WirePortMapping) -> Result<PortMapping, Error> {
    let port = |p: i64, what: &str| {
        u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
            Error::config(format!(
                "invalid {what} {p} in portMappings (must be 1-65535)"
            ))
        })
    };
    let protocol = match w
        .protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some("sctp") => Protocol::Sctp,
        Some(other) => {
            return Err(Error::config(format!(
                "invalid protocol {other:?} in portMappings (tcp, udp or sctp)"
            )));
        }
    };
    let host_ip = match w.host_ip.as_deref() {
        None | Some("") => None,
        Some(s) => {
            let ip: IpAddr = s
                .parse()
                .map_err(|_| Error::config(format!("invalid hostIP {s:?} in portMappings")))?;
            if ip.is_unspecified() { None } else { Some(ip) }
        }
    };
    Ok(PortMapping {
        host_port: port(w.host_port, "hostPort")?,
        container_port: port(w.container_port, "containerPort")?,
        protocol,
        host_ip,
    })
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], Error> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(Error::config(format!("invalid MAC address {s:?}")));
    }
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| Error::config(format!("invalid MAC address {s:?}")))?;
    }
    if mac[0] & 1 == 1 {
        return Err(Error::config(format!(
            "invalid MAC address {s:?}: a multicast address cannot be assigned"
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: &str) -> NetConf {
        let json = format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"skiff-bridge","ipam":{{"type":"skiff-ipam"}}{extra}}}"#
        );
        NetConf::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn defaults_like_the_reference() {
        let c = BridgeConf::from_netconf(&conf("")).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && c.preserve_default_vlan);
        let c = BridgeConf::from_netconf(&conf(r#","isDefaultGateway":true"#)).unwrap();
        assert!(c.is_gateway);
    }

    #[test]
    fn bad_values_are_refused() {
        for (extra, code) in [
            (r#","vlan":5000"#, ErrorCode::InvalidConfig),
            (r#","mtu":10"#, ErrorCode::InvalidConfig),
            (r#","ipMasq":"yes""#, ErrorCode::Decode),
            (r#","ipMsq":true"#, ErrorCode::UnsupportedField),
            (r#","vlanTrunk":[{"id":5}]"#, ErrorCode::UnsupportedField),
            (r#","bridge":"a/b""#, ErrorCode::InvalidConfig),
        ] {
            assert_eq!(
                BridgeConf::from_netconf(&conf(extra)).unwrap_err().code,
                code,
                "{extra}"
            );
        }
        let no_ipam =
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"skiff-bridge"}"#).unwrap();
        assert_eq!(
            BridgeConf::from_netconf(&no_ipam).unwrap_err().code,
            ErrorCode::InvalidConfig
        );
    }

    #[test]
    fn runtime_args() {
        let c = conf(
            r#","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":53,"containerPort":53,"protocol":"UDP","hostIP":"127.0.0.1"}],"mac":"02:00:00:00:00:01"}"#,
        );
        let a = RuntimeArgs::from_netconf(&c).unwrap();
        assert_eq!(a.port_mappings.len(), 2);
        assert_eq!(a.port_mappings[1].protocol, Protocol::Udp);
        assert_eq!(a.mac, Some([2, 0, 0, 0, 0, 1]));
        let bad = conf(r#","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}"#);
        assert_eq!(
            RuntimeArgs::from_netconf(&bad).unwrap_err().code,
            ErrorCode::InvalidConfig
        );
    }
}
