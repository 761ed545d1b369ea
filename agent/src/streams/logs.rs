//! Reading a container's CRI-format log file (`<RFC3339Nano> <stdout|stderr> <F|P> <msg>`
//! per line; `P` marks a partial line whose newline is not part of the output) as an attach
//! session needs it: from the end, following appends and rotations.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// One log entry: which stream, and the bytes the process wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub stderr: bool,
    pub data: Bytes,
}

/// Parses one line (without its newline); `None` for a line not in the format.
pub fn parse_line(line: &[u8]) -> Option<LogLine> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let _time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let msg = parts.next().unwrap_or_default();
    let stderr = match stream {
        b"stdout" => false,
        b"stderr" => true,
        _ => return None,
    };
    let mut data = msg.to_vec();
    // Tags may carry more flags after the first, separated by ':'.
    match tag.split(|&b| b == b':').next()? {
        b"F" => data.push(b'\n'),
        b"P" => {}
        _ => return None,
    }
    Some(LogLine {
        stderr,
        data: data.into(),
    })
}

/// Follows a log file from where it was opened, reopening it when it is rotated (replaced
/// by a new file, or truncated).
pub struct LogFollower {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    inode: u64,
    pos: u64,
    partial: Vec<u8>,
}

impl LogFollower {
    /// Starts at the file's current end (or at the start of a file that does not exist yet).
    pub async fn open_at_end(path: &Path) -> LogFollower {
        let mut f = LogFollower {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            pos: 0,
            partial: Vec::new(),
        };
        if let Ok(mut file) = tokio::fs::File::open(path).await
            && let Ok(meta) = file.metadata().await
        {
            f.inode = meta.ino();
            f.pos = file.seek(SeekFrom::End(0)).await.unwrap_or(0);
            f.file = Some(file);
        }
        f
    }

    /// The entries appended since the last call.
    pub async fn poll(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        self.read_available(&mut out).await;
        // Rotated: finish nothing more from the old file; start the new one from its start.
        let current = tokio::fs::metadata(&self.path).await.ok();
        let rotated = match (&current, &self.file) {
            (Some(m), Some(_)) => m.ino() != self.inode || m.len() < self.pos,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if rotated && let Ok(file) = tokio::fs::File::open(&self.path).await {
            self.inode = current.map(|m| m.ino()).unwrap_or_default();
            self.pos = 0;
            self.partial.clear();
            self.file = Some(file);
            self.read_available(&mut out).await;
        }
        out
    }

    async fn read_available(&mut self, out: &mut Vec<LogLine>) {
        let Some(file) = &mut self.file else { return };
        let mut buf = Vec::new();
        match file.read_to_end(&mut buf).await {
            Ok(n) => self.pos += n as u64,
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "reading log");
                return;
            }
        }
        self.partial.extend_from_slice(&buf);
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            if let Some(line) = parse_line(&self.partial[start..start + nl]) {
                out.push(line);
            }
            start += nl + 1;
        }
        self.partial.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_lines() {
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05.123456789Z stdout F hello world"),
            Some(LogLine {
                stderr: false,
                data: Bytes::from_static(b"hello world\n")
            })
        );
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05Z stderr P part"),
            Some(LogLine {
                stderr: true,
                data: Bytes::from_static(b"part")
            })
        );
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05Z stdout F "),
            Some(LogLine {
                stderr: false,
                data: Bytes::from_static(b"\n")
            })
        );
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b"t stdin F x"), None);
    }

    #[tokio::test]
    async fn follows_appends_and_rotation() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "t stdout F old\n").unwrap();
        let mut f = LogFollower::open_at_end(&path).await;
        assert!(f.poll().await.is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"t stdout F new\nt stderr P hal").unwrap();
        let got = f.poll().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, Bytes::from_static(b"new\n"));
        file.write_all(b"f\n").unwrap();
        assert_eq!(f.poll().await[0].data, Bytes::from_static(b"half"));
        // Rotation: the file is renamed away and a new one takes its name.
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        std::fs::write(&path, "t stdout F rotated\n").unwrap();
        let got = f.poll().await;
        assert_eq!(
            got,
            vec![LogLine {
                stderr: false,
                data: Bytes::from_static(b"rotated\n")
            }]
        );
    }
}
