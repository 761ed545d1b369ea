//! Loading a node's CNI network configuration the way libcni, containerd and the
//! kubelet do: the first `*.conflist`, `*.conf` or `*.json` file of the directory in
//! lexical order, a single plugin configuration wrapped into a one-plugin list.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use skiff_cni::spec::Version;

use super::CniError;

const EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// One plugin of a network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    pub plugin_type: String,
    /// Capabilities the plugin declares as supported (`"capabilities": {"portMappings": true}`):
    /// only these capability arguments reach it, in `runtimeConfig`.
    pub capabilities: Vec<String>,
    /// The plugin's configuration as written.
    pub conf: Map<String, Value>,
    /// The executable found for `plugin_type` in the plugin directories.
    pub binary: PathBuf,
}

/// A validated network configuration list and where its plugins live.
#[derive(Debug, Clone, PartialEq)]
pub struct CniConfig {
    name: String,
    version: Version,
    plugins: Vec<PluginConf>,
    disable_check: bool,
    disable_gc: bool,
    bytes: Vec<u8>,
    source: PathBuf,
    bin_dirs: Vec<PathBuf>,
}

impl CniConfig {
    /// The first configuration file of `conf_dir` in lexical order. A broken first
    /// file is an error rather than skipped (as containerd does), so a typo never
    /// silently puts pods on another network.
    pub fn load(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<CniConfig, CniError> {
        let entries = match fs::read_dir(conf_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CniError::NoConfig {
                    dir: conf_dir.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(CniError::Io {
                    path: conf_dir.to_path_buf(),
                    action: "list",
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
                    && p.is_file()
            })
            .collect();
        files.sort();
        let Some(first) = files.first() else {
            return Err(CniError::NoConfig {
                dir: conf_dir.to_path_buf(),
            });
        };
        CniConfig::from_file(first, bin_dirs)
    }

    pub fn from_file(path: &Path, bin_dirs: &[PathBuf]) -> Result<CniConfig, CniError> {
        let bytes = fs::read(path).map_err(|source| CniError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
        if path.extension().is_some_and(|e| e == "conflist") {
            CniConfig::from_list_bytes(&bytes, path, bin_dirs)
        } else {
            CniConfig::from_conf_bytes(&bytes, path, bin_dirs)
        }
    }

    /// A single plugin configuration (`.conf`, `.json`), as a list of one.
    pub fn from_conf_bytes(
        bytes: &[u8],
        source: &Path,
        bin_dirs: &[PathBuf],
    ) -> Result<CniConfig, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            path: source.to_path_buf(),
            reason,
        };
        let conf: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        if conf.contains_key("plugins") {
            return Err(invalid(
                "has a \"plugins\" list: name the file *.conflist".into(),
            ));
        }
        if conf
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(invalid("no plugin \"type\"".into()));
        }
        let list = json!({
            "name": conf.get("name").cloned().unwrap_or(Value::Null),
            "cniVersion": conf.get("cniVersion").cloned().unwrap_or(Value::Null),
            "plugins": [conf],
        });
        let bytes = serde_json::to_vec(&list).map_err(|e| invalid(e.to_string()))?;
        CniConfig::from_list_bytes(&bytes, source, bin_dirs)
    }

    /// A network configuration list (`.conflist`), validated, with every plugin's
    /// executable found in `bin_dirs`.
    pub fn from_list_bytes(
        bytes: &[u8],
        source: &Path,
        bin_dirs: &[PathBuf],
    ) -> Result<CniConfig, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            path: source.to_path_buf(),
            reason,
        };
        let list: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let name = match list.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(invalid("\"name\" must be a string".into())),
            None => return Err(invalid("no network \"name\"".into())),
        };
        if !valid_name(&name) {
            return Err(invalid(format!(
                "invalid network name {name:?}: must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
            )));
        }
        let version = pick_version(&list).map_err(invalid)?;
        let disable_check = read_bool(&list, "disableCheck").map_err(invalid)?;
        let disable_gc = read_bool(&list, "disableGC").map_err(invalid)?;
        let raw_plugins = match list.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => p,
            Some(Value::Array(_)) => return Err(invalid("no plugins in \"plugins\"".into())),
            Some(_) => return Err(invalid("\"plugins\" must be a list".into())),
            None => return Err(invalid("no \"plugins\" list".into())),
        };
        let mut plugins = Vec::with_capacity(raw_plugins.len());
        for (i, raw) in raw_plugins.iter().enumerate() {
            let Value::Object(conf) = raw else {
                return Err(invalid(format!("plugins[{i}] must be an object")));
            };
            let plugin_type = match conf.get("type") {
                Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => t.clone(),
                Some(Value::String(t)) => {
                    return Err(invalid(format!("plugins[{i}] has invalid type {t:?}")));
                }
                _ => return Err(invalid(format!("plugins[{i}] has no \"type\""))),
            };
            let capabilities = match conf.get("capabilities") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(caps)) => {
                    let mut on = Vec::new();
                    for (cap, v) in caps {
                        match v {
                            Value::Bool(true) => on.push(cap.clone()),
                            Value::Bool(false) => {}
                            _ => {
                                return Err(invalid(format!(
                                    "plugins[{i}].capabilities.{cap} must be true or false"
                                )));
                            }
                        }
                    }
                    on
                }
                Some(_) => {
                    return Err(invalid(format!(
                        "plugins[{i}].capabilities must be an object"
                    )));
                }
            };
            let binary =
                find_plugin(&plugin_type, bin_dirs).ok_or_else(|| CniError::PluginNotFound {
                    network: name.clone(),
                    plugin: plugin_type.clone(),
                    dirs: bin_dirs.to_vec(),
                })?;
            plugins.push(PluginConf {
                plugin_type,
                capabilities,
                conf: conf.clone(),
                binary,
            });
        }
        Ok(CniConfig {
            name,
            version,
            plugins,
            disable_check,
            disable_gc,
            bytes: bytes.to_vec(),
            source: source.to_path_buf(),
            bin_dirs: bin_dirs.to_vec(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn plugins(&self) -> &[PluginConf] {
        &self.plugins
    }

    pub fn disable_check(&self) -> bool {
        self.disable_check
    }

    pub fn disable_gc(&self) -> bool {
        self.disable_gc
    }

    /// The list as loaded (a single configuration already wrapped into a list).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn bin_dirs(&self) -> &[PathBuf] {
        &self.bin_dirs
    }
}

/// `cniVersion`, or the highest version this agent speaks among `cniVersions` and
/// `cniVersion` (libcni 1.1 lets one file serve runtimes of different ages).
fn pick_version(list: &Map<String, Value>) -> Result<Version, String> {
    let single = match list.get("cniVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.as_str()),
        Some(_) => return Err("\"cniVersion\" must be a string".into()),
    };
    let many = match list.get("cniVersions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().ok_or("\"cniVersions\" must hold strings"))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("\"cniVersions\" must be a list".into()),
    };
    if many.is_empty() {
        let Some(v) = single else {
            return Err("no \"cniVersion\"".into());
        };
        return Version::parse(v).map_err(|_| unsupported(v));
    }
    many.iter()
        .chain(single.iter())
        .filter_map(|v| Version::parse(v).ok())
        .max()
        .ok_or_else(|| unsupported(&many.join(", ")))
}

