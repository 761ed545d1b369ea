//! The files a ConfigMap or Secret volume projects, computed from the object
//! exactly as kubelet does: every key, or the listed `items` with their paths
//! and modes; missing keys are an error unless the reference is optional.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret};

use super::error::VolumeError;

/// The mode of projected files when the volume sets no `defaultMode`.
pub(crate) const DEFAULT_MODE: u32 = 0o644;

/// One file to project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → file.
pub(crate) type Payload = BTreeMap<String, FileProjection>;

/// A mode from the API (`defaultMode`, `items[].mode`), or `default`.
pub(crate) fn file_mode(mode: Option<i32>, default: u32, path: &str) -> Result<u32, VolumeError> {
    match mode {
        None => Ok(default),
        Some(m) if (0..=0o777).contains(&m) => Ok(m.unsigned_abs()),
        Some(m) => Err(VolumeError::InvalidMode {
            path: path.to_string(),
            mode: m,
        }),
    }
}

pub(crate) fn config_map_payload(
    config_map: &ConfigMap,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let lookup = |key: &str| {
        config_map
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                config_map
                    .binary_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.clone())
            })
    };
    let keys = config_map
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(config_map.binary_data.iter().flat_map(|d| d.keys()));
    build(
        keys,
        lookup,
        items,
        default_mode,
        optional,
        ("configmap", "config"),
    )
}

pub(crate) fn secret_payload(
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    // Only `data`: `stringData` is write-only and merged into `data` by the API server.
    let lookup = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
    };
    let keys = secret.data.iter().flat_map(|d| d.keys());
    build(
        keys,
        lookup,
        items,
        default_mode,
        optional,
        ("secret", "secret"),
    )
}

fn build<'a>(
    all_keys: impl Iterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    (kind, key_kind): (&'static str, &'static str),
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for key in all_keys {
                if let Some(data) = lookup(key) {
                    payload.insert(
                        key.clone(),
                        FileProjection {
                            data,
                            mode: default_mode,
                        },
                    );
                }
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = lookup(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(VolumeError::MissingKey {
                        kind,
                        key_kind,
                        key: item.key.clone(),
                    });
                };
                let mode = file_mode(item.mode, default_mode, &item.path)?;
                payload.insert(item.path.clone(), FileProjection { data, mode });
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn config_map() -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([
                ("a".to_string(), "A".to_string()),
                ("b".to_string(), "B".to_string()),
            ])),
            binary_data: Some(BTreeMap::from([(
                "bin".to_string(),
                ByteString(vec![0, 1, 2]),
            )])),
            ..ConfigMap::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.to_string(),
            path: path.to_string(),
            mode,
        }
    }

    #[test]
    fn all_keys_with_default_mode() {
        let p = config_map_payload(&config_map(), None, 0o600, false).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
        assert_eq!(p["bin"].data, [0, 1, 2]);
        assert!(p.values().all(|f| f.mode == 0o600));
    }

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let items = [item("a", "x/a.txt", Some(0o400)), item("b", "b", None)];
        let p = config_map_payload(&config_map(), Some(&items), 0o644, false).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p["x/a.txt"],
            FileProjection {
                data: b"A".to_vec(),
                mode: 0o400
            }
        );
        assert_eq!(p["b"].mode, 0o644);
    }

    #[test]
    fn missing_key_is_an_error_unless_optional() {
        let items = [item("nope", "n", None)];
        let err = config_map_payload(&config_map(), Some(&items), 0o644, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configmap references non-existent config key: nope"
        );
        let p = config_map_payload(&config_map(), Some(&items), 0o644, true).unwrap();
        assert!(p.is_empty());
        let err = secret_payload(&Secret::default(), Some(&items), 0o644, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret references non-existent secret key: nope"
        );
    }

    #[test]
    fn modes_out_of_range_are_refused() {
        assert!(file_mode(Some(0o1777), 0o644, "x").is_err());
        assert!(file_mode(Some(-1), 0o644, "x").is_err());
        assert_eq!(file_mode(Some(0o755), 0o644, "x").unwrap(), 0o755);
    }
}
