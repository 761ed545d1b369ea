//! `skiff bench proxy` (root): the nftables data plane at 1,000 and 10,000 Services × 5
//! endpoints — full sync, one Service's endpoints changed, one Service added — against
//! loading the equivalent kube-proxy-shaped ruleset (one `numgen … vmap {}` and one chain
//! per endpoint per Service) with raw `nft -f` in the same run. Everything happens in a
//! network namespace the run creates and removes.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use skiff_proxy::dataplane::Dataplane;
use skiff_proxy::dataplane::nftables::{Nftables, NftablesConfig};
use skiff_proxy::model::{
    Endpoint, Protocol, ProxyState, ServicePort, ServicePortName, changed_service_ports,
};
use tokio::io::AsyncWriteExt;

const TABLE: &str = "skiff-bench";
const REFERENCE_TABLE: &str = "kube-proxy-ref";
/// The targets at 10,000 Services × 5 endpoints.
const TARGET_FULL_MS: u64 = 2000;
const TARGET_CHANGE_MS: u64 = 30;

/// The namespace the run programs, removed on drop even when a step fails.
struct Netns(String);

impl Netns {
    fn create() -> Result<Netns> {
        let name = format!("skiff-bench-proxy-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !status.success() {
            bail!("ip netns add {name} failed (skiff bench proxy needs root)");
        }
        Ok(Netns(name))
    }

    /// `nft` inside the namespace; nsenter only switches the namespace, so the timing is
    /// nft's own.
    fn nft(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--net=/run/netns/{}", self.0),
            "nft".into(),
        ]
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

fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i as u32 + 1)
}

fn endpoint_ip(i: usize, e: usize, generation: usize) -> Ipv4Addr {
    let k = (i * 8 + e) as u32 + (generation as u32) * 7;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + k)
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
        cluster_ips: vec![cluster_ip(i).into()],
        port: 80,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        affinity: None,
        external_local: false,
        internal_local: false,
    };
    let eps = (0..endpoints)
        .map(|e| Endpoint {
            ip: endpoint_ip(i, e, generation).into(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
        })
        .collect();
    (port, eps)
}

fn state(services: usize, endpoints: usize) -> ProxyState {
    let mut s = ProxyState::default();
    for i in 0..services {
        s.services.insert(name(i), service(i, endpoints, 0));
    }
    s
}

/// A service's kube-proxy-style chains: service chain with an anonymous numgen vmap, one
/// chain per endpoint (hairpin mark + DNAT).
fn reference_service(out: &mut String, i: usize, endpoints: &[Endpoint], create: bool) {
    let t = format!("ip {REFERENCE_TABLE}");
    let svc = format!("service-{i}-ns/svc/tcp/http");
    let ep_chain = |e: &Endpoint| format!("endpoint-{i}-{}", e.ip);
    if create {
        let _ = writeln!(out, "add chain {t} {svc}");
    } else {
        let _ = writeln!(out, "flush chain {t} {svc}");
    }
    for e in endpoints {
        let c = ep_chain(e);
        let _ = writeln!(out, "add chain {t} {c}");
        let _ = writeln!(out, "flush chain {t} {c}");
        let _ = writeln!(
            out,
            "add rule {t} {c} ip saddr {} jump mark-for-masquerade",
            e.ip
        );
        let _ = writeln!(
            out,
            "add rule {t} {c} meta l4proto tcp dnat to {}:{}",
            e.ip, e.port
        );
    }
    let _ = writeln!(
        out,
        "add rule {t} {svc} ip daddr {} tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        cluster_ip(i)
    );
    let arms: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(k, e)| format!("{k} : goto {}", ep_chain(e)))
        .collect();
    let _ = writeln!(
        out,
        "add rule {t} {svc} numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        arms.join(", ")
    );
}

fn reference_full(state: &ProxyState) -> String {
    let t = format!("ip {REFERENCE_TABLE}");
    let mut out = String::new();
    let _ = writeln!(out, "add table {t}");
    let _ = writeln!(
        out,
        "add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}"
    );
    let _ = writeln!(
        out,
        "add chain {t} nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"
    );
    let _ = writeln!(out, "add chain {t} mark-for-masquerade");
    let _ = writeln!(
        out,
        "add rule {t} mark-for-masquerade meta mark set meta mark | 0x4000"
    );
    let _ = writeln!(out, "add chain {t} services");
    let _ = writeln!(out, "add rule {t} nat-prerouting jump services");
    let _ = writeln!(
        out,
        "add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips"
    );
    let mut elements = Vec::new();
    for (i, (_, (_, eps))) in state.services.iter().enumerate() {
        reference_service(&mut out, i, eps, true);
        elements.push(format!(
            "{} . tcp . 80 : goto service-{i}-ns/svc/tcp/http",
            cluster_ip(i)
        ));
    }
    let _ = writeln!(
        out,
        "add element {t} service-ips {{ {} }}",
        elements.join(", ")
    );
    out
}

