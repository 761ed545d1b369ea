//! Pulling images from OCI registries into containerd: resolve the name at its registry,
//! choose this platform's manifest, fetch (in parallel, streamed and verified) the blobs the
//! content store lacks, then register the name on what the tag points at and unpack.

use std::collections::HashSet;
use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _};

use super::Containerd;
use super::images::ImageWriter;
use crate::runtime::image::{
    self, Descriptor, Index, Manifest, is_index, is_manifest, is_valid_digest,
};
use crate::runtime::registry::{
    ImageName, RegistryClient, RegistryError, Session, VerifyingReader,
};
use crate::runtime::{Error, ImageRef, PullErrorKind, RegistryAuth, Result};

/// Layers downloaded at once by one pull (containerd's default too).
const PARALLEL_DOWNLOADS: usize = 3;
/// Manifests and indexes larger than this are refused.
const MAX_DOCUMENT: usize = crate::runtime::registry::MAX_MANIFEST;

/// One pull's failures, all naming the image.
struct Failure<'a> {
    image: &'a str,
}

impl Failure<'_> {
    fn error(&self, kind: PullErrorKind, message: impl Into<String>) -> Error {
        Error::Pull {
            image: self.image.to_string(),
            kind,
            message: message.into(),
        }
    }

    fn resolve(&self, e: RegistryError) -> Error {
        self.error(
            e.kind,
            format!(
                "failed to resolve reference \"{}\": {}",
                self.image, e.message
            ),
        )
    }

    fn fetch(&self, what: &str, digest: &str, e: RegistryError) -> Error {
        self.error(
            e.kind,
            format!("failed to fetch {what} {digest}: {}", e.message),
        )
    }

    /// A containerd failure while storing or unpacking.
    fn store(&self, what: &str, e: Error) -> Error {
        let kind = match &e {
            Error::DigestMismatch { .. } | Error::InvalidImage { .. } | Error::Json { .. } => {
                PullErrorKind::Invalid
            }
            _ => PullErrorKind::Other,
        };
        self.error(kind, format!("{what}: {e}"))
    }

    /// A failure while streaming a blob from the registry into containerd.
    fn copy(&self, desc: &Descriptor, e: Error) -> Error {
        let digest = &desc.digest;
        match e {
            Error::Io { source, .. } => {
                if let Some(m) = VerifyingReader::<&[u8]>::mismatch(&source) {
                    self.error(PullErrorKind::Invalid, format!("failed to copy: {m}"))
                } else {
                    let cause = crate::runtime::registry::error_chain(&source);
                    self.error(
                        PullErrorKind::Network,
                        format!("failed to copy {digest}: {cause}"),
                    )
                }
            }
            other => self.store(&format!("failed to copy {digest}"), other),
        }
    }
}

impl Containerd {
    /// The registry client every pull of this connection shares (its tokens, connections,
    /// and what it learnt of each registry), made on first use.
    pub(crate) async fn registry_client(
        &self,
    ) -> std::result::Result<&RegistryClient, RegistryError> {
        self.registry
            .get_or_try_init(|| async { RegistryClient::new(self.cfg.registries.clone()) })
            .await
    }

