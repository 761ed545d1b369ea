//! Pod sandboxes on the real kernel: namespaces, CNI through the protocol with
//! skiff-bridge and skiff-ipam, files, teardown, GC, failures, and set-up latency.
//!
//! The plugins are the workspace's own binaries next to this test's target
//! directory; they are built (`cargo build -p skiff-cni --bins`) when missing or
//! older than the plugin sources, so a plain `cargo nextest run -p skiff-agent`
//! works from a clean clone. Every test takes a slot under /run/skiff-agent-tests
//! and names its bridge, nftables table, network and subnet (198.19.<slot>.0/24)
//! after it; a Drop guard removes all of it even when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, ContainerPort, HostAlias, Pod, PodDNSConfig, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_agent::sandbox::cni::{Attachment, Cni, CniConfig, CniError, RuntimeConf};
use skiff_agent::sandbox::files::DnsSettings;
use skiff_agent::sandbox::{Namespaces, Sandbox, SandboxError, SandboxParams};

const LOCK_DIR: &str = "/run/skiff-agent-tests";

/// The directory holding skiff-bridge and skiff-ipam, built if missing or stale.
/// `SKIFF_TEST_CNI_BIN_DIR` points elsewhere (e.g. release builds, to measure).
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SKIFF_TEST_CNI_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test binary>
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let cni = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cni");
        let newest_source = newest_mtime(&cni.join("src")).max(mtime(&cni.join("Cargo.toml")));
        let fresh = ["skiff-bridge", "skiff-ipam"]
            .iter()
            .all(|b| mtime(&dir.join(b)) >= newest_source);
        if !fresh {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "skiff-cni", "--bins", "--manifest-path"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo to build the CNI plugins");
            assert!(
                status.success(),
                "building skiff-bridge and skiff-ipam failed"
            );
        }
        dir
    })
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            mtime(&p)
        };
        newest = newest.max(t);
    }
    newest
}

