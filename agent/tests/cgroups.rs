#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pod cgroups on the real kernel (cgroup v1 on this machine), each test in its own
//! `/skiff-test-<pid>-<n>` cgroup that it removes, processes stopped by PID; and the
//! v2 backend against a fake cgroup2 tree in a temporary directory.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_agent::cgroups::{
    CgroupConfig, CgroupError, CgroupManager, CgroupResources, CgroupVersion, Layout, NodeCapacity,
    QosClass, Reservations, container_resources, detect_version, milli_cpu_to_shares,
    node_capacity, open, open_version, pod_resources, qos_class, shares_to_weight,
};

const MOUNT: &str = "/sys/fs/cgroup";
/// What v1 reads back for an unlimited memory limit (i64::MAX rounded down to a page).
const V1_UNLIMITED_MEMORY: &str = "9223372036854771712";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Every cgroup mount under the mount root (symlinked aliases skipped), the
/// hybrid cgroup2 mount included.
fn all_mounts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(MOUNT).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() && entry.path().join("cgroup.procs").exists() {
            out.push(entry.path());
        }
    }
    out
}

/// The v1 hierarchies (the cgroup2 mount excluded).
fn v1_mounts() -> Vec<PathBuf> {
    all_mounts()
        .into_iter()
        .filter(|m| !m.join("cgroup.controllers").exists())
        .collect()
}

fn mount_of(controller: &str) -> PathBuf {
    v1_mounts()
        .into_iter()
        .find(|m| {
            m.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split(',')
                .any(|c| c == controller)
        })
        .unwrap_or_else(|| panic!("no v1 hierarchy for {controller}"))
}

fn dir_of(controller: &str, cgroup: &str) -> PathBuf {
    mount_of(controller).join(cgroup.trim_start_matches('/'))
}

