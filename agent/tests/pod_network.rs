//! The pod network across nodes on the real kernel: two "nodes" (network namespaces joined
//! by a veth), each with a "pod" namespace behind a bridge on its pod range. The agent's
//! planner and applier program both nodes from Node objects (no control plane), and a pod
//! on one node reaches a pod on the other, keeping its address, over VXLAN and host-gw.
//! Everything lives in namespaces the test makes and removes.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use skiff_agent::network::{self, Mode, NodeNet, ROUTE_PROTOCOL, VXLAN_DEVICE, sync};

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread inside netns `name`: sockets and child processes live there.
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let ns = File::open(&path).unwrap();
        // SAFETY: setns on this thread only, with an fd we own.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two nodes, `a` (198.18.77.1, pods 10.244.1.0/24) and `b` (198.18.77.2, pods
/// 10.244.2.0/24), each with one pod (.2 of its range).
struct Lab {
    names: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        let id = format!(
            "skpn{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let lab = Lab {
            names: ["a", "b", "pa", "pb"]
                .iter()
                .map(|s| format!("{id}{s}"))
                .collect(),
        };
        for n in &lab.names {
            sh(&["ip", "netns", "add", n]);
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        let (a, b) = (lab.node("a"), lab.node("b"));
        sh(&[
            "ip", "-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b,
        ]);
        for (n, ip, i) in [(&a, "198.18.77.1/24", 1), (&b, "198.18.77.2/24", 2)] {
            sh(&["ip", "-n", n, "addr", "add", ip, "dev", "eth0"]);
            sh(&["ip", "-n", n, "link", "set", "eth0", "up"]);
            let pod = lab.pod(if i == 1 { "a" } else { "b" });
            sh(&["ip", "-n", n, "link", "add", "br0", "type", "bridge"]);
            sh(&[
                "ip",
                "-n",
                n,
                "addr",
                "add",
                &format!("10.244.{i}.1/24"),
                "dev",
                "br0",
            ]);
            sh(&["ip", "-n", n, "link", "set", "br0", "up"]);
            sh(&[
                "ip", "-n", n, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0",
                "netns", &pod,
            ]);
            sh(&["ip", "-n", n, "link", "set", "vpod", "master", "br0", "up"]);
            sh(&[
                "ip",
                "-n",
                &pod,
                "addr",
                "add",
                &format!("10.244.{i}.2/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &pod, "link", "set", "eth0", "up"]);
            sh(&[
                "ip",
                "-n",
                &pod,
                "route",
                "add",
                "default",
                "via",
                &format!("10.244.{i}.1"),
            ]);
        }
        lab
    }

    fn node(&self, n: &str) -> String {
        self.names[if n == "a" { 0 } else { 1 }].clone()
    }

    fn pod(&self, n: &str) -> String {
        self.names[if n == "a" { 2 } else { 3 }].clone()
    }

    /// `ip` in node `n`'s namespace.
    fn ip(&self, n: &str, args: &[&str]) -> String {
        let ns = self.node(n);
        let mut all = vec!["ip", "-n", &ns];
        all.extend_from_slice(args);
        sh(&all)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes every link in it.
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn node(name: &str, cidr: &str, ip: &str, mac: Option<&str>) -> NodeNet {
    let mut annotations = json!({});
    if let Some(mac) = mac {
        annotations[network::ANNOTATION_VXLAN_MAC] = json!(mac);
    }
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }))
    .unwrap();
    NodeNet::of(&n).unwrap()
}

/// Sets node `n` up in `mode`; returns its VTEP MAC (VXLAN).
fn setup(lab: &Lab, n: &str, mode: Mode) -> Option<String> {
    let (ip, cidr) = if n == "a" {
        ("198.18.77.1", "10.244.1.0/24")
    } else {
        ("198.18.77.2", "10.244.2.0/24")
    };
    in_netns(&lab.node(n), move || {
        sync::setup(mode, ip.parse().unwrap(), cidr.parse().unwrap()).unwrap()
    })
}

fn reconcile(lab: &Lab, me: &str, mode: Mode, nodes: &[NodeNet]) -> sync::Outcome {
    let (me, nodes) = (me.to_string(), nodes.to_vec());
    in_netns(&lab.node(&me), move || {
        sync::reconcile(mode, &me, &nodes).unwrap()
    })
}

/// Connects from pod a to pod b's echo server; returns the address pod b saw.
fn pod_to_pod(lab: &Lab) -> std::io::Result<String> {
    let to: SocketAddr = "10.244.2.2:8080".parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let pb = lab.pod("b");
    let server = std::thread::spawn(move || {
        in_netns(&pb, move || {
            let l = TcpListener::bind(to).unwrap();
            tx.send(()).unwrap();
            l.set_nonblocking(false).unwrap();
            if let Some(Ok(mut s)) = l.incoming().next() {
                let peer = s
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = s.write_all(peer.as_bytes());
            }
        })
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let got = in_netns(&lab.pod("a"), move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf)
    });
    if got.is_err() {
        // Unblock the listener so its thread ends.
        let pb = lab.pod("b");
        in_netns(&pb, move || {
            let _ = TcpStream::connect_timeout(&to, Duration::from_millis(200));
        });
    }
    server.join().unwrap();
    got
}

#[test]
fn vxlan_carries_pod_traffic_between_nodes_and_forgets_nodes_that_leave() {
    let lab = Lab::new();
    let mac_a = setup(&lab, "a", Mode::Vxlan).unwrap();
    let mac_b = setup(&lab, "b", Mode::Vxlan).unwrap();
    // A restarted agent keeps the device it finds as wanted.
    let ifindex = |lab: &Lab| {
        let l = lab.ip("a", &["-j", "link", "show", "dev", VXLAN_DEVICE]);
        serde_json::from_str::<serde_json::Value>(&l).unwrap()[0]["ifindex"].clone()
    };
    let before = ifindex(&lab);
    assert_eq!(setup(&lab, "a", Mode::Vxlan).unwrap(), mac_a);
    assert_eq!(ifindex(&lab), before, "the device was made again");
    let a = node("a", "10.244.1.0/24", "198.18.77.1", Some(&mac_a));
    let b = node("b", "10.244.2.0/24", "198.18.77.2", Some(&mac_b));
    let nodes = [a.clone(), b.clone()];
    for me in ["a", "b"] {
        let o = reconcile(&lab, me, Mode::Vxlan, &nodes);
        assert!(o.failures.is_empty(), "{:?}", o.failures);
        assert!(o.skipped.is_empty(), "{:?}", o.skipped);
        assert_eq!(o.changes.add_routes.len(), 1);
    }

    // The device as wanted: VNI, port, no learning, MTU 50 below the veth's, the VTEP
    // address.
    let link = lab.ip("a", &["-d", "-j", "link", "show", "dev", VXLAN_DEVICE]);
    let link: serde_json::Value = serde_json::from_str(&link).unwrap();
    let data = &link[0]["linkinfo"]["info_data"];
    assert_eq!(data["id"], 1);
    assert_eq!(data["port"], 8472);
    assert_eq!(data["learning"], false);
    assert_eq!(data["local"], "198.18.77.1");
    assert_eq!(link[0]["mtu"], 1450);
    assert!(
        lab.ip("a", &["-4", "addr", "show", "dev", VXLAN_DEVICE])
            .contains("10.244.1.0/32")
    );
    let routes = lab.ip(
        "a",
        &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()],
    );
    assert!(
        routes.contains("10.244.2.0/24 via 10.244.2.0 dev skiff.1") && routes.contains("onlink"),
        "{routes}"
    );
    let neigh = lab.ip("a", &["neigh", "show", "dev", VXLAN_DEVICE]);
    assert!(
        neigh.contains(&format!("10.244.2.0 lladdr {mac_b} PERMANENT")),
        "{neigh}"
    );
    let fdb = sh(&[
        "bridge",
        "-n",
        &lab.node("a"),
        "fdb",
        "show",
        "dev",
        VXLAN_DEVICE,
    ]);
    assert!(fdb.contains(&format!("{mac_b} dst 198.18.77.2")), "{fdb}");

    // A pod on a reaches a pod on b, which sees the pod's own address.
    assert_eq!(pod_to_pod(&lab).unwrap(), "10.244.1.2");

    // Again: nothing to do.
    assert!(reconcile(&lab, "a", Mode::Vxlan, &nodes).changes.is_empty());

    // b leaves: a forgets its route, neighbour and forwarding entry.
    let o = reconcile(&lab, "a", Mode::Vxlan, std::slice::from_ref(&a));
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert!(
        lab.ip(
            "a",
            &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()]
        )
        .trim()
        .is_empty()
    );
    assert!(
        !lab.ip("a", &["neigh", "show", "dev", VXLAN_DEVICE])
            .contains("10.244.2.0")
    );
    let fdb = sh(&[
        "bridge",
        "-n",
        &lab.node("a"),
        "fdb",
        "show",
        "dev",
        VXLAN_DEVICE,
    ]);
    assert!(!fdb.contains(&mac_b), "{fdb}");
    assert!(pod_to_pod(&lab).is_err());