async fn nft_f(command: &[String], text: &str) -> Result<()> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    let mut stdin = child.stdin.take().context("nft stdin")?;
    let write = async move {
        let r = stdin.write_all(text.as_bytes()).await;
        drop(stdin);
        r
    };
    let (w, out) = tokio::join!(write, child.wait_with_output());
    let out = out?;
    if !out.status.success() {
        bail!(
            "nft -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    w?;
    Ok(())
}

/// CPU time used so far by this process (user + system) and by its waited-for children
/// (nft, nsenter), user and system apart: nft commits run in nft's system calls, so the
/// children's system time is where the kernel's work (validating and committing the
/// transaction) shows. On a loaded machine CPU is the steadier figure; wall time includes
/// waiting for a core.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cpu {
    own: Duration,
    child_user: Duration,
    child_sys: Duration,
}

impl Cpu {
    fn now() -> Cpu {
        let usage = |who| {
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: getrusage writes only into the struct it is given.
            if unsafe { libc::getrusage(who, &mut usage) } != 0 {
                return (Duration::ZERO, Duration::ZERO);
            }
            let d = |tv: libc::timeval| {
                Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
            };
            (d(usage.ru_utime), d(usage.ru_stime))
        };
        let (user, sys) = usage(libc::RUSAGE_SELF);
        let (child_user, child_sys) = usage(libc::RUSAGE_CHILDREN);
        Cpu {
            own: user + sys,
            child_user,
            child_sys,
        }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            own: self.own.saturating_sub(earlier.own),
            child_user: self.child_user.saturating_sub(earlier.child_user),
            child_sys: self.child_sys.saturating_sub(earlier.child_sys),
        }
    }

    fn total(self) -> Duration {
        self.own + self.child_user + self.child_sys
    }
}

/// Wall and CPU time of one step.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Took {
    wall: Duration,
    cpu: Duration,
    parts: Cpu,
}

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1}/{:.1}",
            self.wall.as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e3
        )
    }
}

async fn timed<T>(step: impl std::future::Future<Output = Result<T>>) -> Result<(T, Took)> {
    let (wall, cpu) = (Instant::now(), Cpu::now());
    let out = step.await?;
    let parts = Cpu::now().since(cpu);
    Ok((
        out,
        Took {
            wall: wall.elapsed(),
            cpu: parts.total(),
            parts,
        },
    ))
}

fn median(mut v: Vec<Took>) -> Took {
    v.sort_by_key(|t| t.wall);
    v[v.len() / 2]
}

struct Row {
    services: usize,
    skiff_full: Took,
    plan: Took,
    skiff_change: Took,
    skiff_add: Took,
    ref_full: Took,
    ref_change: Took,
    rules: usize,
}

async fn one_scale(
    ns: &Netns,
    services: usize,
    endpoints: usize,
    repeats: usize,
    nat_shards: usize,
) -> Result<Row> {
    let mut cfg = NftablesConfig::new(TABLE);
    cfg.nat_shards = nat_shards;
    cfg.nft_command = ns.nft();
    cfg.cluster_cidr = Some("10.244.0.0/16".parse().map_err(anyhow::Error::msg)?);
    let mut dp = Nftables::new(cfg);
    let mut current = state(services, endpoints);

    let all = current.services.keys().cloned().collect();
    let ((), plan) = timed(async {
        std::hint::black_box(dp.plan(&current, &all));
        Ok(())
    })
    .await?;
    let (stats, skiff_full) = timed(async { Ok(dp.sync(&current, &all).await?) }).await?;

    // One Service's endpoints replaced (a rolling update of one Deployment).
    let mut changes = Vec::new();
    for r in 0..repeats {
        let i = (r * 7919) % services;
        let mut next = current.clone();
        next.services.insert(name(i), service(i, endpoints, r + 1));
        let changed = changed_service_ports(&current, &next);
        let (stats, took) = timed(async { Ok(dp.sync(&next, &changed).await?) }).await?;
        changes.push(took);
        anyhow::ensure!(!stats.full, "a one-Service change was a full sync");
        current = next;
    }
    // One Service added.
    let mut adds = Vec::new();
    for r in 0..repeats {
        let i = services + r;
        let mut next = current.clone();
        next.services.insert(name(i), service(i, endpoints, 0));
        let changed = changed_service_ports(&current, &next);
        let ((), took) = timed(async {
            dp.sync(&next, &changed).await?;
            Ok(())
        })
        .await?;
        adds.push(took);
        current = next;
    }
    dp.cleanup().await?;

    // The reference: the same Services shaped as kube-proxy's nftables mode shapes them.
    let reference = state(services, endpoints);
    let text = reference_full(&reference);
    let ((), ref_full) = timed(nft_f(&ns.nft(), &text)).await?;
    let mut ref_changes = Vec::new();
    for r in 0..repeats {
        let i = (r * 7919) % services;
        let (_, eps) = service(i, endpoints, r + 1);
        let mut text = String::new();
        reference_service(&mut text, i, &eps, false);
        ref_changes.push(timed(nft_f(&ns.nft(), &text)).await?.1);
    }
    nft_f(&ns.nft(), &format!("delete table ip {REFERENCE_TABLE}\n")).await?;

    Ok(Row {
        services,
        skiff_full,
        plan,
        skiff_change: median(changes),
        skiff_add: median(adds),
        ref_full,
        ref_change: median(ref_changes),
        rules: stats.rules,
    })
}

