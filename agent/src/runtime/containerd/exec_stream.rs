//! Interactive exec processes: like [`super::exec`]'s, but their standard streams are handed
//! to the caller while the process runs (FIFOs in the exec directory: stdin optional, stdout
//! and stderr, or one terminal), the terminal can be resized, and the exit code comes when
//! the process ended and was deleted from the shim. Everything of the exec goes when it
//! ends or when the caller drops the [`ExecControl`] (the process is then killed).

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    CloseIoRequest, ExecProcessRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use tokio::net::unix::pipe;

use super::exec::{ExecGuard, PROCESS_TYPE_URL, exec_process_spec_with, mkfifo};
use super::{Containerd, unique};
use crate::runtime::stream::{Exec, ExecControl, ExecDriver, ExecOptions, TermSize};
use crate::runtime::{Error, Result};

/// The FIFOs of one interactive exec, unlinked once the shim opened them (or on drop).
struct StreamFifos {
    paths: Vec<PathBuf>,
}

impl StreamFifos {
    fn unlink(&self) {
        for path in &self.paths {
            if let Err(e) = std::fs::remove_file(path)
                && e.kind() != ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove exec FIFO");
            }
        }
    }
}

impl Drop for StreamFifos {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Makes a FIFO in `dir` (creating the directory, mode 0700, when missing).
pub(super) fn make_fifo(dir: &Path, name: &str) -> Result<PathBuf> {
    if !dir.is_absolute() || dir.to_string_lossy().contains('%') {
        return Err(Error::InvalidSpec {
            id: dir.display().to_string(),
            reason: "the exec directory must be an absolute path without '%'".into(),
        });
    }
    let path = dir.join(name);
    match mkfifo(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create", dir, e))?;
            mkfifo(&path)
        }
        other => other,
    }
    .map_err(|e| Error::io("mkfifo", &path, e))?;
    Ok(path)
}

/// A writer into a FIFO that needs no reader yet: opened read-write, so the pipe exists
/// (and buffers) before the shim opens its end, and closing it is the reader's end-of-file.
pub(super) fn open_fifo_writer(path: &Path) -> Result<pipe::Sender> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|e| Error::io("open", path, e))
}

/// The stream when it is wanted; otherwise read to its end in a task of its own, so the
/// process never blocks on it.
fn keep_or_discard(rx: Option<pipe::Receiver>, wanted: bool) -> Option<pipe::Receiver> {
    match rx {
        Some(rx) if !wanted => {
            tokio::spawn(async move {
                let mut rx = rx;
                let _ = tokio::io::copy(&mut rx, &mut tokio::io::sink()).await;
            });
            None
        }
        other => other,
    }
}

fn open_fifo_reader(path: &Path) -> Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(|e| Error::io("open", path, e))
}

