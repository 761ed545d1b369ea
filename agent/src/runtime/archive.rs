//! Reading image archives: an OCI image layout in a tar (`ctr export`, `skiff image`,
//! `docker save` since Docker 25) or the classic `docker save` tar (manifest.json). Blocking
//! file I/O: callers in async code run it on the blocking pool.
//!
//! The archive is indexed once (name → offset and size); blobs are then streamed from their
//! offsets, so nothing is unpacked to disk.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::image::{
    self, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ConfigFile, Descriptor, Index, Manifest,
    is_index, is_manifest, media_type,
};
use super::reference;
use super::{Error, Result};

/// JSON documents larger than this are refused rather than read into memory.
const MAX_DOCUMENT: u64 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub size: u64,
}

/// Where a blob's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobData {
    /// A byte range of the archive file.
    Range(Entry),
    /// Made during planning (the manifest of a `docker save` image).
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBlob {
    pub desc: Descriptor,
    pub data: BlobData,
}

/// What importing an archive means: the blobs to store (children before the documents that
/// reference them) and the names to register.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPlan {
    pub blobs: Vec<PlannedBlob>,
    pub images: Vec<(String, Descriptor)>,
}

/// An indexed tar archive.
pub struct Archive {
    path: PathBuf,
    entries: HashMap<String, Entry>,
    links: HashMap<String, String>,
}

fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Archive {
    pub fn open(path: &Path) -> Result<Archive> {
        let bad = |reason: String| Error::Archive {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut magic = [0u8; 2];
        let n = file
            .read(&mut magic)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 2 && magic == [0x1f, 0x8b] {
            return Err(bad(
                "the archive is gzip-compressed; decompress it first (gunzip)".into(),
            ));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("seek", path, e))?;
        let mut tar = tar::Archive::new(BufReader::new(file));
        let mut entries = HashMap::new();
        let mut links = HashMap::new();
        for entry in tar
            .entries()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?
        {
            let entry = entry.map_err(|e| bad(format!("corrupt tar: {e}")))?;
            let name = entry
                .path()
                .map_err(|e| bad(format!("bad entry name: {e}")))?
                .to_string_lossy()
                .into_owned();
            let name = clean(&name);
            let kind = entry.header().entry_type();
            if kind.is_file() {
                entries.insert(
                    name,
                    Entry {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Ok(Some(target)) = entry.link_name() else {
                    continue;
                };
                let target = target.to_string_lossy().into_owned();
                // Symlinks are relative to their directory, hard links to the archive root.
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    clean(&format!("{dir}/{target}"))
                } else {
                    clean(&target)
                };
                links.insert(name, resolved);
            }
        }
        Ok(Archive {
            path: path.to_path_buf(),
            entries,
            links,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The regular file `name` (following links within the archive).
    pub fn entry(&self, name: &str) -> Option<Entry> {
        let mut name = clean(name);
        for _ in 0..8 {
            if let Some(e) = self.entries.get(&name) {
                return Some(*e);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Archive {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn open_range(&self, e: Entry) -> Result<std::io::Take<File>> {
        let mut f = File::open(&self.path).map_err(|err| Error::io("open", &self.path, err))?;
        f.seek(SeekFrom::Start(e.offset))
            .map_err(|err| Error::io("seek", &self.path, err))?;
        Ok(f.take(e.size))
    }

    /// The whole of a (small) file of the archive.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let e = self
            .entry(name)
            .ok_or_else(|| self.bad(format!("{name} is missing")))?;
        if e.size > MAX_DOCUMENT {
            return Err(self.bad(format!("{name} is {} bytes, too large", e.size)));
        }
        let mut buf = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
        self.open_range(e)?
            .read_to_end(&mut buf)
            .map_err(|err| Error::io("read", &self.path, err))?;
        Ok(buf)
    }

    fn head(&self, e: Entry, n: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        self.open_range(e)?
            .take(n as u64)
            .read_to_end(&mut buf)
            .map_err(|err| Error::io("read", &self.path, err))?;
        Ok(buf)
    }

    fn sha256(&self, e: Entry) -> Result<String> {
        let mut r = self.open_range(e)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|err| Error::io("read", &self.path, err))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!("sha256:{:x}", h.finalize()))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("{name} in {}", self.path.display()),
            source,
        })
    }

    fn blob_path(&self, digest: &str) -> Result<String> {
        if !image::is_valid_digest(digest) {
            return Err(self.bad(format!("invalid digest {digest:?}")));
        }
        Ok(format!("blobs/{}", digest.replacen(':', "/", 1)))
    }

    /// What to import. An OCI layout is used when the archive has one with named images;
    /// otherwise a Docker manifest.json.
    pub fn plan(&self) -> Result<ImportPlan> {
        if self.entry("index.json").is_some() {
            let plan = self.plan_oci()?;
            if !plan.images.is_empty() || self.entry("manifest.json").is_none() {
                return Ok(plan);
            }
        }
        if self.entry("manifest.json").is_some() {
            return self.plan_docker();
        }
        Err(self.bad(
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
        ))
    }

    fn plan_oci(&self) -> Result<ImportPlan> {
        let index: Index = self.json("index.json")?;
        let mut plan = ImportPlan::default();
        let mut seen = HashSet::new();
        for desc in &index.manifests {
            self.walk(desc, &mut plan, &mut seen)?;
            let name = desc
                .annotations
                .get(ANNOTATION_IMAGE_NAME)
                .or_else(|| {
                    // A bare tag ("1") names nothing without a repository.
                    desc.annotations
                        .get(ANNOTATION_REF_NAME)
                        .filter(|r| r.contains('/') || r.contains(':'))
                })
                .and_then(|n| reference::normalize(n));
            if let Some(name) = name {
                let mut target = desc.clone();
                target.annotations.clear();
                target.platform = None;
                plan.images.push((name, target));
            }
        }
        Ok(plan)
    }

    fn walk(
        &self,
        desc: &Descriptor,
        plan: &mut ImportPlan,
        seen: &mut HashSet<String>,
    ) -> Result<()> {
        if seen.contains(&desc.digest) {
            return Ok(());
        }
        let path = self.blob_path(&desc.digest)?;
        let entry = self
            .entry(&path)
            .ok_or_else(|| self.bad(format!("{path} is missing")))?;
        if is_index(&desc.media_type) {
            let index: Index = self.json(&path)?;
            for child in &index.manifests {
                // Exports often carry other platforms' manifests without their blobs.
                let present = self
                    .blob_path(&child.digest)
                    .ok()
                    .is_some_and(|p| self.entry(&p).is_some());
                if present {
                    self.walk(child, plan, seen)?;
                }
            }
        } else if is_manifest(&desc.media_type) {
            let manifest: Manifest = self.json(&path)?;
            self.walk(&manifest.config, plan, seen)?;
            for layer in &manifest.layers {
                self.walk(layer, plan, seen)?;
            }
        }
        seen.insert(desc.digest.clone());
        let mut stored = desc.clone();
        stored.annotations.clear();
        stored.platform = None;
        plan.blobs.push(PlannedBlob {
            desc: stored,
            data: BlobData::Range(entry),
        });
        Ok(())
    }

    fn plan_docker(&self) -> Result<ImportPlan> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct DockerEntry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<DockerEntry> = self.json("manifest.json")?;
        let mut plan = ImportPlan::default();
        let mut seen = HashSet::new();
        for e in entries {
            let config_bytes = self.read(&e.config)?;
            let config: ConfigFile =
                serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
                    what: format!("{} in {}", e.config, self.path.display()),
                    source,
                })?;
            if config.rootfs.diff_ids.len() != e.layers.len() {
                return Err(self.bad(format!(
                    "{}: {} layers but {} diff_ids",
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            let mut layers = Vec::with_capacity(e.layers.len());
            for (layer, diff_id) in e.layers.iter().zip(&config.rootfs.diff_ids) {
                let entry = self
                    .entry(layer)
                    .ok_or_else(|| self.bad(format!("{layer} is missing")))?;
                let mt = image::layer_media_type(&self.head(entry, 4)?);
                // An uncompressed layer's digest is its diff ID; containerd verifies it.
                let digest = if mt == media_type::OCI_LAYER {
                    diff_id.clone()
                } else {
                    self.sha256(entry)?
                };
                let desc = Descriptor::new(mt, digest, entry.size);
                if seen.insert(desc.digest.clone()) {
                    plan.blobs.push(PlannedBlob {
                        desc: desc.clone(),
                        data: BlobData::Range(entry),
                    });
                }
                layers.push(desc);
            }
            let config_desc = Descriptor::of(media_type::OCI_CONFIG, &config_bytes);
            if seen.insert(config_desc.digest.clone()) {
                plan.blobs.push(PlannedBlob {
                    desc: config_desc.clone(),
                    data: BlobData::Bytes(config_bytes),
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(media_type::OCI_MANIFEST.into()),
                config: config_desc,
                layers,
                annotations: Default::default(),
            };
            let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
                what: "generated manifest".into(),
                source,
            })?;
            let manifest_desc = Descriptor::of(media_type::OCI_MANIFEST, &manifest_bytes);
            if seen.insert(manifest_desc.digest.clone()) {
                plan.blobs.push(PlannedBlob {
                    desc: manifest_desc.clone(),
                    data: BlobData::Bytes(manifest_bytes),
                });
            }
            for tag in e.repo_tags.unwrap_or_default() {
                if let Some(name) = reference::normalize(&tag) {
                    plan.images.push((name, manifest_desc.clone()));
                }
            }
        }
        Ok(plan)
    }
}
