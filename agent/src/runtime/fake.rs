//! An in-memory [`Runtime`] for unit tests of the pod logic: images are registered by hand,
//! containers "run" until the test says they exit (or a signal "kills" them), and every call
//! is recorded.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;

use super::labels::ContainerMeta;
use super::stream::{AttachTarget, Exec, ExecControl, ExecDriver, ExecOptions, TermSize};
use super::{
    ContainerInfo, ContainerSpec, Error, ExecOutput, ExitStatus, ImageConfig, ImageRef,
    RegistryAuth, Result, Runtime, TaskState, TaskStatus, Version,
};

/// What a scripted exec answers, given the command.
pub type ExecHandler = Arc<dyn Fn(&[String]) -> Result<ExecOutput> + Send + Sync>;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    ImportArchive(String),
    /// The image and the usernames of the credentials offered.
    Pull(String, Vec<String>),
    Create(String),
    Start(String),
    Wait(String),
    Kill(String, i32),
    Exec(String, Vec<String>),
    Delete(String),
    List,
}

struct FakeContainer {
    spec: ContainerSpec,
    status: TaskStatus,
    pid: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    created_at: SystemTime,
}

#[derive(Default)]
struct State {
    images: HashMap<String, ImageConfig>,
    archives: HashMap<String, Vec<ImageConfig>>,
    /// What pulls find in "registries", by image name.
    registry: HashMap<String, ImageConfig>,
    /// Image name → the registry's refusal.
    fail_pull: HashMap<String, String>,
    /// Container name → how its execs answer (default: exit 0, no output).
    exec: HashMap<String, ExecHandler>,
    containers: BTreeMap<String, FakeContainer>,
    calls: Vec<Call>,
    next_pid: u32,
    /// Container name → exit code its process returns as soon as it starts.
    exit_on_start: HashMap<String, u32>,
    /// Container name → start error message.
    fail_start: HashMap<String, String>,
    /// Signals that do not end the process (PID 1 ignores SIGTERM without a handler).
    ignored_signals: Vec<i32>,
}

/// The fake runtime. Containers are matched by [`ContainerMeta::container_name`] for the
/// scripted behaviours, and by id otherwise.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
    streams: Arc<Mutex<StreamRecord>>,
}

/// What interactive sessions did to the fake runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRecord {
    /// Terminal sizes asked for, by execs and attach sessions, in order.
    pub resizes: Vec<TermSize>,
    /// Execs whose session went away before they ended (and were "killed").
    pub cancelled: u32,
    /// Execs that ended by themselves.
    pub finished: u32,
    /// What attach sessions wrote to containers' standard input.
    pub attach_input: Vec<u8>,
}

