//! `skiff up` on the real kernel, in a network namespace of the test's own: the one-node
//! cluster comes up, runs a Deployment behind a Service, stops cleanly on Ctrl-C (SIGINT),
//! comes back on the same directory with the same objects and the same pods, and
//! `skiff down` then leaves nothing behind. Pod traffic stays inside the namespace.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skiff_tests::{eventually, free_port, processes_naming, workspace_bin};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// The namespace's own address and its (absent) gateway: the node's InternalIP comes from
/// the default route, as on a real machine. Nothing answers there; nothing is sent there.
const NODE_IP: &str = "192.168.241.2";
const GATEWAY: &str = "192.168.241.1";

/// One `skiff up` cluster: a network namespace, a directory (state and pod logs), a cgroup
/// root and a port of its own. Dropped, it kills what still runs by PID, runs `skiff down`
/// and removes the namespace, so a failing test leaves nothing behind.
struct Cluster {
    netns: String,
    workdir: PathBuf,
    cgroup_root: String,
    port: u16,
    up: Option<Child>,
}

impl Cluster {
    fn new() -> Cluster {
        let workdir = tempfile::Builder::new()
            .prefix("skup")
            .tempdir_in("/tmp")
            .expect("workdir")
            .keep();
        let tag = workdir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name")
            .to_ascii_lowercase();
        let c = Cluster {
            netns: format!("{tag}-{}", std::process::id()),
            cgroup_root: format!("/{tag}"),
            port: free_port().expect("a free port"),
            workdir,
            up: None,
        };
        c.create_netns();
        c
    }

    fn data_dir(&self) -> PathBuf {
        self.workdir.join("data")
    }

