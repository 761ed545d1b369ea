//! Interactive processes: what a streaming exec or an attach hands the session that serves
//! it (its standard streams, a way to resize its terminal, its exit code), and how dropping
//! that session tells the runtime to end the process and remove everything of it.

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

pub type StreamReader = Box<dyn AsyncRead + Send + Unpin>;
pub type StreamWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// A terminal's size in characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// What to run and which streams it gets. With `tty`, the process has a terminal and its
/// output (both streams) comes on `stdout`; `stderr` is then ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// The terminal's first size (with `tty`).
    pub size: Option<TermSize>,
}

/// A started exec process. Its output streams end when the process has ended and the
/// runtime released it; closing `stdin` closes the process's standard input.
pub struct Exec {
    pub stdin: Option<StreamWriter>,
    pub stdout: Option<StreamReader>,
    pub stderr: Option<StreamReader>,
    pub control: ExecControl,
}

/// Resizes and the exit code of an exec. Dropping it before the exit was reported (the
/// client went away) makes the runtime kill the process and remove it.
pub struct ExecControl {
    resize: mpsc::UnboundedSender<TermSize>,
    exit: oneshot::Receiver<Result<u32>>,
    _cancel: oneshot::Sender<()>,
}

/// Resizes an exec's terminal.
#[derive(Clone)]
pub struct Resizer(mpsc::UnboundedSender<TermSize>);

impl Resizer {
    pub fn resize(&self, size: TermSize) {
        let _ = self.0.send(size);
    }
}

/// The runtime's side of an [`ExecControl`].
pub struct ExecDriver {
    pub resize: mpsc::UnboundedReceiver<TermSize>,
    pub exit: oneshot::Sender<Result<u32>>,
    /// Resolves (with an error) once the [`ExecControl`] is dropped.
    pub cancelled: oneshot::Receiver<()>,
}

impl ExecControl {
    pub fn new() -> (ExecControl, ExecDriver) {
        let (resize_tx, resize_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel();
        (
            ExecControl {
                resize: resize_tx,
                exit: exit_rx,
                _cancel: cancel_tx,
            },
            ExecDriver {
                resize: resize_rx,
                exit: exit_tx,
                cancelled: cancel_rx,
            },
        )
    }

    /// Asks for a new terminal size; ignored once the process is gone.
    pub fn resize(&self, size: TermSize) {
        let _ = self.resize.send(size);
    }

    /// A handle that resizes while something else waits for the exit.
    pub fn resizer(&self) -> Resizer {
        Resizer(self.resize.clone())
    }

    /// The process's exit code (128 + n for signal n), once it ended and was removed.
    pub async fn wait(&mut self) -> Result<u32> {
        match (&mut self.exit).await {
            Ok(r) => r,
            Err(_) => Err(Error::ExecFailed {
                id: String::new(),
                cmd: String::new(),
                message: "the runtime gave up on the exec".into(),
            }),
        }
    }
}

/// What attaching to a container's main process needs: where its output is logged, and a
/// writer into its standard input when the container has one and it was asked for.
pub struct AttachTarget {
    /// The container was created with a standard input (`stdin: true`).
    pub stdin_enabled: bool,
    /// The container's process has a terminal (`tty: true`).
    pub tty: bool,
    /// The container's current log file (CRI format), when it is logged to a file.
    pub log_path: Option<PathBuf>,
    pub stdin: Option<StreamWriter>,
    /// Whether the process still runs.
    pub running: bool,
}
