//! Reading a container's log as kubelet serves it: the live file (rotated files are not
//! read, as kubelet reads only the current one), filtered by `tailLines`, `since` and
//! `limitBytes`, with or without timestamps, and, with `follow`, new lines as they come —
//! across rotations — until the container ends.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::cri::{self, Entry};

/// What to read (the query of kubelet's `containerLogs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<Timestamp>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(100);

/// Whether a logger still holds the file (see [`super::writer`]).
pub fn writer_alive(file: &File) -> bool {
    let fd = file.as_raw_fd();
    // SAFETY: flock on a descriptor we own; a shared lock we get is released at once.
    unsafe {
        if libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) != 0 {
            return true;
        }
        libc::flock(fd, libc::LOCK_UN);
    }
    false
}

/// Streams the log at `path` on a blocking thread; the stream ends with the log (or with
/// the container when following), or when the receiver is dropped.
pub fn stream(path: PathBuf, opts: LogOptions) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut out = Output {
            tx,
            timestamps: opts.timestamps,
            remaining: opts.limit_bytes,
            buf: Vec::new(),
        };
        if let Err(e) = read(&path, &opts, &mut out) {
            let _ = out.tx.blocking_send(Err(e));
        }
    });
    rx
}

struct Output {
    tx: mpsc::Sender<io::Result<Bytes>>,
    timestamps: bool,
    remaining: Option<u64>,
    buf: Vec<u8>,
}

