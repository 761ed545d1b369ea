use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::range::{Range, RangeSet};
use crate::spec::{Environment, Error, ErrorCode, NetConf, Route};

/// Where host-local keeps its allocations; sharing it is what lets a node switch plugins.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

const IPAM_KEYS: &[&str] = &[
    "type",
    "ranges",
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "routes",
    "dataDir",
    "resolvConf",
];
const RANGE_KEYS: &[&str] = &["subnet", "rangeStart", "rangeEnd", "gateway"];

/// The `ipam` section of a network configuration, host-local's format, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// One address is taken from each set; the legacy single-range form is set 0.
    pub range_sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
}

impl IpamConfig {
    pub fn from_netconf(conf: &NetConf) -> Result<IpamConfig, Error> {
        let ipam = section(conf)?;
        check_keys(ipam, IPAM_KEYS, "ipam")?;
        let mut range_sets = Vec::new();
        if ipam.contains_key("subnet") {
            let range = parse_range(ipam, "ipam")?;
            range_sets.push(RangeSet::new(vec![range]).map_err(|e| invalid("ipam", e))?);
        } else if let Some(field) = ["rangeStart", "rangeEnd", "gateway"]
            .into_iter()
            .find(|k| ipam.contains_key(*k))
        {
            return Err(Error::config(format!(
                "ipam.{field} is set but ipam.subnet is not"
            )));
        }
        match ipam.get("ranges") {
            None | Some(Value::Null) => {}
            Some(Value::Array(sets)) => {
                for (i, set) in sets.iter().enumerate() {
                    let path = format!("ipam.ranges[{i}]");
                    let Value::Array(items) = set else {
                        return Err(Error::config(format!("{path} must be an array of ranges")));
                    };
                    let mut ranges = Vec::with_capacity(items.len());
                    for (j, item) in items.iter().enumerate() {
                        let path = format!("{path}[{j}]");
                        let Value::Object(obj) = item else {
                            return Err(Error::config(format!("{path} must be an object")));
                        };
                        check_keys(obj, RANGE_KEYS, &path)?;
                        ranges.push(parse_range(obj, &path)?);
                    }
                    range_sets.push(RangeSet::new(ranges).map_err(|e| invalid(&path, e))?);
                }
            }
            Some(_) => {
                return Err(Error::config(
                    "ipam.ranges must be an array of range sets (arrays of ranges)",
                ));
            }
        }
        if range_sets.is_empty() {
            return Err(Error::config(
                "ipam: no IP ranges specified (set ipam.ranges or ipam.subnet)",
            ));
        }
        for (i, a) in range_sets.iter().enumerate() {
            if let Some(j) = (i + 1..range_sets.len()).find(|&j| a.overlaps(&range_sets[j])) {
                return Err(Error::config(format!(
                    "ipam: range set {i} ({a}) overlaps with range set {j} ({})",
                    range_sets[j]
                )));
            }
        }
        let routes = match ipam.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    serde_json::from_value::<Route>(r.clone()).map_err(|e| {
                        Error::config(format!("invalid ipam.routes[{i}]"))
                            .with_details(e.to_string())
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Error::config("ipam.routes must be an array")),
        };
        Ok(IpamConfig {
            range_sets,
            routes,
            data_dir: data_dir(ipam)?,
            resolv_conf: optional_str(ipam, "resolvConf", "ipam")?.map(PathBuf::from),
        })
    }

    /// The range set (index and set) holding `ip`.
    pub fn set_for(&self, ip: IpAddr) -> Option<(usize, &RangeSet)> {
        self.range_sets
            .iter()
            .enumerate()
            .find(|(_, s)| s.contains(ip))
    }
}

/// Only the data directory: DEL and GC must still clean up after the ranges were edited
/// into something invalid, or the runtime would retry them forever.
pub fn data_dir_of(conf: &NetConf) -> Result<PathBuf, Error> {
    data_dir(section(conf)?)
}

