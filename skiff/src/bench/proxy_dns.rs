//! The cluster DNS part of `skiff bench proxy`: cached Service-name queries per second on
//! loopback and their latency, against dnsmasq answering the same names from a hosts file
//! with the same clients in the same run (when dnsmasq is installed; otherwise the target
//! stands in for the reference, and the output says so).

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use skiff_proxy::dns::bench::{
    BenchConfig, BenchReport, measure, measure_at, service_ip, service_name,
};

/// The target from the issue: cached Service-name queries per second on loopback.
const TARGET_QPS: f64 = 50_000.0;

/// A dnsmasq answering `names` from a hosts file on 127.0.0.1, stopped (by its PID) on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    fn start(services: usize) -> Result<Dnsmasq> {
        let dir = tempfile::tempdir()?;
        let hosts = dir.path().join("hosts");
        let mut file = std::fs::File::create(&hosts)?;
        for i in 0..services {
            writeln!(file, "{} {}", service_ip(i), service_name(i))?;
        }
        drop(file);
        // dnsmasq drops to an unprivileged user before it reads the hosts file.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&hosts, std::fs::Permissions::from_mode(0o644))?;
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--cache-size=10000",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dnsmasq")?;
        let dnsmasq = Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        dnsmasq.wait_ready()?;
        Ok(dnsmasq)
    }

    /// Asks for the first name until dnsmasq answers it.
    fn wait_ready(&self) -> Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let query = a_query(&service_name(0));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            socket.send_to(&query, self.addr)?;
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 12
                && u16::from_be_bytes([buf[6], buf[7]]) > 0
            {
                return Ok(());
            }
        }
        bail!("dnsmasq did not answer on {} within 5 s", self.addr)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain DNS A query (id 0, recursion desired) for `name`.
fn a_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn dnsmasq_installed() -> bool {
    Command::new("dnsmasq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn row(who: &str, r: &BenchReport) {
    println!(
        "{who:>22} | {:>10.0} | {:>9.1} | {:>9.1} | {:>9.1} | {:>6}",
        r.per_second,
        r.p50.as_secs_f64() * 1e6,
        r.p99.as_secs_f64() * 1e6,
        r.max.as_secs_f64() * 1e6,
        r.failed
    );
}

pub async fn run(services: usize, clients: usize, seconds: f64) -> Result<()> {
    let config = BenchConfig {
        services,
        clients,
        duration: Duration::from_secs_f64(seconds),
    };
    println!();
    println!(
        "cluster DNS: A queries for {services} Service names answered from memory, 127.0.0.1, {clients} clients with one query each in flight, {seconds} s"
    );
    println!(
        "{:>22} | {:>10} | {:>9} | {:>9} | {:>9} | {:>6}",
        "server", "queries/s", "p50 µs", "p99 µs", "max µs", "failed"
    );
    let skiff = measure(config.clone()).await.context("skiff DNS")?;
    row("skiff-proxy", &skiff);
    if dnsmasq_installed() {
        let reference = Dnsmasq::start(services)?;
        let r = measure_at(reference.addr, &config).await;
        drop(reference);
        row("dnsmasq (hosts file)", &r);
        println!(
            "ratio = skiff / dnsmasq queries/s: {:.2}x; target {TARGET_QPS:.0}/s: {}",
            skiff.per_second / r.per_second.max(1e-9),
            if skiff.per_second >= TARGET_QPS {
                "met"
            } else {
                "not met"
            }
        );
    } else {
        println!(
            "no reference resolver installed (scripts/install-deps.sh installs dnsmasq-base): the target {TARGET_QPS:.0}/s stands in; ratio to it {:.2}x",
            skiff.per_second / TARGET_QPS
        );
    }
    println!("clients run in this process and share the cores with the server being measured");
    Ok(())
}
