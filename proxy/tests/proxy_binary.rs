//! The `skiff-proxy` binary as a node runs it, inside a "node" network namespace this test
//! makes: it reaches a real control plane over a veth pair, programs its nftables table
//! there, holds the kube-dns address on its dummy device and answers DNS on it, forwards
//! other names to an upstream DNS server in a third namespace, and serves `/healthz` and
//! `/metrics`. Needs root and the workspace's `skiff-controlplane` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::dig_in;
use common::upstream::start_upstream_on;
use skiff_tests::{ControlPlane, Proc, workspace_bin};
use support::in_netns;

const DNS_IP: &str = "10.96.0.10";
const WEB_IP: &str = "10.96.0.81";
const OTHER_IP: &str = "10.96.0.82";
const DB_IP: &str = "10.96.0.83";
const METRICS: &str = "127.0.0.1:10249";

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// host ── node namespace (the proxy) ── upstream namespace (a DNS server).
/// Everything goes when it is dropped, also when the test fails.
struct Net {
    node: String,
    upstream: String,
    host_link: String,
    /// The host's end of the host–node link: where the control plane listens.
    host_ip: String,
    upstream_ip: String,
}

impl Net {
    fn new() -> Result<Net> {
        let pid = std::process::id();
        let x = pid % 250 + 1;
        let net = Net {
            node: format!("skpb{pid}-node"),
            upstream: format!("skpb{pid}-up"),
            host_link: format!("skpb{pid}h"),
            host_ip: format!("10.252.{x}.1"),
            upstream_ip: format!("10.253.{x}.2"),
        };
        let (node, up) = (net.node.as_str(), net.upstream.as_str());
        run(&["ip", "netns", "add", node])?;
        run(&["ip", "netns", "add", up])?;
        let peer_up = format!("skpb{pid}u");
        #[rustfmt::skip]
        let steps: Vec<Vec<String>> = [
            vec!["ip", "link", "add", &net.host_link, "type", "veth", "peer", "name", "eth0", "netns", node],
            vec!["ip", "addr", "add", &format!("{}/30", net.host_ip), "dev", &net.host_link],
            vec!["ip", "link", "set", &net.host_link, "up"],
            vec!["ip", "-n", node, "addr", "add", &format!("10.252.{x}.2/30"), "dev", "eth0"],
            vec!["ip", "-n", node, "link", "set", "eth0", "up"],
            vec!["ip", "-n", node, "link", "set", "lo", "up"],
            vec!["ip", "-n", node, "link", "add", &peer_up, "type", "veth", "peer", "name", "eth0", "netns", up],
            vec!["ip", "-n", node, "addr", "add", &format!("10.253.{x}.1/30"), "dev", &peer_up],
            vec!["ip", "-n", node, "link", "set", &peer_up, "up"],
            vec!["ip", "-n", up, "addr", "add", &format!("{}/30", net.upstream_ip), "dev", "eth0"],
            vec!["ip", "-n", up, "link", "set", "eth0", "up"],
            vec!["ip", "-n", up, "link", "set", "lo", "up"],
        ]
        .iter()
        .map(|v| v.iter().map(|s| s.to_string()).collect())
        .collect();
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            run(&args)?;
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.node));
        let _ = run(&["ip", "link", "del", &self.host_link]);
        let _ = run(&["ip", "netns", "del", &self.node]);
        let _ = run(&["ip", "netns", "del", &self.upstream]);
    }
}

/// One HTTP/1.1 GET from inside `ns`: (status code, body).
fn http_get(ns: &str, path: &'static str) -> Result<(u16, String)> {
    in_netns(ns, move || -> Result<(u16, String)> {
        let addr: SocketAddr = METRICS.parse()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let code = out
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .context("no status line")?;
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        Ok((code, body))
    })?
}

fn wait<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn manifests() -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  clusterIP: {WEB_IP}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-manual
  namespace: default
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- addresses: ["10.244.9.9"]
  conditions: {{ready: true}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: other}}
---
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: other}}
spec:
  clusterIP: {DB_IP}
  ports: [{{name: sql, port: 5432}}]
---
apiVersion: v1
kind: Service
metadata:
  name: other
  namespace: default
  labels: {{service.kubernetes.io/service-proxy-name: someone-else}}
