//! The logic of exec and attach sessions, apart from the protocol that carries them: input
//! from the client (stdin, its end, terminal resizes), output to it (stdout, stderr), and
//! the outcome that ends the session. A session whose client went away (the input channel
//! closed) ends at once, dropping the exec, which makes the runtime kill and remove it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::logs::LogFollower;
use super::status::Outcome;
use crate::runtime::stream::StreamWriter;
use crate::runtime::{ExecOptions, Runtime, TermSize};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin(Bytes),
    /// The client closed its stdin.
    StdinEnd,
    Resize(TermSize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A session's two directions. `input` closing means the client is gone.
pub struct Pipes {
    pub input: mpsc::Receiver<Input>,
    pub output: mpsc::Sender<Output>,
}

/// Copies a process's stream to the client until it ends (or the client is gone).
async fn pump(
    mut r: Box<dyn AsyncRead + Send + Unpin>,
    out: mpsc::Sender<Output>,
    wrap: fn(Bytes) -> Output,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if out
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading session output");
                return;
            }
        }
    }
}

/// Writes what the client sends to a process's stdin, in a task of its own so that a
/// process that does not read cannot stall the session; closes it at the client's end.
fn stdin_task(mut w: StreamWriter) -> mpsc::Sender<Option<Bytes>> {
    let (tx, mut rx) = mpsc::channel::<Option<Bytes>>(16);
    tokio::spawn(async move {
        while let Some(Some(b)) = rx.recv().await {
            if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    tx
}

/// How long an exec with a terminal waits for the client's first size before it starts.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// Runs an exec session; `None` when the client went away first.
pub async fn exec(
    rt: Arc<dyn Runtime>,
    id: &str,
    mut opts: ExecOptions,
    pipes: Pipes,
) -> Option<Outcome> {
    let Pipes { mut input, output } = pipes;
    // kubectl sends the terminal's size first thing; a process started before it arrives
    // sees a 0×0 terminal (`stty size` fails, full-screen programs draw wrong). So the size
    // is waited for (kubectl sends it at once; a loaded client may take a while) and given
    // to the exec itself. Input other than a size ends the wait and is passed on.
    let mut early = None;
    if opts.tty && opts.size.is_none() {
        match tokio::time::timeout(FIRST_SIZE_WAIT, input.recv()).await {
            Ok(Some(Input::Resize(size))) => opts.size = Some(size),
            Ok(Some(other)) => early = Some(other),
            Ok(None) => return None,
            Err(_) => {}
        }
    }
    let mut exec = match rt.exec(id, &opts).await {
        Ok(e) => e,
        Err(e) => {
            return Some(Outcome::Error(format!(
                "error executing command in container: {e}"
            )));
        }
    };
    let mut stdin = exec.stdin.take().map(stdin_task);
    let resizer = exec.control.resizer();
    match early {
        Some(Input::Stdin(b)) => {
            if let Some(tx) = &stdin
                && tx.send(Some(b)).await.is_err()
            {
                stdin = None;
            }
        }
        Some(Input::StdinEnd) => {
            if let Some(tx) = stdin.take() {
                let _ = tx.send(None).await;
            }
        }
        Some(Input::Resize(size)) => resizer.resize(size),
        None => {}
    }
    let pumps = {
        let out = exec
            .stdout
            .take()
            .map(|r| pump(r, output.clone(), Output::Stdout));
        let err = exec
            .stderr
            .take()
            .map(|r| pump(r, output.clone(), Output::Stderr));
        async move {
            tokio::join!(
                async {
                    if let Some(p) = out {
                        p.await
                    }
                },
                async {
                    if let Some(p) = err {
                        p.await
                    }
                }
            );
        }
    };
    drop(output);
    let control = &mut exec.control;
    let finished = async move {
        pumps.await;
        control.wait().await
    };
    tokio::pin!(finished);
    loop {
        tokio::select! {
            code = &mut finished => {
                return Some(match code {
                    Ok(code) => Outcome::from_exit(&opts.cmd, code),
                    Err(e) => Outcome::Error(format!("error executing command in container: {e}")),
                });
            }
            msg = input.recv() => match msg {
                Some(Input::Stdin(b)) => {
                    if let Some(tx) = &stdin
                        && tx.send(Some(b)).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(Input::StdinEnd) => {
                    if let Some(tx) = stdin.take() {
                        let _ = tx.send(None).await;
                    }
                }
                Some(Input::Resize(size)) => resizer.resize(size),
                // The client is gone: dropping the exec kills it.
                None => return None,
            }
        }
    }
}

/// How often an attach session checks whether the container still runs.
const ATTACH_POLL: Duration = Duration::from_millis(250);

/// Why an attach cannot be served, worded as Kubernetes words it.
pub fn attach_refusal(
    stdin_enabled: bool,
    tty_enabled: bool,
    stdin: bool,
    tty: bool,
    container: &str,
) -> Option<String> {
    if stdin && !stdin_enabled {
        return Some(format!(
            "stdin is not enabled for this container; set stdin: true in container {container:?}'s spec"
        ));
    }
    if tty && !tty_enabled {
        return Some(format!(
            "tty is not enabled for this container; set tty: true in container {container:?}'s spec"
        ));
    }
    None
}

/// Runs an attach session: output from the container's log file (from now on), input to
/// its stdin; ends when the container's process ends. `None` when the client went away.
pub async fn attach(
    rt: Arc<dyn Runtime>,
    id: &str,
    want_stdin: bool,
    want_stdout: bool,
    want_stderr: bool,
    pipes: Pipes,
) -> Option<Outcome> {
    let Pipes { mut input, output } = pipes;
    let target = match rt.attach(id, want_stdin).await {
        Ok(t) => t,
        Err(e) => return Some(Outcome::Error(format!("error attaching to container: {e}"))),
    };
    let mut stdin = target.stdin.map(stdin_task);
    let mut follower = match &target.log_path {
        Some(p) => Some(LogFollower::open_at_end(p).await),
        None => None,
    };
    let tty = target.tty;
    let mut running = target.running;
    let mut tick = tokio::time::interval(ATTACH_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(f) = &mut follower {
                    for line in f.poll().await {
                        let msg = match (line.stderr && !tty, want_stdout, want_stderr) {
                            (false, true, _) => Output::Stdout(line.data),
                            (true, _, true) => Output::Stderr(line.data),
                            _ => continue,
                        };
                        if output.send(msg).await.is_err() {
                            return None;
                        }
                    }
                }
                if !running {
                    return Some(Outcome::Success);
                }
                // Checked after reading, so the last lines go out before the end.
                running = rt.attach(id, false).await.is_ok_and(|t| t.running);
            }
            msg = input.recv() => match msg {
                Some(Input::Stdin(b)) => {
                    if let Some(tx) = &stdin
                        && tx.send(Some(b)).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(Input::StdinEnd) => {
                    if let Some(tx) = stdin.take() {
                        let _ = tx.send(None).await;
                    }
                }
                Some(Input::Resize(size)) => {
                    if tty && let Err(e) = rt.resize_tty(id, size).await {
                        tracing::debug!(%id, error = %e, "resize on attach");
                    }
                }
                None => return None,
            }
        }
    }
}