fn poisoned() -> Error {
    Error::Supervise {
        dir: "fake".into(),
        reason: "state lock poisoned".into(),
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        f(&mut s)
    }

    /// Registers an image (its `name` field is the name).
    pub fn add_image(&self, config: ImageConfig) {
        let _ = self.with(|s| {
            s.images.insert(config.name.clone(), config);
            Ok(())
        });
    }

    /// What importing `path` will register.
    pub fn add_archive(&self, path: &Path, images: Vec<ImageConfig>) {
        let _ = self.with(|s| {
            s.archives.insert(path.display().to_string(), images);
            Ok(())
        });
    }

    /// What pulling `config.name` fetches.
    pub fn add_registry_image(&self, config: ImageConfig) {
        let _ = self.with(|s| {
            s.registry.insert(config.name.clone(), config);
            Ok(())
        });
    }

    /// Pulls of `image` fail with this message (until [`FakeRuntime::clear_fail_pull`]).
    pub fn fail_pull(&self, image: &str, message: &str) {
        let _ = self.with(|s| {
            s.fail_pull.insert(image.to_string(), message.to_string());
            Ok(())
        });
    }

    pub fn clear_fail_pull(&self, image: &str) {
        let _ = self.with(|s| {
            s.fail_pull.remove(image);
            Ok(())
        });
    }

    /// Removes an image, as garbage collection or `ctr image rm` would.
    pub fn remove_image(&self, image: &str) {
        let _ = self.with(|s| {
            s.images.remove(image);
            Ok(())
        });
    }

    /// Execs in containers with this name answer with `handler`.
    pub fn on_exec(
        &self,
        container_name: &str,
        handler: impl Fn(&[String]) -> Result<ExecOutput> + Send + Sync + 'static,
    ) {
        let _ = self.with(|s| {
            s.exec.insert(container_name.to_string(), Arc::new(handler));
            Ok(())
        });
    }

    /// Containers with this name exit with `code` right after they start.
    pub fn exit_on_start(&self, container_name: &str, code: u32) {
        let _ = self.with(|s| {
            s.exit_on_start.insert(container_name.to_string(), code);
            Ok(())
        });
    }

    /// Containers with this name fail to start with this message (and are removed, as with
    /// containerd).
    pub fn fail_start(&self, container_name: &str, message: &str) {
        let _ = self.with(|s| {
            s.fail_start
                .insert(container_name.to_string(), message.to_string());
            Ok(())
        });
    }

    /// Signals the fake processes survive.
    pub fn ignore_signal(&self, signal: i32) {
        let _ = self.with(|s| {
            s.ignored_signals.push(signal);
            Ok(())
        });
    }

    /// Makes a running container's process exit now.
    pub fn exit(&self, id: &str, code: u32) -> Result<()> {
        self.with(|s| {
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| not_found("task", id))?;
            finish(c, code, false);
            Ok(())
        })
    }

    /// Makes a running container's process die as the OOM killer would.
    pub fn oom_kill(&self, id: &str) -> Result<()> {
        self.with(|s| {
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| not_found("task", id))?;
            finish(c, 137, true);
            Ok(())
        })
    }

    /// The spec a container was created with.
    pub fn spec(&self, id: &str) -> Option<ContainerSpec> {
        self.with(|s| Ok(s.containers.get(id).map(|c| c.spec.clone())))
            .ok()
            .flatten()
    }

    /// What interactive sessions did so far.
    pub fn streams(&self) -> StreamRecord {
        self.streams.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| Ok(s.calls.clone())).unwrap_or_default()
    }

    pub fn clear_calls(&self) {
        let _ = self.with(|s| {
            s.calls.clear();
            Ok(())
        });
    }
}

fn finish(c: &mut FakeContainer, code: u32, oom_killed: bool) {
    if c.status == TaskStatus::Running || c.status == TaskStatus::Created {
        c.status = TaskStatus::Stopped;
        c.exit.send_replace(Some(ExitStatus {
            code,
            exited_at: Some(SystemTime::now()),
            oom_killed,
        }));
    }
}

