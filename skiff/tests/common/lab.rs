//! A `skiff lab` of the test's own (bridge, subnet, namespaces, port, directory), driven
//! with the real `skiff` and `kubectl`, and taken down when dropped.

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use skiff_tests::{eventually, free_port, processes_naming};

pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// A lab with names of its own (bridge, subnet, namespaces, port, directory); `lab down`
/// when dropped, so a failing test leaves nothing running.
pub struct Lab {
    id: u32,
    pub workdir: PathBuf,
    pub bridge: String,
    netns_prefix: String,
    subnet_prefix: String,
    port: u16,
}

/// Where tests running at once reserve their lab numbers (a file each, made exclusively).
const IDS: &str = "/tmp/skiff-lab-test-ids";

impl Lab {
    /// A lab whose number no other test holds; the number names its bridge, namespaces and
    /// subnet (172.31.N.0/24).
    pub fn new() -> Lab {
        std::fs::create_dir_all(IDS).expect("the lab number directory");
        let start = std::process::id() % 200;
        let id = (0..200)
            .map(|k| 20 + (start + k) % 200)
            .find(|id| {
                !Path::new("/sys/class/net")
                    .join(format!("sklab{id}"))
                    .exists()
                    && std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(Path::new(IDS).join(id.to_string()))
                        .is_ok()
            })
            .expect("a free lab number");
        let workdir = tempfile::Builder::new()
            .prefix("sklab")
            .tempdir_in("/tmp")
            .expect("workdir")
            .keep();
        Lab {
            id,
            workdir,
            bridge: format!("sklab{id}"),
            netns_prefix: format!("sklab{id}-"),
            subnet_prefix: format!("172.31.{id}."),
            port: free_port().expect("a free port"),
        }
    }

    pub fn skiff(&self, args: &[&str]) -> Output {
        Command::new(SKIFF)
            .args(args)
            .arg("--workdir")
            .arg(&self.workdir)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running skiff")
    }

    pub fn up(&self, nodes: u32) -> String {
        ok(self.up_with(nodes, &[]), "skiff lab up")
    }

    pub fn up_with(&self, nodes: u32, extra: &[&str]) -> Output {
        let nodes = nodes.to_string();
        let subnet = format!("{}0/24", self.subnet_prefix);
        let port = self.port.to_string();
        let mut args = vec![
            "lab",
            "up",
            "--nodes",
            &nodes,
            "--bridge",
            &self.bridge,
            "--subnet",
            &subnet,
            "--netns-prefix",
            &self.netns_prefix,
            "--port",
            &port,
            "--node-monitor-grace-period",
            "20s",
        ];
        args.extend_from_slice(extra);
        self.skiff(&args)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.workdir.join("admin.kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("running kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        ok(self.kubectl(args), &format!("kubectl {}", args.join(" ")))
    }

    pub fn apply(&self, manifest: &str) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
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

    /// `kubectl exec POD -- cmd...`, retried until it succeeds (a route or rule may take
    /// a moment to be programmed).
    pub fn exec_until(&self, pod: &str, cmd: &[&str], what: &str) -> String {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(cmd);
        eventually(Duration::from_secs(60), what, || {
            let out = self.kubectl(&args);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
    }

    /// The body of `GET /` at `addr` (`ip:port`) from inside `pod`. With nc: busybox-static's
    /// wget crashes in a container without the C library's NSS modules.
    pub fn http_in_pod(&self, pod: &str, addr: &str) -> String {
        let (ip, port) = addr.split_once(':').expect("ip:port");
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}");
        let what = format!("{addr} from {pod}");
        eventually(Duration::from_secs(60), &what, || {
            let out = self.kubectl(&["exec", pod, "--", "sh", "-c", &script]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let body = text.split("\r\n\r\n").nth(1)?.trim().to_string();
            (out.status.success() && text.starts_with("HTTP/1.") && !body.is_empty())
                .then_some(body)
        })
    }

    /// Nothing of the lab is left: namespaces, links, processes, cgroups, directory.
    pub fn assert_gone(&self, nodes: u32) {
        let netns: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.starts_with(&self.netns_prefix))
                    .collect()
            })
            .unwrap_or_default();
        assert!(netns.is_empty(), "namespaces left: {netns:?}");
        let links = std::iter::once(self.bridge.clone())
            .chain((1..=nodes).map(|k| format!("{}-{k}", self.bridge)));
        for link in links {
            assert!(
                !Path::new("/sys/class/net").join(&link).exists(),
                "link {link} left"
            );
        }
        let procs = processes_naming(&self.workdir);
        assert!(procs.is_empty(), "processes left: {procs:?}");
        for e in std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroups")
            .flatten()
        {
            for k in 1..=nodes {
                let cg = e.path().join(format!("{}w{k}", self.netns_prefix));
                assert!(!cg.exists(), "cgroup {} left", cg.display());
            }
        }
        assert!(!self.workdir.exists(), "{} left", self.workdir.display());
    }

    pub fn worker_address(&self, k: u32) -> String {
        format!("{}{}", self.subnet_prefix, 10 + k)
    }
}

/// A pod as `kubectl get pods` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    pub name: String,
    pub uid: String,
    pub node: String,
    pub ip: String,
    pub ready: bool,
    /// It has a deletion timestamp (kubectl's `Terminating`).
    pub deleting: bool,
}

impl Lab {
    /// The pods that `selector` picks, by name.
    pub fn pods(&self, selector: &str) -> Vec<PodRow> {
        let out = self.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name},{.metadata.uid},{.spec.nodeName},{.status.podIP},{.status.conditions[?(@.type==\"Ready\")].status},{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.len() == 6).then(|| PodRow {
                    name: f[0].into(),
                    uid: f[1].into(),
                    node: f[2].into(),
                    ip: f[3].into(),
                    ready: f[4] == "True",
                    deleting: !f[5].is_empty(),
                })
            })
            .collect()
    }

    /// Waits until exactly `n` pods of `selector` are Ready and none is being deleted.
    pub fn ready_pods(&self, selector: &str, n: usize, timeout: Duration) -> Vec<PodRow> {
        eventually(timeout, &format!("{n} ready pods of {selector}"), || {
            let pods = self.pods(selector);
            (pods.len() == n && pods.iter().all(|p| p.ready && !p.deleting)).then_some(pods)
        })
    }

    /// A node's Ready condition status (`True`, `False`, `Unknown`).
    pub fn node_ready(&self, node: &str) -> String {
        self.kubectl_ok(&[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
        .trim()
        .to_string()
    }

    /// `kubectl port-forward TARGET :PORT` running, and the local port it took.
    pub fn port_forward(&self, target: &str, port: u16) -> (std::process::Child, u16) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["port-forward", "--address", "127.0.0.1", target])
            .arg(format!(":{port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kubectl port-forward");
        let stdout = child.stdout.take().expect("stdout");
        // "Forwarding from 127.0.0.1:LOCAL -> PORT"
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut reader, &mut line);
        // Drained until kubectl exits: it writes a line per connection, and a closed pipe
        // would end it.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let local = read.ok().and_then(|_| {
            line.split_once("127.0.0.1:")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u16>()
                .ok()
        });
        match local {
            Some(p) => (child, p),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kubectl port-forward printed {line:?}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.skiff(&["lab", "down"]);
        if !out.status.success() {
            eprintln!("lab down at drop: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_file(Path::new(IDS).join(self.id.to_string()));
    }
}

pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP GET from the host, with a short timeout.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.")
        .then(|| body.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}