fn unsupported(v: &str) -> String {
    format!(
        "unsupported cniVersion {v} (this agent speaks {})",
        skiff_cni::spec::SUPPORTED_VERSIONS.join(", ")
    )
}

fn read_bool(list: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match list.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!("invalid value {other} for \"{key}\"")),
    }
}

/// Network names become file names and firewall object names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A plugin directory with executables named after `types`.
    fn bin_dir(types: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for t in types {
            let p = dir.path().join(t);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn list(text: &str, bins: &tempfile::TempDir) -> Result<CniConfig, CniError> {
        CniConfig::from_list_bytes(
            text.as_bytes(),
            Path::new("/x/10-net.conflist"),
            &[bins.path().to_path_buf()],
        )
    }

    #[test]
    fn reads_a_list_with_capabilities() {
        let bins = bin_dir(&["bridge", "portmap"]);
        let c = list(
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#,
            &bins,
        )
        .unwrap();
        assert_eq!(c.name(), "pods");
        assert_eq!(c.version(), Version::V1_0_0);
        assert_eq!(c.plugins()[1].capabilities, ["portMappings"]);
        assert_eq!(c.plugins()[0].binary, bins.path().join("bridge"));
        assert!(!c.disable_check());
    }

    #[test]
    fn picks_the_highest_known_of_cni_versions() {
        let bins = bin_dir(&["bridge"]);
        let c = list(
            r#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","9.0.0"],"name":"n","plugins":[{"type":"bridge"}]}"#,
            &bins,
        )
        .unwrap();
        assert_eq!(c.version(), Version::V1_1_0);
    }

    #[test]
    fn clear_errors_for_broken_lists() {
        let bins = bin_dir(&["bridge"]);
        for (text, needle) in [
            ("{", "not a JSON object"),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
                "no network \"name\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a b","plugins":[{"type":"bridge"}]}"#,
                "invalid network name",
            ),
            (
                r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"bridge"}]}"#,
                "unsupported cniVersion 0.2.0",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"bridge"}]}"#,
                "no \"cniVersion\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "no plugins",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]}"#,
                "plugins[0] has no \"type\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bridge"}]}"#,
                "invalid type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","disableGC":"maybe","plugins":[{"type":"bridge"}]}"#,
                "disableGC",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","capabilities":[]}]}"#,
                "capabilities must be an object",
            ),
        ] {
            let err = list(text, &bins).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("/x/10-net.conflist"), "{err}");
        }
        let err = list(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"nope"}]}"#,
            &bins,
        )
        .unwrap_err();
        assert!(
            matches!(err, CniError::PluginNotFound { ref plugin, .. } if plugin == "nope"),
            "{err}"
        );
    }

    #[test]
    fn loads_the_first_file_in_lexical_order_and_wraps_a_single_conf() {
        let bins = bin_dir(&["bridge", "other"]);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("README"), "not a config").unwrap();
        fs::write(
            dir.path().join("20-other.conflist"),
            r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"other"}]}"#,
        )
        .unwrap();
        fs::write(
            dir.path().join("10-pods.conf"),
            r#"{"cniVersion":"0.4.0","name":"pods","type":"bridge","bridge":"cni0"}"#,
        )
        .unwrap();
        let c = CniConfig::load(dir.path(), &[bins.path().to_path_buf()]).unwrap();
        assert_eq!(c.name(), "pods");
        assert_eq!(c.version(), Version::V0_4_0);
        assert_eq!(c.plugins().len(), 1);
        assert_eq!(c.plugins()[0].conf["bridge"], "cni0");
        assert!(c.source().ends_with("10-pods.conf"));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            CniConfig::load(empty.path(), &[]),
            Err(CniError::NoConfig { .. })
        ));
        assert!(matches!(
            CniConfig::load(&empty.path().join("missing"), &[]),
            Err(CniError::NoConfig { .. })
        ));
    }

    #[test]
    fn a_single_conf_needs_a_type() {
        let bins = bin_dir(&["bridge"]);
        let err = CniConfig::from_conf_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
            Path::new("/x/10.conf"),
            &[bins.path().to_path_buf()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("*.conflist"), "{err}");
    }
}