spec:
  clusterIP: {OTHER_IP}
  ports: [{{name: http, port: 80}}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_programs_its_node_answers_dns_on_the_kube_dns_address_and_reports_health()
-> Result<()> {
    let net = Net::new()?;

    // The upstream resolver, in its own namespace; the proxy finds it in its resolv.conf.
    let bind: SocketAddr = format!("{}:53", net.upstream_ip).parse()?;
    let (udp, tcp) = in_netns(&net.upstream, move || -> Result<_> {
        Ok((
            std::net::UdpSocket::bind(bind)?,
            std::net::TcpListener::bind(bind)?,
        ))
    })??;
    let upstream = start_upstream_on(udp, tcp);
    let dir = tempfile::tempdir()?;
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", net.upstream_ip))?;

    let cp = ControlPlane::start(
        &workspace_bin("skiff-controlplane")?,
        &["--bind-address", &net.host_ip],
    )?;

    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &net.node,
        env!("CARGO_BIN_EXE_skiff-proxy"),
    ])
    .arg("--kubeconfig")
    .arg(cp.kubeconfig())
    .args(["--node-name", "node-a", "--dns-address", DNS_IP])
    .arg("--resolv-conf")
    .arg(&resolv)
    .args(["--metrics-bind-address", METRICS])
    .args([
        "--cluster-cidr",
        "10.244.0.0/16",
        "--min-sync-period-ms",
        "50",
    ])
    .env("RUST_LOG", "info,hickory_server=warn")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.path().join("proxy.log"))?);
    // `ip netns exec` execs the proxy: the PID is the proxy's.
    let mut proxy = Proc {
        child: cmd.spawn().context("starting skiff-proxy")?,
        name: "skiff-proxy".into(),
    };

    let node = net.node.clone();
    let kubectl_cp = cp.kubeconfig();
    let result = tokio::task::spawn_blocking(move || -> Result<()> {
        let kubectl = |args: &[&str], stdin: Option<&str>| -> Result<String> {
            let mut c = Command::new("kubectl");
            c.arg("--kubeconfig").arg(&kubectl_cp).args(args);
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn()?;
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .context("stdin")?
                    .write_all(input.as_bytes())?;
            }
            let out = child.wait_with_output()?;
            anyhow::ensure!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        kubectl(&["apply", "-f", "-"], Some(&manifests()))?;

        let table = |node: &str| {
            run(&[
                "ip",
                "netns",
                "exec",
                node,
                "nft",
                "list",
                "table",
                "ip",
                "skiff-proxy",
            ])
        };
        let ruleset = wait(
            Duration::from_secs(15),
            "the Service in the node's table",
            || table(&node).ok().filter(|t| t.contains(WEB_IP)),
        )?;
        // Labelled for another proxy: left alone, as kube-proxy leaves it.
        assert!(!ruleset.contains(OTHER_IP), "{ruleset}");
        assert!(!ruleset.contains(DNS_IP), "{ruleset}");

        let (code, body) = http_get(&node, "/healthz")?;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"lastUpdated\""), "{body}");
        let (code, metrics) = http_get(&node, "/metrics")?;
        assert_eq!(code, 200);
        for family in [
            "kubeproxy_sync_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "skiff_proxy_rules_programmed{mode=\"nftables\"}",
            "process_resident_memory_bytes",
        ] {
            assert!(metrics.contains(family), "{family} missing:\n{metrics}");
        }

        let addrs = run(&["ip", "-n", &node, "-o", "addr", "show", "dev", "skiff-dns0"])?;
        assert!(addrs.contains(&format!("{DNS_IP}/32")), "{addrs}");
        Ok(())
    })
    .await?;
    if let Err(e) = result {
        let log = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default();
        proxy.kill();
        bail!("{e:#}\nproxy log:\n{log}");
    }

    // Cluster DNS on the kube-dns address, asked from inside the node.
    let at: SocketAddr = format!("{DNS_IP}:53").parse()?;
    let a = dig_in(Some(&net.node), at, &["web.default.svc.cluster.local", "A"]).await;
    assert_eq!(a.answers("A"), [WEB_IP]);
    let a = dig_in(Some(&net.node), at, &["upstream.test", "A"]).await;
    assert_eq!(
        a.answers("A"),
        ["192.0.2.7"],
        "forwarded to the upstream namespace"
    );
    assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);
    let a = dig_in(Some(&net.node), at, &["upstream.test", "A"]).await;
    assert_eq!(a.answers("A"), ["192.0.2.7"]);
    assert_eq!(
        upstream.queries.load(Ordering::SeqCst),
        1,
        "the second answer is cached"
    );

    // Short names, through the C library's resolver and the resolv.conf the agent writes
    // for a pod in `default` (`ip netns exec` mounts /etc/netns/NS/resolv.conf over
    // /etc/resolv.conf).
    let etc = format!("/etc/netns/{}", net.node);
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        format!("{etc}/resolv.conf"),
        format!(
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver {DNS_IP}\noptions ndots:5\n"
        ),
    )?;
    for (name, want) in [
        ("web", WEB_IP),
        ("db.other", DB_IP),
        ("web.default.svc", WEB_IP),
    ] {
        let out = run(&["ip", "netns", "exec", &net.node, "getent", "hosts", name])?;
        assert!(out.starts_with(want), "getent hosts {name}: {out}");
    }

    // SIGTERM leaves the rules (Services keep working across a restart); --cleanup removes
    // the table and the dummy device.
    proxy.terminate(Duration::from_secs(5));
    let node = net.node.clone();
    let kubeconfig = cp.kubeconfig();
    tokio::task::spawn_blocking(move || -> Result<()> {
        run(&[
            "ip",
            "netns",
            "exec",
            &node,
            "nft",
            "list",
            "table",
            "ip",
            "skiff-proxy",
        ])
        .context("the table after SIGTERM")?;
        let kc = kubeconfig.to_string_lossy().into_owned();
        run(&[
            "ip",
            "netns",
            "exec",
            &node,
            env!("CARGO_BIN_EXE_skiff-proxy"),
            "--cleanup",
            "--kubeconfig",
            &kc,
            "--node-name",
            "node-a",
        ])?;
        assert!(
            run(&[
                "ip",
                "netns",
                "exec",
                &node,
                "nft",
                "list",
                "table",
                "ip",
                "skiff-proxy"
            ])
            .is_err()
        );
        assert!(run(&["ip", "-n", &node, "link", "show", "dev", "skiff-dns0"]).is_err());
        Ok(())
    })
    .await??;
    drop(cp);
    Ok(())
}
