//! The runtime layer against a real containerd: each test starts its own supervised
//! containerd in a private directory, imports the busybox test image, and removes everything
//! it made (containers, shims, cgroups, mounts, namespaces, files) even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::host::{remove_cgroups, sh, unique, unmount_under};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_agent::runtime::containerd::{Containerd, ContainerdConfig};
use skiff_agent::runtime::spec::{DEFAULT_PATH, LogTarget, NamespaceMode, Resources};
use skiff_agent::runtime::supervise::{self, SuperviseConfig, Supervisor};
use skiff_agent::runtime::testimage::{BuiltImage, TestImage};
use skiff_agent::runtime::{ContainerMeta, ContainerSpec, Error, ExitStatus, Runtime, TaskStatus};

const NAMESPACE: &str = "skiff";
const IMAGE: &str = "skiff.test/busybox:1";

/// One test's private containerd and everything around it.
struct Env {
    dir: PathBuf,
    cgroup_parent: String,
    sup: Option<Supervisor>,
    socket: PathBuf,
    rt: Arc<Containerd>,
}

impl Env {
    async fn new(tag: &str) -> Env {
        let name = unique(&format!("skiff-rt-{tag}"));
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let sup = Supervisor::start(SuperviseConfig::new(&dir)).await.unwrap();
        let socket = sup.socket().to_path_buf();
        let rt = Arc::new(
            Containerd::connect(sup.client_config(NAMESPACE))
                .await
                .unwrap(),
        );
        Env {
            cgroup_parent: format!("/{name}"),
            dir,
            sup: Some(sup),
            socket,
            rt,
        }
    }

    fn sup(&self) -> &Supervisor {
        self.sup.as_ref().unwrap()
    }

