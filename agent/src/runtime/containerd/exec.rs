//! Running a command in a running container: an exec process of its task, with the
//! container's own process spec (user, groups, environment, working directory, capabilities,
//! rlimits) and only the arguments replaced, as kubelet's exec probes and hooks expect.
//!
//! Output goes through two FIFOs per exec in the configured exec directory, read while the
//! process runs. (The runc shim's `file://` stdio cannot keep the streams apart: it writes
//! both to stdout's file.) Each stream keeps its first [`EXEC_OUTPUT_LIMIT`] bytes and the
//! rest is read and dropped, so a chatty process never blocks on a full pipe. The FIFOs are
//! unlinked as soon as the shim has opened them, and the exec process is always deleted from
//! the shim afterwards — also when the caller drops the future ([`ExecGuard`]).

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, GetRequest, KillRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::metadata::AsciiMetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::v1::Status as TaskStatus;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;

use super::{Containerd, NAMESPACE_HEADER, unique};
use crate::runtime::{EXEC_OUTPUT_LIMIT, Error, ExecOutput, Result};

/// How the process spec is typed in an exec request, as containerd's Go client registers it.
pub(super) const PROCESS_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// How long a killed exec process may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long output may still arrive after the exec process is deleted. Deleting it makes the
/// shim close its end of the FIFOs (after waiting up to 2 s for a child that inherited the
/// process's stdout), so this is a safety bound, not an expected wait.
const OUTPUT_DRAIN: Duration = Duration::from_secs(3);

/// How often cleanup tries to delete an exec process that is still starting or running, or
/// while containerd restarts (about 6 s in all, the pauses doubling from 100 ms to 1 s).
const DELETE_ATTEMPTS: u32 = 9;

/// The container's process spec (`process` of its OCI spec, in JSON) with `args` replaced
/// and no terminal. Every other field is kept as the container was created with it, also
/// fields this crate does not model.
fn exec_process_spec(id: &str, spec: Option<&prost_types::Any>, cmd: &[String]) -> Result<Vec<u8>> {
    exec_process_spec_with(id, spec, cmd, None)
}

/// [`exec_process_spec`], with a terminal of this size when one is given.
pub(super) fn exec_process_spec_with(
    id: &str,
    spec: Option<&prost_types::Any>,
    cmd: &[String],
    terminal: Option<crate::runtime::TermSize>,
) -> Result<Vec<u8>> {
    let invalid = |reason: &str| Error::InvalidSpec {
        id: id.to_string(),
        reason: reason.to_string(),
    };
    let spec = spec.ok_or_else(|| invalid("the container record has no runtime spec"))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&spec.value).map_err(|source| Error::Json {
            what: format!("runtime spec of {id}"),
            source,
        })?;
    let process = spec
        .get_mut("process")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| invalid("the runtime spec has no process"))?;
    process.insert("args".into(), serde_json::json!(cmd));
    process.insert(
        "terminal".into(),
        serde_json::Value::Bool(terminal.is_some()),
    );
    match terminal {
        Some(size) if size.width > 0 && size.height > 0 => {
            process.insert(
                "consoleSize".into(),
                serde_json::json!({"height": size.height, "width": size.width}),
            );
        }
        _ => {
            process.remove("consoleSize");
        }
    }
    serde_json::to_vec(process).map_err(|source| Error::Json {
        what: format!("exec process spec of {id}"),
        source,
    })
}

/// The stdout and stderr FIFOs of one exec; unlinked on drop at the latest.
struct Fifos {
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Fifos {
    /// Makes both FIFOs (and the directory, mode 0700, when missing) and opens their read
    /// ends. The read ends are non-blocking, so opening needs no writer; a read waits until
    /// the shim has opened its end and returns end-of-file once the shim closed it.
    fn create(dir: &Path, exec_id: &str) -> Result<(Fifos, pipe::Receiver, pipe::Receiver)> {
        if !dir.is_absolute() || dir.as_os_str().as_bytes().contains(&b'%') {
            return Err(Error::InvalidSpec {
                id: dir.display().to_string(),
                reason: "the exec directory must be an absolute path without '%'".into(),
            });
        }
        let fifos = Fifos {
            stdout: dir.join(format!("{exec_id}.out")),
            stderr: dir.join(format!("{exec_id}.err")),
        };
        for path in [&fifos.stdout, &fifos.stderr] {
            match mkfifo(path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| Error::io("create", dir, e))?;
                    mkfifo(path)
                }
                other => other,
            }
            .map_err(|e| Error::io("mkfifo", path, e))?;
        }
        let open = |path: &Path| {
            pipe::OpenOptions::new()
                .open_receiver(path)
                .map_err(|e| Error::io("open", path, e))
        };
        let stdout = open(&fifos.stdout)?;
        let stderr = open(&fifos.stderr)?;
        Ok((fifos, stdout, stderr))
    }

    fn uri(path: &Path) -> Result<String> {
        path.to_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidSpec {
                id: path.display().to_string(),
                reason: "the exec directory is not valid UTF-8".into(),
            })
    }

    fn unlink(&self) {
        for path in [&self.stdout, &self.stderr] {
            if let Err(e) = std::fs::remove_file(path)
                && e.kind() != ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove exec FIFO");
            }
        }
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        self.unlink();
    }
}