fn container_name(spec: &ContainerSpec) -> String {
    spec.meta
        .as_ref()
        .map(|m| m.container_name.clone())
        .unwrap_or_else(|| spec.id.clone())
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<Version> {
        Ok(Version {
            version: "fake".into(),
            revision: "0".into(),
        })
    }

    async fn image_exists(&self, image: &str) -> Result<bool> {
        self.with(|s| Ok(s.images.contains_key(image)))
    }

    async fn image_config(&self, image: &str) -> Result<ImageConfig> {
        self.with(|s| {
            s.images
                .get(image)
                .cloned()
                .ok_or_else(|| not_found("image", image))
        })
    }

    async fn import_archive(&self, path: &Path) -> Result<Vec<ImageRef>> {
        self.with(|s| {
            let key = path.display().to_string();
            s.calls.push(Call::ImportArchive(key.clone()));
            let images = s
                .archives
                .get(&key)
                .cloned()
                .ok_or_else(|| Error::Archive {
                    path: path.to_path_buf(),
                    reason: "no such archive".into(),
                })?;
            let mut refs = Vec::new();
            for img in images {
                refs.push(ImageRef {
                    name: img.name.clone(),
                    digest: img.target_digest.clone(),
                });
                s.images.insert(img.name.clone(), img);
            }
            Ok(refs)
        })
    }

    async fn pull_image(&self, image: &str, auth: &[RegistryAuth]) -> Result<ImageRef> {
        // A pull takes time: others may start meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.with(|s| {
            s.calls.push(Call::Pull(
                image.to_string(),
                auth.iter().map(|a| a.username.clone()).collect(),
            ));
            if let Some(message) = s.fail_pull.get(image) {
                return Err(Error::InvalidImage {
                    image: image.to_string(),
                    reason: message.clone(),
                });
            }
            let config = s
                .registry
                .get(image)
                .cloned()
                .ok_or_else(|| Error::InvalidImage {
                    image: image.to_string(),
                    reason: "not found in the registry".into(),
                })?;
            s.images.insert(image.to_string(), config.clone());
            Ok(ImageRef {
                name: image.to_string(),
                digest: config.target_digest,
            })
        })
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.with(|s| {
            s.calls.push(Call::Create(spec.id.clone()));
            if !s.images.contains_key(&spec.image) {
                return Err(not_found("image", &spec.image));
            }
            if s.containers.contains_key(&spec.id) {
                return Err(Error::Grpc {
                    op: "create container",
                    object: spec.id.clone(),
                    code: containerd_client::tonic::Code::AlreadyExists,
                    message: "container already exists".into(),
                });
            }
            let (exit, _) = watch::channel(None);
            s.containers.insert(
                spec.id.clone(),
                FakeContainer {
                    spec: spec.clone(),
                    status: TaskStatus::None,
                    pid: 0,
                    exit,
                    created_at: SystemTime::now(),
                },
            );
            Ok(spec.id.clone())
        })
    }

    async fn start(&self, id: &str) -> Result<u32> {
        self.with(|s| {
            s.calls.push(Call::Start(id.to_string()));
            let c = s
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?;
            let name = container_name(&c.spec);
            if let Some(message) = s.fail_start.get(&name).cloned() {
                s.containers.remove(id);
                return Err(Error::StartFailed {
                    id: id.to_string(),
                    message,
                });
            }
            let exit_code = s.exit_on_start.get(&name).copied();
            s.next_pid += 1;
            let pid = 1000 + s.next_pid;
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| not_found("container", id))?;
            c.status = TaskStatus::Running;
            c.pid = pid;
            if let Some(code) = exit_code {
                finish(c, code, false);
            }
            Ok(pid)
        })
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus> {
        let mut rx = self.with(|s| {
            s.calls.push(Call::Wait(id.to_string()));
            let c = s.containers.get(id).ok_or_else(|| not_found("task", id))?;
            if c.status == TaskStatus::None {
                return Err(not_found("task", id));
            }
            Ok(c.exit.subscribe())
        })?;
        let status = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| not_found("task", id))?;
        (*status).ok_or_else(|| not_found("task", id))
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.with(|s| {
            s.calls.push(Call::Kill(id.to_string(), signal));
            let ignored = s.ignored_signals.contains(&signal) && signal != libc::SIGKILL;
            if let Some(c) = s.containers.get_mut(id)
                && !ignored
            {
                let code = 128 + u32::try_from(signal).unwrap_or(0);
                finish(c, code, false);
            }
            Ok(())
        })
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        let handler = self.with(|s| {
            s.calls.push(Call::Exec(id.to_string(), cmd.to_vec()));
            let c = s.containers.get(id).ok_or_else(|| not_found("task", id))?;
            if c.status != TaskStatus::Running {
                return Err(Error::NotRunning { id: id.to_string() });
            }
            Ok(s.exec.get(&container_name(&c.spec)).cloned())
        })?;
        match handler {
            Some(h) => match h(cmd) {
                Err(Error::Timeout { what, .. }) => Err(Error::Timeout {
                    what,
                    after: timeout,
                }),
                other => other,
            },
            None => Ok(ExecOutput::default()),
        }
    }

    /// A streaming exec: `cat` copies stdin to stdout, `sleep` never ends; any other
    /// command answers as its scripted exec does (output, then exit code).
    async fn exec(&self, id: &str, opts: &ExecOptions) -> Result<Exec> {
        let handler = self.with(|s| {
            s.calls.push(Call::Exec(id.to_string(), opts.cmd.clone()));
            let c = s.containers.get(id).ok_or_else(|| not_found("task", id))?;
            if c.status != TaskStatus::Running {
                return Err(Error::NotRunning { id: id.to_string() });
            }
            Ok(s.exec.get(&container_name(&c.spec)).cloned())
        })?;
        // A terminal's first size counts as the first size asked for.
        if opts.tty
            && let Some(size) = opts.size
            && let Ok(mut rec) = self.streams.lock()
        {
            rec.resizes.push(size);
        }
        let (control, driver) = ExecControl::new();
        let (stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
        let (out_w, out_r) = tokio::io::duplex(64 * 1024);
        let (err_w, err_r) = tokio::io::duplex(64 * 1024);
        let cmd = opts.cmd.clone();
        let record = self.streams.clone();
        tokio::spawn(fake_exec(
            cmd, handler, stdin_r, out_w, err_w, driver, record,
        ));
        Ok(Exec {
            stdin: opts.stdin.then(|| Box::new(stdin_w) as _),
            stdout: opts.stdout.then(|| Box::new(out_r) as _),
            stderr: (opts.stderr && !opts.tty).then(|| Box::new(err_r) as _),
            control,
        })
    }

    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachTarget> {
        let (spec, running) = self.with(|s| {
            let c = s
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?;
            Ok((c.spec.clone(), c.status == TaskStatus::Running))
        })?;
        let writer = if stdin && spec.stdin && running {
            let (w, mut r) = tokio::io::duplex(64 * 1024);
            let record = self.streams.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut rec) = record.lock() {
                        rec.attach_input.extend_from_slice(&buf[..n]);
                    }
                }
            });
            Some(Box::new(w) as _)
        } else {
            None
        };
        Ok(AttachTarget {
            stdin_enabled: spec.stdin,
            tty: spec.tty,
            log_path: spec.log.log_file(),
            stdin: writer,
            running,
        })
    }

    async fn resize_tty(&self, id: &str, size: TermSize) -> Result<()> {
        self.with(|s| {
            s.containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?;
            Ok(())
        })?;
        if let Ok(mut rec) = self.streams.lock() {
            rec.resizes.push(size);
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(Call::Delete(id.to_string()));
            if let Some(mut c) = s.containers.remove(id) {
                finish(&mut c, 137, false);
            }
            Ok(())
        })
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>> {
        self.with(|s| {
            s.calls.push(Call::List);
            Ok(s.containers
                .iter()
                .map(|(id, c)| {
                    let labels = c.spec.all_labels();
                    ContainerInfo {
                        id: id.clone(),
                        image: c.spec.image.clone(),
                        meta: ContainerMeta::from_labels(&labels),
                        labels,
                        created_at: Some(c.created_at),
                        task: TaskState {
                            status: c.status,
                            pid: c.pid,
                            exit: *c.exit.borrow(),
                        },
                    }
                })
                .collect())
        })
    }
}