    async fn import(&self, image: &TestImage) -> BuiltImage {
        let archive = self.dir.join(format!("{}.tar", unique("image")));
        let built = image.write_oci_archive(&archive).unwrap();
        let refs = self.rt.import_archive(&archive).await.unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name, image.name);
        built
    }

    async fn import_busybox(&self) -> BuiltImage {
        self.import(&TestImage::busybox(IMAGE)).await
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{id}.log"))
    }

    fn spec(&self, tag: &str, script: &str) -> ContainerSpec {
        let id = unique(tag);
        let mut s = ContainerSpec::new(&id, IMAGE);
        s.command = vec!["sh".into(), "-c".into(), script.into()];
        s.cgroups_path = Some(format!("{}/{id}", self.cgroup_parent));
        // The agent's own logger, as pods use: it drains both pipes to their end before the
        // shim's delete returns. (containerd's `file://` copier may be cut off by a delete
        // that follows the exit closely, losing the last of stderr on a loaded machine.)
        s.log = LogTarget::Binary {
            path: PathBuf::from(env!("CARGO_BIN_EXE_skiff-agent")),
            args: skiff_agent::logs::logger::uri_args(
                &self.log_path(&id),
                skiff_agent::logs::Rotation::default(),
            ),
        };
        s
    }

    /// The container's output: the text of its CRI log entries, both streams in order.
    fn log(&self, id: &str) -> String {
        let raw = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
        let mut out = String::new();
        for line in raw.lines() {
            // "<time> <stream> <P|F> <text>"
            let mut parts = line.splitn(4, ' ');
            let (_, _, tag) = (parts.next(), parts.next(), parts.next());
            out.push_str(parts.next().unwrap_or_default());
            if tag != Some("P") {
                out.push('\n');
            }
        }
        out
    }

    /// Creates, starts and waits for the container; returns its exit and its log, and removes it.
    async fn run(&self, spec: &ContainerSpec) -> (ExitStatus, String) {
        let id = self.rt.create_container(spec).await.unwrap();
        self.rt.start(&id).await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(30), self.rt.wait(&id))
            .await
            .expect("container did not exit")
            .unwrap();
        // The shim copies output asynchronously; it has flushed once the task is deleted.
        self.rt.delete(&id).await.unwrap();
        (exit, self.log(&id))
    }

    fn ctr(&self, args: &[&str]) -> String {
        let mut all = vec!["-a", self.socket.to_str().unwrap(), "-n", NAMESPACE];
        all.extend_from_slice(args);
        sh("ctr", &all)
    }

    /// Orderly teardown through the API; Drop then removes whatever is left.
    async fn finish(mut self) {
        for c in self.rt.list().await.unwrap() {
            self.rt.delete(&c.id).await.unwrap();
        }
        if let Some(sup) = self.sup.take() {
            sup.stop().await.unwrap();
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.sup.take());
        for pid in supervise::kill_shims(&self.socket) {
            eprintln!("killed shim {pid}");
        }
        remove_cgroups(&self.cgroup_parent);
        unmount_under(&self.dir);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

#[tokio::test]
async fn imports_oci_and_docker_archives() {
    let env = Env::new("import").await;
    let mut image = TestImage::busybox(IMAGE);
    image.gzip = true;
    let built = env.import(&image).await;

    assert!(env.rt.image_exists(IMAGE).await.unwrap());
    assert!(!env.rt.image_exists("skiff.test/none:1").await.unwrap());
    let cfg = env.rt.image_config(IMAGE).await.unwrap();
    assert_eq!(cfg.cmd, vec!["sh"]);
    assert_eq!(cfg.env, vec![format!("PATH={DEFAULT_PATH}")]);
    assert_eq!(cfg.config_digest, built.config.digest);
    assert_eq!(cfg.target_digest, built.manifest.digest);
    assert_eq!(cfg.diff_ids, vec![built.diff_id.clone()]);
    assert_eq!(cfg.chain_id, built.diff_id, "one layer: chain id = diff id");
    let images = env.rt.list_images().await.unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.name == IMAGE && i.digest == built.manifest.digest)
    );
    // Unpacked: the layer's snapshot exists under its chain id, and ctr sees the image.
    assert!(env.ctr(&["snapshots", "ls"]).contains(&built.diff_id));
    assert!(env.ctr(&["images", "ls", "-q"]).contains(IMAGE));

    // Importing again changes nothing.
    let archive = env.dir.join("again.tar");
    image.write_oci_archive(&archive).unwrap();
    env.rt.import_archive(&archive).await.unwrap();

    // A docker-save archive of the same image (uncompressed layer, manifest.json).
    let docker = env.dir.join("docker.tar");
    write_docker_archive(&built, "busybox:docker", &docker);
    let refs = env.rt.import_archive(&docker).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "docker.io/library/busybox:docker");
    let dcfg = env.rt.image_config(&refs[0].name).await.unwrap();
    assert_eq!(
        dcfg.config_digest, built.config.digest,
        "same config, same image id"
    );
    assert_eq!(dcfg.chain_id, cfg.chain_id, "same layer, same snapshot");

    let mut spec = env.spec("docker", "echo from-docker-image");
    spec.image = refs[0].name.clone();
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0);
    assert_eq!(log.trim(), "from-docker-image");

    // ctr imports our OCI archive too: the format is the standard one.
    sh(
        "ctr",
        &[
            "-a",
            env.socket.to_str().unwrap(),
            "-n",
            "ctr-check",
            "images",
            "import",
            archive.to_str().unwrap(),
        ],
    );
    env.finish().await;
}

/// `docker save` layout: manifest.json, <config>.json, <id>/layer.tar (uncompressed).
fn write_docker_archive(built: &BuiltImage, tag: &str, path: &Path) {
    use std::io::Read;
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(built.blob(&built.layer.digest).unwrap())
        .read_to_end(&mut layer)
        .unwrap();
    let config_hex = built.config.digest.trim_start_matches("sha256:");
    let layer_dir = built.diff_id.trim_start_matches("sha256:");
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_dir}/layer.tar")],
    }]);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&format!("{layer_dir}/VERSION"), b"1.0");
    add(&format!("{layer_dir}/layer.tar"), &layer);
    add(
        &format!("{config_hex}.json"),
        built.blob(&built.config.digest).unwrap(),
    );
    add("manifest.json", manifest.to_string().as_bytes());
    add("repositories", b"{}");
    b.into_inner().unwrap();
}

