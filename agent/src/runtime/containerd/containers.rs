//! Containers and their tasks: create (snapshot + OCI spec + labels), start (runc shim task
//! with stdout/stderr to a file or logging binary), wait, kill, delete, list.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::snapshots::{MountsRequest, PrepareSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Mount;
use containerd_client::types::v1::Status;

use super::{Containerd, rootfs, to_system_time};
use crate::runtime::labels::ContainerMeta;
use crate::runtime::spec::{self, ContainerSpec, LogTarget};
use crate::runtime::{ContainerInfo, Error, ExitStatus, Result, TaskState, TaskStatus, user};

/// Where the container record keeps its log target until the task is created.
pub const LOG_LABEL: &str = "io.skiff.log";

/// How the runtime-spec JSON is typed inside the container record, as containerd's Go
/// client registers it.
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";

/// How long `delete` waits for a killed task to go away.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often `wait` retries after errors that may be a containerd restart or may last.
const MAX_UNCLEAR_WAIT_ERRORS: u32 = 30;

/// How long `wait` waits for the OOM event of a process that died of SIGKILL.
const OOM_EVENT_GRACE: Duration = Duration::from_millis(200);

fn lease_id(id: &str) -> String {
    format!("skiff-container-{id}")
}

/// containerd's rule for identifiers: alphanumeric start, then alphanumerics, `.`, `_`, `-`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && id.len() <= 76
}

/// `containerd.runc.v1.Options` with only `root` (field 7) set: protobuf by hand, since the
/// message is not part of containerd's API crate.
fn runc_options(root: &str) -> prost_types::Any {
    let mut value = vec![(7 << 3) | 2];
    let mut len = root.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            value.push(byte);
            break;
        }
        value.push(byte | 0x80);
    }
    value.extend_from_slice(root.as_bytes());
    prost_types::Any {
        type_url: RUNC_OPTIONS_TYPE_URL.into(),
        value,
    }
}

/// Escapes what would end or split a URI path or query component.
fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'%' | b'?' | b'#' | b'&' | b'=' | b'+' | b' ' | 0..=0x1f | 0x7f.. => {
                out.push_str(&format!("%{b:02X}"))
            }
            _ => out.push(b as char),
        }
    }
    out
}

/// The stdout/stderr URI the shim understands for a log target ("" discards).
pub(crate) fn log_uri(target: &LogTarget) -> Result<String, String> {
    match target {
        LogTarget::Null => Ok(String::new()),
        LogTarget::File(p) if p.is_absolute() => {
            Ok(format!("file://{}", uri_escape(&p.to_string_lossy())))
        }
        LogTarget::Binary { path, args } if path.is_absolute() => {
            let mut uri = format!("binary://{}", uri_escape(&path.to_string_lossy()));
            for (i, (k, v)) in args.iter().enumerate() {
                uri.push(if i == 0 { '?' } else { '&' });
                uri.push_str(&format!("{}={}", uri_escape(k), uri_escape(v)));
            }
            Ok(uri)
        }
        LogTarget::File(p) | LogTarget::Binary { path: p, .. } => {
            Err(format!("log path {} is not absolute", p.display()))
        }
    }
}

