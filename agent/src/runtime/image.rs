//! OCI (and Docker schema 2) image documents, digests and chain IDs.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::types::ImageConfig;

pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}

/// The labels containerd's garbage collector follows, and the ones its tools expect.
pub mod gc_label {
    pub const CONFIG: &str = "containerd.io/gc.ref.content.config";
    pub const EXPIRE: &str = "containerd.io/gc.expire";
    pub const UNCOMPRESSED: &str = "containerd.io/uncompressed";

    pub fn layer(i: usize) -> String {
        format!("containerd.io/gc.ref.content.l.{i}")
    }
    pub fn manifest(i: usize) -> String {
        format!("containerd.io/gc.ref.content.m.{i}")
    }
    pub fn snapshot(snapshotter: &str) -> String {
        format!("containerd.io/gc.ref.snapshot.{snapshotter}")
    }
}

/// Annotations naming an image in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

pub fn is_index(mt: &str) -> bool {
    mt == media_type::OCI_INDEX || mt == media_type::DOCKER_MANIFEST_LIST
}

pub fn is_manifest(mt: &str) -> bool {
    mt == media_type::OCI_MANIFEST || mt == media_type::DOCKER_MANIFEST
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: String, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        }
    }

    /// The descriptor of these bytes.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, sha256_digest(bytes), bytes.len() as u64)
    }

    pub fn to_proto(&self) -> containerd_client::types::Descriptor {
        containerd_client::types::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            annotations: self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        }
    }

    pub fn from_proto(d: &containerd_client::types::Descriptor) -> Self {
        Descriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            annotations: d
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            platform: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The image configuration document (OCI image-spec `config.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// `sha256:<hex>` of the bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// True for `sha256:` followed by 64 lower-case hex digits: the only digests accepted as file
/// names or snapshot keys.
pub fn is_valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The chain ID of each layer: the identity of the snapshot holding that layer and all below
/// it. chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// This machine's platform, in OCI words.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.into(),
        os: std::env::consts::OS.into(),
        variant: None,
    }
}

/// The manifest of an index for `platform`: an exact os/architecture match, else (for
/// indexes that name no platforms) the only manifest.
pub fn select_manifest<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates = || {
        index
            .manifests
            .iter()
            .filter(|d| is_manifest(&d.media_type))
    };
    candidates()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
        })
        .or_else(|| {
            let mut all = candidates();
            let first = all.next()?;
            (first.platform.is_none() && all.next().is_none()).then_some(first)
        })
}

/// The layer media type for a blob, from its first bytes.
pub fn layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        media_type::OCI_LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        media_type::OCI_LAYER_ZSTD
    } else {
        media_type::OCI_LAYER
    }
}

/// The run-time view of a config document.
pub fn image_config(
    name: &str,
    target_digest: &str,
    manifest_digest: &str,
    manifest: &Manifest,
    config: &ConfigFile,
) -> ImageConfig {
    let c = config.config.clone().unwrap_or_default();
    ImageConfig {
        name: name.to_string(),
        target_digest: target_digest.to_string(),
        manifest_digest: manifest_digest.to_string(),
        config_digest: manifest.config.digest.clone(),
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        labels: c.labels.unwrap_or_default(),
        diff_ids: config.rootfs.diff_ids.clone(),
        chain_id: chain_ids(&config.rootfs.diff_ids).pop().unwrap_or_default(),
        size: manifest
            .layers
            .iter()
            .map(|l| u64::try_from(l.size).unwrap_or(0))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_match_the_image_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let c = sha256_digest(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = sha256_digest(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], sha256_digest(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_valid_digest(&sha256_digest(b"")));
        assert!(!is_valid_digest("sha256:../../etc"));
        assert!(!is_valid_digest("md5:00"));
    }

    #[test]
    fn manifest_selection() {
        let d = |arch: Option<&str>| Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: sha256_digest(arch.unwrap_or("none").as_bytes()),
            size: 1,
            platform: arch.map(|a| Platform {
                architecture: a.into(),
                os: "linux".into(),
                variant: None,
            }),
            ..Default::default()
        };
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        let index = Index {
            schema_version: 2,
            manifests: vec![d(Some("arm64")), d(Some("amd64"))],
            ..Default::default()
        };
        assert_eq!(select_manifest(&index, &amd), Some(&index.manifests[1]));
        let index = Index {
            schema_version: 2,
            manifests: vec![d(Some("arm64"))],
            ..Default::default()
        };
        assert_eq!(select_manifest(&index, &amd), None);
        let index = Index {
            schema_version: 2,
            manifests: vec![d(None)],
            ..Default::default()
        };
        assert_eq!(select_manifest(&index, &amd), Some(&index.manifests[0]));
    }

    #[test]
    fn layer_compression_from_magic() {
        assert_eq!(
            layer_media_type(&[0x1f, 0x8b, 8]),
            media_type::OCI_LAYER_GZIP
        );
        assert_eq!(
            layer_media_type(&[0x28, 0xb5, 0x2f, 0xfd]),
            media_type::OCI_LAYER_ZSTD
        );
        assert_eq!(layer_media_type(b"bin/\0\0"), media_type::OCI_LAYER);
    }

    #[test]
    fn config_with_nulls_parses() {
        let json = r#"{"architecture":"amd64","os":"linux",
            "config":{"Env":null,"Cmd":["sh"],"Entrypoint":null,"User":""},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let cfg: ConfigFile = serde_json::from_str(json).unwrap();
        let manifest = Manifest {
            schema_version: 2,
            config: Descriptor::of(media_type::OCI_CONFIG, json.as_bytes()),
            ..Default::default()
        };
        let ic = image_config("n", "t", "m", &manifest, &cfg);
        assert_eq!(ic.cmd, vec!["sh"]);
        assert!(ic.env.is_empty());
        assert_eq!(ic.chain_id, "sha256:aa");
        assert_eq!(ic.config_digest, manifest.config.digest);
    }
}