#[tokio::test]
async fn exit_code_and_log() {
    let env = Env::new("exit").await;
    env.import_busybox().await;
    let spec = env.spec("exit", "echo hi; echo oops >&2; exit 3");
    let id = env.rt.create_container(&spec).await.unwrap();
    let listed = env.rt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].task.status, TaskStatus::None);
    let pid = env.rt.start(&id).await.unwrap();
    assert!(pid > 0);
    let exit = env.rt.wait(&id).await.unwrap();
    assert_eq!(exit.code, 3);
    assert_eq!(exit.signal(), None);
    assert!(!exit.oom_killed);
    assert!(exit.exited_at.is_some());
    // wait on an exited task answers at once.
    assert_eq!(env.rt.wait(&id).await.unwrap().code, 3);
    let listed = env.rt.list().await.unwrap();
    assert_eq!(listed[0].task.status, TaskStatus::Stopped);
    assert_eq!(listed[0].task.exit.unwrap().code, 3);
    env.rt.delete(&id).await.unwrap();
    // The shim copies stdout and stderr to the file on their own; the task's exit does not
    // wait for the copies to land.
    let mut log = env.log(&id);
    for _ in 0..50 {
        if log.contains("hi\n") && log.contains("oops\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log = env.log(&id);
    }
    assert!(log.contains("hi\n"), "{log:?}");
    assert!(log.contains("oops\n"), "{log:?}");
    env.finish().await;
}