    // Down removes the device and the routes.
    reconcile(&lab, "a", Mode::Vxlan, &nodes);
    let left = in_netns(&lab.node("a"), network::down);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        lab.ip(
            "a",
            &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()]
        )
        .trim()
        .is_empty()
    );
    assert!(!lab.ip("a", &["link", "show"]).contains(VXLAN_DEVICE));
}

#[test]
fn host_gw_routes_via_nodes_on_the_link_and_refuses_others() {
    let lab = Lab::new();
    assert_eq!(setup(&lab, "a", Mode::HostGw), None);
    assert_eq!(setup(&lab, "b", Mode::HostGw), None);
    let a = node("a", "10.244.1.0/24", "198.18.77.1", None);
    let b = node("b", "10.244.2.0/24", "198.18.77.2", None);
    // A node this one shares no link with.
    let far = node("far", "10.244.9.0/24", "192.0.2.99", None);
    let nodes = [a.clone(), b.clone(), far];
    let o = reconcile(&lab, "a", Mode::HostGw, &nodes);
    assert_eq!(o.failures.len(), 1, "{:?}", o.failures);
    let f = &o.failures[0];
    let route = f.route.as_ref().unwrap();
    assert_eq!(route.dst.to_string(), "10.244.9.0/24");
    let msg = network::hostgw::explain("far", route, &f.error);
    assert!(
        msg.contains("not on a link of this node"),
        "{msg} ({})",
        f.error
    );
    let o = reconcile(&lab, "b", Mode::HostGw, &nodes[..2]);
    assert!(o.failures.is_empty(), "{:?}", o.failures);

    let routes = lab.ip(
        "a",
        &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()],
    );
    assert!(
        routes.contains("10.244.2.0/24 via 198.18.77.2 dev eth0"),
        "{routes}"
    );
    assert_eq!(pod_to_pod(&lab).unwrap(), "10.244.1.2");

    // b moves to another address on the link: the route follows.
    lab.ip("b", &["addr", "add", "198.18.77.3/24", "dev", "eth0"]);
    let b2 = node("b", "10.244.2.0/24", "198.18.77.3", None);
    let o = reconcile(&lab, "a", Mode::HostGw, &[a.clone(), b2]);
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    let routes = lab.ip(
        "a",
        &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()],
    );
    assert!(routes.contains("10.244.2.0/24 via 198.18.77.3"), "{routes}");
    assert_eq!(pod_to_pod(&lab).unwrap(), "10.244.1.2");

    // b leaves.
    reconcile(&lab, "a", Mode::HostGw, std::slice::from_ref(&a));
    assert!(
        lab.ip(
            "a",
            &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()]
        )
        .trim()
        .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_a_range_waits_for_the_control_planes() {
    let bin = skiff_tests::workspace_bin("skiff-controlplane").unwrap();
    let cp = skiff_tests::ControlPlane::start(&bin, &["--cluster-cidr", "10.251.0.0/16"]).unwrap();
    let c = kube_client(&cp.kubeconfig()).await;
    // The node registers after the agent began waiting.
    let waiting = tokio::spawn(sync::wait_for_pod_cidr(
        c.clone(),
        "wait-1",
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: wait-1\n",
    );
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(got.to_string(), "10.251.0.0/24");

    // Without node IPAM the wait ends, saying why.
    let off = skiff_tests::ControlPlane::start(&bin, &["--allocate-node-cidrs=false"]).unwrap();
    off.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: wait-2\n",
    );
    let err = sync::wait_for_pod_cidr(
        kube_client(&off.kubeconfig()).await,
        "wait-2",
        Duration::from_secs(2),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no spec.podCIDR") && err.contains("--allocate-node-cidrs"),
        "{err}"
    );
}