    pub(crate) async fn pull(&self, image: &str, auth: &[RegistryAuth]) -> Result<ImageRef> {
        let started = Instant::now();
        let fail = Failure { image };
        let name = ImageName::parse(image).ok_or_else(|| {
            fail.error(
                PullErrorKind::Invalid,
                format!("failed to resolve reference \"{image}\": invalid reference format"),
            )
        })?;
        let client = self
            .registry_client()
            .await
            .map_err(|e| fail.error(e.kind, e.message))?;
        let creds: Vec<Option<&RegistryAuth>> = if auth.is_empty() {
            vec![None]
        } else {
            auth.iter().map(Some).collect()
        };
        let mut last = None;
        for (i, cred) in creds.iter().enumerate() {
            let session = client.session(&name, *cred);
            match self.pull_with(image, &session, &fail).await {
                Ok(r) => {
                    tracing::info!(
                        image,
                        digest = %r.digest,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "pulled image"
                    );
                    return Ok(r);
                }
                Err(e) if e.pull_kind() == Some(PullErrorKind::Unauthorized) => {
                    tracing::debug!(image, credentials = i, error = %e, "registry refused the credentials");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| fail.error(PullErrorKind::Other, "no credentials tried")))
    }

    async fn pull_with(
        &self,
        image: &str,
        session: &Session<'_>,
        fail: &Failure<'_>,
    ) -> Result<ImageRef> {
        let writer = self
            .image_writer()
            .await
            .map_err(|e| fail.store("failed to create lease", e))?;
        let result = self.fetch_into(&writer, image, session, fail).await;
        writer.finish().await;
        result
    }

    async fn fetch_into(
        &self,
        writer: &ImageWriter<'_>,
        image: &str,
        session: &Session<'_>,
        fail: &Failure<'_>,
    ) -> Result<ImageRef> {
        let resolved = session
            .resolve(session.name().reference())
            .await
            .map_err(|e| fail.resolve(e))?;
        let mut target = resolved.desc;
        tracing::debug!(image, digest = %target.digest, media_type = %target.media_type, "resolved");
        let (target_bytes, target_new) = self
            .document(writer, session, &target, resolved.bytes, fail)
            .await?;
        // The bytes match the digest; a HEAD's Content-Length is not worth more than that.
        target.size = target_bytes.len() as i64;

        // Documents to store once what they reference is in, parents last.
        let mut documents: Vec<(Descriptor, Vec<u8>)> = Vec::new();
        let (manifest_desc, manifest_bytes) = if is_index(&target.media_type) {
            let index: Index = parse(fail, "index", &target.digest, &target_bytes)?;
            let platform = image::host_platform();
            let chosen = image::select_manifest(&index, &platform)
                .ok_or_else(|| {
                    fail.error(
                        PullErrorKind::NotFound,
                        format!(
                            "no match for platform {}/{} in manifest {}: not found",
                            platform.os, platform.architecture, target.digest
                        ),
                    )
                })?
                .clone();
            let (bytes, new) = self.document(writer, session, &chosen, None, fail).await?;
            if bytes.len() as i64 != chosen.size {
                return Err(fail.error(
                    PullErrorKind::Invalid,
                    format!(
                        "manifest {}: {} bytes, the index says {}",
                        chosen.digest,
                        bytes.len(),
                        chosen.size
                    ),
                ));
            }
            if new {
                documents.push((chosen.clone(), bytes.clone()));
            }
            (chosen, bytes)
        } else if is_manifest(&target.media_type) {
            (target.clone(), target_bytes.clone())
        } else {
            return Err(fail.error(
                PullErrorKind::Invalid,
                format!("unsupported media type {}", target.media_type),
            ));
        };
        if target_new {
            documents.push((target.clone(), target_bytes));
        }

        let manifest: Manifest = parse(fail, "manifest", &manifest_desc.digest, &manifest_bytes)?;
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !is_valid_digest(&desc.digest) || desc.size < 0 {
                return Err(fail.error(
                    PullErrorKind::Invalid,
                    format!(
                        "manifest {} references an invalid blob {} of {} bytes",
                        manifest_desc.digest, desc.digest, desc.size
                    ),
                ));
            }
            if !seen.insert(desc.digest.clone()) {
                continue;
            }
            if !writer
                .has_blob(&desc.digest)
                .await
                .map_err(|e| fail.store("failed to check content", e))?
            {
                missing.push(desc.clone());
            }
        }
        let bytes: u64 = missing.iter().map(|d| d.size as u64).sum();
        tracing::debug!(image, blobs = missing.len(), bytes, "fetching blobs");
        futures::stream::iter(missing)
            .map(|desc| async move {
                let reader = session
                    .fetch_blob(&desc)
                    .await
                    .map_err(|e| fail.fetch("blob", &desc.digest, e))?;
                writer
                    .write_blob(&desc, reader)
                    .await
                    .map_err(|e| fail.copy(&desc, e))
            })
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        for (desc, bytes) in &documents {
            writer
                .write_bytes(desc, bytes)
                .await
                .map_err(|e| fail.store(&format!("failed to store {}", desc.digest), e))?;
        }
        writer
            .register(image, &target)
            .await
            .map_err(|e| fail.store("failed to unpack image", e))
    }

    /// A manifest or index: the bytes `resolve` brought, or the content store's copy, or the
    /// registry's (by digest, verified). The flag says whether it still has to be stored.
    async fn document(
        &self,
        writer: &ImageWriter<'_>,
        session: &Session<'_>,
        desc: &Descriptor,
        fetched: Option<Vec<u8>>,
        fail: &Failure<'_>,
    ) -> Result<(Vec<u8>, bool)> {
        let stored = writer
            .has_blob(&desc.digest)
            .await
            .map_err(|e| fail.store("failed to check content", e))?;
        if stored {
            let bytes = match fetched {
                Some(b) => b,
                None => self
                    .read_content(&desc.digest, MAX_DOCUMENT)
                    .await
                    .map_err(|e| fail.store("failed to read content", e))?,
            };
            return Ok((bytes, false));
        }
        let bytes = match fetched {
            Some(b) => b,
            None => {
                let (_, bytes) = session
                    .fetch_manifest(&desc.digest, Some(&desc.digest))
                    .await
                    .map_err(|e| fail.fetch("manifest", &desc.digest, e))?;
                bytes
            }
        };
        Ok((bytes, true))
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    fail: &Failure<'_>,
    what: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        fail.error(
            PullErrorKind::Invalid,
            format!("invalid {what} {digest}: {e}"),
        )
    })
}