#[tokio::test]
async fn signals_end_containers() {
    let env = Env::new("signal").await;
    env.import_busybox().await;

    // `sleep` is PID 1 of its namespace: without a handler SIGTERM does not reach it (as
    // with any container; kubelet follows up with SIGKILL).
    let mut spec = env.spec("sleep", "");
    spec.command = vec!["sleep".into(), "1000".into()];
    let id = env.rt.create_container(&spec).await.unwrap();
    env.rt.start(&id).await.unwrap();
    env.rt.kill(&id, libc::SIGTERM).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), env.rt.wait(&id)).await;
    assert!(early.is_err(), "PID 1 without a handler ignores SIGTERM");
    env.rt.kill(&id, libc::SIGKILL).await.unwrap();
    let exit = env.rt.wait(&id).await.unwrap();
    assert_eq!(exit.code, 137);
    assert_eq!(exit.signal(), Some(libc::SIGKILL));
    assert!(!exit.oom_killed);
    // Signalling an exited container is not an error.
    env.rt.kill(&id, libc::SIGTERM).await.unwrap();
    env.rt.delete(&id).await.unwrap();

    // A process with a SIGTERM handler ends on SIGTERM.
    let spec = env.spec(
        "trap",
        "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let id = env.rt.create_container(&spec).await.unwrap();
    env.rt.start(&id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.log(&id).contains("ready") {
        assert!(Instant::now() < deadline, "container never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.rt.kill(&id, libc::SIGTERM).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), env.rt.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 42);
    env.rt.delete(&id).await.unwrap();
    assert!(env.log(&id).contains("got-term"));
    env.finish().await;
}

#[tokio::test]
async fn env_user_and_working_dir() {
    let env = Env::new("user").await;
    env.import_busybox().await;
    let mut spec = env.spec(
        "user",
        "id -u; id -g; id -G; pwd; echo $FOO; echo $HOSTNAME; hostname; ulimit -n",
    );
    spec.nofile_limit = Some(4096);
    spec.env = vec![("FOO".into(), "bar baz".into())];
    spec.user.run_as_user = Some(1000);
    spec.user.supplemental_groups = vec![2000];
    spec.working_dir = Some("/tmp".into());
    spec.hostname = Some("web-0".into());
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        vec![
            "1000",
            "1000",
            "1000 2000 3000",
            "/tmp",
            "bar baz",
            "web-0",
            "web-0",
            "4096"
        ]
    );

    // The image's own User and WorkingDir, resolved through its /etc/passwd and /etc/group.
    let mut image = TestImage::busybox("skiff.test/busybox:user");
    image.user = Some("skiff".into());
    image.working_dir = Some("/home/skiff".into());
    env.import(&image).await;
    let mut spec = env.spec("imguser", "id -u; id -g; id -G; pwd");
    spec.image = image.name.clone();
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        vec!["1000", "1000", "1000 3000", "/home/skiff"]
    );

    // An unknown user name is a creation error, and leaves nothing behind.
    let mut bad = TestImage::busybox("skiff.test/busybox:ghost");
    bad.user = Some("ghost".into());
    env.import(&bad).await;
    let mut spec = env.spec("ghost", "true");
    spec.image = bad.name.clone();
    let err = env.rt.create_container(&spec).await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
    assert!(env.rt.list().await.unwrap().is_empty());
    assert!(!env.ctr(&["snapshots", "ls"]).contains(&spec.id));
    env.finish().await;
}

#[tokio::test]
async fn default_path_when_image_has_no_env() {
    let env = Env::new("path").await;
    let mut image = TestImage::busybox("skiff.test/busybox:noenv");
    image.env = None;
    env.import(&image).await;
    assert!(
        env.rt
            .image_config(&image.name)
            .await
            .unwrap()
            .env
            .is_empty()
    );
    let mut spec = env.spec("path", "");
    spec.image = image.name.clone();
    spec.command = vec!["env".into()];
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(
        log.lines().any(|l| l == format!("PATH={DEFAULT_PATH}")),
        "{log}"
    );
    env.finish().await;
}

#[tokio::test]
async fn readonly_rootfs_refuses_writes() {
    let env = Env::new("ro").await;
    env.import_busybox().await;
    let mut spec = env.spec("ro", "touch /dev/shm/ok && echo shm-ok; touch /x");
    spec.readonly_rootfs = true;
    let (exit, log) = env.run(&spec).await;
    assert_ne!(exit.code, 0);
    assert!(log.contains("shm-ok"), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");

    let spec = env.spec("rw", "touch /x && echo written");
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0, "{log}");
    assert!(log.contains("written"));
    env.finish().await;
}

fn read_cgroup(controller: &str, path: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[tokio::test]
async fn cgroup_limits_and_oom() {
    let env = Env::new("cgroup").await;
    env.import_busybox().await;
    let mut spec = env.spec("limits", "sleep 1000");
    spec.resources = Resources {
        cpu_shares: Some(256),
        cpu_quota: Some(20_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(50),
        ..Default::default()
    };
    let path = spec.cgroups_path.clone().unwrap();
    let id = env.rt.create_container(&spec).await.unwrap();
    let pid = env.rt.start(&id).await.unwrap();
    assert_eq!(
        read_cgroup("memory", &path, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read_cgroup("cpu", &path, "cpu.shares"), "256");
    assert_eq!(read_cgroup("cpu", &path, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read_cgroup("cpu", &path, "cpu.cfs_period_us"), "100000");
    assert_eq!(read_cgroup("pids", &path, "pids.max"), "50");
    let procs = read_cgroup("memory", &path, "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    env.rt.delete(&id).await.unwrap();

    // Over its memory limit, the kernel kills it, and wait says so.
    let mut spec = env.spec(
        "oom",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    );
    spec.resources.memory_limit = Some(16 << 20);
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 137, "{log}");
    assert!(exit.oom_killed, "{exit:?}");
    env.finish().await;
}

/// A network namespace (`ip netns`) and a UTS namespace bind-mounted on a file, as the pod
/// sandbox makes them.
struct PodNamespaces {
    netns: String,
    uts: PathBuf,
}

impl PodNamespaces {
    /// `link` names a veth pair made inside the network namespace (`<link>a`, `<link>b`).
    fn new(dir: &Path, hostname: &str, link: &str) -> PodNamespaces {
        let netns = unique("skiff-rt-ns");
        let uts = dir.join("uts");
        let ns = PodNamespaces { netns, uts };
        sh("ip", &["netns", "add", &ns.netns]);
        let (a, b) = (format!("{link}a"), format!("{link}b"));
        sh(
            "ip",
            &[
                "-n", &ns.netns, "link", "add", &a, "type", "veth", "peer", "name", &b,
            ],
        );
        std::fs::write(&ns.uts, "").unwrap();
        sh(
            "unshare",
            &[&format!("--uts={}", ns.uts.display()), "hostname", hostname],
        );
        ns
    }
}

impl Drop for PodNamespaces {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let c = std::ffi::CString::new(self.uts.to_str().unwrap()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_file(&self.uts);
    }
}

#[tokio::test]
async fn joins_network_and_uts_namespaces_by_path() {
    let env = Env::new("netns").await;
    env.import_busybox().await;
    let link = format!("skv{}", std::process::id() % 100_000);
    let ns = PodNamespaces::new(&env.dir, "pod-host", &link);
    let mut spec = env.spec("netns", "hostname; cat /proc/net/dev");
    spec.namespaces.network = NamespaceMode::Path(PathBuf::from("/run/netns").join(&ns.netns));
    spec.namespaces.uts = NamespaceMode::Path(ns.uts.clone());
    let (exit, log) = env.run(&spec).await;
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log.lines().next(), Some("pod-host"));
    assert!(log.contains(&format!("{link}a:")), "{log}");
    let host_links = sh("ip", &["-o", "link"]);
    let host_if = host_links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap())
        .find(|n| *n != "lo")
        .unwrap();
    assert!(
        !log.contains(&format!("{host_if}:")),
        "host link {host_if} visible: {log}"
    );
    drop(ns);
    env.finish().await;
}

#[tokio::test]
async fn failed_start_leaves_nothing_behind() {
    let env = Env::new("fail").await;
    env.import_busybox().await;
    let mut spec = env.spec("fail", "");
    spec.command = vec!["/no/such/command".into()];
    let id = env.rt.create_container(&spec).await.unwrap();
    let err = env.rt.start(&id).await.unwrap_err();
    match &err {
        Error::StartFailed {
            id: failed,
            message,
        } => {
            assert_eq!(failed, &id);
            assert!(message.contains("/no/such/command"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(env.rt.list().await.unwrap().is_empty());
    assert_eq!(env.ctr(&["containers", "ls", "-q"]).trim(), "");
    assert_eq!(env.ctr(&["tasks", "ls", "-q"]).trim(), "");
    assert!(!env.ctr(&["snapshots", "ls"]).contains(&id));
    assert_eq!(env.ctr(&["leases", "ls", "-q"]).trim(), "");
    assert!(supervise::shim_pids(&env.socket).is_empty());
    env.finish().await;
}

#[tokio::test]
async fn delete_is_idempotent() {
    let env = Env::new("delete").await;
    env.import_busybox().await;
    let spec = env.spec("delete", "sleep 1000");
    let id = env.rt.create_container(&spec).await.unwrap();
    env.rt.start(&id).await.unwrap();
    // A running container is killed and removed.
    env.rt.delete(&id).await.unwrap();
    env.rt.delete(&id).await.unwrap();
    env.rt.delete("never-existed").await.unwrap();
    assert!(env.rt.wait(&id).await.unwrap_err().is_not_found());
    assert!(env.rt.list().await.unwrap().is_empty());
    assert!(!env.ctr(&["snapshots", "ls"]).contains(&id));
    // A created, never started container too.
    let spec = env.spec("created", "true");
    let id = env.rt.create_container(&spec).await.unwrap();
    env.rt.delete(&id).await.unwrap();
    env.rt.delete(&id).await.unwrap();
    assert!(env.rt.list().await.unwrap().is_empty());
    assert_eq!(env.ctr(&["leases", "ls", "-q"]).trim(), "");
    env.finish().await;
}

#[tokio::test]
async fn adopts_running_containers_after_containerd_restarts() {
    let mut env = Env::new("adopt").await;
    env.import_busybox().await;
    let mut spec = env.spec("adopt", "sleep 1000");
    spec.meta = Some(ContainerMeta {
        pod_uid: "0b0e6a4c-uid".into(),
        pod_namespace: "default".into(),
        pod_name: "web".into(),
        container_name: "app".into(),
        attempt: 2,
    });
    spec.labels = BTreeMap::from([("extra".to_string(), "yes".to_string())]);
    let id = env.rt.create_container(&spec).await.unwrap();
    let pid = env.rt.start(&id).await.unwrap();
    // A wait that outlives both restarts below.
    let early_waiter = tokio::spawn({
        let (rt, id) = (env.rt.clone(), id.clone());
        async move { rt.wait(&id).await }
    });

    // containerd dies: the supervisor restarts it, the task lives on in its shim.
    let old = env.sup().pid();
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.sup().restarts() == 0 || env.sup().pid() == 0 {
        assert!(Instant::now() < deadline, "containerd was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(env.sup().pid(), old);
    env.sup().wait_ready(Duration::from_secs(10)).await.unwrap();

    let check = |list: Vec<skiff_agent::runtime::ContainerInfo>| {
        assert_eq!(list.len(), 1);
        let c = &list[0];
        assert_eq!(c.id, id);
        assert_eq!(c.task.status, TaskStatus::Running);
        assert_eq!(c.task.pid, pid);
        assert_eq!(c.meta, spec.meta);
        assert_eq!(c.labels.get("extra").map(String::as_str), Some("yes"));
        assert_eq!(c.image, IMAGE);
    };
    // The old connection reconnects by itself.
    let mut list = Err(Error::NotFound {
        kind: "list",
        id: String::new(),
    });
    for _ in 0..50 {
        list = env.rt.list().await;
        if list.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check(list.unwrap());

    // The agent restarts too: a new supervisor on the same directory, a new connection.
    let sup = env.sup.take().unwrap();
    sup.stop().await.unwrap();
    let sup = Supervisor::start(SuperviseConfig::new(&env.dir))
        .await
        .unwrap();
    let rt = Containerd::connect(sup.client_config(NAMESPACE))
        .await
        .unwrap();
    env.sup = Some(sup);
    check(rt.list().await.unwrap());
    // ... and drives the adopted container.
    let waiter = tokio::spawn({
        let rt = Arc::new(rt);
        let id = id.clone();
        async move { rt.wait(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.rt = Arc::new(
        Containerd::connect(env.sup().client_config(NAMESPACE))
            .await
            .unwrap(),
    );
    env.rt.kill(&id, libc::SIGKILL).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 137);
    let exit = tokio::time::timeout(Duration::from_secs(10), early_waiter)
        .await
        .expect("the wait begun before the restarts did not return")
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 137);
    env.finish().await;
}

#[tokio::test]
async fn two_containerds_side_by_side() {
    let (a, b) = tokio::join!(Env::new("side-a"), Env::new("side-b"));
    tokio::join!(a.import_busybox(), b.import_busybox());
    assert_ne!(a.socket, b.socket);
    // The same container id in both: runc state is per instance.
    let mut spec_a = a.spec("same", "sleep 1000");
    let mut spec_b = b.spec("same", "sleep 1000");
    let id = unique("same-id");
    spec_a.id = id.clone();
    spec_b.id = id.clone();
    spec_a.cgroups_path = Some(format!("{}/{id}", a.cgroup_parent));
    spec_b.cgroups_path = Some(format!("{}/{id}", b.cgroup_parent));
    a.rt.create_container(&spec_a).await.unwrap();
    b.rt.create_container(&spec_b).await.unwrap();
    let pa = a.rt.start(&id).await.unwrap();
    let pb = b.rt.start(&id).await.unwrap();
    assert_ne!(pa, pb);
    assert_eq!(
        a.rt.list().await.unwrap()[0].task.status,
        TaskStatus::Running
    );
    assert_eq!(
        b.rt.list().await.unwrap()[0].task.status,
        TaskStatus::Running
    );
    assert_eq!(supervise::shim_pids(&a.socket).len(), 1);
    assert_eq!(supervise::shim_pids(&b.socket).len(), 1);
    a.rt.delete(&id).await.unwrap();
    assert!(a.rt.list().await.unwrap().is_empty());
    let still = b.rt.list().await.unwrap();
    assert_eq!(still[0].task.status, TaskStatus::Running);
    assert_eq!(still[0].task.pid, pb);
    tokio::join!(a.finish(), b.finish());
}

#[tokio::test]
async fn stores_an_image_blob_by_blob_as_a_puller_would() {
    let env = Env::new("writer").await;
    let mut image = TestImage::busybox("skiff.test/busybox:pulled");
    image.gzip = true;
    let built = image.build().unwrap();
    let writer = env.rt.image_writer().await.unwrap();
    for (desc, _) in &built.blobs {
        assert!(!writer.has_blob(&desc.digest).await.unwrap());
    }
    // Layers stream from a reader; manifests and configs may come as bytes.
    let layer = built.blob(&built.layer.digest).unwrap();
    writer.write_blob(&built.layer, layer).await.unwrap();
    writer
        .write_bytes(&built.config, built.blob(&built.config.digest).unwrap())
        .await
        .unwrap();
    writer
        .write_blob(&built.manifest, built.blob(&built.manifest.digest).unwrap())
        .await
        .unwrap();
    // Bytes that do not match their descriptor are refused.
    let mut wrong = built.config.clone();
    wrong.digest = skiff_agent::runtime::image::sha256_digest(b"something else");
    assert!(
        writer
            .write_bytes(&wrong, built.blob(&built.config.digest).unwrap())
            .await
            .is_err()
    );
    let r = writer.register(&image.name, &built.manifest).await.unwrap();
    assert_eq!(r.digest, built.manifest.digest);
    assert!(writer.has_blob(&built.layer.digest).await.unwrap());
    writer.finish().await;
    assert_eq!(env.ctr(&["leases", "ls", "-q"]).trim(), "");

    // The manifest keeps its config and layer alive, the config its snapshot.
    let content = env.ctr(&["content", "ls"]);
    let line = |digest: &str| {
        content
            .lines()
            .find(|l| l.starts_with(digest))
            .unwrap()
            .to_string()
    };
    let manifest_line = line(&built.manifest.digest);
    assert!(
        manifest_line.contains("containerd.io/gc.ref.content.config="),
        "{manifest_line}"
    );
    assert!(
        manifest_line.contains("containerd.io/gc.ref.content.l.0="),
        "{manifest_line}"
    );
    let config_line = line(&built.config.digest);
    assert!(
        config_line.contains("containerd.io/gc.ref.snapshot.overlayfs="),
        "{config_line}"
    );

    let mut spec = env.spec("pulled", "echo pulled");
    spec.image = image.name.clone();
    let (exit, log) = env.run(&spec).await;
    assert_eq!((exit.code, log.trim()), (0, "pulled"));

    env.rt.remove_image(&image.name).await.unwrap();
    env.rt.remove_image(&image.name).await.unwrap();
    assert!(!env.rt.image_exists(&image.name).await.unwrap());
    env.finish().await;
}

#[tokio::test]
async fn connect_fails_without_containerd() {
    let dir = std::env::temp_dir().join(unique("skiff-rt-none"));
    let err = Containerd::connect(ContainerdConfig::new(dir.join("nothing.sock"), NAMESPACE))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn create_start_latency_against_ctr_run() {
    let env = Env::new("bench").await;
    env.import_busybox().await;
    const N: usize = 7;
    let mut ours = Vec::new();
    let mut ctr = Vec::new();
    // One warm-up of each, then alternate so both see the same machine load.
    for i in 0..=N {
        let mut spec = env.spec("ours", "");
        spec.command = vec!["sleep".into(), "1000".into()];
        spec.log = LogTarget::Null;
        let t = Instant::now();
        let id = env.rt.create_container(&spec).await.unwrap();
        env.rt.start(&id).await.unwrap();
        let ours_time = t.elapsed();

        let cid = unique("ctr");
        let cgroup = format!("{}/{cid}", env.cgroup_parent);
        let t = Instant::now();
        env.ctr(&[
            "run", "-d", "--cgroup", &cgroup, IMAGE, &cid, "sleep", "1000",
        ]);
        let ctr_time = t.elapsed();
        if i > 0 {
            ours.push(ours_time);
            ctr.push(ctr_time);
        }
        env.rt.delete(&id).await.unwrap();
        env.rt.delete(&cid).await.unwrap();
    }
    let (o, c) = (median(ours.clone()), median(ctr.clone()));
    println!(
        "create+start (median of {N}): skiff {:.1} ms, ctr run -d {:.1} ms, ratio {:.2}",
        o.as_secs_f64() * 1e3,
        c.as_secs_f64() * 1e3,
        o.as_secs_f64() / c.as_secs_f64()
    );
    println!("skiff: {ours:?}\nctr:   {ctr:?}");
    assert!(
        o <= c * 2,
        "create+start {o:?} is more than twice ctr run -d {c:?}"
    );
    env.finish().await;
}