pub(super) fn mkfifo(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads a stream to its end, keeping the first [`EXEC_OUTPUT_LIMIT`] bytes in `buf`.
async fn drain(mut rx: pipe::Receiver, buf: &mut Vec<u8>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match rx.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => {
                let room = EXEC_OUTPUT_LIMIT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading exec output");
                return;
            }
        }
    }
}

/// One exec process in the shim, from before it is created until it is deleted. Dropped
/// while armed (the caller gave up on the exec), it kills and deletes the process in a task
/// of its own, so the shim keeps nothing.
pub(super) struct ExecGuard {
    pub(super) tasks: TasksClient<Channel>,
    pub(super) namespace: AsciiMetadataValue,
    pub(super) container_id: String,
    pub(super) exec_id: String,
    pub(super) armed: bool,
}

impl ExecGuard {
    pub(super) fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        r
    }

    async fn delete(&self) -> Result<(), Status> {
        let req = DeleteProcessRequest {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
        };
        match self.tasks.clone().delete_process(self.req(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    /// Deletes the process after it exited.
    pub(super) async fn finish(&mut self) {
        match self.delete().await {
            Ok(()) => self.armed = false,
            // Left armed: the drop retries, killing first.
            Err(s) => {
                tracing::warn!(id = %self.container_id, exec = %self.exec_id, error = %s, "cannot delete exec process")
            }
        }
    }

    /// Kills the process (if it runs), waits for it and deletes it. A process that is still
    /// being started when this begins cannot be deleted yet: kill and delete again. Disarms
    /// the guard either way: after this, retrying is pointless.
    pub(super) async fn kill_and_delete(&mut self) {
        let mut last = None;
        let mut pause = Duration::from_millis(100);
        for attempt in 0..DELETE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            let req = KillRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
                signal: libc::SIGKILL as u32,
                all: false,
            };
            // Not created, not started or already gone: nothing to wait for.
            if self.tasks.clone().kill(self.req(req)).await.is_ok() {
                let req = WaitRequest {
                    container_id: self.container_id.clone(),
                    exec_id: self.exec_id.clone(),
                };
                let mut tasks = self.tasks.clone();
                if tokio::time::timeout(KILL_WAIT, tasks.wait(self.req(req)))
                    .await
                    .is_err()
                {
                    tracing::warn!(id = %self.container_id, exec = %self.exec_id, "killed exec process did not exit");
                }
            }
            match self.delete().await {
                Ok(()) => {
                    self.armed = false;
                    return;
                }
                Err(s) => last = Some(s),
            }
        }
        self.armed = false;
        if let Some(s) = last {
            tracing::warn!(id = %self.container_id, exec = %self.exec_id, error = %s, "cannot delete exec process");
        }
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut rest = ExecGuard {
            tasks: self.tasks.clone(),
            namespace: self.namespace.clone(),
            container_id: std::mem::take(&mut self.container_id),
            exec_id: std::mem::take(&mut self.exec_id),
            // Armed only once the task runs: a runtime shutting down drops the task
            // unpolled, and an armed guard dropped there would spawn again, endlessly.
            armed: false,
        };
        self.armed = false;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    rest.armed = true;
                    rest.kill_and_delete().await
                });
            }
            Err(_) => {
                tracing::warn!(id = %rest.container_id, exec = %rest.exec_id, "no runtime to clean up an abandoned exec process");
            }
        }
    }
}