    fn logs_dir(&self) -> PathBuf {
        self.workdir.join("logs")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// lo up, and `eth0` with an address and a default route through it: one end of a veth
    /// pair whose other end (`nowhere`) stays in the namespace, unconnected.
    fn create_netns(&self) {
        run("ip", &["netns", "add", &self.netns]);
        let ns = |args: &[&str]| {
            let mut full = vec!["-n", &self.netns];
            full.extend_from_slice(args);
            run("ip", &full);
        };
        ns(&["link", "set", "lo", "up"]);
        ns(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "nowhere",
        ]);
        ns(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"]);
        ns(&["link", "set", "nowhere", "up"]);
        ns(&["link", "set", "eth0", "up"]);
        ns(&["route", "add", "default", "via", GATEWAY]);
    }

    /// `program` in the namespace. nsenter execs it (the PID is the program's) and, unlike
    /// `ip netns exec`, leaves /sys alone, so the agent sees the host's cgroups.
    fn in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program)
            .env("RUST_BACKTRACE", "0");
        c
    }

    fn layout_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--cgroup-root".into(),
            self.cgroup_root.clone(),
            "--pod-logs-dir".into(),
            self.logs_dir().display().to_string(),
        ]
    }

    /// Starts `skiff up`; its stdout's lines come on the channel (and to the test's output).
    fn spawn_up(&mut self) -> mpsc::Receiver<String> {
        assert!(self.up.is_none(), "skiff up runs already");
        let mut child = self
            .in_netns(SKIFF)
            .arg("up")
            .args(self.layout_args())
            .args(["--port", &self.port.to_string()])
            // A group of its own, as a command run at a terminal, so that Ctrl-C can
            // reach the group as the terminal's does.
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning skiff up");
        let stdout = child.stdout.take().expect("stdout");
        self.up = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("skiff up: {line}");
                let _ = tx.send(line);
            }
        });
        rx
    }

    /// Starts `skiff up` and waits for the kubeconfig it prints, then for the node Ready.
    fn start(&mut self) {
        let rx = self.spawn_up();
        let want = format!("kubeconfig: {}", self.kubeconfig().display());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == want => break,
                Ok(_) => {}
                Err(_) => panic!("skiff up printed no {want:?} within 60s"),
            }
        }
        eventually(Duration::from_secs(60), "the node Ready", || {
            let out = self.kubectl(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type==\"InternalIP\")].address} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let rows: Vec<&str> = text.lines().collect();
            (rows.len() == 1 && rows[0].ends_with(&format!(" {NODE_IP} True"))).then_some(())
        });
    }

    fn pid(&self) -> i32 {
        self.up.as_ref().expect("skiff up runs").id() as i32
    }

    /// Ctrl-C: SIGINT to `skiff up`'s process group (its PID), as a terminal sends it to
    /// every process of the foreground job; it must exit 0 in good time.
    fn interrupt(&mut self) {
        let mut child = self.up.take().expect("skiff up runs");
        // SAFETY: kill(2) on the group our own child leads; the child is not yet reaped.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("waiting for skiff up") {
                break s;
            }
            if Instant::now() > deadline {
                // SAFETY: as above.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGKILL);
                }
                let _ = child.wait();
                panic!("skiff up did not stop within 30s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "skiff up exited with {status} on SIGINT");
    }

    /// `skiff down` with every flag `skiff up` had.
    fn down(&self) -> Output {
        self.in_netns(SKIFF)
            .arg("down")
            .args(self.layout_args())
            .output()
            .expect("running skiff down")
    }

    /// `skiff down --data-dir DIR` alone, as a user types it: the cgroup root and log
    /// directory are those `skiff up` recorded there.
    fn down_data_dir_only(&self) -> Output {
        self.in_netns(SKIFF)
            .arg("down")
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .expect("running skiff down")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.in_netns("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("running kubectl")
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        ok(self.kubectl(args), &format!("kubectl {}", args.join(" ")))
    }

    fn apply(&self, manifest: &str) {
        let mut child = self
            .in_netns("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("writing the manifest");
        ok(child.wait_with_output().expect("kubectl"), "kubectl apply");
    }

    /// `kubectl exec POD -- cmd...` until it succeeds (rules take a moment).
    fn exec_until(&self, pod: &str, cmd: &[&str], what: &str) -> String {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(cmd);
        eventually(Duration::from_secs(30), what, || {
            let out = self.kubectl(&args);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
    }

    /// The body of `GET /` at `ip:port` from inside `pod`, with busybox nc (its wget
    /// crashes in a container without the C library's NSS modules).
    fn http_in_pod(&self, pod: &str, ip: &str, port: u16) -> String {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}");
        let what = format!("{ip}:{port} from {pod}");
        eventually(Duration::from_secs(30), &what, || {
            let out = self.kubectl(&["exec", pod, "--", "sh", "-c", &script]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let body = text.split("\r\n\r\n").nth(1)?.trim().to_string();
            (out.status.success() && text.starts_with("HTTP/1.") && !body.is_empty())
                .then_some(body)
        })
    }

    /// The web pods once both are Ready: (name, uid, container id, restarts), by name.
    fn ready_web_pods(&self) -> Vec<[String; 4]> {
        eventually(Duration::from_secs(60), "two web pods Ready", || {
            let out = self.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut rows: Vec<[String; 4]> = text
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    (f.len() == 5 && f[4] == "True")
                        .then(|| [f[0], f[1], f[2], f[3]].map(str::to_string))
                })
                .collect();
            rows.sort();
            (rows.len() == 2 && out.status.success()).then_some(rows)
        })
    }

    /// The Service answers with the ConfigMap's page by ClusterIP and by DNS name.
    fn assert_service_answers(&self, pod: &str) {
        let cluster_ip =
            self.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
        assert_eq!(self.http_in_pod(pod, &cluster_ip, 80), PAGE);
        let answer = self.exec_until(
            pod,
            &["nslookup", "web.default.svc.cluster.local"],
            "the Service's DNS name",
        );
        let resolved = skiff_tests::nslookup_address(&answer);
        assert_eq!(resolved, cluster_ip, "{answer}");
        assert_eq!(self.http_in_pod(pod, &resolved, 80), PAGE);
    }

    /// The uids of the node and of the objects the test made.
    fn uids(&self) -> Vec<String> {
        let node = self.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.uid}"]);
        let mut uids = vec![node];
        for what in ["deployment/web", "configmap/web", "service/web"] {
            uids.push(self.kubectl_ok(&["get", what, "-o", "jsonpath={.metadata.uid}"]));
        }
        assert!(uids.iter().all(|u| !u.is_empty()), "{uids:?}");
        uids
    }

    /// The node's last heartbeat (its Lease's renewTime).
    fn heartbeat(&self) -> String {
        let node = self.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
        self.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &node,
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    }

    /// Nothing of the cluster is left on the machine or in its namespace; none of `pids`
    /// (what ran while skiff was stopped) runs.
    fn assert_gone(&self, pids: &[u32]) {
        let procs = processes_naming(&self.workdir);
        assert!(procs.is_empty(), "processes left: {procs:?}");
        // Zombies are dead already: their parent has yet to reap them.
        let alive: Vec<String> = pids
            .iter()
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (name, rest) = stat.rsplit_once(") ")?;
                (!rest.starts_with('Z')).then(|| format!("{pid}: {name})"))
            })
            .collect();
        assert!(alive.is_empty(), "processes left: {alive:?}");
        let mounts = mounts_under(&self.workdir);
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        for e in std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroups")
            .flatten()
        {
            let cg = e.path().join(self.cgroup_root.trim_start_matches('/'));
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
        let root_cg = Path::new("/sys/fs/cgroup").join(self.cgroup_root.trim_start_matches('/'));
        assert!(!root_cg.exists(), "cgroup {} left", root_cg.display());
        assert!(
            !self.data_dir().exists(),
            "{} left",
            self.data_dir().display()
        );
        let logs: Vec<_> = std::fs::read_dir(self.logs_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(logs.is_empty(), "pod logs left: {logs:?}");

        // In the namespace: only what the test made (lo, the veth pair), no firewall of
        // skiff's.
        let links = ok(
            self.in_netns("ip")
                .args(["-o", "link", "show"])
                .output()
                .expect("ip"),
            "ip link show",
        );
        let mut names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .collect();
        names.sort();
        assert_eq!(names, ["eth0", "lo", "nowhere"], "links left:\n{links}");
        let routes = ok(
            self.in_netns("ip")
                .args(["route", "show"])
                .output()
                .expect("ip"),
            "ip route show",
        );
        assert_eq!(
            routes.lines().count(),
            2,
            "routes other than the test's left:\n{routes}"
        );
        let ruleset = ok(
            self.in_netns("nft")
                .args(["list", "ruleset"])
                .output()
                .expect("nft"),
            "nft list ruleset",
        );
        let rules: Vec<&str> = ruleset
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !is_nft_skeleton(l))
            .collect();
        assert!(rules.is_empty(), "nftables rules left:\n{ruleset}");
        assert!(
            !ruleset.contains("skiff"),
            "nftables of skiff left:\n{ruleset}"
        );
        let saved = ok(
            self.in_netns("iptables-save")
                .output()
                .expect("iptables-save"),
            "iptables-save",
        );
        let chains: Vec<&str> = saved
            .lines()
            .filter(|l| {
                l.starts_with("-A")
                    || (l.starts_with(':')
                        && !BUILTIN_CHAINS.contains(&l[1..].split(' ').next().unwrap_or("")))
            })
            .collect();
        assert!(chains.is_empty(), "iptables chains or rules left:\n{saved}");
    }

    /// Best effort, for a failed test: stop what runs, take the cluster down, remove the
    /// namespace and directory. Only what this cluster made.
    fn clean_up(&mut self) {
        if let Some(mut child) = self.up.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        if self.netns_path().exists() {
            let out = self.down();
            if !out.status.success() {
                eprintln!(
                    "skiff down at drop: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.clean_up();
    }
}

const BUILTIN_CHAINS: [&str; 5] = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];

/// The lines of an empty table as iptables-nft leaves it (tables, built-in chains and their
/// hooks, closing braces): no rule, nothing of skiff's.
fn is_nft_skeleton(line: &str) -> bool {
    line == "}"
        || line.starts_with("table ")
        || line.starts_with("type ")
        || line.starts_with("policy ")
        || BUILTIN_CHAINS
            .iter()
            .any(|c| line == format!("chain {c} {{"))
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    ok(out, &format!("{cmd} {}", args.join(" ")));
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `roots` and all their descendants.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The field after the command, which may hold spaces, in parentheses.
            let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = roots.to_vec();
    let mut k = 0;
    while k < tree.len() {
        let parent = tree[k];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        k += 1;
    }
    tree
}

/// Mount points under `dir` (the host's mount table).
fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

const PAGE: &str = "hello from a ConfigMap";

const WEB: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  index.html: "hello from a ConfigMap"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        volumeMounts:
        - {name: page, mountPath: /www}
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
      volumes:
      - name: page
        configMap: {name: web}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

#[test]
fn skiff_up_stops_on_ctrl_c_comes_back_as_it_was_and_goes_down_without_a_trace() {
    // The agent finds the CNI plugins beside the skiff binary.
    for plugin in ["skiff-bridge", "skiff-ipam"] {
        workspace_bin(plugin).expect("the CNI plugins are built");
    }
    let mut cluster = Cluster::new();

    // Ctrl-C while the cluster comes up, once its containerd runs: a clean stop all the
    // same, with nothing left running.
    let _lines = cluster.spawn_up();
    let containerd = cluster.data_dir().join("agent/containerd/config.toml");
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_naming(&containerd).is_empty() {
        assert!(Instant::now() < deadline, "no containerd within 60s");
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.interrupt();
    let procs = processes_naming(&cluster.workdir);
    assert!(procs.is_empty(), "left running: {procs:?}");

    cluster.start();
    let first_pid = cluster.pid();

    // An image without a registry, into the node's containerd.
    ok(
        cluster
            .in_netns(SKIFF)
            .args(["image", "busybox", "--data-dir"])
            .arg(cluster.data_dir())
            .output()
            .expect("skiff image busybox"),
        "skiff image busybox",
    );
    cluster.apply(WEB);
    let pods = cluster.ready_web_pods();
    cluster.assert_service_answers(&pods[0][0]);
    let uids = cluster.uids();
    let heartbeat = cluster.heartbeat();

    // Ctrl-C: a clean exit; the state stays on disk and the pods keep running (their
    // shims, with the containers and log drivers under them).
    cluster.interrupt();
    assert!(
        cluster.data_dir().join("controlplane").is_dir()
            && cluster.data_dir().join("agent/pods").is_dir(),
        "the state is kept"
    );
    let shims: Vec<u32> = processes_naming(&cluster.workdir)
        .iter()
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect();
    let running = process_tree(&shims);
    assert!(
        running.len() >= 2 * shims.len() && shims.len() >= 2,
        "the pods' shims and containers run on: {:?}",
        processes_naming(&cluster.workdir)
    );

    // Again on the same directory: the same node and objects, and, as when kubelet and the
    // API server restart, the same pods with their containers still running (adopted, not
    // restarted or recreated).
    cluster.start();
    assert_ne!(cluster.pid(), first_pid);
    assert_eq!(cluster.uids(), uids, "node, deployment, configmap, service");
    eventually(Duration::from_secs(20), "a new heartbeat", || {
        (cluster.heartbeat() != heartbeat).then_some(())
    });
    let again = cluster.ready_web_pods();
    assert_eq!(
        again, pods,
        "(name, uid, container, restarts) of the web pods"
    );
    cluster.assert_service_answers(&again[1][0]);

    // Stopped, then down: nothing is left.
    cluster.interrupt();
    let shims: Vec<u32> = processes_naming(&cluster.workdir)
        .iter()
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect();
    let running = process_tree(&shims);
    let out = cluster.down_data_dir_only();
    let printed = ok(out, "skiff down");
    assert!(printed.contains("skiff is down"), "{printed}");
    cluster.assert_gone(&running);
    // Down once more is harmless. (With the flags: the record went with the directory.)
    ok(cluster.down(), "skiff down, again");
}