fn section(conf: &NetConf) -> Result<&Map<String, Value>, Error> {
    match conf.raw.get("ipam") {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(Error::config(
            "IPAM config missing 'ipam' key in the network configuration",
        )),
        Some(_) => Err(Error::config("ipam must be an object")),
    }
}

fn data_dir(ipam: &Map<String, Value>) -> Result<PathBuf, Error> {
    Ok(optional_str(ipam, "dataDir", "ipam")?
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from))
}

fn parse_range(obj: &Map<String, Value>, path: &str) -> Result<Range, Error> {
    let Some(subnet) = optional_str(obj, "subnet", path)? else {
        return Err(Error::config(format!("{path}.subnet is required")));
    };
    let subnet: IpNet = subnet.parse().map_err(|_| {
        Error::config(format!(
            "{path}.subnet: invalid CIDR {subnet:?} (expected e.g. \"10.22.0.0/16\")"
        ))
    })?;
    let ip = |key: &str| -> Result<Option<IpAddr>, Error> {
        optional_str(obj, key, path)?
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| Error::config(format!("{path}.{key}: invalid IP address {s:?}")))
            })
            .transpose()
    };
    Range::new(subnet, ip("rangeStart")?, ip("rangeEnd")?, ip("gateway")?)
        .map_err(|e| invalid(path, e))
}

fn invalid(path: &str, e: impl std::fmt::Display) -> Error {
    Error::config(format!("invalid {path}: {e}"))
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::config(format!("{path}.{key} must be a string"))),
    }
}

/// The addresses the runtime asked for, from the `ips` capability, `args.cni.ips` and
/// `CNI_ARGS` `IP=a,b`, in that order and without repeats. A prefix length on an address
/// is accepted and ignored: the subnet decides the prefix.
pub fn requested_ips(conf: &NetConf, env: &Environment) -> Result<Vec<IpAddr>, Error> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |ip: IpAddr| {
        if !out.contains(&ip) {
            out.push(ip);
        }
    };
    let lists = [
        (conf.runtime_config.get("ips"), "runtimeConfig.ips"),
        (
            conf.raw
                .get("args")
                .and_then(|a| a.get("cni"))
                .and_then(|c| c.get("ips")),
            "args.cni.ips",
        ),
    ];
    for (list, path) in lists {
        match list {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let parsed = item.as_str().and_then(parse_ip);
                    let Some(ip) = parsed else {
                        return Err(Error::config(format!(
                            "{path}[{i}]: invalid IP address {item}"
                        )));
                    };
                    push(ip);
                }
            }
            Some(_) => return Err(Error::config(format!("{path} must be an array"))),
        }
    }
    if let Some(list) = env.args.get("IP") {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some(ip) = parse_ip(item) else {
                return Err(Error::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_ARGS IP: invalid IP address {item:?}"),
                ));
            };
            push(ip);
        }
    }
    Ok(out)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.split_once('/') {
        Some(_) => s.parse::<IpNet>().ok().map(|n| n.addr()),
        None => s.parse().ok(),
    }
}