impl Containerd {
    pub(crate) async fn exec_in(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let deadline = Instant::now() + timeout;
        if cmd.is_empty() {
            return Err(Error::InvalidSpec {
                id: id.to_string(),
                reason: "exec without a command".into(),
            });
        }
        let container = tokio::time::timeout_at(deadline, self.get_container(id))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("exec {} in {id}", cmd.join(" ")),
                after: timeout,
            })??;
        let process = exec_process_spec(id, container.spec.as_ref(), cmd)?;
        let exec_id = unique("exec");
        let (fifos, stdout_rx, stderr_rx) = Fifos::create(&self.cfg.exec_dir, &exec_id)?;
        let request = ExecProcessRequest {
            container_id: id.to_string(),
            stdin: String::new(),
            stdout: Fifos::uri(&fifos.stdout)?,
            stderr: Fifos::uri(&fifos.stderr)?,
            terminal: false,
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
            exec_id,
            armed: true,
        };

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let result = {
            // The output is read while the process runs and while it is deleted (the shim
            // flushes it then), in this task: dropping the future closes the FIFOs.
            let mut output = pin!(async {
                tokio::join!(drain(stdout_rx, &mut stdout), drain(stderr_rx, &mut stderr));
            });
            let mut control = pin!(async {
                let run = self.run_exec(request, cmd, &fifos, &guard);
                match tokio::time::timeout_at(deadline, run).await {
                    Ok(Ok(code)) => {
                        guard.finish().await;
                        Ok(code)
                    }
                    Ok(Err(e)) => {
                        guard.kill_and_delete().await;
                        Err(e)
                    }
                    Err(_) => {
                        guard.kill_and_delete().await;
                        Err(Error::Timeout {
                            what: format!("exec {} in {id}", cmd.join(" ")),
                            after: timeout,
                        })
                    }
                }
            });
            let mut output_done = false;
            let result = loop {
                tokio::select! {
                    r = &mut control => break r,
                    () = &mut output, if !output_done => output_done = true,
                }
            };
            if result.is_ok()
                && !output_done
                && tokio::time::timeout(OUTPUT_DRAIN, &mut output)
                    .await
                    .is_err()
            {
                tracing::warn!(%id, "exec output did not end after the process was deleted");
            }
            result
        };
        drop(fifos);
        Ok(ExecOutput {
            exit_code: result?,
            stdout,
            stderr,
        })
    }

    /// Creates and starts the exec process and waits for its exit code.
    async fn run_exec(
        &self,
        request: ExecProcessRequest,
        cmd: &[String],
        fifos: &Fifos,
        guard: &ExecGuard,
    ) -> Result<u32> {
        let id = request.container_id.clone();
        if let Err(s) = self.client.tasks().exec(self.req(request)).await {
            return Err(self.exec_refused(&id, s).await);
        }
        let req = StartRequest {
            container_id: id.clone(),
            exec_id: guard.exec_id.clone(),
        };
        let started = self.client.tasks().start(self.req(req)).await;
        // The shim resolved both paths while starting (or never will): the FIFOs need no
        // names any more.
        fifos.unlink();
        if let Err(s) = started {
            return Err(Error::ExecFailed {
                id,
                cmd: cmd.join(" "),
                message: s.message().to_string(),
            });
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let req = WaitRequest {
                container_id: id.clone(),
                exec_id: guard.exec_id.clone(),
            };
            match self.client.tasks().wait(self.req(req)).await {
                Ok(r) => return Ok(r.into_inner().exit_status),
                // containerd restarted under us; the process lives on in the shim. The
                // caller's deadline bounds the retries.
                Err(s)
                    if matches!(
                        s.code(),
                        Code::Unavailable | Code::Unknown | Code::Cancelled
                    ) =>
                {
                    tracing::debug!(%id, exec = %guard.exec_id, error = %s, "exec wait interrupted; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(s) => return Err(Error::grpc("wait exec", id, s)),
            }
        }
    }

    /// Why Tasks.Exec refused: most often, the container is not running (no task, or a
    /// stopped one, which containerd reports only as an unknown error).
    pub(super) async fn exec_refused(&self, id: &str, status: Status) -> Error {
        if status.code() == Code::NotFound {
            return Error::NotRunning { id: id.to_string() };
        }
        let req = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        match self.client.tasks().get(self.req(req)).await {
            Ok(r) => {
                let running = r
                    .into_inner()
                    .process
                    .is_some_and(|p| p.status == TaskStatus::Running as i32);
                if running {
                    Error::grpc("exec", id, status)
                } else {
                    Error::NotRunning { id: id.to_string() }
                }
            }
            Err(s) if s.code() == Code::NotFound => Error::NotRunning { id: id.to_string() },
            Err(_) => Error::grpc("exec", id, status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{self, ContainerSpec};
    use crate::runtime::user::ResolvedUser;
    use crate::runtime::{ImageConfig, oci};

    #[test]
    fn exec_spec_is_the_containers_process_with_new_args() {
        let mut cs = ContainerSpec::new("c1", "img");
        cs.command = vec!["sleep".into(), "1000".into()];
        cs.env = vec![("FOO".into(), "bar".into())];
        cs.working_dir = Some("/srv".into());
        cs.no_new_privileges = true;
        cs.nofile_limit = Some(4096);
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![2000],
        };
        let oci = spec::generate(&cs, &ImageConfig::default(), &user).unwrap();
        let mut json: serde_json::Value = serde_json::to_value(&oci).unwrap();
        // A field this crate does not model survives.
        json["process"]["apparmorProfile"] = "skiff-default".into();
        json["process"]["terminal"] = true.into();
        let any = prost_types::Any {
            type_url: String::new(),
            value: serde_json::to_vec(&json).unwrap(),
        };
        let cmd = vec!["id".to_string(), "-u".to_string()];
        let bytes = exec_process_spec("c1", Some(&any), &cmd).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(raw["apparmorProfile"], "skiff-default");
        let process: oci::Process = serde_json::from_value(raw).unwrap();
        let mut expected = oci.process.clone();
        expected.args = cmd;
        assert_eq!(process, expected);
        assert!(!process.terminal);
        assert_eq!(process.user.uid, 1000);
        assert!(process.env.iter().any(|e| e == "FOO=bar"));
    }

    #[test]
    fn exec_spec_needs_a_process() {
        assert!(exec_process_spec("c1", None, &["true".into()]).is_err());
        let any = prost_types::Any {
            type_url: String::new(),
            value: br#"{"ociVersion":"1.0.2"}"#.to_vec(),
        };
        let err = exec_process_spec("c1", Some(&any), &["true".into()]).unwrap_err();
        assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
    }
}
