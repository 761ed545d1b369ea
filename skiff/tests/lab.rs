//! `skiff lab` on the real kernel: two workers, each a network namespace with its own
//! containerd, agent and proxy, joined to a control plane on the host through a bridge.
//! Pods talk across workers over VXLAN, Services answer by ClusterIP, DNS and NodePort,
//! `kubectl logs`/`exec` reach the workers' agents, a killed worker goes NotReady, and
//! `lab down` leaves nothing behind. Traffic stays on the lab's own bridge and namespaces.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use skiff_tests::{eventually, free_port, workspace_bin};

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

/// A lab with names of its own (bridge, subnet, namespaces, port, directory); `lab down`
/// when dropped, so a failing test leaves nothing running.
struct Lab {
    workdir: PathBuf,
    bridge: String,
    netns_prefix: String,
    subnet_prefix: String,
    port: u16,
}

impl Lab {
    /// `salt` tells apart labs of one test process (the tests of this file run at once).
    fn new(salt: u32) -> Lab {
        let id = (std::process::id() % 100) * 2 + salt + 20;
        let workdir = tempfile::Builder::new()
            .prefix("sklab")
            .tempdir_in("/tmp")
            .expect("workdir")
            .keep();
        Lab {
            workdir,
            bridge: format!("sklab{id}"),
            netns_prefix: format!("sklab{id}-"),
            subnet_prefix: format!("172.31.{id}."),
            port: free_port().expect("a free port"),
        }
    }

    fn skiff(&self, args: &[&str]) -> Output {
        Command::new(SKIFF)
            .args(args)
            .arg("--workdir")
            .arg(&self.workdir)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running skiff")
    }

    fn up(&self, nodes: u32) -> String {
        ok(self.up_with(nodes, &[]), "skiff lab up")
    }

