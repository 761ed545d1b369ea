//! The main process's standard input and terminal, for attach sessions. A container created
//! with `stdin` gets a FIFO as its task's stdin (`<exec dir>/<id>.stdin`); the agent holds a
//! write end of it from task creation on, so the process does not see end-of-file while no
//! session is attached, and each attach session opens a write end of its own. With
//! `stdinOnce`, the first session to close its end drops the agent's, which ends the input.
//! Output is not the runtime's business: attach sessions follow the container's log file.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use containerd_client::services::v1::{GetRequest, ResizePtyRequest};
use containerd_client::tonic::Code;
use containerd_client::types::v1::Status;
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;

use super::Containerd;
use super::exec::ExecGuard;
use super::exec_stream::{close_io, make_fifo, open_fifo_writer};
use crate::runtime::spec::ContainerSpec;
use crate::runtime::stream::{AttachTarget, StreamWriter, TermSize};
use crate::runtime::{Error, Result};

/// `true` or `once` when the container has a standard input.
pub const STDIN_LABEL: &str = "io.skiff.stdin";
/// `true` when the container's process has a terminal.
pub const TTY_LABEL: &str = "io.skiff.tty";
/// The container's log file, for attach sessions to follow.
pub const LOG_PATH_LABEL: &str = "io.skiff.log-path";

/// The agent's write ends of containers' stdin FIFOs, by container id.
#[derive(Default, Clone)]
pub(super) struct Stdins(Arc<Mutex<HashMap<String, pipe::Sender>>>);

impl Stdins {
    fn insert(&self, id: &str, tx: pipe::Sender) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id.to_string(), tx);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

pub(super) fn stdio_labels(spec: &ContainerSpec, labels: &mut HashMap<String, String>) {
    if spec.stdin {
        let v = if spec.stdin_once { "once" } else { "true" };
        labels.insert(STDIN_LABEL.into(), v.into());
    }
    if spec.tty {
        labels.insert(TTY_LABEL.into(), "true".into());
    }
    if let Some(p) = spec.log.log_file() {
        labels.insert(LOG_PATH_LABEL.into(), p.to_string_lossy().into_owned());
    }
}

/// A session's write end of a container's stdin; with `stdinOnce`, closing it ends the
/// container's input.
struct AttachStdin {
    tx: pipe::Sender,
    /// With `stdinOnce`: the agent's write ends, and a handle to close the shim's.
    once: Option<(Stdins, ExecGuard)>,
}

impl AsyncWrite for AttachStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tx).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tx).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tx).poll_shutdown(cx)
    }
}

impl Drop for AttachStdin {
    fn drop(&mut self) {
        if let Some((stdins, shim)) = self.once.take() {
            stdins.remove(&shim.container_id);
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move { close_io(&shim).await });
            }
        }
    }
}

impl Containerd {
    fn stdin_fifo(&self, id: &str) -> PathBuf {
        self.cfg.exec_dir.join(format!("{id}.stdin"))
    }

    /// The task's stdin URI and terminal flag, from the container's labels; makes the stdin
    /// FIFO and keeps its write end.
    pub(super) fn main_stdio(
        &self,
        id: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(String, bool)> {
        let terminal = labels.get(TTY_LABEL).is_some_and(|v| v == "true");
        if !labels.contains_key(STDIN_LABEL) {
            return Ok((String::new(), terminal));
        }
        let path = self.stdin_fifo(id);
        let _ = std::fs::remove_file(&path);
        let path = make_fifo(&self.cfg.exec_dir, &format!("{id}.stdin"))?;
        let tx = open_fifo_writer(&path)?;
        self.stdins.insert(id, tx);
        let uri = path
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidSpec {
                id: id.to_string(),
                reason: "the exec directory is not valid UTF-8".into(),
            })?;
        Ok((uri, terminal))
    }

    pub(crate) async fn resize_main_tty(&self, id: &str, size: TermSize) -> Result<()> {
        if size.width == 0 || size.height == 0 {
            return Ok(());
        }
        let req = ResizePtyRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            width: u32::from(size.width),
            height: u32::from(size.height),
        };
        self.client
            .tasks()
            .resize_pty(self.req(req))
            .await
            .map(|_| ())
            .map_err(|s| Error::grpc("resize terminal", id, s))
    }

    pub(super) fn forget_stdin(&self, id: &str) {
        self.stdins.remove(id);
        if let Err(e) = std::fs::remove_file(self.stdin_fifo(id))
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(%id, error = %e, "cannot remove stdin FIFO");
        }
    }

    pub(crate) async fn attach_target(&self, id: &str, want_stdin: bool) -> Result<AttachTarget> {
        let container = self.get_container(id).await?;
        let labels = &container.labels;
        let stdin_mode = labels.get(STDIN_LABEL).cloned();
        let req = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        let running = match self.client.tasks().get(self.req(req)).await {
            Ok(r) => r
                .into_inner()
                .process
                .is_some_and(|p| p.status == Status::Running as i32),
            Err(s) if s.code() == Code::NotFound => false,
            Err(s) => return Err(Error::grpc("get task", id, s)),
        };
        let stdin: Option<StreamWriter> = match (&stdin_mode, want_stdin && running) {
            (Some(mode), true) => {
                // Non-blocking write-only open: fails with ENXIO when the shim no longer
                // reads (the input already ended).
                let path = self.stdin_fifo(id);
                match pipe::OpenOptions::new().open_sender(&path) {
                    Ok(tx) => Some(Box::new(AttachStdin {
                        tx,
                        once: (mode == "once").then(|| {
                            let shim = ExecGuard {
                                tasks: self.client.tasks(),
                                namespace: self.namespace.clone(),
                                container_id: id.to_string(),
                                exec_id: String::new(),
                                armed: false,
                            };
                            (self.stdins.clone(), shim)
                        }),
                    }) as _),
                    Err(e) => {
                        tracing::debug!(%id, error = %e, "container stdin is closed");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(AttachTarget {
            stdin_enabled: stdin_mode.is_some(),
            tty: labels.get(TTY_LABEL).is_some_and(|v| v == "true"),
            log_path: labels.get(LOG_PATH_LABEL).map(PathBuf::from),
            stdin,
            running,
        })
    }
}