fn read(controller: &str, cgroup: &str, file: &str) -> String {
    let path = dir_of(controller, cgroup).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn remove_cgroup_dir(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dir(&entry.path())?;
            }
        }
    }
    for attempt in 0.. {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 50 => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The test's own top-level cgroup, removed from every hierarchy on drop.
struct TestTree {
    top: String,
}

impl TestTree {
    fn new() -> TestTree {
        TestTree {
            top: format!("/{}", unique("skiff-test")),
        }
    }

    fn root(&self) -> String {
        format!("{}/kubepods", self.top)
    }

    fn config(&self) -> CgroupConfig {
        CgroupConfig::new(MOUNT, self.root())
    }

    fn manager(&self) -> Box<dyn CgroupManager> {
        open(&self.config()).unwrap()
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        for mount in all_mounts() {
            let dir = mount.join(self.top.trim_start_matches('/'));
            if let Err(e) = remove_cgroup_dir(&dir) {
                eprintln!("cleanup {}: {e}", dir.display());
            }
        }
    }
}

/// A child process, killed by its PID and reaped on drop.
struct Proc(Child);

impl Proc {
    /// Starts `program` already inside the given cgroups: the child moves itself
    /// (writing 0 to each cgroup.procs) before exec, so everything it allocates is
    /// charged there.
    fn spawn_in(cgroup_dirs: &[PathBuf], program: &str, args: &[&str]) -> Proc {
        let procs: Vec<CString> = cgroup_dirs
            .iter()
            .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).unwrap())
            .collect();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    let err = io::Error::last_os_error();
                    libc::close(fd);
                    if n != 1 {
                        return Err(err);
                    }
                }
                Ok(())
            });
        }
        Proc(cmd.spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cgroup's directory in every v1 hierarchy where it exists.
fn existing_dirs(cgroup: &str) -> Vec<PathBuf> {
    v1_mounts()
        .into_iter()
        .map(|m| m.join(cgroup.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

fn list(entries: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    (!entries.is_empty()).then(|| {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    })
}

fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        resources: Some(ResourceRequirements {
            requests: list(requests),
            limits: list(limits),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn guaranteed_pod() -> Pod {
    let c = |n| container(n, &[], &[("cpu", "250m"), ("memory", "64Mi")]);
    pod(vec![c("a"), c("b")])
}

fn burstable_pod() -> Pod {
    pod(vec![container(
        "a",
        &[("cpu", "100m"), ("memory", "32Mi")],
        &[("cpu", "500m"), ("memory", "256Mi")],
    )])
}

fn unlimited_burstable_pod() -> Pod {
    pod(vec![container("a", &[("cpu", "300m")], &[])])
}

fn best_effort_pod() -> Pod {
    pod(vec![container("a", &[], &[])])
}

/// Creates a pod's cgroup the way the agent does.
fn create(m: &dyn CgroupManager, p: &Pod) -> (String, skiff_agent::cgroups::PodCgroup) {
    let uid = unique("uid");
    let cg = m
        .create_pod(&uid, qos_class(p), &pod_resources(p).unwrap())
        .unwrap();
    (uid, cg)
}

fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn detects_v1_and_builds_the_qos_tree() {
    assert_eq!(detect_version(Path::new(MOUNT)).unwrap(), CgroupVersion::V1);
    let tree = TestTree::new();
    let m = tree.manager();
    assert_eq!(m.version(), CgroupVersion::V1);
    m.ensure_qos_tree().unwrap();
    m.ensure_qos_tree().unwrap();
    let root = tree.root();
    for sub in ["", "/burstable", "/besteffort"] {
        for mount in v1_mounts() {
            let dir = mount.join(format!("{root}{sub}").trim_start_matches('/'));
            assert!(dir.is_dir(), "{}", dir.display());
        }
    }
    let besteffort = format!("{root}/besteffort");
    assert_eq!(read("cpu", &besteffort, "cpu.shares"), "2");
    // New cpuset levels inherit their parent's cpus and memory nodes.
    let host_cpus = std::fs::read_to_string(mount_of("cpuset").join("cpuset.cpus")).unwrap();
    assert_eq!(read("cpuset", &besteffort, "cpuset.cpus"), host_cpus.trim());

    // Node allocatable on the root, summed requests on burstable.
    let capacity = NodeCapacity {
        cpus: 2,
        memory_bytes: 2 << 30,
        pids: 10_000,
    };
    let reserved = Reservations {
        cpu_milli: 500,
        memory_bytes: 1 << 30,
        pids: 1000,
        eviction_memory_bytes: 100 << 20,
    };
    let node = capacity.pod_tree_resources(&reserved);
    m.update_qos_tree(&node, 512).unwrap();
    assert_eq!(
        read("cpu", &root, "cpu.shares"),
        milli_cpu_to_shares(1500).to_string()
    );
    assert_eq!(
        read("memory", &root, "memory.limit_in_bytes"),
        (1u64 << 30).to_string()
    );
    assert_eq!(read("pids", &root, "pids.max"), "9000");
    assert_eq!(read("cpu", &root, "cpu.cfs_quota_us"), "-1");
    assert_eq!(
        read("cpu", &format!("{root}/burstable"), "cpu.shares"),
        "512"
    );
    assert_eq!(read("cpu", &besteffort, "cpu.shares"), "2");
}

#[test]
fn pod_cgroups_get_kubelet_values() {
    let tree = TestTree::new();
    let m = tree.manager();
    m.ensure_qos_tree().unwrap();
    let root = tree.root();

    let (g_uid, g) = create(m.as_ref(), &guaranteed_pod());
    assert_eq!(g.qos, QosClass::Guaranteed);
    assert_eq!(g.path, format!("{root}/pod{g_uid}"));
    assert_eq!(read("cpu", &g.path, "cpu.shares"), "512");
    assert_eq!(read("cpu", &g.path, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", &g.path, "cpu.cfs_period_us"), "100000");
    assert_eq!(
        read("memory", &g.path, "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(read("pids", &g.path, "pids.max"), "max");

    let (b_uid, b) = create(m.as_ref(), &burstable_pod());
    assert_eq!(b.path, format!("{root}/burstable/pod{b_uid}"));
    assert_eq!(read("cpu", &b.path, "cpu.shares"), "102");
    assert_eq!(read("cpu", &b.path, "cpu.cfs_quota_us"), "50000");
    assert_eq!(
        read("memory", &b.path, "memory.limit_in_bytes"),
        "268435456"
    );

    let (u_uid, u) = create(m.as_ref(), &unlimited_burstable_pod());
    assert_eq!(u.path, format!("{root}/burstable/pod{u_uid}"));
    assert_eq!(read("cpu", &u.path, "cpu.shares"), "307");
    assert_eq!(read("cpu", &u.path, "cpu.cfs_quota_us"), "-1");
    assert_eq!(
        read("memory", &u.path, "memory.limit_in_bytes"),
        V1_UNLIMITED_MEMORY
    );

    let (e_uid, e) = create(m.as_ref(), &best_effort_pod());
    assert_eq!(e.path, format!("{root}/besteffort/pod{e_uid}"));
    assert_eq!(read("cpu", &e.path, "cpu.shares"), "2");
    assert_eq!(read("cpu", &e.path, "cpu.cfs_quota_us"), "-1");
    assert_eq!(
        read("memory", &e.path, "memory.limit_in_bytes"),
        V1_UNLIMITED_MEMORY
    );

    // Creating again re-applies, and updating lifts or sets limits.
    create_again_is_harmless(m.as_ref(), &b_uid);
    let resized = CgroupResources {
        cpu_shares: 1024,
        cpu_quota_us: None,
        memory_limit_bytes: Some(512 << 20),
        pids_limit: Some(100),
        ..Default::default()
    };
    assert_eq!(m.update_pod(&b_uid, &resized).unwrap(), b);
    assert_eq!(read("cpu", &b.path, "cpu.shares"), "1024");
    assert_eq!(read("cpu", &b.path, "cpu.cfs_quota_us"), "-1");
    assert_eq!(
        read("memory", &b.path, "memory.limit_in_bytes"),
        "536870912"
    );
    assert_eq!(read("pids", &b.path, "pids.max"), "100");
    assert!(matches!(
        m.update_pod("nosuchpod", &resized),
        Err(CgroupError::PodNotFound { .. })
    ));

    let mut all = vec![g_uid.clone(), b_uid.clone(), u_uid.clone(), e_uid.clone()];
    all.sort();
    assert_eq!(m.list_pods().unwrap(), all);
    assert_eq!(m.pod(&e_uid).unwrap(), Some(e.clone()));
    assert_eq!(m.pod("nosuchpod").unwrap(), None);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for uid in [&g_uid, &b_uid, &u_uid, &e_uid] {
        rt.block_on(m.remove_pod(uid)).unwrap();
    }
    for cg in [&g, &b, &u, &e] {
        assert!(
            existing_dirs(&cg.path).is_empty(),
            "{} left behind",
            cg.path
        );
    }
    assert!(m.list_pods().unwrap().is_empty());
    // Removing what is gone is fine.
    rt.block_on(m.remove_pod(&g_uid)).unwrap();
}

fn create_again_is_harmless(m: &dyn CgroupManager, uid: &str) {
    let p = burstable_pod();
    let again = m
        .create_pod(uid, qos_class(&p), &pod_resources(&p).unwrap())
        .unwrap();
    assert_eq!(read("cpu", &again.path, "cpu.shares"), "102");
}

#[tokio::test]
async fn stats_count_a_process_in_a_container_cgroup() {
    let tree = TestTree::new();
    let m = tree.manager();
    m.ensure_qos_tree().unwrap();
    let (uid, cg) = create(m.as_ref(), &burstable_pod());
    // What runc would do from the OCI spec: the container's cgroup below the pod's.
    let ctr = cg.container_path("c1").unwrap();
    let ctr_dirs: Vec<PathBuf> = ["cpu", "cpuacct", "memory", "pids"]
        .iter()
        .map(|c| dir_of(c, &ctr))
        .collect();
    for d in &ctr_dirs {
        std::fs::create_dir(d).unwrap();
    }
    let dd = Proc::spawn_in(&ctr_dirs, "dd", &["if=/dev/zero", "of=/dev/null", "bs=4M"]);
    assert!(
        read("memory", &ctr, "cgroup.procs")
            .lines()
            .any(|l| l == dd.pid().to_string())
    );

    let stats = wait_until("container usage", Duration::from_secs(10), || {
        let s = m.container_stats(&ctr).unwrap();
        (s.cpu_usage_ns > 0 && s.memory_usage_bytes >= 4 << 20).then_some(s)
    });
    assert!(stats.memory_working_set_bytes > 0);
    assert!(stats.memory_working_set_bytes <= stats.memory_usage_bytes);
    assert_eq!(stats.pids, Some(1));

    // The pod's numbers include its containers.
    let pod = m.pod_stats(&uid).unwrap();
    assert!(pod.cpu_usage_ns >= stats.cpu_usage_ns);
    assert!(pod.memory_usage_bytes >= 4 << 20);
    assert_eq!(pod.pids, Some(1));
    assert_eq!(m.oom_kill_count(&ctr).unwrap(), Some(0));

    // After the process is gone, removal takes the leftover container cgroup too.
    drop(dd);
    m.remove_pod(&uid).await.unwrap();
    assert!(existing_dirs(&cg.path).is_empty());
    assert!(matches!(
        m.pod_stats(&uid),
        Err(CgroupError::PodNotFound { .. })
    ));
}

#[tokio::test]
async fn oom_kills_are_counted() {
    let tree = TestTree::new();
    let m = tree.manager();
    m.ensure_qos_tree().unwrap();
    let small = pod(vec![container(
        "a",
        &[],
        &[("cpu", "1"), ("memory", "32Mi")],
    )]);
    let (uid, cg) = create(m.as_ref(), &small);
    assert_eq!(m.oom_kill_count(&cg.path).unwrap(), Some(0));
    // A 64 MiB buffer cannot fit in 32 MiB, and there is no swap to spill into.
    let mut dd = Proc::spawn_in(
        &existing_dirs(&cg.path),
        "dd",
        &["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let status = wait_until("dd to be killed", Duration::from_secs(20), || {
        dd.0.try_wait().unwrap()
    });
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(m.oom_kill_count(&cg.path).unwrap(), Some(1));
    drop(dd);
    m.remove_pod(&uid).await.unwrap();
}

#[tokio::test]
async fn removal_waits_for_processes_to_leave() {
    let tree = TestTree::new();
    let mut config = tree.config();
    config.remove_timeout = Duration::from_millis(300);
    let impatient = open(&config).unwrap();
    impatient.ensure_qos_tree().unwrap();
    let (uid, cg) = create(impatient.as_ref(), &best_effort_pod());
    let sleeper = Proc::spawn_in(&existing_dirs(&cg.path), "sleep", &["60"]);

    // A process inside: removal gives up after its timeout and says why.
    let start = Instant::now();
    let err = impatient.remove_pod(&uid).await.unwrap_err();
    assert!(err.is_busy(), "{err}");
    assert!(matches!(err, CgroupError::Busy { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(!existing_dirs(&cg.path).is_empty());
    assert_eq!(impatient.list_pods().unwrap(), vec![uid.clone()]);

    // With time to wait, removal finishes once the process is gone.
    let patient = tree.manager();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(sleeper);
    };
    let (removed, ()) = tokio::join!(patient.remove_pod(&uid), stop);
    removed.unwrap();
    assert!(existing_dirs(&cg.path).is_empty());
}

#[test]
fn container_values_for_the_oci_spec() {
    let tree = TestTree::new();
    let m = tree.manager();
    m.ensure_qos_tree().unwrap();
    let c = container(
        "app",
        &[("cpu", "250m")],
        &[("cpu", "1"), ("memory", "128Mi")],
    );
    let res = container_resources(&c).unwrap();
    let oci = m.oci_resources(&res);
    assert_eq!(oci["cpu"]["shares"], 256);
    assert_eq!(oci["cpu"]["quota"], 100_000);
    assert_eq!(oci["cpu"]["period"], 100_000);
    assert_eq!(oci["memory"]["limit"], 134_217_728);
    // This host accounts swap, so swap is held at the memory limit.
    assert!(
        mount_of("memory")
            .join("memory.memsw.limit_in_bytes")
            .exists()
    );
    assert_eq!(oci["memory"]["swap"], 134_217_728);
    let (_, cg) = create(m.as_ref(), &guaranteed_pod());
    assert_eq!(
        cg.container_path("0123abc").unwrap(),
        format!("{}/pod{}/0123abc", tree.root(), cg.uid)
    );
}

#[test]
fn refuses_bad_configuration() {
    let tree = TestTree::new();
    for bad in ["/", "/a/../b", ""] {
        let e = open(&CgroupConfig::new(MOUNT, bad)).unwrap_err();
        assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad:?}: {e}");
    }
    let e = open(&CgroupConfig::new("/nonexistent-cgroup-root", tree.root())).unwrap_err();
    assert!(matches!(e, CgroupError::NoCgroupfs { .. }), "{e}");
    // This host's cgroup2 mount holds only hugetlb: no v2 pod tree there.
    let e = open_version(
        &CgroupConfig::new(Path::new(MOUNT).join("unified"), tree.root()),
        CgroupVersion::V2,
    )
    .unwrap_err();
    assert!(
        matches!(&e, CgroupError::MissingController { controller, .. } if controller == "cpu"),
        "{e}"
    );
    let m = tree.manager();
    assert!(
        m.create_pod("a/b", QosClass::Burstable, &CgroupResources::default())
            .is_err()
    );
    assert!(m.container_stats("/../etc").is_err());
    // Nothing was created by the refused calls.
    assert!(existing_dirs(&tree.top).is_empty());
}

#[test]
fn node_capacity_matches_the_kernel() {
    let c = node_capacity(Path::new("/proc")).unwrap();
    // SAFETY: sysconf and sysinfo only read kernel values into local memory.
    let (cpus, memory) = unsafe {
        let cpus = libc::sysconf(libc::_SC_NPROCESSORS_CONF);
        let mut info: libc::sysinfo = std::mem::zeroed();
        assert_eq!(libc::sysinfo(&mut info), 0);
        let total: u64 = info.totalram;
        (cpus, total * u64::from(info.mem_unit))
    };
    assert_eq!(i64::from(c.cpus), cpus);
    assert_eq!(c.memory_bytes, memory);
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(c.pids, pid_max);
}

/// A cgroup2 tree as the kernel shows it before anything is delegated.
fn fake_cgroup2() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
    dir
}

fn fake_read(dir: &Path, cgroup: &str, file: &str) -> String {
    let path = dir.join(cgroup.trim_start_matches('/')).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn v2_backend_writes_unified_files() {
    let fake = fake_cgroup2();
    let mount = fake.path();
    assert_eq!(detect_version(mount).unwrap(), CgroupVersion::V2);
    let m = open(&CgroupConfig::new(mount, "/kubepods")).unwrap();
    assert_eq!(m.version(), CgroupVersion::V2);
    assert_eq!(m.layout(), &Layout::new("/kubepods").unwrap());

    m.ensure_qos_tree().unwrap();
    // Controllers are delegated down to the pod tree's children...
    assert_eq!(
        fake_read(mount, "/", "cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    assert_eq!(
        fake_read(mount, "/kubepods", "cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    // ...but not into the leaves, which may hold processes.
    assert!(
        !mount
            .join("kubepods/burstable/cgroup.subtree_control")
            .exists()
    );
    assert_eq!(fake_read(mount, "/kubepods/besteffort", "cpu.weight"), "1");
    assert_eq!(
        fake_read(mount, "/kubepods/besteffort", "cpu.max"),
        "max 100000"
    );
    assert_eq!(
        fake_read(mount, "/kubepods/besteffort", "memory.max"),
        "max"
    );
    assert_eq!(fake_read(mount, "/kubepods/besteffort", "pids.max"), "max");

    // Guaranteed: 2 × 250m and 2 × 64Mi.
    let g = m
        .create_pod(
            "g1",
            QosClass::Guaranteed,
            &pod_resources(&guaranteed_pod()).unwrap(),
        )
        .unwrap();
    assert_eq!(g.path, "/kubepods/podg1");
    assert_eq!(
        fake_read(mount, &g.path, "cpu.weight"),
        shares_to_weight(512).to_string()
    );
    assert_eq!(fake_read(mount, &g.path, "cpu.weight"), "20");
    assert_eq!(fake_read(mount, &g.path, "cpu.max"), "50000 100000");
    assert_eq!(fake_read(mount, &g.path, "memory.max"), "134217728");

    // A controller the kernel already lists (without "+") is not written again.
    std::fs::write(
        mount.join("kubepods/burstable/cgroup.subtree_control"),
        "cpu memory",
    )
    .unwrap();
    let b = m
        .create_pod(
            "b1",
            QosClass::Burstable,
            &pod_resources(&unlimited_burstable_pod()).unwrap(),
        )
        .unwrap();
    assert_eq!(
        fake_read(mount, "/kubepods/burstable", "cgroup.subtree_control"),
        "+pids"
    );
    assert_eq!(
        fake_read(mount, &b.path, "cpu.weight"),
        shares_to_weight(307).to_string()
    );
    assert_eq!(fake_read(mount, &b.path, "cpu.max"), "max 100000");
    assert_eq!(fake_read(mount, &b.path, "memory.max"), "max");

    m.update_qos_tree(
        &CgroupResources {
            cpu_shares: 2048,
            memory_limit_bytes: Some(1 << 30),
            pids_limit: Some(5000),
            ..Default::default()
        },
        300,
    )
    .unwrap();
    assert_eq!(
        fake_read(mount, "/kubepods", "cpu.weight"),
        shares_to_weight(2048).to_string()
    );
    assert_eq!(fake_read(mount, "/kubepods", "memory.max"), "1073741824");
    assert_eq!(fake_read(mount, "/kubepods", "pids.max"), "5000");
    assert_eq!(
        fake_read(mount, "/kubepods/burstable", "cpu.weight"),
        shares_to_weight(300).to_string()
    );

    // Stats come from cpu.stat, memory.current less inactive_file, pids.current.
    let pod_dir = mount.join("kubepods/podg1");
    std::fs::write(
        pod_dir.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    )
    .unwrap();
    std::fs::write(pod_dir.join("memory.current"), "10485760\n").unwrap();
    std::fs::write(
        pod_dir.join("memory.stat"),
        "anon 4194304\nfile 6291456\ninactive_file 2097152\nactive_file 4194304\n",
    )
    .unwrap();
    std::fs::write(pod_dir.join("pids.current"), "3\n").unwrap();
    std::fs::write(
        pod_dir.join("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n",
    )
    .unwrap();
    let s = m.pod_stats("g1").unwrap();
    assert_eq!(s.cpu_usage_ns, 1_500_000);
    assert_eq!(s.memory_usage_bytes, 10 << 20);
    assert_eq!(s.memory_working_set_bytes, 8 << 20);
    assert_eq!(s.pids, Some(3));
    assert_eq!(m.oom_kill_count(&g.path).unwrap(), Some(2));
    assert_eq!(m.container_stats("/kubepods/podg1").unwrap(), s);

    assert_eq!(
        m.list_pods().unwrap(),
        vec!["b1".to_string(), "g1".to_string()]
    );
    assert_eq!(m.pod("b1").unwrap(), Some(b));

    // Swap is turned off per container through the unified map when the kernel has it.
    let res = container_resources(&container("a", &[], &[("memory", "64Mi")])).unwrap();
    assert!(m.oci_resources(&res).get("unified").is_none());
    std::fs::write(mount.join("kubepods/memory.swap.max"), "max\n").unwrap();
    let oci = m.oci_resources(&res);
    assert_eq!(oci["unified"]["memory.swap.max"], "0");
    assert_eq!(oci["memory"]["limit"], 67_108_864);
    assert!(oci["memory"].get("swap").is_none());

    // Removal of an empty cgroup is an rmdir (the fake's files stand in for the
    // kernel's, so empty a pod first).
    let e = m
        .create_pod("e1", QosClass::BestEffort, &CgroupResources::with_shares(2))
        .unwrap();
    for entry in std::fs::read_dir(mount.join(e.path.trim_start_matches('/'))).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    m.remove_pod("e1").await.unwrap();
    assert!(!mount.join("kubepods/besteffort/pode1").exists());
    assert_eq!(
        m.list_pods().unwrap(),
        vec!["b1".to_string(), "g1".to_string()]
    );
}

#[test]
fn v2_needs_cpu_and_memory() {
    let fake = tempfile::tempdir().unwrap();
    std::fs::write(fake.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
    let e = open(&CgroupConfig::new(fake.path(), "/kubepods")).unwrap_err();
    assert!(
        matches!(&e, CgroupError::MissingController { controller, .. } if controller == "memory"),
        "{e}"
    );
    // Without pids the tree still works, but a pids limit cannot be honoured.
    std::fs::write(fake.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
    let m = open(&CgroupConfig::new(fake.path(), "/kubepods")).unwrap();
    m.ensure_qos_tree().unwrap();
    assert_eq!(
        std::fs::read_to_string(fake.path().join("cgroup.subtree_control")).unwrap(),
        "+cpu +memory"
    );
    let limited = CgroupResources {
        pids_limit: Some(10),
        ..Default::default()
    };
    assert!(matches!(
        m.create_pod("p", QosClass::Burstable, &limited),
        Err(CgroupError::MissingController { .. })
    ));
}

#[test]
fn the_whole_tree_can_be_removed() {
    let tree = TestTree::new();
    let m = tree.manager();
    m.ensure_qos_tree().unwrap();
    m.create_pod(
        "gone",
        QosClass::Burstable,
        &CgroupResources::with_shares(100),
    )
    .unwrap();
    assert!(!existing_dirs(&tree.root()).is_empty());
    m.remove_tree().unwrap();
    assert!(existing_dirs(&tree.root()).is_empty());
    // Removing what is not there is fine.
    m.remove_tree().unwrap();
}
