//! The firewall against the real kernel, both backends. Everything runs in network
//! namespaces these tests create (and delete on drop, even on failure), except one
//! nftables round trip in this process's namespace that uses its own table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skiff_cni::firewall::{
    AttachmentKey, Backend, Firewall, FirewallError, PortMapping, Protocol, Rules, SpoofCheck,
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (of this or a concurrent run) uses: `skt-<pid>-<n>`.
fn unique() -> String {
    format!(
        "skt-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace this test created; deleted on drop, with everything in it.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: String) -> Netns {
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    fn sh(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    fn try_sh(&self, args: &[&str]) -> Result<String, String> {
        let out = self.cmd(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A firewall in a fresh namespace, with its own prefix and state directory.
struct Setup {
    ns: Netns,
    state: tempfile::TempDir,
    prefix: String,
    fw: Firewall,
}

impl Setup {
    fn new(backend: Backend) -> Setup {
        let prefix = unique();
        let ns = Netns::new(prefix.clone());
        let state = tempfile::tempdir().unwrap();
        let fw = Firewall::detect_in(&prefix, state.path(), Some(backend), Some(&ns.path()))
            .expect("firewall");
        Setup {
            ns,
            state,
            prefix,
            fw,
        }
    }

    /// Another firewall on the same namespace and state, as the next plugin call sees it.
    fn again(&self, backend: Backend) -> Firewall {
        Firewall::detect_in(
            &self.prefix,
            self.state.path(),
            Some(backend),
            Some(&self.ns.path()),
        )
        .unwrap()
    }

    /// What the kernel holds of ours: the nft table, or our lines of both nat tables.
    fn kernel(&self) -> String {
        match self.fw.backend() {
            Backend::Nftables => self
                .ns
                .try_sh(&["nft", "list", "table", "inet", &self.prefix])
                .unwrap_or_default(),
            Backend::Iptables => ["iptables-save", "ip6tables-save"]
                .iter()
                .flat_map(|t| {
                    self.ns
                        .sh(&[t, "-t", "nat"])
                        .lines()
                        .filter(|l| l.contains(&self.prefix))
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Wipes the kernel side behind the firewall's back, like a reboot would.
    fn wipe_kernel(&self) {
        match self.fw.backend() {
            Backend::Nftables => {
                self.ns
                    .sh(&["nft", "delete", "table", "inet", &self.prefix]);
            }
            Backend::Iptables => {
                for t in ["iptables", "ip6tables"] {
                    self.ns.sh(&[t, "-t", "nat", "-F"]);
                    self.ns.sh(&[t, "-t", "nat", "-X"]);
                }
            }
        }
    }
}

fn key(cid: &str) -> AttachmentKey {
    AttachmentKey::new("net1", cid, "eth0")
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_port,
        container_port,
        protocol: Protocol::Tcp,
        host_ip: None,
    }
}

/// A dual-stack pod at 10.99.0.<n>/24 and fd99::<n>/64 on `bridge`.
fn pod_rules(n: u8, bridge: &str, ports: Vec<PortMapping>) -> Rules {
    Rules {
        bridge: bridge.into(),
        masquerade: vec![
            format!("10.99.0.{n}/24").parse().unwrap(),
            format!("fd99::{n}/64").parse().unwrap(),
        ],
        port_mappings: ports,
        container_ips: vec![
            format!("10.99.0.{n}").parse().unwrap(),
            format!("fd99::{n}").parse().unwrap(),
        ],
        spoof_check: None,
        non_masquerade: Vec::new(),
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn nftables() {
                super::$name(skiff_cni::firewall::Backend::Nftables)
            }
            #[test]
            fn iptables() {
                super::$name(skiff_cni::firewall::Backend::Iptables)
            }
        }
    )*};
}

both_backends!(
    rules_and_state_round_trip,
    del_twice,
    del_after_kernel_wiped,
    add_again_replaces,
    gc_keeps_only_listed,
    check_fails_after_rules_removed,
    hostport_conflict,
    concurrent_adds,
    port_taken_after_reboot,
    traffic,
    spoof_check_round_trip,
);

fn rules_and_state_round_trip(backend: Backend) {
    let s = Setup::new(backend);
    let mut ports = vec![tcp(8080, 80)];
    ports.push(PortMapping {
        host_port: 5353,
        container_port: 53,
        protocol: Protocol::Udp,
        host_ip: Some("192.0.2.1".parse().unwrap()),
    });
    ports.push(PortMapping {
        host_port: 9000,
        container_port: 9000,
        protocol: Protocol::Sctp,
        host_ip: None,
    });
    let rules = pod_rules(5, "br0", ports);
    s.fw.add(&key("c1"), &rules).unwrap();

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.fw.state_path(&key("c1"))).unwrap()).unwrap();
    assert_eq!(record["backend"], backend.as_str());
    assert_eq!(record["key"]["container_id"], "c1");
    assert_eq!(
        s.fw.state_path(&key("c1")),
        s.state.path().join("net1").join("c1:eth0")
    );

    let kernel = s.kernel();
    match backend {
        Backend::Nftables => {
            for want in [
                "10.99.0.5 . 10.99.0.0/24",
                "fd99::5 . fd99::/64",
                "tcp . 8080 : 10.99.0.5 . 80",
                "tcp . 8080 : fd99::5 . 80",
                "sctp . 9000 : 10.99.0.5 . 9000",
                "192.0.2.1 . udp . 5353 : 10.99.0.5 . 53",
                "\"br0\" . tcp . 8080",
            ] {
                assert!(kernel.contains(want), "{want} missing from\n{kernel}");
            }
        }
        Backend::Iptables => {
            for want in [
                "-d 10.99.0.0/24 -j RETURN",
                "-d fd99::/64 -j RETURN",
                "--dport 8080 -j DNAT --to-destination 10.99.0.5:80",
                "--dport 8080 -j DNAT --to-destination [fd99::5]:80",
                "-d 192.0.2.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.99.0.5:53",
                "--dport 9000 -j DNAT --to-destination 10.99.0.5:9000",
                "-A POSTROUTING -s 10.99.0.5/32",
            ] {
                assert!(kernel.contains(want), "{want} missing from\n{kernel}");
            }
        }
    }
    s.fw.check(&key("c1")).unwrap();

    // A later plugin call knows nothing but the state directory.
    let later = s.again(backend);
    later.del(&key("c1")).unwrap();
    assert!(!s.fw.state_path(&key("c1")).exists());
    let kernel = s.kernel();
    assert!(!kernel.contains("10.99.0.5"), "left behind:\n{kernel}");
    assert!(matches!(
        later.check(&key("c1")),
        Err(FirewallError::NotFound { .. })
    ));
}

fn del_twice(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.del(&key("c1")).unwrap();
    s.fw.del(&key("c1")).unwrap();
    // Never added at all.
    s.fw.del(&key("c9")).unwrap();
}

fn del_after_kernel_wiped(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![])).unwrap();
    s.wipe_kernel();
    s.fw.del(&key("c1")).unwrap();
    assert!(!s.fw.state_path(&key("c1")).exists());
    // The kernel side of c2 is gone too; ADD again restores it.
    assert!(s.fw.check(&key("c2")).is_err());
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![])).unwrap();
    s.fw.check(&key("c2")).unwrap();
    s.fw.del(&key("c2")).unwrap();
    // A new attachment after a wipe finds the table gone and declares it again.
    s.wipe_kernel();
    s.fw.add(&key("c3"), &pod_rules(7, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.check(&key("c3")).unwrap();
    s.fw.del(&key("c3")).unwrap();
}

#[test]
fn nftables_outdated_layout_is_redeclared() {
    let s = Setup::new(Backend::Nftables);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    // A table from another version: no marker of this layout, other rules.
    let t = s.prefix.as_str();
    s.ns.sh(&["nft", "flush", "chain", "inet", t, "postrouting"]);
    s.ns.sh(&[
        "nft",
        "delete",
        "set",
        "inet",
        t,
        skiff_cni::firewall::NFT_LAYOUT,
    ]);
    assert!(s.fw.check(&key("c1")).is_err());
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![tcp(8081, 80)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();
    s.fw.check(&key("c2")).unwrap();
}

fn add_again_replaces(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();
    s.fw.add(&key("c1"), &pod_rules(7, "br0", vec![tcp(9090, 90)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();
    let kernel = s.kernel();
    assert!(!kernel.contains("8080"), "old port left:\n{kernel}");
    assert!(!kernel.contains("10.99.0.5"), "old address left:\n{kernel}");
    assert!(kernel.contains("9090"), "{kernel}");
    // The old port is free for someone else now.
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.del(&key("c1")).unwrap();
    s.fw.del(&key("c2")).unwrap();
    assert!(!s.kernel().contains("10.99.0."), "{}", s.kernel());
}

fn gc_keeps_only_listed(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![tcp(8081, 80)]))
        .unwrap();
    s.fw.add(&key("c3"), &pod_rules(7, "br0", vec![])).unwrap();
    let other = AttachmentKey::new("net2", "c4", "eth0");
    s.fw.add(&other, &pod_rules(8, "br1", vec![tcp(8082, 80)]))
        .unwrap();

    let keep: HashSet<(String, String)> = [("c1".to_string(), "eth0".to_string())].into();
    s.fw.gc("net1", &keep).unwrap();

    s.fw.check(&key("c1")).unwrap();
    s.fw.check(&other).unwrap();
    for gone in ["c2", "c3"] {
        assert!(matches!(
            s.fw.check(&key(gone)),
            Err(FirewallError::NotFound { .. })
        ));
    }
    let kernel = s.kernel();
    assert!(!kernel.contains("10.99.0.6"), "{kernel}");
    assert!(!kernel.contains("10.99.0.7"), "{kernel}");
    assert!(kernel.contains("10.99.0.5") && kernel.contains("10.99.0.8"));
    // Nothing left to collect is fine; an unknown network too.
    s.fw.gc("net1", &keep).unwrap();
    s.fw.gc("net3", &HashSet::new()).unwrap();
    s.fw.gc("net1", &HashSet::new()).unwrap();
    s.fw.gc("net2", &HashSet::new()).unwrap();
    assert!(!s.kernel().contains("10.99.0."), "{}", s.kernel());
}

fn check_fails_after_rules_removed(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();
    match backend {
        Backend::Nftables => {
            s.ns.sh(&["nft", "flush", "map", "inet", &s.prefix, "hostport4"]);
        }
        Backend::Iptables => {
            s.ns.sh(&["iptables", "-t", "nat", "-F", "POSTROUTING"]);
        }
    }
    let err = s.fw.check(&key("c1")).unwrap_err();
    assert!(matches!(err, FirewallError::Missing { .. }), "{err}");
    // ADD again repairs it.
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();
}

fn hostport_conflict(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    let err =
        s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![tcp(8080, 80)]))
            .unwrap_err();
    match &err {
        FirewallError::PortConflict { mapping, owner } => {
            assert!(mapping.starts_with("tcp/8080 on "), "{mapping}");
            assert_eq!(owner.as_ref(), Some(&key("c1")));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert!(err.to_string().contains("net1/c1/eth0"), "{err}");
    // The failed ADD left neither a record nor rules.
    assert!(!s.fw.state_path(&key("c2")).exists());
    assert!(!s.kernel().contains("10.99.0.6"), "{}", s.kernel());
    s.fw.check(&key("c1")).unwrap();
    // Same port on another protocol or a specific host IP is no conflict.
    let mut other = pod_rules(6, "br0", vec![]);
    other.port_mappings = vec![
        PortMapping {
            protocol: Protocol::Udp,
            ..tcp(8080, 80)
        },
        PortMapping {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            ..tcp(8080, 80)
        },
    ];
    s.fw.add(&key("c2"), &other).unwrap();
    s.fw.del(&key("c1")).unwrap();
    s.fw.del(&key("c2")).unwrap();
}

/// After a reboot (kernel emptied, records kept) a new pod takes a hostPort whose old
/// owner is not deleted yet; deleting the old one later must leave the new one alone.
fn port_taken_after_reboot(backend: Backend) {
    let s = Setup::new(backend);
    s.fw.add(&key("old"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.wipe_kernel();
    let path = s.fw.state_path(&key("old"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["boot_id"] = "an-earlier-boot".into();
    std::fs::write(&path, record.to_string()).unwrap();

    s.fw.add(&key("new"), &pod_rules(6, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    // ADD again of the old pod replaces its installation without touching the port.
    s.fw.add(&key("old"), &pod_rules(5, "br0", vec![tcp(8081, 80)]))
        .unwrap();
    s.fw.check(&key("new")).unwrap();
    s.fw.check(&key("old")).unwrap();
    s.fw.del(&key("old")).unwrap();
    s.fw.check(&key("new")).unwrap();
    // The port is still taken by the new pod.
    s.fw.add(&key("old"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap_err();
    s.fw.del(&key("new")).unwrap();
    assert!(!s.kernel().contains("10.99.0."), "{}", s.kernel());
}

/// Plugin calls run concurrently: distinct pods all land, and of several racing for one
/// hostPort exactly one wins.
fn concurrent_adds(backend: Backend) {
    let s = Setup::new(backend);
    let results: Vec<(String, Result<(), FirewallError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (10..30u8)
            .map(|n| {
                let fw = s.again(backend);
                scope.spawn(move || {
                    let cid = format!("c{n}");
                    let port = if n < 14 { 9999 } else { 8000 + u16::from(n) };
                    let r = fw.add(&key(&cid), &pod_rules(n, "br0", vec![tcp(port, 80)]));
                    (cid, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut winners = 0;
    for (cid, r) in &results {
        match r {
            Ok(()) => {
                s.fw.check(&key(cid)).unwrap();
                if cid.as_str() < "c14" {
                    winners += 1;
                }
            }
            Err(FirewallError::PortConflict { .. }) if cid.as_str() < "c14" => {}
            Err(e) => panic!("{cid}: {e}"),
        }
    }
    assert_eq!(winners, 1, "{results:?}");
    s.fw.gc("net1", &HashSet::new()).unwrap();
    assert!(!s.kernel().contains("10.99.0."), "{}", s.kernel());
}

#[test]
fn host_namespace_nftables_round_trip() {
    struct Table(String);
    impl Drop for Table {
        fn drop(&mut self) {
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", &self.0])
                .output();
        }
    }
    let prefix = unique();
    let table = Table(prefix.clone());
    let state = tempfile::tempdir().unwrap();
    let fw = Firewall::detect(&prefix, state.path(), Some(Backend::Nftables)).unwrap();
    fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    fw.check(&key("c1")).unwrap();
    fw.del(&key("c1")).unwrap();
    fw.purge().unwrap();
    let tables = run(&["nft", "list", "tables"]);
    assert!(!tables.contains(&table.0), "{tables}");
}

#[test]
fn detect_picks_nftables_and_remembers() {
    let ns = Netns::new(unique());
    let state = tempfile::tempdir().unwrap();
    let fw = Firewall::detect_in("skiff-cni", state.path(), None, Some(&ns.path())).unwrap();
    assert_eq!(fw.backend(), Backend::Nftables);
    assert!(state.path().join(".backend").is_file());
    // Config overrides detection.
    let fw = Firewall::detect("skiff-cni", state.path(), Some(Backend::Iptables)).unwrap();
    assert_eq!(fw.backend(), Backend::Iptables);
    assert!(Firewall::detect("no spaces", state.path(), None).is_err());
}

#[test]
fn del_uses_the_backend_that_added() {
    let s = Setup::new(Backend::Iptables);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    let nft = s.again(Backend::Nftables);
    nft.check(&key("c1")).unwrap();
    // ADD through the other backend moves the attachment over.
    nft.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    assert!(
        !s.kernel().contains("10.99.0.5"),
        "iptables rules left:\n{}",
        s.kernel()
    );
    nft.check(&key("c1")).unwrap();
    s.fw.del(&key("c1")).unwrap();
    let table = s.ns.sh(&["nft", "list", "table", "inet", &s.prefix]);
    assert!(!table.contains("10.99.0.5"), "{table}");
}

#[test]
fn purge_removes_both_backends() {
    let s = Setup::new(Backend::Iptables);
    s.fw.add(&key("c1"), &pod_rules(5, "br0", vec![tcp(8080, 80)]))
        .unwrap();
    s.again(Backend::Nftables)
        .add(&key("c2"), &pod_rules(6, "br0", vec![tcp(8081, 80)]))
        .unwrap();
    s.fw.purge().unwrap();
    assert!(
        s.ns.try_sh(&["nft", "list", "table", "inet", &s.prefix])
            .is_err()
    );
    for t in ["iptables-save", "ip6tables-save"] {
        let saved = s.ns.sh(&[t, "-t", "nat"]);
        assert!(!saved.contains(&s.prefix), "{saved}");
    }
    assert!(!s.fw.state_path(&key("c1")).exists());
    assert!(!s.fw.state_path(&key("c2")).exists());
}

#[test]
fn exec_cost_per_operation() {
    for backend in [Backend::Nftables, Backend::Iptables] {
        let s = Setup::new(backend);
        let rules = pod_rules(5, "br0", vec![tcp(8080, 80)]);
        let t = Instant::now();
        s.fw.add(&key("first"), &rules_for(100, &rules)).unwrap();
        let first = t.elapsed();
        let (mut add, mut del) = (Duration::ZERO, Duration::ZERO);
        const N: u32 = 20;
        for i in 0..N {
            let k = key(&format!("c{i}"));
            let t = Instant::now();
            s.fw.add(&k, &rules_for(i, &rules)).unwrap();
            add += t.elapsed();
            let t = Instant::now();
            s.fw.del(&k).unwrap();
            del += t.elapsed();
        }
        let (add, del) = (add / N, del / N);
        println!(
            "{backend}: first add {first:?} (declares the table), then add {add:?}, \
             del {del:?} (dual-stack pod, one hostPort, mean of {N})"
        );
        assert!(add < Duration::from_millis(100) && del < Duration::from_millis(100));
    }
}

/// `pod_rules` with the MAC spoof check of port `veth<n>` for 02:00:00:00:00:<n>.
fn spoof_rules(n: u8, ports: Vec<PortMapping>) -> Rules {
    Rules {
        spoof_check: Some(SpoofCheck {
            port: format!("veth{n}"),
            mac: [2, 0, 0, 0, 0, n],
        }),
        ..pod_rules(n, "br0", ports)
    }
}

/// The nft bridge table of this setup, or "" when there is none.
fn bridge_table(s: &Setup) -> String {
    s.ns.try_sh(&["nft", "list", "table", "bridge", &s.prefix])
        .unwrap_or_default()
}

fn spoof_check_round_trip(backend: Backend) {
    let s = Setup::new(backend);
    if backend == Backend::Iptables {
        let err = s.fw.add(&key("c1"), &spoof_rules(5, vec![])).unwrap_err();
        assert!(
            matches!(err, FirewallError::Unsupported { .. })
                && err.to_string().contains("nftables"),
            "{err}"
        );
        assert!(!s.fw.state_path(&key("c1")).exists());
        assert_eq!(s.kernel(), "");
        // An attachment that had rules keeps them when a replacement is refused.
        s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![])).unwrap();
        s.fw.add(&key("c2"), &spoof_rules(6, vec![])).unwrap_err();
        s.fw.check(&key("c2")).unwrap();
        s.fw.del(&key("c2")).unwrap();
        return;
    }
    // A pod with nothing but the check needs no inet table.
    let only = Rules {
        bridge: "br0".into(),
        spoof_check: spoof_rules(4, vec![]).spoof_check,
        ..Rules::default()
    };
    s.fw.add(&key("c0"), &only).unwrap();
    assert_eq!(s.kernel(), "", "the inet table was declared");
    s.fw.check(&key("c0")).unwrap();

    s.fw.add(&key("c1"), &spoof_rules(5, vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.add(&key("c2"), &spoof_rules(6, vec![])).unwrap();
    let table = bridge_table(&s);
    for want in [
        "\"veth5\" . 02:00:00:00:00:05",
        "\"veth6\" . 02:00:00:00:00:06",
        "iifname @spoofports iifname . ether saddr != @spoofok drop",
    ] {
        assert!(table.contains(want), "{want} missing from\n{table}");
    }
    assert!(s.kernel().contains("10.99.0.5"), "{}", s.kernel());
    s.fw.check(&key("c1")).unwrap();

    // CHECK sees a missing element; ADD again repairs it.
    s.ns.sh(&[
        "nft",
        "delete",
        "element",
        "bridge",
        &s.prefix,
        "spoofok",
        "{ \"veth5\" . 02:00:00:00:00:05 }",
    ]);
    let err = s.fw.check(&key("c1")).unwrap_err();
    assert!(err.to_string().contains("spoofok"), "{err}");
    s.fw.add(&key("c1"), &spoof_rules(5, vec![tcp(8080, 80)]))
        .unwrap();
    s.fw.check(&key("c1")).unwrap();

    // ADD again without the check takes its elements out.
    s.fw.add(&key("c2"), &pod_rules(6, "br0", vec![])).unwrap();
    assert!(!bridge_table(&s).contains("veth6"), "{}", bridge_table(&s));
    s.fw.check(&key("c2")).unwrap();

    s.fw.del(&key("c1")).unwrap();
    let table = bridge_table(&s);
    assert!(!table.contains("veth5"), "left behind:\n{table}");
    assert!(table.contains("veth4"), "{table}");
    // DEL after the bridge table vanished (a reboot) still works from the record.
    s.ns.sh(&["nft", "delete", "table", "bridge", &s.prefix]);
    assert!(s.fw.check(&key("c0")).is_err());
    s.fw.del(&key("c0")).unwrap();
    // A new attachment finds it gone and declares it again.
    s.fw.add(&key("c3"), &spoof_rules(7, vec![])).unwrap();
    s.fw.check(&key("c3")).unwrap();
    s.fw.purge().unwrap();
    assert_eq!(bridge_table(&s), "");
    assert_eq!(s.kernel(), "");
}

fn rules_for(i: u32, base: &Rules) -> Rules {
    let mut r = base.clone();
    r.port_mappings[0].host_port = 8000 + i as u16;
    r
}

// ---- traffic ----

/// Serves TCP and UDP on one port, answering each peer with `<name> <peer address>`.
const SERVER: &str = r#"
import socket, sys, threading
name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
t = socket.socket(fam, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((addr, port)); t.listen(16)
u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((addr, port))
def udp():
    while True:
        data, peer = u.recvfrom(100)
        u.sendto(("%s %s" % (name, peer[0])).encode(), peer)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, peer = t.accept()
    c.sendall(("%s %s" % (name, peer[0])).encode()); c.close()
"#;

/// Prints what the server at `addr port` answers, over `proto`.
const CLIENT: &str = r#"
import socket, sys
proto, addr, port, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if proto == "tcp":
    s = socket.create_connection((addr, port), timeout=wait)
    print(s.recv(100).decode())
else:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(wait)
    s.sendto(b"hi", (addr, port)); print(s.recv(100).decode())
"#;

struct Server(Child);

impl Server {
    fn start(ns: &Netns, name: &str, addr: &str, port: u16) -> Server {
        let mut child = ns
            .cmd(&["python3", "-c", SERVER, name, addr, &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let server = Server(child);
        assert_eq!(line.trim(), "ready", "server {name} in {}", ns.name);
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ask(ns: &Netns, proto: &str, addr: &str, port: u16) -> Result<String, String> {
    ask_within(ns, proto, addr, port, "3")
}

/// For what must fail: a short wait.
fn unreachable(ns: &Netns, proto: &str, addr: &str, port: u16) -> bool {
    ask_within(ns, proto, addr, port, "0.5").is_err()
}

fn ask_within(
    ns: &Netns,
    proto: &str,
    addr: &str,
    port: u16,
    wait: &str,
) -> Result<String, String> {
    ns.try_sh(&[
        "python3",
        "-c",
        CLIENT,
        proto,
        addr,
        &port.to_string(),
        wait,
    ])
    .map(|s| s.trim().to_string())
}

/// router (bridge br0 10.99.0.1/24 fd99::1/64, uplink 192.0.2.1/24 2001:db8::1/64)
/// between a pod (10.99.0.5, fd99::5), its neighbour pod2 (10.99.0.6, fd99::6) and the
/// outside (192.0.2.2, 2001:db8::2). The outside has no route to the pod network, so
/// only masquerade gets replies back.
struct Lab {
    router: Netns,
    pod: Netns,
    pod2: Netns,
    outside: Netns,
}

impl Lab {
    fn new(base: &str) -> Lab {
        let lab = Lab {
            router: Netns::new(format!("{base}-r")),
            pod: Netns::new(format!("{base}-p")),
            pod2: Netns::new(format!("{base}-q")),
            outside: Netns::new(format!("{base}-o")),
        };
        let (r, p, q, o) = (
            &lab.router.name,
            &lab.pod.name,
            &lab.pod2.name,
            &lab.outside.name,
        );
        for cmd in [
            vec!["ip", "-n", r, "link", "add", "br0", "type", "bridge"],
            vec![
                "ip", "-n", r, "link", "add", "vpod", "type", "veth", "peer", "name", "eth0",
                "netns", p,
            ],
            vec![
                "ip", "-n", r, "link", "add", "up0", "type", "veth", "peer", "name", "eth0",
                "netns", o,
            ],
            vec![
                "ip", "-n", r, "link", "add", "vpod2", "type", "veth", "peer", "name", "eth0",
                "netns", q,
            ],
            vec!["ip", "-n", r, "link", "set", "vpod", "master", "br0", "up"],
            vec!["ip", "-n", r, "link", "set", "vpod2", "master", "br0", "up"],
            // With br_netfilter, a connection DNATed back onto the bridge it came from
            // is bridged, not routed: a pod reaching itself needs hairpin on its port
            // (the bridge plugin's hairpinMode).
            vec![
                "ip",
                "-n",
                r,
                "link",
                "set",
                "vpod",
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ],
            vec!["ip", "-n", r, "link", "set", "br0", "up"],
            vec!["ip", "-n", r, "link", "set", "up0", "up"],
            vec!["ip", "-n", r, "addr", "add", "10.99.0.1/24", "dev", "br0"],
            vec![
                "ip",
                "-n",
                r,
                "addr",
                "add",
                "fd99::1/64",
                "dev",
                "br0",
                "nodad",
            ],
            vec!["ip", "-n", r, "addr", "add", "192.0.2.1/24", "dev", "up0"],
            vec![
                "ip",
                "-n",
                r,
                "addr",
                "add",
                "2001:db8::1/64",
                "dev",
                "up0",
                "nodad",
            ],
            vec!["ip", "-n", p, "link", "set", "eth0", "up"],
            vec!["ip", "-n", p, "addr", "add", "10.99.0.5/24", "dev", "eth0"],
            vec![
                "ip",
                "-n",
                p,
                "addr",
                "add",
                "fd99::5/64",
                "dev",
                "eth0",
                "nodad",
            ],
            vec!["ip", "-n", p, "route", "add", "default", "via", "10.99.0.1"],
            vec![
                "ip", "-n", p, "-6", "route", "add", "default", "via", "fd99::1",
            ],
            vec!["ip", "-n", q, "link", "set", "eth0", "up"],
            vec!["ip", "-n", q, "addr", "add", "10.99.0.6/24", "dev", "eth0"],
            vec!["ip", "-n", q, "route", "add", "default", "via", "10.99.0.1"],
            vec![
                "ip",
                "-n",
                q,
                "addr",
                "add",
                "fd99::6/64",
                "dev",
                "eth0",
                "nodad",
            ],
            vec!["ip", "-n", o, "link", "set", "eth0", "up"],
            vec!["ip", "-n", o, "addr", "add", "192.0.2.2/24", "dev", "eth0"],
            vec![
                "ip",
                "-n",
                o,
                "addr",
                "add",
                "2001:db8::2/64",
                "dev",
                "eth0",
                "nodad",
            ],
        ] {
            run(&cmd);
        }
        lab.router.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        lab.router
            .sh(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        // The bridge has one port; its forwarding delay does not matter for routed
        // traffic, but the port must be forwarding before the pod can talk.
        lab.router.sh(&[
            "ip",
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        lab
    }
}

fn traffic(backend: Backend) {
    let base = unique();
    let lab = Lab::new(&base);
    let state = tempfile::tempdir().unwrap();
    let fw =
        Firewall::detect_in(&base, state.path(), Some(backend), Some(&lab.router.path())).unwrap();

    let _outside4 = Server::start(&lab.outside, "outside", "192.0.2.2", 7000);
    let _outside6 = Server::start(&lab.outside, "outside", "2001:db8::2", 7000);
    let _pod4 = Server::start(&lab.pod, "pod", "10.99.0.5", 80);
    let _pod6 = Server::start(&lab.pod, "pod", "fd99::5", 80);

    let _pod2_4 = Server::start(&lab.pod2, "pod2", "10.99.0.6", 7002);
    let _pod2_6 = Server::start(&lab.pod2, "pod2", "fd99::6", 7002);

    // Without rules the outside cannot answer the pod, nor reach it.
    assert!(unreachable(&lab.pod, "tcp", "192.0.2.2", 7000));
    assert!(unreachable(&lab.outside, "tcp", "192.0.2.1", 8080));

    let mut rules = pod_rules(5, "br0", vec![tcp(8080, 80)]);
    rules.port_mappings.push(PortMapping {
        protocol: Protocol::Udp,
        ..tcp(8080, 80)
    });
    rules.port_mappings.push(PortMapping {
        host_ip: Some("192.0.2.1".parse().unwrap()),
        ..tcp(8081, 80)
    });
    fw.add(&key("c1"), &rules).unwrap();

    // Masquerade: the outside sees the router's address.
    for proto in ["tcp", "udp"] {
        assert_eq!(
            ask(&lab.pod, proto, "192.0.2.2", 7000).unwrap(),
            "outside 192.0.2.1",
            "{proto} v4 masquerade"
        );
        assert_eq!(
            ask(&lab.pod, proto, "2001:db8::2", 7000).unwrap(),
            "outside 2001:db8::1",
            "{proto} v6 masquerade"
        );
    }
    // Inside its own subnet the pod keeps its address (the bridge hands its frames
    // to the nat hooks, br_netfilter being on in new namespaces).
    assert_eq!(
        lab.router
            .sh(&["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"])
            .trim(),
        "1"
    );
    assert_eq!(
        ask(&lab.pod, "tcp", "10.99.0.6", 7002).unwrap(),
        "pod2 10.99.0.5"
    );
    assert_eq!(
        ask(&lab.pod, "tcp", "fd99::6", 7002).unwrap(),
        "pod2 fd99::5"
    );

    // hostPort: the outside reaches the pod, which sees the real client.
    for (proto, addr) in [
        ("tcp", "192.0.2.1"),
        ("udp", "192.0.2.1"),
        ("tcp", "2001:db8::1"),
        ("udp", "2001:db8::1"),
    ] {
        let client = if addr.contains(':') {
            "2001:db8::2"
        } else {
            "192.0.2.2"
        };
        assert_eq!(
            ask(&lab.outside, proto, addr, 8080).unwrap(),
            format!("pod {client}"),
            "{proto} hostPort via {addr}"
        );
    }
    // A mapping bound to one host IP.
    assert_eq!(
        ask(&lab.outside, "tcp", "192.0.2.1", 8081).unwrap(),
        "pod 192.0.2.2"
    );
    // From the node itself.
    assert_eq!(
        ask(&lab.router, "tcp", "192.0.2.1", 8080).unwrap(),
        "pod 192.0.2.1"
    );
    // Hairpin: the pod reaches itself through the node's hostPort, masqueraded so its
    // reply comes back through the node.
    assert_eq!(
        ask(&lab.pod, "tcp", "192.0.2.1", 8080).unwrap(),
        "pod 10.99.0.1"
    );
    assert_eq!(
        ask(&lab.pod, "tcp", "2001:db8::1", 8080).unwrap(),
        "pod fd99::1"
    );
    // Likewise a neighbour on the same bridge.
    assert_eq!(
        ask(&lab.pod2, "tcp", "192.0.2.1", 8080).unwrap(),
        "pod 10.99.0.1"
    );
    // localhost needs route_localnet on the bridge (left to the operator: it also lets
    // pods reach the node's 127.0.0.1 services); with it, masquerade makes it work.
    lab.router
        .sh(&["sysctl", "-qw", "net.ipv4.conf.br0.route_localnet=1"]);
    assert_eq!(
        ask(&lab.router, "tcp", "127.0.0.1", 8080).unwrap(),
        "pod 10.99.0.1"
    );

    fw.check(&key("c1")).unwrap();
    fw.del(&key("c1")).unwrap();
    assert!(unreachable(&lab.outside, "tcp", "192.0.2.1", 8080));
    assert!(unreachable(&lab.pod, "tcp", "192.0.2.2", 7000));
}
