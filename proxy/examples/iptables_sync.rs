//! The iptables data plane at scale, in a network namespace this run creates and removes
//! (root): a full sync of N Services × E endpoints, a one-Service endpoint change and one
//! Service added, as wall and CPU time (this process and its iptables-restore children).
//! `cargo run -p skiff-proxy --example iptables_sync -- [services] [endpoints] [repeats]`.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::iptables::{Existing, Iptables, IptablesConfig};
use skiff_proxy::model::{
    Endpoint, Protocol, ProxyState, ServicePort, ServicePortName, changed_service_ports,
};

/// The namespace the run programs, removed on drop even when a step fails.
struct Netns(String);

impl Netns {
    fn create() -> Result<Netns> {
        let name = format!("skiff-ipt-bench-{}", std::process::id());
        if !Command::new("ip")
            .args(["netns", "add", &name])
            .status()?
            .success()
        {
            bail!("ip netns add {name} failed (this needs root)");
        }
        Ok(Netns(name))
    }

    /// The prefix that runs a program in the namespace; nsenter only switches the
    /// namespace, so the time measured is the program's own.
    fn prefix(&self) -> [String; 2] {
        ["nsenter".into(), format!("--net=/run/netns/{}", self.0)]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn name(i: usize) -> ServicePortName {
    ServicePortName {
        namespace: format!("ns{}", i % 50),
        name: format!("svc{i}"),
        port: "http".into(),
        protocol: Protocol::Tcp,
    }
}

fn service(i: usize, endpoints: usize, generation: usize) -> (ServicePort, Vec<Endpoint>) {
    let port = ServicePort {
        cluster_ips: vec![Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 1)) + i as u32).into()],
        port: 80,
        node_port: Some(30000 + (i % 2000) as u16),
        external_ips: vec![],
        load_balancer_ips: vec![],
        affinity: None,
        external_local: false,
        internal_local: false,
    };
    let eps = (0..endpoints)
        .map(|e| Endpoint {
            ip: Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 128, 0, 0))
                    + (i * 8 + e) as u32
                    + generation as u32 * 7,
            )
            .into(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
        })
        .collect();
    (port, eps)
}

fn cpu_used() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes only into the struct it is given.
        if unsafe { libc::getrusage(who, &mut usage) } == 0 {
            for tv in [usage.ru_utime, usage.ru_stime] {
                total += Duration::from_secs(tv.tv_sec as u64)
                    + Duration::from_micros(tv.tv_usec as u64);
            }
        }
    }
    total
}

#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} ms wall, {:.1} ms CPU",
            self.wall.as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e3
        )
    }
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<(T, Took)> {
    let (wall, cpu) = (Instant::now(), cpu_used());
    let value = f.await?;
    Ok((
        value,
        Took {
            wall: wall.elapsed(),
            cpu: cpu_used().saturating_sub(cpu),
        },
    ))
}

fn median(mut v: Vec<Took>) -> Took {
    v.sort_by_key(|t| t.wall);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let endpoints: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let repeats: usize = args.next().map_or(Ok(9), |a| a.parse())?;
    let ns = Netns::create()?;
    let prefix = ns.prefix();
    let cfg = IptablesConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().map_err(anyhow::Error::msg)?),
        node_port_addresses: vec!["192.168.1.10".parse()?],
        ..IptablesConfig::default()
    }
    .with_command_prefix(&[prefix[0].as_str(), prefix[1].as_str()]);
    let mut dp = Iptables::new(cfg);
    let mut current = ProxyState::default();
    for i in 0..services {
        current.services.insert(name(i), service(i, endpoints, 0));
    }
    let all = current.services.keys().cloned().collect();
    let (bytes, plan) =
        timed(async { Ok(dp.plan(&current, &all, &Existing::default()).text.len()) }).await?;
    let (stats, full) = timed(async { Ok(dp.sync(&current, &all).await?) }).await?;
    ensure!(stats.full);

    let mut changes = Vec::new();
    for r in 0..repeats {
        let i = (r * 7919) % services;
        let mut next = current.clone();
        next.services.insert(name(i), service(i, endpoints, r + 1));
        let changed = changed_service_ports(&current, &next);
        let (stats, took) = timed(async { Ok(dp.sync(&next, &changed).await?) }).await?;
        ensure!(!stats.full, "a one-Service change was a full sync");
        changes.push(took);
        current = next;
    }
    let mut adds = Vec::new();
    for r in 0..repeats {
        let i = services + r;
        let mut next = current.clone();
        next.services.insert(name(i), service(i, endpoints, 0));
        let changed = changed_service_ports(&current, &next);
        let (_, took) = timed(async { Ok(dp.sync(&next, &changed).await?) }).await?;
        adds.push(took);
        current = next;
    }
    dp.cleanup().await?;

    println!(
        "iptables data plane, {services} Services × {endpoints} endpoints (NodePorts), {} rules",
        stats.rules
    );
    println!("  plan (full, {bytes} bytes): {plan}");
    println!("  full sync:                {full}");
    println!(
        "  one Service's endpoints:  {} (median of {repeats})",
        median(changes)
    );
    println!(
        "  one Service added:        {} (median of {repeats})",
        median(adds)
    );
    Ok(())
}