impl Containerd {
    pub(crate) async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let id = spec.id.as_str();
        if !valid_id(id) {
            return Err(Error::InvalidSpec {
                id: id.to_string(),
                reason: "ids are 1-76 characters: alphanumerics, '.', '_', '-', alphanumeric first"
                    .into(),
            });
        }
        let log = log_uri(&spec.log).map_err(|reason| Error::InvalidSpec {
            id: id.to_string(),
            reason,
        })?;
        // The shim copies a terminal only to a FIFO or a logging binary, not to a file (nor
        // to nothing): such a container runs without one rather than not at all.
        let without_tty;
        let spec = if spec.tty && !matches!(spec.log, LogTarget::Binary { .. }) {
            tracing::debug!(%id, "no terminal for a container not logged through a binary");
            without_tty = ContainerSpec {
                tty: false,
                ..spec.clone()
            };
            &without_tty
        } else {
            spec
        };
        let image = self.resolve_image(&spec.image).await?;
        // The lease keeps the new snapshot alive until the container record references it.
        let lease = self.create_lease(&lease_id(id)).await?;
        let result = self.create_leased(spec, &image, &lease, log).await;
        if let Err(e) = self.delete_lease(&lease).await {
            tracing::warn!(%lease, error = %e, "cannot delete container lease; it expires by itself");
        }
        result.map(|()| id.to_string())
    }

    async fn prepare_rootfs(&self, id: &str, parent: &str, lease: &str) -> Result<Vec<Mount>> {
        let req = PrepareSnapshotRequest {
            snapshotter: self.cfg.snapshotter.clone(),
            key: id.to_string(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        self.client
            .snapshots()
            .prepare(self.leased(req, lease))
            .await
            .map(|r| r.into_inner().mounts)
            .map_err(|s| Error::grpc("prepare snapshot", id, s))
    }

    async fn create_leased(
        &self,
        spec: &ContainerSpec,
        image: &super::ResolvedImage,
        lease: &str,
        log: String,
    ) -> Result<()> {
        let id = spec.id.as_str();
        let mounts = match self.prepare_rootfs(id, image.chain_id(), lease).await {
            // Not unpacked (yet, or any more): unpack and try once more.
            Err(e) if e.is_not_found() => {
                self.unpack(&spec.image).await?;
                self.prepare_rootfs(id, image.chain_id(), lease).await?
            }
            other => other?,
        };
        let result = async {
            let config = image.config_for(&spec.image);
            let passwd = rootfs::read_file(&mounts, "/etc/passwd").await;
            let group = rootfs::read_file(&mounts, "/etc/group").await;
            let user = user::resolve(
                &spec.user,
                &config.user,
                passwd.as_deref(),
                group.as_deref(),
            )
            .map_err(|reason| Error::InvalidSpec {
                id: id.to_string(),
                reason,
            })?;
            let oci = if spec.privileged {
                let mut with_devices = spec.clone();
                with_devices
                    .devices
                    .extend(spec::host_devices(std::path::Path::new("/dev")));
                spec::generate(&with_devices, &config, &user)?
            } else {
                spec::generate(spec, &config, &user)?
            };
            let json = serde_json::to_vec(&oci).map_err(|source| Error::Json {
                what: format!("runtime spec of {id}"),
                source,
            })?;
            let mut labels: HashMap<String, String> = spec.all_labels().into_iter().collect();
            if !log.is_empty() {
                labels.insert(LOG_LABEL.to_string(), log);
            }
            super::attach::stdio_labels(spec, &mut labels);
            let container = Container {
                id: id.to_string(),
                labels,
                image: spec.image.clone(),
                runtime: Some(ContainerRuntime {
                    name: self.cfg.runtime.clone(),
                    options: self
                        .cfg
                        .runc_root
                        .as_ref()
                        .map(|r| runc_options(&r.to_string_lossy())),
                }),
                spec: Some(prost_types::Any {
                    type_url: SPEC_TYPE_URL.into(),
                    value: json,
                }),
                snapshotter: self.cfg.snapshotter.clone(),
                snapshot_key: id.to_string(),
                ..Default::default()
            };
            let req = CreateContainerRequest {
                container: Some(container),
            };
            self.client
                .containers()
                .create(self.req(req))
                .await
                .map_err(|s| Error::grpc("create container", id, s))?;
            Ok(())
        }
        .await;
        if result.is_err()
            && let Err(e) = self.remove_snapshot(id).await
        {
            tracing::warn!(%id, error = %e, "cannot remove the snapshot of a container that failed to create");
        }
        result
    }

    pub(super) async fn get_container(&self, id: &str) -> Result<Container> {
        let req = GetContainerRequest { id: id.to_string() };
        match self.client.containers().get(self.req(req)).await {
            Ok(r) => r.into_inner().container.ok_or_else(|| Error::NotFound {
                kind: "container",
                id: id.to_string(),
            }),
            Err(s) if s.code() == Code::NotFound => Err(Error::NotFound {
                kind: "container",
                id: id.to_string(),
            }),
            Err(s) => Err(Error::grpc("get container", id, s)),
        }
    }

    pub(crate) async fn start_task(&self, id: &str) -> Result<u32> {
        let container = self.get_container(id).await?;
        let req = MountsRequest {
            snapshotter: container.snapshotter.clone(),
            key: container.snapshot_key.clone(),
        };
        let rootfs = self
            .client
            .snapshots()
            .mounts(self.req(req))
            .await
            .map_err(|s| Error::grpc("snapshot mounts", id, s))?
            .into_inner()
            .mounts;
        let log = container.labels.get(LOG_LABEL).cloned().unwrap_or_default();
        let (stdin, terminal) = self.main_stdio(id, &container.labels)?;
        let req = CreateTaskRequest {
            container_id: id.to_string(),
            rootfs,
            stdin,
            stdout: log.clone(),
            // A terminal has one output stream; the shim refuses a second one.
            stderr: if terminal { String::new() } else { log },
            terminal,
            ..Default::default()
        };
        let started = async {
            self.client
                .tasks()
                .create(self.req(req))
                .await
                .map_err(|s| s.message().to_string())?;
            let req = StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            };
            self.client
                .tasks()
                .start(self.req(req))
                .await
                .map(|r| r.into_inner().pid)
                .map_err(|s| s.message().to_string())
        }
        .await;
        match started {
            Ok(pid) => {
                self.oom.ensure_started();
                Ok(pid)
            }
            Err(message) => {
                if let Err(e) = self.remove(id).await {
                    tracing::warn!(%id, error = %e, "cannot clean up a container that failed to start");
                }
                Err(Error::StartFailed {
                    id: id.to_string(),
                    message,
                })
            }
        }
    }

    pub(crate) async fn wait_task(&self, id: &str) -> Result<ExitStatus> {
        self.oom.ensure_started();
        let mut backoff = Duration::from_millis(50);
        let mut unclear = 0;
        let exit = loop {
            let req = WaitRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            };
            match self.client.tasks().wait(self.req(req)).await {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == Code::NotFound => {
                    return Err(Error::NotFound {
                        kind: "task",
                        id: id.to_string(),
                    });
                }
                // containerd restarted (or is restarting) under us: the task lives on in its
                // shim, so ask again. A broken stream shows as Unknown or Cancelled, which
                // could also be a lasting error: those get a bounded number of retries.
                Err(s)
                    if s.code() == Code::Unavailable
                        || (matches!(s.code(), Code::Unknown | Code::Cancelled)
                            && unclear < MAX_UNCLEAR_WAIT_ERRORS) =>
                {
                    if s.code() != Code::Unavailable {
                        unclear += 1;
                    }
                    tracing::debug!(%id, error = %s, "wait interrupted; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(s) => return Err(Error::grpc("wait task", id, s)),
            }
        };
        let oom_killed = if exit.exit_status == 128 + 9 {
            self.oom.wait_for(id, OOM_EVENT_GRACE).await
        } else {
            self.oom.seen(id)
        };
        Ok(ExitStatus {
            code: exit.exit_status,
            exited_at: to_system_time(exit.exited_at.as_ref()),
            oom_killed,
        })
    }

    pub(crate) async fn kill_task(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let req = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal: u32::try_from(signal).map_err(|_| Error::InvalidSpec {
                id: id.to_string(),
                reason: format!("invalid signal {signal}"),
            })?,
            all,
        };
        match self.client.tasks().kill(self.req(req)).await {
            Ok(_) => Ok(()),
            // No task, or its process already finished.
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(Error::grpc("kill task", id, s)),
        }
    }

    async fn delete_task(&self, id: &str) -> Result<(), containerd_client::tonic::Status> {
        let req = DeleteTaskRequest {
            container_id: id.to_string(),
        };
        match self.client.tasks().delete(self.req(req)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    pub(crate) async fn remove(&self, id: &str) -> Result<()> {
        let mut errors: Vec<Error> = Vec::new();
        match self.delete_task(id).await {
            Ok(()) => {}
            // Most likely still running (containerd says so with FailedPrecondition or
            // Unknown, depending on the version): kill everything in it, wait for the exit,
            // delete again.
            Err(s) => {
                tracing::debug!(%id, error = %s, "task not deleted; killing it first");
                if let Err(e) = self.kill_task(id, libc::SIGKILL, true).await {
                    errors.push(e);
                }
                let waited = tokio::time::timeout(KILL_WAIT, self.wait_task(id)).await;
                if waited.is_err() {
                    errors.push(Error::Timeout {
                        what: format!("exit of killed container {id}"),
                        after: KILL_WAIT,
                    });
                }
                if let Err(s) = self.delete_task(id).await {
                    errors.push(Error::grpc("delete task", id, s));
                }
            }
        }
        let req = DeleteContainerRequest { id: id.to_string() };
        match self.client.containers().delete(self.req(req)).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => errors.push(Error::grpc("delete container", id, s)),
        }
        if let Err(e) = self.remove_snapshot(id).await {
            errors.push(e);
        }
        if let Err(e) = self.delete_lease(&lease_id(id)).await {
            errors.push(e);
        }
        self.oom.forget(id);
        self.forget_stdin(id);
        for e in &errors[errors.len().min(1)..] {
            tracing::warn!(%id, error = %e, "container removal");
        }
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) async fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let req = ListContainersRequest { filters: vec![] };
        let containers = self
            .client
            .containers()
            .list(self.req(req))
            .await
            .map_err(|s| Error::grpc("list containers", "", s))?
            .into_inner()
            .containers;
        let req = ListTasksRequest {
            filter: String::new(),
        };
        let tasks: HashMap<String, containerd_client::types::v1::Process> = self
            .client
            .tasks()
            .list(self.req(req))
            .await
            .map_err(|s| Error::grpc("list tasks", "", s))?
            .into_inner()
            .tasks
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        let mut out: Vec<ContainerInfo> = containers
            .into_iter()
            .map(|c| {
                let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
                let task = match tasks.get(&c.id) {
                    None => TaskState {
                        status: TaskStatus::None,
                        pid: 0,
                        exit: None,
                    },
                    Some(t) => {
                        let status = match Status::try_from(t.status) {
                            Ok(Status::Created) => TaskStatus::Created,
                            Ok(Status::Running) => TaskStatus::Running,
                            Ok(Status::Stopped) => TaskStatus::Stopped,
                            Ok(Status::Paused | Status::Pausing) => TaskStatus::Paused,
                            _ => TaskStatus::Unknown,
                        };
                        TaskState {
                            status,
                            pid: t.pid,
                            exit: (status == TaskStatus::Stopped).then(|| ExitStatus {
                                code: t.exit_status,
                                exited_at: to_system_time(t.exited_at.as_ref()),
                                oom_killed: self.oom.seen(&c.id),
                            }),
                        }
                    }
                };
                ContainerInfo {
                    meta: ContainerMeta::from_labels(&labels),
                    id: c.id,
                    image: c.image,
                    labels,
                    created_at: to_system_time(c.created_at.as_ref()),
                    task,
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ids() {
        assert!(valid_id("abc-1.2_3"));
        assert!(!valid_id(""));
        assert!(!valid_id("-a"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(77)));
    }

    #[test]
    fn runc_options_encode_root() {
        let any = runc_options("/tmp/x");
        assert_eq!(any.type_url, "containerd.runc.v1.Options");
        assert_eq!(any.value, b"\x3a\x06/tmp/x".to_vec());
        let long = "r".repeat(200);
        let any = runc_options(&long);
        assert_eq!(&any.value[..3], &[0x3a, 0xc8, 0x01]);
        assert_eq!(any.value.len(), 203);
    }

    #[test]
    fn log_uris() {
        assert_eq!(log_uri(&LogTarget::Null), Ok(String::new()));
        assert_eq!(
            log_uri(&LogTarget::File(PathBuf::from("/var/log/pods/a b/0.log"))),
            Ok("file:///var/log/pods/a%20b/0.log".into())
        );
        assert_eq!(
            log_uri(&LogTarget::Binary {
                path: PathBuf::from("/usr/bin/skiff-log"),
                args: vec![("path".into(), "/x?y".into()), ("max".into(), "10".into())],
            }),
            Ok("binary:///usr/bin/skiff-log?path=/x%3Fy&max=10".into())
        );
        assert!(log_uri(&LogTarget::File(PathBuf::from("rel.log"))).is_err());
    }
}
