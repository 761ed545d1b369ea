//! Throwaway network namespaces for kernel tests: a "node" routing between a client, two
//! backends and a host outside the cluster, and echo servers in the backends. Everything is
//! removed when the [`Topology`] is dropped, also when a test fails.

#![allow(dead_code)]

pub mod scenarios;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The port the backends' servers listen on (TCP and UDP).
pub const BACKEND_PORT: u16 = 8080;
pub const CLIENT_IP: &str = "10.244.1.2";
pub const BACKEND1_IP: &str = "10.244.2.2";
pub const BACKEND2_IP: &str = "10.244.3.2";
pub const OUTSIDE_IP: &str = "192.168.77.2";
/// The node's address on the outside link: where NodePorts are reached.
pub const NODE_IP: &str = "192.168.77.1";
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The same topology's IPv6 (ULA) addresses.
pub const CLIENT_IP6: &str = "fd00:244:1::2";
pub const BACKEND1_IP6: &str = "fd00:244:2::2";
pub const BACKEND2_IP6: &str = "fd00:244:3::2";
pub const OUTSIDE_IP6: &str = "fd00:77::2";
pub const NODE_IP6: &str = "fd00:77::1";
pub const CLUSTER_CIDR6: &str = "fd00:244::/32";
/// Both pod ranges, as `--cluster-cidr` takes them.
pub const CLUSTER_CIDRS: &str = "10.244.0.0/16,fd00:244::/32";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn run(args: &[&str]) -> Result<()> {
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
    Ok(())
}

/// Runs `f` on a thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> Result<T> {
        enter(&path)?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
}

fn enter(path: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {path}"))?;
    // setns affects only the calling thread, which is ours alone.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A TCP and a UDP server in one namespace; each answers every connection or datagram with
/// `"<name> <peer address>"`, so a test sees which backend answered and from whom it thought
/// the request came (masquerading).
struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, name: &str) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{ns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let mut threads = Vec::new();
        // The namespace has `bindv6only`, so the IPv6 sockets take IPv6 only and a client's
        // IPv4 address is never seen as `::ffff:…`.
        let kinds = [(false, false), (true, false), (false, true), (true, true)];
        for (udp, ipv6) in kinds {
            let (stop, path, name, ready) = (
                stop.clone(),
                path.clone(),
                name.to_string(),
                ready_tx.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let setup = || -> Result<Box<dyn FnMut() -> bool>> {
                    enter(&path)?;
                    let addr: SocketAddr = if ipv6 {
                        (std::net::Ipv6Addr::UNSPECIFIED, BACKEND_PORT).into()
                    } else {
                        ([0, 0, 0, 0], BACKEND_PORT).into()
                    };
                    if udp {
                        let socket = UdpSocket::bind(addr)?;
                        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
                        Ok(Box::new(move || {
                            let mut buf = [0u8; 512];
                            if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                                let reply = format!("{name} {}", peer.ip());
                                let _ = socket.send_to(reply.as_bytes(), peer);
                            }
                            true
                        }))
                    } else {
                        let listener = TcpListener::bind(addr)?;
                        listener.set_nonblocking(true)?;
                        Ok(Box::new(move || {
                            match listener.accept() {
                                Ok((mut stream, peer)) => {
                                    let reply = format!("{name} {}", peer.ip());
                                    let _ = stream.set_nonblocking(false);
                                    let _ = stream.write_all(reply.as_bytes());
                                }
                                Err(_) => std::thread::sleep(Duration::from_millis(5)),
                            }
                            true
                        }))
                    }
                };
                match setup() {
                    Ok(mut serve) => {
                        let _ = ready.send(Ok(()));
                        while !stop.load(Ordering::Relaxed) && serve() {}
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            }));
        }
        let server = Server { stop, threads };
        for _ in kinds {
            ready_rx
                .recv()
                .context("server thread died")?
                .context("starting a test server")?;
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// node ─┬─ client   (10.244.1.2, fd00:244:1::2, in the cluster CIDRs)
///       ├─ backend1 (10.244.2.2, fd00:244:2::2, server "backend1")
///       ├─ backend2 (10.244.3.2, fd00:244:3::2, server "backend2")
///       └─ outside  (192.168.77.2, fd00:77::2; the node is 192.168.77.1, fd00:77::1 there)
///
/// Every link has both families; the node's side is `…::1` / `….1`.
pub struct Topology {
    pub node: String,
    pub client: String,
    pub backend1: String,
    pub backend2: String,
    pub outside: String,
    created: Vec<String>,
    servers: Vec<Server>,
}

impl Topology {
    pub fn new() -> Result<Topology> {
        let id = format!(
            "skp{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut t = Topology {
            node: format!("{id}-node"),
            client: format!("{id}-client"),
            backend1: format!("{id}-b1"),
            backend2: format!("{id}-b2"),
            outside: format!("{id}-out"),
            created: Vec::new(),
            servers: Vec::new(),
        };
        // On error, Drop removes whatever was created so far.
        t.build()?;
        Ok(t)
    }

    /// A unique table name for this topology.
    pub fn table(&self) -> String {
        format!("{}-proxy", self.node)
    }

    /// The nft command that programs the node namespace.
    pub fn nft_command(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.node, "nft"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// `program` run in the node namespace.
    pub fn node_command(&self, program: &str) -> Vec<String> {
        ["ip", "netns", "exec", &self.node, program]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The conntrack command that works on the node namespace.
    pub fn conntrack_command(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.node, "conntrack"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn build(&mut self) -> Result<()> {
        let all = [
            self.node.clone(),
            self.client.clone(),
            self.backend1.clone(),
            self.backend2.clone(),
            self.outside.clone(),
        ];
        for ns in &all {
            run(&["ip", "netns", "add", ns])?;
            self.created.push(ns.clone());
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            // Links made from now on skip duplicate address detection for their
            // link-local addresses too: nothing waits for DAD.
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.bindv6only=1",
            ])?;
        }
        let node = self.node.clone();
        let links = [
            (
                &self.client,
                "c0",
                ["10.244.1.1/24", "fd00:244:1::1/64"],
                ["10.244.1.2/24", "fd00:244:1::2/64"],
                ["10.244.1.1", "fd00:244:1::1"],
            ),
            (
                &self.backend1,
                "b1",
                ["10.244.2.1/24", "fd00:244:2::1/64"],
                ["10.244.2.2/24", "fd00:244:2::2/64"],
                ["10.244.2.1", "fd00:244:2::1"],
            ),
            (
                &self.backend2,
                "b2",
                ["10.244.3.1/24", "fd00:244:3::1/64"],
                ["10.244.3.2/24", "fd00:244:3::2/64"],
                ["10.244.3.1", "fd00:244:3::1"],
            ),
            (
                &self.outside,
                "o0",
                ["192.168.77.1/24", "fd00:77::1/64"],
                ["192.168.77.2/24", "fd00:77::2/64"],
                ["192.168.77.1", "fd00:77::1"],
            ),
        ];
        for (peer, node_if, node_addrs, peer_addrs, gateways) in links {
            // Both ends are created straight in their namespaces: nothing touches the host's.
            run(&[
                "ip", "link", "add", "name", node_if, "netns", &node, "type", "veth", "peer",
                "name", "eth0", "netns", peer,
            ])?;
            for (node_addr, peer_addr) in node_addrs.into_iter().zip(peer_addrs) {
                // `nodad`: the addresses are usable at once, not after a second of DAD.
                run(&[
                    "ip", "-n", &node, "addr", "add", node_addr, "dev", node_if, "nodad",
                ])?;
                run(&[
                    "ip", "-n", peer, "addr", "add", peer_addr, "dev", "eth0", "nodad",
                ])?;
            }
            run(&["ip", "-n", &node, "link", "set", node_if, "up"])?;
            run(&["ip", "-n", peer, "link", "set", "eth0", "up"])?;
            for gateway in gateways {
                run(&["ip", "-n", peer, "route", "add", "default", "via", gateway])?;
            }
        }
        run(&[
            "ip",
            "netns",
            "exec",
            &node,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ])?;
        // The node routes the service range somewhere, as real nodes do through their
        // default route; without a route, packets to a ClusterIP without endpoints would be
        // dropped by routing before the forward hook could reject them.
        run(&[
            "ip",
            "-n",
            &node,
            "route",
            "add",
            "10.96.0.0/12",
            "via",
            OUTSIDE_IP,
        ])?;
        run(&[
            "ip",
            "-n",
            &node,
            "route",
            "add",
            "fd00:96::/112",
            "via",
            OUTSIDE_IP6,
        ])?;
        self.servers
            .push(Server::start(&self.backend1, "backend1")?);
        self.servers
            .push(Server::start(&self.backend2, "backend2")?);
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.servers.clear();
        // Deleting the node namespace also deletes the table programmed in it.
        for ns in self.created.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "del", &ns]) {
                eprintln!("cleanup: {e:#}");
            }
        }
    }
}

