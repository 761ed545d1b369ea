//! The agent binary as containerd's `binary://` log driver. The container's shim starts
//! `skiff-agent <key> <value>...` (the URI's query, in any order) with the container's
//! stdout and stderr pipes as fds 3 and 4 and a pipe to close once ready as fd 5. The logger
//! belongs to the shim, not to the agent, so logs keep flowing while the agent restarts.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::Rotation;
use super::cri::Stream;
use super::writer::RotatingWriter;

/// The query key that marks a logger invocation (its value is ignored).
pub const MODE_KEY: &str = "skiff-container-logger";
const PATH_KEY: &str = "path";
const MAX_SIZE_KEY: &str = "max-size";
const MAX_FILES_KEY: &str = "max-files";

/// The longest text of one entry; longer lines are split into `P` entries, as containerd's
/// CRI plugin splits them.
const MAX_LINE: usize = 16 * 1024;

/// The `binary://` query for a container whose log goes to `path`.
pub fn uri_args(path: &Path, rotation: Rotation) -> Vec<(String, String)> {
    vec![
        (MODE_KEY.into(), "1".into()),
        (PATH_KEY.into(), path.to_string_lossy().into_owned()),
        (MAX_SIZE_KEY.into(), rotation.max_size.to_string()),
        (MAX_FILES_KEY.into(), rotation.max_files.to_string()),
    ]
}

/// Whether the process was started as a logger (checked before any argument parsing).
pub fn invoked(args: &[OsString]) -> bool {
    args.iter().skip(1).any(|a| a == MODE_KEY)
}

struct LoggerArgs {
    path: PathBuf,
    rotation: Rotation,
}

fn parse_args(args: &[OsString]) -> Result<LoggerArgs, String> {
    let mut path = None;
    let mut rotation = Rotation::default();
    let mut it = args.iter().skip(1);
    while let Some(key) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{key:?} has no value"))?
            .to_string_lossy();
        match key.to_string_lossy().as_ref() {
            PATH_KEY => path = Some(PathBuf::from(value.as_ref())),
            MAX_SIZE_KEY => {
                rotation.max_size = value.parse().map_err(|e| format!("{MAX_SIZE_KEY}: {e}"))?
            }
            MAX_FILES_KEY => {
                rotation.max_files = value.parse().map_err(|e| format!("{MAX_FILES_KEY}: {e}"))?
            }
            _ => {}
        }
    }
    Ok(LoggerArgs {
        path: path.ok_or("no log path")?,
        rotation,
    })
}

/// Runs the logger until both streams end; the process's exit code.
pub fn run(args: &[OsString]) -> i32 {
    let parsed = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("skiff container logger: {e}");
            return 2;
        }
    };
    // The shim sends SIGTERM when it closes the container's IO; what is still in the pipes
    // is written before the logger leaves at their end.
    // SAFETY: changing the disposition of a signal before any thread is started.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    // SAFETY: the shim hands these descriptors to the logger; nothing else owns them.
    let (stdout, stderr, ready) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    let writer = match RotatingWriter::open(&parsed.path, parsed.rotation) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            eprintln!(
                "skiff container logger: opening {}: {e}",
                parsed.path.display()
            );
            return 1;
        }
    };
    drop(ready);
    let w = writer.clone();
    let err_thread = std::thread::spawn(move || copy(stderr, Stream::Stderr, &w));
    let out = copy(stdout, Stream::Stdout, &writer);
    let err = err_thread
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("stderr copier panicked")));
    match out.and(err) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skiff container logger: {e}");
            1
        }
    }
}

/// Splits a stream into entries: one per line, lines longer than [`MAX_LINE`] in parts, and
/// what is left at the end as a last full entry.
fn copy(mut from: impl Read, stream: Stream, to: &Mutex<RotatingWriter>) -> io::Result<()> {
    let mut pending: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut chunk = vec![0u8; 32 * 1024];
    let write = |text: &[u8], partial: bool| -> io::Result<()> {
        to.lock()
            .map_err(|_| io::Error::other("log writer poisoned"))?
            .write(stream, partial, text)
    };
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + nl];
            for (i, part) in line.chunks(MAX_LINE).enumerate() {
                let last = (i + 1) * MAX_LINE >= line.len();
                write(part, !last)?;
            }
            if line.is_empty() {
                write(b"", false)?;
            }
            start += nl + 1;
        }
        while pending.len() - start >= MAX_LINE {
            write(&pending[start..start + MAX_LINE], true)?;
            start += MAX_LINE;
        }
        pending.drain(..start);
    }
    if !pending.is_empty() {
        write(&pending, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_in_any_order() {
        let args: Vec<OsString> = ["agent", "max-files", "3", MODE_KEY, "1", "path", "/l/0.log"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(invoked(&args));
        let a = parse_args(&args).unwrap();
        assert_eq!(a.path, PathBuf::from("/l/0.log"));
        assert_eq!(a.rotation.max_files, 3);
        assert_eq!(a.rotation.max_size, Rotation::default().max_size);
        assert!(!invoked(&["agent".into(), "--node-name".into()]));
    }

    #[test]
    fn splits_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let w = Mutex::new(RotatingWriter::open(&path, Rotation::default()).unwrap());
        let long = vec![b'x'; MAX_LINE + 10];
        let mut input = b"one\n\ntwo".to_vec();
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nend");
        copy(&input[..], Stream::Stdout, &w).unwrap();
        let text = std::fs::read(&path).unwrap();
        let entries: Vec<_> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let e = super::super::cri::parse(l).unwrap();
                (e.partial, e.text.len())
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (false, 3),
                (false, 0),
                (false, 3),
                (true, MAX_LINE),
                (false, 10),
                (false, 3)
            ]
        );
    }
}
