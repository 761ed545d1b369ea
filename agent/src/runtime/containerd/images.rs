//! Images: resolving a name to its platform manifest and configuration, storing blobs and
//! registering names ([`ImageWriter`], also what a registry puller uses), importing archives,
//! and unpacking layers into snapshots through the diff service.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, DeleteImageRequest, GetImageRequest, Image,
    ListImagesRequest, UpdateImageRequest,
};
use containerd_client::tonic::Code;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::{Containerd, unique};
use crate::runtime::archive::{Archive, BlobData};
use crate::runtime::image::{
    self, ConfigFile, Descriptor, Index, Manifest, gc_label, is_index, is_manifest,
};
use crate::runtime::{Error, ImageConfig, ImageRef, Result};

/// Manifests, indexes and configs larger than this are refused.
const MAX_DOCUMENT: usize = 16 << 20;

/// An image resolved for this platform.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub target: Descriptor,
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config_file: ConfigFile,
    config: ImageConfig,
}

impl ResolvedImage {
    /// The image's configuration, under the name it was asked for.
    pub fn config_for(&self, name: &str) -> ImageConfig {
        let mut c = self.config.clone();
        c.name = name.to_string();
        c
    }

    pub fn chain_id(&self) -> &str {
        &self.config.chain_id
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_string(),
        source,
    })
}

/// The garbage-collection references of a manifest or index: what it keeps alive.
fn gc_labels(desc: &Descriptor, bytes: &[u8]) -> Result<HashMap<String, String>> {
    let mut labels = HashMap::new();
    if is_index(&desc.media_type) {
        let index: Index = json(&desc.digest, bytes)?;
        for (i, m) in index.manifests.iter().enumerate() {
            labels.insert(gc_label::manifest(i), m.digest.clone());
        }
    } else if is_manifest(&desc.media_type) {
        let manifest: Manifest = json(&desc.digest, bytes)?;
        labels.insert(gc_label::CONFIG.to_string(), manifest.config.digest.clone());
        for (i, l) in manifest.layers.iter().enumerate() {
            labels.insert(gc_label::layer(i), l.digest.clone());
        }
    }
    Ok(labels)
}