    fn up_with(&self, nodes: u32, extra: &[&str]) -> Output {
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

    fn kubeconfig(&self) -> PathBuf {
        self.workdir.join("admin.kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
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
    fn exec_until(&self, pod: &str, cmd: &[&str], what: &str) -> String {
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
    fn http_in_pod(&self, pod: &str, addr: &str) -> String {
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
    fn assert_gone(&self, nodes: u32) {
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

    fn worker_address(&self, k: u32) -> String {
        format!("{}{}", self.subnet_prefix, 10 + k)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.skiff(&["lab", "down"]);
        if !out.status.success() {
            eprintln!("lab down at drop: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP GET from the host, with a short timeout.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.")
        .then(|| body.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

const WEB: &str = r#"apiVersion: apps/v1
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
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo serving $(hostname) && exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

/// Whether any process's command line names `dir`.
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

#[test]
fn a_two_worker_lab_runs_pods_across_workers_and_goes_away_without_a_trace() {
    // The node agents find the CNI plugins beside the skiff binary.
    for plugin in ["skiff-bridge", "skiff-ipam"] {
        workspace_bin(plugin).expect("the CNI plugins are built");
    }
    let lab = Lab::new(0);
    let printed = lab.up(2);
    assert!(
        printed.contains(&format!("kubeconfig: {}", lab.kubeconfig().display())),
        "{printed}"
    );
    for k in 1..=2 {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("w{k} ")))
            .unwrap_or_else(|| panic!("no line for w{k} in:\n{printed}"));
        assert!(line.contains(&lab.worker_address(k)), "{line}");
    }

    // Both nodes Ready, at their lab addresses, with pod ranges of their own.
    let nodes = lab.kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type==\"InternalIP\")].address} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    let rows: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 2, "{nodes}");
    assert_eq!(rows[0][0], "w1", "{nodes}");
    assert_eq!(rows[1][0], "w2", "{nodes}");
    assert_ne!(rows[0][1], rows[1][1], "{nodes}");
    for (k, row) in rows.iter().enumerate() {
        assert!(row[1].starts_with("10.244."), "{nodes}");
        assert_eq!(row[2], lab.worker_address(k as u32 + 1), "{nodes}");
        assert_eq!(row[3], "True", "{nodes}");
    }

    // Two replicas, one on each worker.
    lab.apply(WEB);
    let pods = eventually(Duration::from_secs(120), "both web pods ready", || {
        let out = lab.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut rows: Vec<(String, String, String)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 4 && f[3] == "True")
                    .then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
            })
            .collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(
        (pods[0].1.as_str(), pods[1].1.as_str()),
        ("w1", "w2"),
        "{pods:?}"
    );
    let (on_w1, on_w2) = (&pods[0], &pods[1]);

    // Pod to pod across workers, by address (VXLAN between the namespaces).
    let got = lab.http_in_pod(&on_w1.0, &format!("{}:8080", on_w2.2));
    assert_eq!(got, on_w2.0);

    // The Service by ClusterIP and by DNS name, from a pod on each worker.
    let cluster_ip = lab.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let names = [on_w1.0.as_str(), on_w2.0.as_str()];
    for (pod, _, _) in &pods {
        let got = lab.http_in_pod(pod, &format!("{cluster_ip}:80"));
        assert!(names.contains(&got.as_str()), "{got}");
        let answer = lab.exec_until(
            pod,
            &["nslookup", "web.default.svc.cluster.local"],
            "the Service's DNS name",
        );
        let resolved = answer
            .lines()
            .filter_map(|l| l.strip_prefix("Address:"))
            .map(str::trim)
            .next_back()
            .unwrap_or_default()
            .to_string();
        assert_eq!(resolved, cluster_ip, "{answer}");
        let got = lab.http_in_pod(pod, &format!("{resolved}:80"));
        assert!(names.contains(&got.as_str()), "{got}");
    }

    // The NodePort from the host, at each worker's address.
    let node_port = lab.kubectl_ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    for k in 1..=2 {
        let addr = format!("{}:{node_port}", lab.worker_address(k));
        let body = eventually(
            Duration::from_secs(30),
            "the NodePort from the host",
            || http_get(&addr, "/"),
        );
        assert!(names.contains(&body.trim()), "{body}");
    }

    // Logs and exec go through the control plane to each worker's agent.
    for (pod, _, _) in &pods {
        let logs = lab.kubectl_ok(&["logs", pod]);
        assert!(logs.contains(&format!("serving {pod}")), "{logs}");
        let host = lab.kubectl_ok(&["exec", pod, "--", "hostname"]);
        assert_eq!(host.trim(), pod);
    }

    // A dead worker goes NotReady within the node monitor grace period (20s here).
    ok(
        lab.skiff(&["lab", "kill-node", "w2"]),
        "skiff lab kill-node",
    );
    eventually(Duration::from_secs(45), "w2 NotReady", || {
        let s = lab.kubectl_ok(&[
            "get",
            "node",
            "w2",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (s.trim() != "True").then_some(())
    });

    // Back with the credentials it has, Ready again (heartbeats from the new process).
    let out = ok(
        lab.skiff(&["lab", "restart-node", "w2"]),
        "skiff lab restart-node",
    );
    assert!(out.contains("w2 is back"), "{out}");
    let ready = lab.kubectl_ok(&[
        "get",
        "node",
        "w2",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready.trim(), "True");

    // Down: no namespace, link, process, cgroup or directory is left.
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(2);
    // Once more: down is idempotent.
    ok(lab.skiff(&["lab", "down"]), "skiff lab down, again");
}

#[test]
fn a_lab_whose_up_failed_half_way_is_taken_down() {
    let lab = Lab::new(1);
    // No node can be Ready within no time: up fails after making everything.
    let out = lab.up_with(2, &["--timeout-seconds", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skiff lab down --workdir"), "{err}");
    assert!(lab.workdir.join("lab.json").exists());
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(2);
    let again = ok(lab.skiff(&["lab", "down"]), "skiff lab down, again");
    assert!(again.contains("no lab in"), "{again}");
}

#[test]
fn a_lab_with_a_wider_node_cidr_mask_runs_more_pods_per_worker() {
    let lab = Lab::new(2);
    ok(
        lab.up_with(1, &["--node-cidr-mask-size", "23", "--max-pods", "300"]),
        "skiff lab up --node-cidr-mask-size 23",
    );
    let node = lab.kubectl_ok(&[
        "get",
        "node",
        "w1",
        "-o",
        "jsonpath={.spec.podCIDR} {.status.capacity.pods}",
    ]);
    let (cidr, pods) = node.split_once(' ').expect("cidr and pods");
    assert!(
        cidr.starts_with("10.244.") && cidr.ends_with(".0/23"),
        "{node}"
    );
    assert_eq!(pods, "300", "{node}");
    lab.kubectl_ok(&[
        "run",
        "one",
        "--image=busybox:1.36",
        "--image-pull-policy=IfNotPresent",
        "--restart=Never",
        "--",
        "sleep",
        "1000",
    ]);
    lab.kubectl_ok(&["wait", "--for=condition=Ready", "pod/one", "--timeout=60s"]);
    let ip = lab.kubectl_ok(&["get", "pod", "one", "-o", "jsonpath={.status.podIP}"]);
    let third: u32 = cidr
        .split('.')
        .nth(2)
        .and_then(|o| o.parse().ok())
        .expect("octet");
    let octets: Vec<u32> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert_eq!(octets.len(), 4, "{ip}");
    assert!(
        octets[0] == 10 && octets[1] == 244 && (octets[2] == third || octets[2] == third + 1),
        "{ip} is not in {cidr}"
    );
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(1);
}