/// Connects over TCP from namespace `ns` and returns the server's answer.
pub fn tcp_request(ns: &str, addr: SocketAddr) -> Result<std::io::Result<String>> {
    in_netns(ns, move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
}

/// A UDP socket kept in namespace `ns` by its own thread: every `send` goes out from the
/// same address and port, so it is one conntrack flow.
pub struct UdpFlow {
    requests: std::sync::mpsc::Sender<std::sync::mpsc::Sender<std::io::Result<String>>>,
}

impl UdpFlow {
    pub fn open(ns: &str, addr: SocketAddr) -> Result<UdpFlow> {
        let path = format!("/run/netns/{ns}");
        let (tx, rx) =
            std::sync::mpsc::channel::<std::sync::mpsc::Sender<std::io::Result<String>>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        std::thread::spawn(move || {
            let setup = || -> Result<UdpSocket> {
                enter(&path)?;
                let socket = UdpSocket::bind(any_address(addr))?;
                socket.set_read_timeout(Some(Duration::from_secs(2)))?;
                Ok(socket)
            };
            let socket = match setup() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(reply) = rx.recv() {
                let answer = (|| {
                    socket.send_to(b"hello", addr)?;
                    let mut buf = [0u8; 512];
                    let (n, _) = socket.recv_from(&mut buf)?;
                    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                })();
                let _ = reply.send(answer);
            }
        });
        ready_rx.recv().context("UDP flow thread died")??;
        Ok(UdpFlow { requests: tx })
    }

    /// Sends one datagram on the flow and waits for the answer.
    pub fn send(&self) -> Result<std::io::Result<String>> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.requests.send(tx).context("UDP flow thread gone")?;
        rx.recv().context("UDP flow thread gone")
    }
}

/// Sends one UDP datagram from namespace `ns` and returns the answer.
pub fn udp_request(ns: &str, addr: SocketAddr) -> Result<std::io::Result<String>> {
    in_netns(ns, move || {
        let socket = UdpSocket::bind(any_address(addr))?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.send_to(b"hello", addr)?;
        let mut buf = [0u8; 512];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// The unspecified address and any port, of `to`'s family.
fn any_address(to: SocketAddr) -> SocketAddr {
    if to.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    }
}