/// Runs `f` to completion on a runtime whose threads all live in netns `name`.
fn block_in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    in_netns(name, move || {
        // Worker and blocking threads are made from this thread, so they share its netns.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

fn eventually_true(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agents_follow_the_nodes_through_the_api() {
    let lab = Lab::new();
    // The control plane runs in node a's namespace on a's address, so both nodes reach it.
    let bin = skiff_tests::workspace_bin("skiff-controlplane").unwrap();
    let cp = in_netns(&lab.node("a"), move || {
        skiff_tests::ControlPlane::start(&bin, &["--bind-address", "198.18.77.1"]).unwrap()
    });
    let kubeconfig = cp.kubeconfig();

    // Both Nodes register with their ranges (as `--pod-cidr` makes them) and addresses.
    let kc = kubeconfig.clone();
    let a_ns = lab.node("a");
    block_in_netns(&a_ns, move || {
        Box::pin(async move {
            let api: kube::Api<Node> = kube::Api::all(kube_client(&kc).await);
            for (name, cidr, ip) in [
                ("a", "10.244.1.0/24", "198.18.77.1"),
                ("b", "10.244.2.0/24", "198.18.77.2"),
            ] {
                let n: Node = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                }))
                .unwrap();
                api.create(&Default::default(), &n).await.unwrap();
                let status =
                    json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
                api.patch_status(name, &Default::default(), &kube::api::Patch::Merge(&status))
                    .await
                    .unwrap();
            }
        })
    });

    // An agent's pod network loop per node, each in its node's namespace.
    let mut stops = Vec::new();
    let mut loops = Vec::new();
    for (n, ip, cidr) in [
        ("a", "198.18.77.1", "10.244.1.0/24"),
        ("b", "198.18.77.2", "10.244.2.0/24"),
    ] {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        let (kc, ns) = (kubeconfig.clone(), lab.node(n));
        loops.push(std::thread::spawn(move || {
            block_in_netns(&ns, move || {
                Box::pin(async move {
                    let pn = network::PodNetwork {
                        mode: Mode::Vxlan,
                        node_name: n.into(),
                        node_ip: ip.parse().unwrap(),
                        pod_cidr: cidr.parse().unwrap(),
                        resync: Duration::from_secs(2),
                    };
                    let task = pn.start(kube_client(&kc).await).await.unwrap();
                    let _ = stopped.await;
                    task.abort();
                })
            })
        }));
    }

    // Each learns the other from its Node and its annotations; pods reach each other.
    eventually_true("routes on both nodes", || {
        ["a", "b"].iter().all(|n| {
            lab.ip(n, &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()])
                .contains("dev skiff.1")
        })
    });
    assert_eq!(pod_to_pod(&lab).unwrap(), "10.244.1.2");

    // Someone removes a's route: the resync puts it back.
    lab.ip("a", &["route", "del", "10.244.2.0/24"]);
    eventually_true("the route put back", || {
        lab.ip(
            "a",
            &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()],
        )
        .contains("10.244.2.0/24")
    });

    // Node b is deleted: a forgets it.
    let kc = kubeconfig.clone();
    block_in_netns(&a_ns, move || {
        Box::pin(async move {
            let api: kube::Api<Node> = kube::Api::all(kube_client(&kc).await);
            api.delete("b", &Default::default()).await.unwrap();
        })
    });
    eventually_true("b's route removed", || {
        lab.ip(
            "a",
            &["route", "show", "proto", &ROUTE_PROTOCOL.to_string()],
        )
        .trim()
        .is_empty()
    });
    assert!(
        !lab.ip("a", &["neigh", "show", "dev", VXLAN_DEVICE])
            .contains("10.244.2.0")
    );

    for s in stops {
        let _ = s.send(());
    }
    for l in loops {
        l.join().unwrap();
    }
    drop(cp);
}

