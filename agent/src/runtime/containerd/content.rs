//! Blobs in containerd's content store: read, write (streamed, digest-verified by containerd
//! on commit), and label.

use std::collections::HashMap;

use containerd_client::services::v1::{
    AbortRequest, Info, InfoRequest, ReadContentRequest, UpdateRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::tonic::Code;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_stream::wrappers::ReceiverStream;

use super::{Containerd, unique};
use crate::runtime::image::Descriptor;
use crate::runtime::{Error, Result};

const CHUNK: usize = 1 << 20;

impl Containerd {
    /// The content store's record of a blob, if it has it.
    pub async fn content_info(&self, digest: &str) -> Result<Option<Info>> {
        let req = InfoRequest {
            digest: digest.to_string(),
        };
        match self.client.content().info(self.req(req)).await {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(Error::grpc("content info", digest, s)),
        }
    }

    /// The whole of a blob, refusing blobs larger than `max` bytes.
    pub async fn read_content(&self, digest: &str, max: usize) -> Result<Vec<u8>> {
        let req = ReadContentRequest {
            digest: digest.to_string(),
            offset: 0,
            size: 0,
        };
        let mut stream = self
            .client
            .content()
            .read(self.req(req))
            .await
            .map_err(|s| Error::grpc("read content", digest, s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| Error::grpc("read content", digest, s))?
        {
            out.extend_from_slice(&chunk.data);
            if out.len() > max {
                return Err(Error::InvalidImage {
                    image: digest.to_string(),
                    reason: format!("document larger than {max} bytes"),
                });
            }
        }
        Ok(out)
    }

    /// Sets labels on a blob, keeping its others.
    pub async fn set_content_labels(
        &self,
        digest: &str,
        labels: &HashMap<String, String>,
    ) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let req = UpdateRequest {
            info: Some(Info {
                digest: digest.to_string(),
                labels: labels.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: labels.keys().map(|k| format!("labels.{k}")).collect(),
            }),
        };
        self.client
            .content()
            .update(self.req(req))
            .await
            .map_err(|s| Error::grpc("label content", digest, s))?;
        Ok(())
    }

    /// Streams a blob into the content store under `lease`. Containerd checks size and digest
    /// on commit. A blob it already has is not sent again (its labels are updated).
    pub async fn write_content<R: AsyncRead + Unpin + Send>(
        &self,
        lease: &str,
        desc: &Descriptor,
        mut reader: R,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        if self.content_info(&desc.digest).await?.is_some() {
            return self.set_content_labels(&desc.digest, &labels).await;
        }
        let ingest = unique(&format!(
            "skiff-ingest-{}",
            desc.digest
                .trim_start_matches("sha256:")
                .get(..12)
                .unwrap_or("")
        ));
        let result = self
            .write_stream(lease, &ingest, desc, &mut reader, labels.clone())
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.is_already_exists() => self.set_content_labels(&desc.digest, &labels).await,
            Err(e) => {
                let abort = AbortRequest { r#ref: ingest };
                let _ = self.client.content().abort(self.req(abort)).await;
                Err(e)
            }
        }
    }

    async fn write_stream<R: AsyncRead + Unpin + Send>(
        &self,
        lease: &str,
        ingest: &str,
        desc: &Descriptor,
        reader: &mut R,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let what = desc.digest.as_str();
        let grpc = |s| Error::grpc("write content", what, s);
        let read_err = |e| Error::io("read blob", what, e);
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(2);
        let msg = |action: WriteAction, offset: i64, data: Vec<u8>| WriteContentRequest {
            action: action as i32,
            r#ref: ingest.to_string(),
            total: desc.size,
            expected: desc.digest.clone(),
            offset,
            data,
            labels: HashMap::new(),
        };
        let closed = || Error::Grpc {
            op: "write content",
            object: what.to_string(),
            code: Code::Unavailable,
            message: "stream closed".into(),
        };

        let mut buf = vec![0u8; CHUNK];
        let mut offset: i64 = 0;
        let n = read_full(reader, &mut buf).await.map_err(read_err)?;
        // The server answers nothing (not even headers) before the first message.
        tx.send(msg(WriteAction::Write, offset, buf[..n].to_vec()))
            .await
            .map_err(|_| closed())?;
        offset += n as i64;
        let mut responses = self
            .client
            .content()
            .write(self.leased(ReceiverStream::new(rx), lease))
            .await
            .map_err(grpc)?
            .into_inner();
        responses
            .message()
            .await
            .map_err(grpc)?
            .ok_or_else(closed)?;
        loop {
            let n = read_full(reader, &mut buf).await.map_err(read_err)?;
            if n == 0 {
                break;
            }
            tx.send(msg(WriteAction::Write, offset, buf[..n].to_vec()))
                .await
                .map_err(|_| closed())?;
            offset += n as i64;
            responses
                .message()
                .await
                .map_err(grpc)?
                .ok_or_else(closed)?;
        }
        if offset != desc.size {
            return Err(Error::InvalidImage {
                image: what.to_string(),
                reason: format!("blob has {offset} bytes, its descriptor says {}", desc.size),
            });
        }
        let mut commit = msg(WriteAction::Commit, offset, Vec::new());
        commit.labels = labels;
        tx.send(commit).await.map_err(|_| closed())?;
        responses
            .message()
            .await
            .map_err(grpc)?
            .ok_or_else(closed)?;
        Ok(())
    }
}

/// Reads until `buf` is full or the reader ends.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
