//! Appends CRI log lines to a container's log file and rotates it by size: the live file is
//! renamed to `<file>.<UTC time>` and a new one started; the oldest rotated files go so that
//! at most `max_files` remain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::Rotation;
use super::cri::{self, Stream};

/// The log file of one container start, held open (and locked, see [`lock`]) for appending.
pub struct RotatingWriter {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
    buf: Vec<u8>,
}

/// Holds an exclusive `flock` on the live file while the logger runs: readers that follow
/// the file learn that the container has ended when they can take the lock. Blocking: a
/// reader holds its shared lock only for the moment of its check.
fn lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    lock(&file)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

impl RotatingWriter {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<RotatingWriter> {
        let (file, size) = open_append(path)?;
        Ok(RotatingWriter {
            path: path.to_path_buf(),
            rotation,
            file,
            size,
            buf: Vec::new(),
        })
    }

    /// Writes one entry, then rotates when the file has grown to its limit.
    pub fn write(&mut self, stream: Stream, partial: bool, text: &[u8]) -> io::Result<()> {
        self.buf.clear();
        cri::encode(&mut self.buf, Timestamp::now(), stream, partial, text);
        self.file.write_all(&self.buf)?;
        self.size += self.buf.len() as u64;
        if self.size >= self.rotation.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let rotated = rotated_name(&self.path, Timestamp::now());
        fs::rename(&self.path, &rotated)?;
        let (file, size) = open_append(&self.path)?;
        // The old descriptor (and its lock) goes only now, so a follower never sees an
        // unlocked live file while the logger runs.
        self.file = file;
        self.size = size;
        prune(
            &self.path,
            self.rotation.max_files.saturating_sub(1) as usize,
        );
        Ok(())
    }
}

/// `<file>.<YYYYMMDD-HHMMSS.ffffff>`: kubelet's rotated name with microseconds, so quick
/// rotations neither collide nor sort out of order.
fn rotated_name(path: &Path, now: Timestamp) -> PathBuf {
    let stamp = format!(
        "{}.{:06}",
        now.strftime("%Y%m%d-%H%M%S"),
        now.subsec_microsecond()
    );
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(stamp);
    PathBuf::from(name)
}

/// The rotated files of a live log file, oldest first.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{base}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

fn prune(path: &Path, keep: usize) {
    let files = rotated_files(path);
    let extra = files.len().saturating_sub(keep);
    for old in &files[..extra] {
        if let Err(e) = fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "cannot remove a rotated log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = RotatingWriter::open(
            &path,
            Rotation {
                max_size: 100,
                max_files: 3,
            },
        )
        .unwrap();
        for i in 0..40 {
            w.write(Stream::Stdout, false, format!("line {i}").as_bytes())
                .unwrap();
        }
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(fs::metadata(&path).unwrap().len() < 100);
        let last = fs::read_to_string(rotated.last().unwrap()).unwrap();
        assert!(last.lines().all(|l| cri::parse(l.as_bytes()).is_some()));
        assert!(super::super::reader::writer_alive(
            &File::open(&path).unwrap()
        ));
        drop(w);
        assert!(!super::super::reader::writer_alive(
            &File::open(&path).unwrap()
        ));
    }
}