async fn fake_exec(
    cmd: Vec<String>,
    handler: Option<ExecHandler>,
    mut stdin: tokio::io::DuplexStream,
    mut stdout: tokio::io::DuplexStream,
    mut stderr: tokio::io::DuplexStream,
    driver: ExecDriver,
    record: Arc<Mutex<StreamRecord>>,
) {
    use tokio::io::AsyncWriteExt;
    let ExecDriver {
        mut resize,
        exit,
        mut cancelled,
    } = driver;
    let io = |e| Error::io("fake exec", "", e);
    // Owns the pipes: they close (the output ends) when the work is done.
    let work = async move {
        if cmd.first().is_some_and(|c| c == "sleep") {
            std::future::pending::<()>().await;
        }
        if cmd.first().is_some_and(|c| c == "cat") {
            tokio::io::copy(&mut stdin, &mut stdout)
                .await
                .map(|_| 0)
                .map_err(io)
        } else {
            let out = match handler {
                Some(h) => h(&cmd)?,
                None => ExecOutput::default(),
            };
            stdout.write_all(&out.stdout).await.map_err(io)?;
            stderr.write_all(&out.stderr).await.map_err(io)?;
            Ok(out.exit_code)
        }
    };
    tokio::pin!(work);
    let mut resizes_open = true;
    let code: Result<u32> = loop {
        tokio::select! {
            r = &mut work => break r,
            size = resize.recv(), if resizes_open => match size {
                Some(size) => if let Ok(mut rec) = record.lock() { rec.resizes.push(size) },
                None => resizes_open = false,
            },
            _ = &mut cancelled => {
                if let Ok(mut rec) = record.lock() { rec.cancelled += 1 }
                return;
            }
        }
    };
    if let Ok(mut rec) = record.lock() {
        rec.finished += 1;
    }
    let _ = exit.send(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            name: "img".into(),
            cmd: vec!["sh".into()],
            ..Default::default()
        }
    }

    fn spec(id: &str, name: &str) -> ContainerSpec {
        let mut s = ContainerSpec::new(id, "img");
        s.meta = Some(ContainerMeta {
            pod_uid: "u".into(),
            container_name: name.into(),
            ..Default::default()
        });
        s
    }

    #[tokio::test]
    async fn lifecycle() {
        let rt = FakeRuntime::new();
        rt.add_image(image());
        assert!(rt.image_exists("img").await.unwrap());
        rt.create_container(&spec("c1", "app")).await.unwrap();
        let pid = rt.start("c1").await.unwrap();
        let listed = rt.list().await.unwrap();
        assert_eq!(listed[0].task.status, TaskStatus::Running);
        assert_eq!(listed[0].task.pid, pid);
        assert_eq!(listed[0].meta.as_ref().unwrap().container_name, "app");
        let waiter = {
            let rt = &rt;
            async move { rt.wait("c1").await }
        };
        let (status, ()) = tokio::join!(waiter, async {
            tokio::task::yield_now().await;
            rt.kill("c1", libc::SIGTERM).await.unwrap();
        });
        assert_eq!(status.unwrap().signal(), Some(libc::SIGTERM));
        rt.delete("c1").await.unwrap();
        rt.delete("c1").await.unwrap();
        assert!(rt.list().await.unwrap().is_empty());
        assert!(rt.calls().contains(&Call::Kill("c1".into(), libc::SIGTERM)));
    }

    #[tokio::test]
    async fn scripted_behaviours() {
        let rt = FakeRuntime::new();
        rt.add_image(image());
        rt.exit_on_start("quick", 3);
        rt.fail_start("broken", "exec: \"nope\": not found");
        rt.ignore_signal(libc::SIGTERM);
        rt.create_container(&spec("q", "quick")).await.unwrap();
        rt.start("q").await.unwrap();
        assert_eq!(rt.wait("q").await.unwrap().code, 3);
        rt.create_container(&spec("b", "broken")).await.unwrap();
        assert!(matches!(
            rt.start("b").await,
            Err(Error::StartFailed { .. })
        ));
        assert!(
            rt.spec("b").is_none(),
            "a failed start removes the container"
        );
        rt.create_container(&spec("s", "slow")).await.unwrap();
        rt.start("s").await.unwrap();
        rt.kill("s", libc::SIGTERM).await.unwrap();
        assert_eq!(rt.list().await.unwrap()[1].task.status, TaskStatus::Running);
        rt.oom_kill("s").unwrap();
        let st = rt.wait("s").await.unwrap();
        assert!(st.oom_killed);
        assert_eq!(st.code, 137);
        assert!(
            rt.create_container(&ContainerSpec::new("x", "missing"))
                .await
                .is_err()
        );
    }
}