impl Output {
    fn push(&mut self, e: &Entry<'_>) {
        if self.timestamps {
            self.buf
                .extend_from_slice(cri::format_time(e.time).as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(e.text);
        if !e.partial {
            self.buf.push(b'\n');
        }
    }

    /// Sends what was pushed; false once the client is gone or the byte limit is reached.
    fn flush(&mut self) -> bool {
        let mut data = std::mem::take(&mut self.buf);
        let mut more = true;
        if let Some(left) = self.remaining.as_mut() {
            if data.len() as u64 >= *left {
                data.truncate(*left as usize);
                more = false;
            }
            *left -= data.len() as u64;
        }
        if !data.is_empty() && self.tx.blocking_send(Ok(Bytes::from(data))).is_err() {
            return false;
        }
        more && !self.tx.is_closed()
    }
}

/// The complete lines of `data` as entries, and how many bytes they took.
fn entries(data: &[u8]) -> (Vec<Entry<'_>>, usize) {
    let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let entries = data[..end]
        .split(|b| *b == b'\n')
        .filter_map(cri::parse)
        .collect();
    (entries, end)
}

fn read(path: &Path, opts: &LogOptions, out: &mut Output) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let (all, used) = entries(&data);
    let from = opts
        .tail_lines
        .map_or(0, |n| all.len().saturating_sub(n as usize));
    let since = |e: &Entry<'_>| opts.since.is_none_or(|s| e.time >= s);
    for e in all[from..].iter().filter(|e| since(e)) {
        out.push(e);
    }
    if !out.flush() || !opts.follow {
        return Ok(());
    }
    let mut pending = data.split_off(used);
    drop(data);
    follow(path, file, &mut pending, out)
}

/// Waits (at most `max`) for the logger of `path` to finish: it ends right after the
/// container's streams, and a termination message taken from the log must include their
/// last lines.
pub fn wait_for_writer(path: &Path, max: Duration) {
    let deadline = std::time::Instant::now() + max;
    while let Ok(f) = File::open(path) {
        if !writer_alive(&f) || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The text of the log's last entries, at most `max` bytes of it (a container's
/// `FallbackToLogsOnError` termination message). A file that is not in the CRI format (a
/// shim writing raw output) is taken as it is.
pub fn tail_text(path: &Path, max: usize) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    let (list, _) = entries(&data);
    let mut text = Vec::new();
    for e in &list {
        text.extend_from_slice(e.text);
        if !e.partial {
            text.push(b'\n');
        }
    }
    if list.is_empty() {
        text = data.clone();
    }
    let tail = &text[text.len().saturating_sub(max)..];
    let s = String::from_utf8_lossy(tail).into_owned();
    (!s.is_empty()).then_some(s)
}

fn same_file(path: &Path, file: &File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        // The live file is briefly missing while it is being rotated.
        _ => true,
    }
}

/// Reads what was appended since; whether there was anything.
fn drain(file: &mut File, pending: &mut Vec<u8>, out: &mut Output) -> io::Result<(bool, bool)> {
    let before = pending.len();
    file.read_to_end(pending)?;
    if pending.len() == before {
        return Ok((false, true));
    }
    let (list, used) = entries(pending);
    for e in &list {
        out.push(e);
    }
    pending.drain(..used);
    Ok((true, out.flush()))
}

fn follow(path: &Path, mut file: File, pending: &mut Vec<u8>, out: &mut Output) -> io::Result<()> {
    loop {
        let (got, more) = drain(&mut file, pending, out)?;
        if !more {
            return Ok(());
        }
        if got {
            continue;
        }
        if !same_file(path, &file) {
            // Rotated: the rest of the old file, then the new one from its start.
            if !drain(&mut file, pending, out)?.1 {
                return Ok(());
            }
            pending.clear();
            file = File::open(path)?;
            continue;
        }
        if !writer_alive(&file) {
            // A rotation creates the next file a moment before locking it: look twice.
            std::thread::sleep(2 * POLL);
            if same_file(path, &file) && !writer_alive(&file) {
                drain(&mut file, pending, out)?;
                return Ok(());
            }
            continue;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rotation;
    use super::super::cri::Stream;
    use super::super::writer::RotatingWriter;
    use super::*;

    async fn collect(mut rx: mpsc::Receiver<io::Result<Bytes>>) -> String {
        let mut s = String::new();
        while let Some(chunk) = rx.recv().await {
            s.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        s
    }

    fn write_lines(w: &mut RotatingWriter, from: usize, to: usize) {
        for i in from..to {
            w.write(Stream::Stdout, false, format!("line {i}").as_bytes())
                .unwrap();
        }
    }

    #[tokio::test]
    async fn tail_limit_and_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = RotatingWriter::open(&path, Rotation::default()).unwrap();
        write_lines(&mut w, 0, 5);
        w.write(Stream::Stderr, true, b"part-").unwrap();
        w.write(Stream::Stderr, false, b"end").unwrap();
        let opts = |f: &dyn Fn(&mut LogOptions)| {
            let mut o = LogOptions::default();
            f(&mut o);
            o
        };
        let all = collect(stream(path.clone(), LogOptions::default())).await;
        assert_eq!(all, "line 0\nline 1\nline 2\nline 3\nline 4\npart-end\n");
        let tail = collect(stream(path.clone(), opts(&|o| o.tail_lines = Some(3)))).await;
        assert_eq!(tail, "line 4\npart-end\n");
        let limited = collect(stream(path.clone(), opts(&|o| o.limit_bytes = Some(10)))).await;
        assert_eq!(limited, "line 0\nlin");
        let stamped = collect(stream(path.clone(), opts(&|o| o.timestamps = true))).await;
        let first = stamped.lines().next().unwrap();
        let (ts, text) = first.split_once(' ').unwrap();
        assert!(ts.parse::<Timestamp>().is_ok() && ts.len() == 30, "{ts}");
        assert_eq!(text, "line 0");
        let future = Timestamp::now() + jiff::SignedDuration::from_secs(60);
        let none = collect(stream(path.clone(), opts(&|o| o.since = Some(future)))).await;
        assert_eq!(none, "");
    }

    #[tokio::test]
    async fn follows_across_rotation_until_the_writer_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 200,
            max_files: 2,
        };
        let mut w = RotatingWriter::open(&path, rotation).unwrap();
        write_lines(&mut w, 0, 2);
        let rx = stream(
            path.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
        );
        let writer = std::thread::spawn(move || {
            for i in 2..40 {
                std::thread::sleep(Duration::from_millis(40));
                write_lines(&mut w, i, i + 1);
            }
            drop(w);
        });
        let got = collect(rx).await;
        writer.join().unwrap();
        let want: String = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(got, want);
    }
}