impl Containerd {
    pub(crate) async fn get_image(&self, name: &str) -> Result<Option<Image>> {
        let req = GetImageRequest {
            name: name.to_string(),
        };
        match self.client.images().get(self.req(req)).await {
            Ok(r) => Ok(r.into_inner().image),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Error::grpc("get image", name, s)),
        }
    }

    /// Every image name in the namespace.
    pub async fn list_images(&self) -> Result<Vec<ImageRef>> {
        let req = ListImagesRequest { filters: vec![] };
        let images = self
            .client
            .images()
            .list(self.req(req))
            .await
            .map_err(|s| Error::grpc("list images", "", s))?
            .into_inner()
            .images;
        let mut out: Vec<ImageRef> = images
            .into_iter()
            .map(|i| ImageRef {
                digest: i.target.map(|t| t.digest).unwrap_or_default(),
                name: i.name,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes an image name; its content and snapshots go when nothing else uses them.
    pub async fn remove_image(&self, name: &str) -> Result<()> {
        let req = DeleteImageRequest {
            name: name.to_string(),
            sync: false,
            target: None,
        };
        match self.client.images().delete(self.req(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Error::grpc("delete image", name, s)),
        }
    }

    /// The image `name` for this platform.
    pub async fn resolve_image(&self, name: &str) -> Result<Arc<ResolvedImage>> {
        let image = self.get_image(name).await?.ok_or_else(|| Error::NotFound {
            kind: "image",
            id: name.to_string(),
        })?;
        let target = image.target.as_ref().ok_or_else(|| Error::InvalidImage {
            image: name.to_string(),
            reason: "image record has no target".into(),
        })?;
        self.resolve_target(name, &Descriptor::from_proto(target))
            .await
    }

    async fn resolve_target(&self, name: &str, target: &Descriptor) -> Result<Arc<ResolvedImage>> {
        if let Ok(cache) = self.resolved.lock()
            && let Some(r) = cache.get(&target.digest)
        {
            return Ok(r.clone());
        }
        let invalid = |reason: String| Error::InvalidImage {
            image: name.to_string(),
            reason,
        };
        let mut manifest_desc = target.clone();
        if is_index(&target.media_type) {
            let bytes = self.read_content(&target.digest, MAX_DOCUMENT).await?;
            let index: Index = json(&target.digest, &bytes)?;
            let platform = image::host_platform();
            manifest_desc = image::select_manifest(&index, &platform)
                .ok_or_else(|| {
                    invalid(format!(
                        "no manifest for {}/{}",
                        platform.os, platform.architecture
                    ))
                })?
                .clone();
        }
        if !is_manifest(&manifest_desc.media_type) {
            return Err(invalid(format!(
                "unsupported media type {}",
                manifest_desc.media_type
            )));
        }
        let bytes = self
            .read_content(&manifest_desc.digest, MAX_DOCUMENT)
            .await?;
        let manifest: Manifest = json(&manifest_desc.digest, &bytes)?;
        let bytes = self
            .read_content(&manifest.config.digest, MAX_DOCUMENT)
            .await?;
        let config_file: ConfigFile = json(&manifest.config.digest, &bytes)?;
        if config_file.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "{} layers but {} diff_ids",
                manifest.layers.len(),
                config_file.rootfs.diff_ids.len()
            )));
        }
        let config = image::image_config(
            name,
            &target.digest,
            &manifest_desc.digest,
            &manifest,
            &config_file,
        );
        let resolved = Arc::new(ResolvedImage {
            target: target.clone(),
            manifest_digest: manifest_desc.digest,
            manifest,
            config_file,
            config,
        });
        if let Ok(mut cache) = self.resolved.lock() {
            cache.insert(target.digest.clone(), resolved.clone());
        }
        Ok(resolved)
    }

    pub(crate) async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        let req = StatSnapshotRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: key.to_string(),
        };
        match self.client.snapshots().stat(self.req(req)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(Error::grpc("stat snapshot", key, s)),
        }
    }

    pub(crate) async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let req = RemoveSnapshotRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: key.to_string(),
        };
        match self.client.snapshots().remove(self.req(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Error::grpc("remove snapshot", key, s)),
        }
    }

    /// Unpacks the image's layers into snapshots (if not done yet) and returns the chain ID of
    /// its top layer.
    pub async fn unpack(&self, name: &str) -> Result<String> {
        let resolved = self.resolve_image(name).await?;
        let lease = self.create_lease(&unique("skiff-unpack")).await?;
        let result = self.unpack_resolved(&lease, &resolved).await;
        if let Err(e) = self.delete_lease(&lease).await {
            tracing::warn!(%lease, error = %e, "cannot delete unpack lease; it expires by itself");
        }
        result
    }

    async fn unpack_resolved(&self, lease: &str, img: &ResolvedImage) -> Result<String> {
        let diff_ids = &img.config_file.rootfs.diff_ids;
        let chains = image::chain_ids(diff_ids);
        let top = chains.last().cloned().unwrap_or_default();
        if top.is_empty() {
            return Err(Error::InvalidImage {
                image: img.target.digest.clone(),
                reason: "image has no layers".into(),
            });
        }
        if !self.snapshot_exists(&top).await? {
            let mut parent = String::new();
            for (i, layer) in img.manifest.layers.iter().enumerate() {
                if !self.snapshot_exists(&chains[i]).await? {
                    self.apply_layer(lease, layer, &diff_ids[i], &chains[i], &parent)
                        .await?;
                }
                parent = chains[i].clone();
            }
        }
        // The config keeps the unpacked snapshots alive, as containerd's own unpacker does.
        let labels = HashMap::from([(gc_label::snapshot(&self.cfg.snapshotter), top.clone())]);
        self.set_content_labels(&img.manifest.config.digest, &labels)
            .await?;
        Ok(top)
    }

    async fn apply_layer(
        &self,
        lease: &str,
        layer: &Descriptor,
        diff_id: &str,
        chain: &str,
        parent: &str,
    ) -> Result<()> {
        let key = unique("skiff-extract");
        let req = PrepareSnapshotRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: key.clone(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        let mounts = self
            .client
            .snapshots()
            .prepare(self.leased(req, lease))
            .await
            .map_err(|s| Error::grpc("prepare snapshot", &key, s))?
            .into_inner()
            .mounts;
        let result = async {
            let req = ApplyRequest {
                diff: Some(layer.to_proto()),
                mounts,
                payloads: HashMap::new(),
                sync_fs: false,
            };
            let applied = self
                .client
                .diff()
                .apply(self.leased(req, lease))
                .await
                .map_err(|s| Error::grpc("apply layer", &layer.digest, s))?
                .into_inner()
                .applied
                .unwrap_or_default();
            if applied.digest != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("uncompressed layer {}", layer.digest),
                    expected: diff_id.to_string(),
                    actual: applied.digest,
                });
            }
            let req = CommitSnapshotRequest {
                snapshotter: self.cfg.snapshotter.clone(),
                name: chain.to_string(),
                key: key.clone(),
                labels: HashMap::new(),
            };
            match self
                .client
                .snapshots()
                .commit(self.leased(req, lease))
                .await
            {
                Ok(_) => Ok(true),
                // Someone else unpacked the same layer meanwhile.
                Err(s) if s.code() == Code::AlreadyExists => Ok(false),
                Err(s) => Err(Error::grpc("commit snapshot", chain, s)),
            }
        }
        .await;
        if !matches!(result, Ok(true))
            && let Err(e) = self.remove_snapshot(&key).await
        {
            tracing::warn!(%key, error = %e, "cannot remove extraction snapshot");
        }
        result?;
        let labels = HashMap::from([(gc_label::UNCOMPRESSED.to_string(), diff_id.to_string())]);
        self.set_content_labels(&layer.digest, &labels).await
    }

    /// Starts storing an image: blobs written through the writer are protected from garbage
    /// collection until [`ImageWriter::finish`] (or a day, if the caller dies).
    pub async fn image_writer(&self) -> Result<ImageWriter<'_>> {
        let lease = self.create_lease(&unique("skiff-image")).await?;
        Ok(ImageWriter { ctd: self, lease })
    }

    pub(crate) async fn import_archive_file(&self, path: &Path) -> Result<Vec<ImageRef>> {
        let p = path.to_path_buf();
        let plan = tokio::task::spawn_blocking(move || Archive::open(&p)?.plan())
            .await
            .map_err(|e| Error::Archive {
                path: path.to_path_buf(),
                reason: format!("indexing task failed: {e}"),
            })??;
        if plan.images.is_empty() {
            return Err(Error::Archive {
                path: path.to_path_buf(),
                reason: "no named images in the archive".into(),
            });
        }
        let writer = self.image_writer().await?;
        let result = async {
            for blob in &plan.blobs {
                match &blob.data {
                    BlobData::Bytes(b) => writer.write_bytes(&blob.desc, b).await?,
                    BlobData::Range(e) => {
                        let mut f = tokio::fs::File::open(path)
                            .await
                            .map_err(|err| Error::io("open", path, err))?;
                        f.seek(std::io::SeekFrom::Start(e.offset))
                            .await
                            .map_err(|err| Error::io("seek", path, err))?;
                        writer.write_blob(&blob.desc, f.take(e.size)).await?;
                    }
                }
            }
            let mut refs = Vec::new();
            for (name, target) in &plan.images {
                refs.push(writer.register(name, target).await?);
            }
            Ok(refs)
        }
        .await;
        writer.finish().await;
        let refs = result?;
        tracing::info!(path = %path.display(), images = ?refs, "imported image archive");
        Ok(refs)
    }
}

