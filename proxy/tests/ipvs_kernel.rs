//! The parts of the IPVS backend that run on a kernel without IPVS: the dummy device, the
//! ipsets and iptables rules, cleanup, and the clear failure of a sync. Everything happens
//! in a network namespace this test creates. Needs root and the `ipset` tool; fails
//! without them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use skiff_proxy::dataplane::ipvs::{Entry, IpSet, Ipvs, IpvsConfig};
use skiff_proxy::dataplane::{Dataplane, Mode};
use skiff_proxy::model::{Endpoint, Protocol, ProxyState, ServicePort, ServicePortName};

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Result<Netns> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "skiff-ipvs-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name])?;
        let ns = Netns(name);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend(args);
        sh(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) -> Result<String> {
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

fn entries(list: &[(IpSet, &str)]) -> BTreeSet<Entry> {
    list.iter().map(|(s, e)| (*s, e.to_string())).collect()
}

/// Packets the REJECT rule of the filter chain has matched.
fn rejected(ns: &Netns) -> Result<u64> {
    let out = ns.exec(&[
        "iptables",
        "-w",
        "-t",
        "filter",
        "-L",
        "SKIFF-IPVS-FILTER",
        "-v",
        "-n",
        "-x",
    ])?;
    out.lines()
        .find(|l| l.contains("REJECT"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no REJECT rule in {out}"))
}

#[tokio::test]
async fn companion_rules_device_and_cleanup_in_a_namespace() -> Result<()> {
    let ns = Netns::new()?;
    let mut cfg = IpvsConfig::new().in_netns(&ns.0);
    cfg.cluster_cidr = Some("10.244.0.0/16".parse().unwrap());
    // This test machine's kernel has no dummy driver; a bridge without ports holds local
    // addresses just the same (an ifb link would too, but loading its module creates
    // ifb0 and ifb1 in the host's namespace).
    cfg.device_kind = "bridge".into();
    let mut ipvs = Ipvs::new(cfg);

    let first = entries(&[
        (IpSet::ClusterIp, "10.96.0.1,tcp:80"),
        (IpSet::ClusterIp, "10.96.0.2,tcp:80"),
        (IpSet::LoopBack, "10.244.1.5,tcp:8080,10.244.1.5"),
        (IpSet::NodePortTcp, "30080"),
        (IpSet::NoEndpoints, "10.96.0.2,tcp:80"),
    ]);
    ipvs.program_companion(&first).await?;
    // A second full write replaces the entries and does not duplicate the jumps.
    let second = entries(&[
        (IpSet::ClusterIp, "10.96.0.2,tcp:80"),
        (IpSet::NoEndpoints, "10.96.0.2,tcp:80"),
    ]);
    ipvs.program_companion(&second).await?;
    let list = ns.exec(&["ipset", "list", "SKIFF-CLUSTER-IP"])?;
    assert!(list.contains("10.96.0.2,tcp:80"), "{list}");
    assert!(!list.contains("10.96.0.1,tcp:80"), "{list}");
    assert!(
        ns.exec(&["ipset", "list", "SKIFF-NODE-PORT-TCP"])?
            .contains("Type: bitmap:port")
    );
    let nat = ns.exec(&["iptables-save", "-t", "nat"])?;
    assert_eq!(
        nat.matches("-A PREROUTING -j SKIFF-IPVS-SERVICES").count(),
        1,
        "{nat}"
    );
    assert!(
        nat.contains("--match-set SKIFF-LOOP-BACK dst,dst,src -j MASQUERADE"),
        "{nat}"
    );
    let filter = ns.exec(&["iptables-save", "-t", "filter"])?;
    assert_eq!(
        filter.matches("-j SKIFF-IPVS-FILTER").count(),
        3,
        "{filter}"
    );

    // Addresses on the dummy device: added, one re-added (no error), one removed.
    let a: Ipv4Addr = "10.96.0.1".parse().unwrap();
    let b: Ipv4Addr = "10.96.0.2".parse().unwrap();
    ipvs.change_addresses(&[a, b], &[]).await?;
    ipvs.change_addresses(&[b], &[a]).await?;
    assert_eq!(ipvs.device_addresses().await?, vec![b]);
    let link = ns.exec(&["ip", "-d", "link", "show", "skiff-ipvs0"])?;
    assert!(link.contains("bridge"), "{link}");

    // A connection to the service without endpoints is rejected by our rule.
    let before = rejected(&ns)?;
    let path = format!("/run/netns/{}", ns.0);
    let refused = std::thread::spawn(move || -> Result<std::io::ErrorKind> {
        let file = std::fs::File::open(&path)?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns affects only this thread, which ends right after.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        let addr: SocketAddr = "10.96.0.2:80".parse()?;
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(_) => bail!("connected to a service without endpoints"),
            Err(e) => Ok(e.kind()),
        }
    })
    .join()
    .unwrap()?;
    assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);
    assert!(rejected(&ns)? > before, "the REJECT rule did not match");

    // A sync needs IPVS: on this kernel it fails, and says why.
    if !Path::new("/proc/net/ip_vs").exists() {
        assert!(Mode::Ipvs.check_available(Path::new("/proc")).is_err());
        let mut state = ProxyState::default();
        state.services.insert(
            ServicePortName {
                namespace: "default".into(),
                name: "web".into(),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            (
                ServicePort {
                    cluster_ips: vec!["10.96.0.1".parse().unwrap()],
                    port: 80,
                    node_port: None,
                    external_ips: vec![],
                    load_balancer_ips: vec![],
                    affinity: None,
                    external_local: false,
                    internal_local: false,
                },
                vec![Endpoint {
                    ip: "10.244.1.5".parse().unwrap(),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                    node_name: None,
                }],
            ),
        );
        let changed = state.services.keys().cloned().collect();
        let err = ipvs.sync(&state, &changed).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the kernel has no IPVS generic netlink family"),
            "{err}"
        );
    }

    // Cleanup removes the device, the sets and our chains, and leaves the rest.
    ns.exec(&[
        "iptables", "-w", "-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j",
        "ACCEPT",
    ])?;
    ipvs.cleanup().await?;
    let links = ns.exec(&["ip", "link", "show"])?;
    assert!(!links.contains("skiff-ipvs0"), "{links}");
    let sets = ns.exec(&["ipset", "list", "-n"])?;
    assert!(!sets.contains("SKIFF-"), "{sets}");
    let all = ns.exec(&["iptables-save"])?;
    assert!(!all.contains("SKIFF-IPVS"), "{all}");
    assert!(all.contains("--dport 22 -j ACCEPT"), "{all}");
    // Cleaning up a clean namespace is fine too.
    ipvs.cleanup().await?;
    Ok(())
}
