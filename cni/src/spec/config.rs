use serde::Deserialize;
use serde_json::{Map, Value};

use super::{CniResult, Error, ErrorCode, Version};

/// One attachment named in a GC request's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The parts of a plugin configuration every plugin reads. The whole object stays in
/// `raw` so each plugin can decode its own keys and delegates get the input unchanged.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub version: Version,
    pub name: String,
    pub plugin_type: String,
    pub prev_result: Option<CniResult>,
    pub runtime_config: Map<String, Value>,
    pub valid_attachments: Option<Vec<Attachment>>,
    pub raw: Map<String, Value>,
    pub bytes: Vec<u8>,
}

/// Keys the runtime (libcni) adds to every plugin's configuration, or that the spec defines.
pub const COMMON_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "ipam",
    "dns",
    "args",
    "prevResult",
    "runtimeConfig",
    "capabilities",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
];

impl NetConf {
    pub fn parse(bytes: &[u8]) -> Result<NetConf, Error> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorCode::Decode, "failed to decode network configuration")
                .with_details(e.to_string())
        })?;
        let Value::Object(raw) = value else {
            return Err(Error::new(
                ErrorCode::Decode,
                "network configuration must be a JSON object",
            ));
        };
        let version = match raw.get("cniVersion") {
            Some(Value::String(v)) => Version::parse(v)?,
            // The spec treats a missing version as 0.1.0, which skiff does not speak.
            None => {
                return Err(Error::new(
                    ErrorCode::IncompatibleVersion,
                    "network configuration has no cniVersion",
                ));
            }
            Some(_) => return Err(Error::new(ErrorCode::Decode, "cniVersion must be a string")),
        };
        let name = string_field(&raw, "name")?.unwrap_or_default();
        validate_network_name(&name)?;
        let plugin_type = string_field(&raw, "type")?.unwrap_or_default();
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v) => Some(CniResult::from_value(v.clone()).map_err(|e| {
                Error::new(ErrorCode::Decode, "failed to decode prevResult")
                    .with_details(e.to_string())
            })?),
        };
        let runtime_config = match raw.get("runtimeConfig") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(Error::new(
                    ErrorCode::Decode,
                    "runtimeConfig must be an object",
                ));
            }
        };
        let valid_attachments = match raw.get("cni.dev/valid-attachments") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
                Error::new(
                    ErrorCode::Decode,
                    "failed to decode cni.dev/valid-attachments",
                )
                .with_details(e.to_string())
            })?),
        };
        Ok(NetConf {
            version,
            name,
            plugin_type,
            prev_result,
            runtime_config,
            valid_attachments,
            raw,
            bytes: bytes.to_vec(),
        })
    }

    /// Decodes the plugin's own view of the configuration. Keys that are neither common
    /// nor in `known` are refused (code 2) so a misspelt option is reported instead of
    /// silently ignored.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, known: &[&str]) -> Result<T, Error> {
        check_keys(&self.raw, known, "")?;
        serde_json::from_value(Value::Object(self.raw.clone())).map_err(|e| {
            Error::new(ErrorCode::Decode, "failed to decode network configuration")
                .with_details(e.to_string())
        })
    }

    /// The `ipam` section, if any.
    pub fn ipam(&self) -> Option<&Map<String, Value>> {
        self.raw.get("ipam").and_then(Value::as_object)
    }
}

pub(crate) fn check_keys(
    obj: &Map<String, Value>,
    known: &[&str],
    prefix: &str,
) -> Result<(), Error> {
    for key in obj.keys() {
        if COMMON_KEYS.contains(&key.as_str()) || known.contains(&key.as_str()) {
            continue;
        }
        let mut msg = format!("unsupported field {prefix}{key:?} in network configuration");
        if let Some(close) = closest(key, known.iter().chain(COMMON_KEYS)) {
            msg.push_str(&format!(" (did you mean {close:?}?)"));
        }
        return Err(Error::new(ErrorCode::UnsupportedField, msg));
    }
    Ok(())
}

fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| {
            (
                edit_distance(&key.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn string_field(raw: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::new(
            ErrorCode::Decode,
            format!("{key} must be a string"),
        )),
    }
}

/// Network names end up in file paths and firewall object names.
fn validate_network_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::config(format!(
            "invalid network name {name:?}: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_for_bad_configs() {
        assert_eq!(
            NetConf::parse(b"{not json").unwrap_err().code,
            ErrorCode::Decode
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"9.9.9","name":"n","type":"t"}"#)
                .unwrap_err()
                .code,
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"../x","type":"t"}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidConfig
        );
        let conf =
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"t","isGatway":true}"#)
                .unwrap();
        let err = conf.decode::<Value>(&["isGateway"]).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedField);
        assert!(
            err.msg.contains("did you mean \"isGateway\""),
            "{}",
            err.msg
        );
    }

    #[test]
    fn reads_valid_attachments() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(conf.valid_attachments.unwrap()[0].container_id, "a");
    }
}