pub async fn run(
    scales: Vec<usize>,
    endpoints: usize,
    repeats: usize,
    nat_shards: usize,
) -> Result<()> {
    anyhow::ensure!(
        endpoints > 0 && repeats > 0,
        "--endpoints and --repeats must be > 0"
    );
    let ns = Netns::create()?;
    println!(
        "skiff bench proxy: nftables data plane, {endpoints} endpoints per Service, {nat_shards} NAT tables per family, median of {repeats} for changes"
    );
    println!(
        "{:>9} {:>7} | {:>15} {:>13} {:>15} {:>6} | {:>13} {:>13} {:>6} | {:>11}",
        "services",
        "rules",
        "full skiff",
        "plan",
        "full nft -f",
        "ratio",
        "1 svc skiff",
        "1 svc nft -f",
        "ratio",
        "add 1 svc"
    );
    let mut rows = Vec::new();
    for services in scales {
        let row = one_scale(&ns, services, endpoints, repeats, nat_shards).await?;
        let ratio = |a: Took, b: Took| b.wall.as_secs_f64() / a.wall.as_secs_f64().max(1e-9);
        println!(
            "{:>9} {:>7} | {:>15} {:>13} {:>15} {:>5.1}x | {:>13} {:>13} {:>5.1}x | {:>11}",
            row.services,
            row.rules,
            row.skiff_full.to_string(),
            row.plan.to_string(),
            row.ref_full.to_string(),
            ratio(row.skiff_full, row.ref_full),
            row.skiff_change.to_string(),
            row.ref_change.to_string(),
            ratio(row.skiff_change, row.ref_change),
            row.skiff_add.to_string(),
        );
        rows.push(row);
    }
    println!("times are wall/CPU in ms; CPU counts this process and nft, kernel work included");
    println!("plan = building the full-sync transaction text in skiff, part of full skiff");
    println!("ratio = wall time of nft -f of the kube-proxy-shaped ruleset / skiff's");
    println!();
    println!("where the CPU of a one-Service change goes (median run, ms):");
    println!(
        "{:>9} | {:>11} {:>11} {:>17} | {:>11} {:>17}",
        "services", "skiff", "nft (user)", "kernel (nft sys)", "ref nft", "ref kernel"
    );
    for row in &rows {
        let (s, r) = (row.skiff_change.parts, row.ref_change.parts);
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
        println!(
            "{:>9} | {:>11} {:>11} {:>17} | {:>11} {:>17}",
            row.services,
            ms(s.own),
            ms(s.child_user),
            ms(s.child_sys),
            ms(r.child_user),
            ms(r.child_sys)
        );
    }
    println!(
        "skiff = planning and writing the transaction in this process; nft (user) = nft parsing it and loading its cache;"
    );
    println!(
        "kernel = nft's system time: building the objects, re-validating the table from its hooks, committing"
    );
    println!(
        "(the kernel samples the user/system split at its clock tick: read the split over several runs, the sum is steadier)"
    );
    println!(
        "targets at 10,000 Services: full sync <= {TARGET_FULL_MS} ms, one-Service change <= {TARGET_CHANGE_MS} ms (wall, release build)"
    );
    if cfg!(debug_assertions) {
        println!("this is a debug build: skiff's own share is several times a release build's");
    }
    Ok(())
}