async fn kube_client(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// A real `skiff-agent` run inside a node's network namespace (started from a thread in it:
/// `ip netns exec` would also remount /sys, hiding the cgroup tree), with its own
/// containerd, state, cgroup tree and default network. On drop it is killed and
/// `--down` removes everything it made.
struct NetnsAgent {
    netns: String,
    dir: tempfile::TempDir,
    args: Vec<String>,
    proc: Option<skiff_tests::Proc>,
}

impl NetnsAgent {
    fn start(netns: &str, name: &str, node_ip: &str, kubeconfig: &std::path::Path) -> NetnsAgent {
        let dir = tempfile::Builder::new()
            .prefix("skiff-pn-")
            .tempdir()
            .unwrap();
        std::fs::copy(kubeconfig, dir.path().join("kubeconfig")).unwrap();
        let bin = skiff_tests::workspace_bin("skiff-agent").unwrap();
        let plugins = skiff_tests::workspace_bin("skiff-bridge").unwrap();
        let plugins = plugins.parent().unwrap().display().to_string();
        let args: Vec<String> = vec![
            bin.display().to_string(),
            "--kubeconfig".into(),
            dir.path().join("kubeconfig").display().to_string(),
            "--node-name".into(),
            name.into(),
            "--root-dir".into(),
            dir.path().join("root").display().to_string(),
            "--cni-bin-dir".into(),
            format!("{plugins},/usr/lib/cni"),
            "--pod-logs-dir".into(),
            dir.path().join("logs").display().to_string(),
            "--cgroup-root".into(),
            format!("/{netns}/kubepods"),
            "--node-ip".into(),
            node_ip.into(),
            "--port".into(),
            "0".into(),
            "--pod-network".into(),
            "vxlan".into(),
            "--cluster-cidr".into(),
            "10.77.0.0/16".into(),
        ];
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]).env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,skiff_agent=info".into()),
        );
        let proc = in_netns(netns, move || {
            skiff_tests::spawn_until_ready(cmd, "skiff-agent", Duration::from_secs(90)).unwrap()
        });
        NetnsAgent {
            netns: netns.into(),
            dir,
            args,
            proc: Some(proc),
        }
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("root/containerd/containerd.sock")
    }

    /// Everything the pods on this node wrote.
    fn logs(&self) -> String {
        fn walk(p: &std::path::Path, out: &mut String) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(t) = std::fs::read_to_string(&path) {
                    out.push_str(&t);
                }
            }
        }
        let mut out = String::new();
        walk(&self.dir.path().join("logs"), &mut out);
        out
    }
}

