//! Kernel tests for the netlink library: root on the real kernel. Each test works
//! only inside network namespaces it creates (so link names inside them can be
//! fixed), and the namespaces, with every link in them, go when the test ends,
//! whether it passed or not. Nothing is sent outside those namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;
use skiff_cni::netlink::{
    self, BridgeOptions, Family, Link, Netlink, NetlinkError, RouteSpec, VxlanOptions, netns,
    sysctl,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Unique to this process and call, and short enough for any kernel name.
fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id());
    assert!(name.len() <= 15, "{name} is too long");
    name
}

/// A named network namespace under /run/netns, removed on drop.
struct TestNs {
    name: String,
    path: PathBuf,
}

impl TestNs {
    fn new() -> TestNs {
        let name = unique("skt");
        let path = Path::new("/run/netns").join(&name);
        netns::create(&path).unwrap_or_else(|e| panic!("creating netns {name}: {e}"));
        TestNs { name, path }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside the namespace.
    async fn run<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Netlink) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, NetlinkError>>,
        T: Send + 'static,
    {
        netns::run_in(&self.path, f)
            .await
            .unwrap_or_else(|e| panic!("in netns {}: {e}", self.name))
    }

    /// `ip -d -j ARGS` (or another iproute2 tool) inside the namespace, parsed.
    fn json(&self, tool: &str, args: &[&str]) -> Value {
        let out = Command::new(tool)
            .args(["-n", &self.name, "-d", "-j"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{tool} {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = netns::remove(&self.path) {
            eprintln!("cleanup of netns {} failed: {e}", self.name);
        }
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A veth pair with both ends in the namespace `nl` lives in (the peer end is
/// created through an fd of that same namespace).
async fn veth_in_place(
    nl: &Netlink,
    ns: &Path,
    a: &str,
    b: &str,
) -> Result<(Link, Link), NetlinkError> {
    let fd = netns::open(ns)?;
    let a = nl
        .create_veth(a, b, std::os::fd::AsFd::as_fd(&fd), None, None)
        .await?;
    let b = nl.require_link(b).await?;
    Ok((a, b))
}

#[tokio::test]
async fn veth_peer_is_created_inside_the_namespace_under_its_final_name() {
    let host = TestNs::new();
    let pod = TestNs::new();
    let real_eth0_before = Netlink::connect()
        .unwrap()
        .link_by_name("eth0")
        .await
        .unwrap();
    let mac = [0x0a, 0x58, 0x0a, 0x16, 0x00, 0x05];

    let pod_path = pod.path().to_path_buf();
    let (veth, bridge, created_in) = host
        .run(move |nl| async move {
            // A link called eth0 where the veth is made: creating the peer here
            // first and renaming it later would collide with it.
            let decoy = nl.ensure_bridge("eth0", &BridgeOptions::default()).await?;
            let bridge = nl
                .ensure_bridge(
                    "cni0",
                    &BridgeOptions {
                        mtu: Some(1400),
                        ..Default::default()
                    },
                )
                .await?;
            let fd = netns::open(&pod_path)?;
            let started = Instant::now();
            let veth = nl
                .create_veth(
                    "vethpod0",
                    "eth0",
                    std::os::fd::AsFd::as_fd(&fd),
                    Some(1400),
                    Some(mac),
                )
                .await?;
            let created_in = started.elapsed();
            nl.set_master(veth.index, bridge.index).await?;
            let attached = nl.link_by_index(veth.index).await?.unwrap();
            assert_eq!(attached.master, Some(bridge.index));
            let still_decoy = nl.require_link("eth0").await?;
            assert_eq!(still_decoy.index, decoy.index);
            assert_eq!(still_decoy.kind.as_deref(), Some("bridge"));

            // Either name taken: an exists error, and nothing half-made left behind.
            let again = nl
                .create_veth(
                    "vethpod0",
                    "eth1",
                    std::os::fd::AsFd::as_fd(&fd),
                    None,
                    None,
                )
                .await
                .unwrap_err();
            assert!(again.is_exists(), "{again}");
            let peer_taken = nl
                .create_veth(
                    "vethpod1",
                    "eth0",
                    std::os::fd::AsFd::as_fd(&fd),
                    None,
                    None,
                )
                .await
                .unwrap_err();
            assert!(peer_taken.is_exists(), "{peer_taken}");
            assert!(nl.link_by_name("vethpod1").await?.is_none());
            Ok((veth, bridge, created_in))
        })
        .await;
    eprintln!("create_veth took {created_in:?}");

    assert_eq!(veth.name, "vethpod0");
    assert_eq!(veth.kind.as_deref(), Some("veth"));
    assert!(veth.up, "the host side is brought up");
    assert_eq!(veth.mtu, 1400);
    assert_eq!(bridge.mtu, 1400);
    let peer_index = veth.peer_index.expect("a veth reports its peer's index");

    let peer = pod
        .run(|nl| async move {
            let peer = nl.require_link("eth0").await?;
            assert!(nl.link_by_name("eth1").await?.is_none());
            Ok(peer)
        })
        .await;
    assert_eq!(peer.index, peer_index);
    assert_eq!(peer.kind.as_deref(), Some("veth"));
    assert_eq!(peer.mac, Some(mac));
    assert_eq!(peer.mtu, 1400);
    assert!(!peer.up, "the peer is left for the caller to bring up");
    assert_eq!(peer.peer_index, Some(veth.index));

    // The machine's own eth0 (if any) was never touched.
    let real_eth0_after = Netlink::connect()
        .unwrap()
        .link_by_name("eth0")
        .await
        .unwrap();
    assert_eq!(
        real_eth0_before.map(|l| l.index),
        real_eth0_after.map(|l| l.index)
    );
}

#[tokio::test]
async fn addresses_and_routes_inside_a_namespace() {
    let pod = TestNs::new();
    let path = pod.path().to_path_buf();
    pod.run(move |nl| async move {
        let lo = nl.require_link("lo").await?;
        nl.set_up(lo.index).await?;
        let (host, eth0) = veth_in_place(&nl, &path, "veth0", "eth0").await?;
        sysctl::write("net/ipv6/conf/eth0/accept_dad", "0")?;
        assert_eq!(sysctl::read("net/ipv6/conf/eth0/accept_dad")?, "0");

        let v4 = net("10.22.0.5/24");
        let v6 = net("fd00:22::5/64");
        for addr in [v4, v6] {
            nl.add_address(eth0.index, addr).await?;
            nl.add_address(eth0.index, addr).await?; // already there: fine
        }
        let have = nl.addresses(eth0.index).await?;
        assert!(have.contains(&v4) && have.contains(&v6), "{have:?}");
        assert!(nl.addresses(lo.index).await?.contains(&net("127.0.0.1/8")));
        assert!(!nl.addresses(lo.index).await?.contains(&v4));
        nl.set_up(host.index).await?;
        nl.set_up(eth0.index).await?;

        let default = RouteSpec {
            gateway: Some(ip("10.22.0.1")),
            oif: Some(eth0.index),
            mtu: Some(1400),
            advmss: Some(1360),
            ..RouteSpec::to(net("0.0.0.0/0"))
        };
        nl.add_route(&default).await?;
        nl.add_route(&default).await?; // identical: fine
        let other_gw = RouteSpec {
            gateway: Some(ip("10.22.0.2")),
            ..default.clone()
        };
        let clash = nl.add_route(&other_gw).await.unwrap_err();
        assert!(clash.is_exists(), "{clash}");

        let v6_route = RouteSpec {
            gateway: Some(ip("fd00:22::1")),
            oif: Some(eth0.index),
            ..RouteSpec::to(net("fd00:23::/64"))
        };
        nl.add_route(&v6_route).await?;
        let in_table = RouteSpec {
            table: Some(100),
            ..RouteSpec::to(net("10.23.0.0/16"))
        };
        let scoped = RouteSpec {
            oif: Some(eth0.index),
            ..in_table.clone()
        };
        nl.add_route(&scoped).await?;

        let v4_routes = nl.routes(Family::V4).await?;
        let got = v4_routes
            .iter()
            .find(|r| r.dst == net("0.0.0.0/0"))
            .unwrap_or_else(|| panic!("no default route in {v4_routes:?}"));
        assert_eq!(got.gateway, default.gateway);
        assert_eq!(got.oif, Some(eth0.index));
        assert_eq!((got.mtu, got.advmss), (Some(1400), Some(1360)));
        assert_eq!(got.table, None, "main table reads back as None");
        assert!(
            v4_routes
                .iter()
                .any(|r| r.dst == net("10.22.0.0/24") && r.gateway.is_none())
        );
        assert!(v4_routes.iter().all(|r| r.dst.addr().is_ipv4()));
        assert!(
            !v4_routes.iter().any(|r| r.dst == in_table.dst),
            "table 100 is not main"
        );
        let all = nl.routes(Family::All).await?;
        assert!(all.iter().any(|r| r.same_route(&v6_route)), "{all:?}");
        assert!(all.iter().any(|r| r.same_route(&default)));
        assert!(
            nl.routes(Family::V6)
                .await?
                .iter()
                .all(|r| r.dst.addr().is_ipv6())
        );
        let t100 = nl.routes_in_table(Family::V4, 100).await?;
        assert_eq!(t100.len(), 1, "{t100:?}");
        assert!(t100[0].same_route(&in_table));
        assert_eq!(t100[0].table, Some(100));
        assert!(nl.routes_in_table(Family::V6, 4242).await?.is_empty());

        for route in [&default, &v6_route, &in_table] {
            nl.del_route(route).await?;
            nl.del_route(route).await?; // gone already: fine
        }
        let left = nl.routes(Family::All).await?;
        assert!(
            !left
                .iter()
                .any(|r| r.same_route(&default) || r.same_route(&v6_route))
        );
        assert!(nl.routes_in_table(Family::V4, 100).await?.is_empty());

        nl.del_address(eth0.index, v4).await?;
        nl.del_address(eth0.index, v4).await?; // gone already: fine
        nl.del_address(eth0.index, v6).await?;
        let have = nl.addresses(eth0.index).await?;
        assert!(!have.contains(&v4) && !have.contains(&v6), "{have:?}");

        let bad = RouteSpec {
            gateway: Some(ip("fd00::1")),
            ..RouteSpec::to(net("10.0.0.0/8"))
        };
        assert!(matches!(
            nl.add_route(&bad).await,
            Err(NetlinkError::Invalid { .. })
        ));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn ensure_bridge_is_idempotent_and_refuses_other_kinds() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    let opts = BridgeOptions {
        mtu: Some(1450),
        vlan_filtering: false,
        promisc: true,
    };
    let first = ns
        .run({
            let opts = opts.clone();
            move |nl| async move { nl.ensure_bridge("br0", &opts).await }
        })
        .await;
    assert_eq!(first.kind.as_deref(), Some("bridge"));
    assert!(first.up && first.promisc);
    assert_eq!(first.mtu, 1450);

    let (second, repaired) = ns
        .run(move |nl| async move {
            let second = nl.ensure_bridge("br0", &opts).await?;
            // Drifted away from what was asked: put back.
            nl.set_down(second.index).await?;
            nl.set_mtu(second.index, 1300).await?;
            nl.set_promisc(second.index, false).await?;
            let repaired = nl.ensure_bridge("br0", &opts).await?;

            veth_in_place(&nl, &path, "notbr0", "notbr1").await?;
            match nl.ensure_bridge("notbr0", &BridgeOptions::default()).await {
                Err(NetlinkError::NotABridge { name, kind }) => {
                    assert_eq!(name, "notbr0");
                    assert_eq!(kind.as_deref(), Some("veth"));
                }
                other => panic!("ensure_bridge on a veth gave {other:?}"),
            }
            Ok((second, repaired))
        })
        .await;
    assert_eq!(second, first);
    assert_eq!(repaired.index, first.index);
    assert!(repaired.up && repaired.promisc);
    assert_eq!(repaired.mtu, 1450);
}

#[tokio::test]
async fn delete_link_is_idempotent_and_takes_the_peer() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    ns.run(move |nl| async move {
        let (a, b) = veth_in_place(&nl, &path, "dela", "delb").await?;
        nl.delete_link(a.index).await?;
        nl.delete_link(a.index).await?;
        nl.delete_link(b.index).await?;
        assert!(nl.link_by_index(a.index).await?.is_none());
        assert!(nl.link_by_name("delb").await?.is_none());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn link_setters_and_lookups() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    ns.run(move |nl| async move {
        let (a, b) = veth_in_place(&nl, &path, "seta", "setb").await?;
        let mac = netlink::parse_mac("02:00:00:aa:bb:cc")?;
        nl.set_mac(a.index, mac).await?;
        nl.set_mtu(a.index, 1280).await?;
        nl.set_promisc(a.index, true).await?;
        nl.set_up(a.index).await?;
        let got = nl.link_by_index(a.index).await?.unwrap();
        assert_eq!(
            (got.mac, got.mtu, got.promisc, got.up),
            (Some(mac), 1280, true, true)
        );
        assert_eq!(got.peer_index, Some(b.index));
        nl.set_promisc(a.index, false).await?;
        nl.set_down(a.index).await?;
        let got = nl.link_by_name("seta").await?.unwrap();
        assert!(!got.promisc && !got.up);

        let br = nl.ensure_bridge("setbr", &BridgeOptions::default()).await?;
        nl.set_master(b.index, br.index).await?;
        assert_eq!(
            nl.link_by_index(b.index).await?.unwrap().master,
            Some(br.index)
        );
        nl.set_nomaster(b.index).await?;
        assert_eq!(nl.link_by_index(b.index).await?.unwrap().master, None);

        let all = nl.links().await?;
        for name in ["lo", "seta", "setb", "setbr"] {
            assert!(
                all.iter().any(|l| l.name == name),
                "{name} missing from {all:?}"
            );
        }
        assert!(nl.link_by_name("nosuchlink").await?.is_none());
        assert!(nl.link_by_index(999_999).await?.is_none());
        assert!(matches!(
            nl.link_by_name("a-name-far-too-long").await,
            Err(NetlinkError::Invalid { .. })
        ));
        let missing = nl.set_up(999_999).await.unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(missing.to_string().contains("999999"), "{missing}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn bridge_port_hairpin() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    let (on, port, on_bridge) = ns
        .run(move |nl| async move {
            let br = nl.ensure_bridge("br0", &BridgeOptions::default()).await?;
            let (port, _) = veth_in_place(&nl, &path, "port0", "pod0").await?;
            assert_eq!(nl.hairpin(port.index).await?, None, "not a bridge port yet");
            nl.set_master(port.index, br.index).await?;
            assert_eq!(nl.hairpin(port.index).await?, Some(false));
            nl.set_hairpin(port.index, true).await?;
            let on = nl.hairpin(port.index).await?;
            Ok((on, port.index, nl.hairpin(br.index).await?))
        })
        .await;
    assert_eq!(on, Some(true));
    assert_eq!(on_bridge, None, "the bridge itself is not a port");
    let slave = &ns.json("ip", &["link", "show", "port0"])[0]["linkinfo"]["info_slave_data"];
    assert_eq!(slave["hairpin"], true, "{slave}");

    let after = ns
        .run(move |nl| async move {
            nl.set_hairpin(port, false).await?;
            nl.hairpin(port).await
        })
        .await;
    assert_eq!(after, Some(false));
    let slave = &ns.json("ip", &["link", "show", "port0"])[0]["linkinfo"]["info_slave_data"];
    assert_eq!(slave["hairpin"], false, "{slave}");
}

/// Whether this kernel's bridge filters VLANs (CONFIG_BRIDGE_VLAN_FILTERING), asked
/// of iproute2 so that the answer does not come from the code under test.
fn kernel_has_bridge_vlans(ns: &TestNs) -> bool {
    let out = Command::new("ip")
        .args([
            "-n", &ns.name, "link", "add", "name", "vlprobe", "type", "bridge",
        ])
        .args(["vlan_filtering", "1"])
        .output()
        .unwrap();
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Operation not supported"),
        "probing bridge VLAN support: {err}"
    );
    false
}

/// With VLAN filtering in the kernel: the bridge gets it (also later, on an existing
/// bridge) and ports and the bridge itself get VLANs. Without it (this machine's
/// kernel): both are refused with EOPNOTSUPP and an error naming what was asked,
/// and no bridge is left half-made. The message encoding is checked against
/// iproute2's bytes by a unit test either way.
#[tokio::test]
async fn bridge_vlans_or_a_clear_refusal() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    let filtering = BridgeOptions {
        vlan_filtering: true,
        ..Default::default()
    };
    if !kernel_has_bridge_vlans(&ns) {
        eprintln!("this kernel has no bridge VLAN filtering: checking the refusal");
        let (create, vlan, left) = ns
            .run(move |nl| async move {
                let create = nl.ensure_bridge("br0", &filtering).await.unwrap_err();
                let left = nl.link_by_name("br0").await?;
                let br = nl.ensure_bridge("br1", &BridgeOptions::default()).await?;
                let (port, _) = veth_in_place(&nl, &path, "port0", "pod0").await?;
                nl.set_master(port.index, br.index).await?;
                let vlan = nl
                    .bridge_vlan_add(port.index, 100, true, true, false)
                    .await
                    .unwrap_err();
                Ok((create, vlan, left))
            })
            .await;
        assert_eq!(create.errno(), Some(libc::EOPNOTSUPP), "{create}");
        assert!(
            create.to_string().contains("br0 with vlan_filtering"),
            "{create}"
        );
        assert!(left.is_none(), "a refused bridge is not left behind");
        assert_eq!(vlan.errno(), Some(libc::EOPNOTSUPP), "{vlan}");
        assert!(vlan.to_string().contains("add vlan 100"), "{vlan}");
        return;
    }

    ns.run(move |nl| async move {
        let br = nl.ensure_bridge("br0", &filtering).await?;
        let (port, _) = veth_in_place(&nl, &path, "port0", "pod0").await?;
        nl.set_master(port.index, br.index).await?;
        nl.bridge_vlan_add(port.index, 100, true, true, false)
            .await?;
        nl.bridge_vlan_add(br.index, 100, false, false, true)
            .await?;
        let bad = nl.bridge_vlan_add(port.index, 0, false, false, false).await;
        assert!(matches!(bad, Err(NetlinkError::Invalid { .. })), "{bad:?}");
        // A bridge made without filtering gets it when a later caller asks.
        nl.ensure_bridge("br1", &BridgeOptions::default()).await?;
        nl.ensure_bridge("br1", &filtering).await.map(drop)
    })
    .await;
    for br in ["br0", "br1"] {
        let info = &ns.json("ip", &["link", "show", br])[0]["linkinfo"]["info_data"];
        assert_eq!(info["vlan_filtering"], 1, "{br}: {info}");
    }
    let vlans = ns.json("bridge", &["vlan", "show"]);
    let vlans_of = |dev: &str| -> Vec<Value> {
        vlans
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ifname"] == dev)
            .unwrap_or_else(|| panic!("no vlans for {dev} in {vlans}"))["vlans"]
            .as_array()
            .unwrap()
            .clone()
    };
    let port_vlan = vlans_of("port0")
        .into_iter()
        .find(|v| v["vlan"] == 100)
        .unwrap_or_else(|| panic!("no vlan 100 on port0 in {vlans}"));
    let flags: Vec<&str> = port_vlan["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        flags.contains(&"PVID") && flags.contains(&"Egress Untagged"),
        "{port_vlan}"
    );
    assert!(vlans_of("br0").iter().any(|v| v["vlan"] == 100), "{vlans}");
}

#[tokio::test]
async fn vxlan_with_options_fdb_and_neighbours() {
    let ns = TestNs::new();
    let remote_mac = [0x02, 0x42, 0x0a, 0xf4, 0x01, 0x00];
    let vx = ns
        .run(move |nl| async move {
            let underlay = nl.ensure_bridge("ul0", &BridgeOptions::default()).await?;
            nl.add_address(underlay.index, net("192.0.2.1/24")).await?;
            let opts = VxlanOptions {
                vni: 4242,
                local: Some(ip("192.0.2.1")),
                underlay: Some(underlay.index),
                port: 4789,
                learning: false,
                mtu: Some(1450),
            };
            let vx = nl.create_vxlan("vx0", &opts).await?;
            let dup = nl.create_vxlan("vx0", &opts).await.unwrap_err();
            assert!(dup.is_exists(), "{dup}");
            let too_big = VxlanOptions {
                vni: 1 << 24,
                ..opts.clone()
            };
            assert!(matches!(
                nl.create_vxlan("vx1", &too_big).await,
                Err(NetlinkError::Invalid { .. })
            ));

            let zero = [0u8; 6];
            for dst in ["192.0.2.2", "192.0.2.3", "192.0.2.3"] {
                nl.add_fdb(vx.index, zero, ip(dst)).await?;
            }
            nl.add_fdb(vx.index, remote_mac, ip("192.0.2.2")).await?;
            nl.add_fdb(vx.index, remote_mac, ip("192.0.2.3")).await?; // moved node
            nl.add_neighbour(vx.index, ip("10.244.1.0"), remote_mac)
                .await?;
            nl.add_neighbour(vx.index, ip("10.244.1.0"), remote_mac)
                .await?;
            Ok(vx)
        })
        .await;
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    assert!(vx.up);
    assert_eq!(vx.mtu, 1450);

    let link = &ns.json("ip", &["link", "show", "vx0"])[0];
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(data["id"], 4242, "{data}");
    assert_eq!(data["local"], "192.0.2.1", "{data}");
    assert_eq!(data["port"], 4789, "{data}");
    assert_eq!(data["learning"], false, "{data}");
    assert_eq!(data["link"], "ul0", "{data}");

    let fdb = ns.json("bridge", &["fdb", "show", "dev", "vx0"]);
    let entries = fdb.as_array().unwrap();
    let dsts_of = |mac: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["mac"] == mac)
            .filter_map(|e| e["dst"].as_str().map(str::to_string))
            .collect()
    };
    let mut flood = dsts_of("00:00:00:00:00:00");
    flood.sort();
    assert_eq!(flood, ["192.0.2.2", "192.0.2.3"], "{fdb}");
    assert_eq!(
        dsts_of(&netlink::format_mac(remote_mac)),
        ["192.0.2.3"],
        "{fdb}"
    );

    let neigh = ns.json("ip", &["neigh", "show", "dev", "vx0"]);
    let entry = neigh
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["dst"] == "10.244.1.0")
        .unwrap_or_else(|| panic!("no neighbour in {neigh}"));
    assert_eq!(entry["lladdr"], netlink::format_mac(remote_mac));
    assert!(
        entry["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "PERMANENT"),
        "{entry}"
    );

    ns.run(move |nl| async move {
        nl.del_fdb(vx.index, remote_mac, ip("192.0.2.3")).await?;
        nl.del_fdb(vx.index, remote_mac, ip("192.0.2.3")).await?;
        nl.del_neighbour(vx.index, ip("10.244.1.0")).await?;
        nl.del_neighbour(vx.index, ip("10.244.1.0")).await
    })
    .await;
    let fdb = ns.json("bridge", &["fdb", "show", "dev", "vx0"]);
    assert!(
        !fdb.as_array()
            .unwrap()
            .iter()
            .any(|e| e["mac"] == netlink::format_mac(remote_mac)),
        "{fdb}"
    );
    let neigh = ns.json("ip", &["neigh", "show", "dev", "vx0"]);
    assert!(neigh.as_array().unwrap().is_empty(), "{neigh}");
}

fn mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(path))
}

#[tokio::test]
async fn netns_create_open_remove() {
    let ns = TestNs::new();
    let path = ns.path().to_path_buf();
    assert!(mounted(&path));
    netns::open(&path).unwrap();
    assert!(matches!(
        netns::create(&path),
        Err(NetlinkError::NetnsExists(_))
    ));
    assert!(
        mounted(&path),
        "a failed second create leaves the first alone"
    );

    netns::remove(&path).unwrap();
    assert!(!path.exists());
    assert!(!mounted(&path));
    netns::remove(&path).unwrap();
    assert!(matches!(
        netns::open(&path),
        Err(NetlinkError::NetnsNotFound(_))
    ));
    let err = netns::run_in(&path, |_nl| async { Ok(()) })
        .await
        .unwrap_err();
    assert!(matches!(err, NetlinkError::NetnsNotFound(_)), "{err}");

    // A bare mount point left behind with nothing mounted on it: gone, too.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale");
    std::fs::write(&stale, b"").unwrap();
    assert!(matches!(
        netns::open(&stale),
        Err(NetlinkError::NetnsNotFound(_))
    ));
    // Other namespace kinds are refused, not mistaken for a missing one.
    let uts = netns::open(Path::new("/proc/self/ns/uts")).unwrap_err();
    assert!(matches!(uts, NetlinkError::Netns { .. }), "{uts}");
    netns::open(Path::new("/proc/self/ns/net")).unwrap();
}

#[tokio::test]
async fn run_in_isolates_sysctls_and_returns_results() {
    let ns = TestNs::new();
    let key = "net/ipv4/ip_forward";
    let host_before = sysctl::read(key).unwrap();
    // The opposite of the caller's value, so a write that leaked would show.
    let flipped = if host_before == "1" { "0" } else { "1" };
    let (after, lo) = ns
        .run(move |nl| async move {
            sysctl::write(key, flipped)?;
            sysctl::write(key, flipped)?;
            Ok((sysctl::read(key)?, nl.require_link("lo").await?))
        })
        .await;
    assert_eq!(after, flipped);
    assert_eq!(sysctl::read(key).unwrap(), host_before);
    assert!(!lo.up, "a fresh namespace's lo is down");

    let failed = netns::run_in(ns.path(), |nl| async move {
        nl.require_link("nosuchlink").await?;
        Ok(())
    })
    .await;
    assert!(matches!(failed, Err(NetlinkError::LinkNotFound(n)) if n == "nosuchlink"));
    assert!(sysctl::write("../../etc/hostname", "x").is_err());
    assert!(matches!(
        sysctl::read("net/ipv4/no_such_key"),
        Err(NetlinkError::Sysctl { .. })
    ));

    // The caller's own namespace is untouched: its lo is still the host's.
    let host_lo = Netlink::connect()
        .unwrap()
        .require_link("lo")
        .await
        .unwrap();
    assert!(host_lo.up);
}

/// The CNI ADD path (bridge lookup, veth into the pod, port setup, then address,
/// link and route inside the pod) must stay within a few milliseconds: no dumps,
/// no sleeps. The bound is loose so that a busy machine does not fail it; the
/// time is printed.
#[tokio::test]
async fn an_add_sequence_is_fast() {
    let host = TestNs::new();
    let pod = TestNs::new();
    let pod_path = pod.path().to_path_buf();
    host.run(|nl| async move {
        nl.ensure_bridge("cni0", &BridgeOptions::default())
            .await
            .map(drop)
    })
    .await;
    let started = Instant::now();
    let veth = host
        .run(move |nl| async move {
            let br = nl.ensure_bridge("cni0", &BridgeOptions::default()).await?;
            let fd = netns::open(&pod_path)?;
            let name = netlink::random_veth_name();
            let veth = nl
                .create_veth(
                    &name,
                    "eth0",
                    std::os::fd::AsFd::as_fd(&fd),
                    Some(1500),
                    None,
                )
                .await?;
            nl.set_master(veth.index, br.index).await?;
            nl.set_hairpin(veth.index, true).await?;
            nl.set_up(veth.index).await?;
            Ok(veth)
        })
        .await;
    pod.run(|nl| async move {
        let eth0 = nl.require_link("eth0").await?;
        nl.add_address(eth0.index, net("10.88.0.7/16")).await?;
        nl.set_up(eth0.index).await?;
        nl.add_route(&RouteSpec {
            gateway: Some(ip("10.88.0.1")),
            ..RouteSpec::to(net("0.0.0.0/0"))
        })
        .await
    })
    .await;
    let took = started.elapsed();
    eprintln!("ADD-like sequence took {took:?}");
    assert!(
        veth.name.starts_with("veth") && veth.name.len() == 12,
        "{}",
        veth.name
    );
    assert!(took < Duration::from_millis(500), "took {took:?}");
}
