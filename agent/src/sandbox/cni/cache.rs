//! The result cache: what an ADD used and returned, kept on disk so DEL and CHECK get
//! the same configuration and prevResult after an agent restart, and GC knows every
//! attachment. Same layout and format as libcni's (`<dir>/results/<net>-<id>-<if>`,
//! kind `cniCacheV1`), so its tools can read it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniError;

const KIND: &str = "cniCacheV1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The network configuration list the ADD ran with.
    #[serde(with = "base64_bytes")]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub ifname: String,
    #[serde(rename = "networkName")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    /// The final result; absent while the ADD runs (or when it failed and its
    /// clean-up did too), which still tells DEL and GC what to remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

impl CachedAttachment {
    pub fn is_valid(&self) -> bool {
        self.kind == KIND
            && !self.container_id.is_empty()
            && !self.ifname.is_empty()
            && !self.network.is_empty()
    }

    pub(crate) fn new(
        network: &str,
        config: &[u8],
        container_id: &str,
        ifname: &str,
        netns: &Path,
    ) -> CachedAttachment {
        CachedAttachment {
            kind: KIND.into(),
            container_id: container_id.into(),
            config: config.to_vec(),
            ifname: ifname.into(),
            network: network.into(),
            netns: netns.display().to_string(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// `cache_dir` is libcni's cache directory (`/var/lib/cni` by default); results
    /// go in its `results` subdirectory.
    pub fn new(cache_dir: &Path) -> ResultCache {
        ResultCache {
            dir: cache_dir.join("results"),
        }
    }

    fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{network}-{container_id}-{ifname}"))
    }

    pub fn get(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let path = self.path(network, container_id, ifname);
        Ok(read(&path)?.filter(|c| c.container_id == container_id && c.ifname == ifname))
    }

    /// The attachment of `container_id`/`ifname` on whichever network it was made,
    /// so it can be removed even after the node's configuration changed.
    pub fn find(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let suffix = format!("-{container_id}-{ifname}");
        Ok(self
            .list_names()?
            .into_iter()
            .filter(|n| n.ends_with(&suffix))
            .filter_map(|n| read(&self.dir.join(n)).ok().flatten())
            .find(|c| c.container_id == container_id && c.ifname == ifname))
    }

    pub fn list(&self) -> Result<Vec<CachedAttachment>, CniError> {
        let mut out = Vec::new();
        for name in self.list_names()? {
            match read(&self.dir.join(&name)) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping unreadable CNI cache entry"),
            }
        }
        Ok(out)
    }

    /// Written to a temporary file and renamed, so a crash never leaves half an entry.
    pub fn put(&self, entry: &CachedAttachment) -> Result<(), CniError> {
        let path = self.path(&entry.network, &entry.container_id, &entry.ifname);
        let io_err = |action| {
            let path = path.clone();
            move |source| CniError::Io {
                path,
                action,
                source,
            }
        };
        fs::create_dir_all(&self.dir).map_err(io_err("create the directory of"))?;
        let bytes = serde_json::to_vec(entry)
            .map_err(|e| io_err("encode")(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        fs::write(&tmp, bytes).map_err(io_err("write"))?;
        fs::rename(&tmp, &path).map_err(io_err("write"))
    }

    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
        let path = self.path(network, container_id, ifname);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CniError::Io {
                path,
                action: "remove",
                source,
            }),
        }
    }

    fn list_names(&self) -> Result<Vec<String>, CniError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CniError::Io {
                    path: self.dir.clone(),
                    action: "list",
                    source,
                });
            }
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect())
    }
}

/// `None` for a missing file or one that is not a libcni v1 entry.
fn read(path: &Path) -> Result<Option<CachedAttachment>, CniError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CniError::Io {
                path: path.to_path_buf(),
                action: "read",
                source,
            });
        }
    };
    Ok(serde_json::from_slice::<CachedAttachment>(&bytes)
        .ok()
        .filter(CachedAttachment::is_valid))
}

/// Go encodes `[]byte` as standard base64; libcni's cache stores the configuration so.
mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_in_libcni_format() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(tmp.path());
        let mut entry = CachedAttachment::new(
            "pods",
            br#"{"name":"pods"}"#,
            "c1",
            "eth0",
            Path::new("/run/netns/x"),
        );
        entry.result = Some(serde_json::json!({"cniVersion":"1.0.0","ips":[]}));
        cache.put(&entry).unwrap();
        let file = tmp.path().join("results/pods-c1-eth0");
        let raw: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["config"], "eyJuYW1lIjoicG9kcyJ9");
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(
            cache.get("pods", "c1", "eth0").unwrap(),
            Some(entry.clone())
        );
        assert_eq!(cache.find("c1", "eth0").unwrap(), Some(entry.clone()));
        assert_eq!(cache.find("c2", "eth0").unwrap(), None);
        assert_eq!(cache.list().unwrap().len(), 1);
        cache.remove("pods", "c1", "eth0").unwrap();
        cache.remove("pods", "c1", "eth0").unwrap();
        assert!(cache.list().unwrap().is_empty());
    }
}