impl Drop for NetnsAgent {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
        let args = self.args.clone();
        let out = in_netns(&self.netns, move || {
            Command::new(&args[0])
                .args(&args[1..])
                .arg("--down")
                .output()
        });
        if let Ok(o) = out
            && !o.status.success()
        {
            eprintln!(
                "{}: --down: {}",
                self.netns,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // --down removes the agent's cgroup tree; its parent is this test's.
        for c in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(c.path().join(&self.netns));
        }
    }
}

fn pod_manifest(name: &str, node: &str, command: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": "skiff.test/busybox:pn",
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", command],
            }],
        },
    }))
    .unwrap()
}

/// Pod `name`'s IP once it runs.
fn running_pod_ip(ns: &str, kubeconfig: &std::path::Path, name: &str) -> String {
    let (kc, name) = (kubeconfig.to_path_buf(), name.to_string());
    block_in_netns(ns, move || {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(kube_client(&kc).await, "default");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(s) = api.get(&name).await.unwrap().status
                    && s.phase.as_deref() == Some("Running")
                    && let Some(ip) = s.pod_ip
                {
                    return ip;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "pod {name} never ran"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    })
}

#[test]
fn two_agents_with_node_ipam_and_vxlan_connect_their_pods() {
    let lab = Lab::new();
    let a_ns = lab.node("a");
    let bin = skiff_tests::workspace_bin("skiff-controlplane").unwrap();
    let cp = in_netns(&a_ns, move || {
        skiff_tests::ControlPlane::start(
            &bin,
            &[
                "--bind-address",
                "198.18.77.1",
                "--cluster-cidr",
                "10.77.0.0/16",
            ],
        )
        .unwrap()
    });
    let kubeconfig = cp.kubeconfig();
    // No --pod-cidr: each agent waits for the range node IPAM gives its Node.
    let agents = [
        NetnsAgent::start(&lab.node("a"), "pn-a", "198.18.77.1", &kubeconfig),
        NetnsAgent::start(&lab.node("b"), "pn-b", "198.18.77.2", &kubeconfig),
    ];
    let skiff = skiff_tests::workspace_bin("skiff").unwrap();
    for a in &agents {
        sh(&[
            &skiff.display().to_string(),
            "image",
            "busybox",
            "--name",
            "skiff.test/busybox:pn",
            "--containerd-socket",
            &a.socket().display().to_string(),
        ]);
        let conf =
            std::fs::read_to_string(a.dir.path().join("root/cni/net.d/10-skiff.conflist")).unwrap();
        assert!(
            conf.contains("10.77.0.0/16") && conf.contains("\"mtu\": 1450"),
            "{conf}"
        );
    }

    // The server on b answers every connection with its connections as it sees them.
    let kc = kubeconfig.clone();
    block_in_netns(&a_ns, move || {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(kube_client(&kc).await, "default");
            let server = pod_manifest("server", "pn-b", "exec nc -ll -p 8080 -e netstat -tn");
            api.create(&Default::default(), &server).await.unwrap();
        })
    });
    let server_ip = running_pod_ip(&a_ns, &kubeconfig, "server");
    let kc = kubeconfig.clone();
    let target = server_ip.clone();
    block_in_netns(&a_ns, move || {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(kube_client(&kc).await, "default");
            let client = pod_manifest(
                "client",
                "pn-a",
                &format!("while true; do nc -w 2 {target} 8080 </dev/null; sleep 1; done"),
            );
            api.create(&Default::default(), &client).await.unwrap();
        })
    });
    let client_ip = running_pod_ip(&a_ns, &kubeconfig, "client");
    let (ra, rb) = (
        &client_ip[..client_ip.rfind('.').unwrap()],
        &server_ip[..server_ip.rfind('.').unwrap()],
    );
    assert_ne!(ra, rb, "both pods in one range: {client_ip} {server_ip}");

    // The client reaches the server on the other node, which sees the client's own address.
    eventually_true("the client's address in the server's answer", || {
        agents[0].logs().contains(&format!("{server_ip}:8080"))
            && agents[0].logs().contains(&format!("{client_ip}:"))
    });
    drop(agents);
    drop(cp);
}