/// An exec's (or a container's) stdin as a session writes it. Dropping it closes our write
/// end and then asks the shim to close its own (`CloseIO`): only then does the process read
/// end-of-file, after everything written before.
pub(super) struct StdinWriter {
    pub(super) tx: Option<pipe::Sender>,
    pub(super) closed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl tokio::io::AsyncWrite for StdinWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.tx.as_mut() {
            Some(tx) => std::pin::Pin::new(tx).poll_write(cx, buf),
            None => std::task::Poll::Ready(Err(ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.tx.as_mut() {
            Some(tx) => std::pin::Pin::new(tx).poll_flush(cx),
            None => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.close();
        std::task::Poll::Ready(Ok(()))
    }
}

impl StdinWriter {
    fn close(&mut self) {
        self.tx = None;
        if let Some(c) = self.closed.take() {
            let _ = c.send(());
        }
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// Asks the shim to close a process's stdin.
pub(super) async fn close_io(guard: &ExecGuard) {
    let req = CloseIoRequest {
        container_id: guard.container_id.clone(),
        exec_id: guard.exec_id.clone(),
        stdin: true,
    };
    if let Err(s) = guard.tasks.clone().close_io(guard.req(req)).await {
        tracing::debug!(id = %guard.container_id, exec = %guard.exec_id, error = %s, "close stdin");
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidSpec {
            id: path.display().to_string(),
            reason: "the exec directory is not valid UTF-8".into(),
        })
}

impl Containerd {
    pub(crate) async fn exec_stream(&self, id: &str, opts: &ExecOptions) -> Result<Exec> {
        if opts.cmd.is_empty() {
            return Err(Error::InvalidSpec {
                id: id.to_string(),
                reason: "exec without a command".into(),
            });
        }
        let container = self.get_container(id).await?;
        let terminal = opts.tty.then(|| opts.size.unwrap_or_default());
        let process = exec_process_spec_with(id, container.spec.as_ref(), &opts.cmd, terminal)?;
        let exec_id = unique("exec");
        let dir = &self.cfg.exec_dir;
        let mut fifos = StreamFifos { paths: Vec::new() };
        let mut uri = |suffix: &str, wanted: bool| -> Result<Option<PathBuf>> {
            if !wanted {
                return Ok(None);
            }
            let path = make_fifo(dir, &format!("{exec_id}.{suffix}"))?;
            fifos.paths.push(path.clone());
            Ok(Some(path))
        };
        let stdin_path = uri("in", opts.stdin)?;
        // The shim wants both output streams (one with a terminal); output nobody asked for
        // is read and dropped.
        let stdout_path = uri("out", true)?;
        let stderr_path = uri("err", !opts.tty)?;
        let stdin = stdin_path.as_deref().map(open_fifo_writer).transpose()?;
        let stdout = stdout_path.as_deref().map(open_fifo_reader).transpose()?;
        let stderr = stderr_path.as_deref().map(open_fifo_reader).transpose()?;
        let stdout = keep_or_discard(stdout, opts.stdout);
        let stderr = keep_or_discard(stderr, opts.stderr);
        let as_uri = |p: &Option<PathBuf>| p.as_deref().map(path_str).transpose();
        let request = ExecProcessRequest {
            container_id: id.to_string(),
            stdin: as_uri(&stdin_path)?.unwrap_or_default(),
            stdout: as_uri(&stdout_path)?.unwrap_or_default(),
            stderr: as_uri(&stderr_path)?.unwrap_or_default(),
            terminal: opts.tty,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE_URL.into(),
                value: process,
            }),
            exec_id: exec_id.clone(),
        };
        // Armed before the request goes out: a caller dropping us mid-request may leave a
        // process in the shim.
        let mut guard = ExecGuard {
            tasks: self.client.tasks(),
            namespace: self.namespace.clone(),
            container_id: id.to_string(),
            exec_id: exec_id.clone(),
            armed: true,
        };
        if let Err(s) = self.client.tasks().exec(self.req(request)).await {
            let e = self.exec_refused(id, s).await;
            guard.kill_and_delete().await;
            return Err(e);
        }
        let req = StartRequest {
            container_id: id.to_string(),
            exec_id: exec_id.clone(),
        };
        let started = self.client.tasks().start(self.req(req)).await;
        // The shim resolved the paths while starting (or never will).
        fifos.unlink();
        if let Err(s) = started {
            guard.kill_and_delete().await;
            return Err(Error::ExecFailed {
                id: id.to_string(),
                cmd: opts.cmd.join(" "),
                message: s.message().to_string(),
            });
        }
        let (control, driver) = ExecControl::new();
        if let Some(size) = opts.size.filter(|_| opts.tty) {
            // runc sizes the terminal from the spec, but an explicit resize also reaches
            // a shell that asked for the size before runc set it.
            control.resize(size);
        }
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        let stdin = stdin.map(|tx| StdinWriter {
            tx: Some(tx),
            closed: Some(closed_tx),
        });
        tokio::spawn(drive(guard, driver, stdin.is_some().then_some(closed_rx)));
        Ok(Exec {
            stdin: stdin.map(|s| Box::new(s) as _),
            stdout: stdout.map(|s| Box::new(s) as _),
            stderr: stderr.map(|s| Box::new(s) as _),
            control,
        })
    }
}

/// Serves one exec until it ends: resizes its terminal, reports its exit code once it was
/// deleted (which makes the shim close the output FIFOs), or kills and deletes it when the
/// session is gone.
async fn drive(
    mut guard: ExecGuard,
    driver: ExecDriver,
    mut stdin_closed: Option<tokio::sync::oneshot::Receiver<()>>,
) {
    let ExecDriver {
        mut resize,
        exit,
        mut cancelled,
    } = driver;
    // The waiter is a disarmed copy: the guard itself is needed mutably below.
    let waiter = ExecGuard {
        tasks: guard.tasks.clone(),
        namespace: guard.namespace.clone(),
        container_id: guard.container_id.clone(),
        exec_id: guard.exec_id.clone(),
        armed: false,
    };
    let wait = async move { wait_exit(&waiter).await };
    tokio::pin!(wait);
    let mut resizes_open = true;
    loop {
        tokio::select! {
            code = &mut wait => {
                match code {
                    Ok(code) => {
                        guard.finish().await;
                        let _ = exit.send(Ok(code));
                    }
                    Err(e) => {
                        guard.kill_and_delete().await;
                        let _ = exit.send(Err(e));
                    }
                }
                return;
            }
            _ = async { stdin_closed.as_mut()?.await.ok() }, if stdin_closed.is_some() => {
                stdin_closed = None;
                close_io(&guard).await;
            }
            size = resize.recv(), if resizes_open => match size {
                Some(size) => resize_pty(&guard, size).await,
                None => resizes_open = false,
            },
            _ = &mut cancelled => {
                guard.kill_and_delete().await;
                return;
            }
        }
    }
}

async fn resize_pty(guard: &ExecGuard, size: TermSize) {
    if size.width == 0 || size.height == 0 {
        return;
    }
    let req = ResizePtyRequest {
        container_id: guard.container_id.clone(),
        exec_id: guard.exec_id.clone(),
        width: u32::from(size.width),
        height: u32::from(size.height),
    };
    if let Err(s) = guard.tasks.clone().resize_pty(guard.req(req)).await {
        tracing::debug!(id = %guard.container_id, exec = %guard.exec_id, error = %s, "resize");
    }
}

async fn wait_exit(guard: &ExecGuard) -> Result<u32> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let req = WaitRequest {
            container_id: guard.container_id.clone(),
            exec_id: guard.exec_id.clone(),
        };
        match guard.tasks.clone().wait(guard.req(req)).await {
            Ok(r) => return Ok(r.into_inner().exit_status),
            // containerd restarted under us; the process lives on in the shim.
            Err(s)
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                ) =>
            {
                tracing::debug!(id = %guard.container_id, exec = %guard.exec_id, error = %s, "exec wait interrupted; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(s) => return Err(Error::grpc("wait exec", guard.container_id.clone(), s)),
        }
    }
}