/// Everything one test makes, named after its slot, removed on drop.
struct Fixture {
    slot: u32,
    lock: PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        fs::create_dir_all(LOCK_DIR).unwrap();
        for slot in 1..=250u32 {
            let lock = Path::new(LOCK_DIR).join(slot.to_string());
            if let Ok(mut f) = OpenOptions::new().write(true).create_new(true).open(&lock) {
                writeln!(f, "{}", std::process::id()).unwrap();
                let fx = Fixture {
                    slot,
                    lock,
                    dir: tempfile::tempdir().unwrap(),
                };
                fx.clean_kernel();
                for d in ["conf", "cache", "pods", "ipam", "state", "bin", "log"] {
                    fs::create_dir_all(fx.path(d)).unwrap();
                }
                fs::write(
                    fx.path("resolv.conf"),
                    "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n",
                )
                .unwrap();
                fs::write(fx.path("hosts"), "127.0.0.1 localhost\n192.0.2.10 node-1\n").unwrap();
                return fx;
            }
            // A slot whose owner is gone is free again.
            let owner = fs::read_to_string(&lock)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            // SAFETY: kill(pid, 0) only probes for existence.
            if owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0) {
                let _ = fs::remove_file(&lock);
            }
        }
        panic!("no free test slot under {LOCK_DIR}");
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn bridge(&self) -> String {
        format!("sab{}", self.slot)
    }
    fn table(&self) -> String {
        format!("sat{}", self.slot)
    }
    fn network(&self) -> String {
        format!("sanet{}", self.slot)
    }
    fn subnet_prefix(&self) -> String {
        format!("198.19.{}.", self.slot)
    }

    /// skiff-bridge's configuration (L2 bridge with a gateway, no masquerade).
    fn bridge_plugin(&self) -> String {
        format!(
            r#"{{"type":"skiff-bridge","bridge":"{br}","isGateway":true,"ipMasq":false,
                "firewallTable":"{table}","stateDir":"{state}",
                "ipam":{{"type":"skiff-ipam","dataDir":"{data}",
                         "ranges":[[{{"subnet":"198.19.{slot}.0/24"}}]],"routes":[{{"dst":"0.0.0.0/0"}}]}}}}"#,
            br = self.bridge(),
            table = self.table(),
            state = self.path("state").display(),
            data = self.path("ipam").display(),
            slot = self.slot,
        )
    }

    /// Writes a conflist of skiff-bridge followed by `more` plugins.
    fn write_conflist(&self, more: &[&str]) {
        let mut plugins = vec![self.bridge_plugin()];
        plugins.extend(more.iter().map(|s| s.to_string()));
        fs::write(
            self.path("conf/10-skiff.conflist"),
            format!(
                r#"{{"cniVersion":"1.1.0","name":"{}","plugins":[{}]}}"#,
                self.network(),
                plugins.join(",")
            ),
        )
        .unwrap();
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        vec![self.path("bin"), plugin_dir().to_path_buf()]
    }

    fn cni(&self) -> Result<Cni, CniError> {
        let config = CniConfig::load(&self.path("conf"), &self.bin_dirs())?;
        Ok(Cni::new(config, &self.path("cache")).with_exec_timeout(Duration::from_secs(20)))
    }

    fn params(&self) -> SandboxParams {
        SandboxParams {
            root: self.path("pods"),
            ifname: "eth0".into(),
            dns: DnsSettings {
                cluster_dns: vec!["10.96.0.10".parse().unwrap()],
                cluster_domain: "cluster.local".into(),
                node_ips: vec!["192.0.2.10".parse().unwrap()],
            },
            resolv_conf: Some(self.path("resolv.conf")),
            hosts_file: self.path("hosts"),
        }
    }

    /// A sandbox manager with the conflist in the conf dir (a new one each call, as
    /// after an agent restart).
    fn sandbox(&self) -> Sandbox {
        Sandbox::new(self.params(), Some(self.cni().unwrap()))
    }

    /// An executable plugin script in this test's plugin directory.
    fn script_plugin(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Addresses skiff-ipam holds on this network (host-local layout).
    fn allocated(&self) -> Vec<String> {
        let dir = self.path("ipam").join(self.network());
        let mut ips: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&self.subnet_prefix()))
                    .collect()
            })
            .unwrap_or_default();
        ips.sort();
        ips
    }

    fn cache_entries(&self) -> Vec<String> {
        fs::read_dir(self.path("cache/results"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Mount points under this test's directory.
    fn mounts(&self) -> Vec<String> {
        mounts_under(self.dir.path())
    }

    /// Ports on this test's bridge.
    fn bridge_ports(&self) -> String {
        sh(&["ip", "-o", "link", "show", "master", &self.bridge()])
    }

    fn clean_kernel(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .stderr(std::process::Stdio::null())
                .status();
        };
        quiet(&["ip", "link", "del", &self.bridge()]);
        for family in ["inet", "bridge"] {
            quiet(&["nft", "delete", "table", family, &self.table()]);
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Namespace and directory mounts this test left (a failed assertion skips
        // teardown), deepest first; the namespaces and their veths go with them.
        for m in self.mounts().iter().rev() {
            let c = std::ffi::CString::new(m.as_str()).unwrap();
            // SAFETY: a valid path; only mounts under this test's directory.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        self.clean_kernel();
        let _ = fs::remove_file(&self.lock);
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn pod(name: &str) -> Pod {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(format!("t{}-{n}-{name}", std::process::id())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

/// Runs `f` on a thread that joined the network namespace at `path`.
fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let ns = File::open(&path).unwrap();
        // SAFETY: setns of this thread only, with an fd we own.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap()
}

fn ns_inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

#[tokio::test]
async fn setup_gives_namespaces_an_address_a_hostname_and_files() {
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let sandbox = fx.sandbox();
    let mut p = pod("web-7d4f");
    {
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("web".into());
        spec.subdomain = Some("frontend".into());
        spec.host_aliases = Some(vec![HostAlias {
            ip: "10.1.2.3".into(),
            hostnames: Some(vec!["foo.remote".into(), "bar.remote".into()]),
        }]);
        spec.dns_config = Some(PodDNSConfig {
            searches: Some(vec!["extra.example".into()]),
            ..Default::default()
        });
    }
    let info = sandbox.setup(&p).await.unwrap();

    assert_eq!(info.ips.len(), 1, "{:?}", info.ips);
    let ip = info.ips[0].to_string();
    assert!(ip.starts_with(&fx.subnet_prefix()), "{ip}");
    assert_eq!(fx.allocated(), std::slice::from_ref(&ip));

    let net = info.namespaces.net.clone().unwrap();
    let ipc = info.namespaces.ipc.clone().unwrap();
    let uts = info.namespaces.uts.clone().unwrap();
    for (file, own) in [(&net, "net"), (&ipc, "ipc"), (&uts, "uts")] {
        assert_ne!(
            ns_inode(file),
            ns_inode(&Path::new("/proc/self/ns").join(own)),
            "{own} namespace is the host's"
        );
    }
    let net_arg = format!("--net={}", net.display());
    let addrs = sh(&[
        "nsenter", &net_arg, "ip", "-o", "-4", "addr", "show", "dev", "eth0",
    ]);
    assert!(addrs.contains(&format!("{ip}/24")), "{addrs}");
    let lo = sh(&["nsenter", &net_arg, "ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "loopback is down: {lo}");
    let uts_arg = format!("--uts={}", uts.display());
    assert_eq!(sh(&["nsenter", &uts_arg, "hostname"]).trim(), "web");
    assert_eq!(info.hostname, "web");

    let hosts = fs::read_to_string(&info.files.hosts).unwrap();
    assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
    assert!(
        hosts.contains(&format!("{ip}\tweb.frontend.shop.svc.cluster.local\tweb\n")),
        "{hosts}"
    );
    assert!(hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n"));
    assert_eq!(
        fs::read_to_string(&info.files.resolv_conf).unwrap(),
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\n\
         nameserver 10.96.0.10\n\
         options ndots:5\n"
    );
    assert_eq!(fs::read_to_string(&info.files.hostname).unwrap(), "web\n");
    // The pod's /dev/shm: one tmpfs its containers share.
    let shm = info.shm.clone().unwrap();
    assert!(
        fx.mounts().contains(&shm.display().to_string()),
        "{:?}",
        fx.mounts()
    );

    // CHECK and STATUS of a 1.1.0 list pass on a healthy attachment.
    let cni = sandbox.cni().unwrap();
    let rt = RuntimeConf::new(uid(&p), &net, "eth0");
    cni.check(&rt).await.unwrap();
    cni.status().await.unwrap();

    // A second setup of the same pod is refused and leaves the first alone.
    let again = sandbox.setup(&p).await.unwrap_err();
    assert!(matches!(again, SandboxError::Exists { .. }), "{again}");
    assert!(net.exists());

    let recovered = sandbox.recover().unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(recovered[0].netns_alive);
    assert_eq!(recovered[0].record.as_ref().unwrap().ips, info.ips);

    sandbox.teardown(&uid(&p)).await.unwrap();
    assert!(fx.allocated().is_empty());
}

#[tokio::test]
async fn two_sandboxes_reach_each_other() {
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let sandbox = fx.sandbox();
    let (pa, pb) = (pod("server"), pod("client"));
    let a = sandbox.setup(&pa).await.unwrap();
    let b = sandbox.setup(&pb).await.unwrap();
    let server_addr = SocketAddr::new(a.ips[0], 8080);

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let a_net = a.namespaces.net.clone().unwrap();
    let server = std::thread::spawn(move || {
        in_netns(&a_net, move || {
            let l = TcpListener::bind(server_addr).unwrap();
            ready_tx.send(()).unwrap();
            let (mut s, peer) = l.accept().unwrap();
            s.write_all(peer.ip().to_string().as_bytes()).unwrap();
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let seen = in_netns(&b.namespaces.net.clone().unwrap(), move || {
        let mut s = TcpStream::connect_timeout(&server_addr, Duration::from_secs(3)).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    });
    server.join().unwrap();
    assert_eq!(
        seen,
        b.ips[0].to_string(),
        "the server saw the client's pod IP"
    );

    sandbox.teardown(&uid(&pa)).await.unwrap();
    sandbox.teardown(&uid(&pb)).await.unwrap();
}

#[tokio::test]
async fn a_restarted_agent_adopts_whole_sandboxes_only() {
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let p = pod("kept");
    let info = fx.sandbox().setup(&p).await.unwrap();

    // A new manager, as after a restart, finds the same sandbox.
    let restarted = fx.sandbox();
    let adopted = restarted.adopt(&uid(&p)).unwrap().unwrap();
    assert_eq!(adopted.ips, info.ips);
    assert_eq!(adopted.namespaces, info.namespaces);
    assert_eq!(adopted.files, info.files);
    assert_eq!(adopted.hostname, info.hostname);
    assert!(restarted.adopt("never-made").unwrap().is_none());

    // With its network namespace gone (as after a reboot) it is not adopted.
    let net = info.namespaces.net.clone().unwrap();
    let c = std::ffi::CString::new(net.to_str().unwrap()).unwrap();
    // SAFETY: a valid path under this test's directory.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
    assert!(restarted.adopt(&uid(&p)).unwrap().is_none());
    restarted.teardown(&uid(&p)).await.unwrap();
    assert!(fx.allocated().is_empty());
}

#[tokio::test]
async fn teardown_removes_everything_and_releases_the_ip() {
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let sandbox = fx.sandbox();
    let p = pod("gone");
    let info = sandbox.setup(&p).await.unwrap();
    assert_eq!(fx.allocated().len(), 1);
    assert_eq!(fx.cache_entries().len(), 1);
    assert!(!fx.mounts().is_empty());
    assert!(fx.bridge_ports().contains("veth"), "{}", fx.bridge_ports());

    sandbox.teardown(&uid(&p)).await.unwrap();
    assert!(
        fx.allocated().is_empty(),
        "IP still held: {:?}",
        fx.allocated()
    );
    assert!(fx.cache_entries().is_empty(), "{:?}", fx.cache_entries());
    assert!(fx.mounts().is_empty(), "mounts left: {:?}", fx.mounts());
    assert!(!info.dir.exists(), "{} left", info.dir.display());
    assert!(!fx.bridge_ports().contains("veth"), "{}", fx.bridge_ports());
    assert!(sandbox.recover().unwrap().is_empty());

    // Idempotent: nothing left is fine, and so is a pod never seen.
    sandbox.teardown(&uid(&p)).await.unwrap();
    sandbox.teardown("never-made").await.unwrap();
}

#[tokio::test]
async fn teardown_after_the_netns_vanished_still_releases_the_ip() {
    let fx = Fixture::new();
    // A plugin after skiff-bridge that records what it is given, to see DEL get
    // the cached prevResult and the pod's CNI_ARGS after a "restart".
    let log = fx.path("log");
    fx.script_plugin(
        "recorder",
        &format!(
            "#!/bin/sh\nin=$(cat)\nprintf '%s' \"$in\" > {log}/$CNI_COMMAND.json\n\
             env | grep '^CNI_' > {log}/$CNI_COMMAND.env\n\
             if [ \"$CNI_COMMAND\" = ADD ]; then printf '%s' \"$in\" | /usr/bin/jq -c .prevResult; fi\n",
            log = log.display()
        ),
    );
    fx.write_conflist(&[
        r#"{"type":"recorder","capabilities":{"portMappings":true,"bandwidth":true}}"#,
    ]);
    let mut p = pod("orphan");
    p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
        container_port: 80,
        host_port: Some(18080),
        ..Default::default()
    }]);
    let info = fx.sandbox().setup(&p).await.unwrap();
    let ip = info.ips[0].to_string();
    let add: Value =
        serde_json::from_str(&fs::read_to_string(log.join("ADD.json")).unwrap()).unwrap();
    assert_eq!(add["name"], fx.network());
    assert_eq!(add["cniVersion"], "1.1.0");
    assert_eq!(add["prevResult"]["ips"][0]["address"], format!("{ip}/24"));
    assert_eq!(
        add["runtimeConfig"],
        serde_json::json!({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}),
        "only declared capabilities reach the plugin"
    );
    let env = fs::read_to_string(log.join("ADD.env")).unwrap();
    assert!(
        env.contains(&format!(
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=orphan;K8S_POD_INFRA_CONTAINER_ID={u};K8S_POD_UID={u}",
            u = uid(&p)
        )),
        "{env}"
    );

    // The netns disappears behind the agent's back (as after a crash and reboot).
    let net = info.namespaces.net.clone().unwrap();
    let c = std::ffi::CString::new(net.to_str().unwrap()).unwrap();
    // SAFETY: a valid path this test made.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);
    fs::remove_file(&net).unwrap();

    // A new agent (fresh Sandbox and Cni) tears it down from what is on disk.
    fx.sandbox().teardown(&uid(&p)).await.unwrap();
    assert!(
        fx.allocated().is_empty(),
        "IP still held: {:?}",
        fx.allocated()
    );
    let del: Value =
        serde_json::from_str(&fs::read_to_string(log.join("DEL.json")).unwrap()).unwrap();
    assert_eq!(
        del["prevResult"]["ips"][0]["address"],
        format!("{ip}/24"),
        "DEL got the cached result"
    );
    assert_eq!(del["runtimeConfig"]["portMappings"][0]["hostPort"], 18080);
    assert!(fx.mounts().is_empty(), "{:?}", fx.mounts());
    assert!(!info.dir.exists());
}

#[tokio::test]
async fn gc_releases_stale_attachments_and_keeps_live_ones() {
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let sandbox = fx.sandbox();
    let live = pod("live");
    let cached = pod("cached");
    let forgotten = pod("forgotten");
    let live_info = sandbox.setup(&live).await.unwrap();
    let cached_info = sandbox.setup(&cached).await.unwrap();
    let forgotten_info = sandbox.setup(&forgotten).await.unwrap();
    assert_eq!(fx.allocated().len(), 3);

    // "cached": the sandbox is lost but the CNI cache still knows it, so GC DELs it.
    // "forgotten": sandbox and cache both lost; only the plugins' own GC finds it.
    for (info, drop_cache) in [(&cached_info, false), (&forgotten_info, true)] {
        skiff_agent::sandbox::namespaces::remove_dir(&info.namespaces.dir).unwrap();
        let shm = std::ffi::CString::new(info.shm.as_ref().unwrap().to_str().unwrap()).unwrap();
        // SAFETY: a valid path under this test's directory.
        unsafe { libc::umount2(shm.as_ptr(), libc::MNT_DETACH) };
        fs::remove_dir_all(&info.dir).unwrap();
        if drop_cache {
            let entry =
                fx.path("cache/results")
                    .join(format!("{}-{}-eth0", fx.network(), info.uid));
            fs::remove_file(entry).unwrap();
        }
    }
    sandbox.gc_network().await.unwrap();
    assert_eq!(
        fx.allocated(),
        [live_info.ips[0].to_string()],
        "only the live pod keeps its IP"
    );
    assert_eq!(fx.cache_entries().len(), 1);

    // A direct GC with the live attachment listed changes nothing.
    let cni = sandbox.cni().unwrap();
    cni.gc(&[Attachment {
        container_id: uid(&live),
        ifname: "eth0".into(),
    }])
    .await
    .unwrap();
    assert_eq!(fx.allocated().len(), 1);
    sandbox.teardown(&uid(&live)).await.unwrap();
}

#[tokio::test]
async fn a_broken_conflist_gives_a_clear_error() {
    let fx = Fixture::new();
    let conf = fx.path("conf/10-skiff.conflist");
    fs::write(
        &conf,
        format!(
            r#"{{"cniVersion":"1.1.0","name":"{}","plugins":[{},{{"mtu":1400}}]}}"#,
            fx.network(),
            fx.bridge_plugin()
        ),
    )
    .unwrap();
    let err = fx.cni().unwrap_err().to_string();
    assert!(err.contains("10-skiff.conflist"), "{err}");
    assert!(err.contains("plugins[1] has no \"type\""), "{err}");

    fs::write(&conf, "{\"cniVersion\":\"1.1.0\",").unwrap();
    let err = fx.cni().unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");

    fx.write_conflist(&[r#"{"type":"no-such-plugin"}"#]);
    let err = fx.cni().unwrap_err().to_string();
    assert!(
        err.contains("\"no-such-plugin\"") && err.contains("not found"),
        "{err}"
    );

    // A sandbox without a network configuration cannot start a pod.
    let sandbox = Sandbox::new(fx.params(), None);
    let err = sandbox.setup(&pod("nonet")).await.unwrap_err();
    assert!(matches!(err, SandboxError::NetworkNotReady), "{err}");
    assert!(fx.mounts().is_empty());
}

#[tokio::test]
async fn a_plugin_failing_on_add_leaves_nothing_behind() {
    let fx = Fixture::new();
    fx.script_plugin(
        "refuse",
        "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n\
         echo '{\"cniVersion\":\"1.1.0\",\"code\":142,\"msg\":\"refused on purpose\",\"details\":\"test plugin\"}'\n\
         exit 1\nfi\n",
    );
    fx.write_conflist(&[r#"{"type":"refuse"}"#]);
    let sandbox = fx.sandbox();
    let p = pod("doomed");
    let err = sandbox.setup(&p).await.unwrap_err();
    let SandboxError::Cni { source, .. } = &err else {
        panic!("not a CNI error: {err}");
    };
    assert_eq!(source.plugin_code(), Some(142), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("refuse") && text.contains("refused on purpose: test plugin"),
        "{text}"
    );
    assert!(fx.allocated().is_empty(), "IP leaked: {:?}", fx.allocated());
    assert!(fx.cache_entries().is_empty(), "{:?}", fx.cache_entries());
    assert!(fx.mounts().is_empty(), "{:?}", fx.mounts());
    assert!(!fx.bridge_ports().contains("veth"), "{}", fx.bridge_ports());
    assert!(!sandbox.dir(&uid(&p)).exists());
    assert!(sandbox.recover().unwrap().is_empty());
}

#[tokio::test]
async fn hung_and_crashing_plugins_are_reported() {
    let fx = Fixture::new();
    let pidfile = fx.path("log/hang.pid");
    fx.script_plugin(
        "hang",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then echo $$ > {}; exec sleep 30; fi\n",
            pidfile.display()
        ),
    );
    fx.script_plugin("crash", "#!/bin/sh\necho boom >&2\nexit 2\n");
    fx.script_plugin("garbage", "#!/bin/sh\ncat >/dev/null\necho not-json\n");
    let netns = fx.path("no-netns");
    for (plugin, check) in [
        ("hang", "did not finish within"),
        ("crash", "exit status: 2 and no CNI error: boom"),
        ("garbage", "printed an invalid result"),
    ] {
        let list = format!(
            r#"{{"cniVersion":"1.0.0","name":"{}","plugins":[{{"type":"{plugin}"}}]}}"#,
            fx.network()
        );
        let config = CniConfig::from_list_bytes(
            list.as_bytes(),
            &fx.path("conf/x.conflist"),
            &fx.bin_dirs(),
        )
        .unwrap();
        let cni = Cni::new(config, &fx.path("cache")).with_exec_timeout(Duration::from_millis(500));
        let started = Instant::now();
        let err = cni
            .add(&RuntimeConf::new("c1", &netns, "eth0"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(check), "{plugin}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{plugin} held the ADD"
        );
        // The failed ADD removed its cache entry: crash and garbage fail DEL too
        // (kept for GC); hang's DEL succeeds.
        if plugin == "hang" {
            assert!(fx.cache_entries().is_empty(), "{:?}", fx.cache_entries());
        }
    }
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        // Dead, or a zombie not yet reaped.
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split(' ').nth(2) == Some("Z"))
            .unwrap_or(true)
    });
    assert!(gone, "the hung plugin (pid {pid}) was not killed");
}

#[tokio::test]
async fn host_network_pods_share_the_node_network_and_uts() {
    let fx = Fixture::new();
    let sandbox = Sandbox::new(fx.params(), None);
    let mut p = pod("node-agent");
    p.spec.as_mut().unwrap().host_network = Some(true);
    let info = sandbox.setup(&p).await.unwrap();
    assert_eq!(info.namespaces.net, None);
    assert_eq!(info.namespaces.uts, None);
    let ipc = info.namespaces.ipc.clone().unwrap();
    assert_ne!(ns_inode(&ipc), ns_inode(Path::new("/proc/self/ns/ipc")));
    assert_eq!(info.ips, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        fs::read_to_string(&info.files.hosts).unwrap(),
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n192.0.2.10 node-1\n"
    );
    // ClusterFirst on the host network is the node's DNS.
    assert_eq!(
        fs::read_to_string(&info.files.resolv_conf).unwrap(),
        "search corp.example\nnameserver 192.0.2.53\noptions timeout:2\n"
    );
    sandbox.teardown(&uid(&p)).await.unwrap();
    assert!(fx.mounts().is_empty());
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:.2} ms, median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 9 / 10]),
        ms(samples[samples.len() - 1])
    )
}

#[tokio::test]
async fn setup_latency_over_20_runs() {
    const RUNS: usize = 20;
    let fx = Fixture::new();
    fx.write_conflist(&[]);
    let sandbox = fx.sandbox();

    // Namespaces alone: the part of a sandbox that is not CNI. All are made before
    // any is removed, since the kernel's clean-up of a dead netns competes for CPU.
    let mut ns_times = Vec::new();
    let mut made = Vec::new();
    for i in 0..RUNS {
        let dir = fx.path(&format!("ns-only/{i}"));
        let t = Instant::now();
        made.push(Namespaces::create(&dir, "bench").unwrap());
        ns_times.push(t.elapsed());
    }
    for ns in made {
        ns.remove().unwrap();
    }

    // Whole sandboxes: namespaces + CNI ADD (skiff-bridge, skiff-ipam) + files.
    let pods: Vec<Pod> = (0..RUNS).map(|i| pod(&format!("bench-{i}"))).collect();
    // The first ADD creates the bridge; it is not what a pod usually pays.
    let warm = pod("warm-up");
    sandbox.setup(&warm).await.unwrap();
    let mut setup_times = Vec::new();
    for p in &pods {
        let t = Instant::now();
        sandbox.setup(p).await.unwrap();
        setup_times.push(t.elapsed());
    }
    let mut teardown_times = Vec::new();
    for p in &pods {
        let t = Instant::now();
        sandbox.teardown(&uid(p)).await.unwrap();
        teardown_times.push(t.elapsed());
    }
    sandbox.teardown(&uid(&warm)).await.unwrap();

    // The fastest run is what the code costs; the rest is the scheduler (the
    // kernel's clean-up of dead namespaces, other work on the machine).
    let ns_best = ns_times.iter().min().copied().unwrap();
    println!(
        "namespaces (net+ipc+uts, lo up, hostname): {}",
        stats(ns_times)
    );
    println!(
        "sandbox setup (namespaces + CNI ADD + files): {}",
        stats(setup_times)
    );
    println!(
        "sandbox teardown (CNI DEL + unmount + files): {}",
        stats(teardown_times)
    );
    assert!(fx.allocated().is_empty());
    assert!(
        ns_best < Duration::from_millis(10),
        "namespaces take {ns_best:?} at best, over the 10 ms budget"
    );
}