/// Refuses keys outside `known`, suggesting the closest known one, so a misspelt option
/// is reported instead of silently ignored.
fn check_keys(obj: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), Error> {
    let Some(key) = obj.keys().find(|k| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let mut msg = format!("unsupported field {path}.{key}");
    let lower = key.to_ascii_lowercase();
    let close = known
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d);
    if let Some((_, c)) = close {
        msg.push_str(&format!(" (did you mean {c:?}?)"));
    }
    Err(Error::new(ErrorCode::UnsupportedField, msg))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn conf(ipam: &str) -> NetConf {
        NetConf::parse(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{ipam}}}"#).as_bytes(),
        )
        .unwrap()
    }

    fn parse(ipam: &str) -> Result<IpamConfig, Error> {
        IpamConfig::from_netconf(&conf(ipam))
    }

    fn err(ipam: &str) -> Error {
        parse(ipam).unwrap_err()
    }

    #[test]
    fn legacy_form_comes_first() {
        let c = parse(
            r#"{"type":"skiff-ipam","subnet":"10.1.0.0/24","ranges":[[{"subnet":"fd00::/64"}]],
                "routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/tmp/x","resolvConf":"/etc/r"}"#,
        )
        .unwrap();
        assert_eq!(c.range_sets.len(), 2);
        assert!(c.range_sets[0].is_ipv4());
        assert!(!c.range_sets[1].is_ipv4());
        assert_eq!(c.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/r")));
        let c = parse(r#"{"subnet":"10.1.0.0/24"}"#).unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.routes.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(
            r#"{"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.2.0.0/24","rangeEnd":"10.3.0.1"}]]}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert_eq!(
            e.msg,
            "invalid ipam.ranges[0][1]: rangeEnd 10.3.0.1 is not in subnet 10.2.0.0/24"
        );
        let e = err(r#"{"subnet":"10.1.0.0/24","rangeStart":"banana"}"#);
        assert_eq!(e.msg, "ipam.rangeStart: invalid IP address \"banana\"");
        let e = err(r#"{"subnet":"10.1.0.0"}"#);
        assert!(e.msg.starts_with("ipam.subnet: invalid CIDR"), "{}", e.msg);
        let e = err(r#"{"ranges":[[{"subnet":"10.1.0.0/16"}],[{"subnet":"10.1.2.0/24"}]]}"#);
        assert!(e.msg.contains("range set 0"), "{}", e.msg);
        let e = err(r#"{"ranges":[[{"subnet":"10.1.0.0/24"}, {"subnet":"fd00::/64"}]]}"#);
        assert_eq!(e.msg, "invalid ipam.ranges[0]: mixes IPv4 and IPv6 ranges");
        let e = err(r#"{"ranges":[[]]}"#);
        assert_eq!(e.msg, "invalid ipam.ranges[0]: empty range set");
        assert!(err(r#"{"type":"x"}"#).msg.contains("no IP ranges"));
        assert!(
            err(r#"{"rangeStart":"10.0.0.1"}"#)
                .msg
                .contains("ipam.subnet")
        );
        assert!(
            err(r#"{"subnet":5}"#)
                .msg
                .contains("ipam.subnet must be a string")
        );
        assert!(
            err(r#"{"subnet":"10.1.0.0/24","routes":[{"dst":"x"}]}"#)
                .msg
                .contains("ipam.routes[0]")
        );
        let no_ipam = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#).unwrap();
        assert_eq!(
            IpamConfig::from_netconf(&no_ipam).unwrap_err().code,
            ErrorCode::InvalidConfig
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_a_hint() {
        let e = err(r#"{"subnet":"10.1.0.0/24","rangestart":"10.1.0.5"}"#);
        assert_eq!(e.code, ErrorCode::UnsupportedField);
        assert_eq!(
            e.msg,
            "unsupported field ipam.rangestart (did you mean \"rangeStart\"?)"
        );
        let e = err(r#"{"ranges":[[{"subnet":"10.1.0.0/24","gw":"10.1.0.1"}]]}"#);
        assert_eq!(e.code, ErrorCode::UnsupportedField);
        assert!(e.msg.starts_with("unsupported field ipam.ranges[0][0].gw"));
    }

    #[test]
    fn requested_ips_from_all_three_places() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"subnet":"10.1.0.0/24"},
                "runtimeConfig":{"ips":["10.1.0.7/24"]},"args":{"cni":{"ips":["10.1.0.8","10.1.0.7"]}}}"#,
        )
        .unwrap();
        let vars: HashMap<String, String> = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/x"),
            ("CNI_PATH", "/x"),
            ("CNI_ARGS", "IP=10.1.0.9, fd00::9;K8S_POD_NAME=p"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = Environment::from_vars(&vars).unwrap();
        let got: Vec<String> = requested_ips(&c, &env)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.1.0.7", "10.1.0.8", "10.1.0.9", "fd00::9"]);
    }
}
