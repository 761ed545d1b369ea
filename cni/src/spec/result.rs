use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Version;

/// A plugin's result, held in the 1.1 shape and written in whichever version the
/// configuration asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Reads a result of any supported version (0.3.x tags IPs with "version", which is
    /// dropped; unknown keys are ignored).
    pub fn from_value(value: Value) -> Result<CniResult, serde_json::Error> {
        serde_json::from_value(value)
    }

    pub fn to_value(&self, version: Version) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("cniVersion".into(), json!(version.as_str()));
            if version.is_legacy() {
                legacy_shape(map);
            }
        }
        v
    }

    pub fn to_json(&self, version: Version) -> String {
        serde_json::to_string_pretty(&self.to_value(version)).unwrap_or_default()
    }
}

/// 0.3.x/0.4.0 results: every IP carries its family, and interfaces and routes have only
/// the fields those versions define.
fn legacy_shape(map: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Array(ips)) = map.get_mut("ips") {
        for ip in ips.iter_mut() {
            if let Value::Object(ip) = ip {
                let v6 = ip
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains(':'));
                ip.insert("version".into(), json!(if v6 { "6" } else { "4" }));
            }
        }
    }
    if let Some(Value::Array(ifaces)) = map.get_mut("interfaces") {
        for i in ifaces.iter_mut().filter_map(Value::as_object_mut) {
            i.retain(|k, _| matches!(k.as_str(), "name" | "mac" | "sandbox"));
        }
    }
    if let Some(Value::Array(routes)) = map.get_mut("routes") {
        for r in routes.iter_mut().filter_map(Value::as_object_mut) {
            r.retain(|k, _| matches!(k.as_str(), "dst" | "gw"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "aa:bb:cc:dd:ee:ff".into(),
                mtu: Some(1500),
                ..Default::default()
            }],
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(0),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            routes: vec![Route {
                mtu: Some(1400),
                ..Route::new("0.0.0.0/0".parse().unwrap(), None)
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn writes_each_version() {
        let r = sample();
        let v1 = r.to_value(Version::V1_1_0);
        assert_eq!(v1["cniVersion"], "1.1.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["interfaces"][0]["mtu"], 1500);
        assert_eq!(v1["routes"][0]["mtu"], 1400);
        let v03 = r.to_value(Version::V0_3_1);
        assert_eq!(v03["ips"][0]["version"], "4");
        assert_eq!(v03["ips"][1]["version"], "6");
        assert!(v03["interfaces"][0].get("mtu").is_none());
        assert!(v03["routes"][0].get("mtu").is_none());
    }

    #[test]
    fn reads_what_it_writes_in_every_version() {
        for v in [Version::V0_3_0, Version::V0_4_0, Version::V1_0_0] {
            let back = CniResult::from_value(sample().to_value(v)).unwrap();
            assert_eq!(back.ips, sample().ips);
        }
    }
}