/// Stores an image's blobs and registers its name. What a registry puller needs:
/// write the manifest (or index), config and layers with [`write_blob`](Self::write_blob) or
/// [`write_bytes`](Self::write_bytes), then [`register`](Self::register) the name (which
/// unpacks the layers), then [`finish`](Self::finish).
pub struct ImageWriter<'a> {
    ctd: &'a Containerd,
    lease: String,
}

impl ImageWriter<'_> {
    pub fn lease(&self) -> &str {
        &self.lease
    }

    /// Whether the content store already has this blob (a puller need not fetch it).
    pub async fn has_blob(&self, digest: &str) -> Result<bool> {
        Ok(self.ctd.content_info(digest).await?.is_some())
    }

    /// Streams a blob in. Manifests and indexes are read whole so that they can carry the
    /// labels that keep what they reference alive.
    pub async fn write_blob<R: AsyncRead + Unpin + Send>(
        &self,
        desc: &Descriptor,
        mut reader: R,
    ) -> Result<()> {
        if is_index(&desc.media_type) || is_manifest(&desc.media_type) {
            let mut bytes = Vec::new();
            (&mut reader)
                .take(MAX_DOCUMENT as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| Error::io("read blob", &desc.digest, e))?;
            return self.write_bytes(desc, &bytes).await;
        }
        self.ctd
            .write_content(&self.lease, desc, reader, HashMap::new())
            .await
    }

    pub async fn write_bytes(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let labels = gc_labels(desc, bytes)?;
        self.ctd
            .write_content(&self.lease, desc, bytes, labels)
            .await
    }

    /// Points `name` at `target` (a manifest or index already written) and unpacks the
    /// layers for this platform.
    pub async fn register(&self, name: &str, target: &Descriptor) -> Result<ImageRef> {
        let resolved = self.ctd.resolve_target(name, target).await?;
        self.ctd.unpack_resolved(&self.lease, &resolved).await?;
        let record = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target.to_proto()),
            created_at: None,
            updated_at: None,
        };
        let req = CreateImageRequest {
            image: Some(record.clone()),
            source_date_epoch: None,
        };
        match self.ctd.client.images().create(self.ctd.req(req)).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {
                let req = UpdateImageRequest {
                    image: Some(record),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["target".into()],
                    }),
                    source_date_epoch: None,
                };
                self.ctd
                    .client
                    .images()
                    .update(self.ctd.req(req))
                    .await
                    .map_err(|s| Error::grpc("update image", name, s))?;
            }
            Err(s) => return Err(Error::grpc("create image", name, s)),
        }
        Ok(ImageRef {
            name: name.to_string(),
            digest: target.digest.clone(),
        })
    }

    /// Releases the lease: from now on only registered images keep the blobs alive.
    pub async fn finish(self) {
        if let Err(e) = self.ctd.delete_lease(&self.lease).await {
            tracing::warn!(lease = %self.lease, error = %e, "cannot delete image lease; it expires by itself");
        }
    }
}
