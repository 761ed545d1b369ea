//! Checking a blob's size and digest while it streams through, so that nothing a registry
//! sends is trusted before containerd commits it.

use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// Why a blob was refused; carried inside the `io::Error` the reader returns.
#[derive(Debug, thiserror::Error)]
pub enum BlobMismatch {
    #[error("blob {digest}: more than the {expected} bytes its descriptor says")]
    TooLong { digest: String, expected: u64 },
    #[error("blob {digest}: {actual} bytes, its descriptor says {expected}")]
    Size {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {expected}: content has digest {actual}")]
    Digest { expected: String, actual: String },
}

/// Passes a blob through, failing with [`BlobMismatch`] (as `InvalidData`) as soon as it is
/// longer than `size`, or at its end when its length or sha256 digest differ.
pub struct VerifyingReader<R> {
    inner: R,
    digest: String,
    size: u64,
    read: u64,
    hasher: Sha256,
}

impl<R> VerifyingReader<R> {
    /// `digest` must be a `sha256:` digest.
    pub fn new(inner: R, digest: &str, size: u64) -> Self {
        VerifyingReader {
            inner,
            digest: digest.to_string(),
            size,
            read: 0,
            hasher: Sha256::new(),
        }
    }

    /// The mismatch inside an error this reader returned, if it was one.
    pub fn mismatch(err: &std::io::Error) -> Option<&BlobMismatch> {
        err.get_ref()?.downcast_ref::<BlobMismatch>()
    }
}

fn invalid(m: BlobMismatch) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m)
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        if new.is_empty() {
            if this.read != this.size {
                return Poll::Ready(Err(invalid(BlobMismatch::Size {
                    digest: this.digest.clone(),
                    expected: this.size,
                    actual: this.read,
                })));
            }
            let actual = format!("sha256:{:x}", this.hasher.clone().finalize());
            if actual != this.digest {
                return Poll::Ready(Err(invalid(BlobMismatch::Digest {
                    expected: this.digest.clone(),
                    actual,
                })));
            }
            return Poll::Ready(Ok(()));
        }
        this.read += new.len() as u64;
        if this.read > this.size {
            // A failed read hands out no bytes.
            buf.set_filled(before);
            return Poll::Ready(Err(invalid(BlobMismatch::TooLong {
                digest: this.digest.clone(),
                expected: this.size,
            })));
        }
        this.hasher.update(new);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::runtime::image::sha256_digest;

    async fn read_all(data: &[u8], digest: &str, size: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        VerifyingReader::new(data, digest, size)
            .read_to_end(&mut out)
            .await?;
        Ok(out)
    }

    #[tokio::test]
    async fn passes_matching_blobs_and_refuses_others() {
        let data = b"hello blob".to_vec();
        let d = sha256_digest(&data);
        assert_eq!(read_all(&data, &d, 10).await.unwrap(), data);

        let e = read_all(&data, &d, 9).await.unwrap_err();
        assert!(
            matches!(
                VerifyingReader::<&[u8]>::mismatch(&e),
                Some(BlobMismatch::TooLong { .. })
            ),
            "{e}"
        );
        let e = read_all(&data, &d, 11).await.unwrap_err();
        assert!(matches!(
            VerifyingReader::<&[u8]>::mismatch(&e),
            Some(BlobMismatch::Size { actual: 10, .. })
        ));
        let e = read_all(&data, &sha256_digest(b"other"), 10)
            .await
            .unwrap_err();
        assert!(matches!(
            VerifyingReader::<&[u8]>::mismatch(&e),
            Some(BlobMismatch::Digest { .. })
        ));
        assert!(e.to_string().contains(&d), "{e}");
    }
}
