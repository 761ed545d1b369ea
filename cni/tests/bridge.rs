//! skiff-bridge + skiff-ipam on the real kernel, driven exactly as a runtime drives them.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn path() -> String {
    format!("{}:{}", skiff_bin_dir(), REFERENCE_DIR)
}

fn add(fx: &Fixture, conf: &str, id: &str, ns: &str) -> Value {
    let _ = fx;
    cni(BRIDGE_BIN, "ADD", id, ns, "eth0", &path(), conf)
        .ok()
        .json()
}

fn pod_ip(result: &Value) -> IpAddr {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().parse().unwrap()
}

fn with_prev(conf: &str, prev: &Value) -> String {
    let mut c: Value = serde_json::from_str(conf).unwrap();
    c["prevResult"] = prev.clone();
    c.to_string()
}

/// A netns standing for the world outside the node: a veth from the host with
/// 198.19.<slot>.1 (host) and .2 (outside).
fn outside(fx: &mut Fixture) -> (String, IpAddr, IpAddr) {
    let ns = fx.netns("out");
    let name = ns.rsplit('/').next().unwrap().to_string();
    let host_if = format!("sko{}", fx.slot);
    fx.track_link(&host_if);
    sh(&[
        "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
    ]);
    let host_ip = format!("198.19.{}.1", fx.slot);
    let out_ip = format!("198.19.{}.2", fx.slot);
    sh(&[
        "ip",
        "addr",
        "add",
        &format!("{host_ip}/30"),
        "dev",
        &host_if,
    ]);
    sh(&["ip", "link", "set", &host_if, "up"]);
    sh(&[
        "ip",
        "-n",
        &name,
        "addr",
        "add",
        &format!("{out_ip}/30"),
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &name, "link", "set", "eth0", "up"]);
    (ns, host_ip.parse().unwrap(), out_ip.parse().unwrap())
}

#[test]
fn two_pods_reach_each_other_and_the_gateway() {
    let mut fx = Fixture::new();
    let conf = fx.conf("1.0.0", "skiff-ipam", "");
    let (a, b) = (fx.netns("a"), fx.netns("b"));
    let ra = add(&fx, &conf, "pod-a", &a);
    let rb = add(&fx, &conf, "pod-b", &b);
    assert_eq!(ra["cniVersion"], "1.0.0");
    assert_eq!(ra["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(ra["interfaces"][0]["name"], fx.bridge());
    assert_eq!(ra["interfaces"][2]["sandbox"], a.as_str());
    assert_eq!(ra["ips"][0]["interface"], 2);
    assert_eq!(ra["ips"][0]["gateway"], fx.gateway().to_string());
    let (ip_a, ip_b) = (pod_ip(&ra), pod_ip(&rb));
    assert_ne!(ip_a, ip_b);

    let _srv = echo_peer_server(Some(&b), SocketAddr::new(ip_b, 8000));
    assert_eq!(
        connect_from(Some(&a), SocketAddr::new(ip_b, 8000)).unwrap(),
        ip_a.to_string()
    );
    let gw = SocketAddr::new(IpAddr::V4(fx.gateway()), 18000 + fx.slot as u16);
    let _host = echo_peer_server(None, gw);
    assert_eq!(connect_from(Some(&a), gw).unwrap(), ip_a.to_string());

    cni(BRIDGE_BIN, "DEL", "pod-a", &a, "eth0", &path(), &conf).ok();
    cni(BRIDGE_BIN, "DEL", "pod-b", &b, "eth0", &path(), &conf).ok();
    assert!(
        sh(&["ip", "-n", a.rsplit('/').next().unwrap(), "-o", "link"])
            .lines()
            .all(|l| !l.contains("eth0"))
    );
    let left: Vec<_> = std::fs::read_dir(fx.data_dir().join(fx.network()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("198.")),
        "addresses leaked: {left:?}"
    );
}

#[test]
fn masquerade_reaches_the_outside() {
    let mut fx = Fixture::new();
    let (out_ns, host_ip, out_ip) = outside(&mut fx);
    let conf = fx.conf("1.1.0", "skiff-ipam", "");
    let pod = fx.netns("p");
    add(&fx, &conf, "pod-m", &pod);
    let target = SocketAddr::new(out_ip, 9000);
    let _srv = echo_peer_server(Some(&out_ns), target);
    // The outside has no route to the pod subnet: only a masqueraded connection returns.
    assert_eq!(
        connect_from(Some(&pod), target).unwrap(),
        host_ip.to_string()
    );
    cni(BRIDGE_BIN, "DEL", "pod-m", &pod, "eth0", &path(), &conf).ok();
    assert!(
        connect_from(Some(&pod), target).is_err(),
        "the pod still reaches out after DEL"
    );
}

#[test]
fn non_masquerade_ranges_see_the_pod_address() {
    let mut fx = Fixture::new();
    let (out_ns, host_ip, out_ip) = outside(&mut fx);
    // A range holding both the pod subnet (198.18.<slot>.0/24) and the outside, as a
    // cluster CIDR holds the node's pod range and the other nodes'.
    let conf = fx.conf(
        "1.1.0",
        "skiff-ipam",
        r#","nonMasqueradeCIDRs":["198.18.0.0/15"]"#,
    );
    let pod = fx.netns("p");
    let r = add(&fx, &conf, "pod-n", &pod);
    // As another node would: the outside routes the pod subnet back through the host.
    let out_name = out_ns.rsplit('/').next().unwrap().to_string();
    sh(&[
        "ip",
        "-n",
        &out_name,
        "route",
        "add",
        &fx.subnet(),
        "via",
        &host_ip.to_string(),
    ]);
    let target = SocketAddr::new(out_ip, 9000);
    let _srv = echo_peer_server(Some(&out_ns), target);
    assert_eq!(
        connect_from(Some(&pod), target).unwrap(),
        pod_ip(&r).to_string()
    );
    cni(BRIDGE_BIN, "DEL", "pod-n", &pod, "eth0", &path(), &conf).ok();
}

#[test]
fn host_port_maps_from_the_host_and_outside() {
    let mut fx = Fixture::new();
    let (out_ns, host_ip, _) = outside(&mut fx);
    let host_port = 20000 + fx.slot as u16;
    let conf = fx.conf(
        "1.0.0",
        "skiff-ipam",
        &format!(r#","runtimeConfig":{{"portMappings":[{{"hostPort":{host_port},"containerPort":80,"protocol":"tcp"}}]}}"#),
    );
    let pod = fx.netns("p");
    let r = add(&fx, &conf, "pod-hp", &pod);
    let _srv = echo_peer_server(Some(&pod), SocketAddr::new(pod_ip(&r), 80));
    let front = SocketAddr::new(host_ip, host_port);
    assert!(
        connect_from(Some(&out_ns), front).is_ok(),
        "hostPort not reachable from outside"
    );
    assert!(
        connect_from(None, front).is_ok(),
        "hostPort not reachable from the host itself"
    );
    cni(BRIDGE_BIN, "DEL", "pod-hp", &pod, "eth0", &path(), &conf).ok();
    assert!(
        connect_from(Some(&out_ns), front).is_err(),
        "hostPort still mapped after DEL"
    );
}

#[test]
fn check_passes_then_fails_after_the_address_is_removed() {
    let mut fx = Fixture::new();
    let conf = fx.conf("1.0.0", "skiff-ipam", "");
    let ns = fx.netns("c");
    let r = add(&fx, &conf, "pod-c", &ns);
    let checked = with_prev(&conf, &r);
    cni(BRIDGE_BIN, "CHECK", "pod-c", &ns, "eth0", &path(), &checked).ok();
    let addr = r["ips"][0]["address"].as_str().unwrap();
    sh(&[
        "ip",
        "-n",
        ns.rsplit('/').next().unwrap(),
        "addr",
        "del",
        addr,
        "dev",
        "eth0",
    ]);
    let out = cni(BRIDGE_BIN, "CHECK", "pod-c", &ns, "eth0", &path(), &checked);
    assert_ne!(out.code, 0);
    assert!(
        out.json()["msg"]
            .as_str()
            .unwrap()
            .contains("does not have address"),
        "{}",
        out.stdout
    );
    cni(BRIDGE_BIN, "DEL", "pod-c", &ns, "eth0", &path(), &checked).ok();
}

#[test]
fn del_twice_and_with_the_netns_gone() {
    let mut fx = Fixture::new();
    // A /30 holds one pod address: after DEL the next pod must get it back.
    let conf = fx
        .conf("1.0.0", "skiff-ipam", "")
        .replace(&fx.subnet(), &format!("198.18.{}.0/30", fx.slot));
    let ns = fx.netns("d");
    let r = add(&fx, &conf, "pod-d", &ns);
    let ip = pod_ip(&r).to_string();
    let ip_file = fx.data_dir().join(fx.network()).join(&ip);
    assert!(ip_file.exists());
    sh(&["ip", "netns", "del", ns.rsplit('/').next().unwrap()]);
    cni(BRIDGE_BIN, "DEL", "pod-d", &ns, "eth0", &path(), &conf).ok();
    assert!(!ip_file.exists(), "IP not released when the netns was gone");
    cni(BRIDGE_BIN, "DEL", "pod-d", &ns, "eth0", &path(), &conf).ok();
    cni(BRIDGE_BIN, "DEL", "pod-d", "", "eth0", &path(), &conf).ok();
    // The address is free again: the next pod can have it.
    let again = fx.netns("e");
    let r2 = add(&fx, &conf, "pod-e", &again);
    assert_eq!(
        pod_ip(&r2).to_string(),
        ip,
        "the only address was not reusable"
    );
    cni(BRIDGE_BIN, "DEL", "pod-e", &again, "eth0", &path(), &conf).ok();
}

#[test]
fn fifty_parallel_adds_get_distinct_addresses() {
    let mut fx = Fixture::new();
    let conf = fx.conf("1.0.0", "skiff-ipam", "");
    let namespaces: Vec<String> = (0..50).map(|i| fx.netns(&format!("q{i}"))).collect();
    let handles: Vec<_> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let (conf, ns) = (conf.clone(), ns.clone());
            std::thread::spawn(move || {
                cni(
                    BRIDGE_BIN,
                    "ADD",
                    &format!("par-{i}"),
                    &ns,
                    "eth0",
                    &path(),
                    &conf,
                )
                .ok()
                .json()
            })
        })
        .collect();
    let mut ips: Vec<IpAddr> = handles
        .into_iter()
        .map(|h| pod_ip(&h.join().unwrap()))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50);
    let files = std::fs::read_dir(fx.data_dir().join(fx.network()))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("198."))
        .count();
    assert_eq!(files, 50);
    let ports = sh(&["ip", "-o", "link", "show", "master", &fx.bridge()])
        .lines()
        .count();
    assert_eq!(ports, 50);
}

#[test]
fn gc_releases_what_is_not_listed() {
    let mut fx = Fixture::new();
    let conf = fx.conf("1.1.0", "skiff-ipam", "");
    let keep = fx.netns("k");
    let gone = fx.netns("g");
    add(&fx, &conf, "keep", &keep);
    let stale = add(&fx, &conf, "stale", &gone);
    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    cni_env(
        BRIDGE_BIN,
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", &path())],
        &gc.to_string(),
    )
    .ok();
    let dir = fx.data_dir().join(fx.network());
    assert!(
        !dir.join(pod_ip(&stale).to_string()).exists(),
        "GC kept the stale address"
    );
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("198."))
        .count();
    assert_eq!(kept, 1);
    let table = sh(&["nft", "list", "table", "inet", &fx.table()]);
    assert!(
        !table.contains(&pod_ip(&stale).to_string()),
        "GC kept the stale masquerade: {table}"
    );
}

#[test]
fn results_in_the_version_asked_for() {
    let mut fx = Fixture::new();
    for (i, v) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let conf = fx.conf(v, "skiff-ipam", "");
        let ns = fx.netns(&format!("v{i}"));
        let r = add(&fx, &conf, &format!("ver-{i}"), &ns);
        assert_eq!(r["cniVersion"], *v);
        assert_eq!(
            r["ips"][0].get("version").is_some(),
            v.starts_with('0'),
            "{v}: {r}"
        );
        cni(
            BRIDGE_BIN,
            "DEL",
            &format!("ver-{i}"),
            &ns,
            "eth0",
            &path(),
            &with_prev(&conf, &r),
        )
        .ok();
    }
    let out = cni_env(
        BRIDGE_BIN,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.1.0"}"#,
    )
    .ok()
    .json();
    assert_eq!(
        out["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn dual_stack() {
    let mut fx = Fixture::new();
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"{net}","type":"skiff-bridge","bridge":"{br}","isDefaultGateway":true,
            "firewallTable":"{table}","stateDir":"{state}",
            "ipam":{{"type":"skiff-ipam","dataDir":"{data}","ranges":[[{{"subnet":"{s4}"}}],[{{"subnet":"{s6}"}}]]}}}}"#,
        net = fx.network(),
        br = fx.bridge(),
        table = fx.table(),
        state = fx.state_dir().display(),
        data = fx.data_dir().display(),
        s4 = fx.subnet(),
        s6 = fx.subnet6(),
    );
    let (a, b) = (fx.netns("a"), fx.netns("b"));
    let ra = add(&fx, &conf, "ds-a", &a);
    let rb = add(&fx, &conf, "ds-b", &b);
    assert_eq!(ra["ips"].as_array().unwrap().len(), 2);
    let routes: Vec<&str> = ra["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dst"].as_str().unwrap())
        .collect();
    assert!(
        routes.contains(&"0.0.0.0/0") && routes.contains(&"::/0"),
        "{routes:?}"
    );
    let b6: IpAddr = rb["ips"][1]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _srv = echo_peer_server(Some(&b), SocketAddr::new(b6, 8000));
    let seen = connect_from(Some(&a), SocketAddr::new(b6, 8000)).unwrap();
    assert!(seen.contains(':'), "IPv6 peer expected, got {seen}");
    let bridge_addrs = sh(&["ip", "-o", "addr", "show", "dev", &fx.bridge()]);
    assert!(
        bridge_addrs.contains(&format!("198.18.{}.1/24", fx.slot)),
        "{bridge_addrs}"
    );
    assert!(
        bridge_addrs.contains(&format!("fd5b:{:x}::1/64", fx.slot)),
        "{bridge_addrs}"
    );
}

#[test]
fn failed_add_leaves_nothing_behind() {
    let mut fx = Fixture::new();
    // A /30 holds one pod address after the gateway: the second ADD must fail cleanly.
    let conf = fx
        .conf("1.0.0", "skiff-ipam", "")
        .replace(&fx.subnet(), &format!("198.18.{}.0/30", fx.slot));
    let (a, b) = (fx.netns("a"), fx.netns("b"));
    add(&fx, &conf, "only", &a);
    let ports_before = sh(&["ip", "-o", "link", "show", "master", &fx.bridge()])
        .lines()
        .count();
    let out = cni(BRIDGE_BIN, "ADD", "second", &b, "eth0", &path(), &conf);
    assert_ne!(out.code, 0);
    assert!(
        out.stdout.contains("no IP addresses available"),
        "{}",
        out.stdout
    );
    assert_eq!(
        sh(&["ip", "-o", "link", "show", "master", &fx.bridge()])
            .lines()
            .count(),
        ports_before
    );
    assert!(!sh(&["ip", "-n", b.rsplit('/').next().unwrap(), "-o", "link"]).contains("eth0"));
    let status = cni_env(
        BRIDGE_BIN,
        &[("CNI_COMMAND", "STATUS"), ("CNI_PATH", &path())],
        &conf.replace("\"1.0.0\"", "\"1.1.0\""),
    );
    assert_eq!(status.err_code(), 50);
}

#[test]
fn delegates_to_the_reference_host_local() {
    let mut fx = Fixture::new();
    let conf = fx.conf("1.0.0", "host-local", "");
    let ns = fx.netns("h");
    let r = add(&fx, &conf, "hl", &ns);
    assert_eq!(pod_ip(&r).to_string(), format!("198.18.{}.2", fx.slot));
    cni(BRIDGE_BIN, "DEL", "hl", &ns, "eth0", &path(), &conf).ok();
    assert!(
        !fx.data_dir()
            .join(fx.network())
            .join(format!("198.18.{}.2", fx.slot))
            .exists()
    );
}

#[test]
fn every_error_code_from_bad_input() {
    let mut fx = Fixture::new();
    let ns = fx.netns("x");
    let good = fx.conf("1.0.0", "skiff-ipam", "");
    let run = |conf: &str, netns: &str, ifname: &str| {
        cni(BRIDGE_BIN, "ADD", "bad", netns, ifname, &path(), conf)
    };
    assert_eq!(
        run(&good.replace("\"1.0.0\"", "\"9.9.9\""), &ns, "eth0").err_code(),
        1
    );
    let typo = run(&good.replace("\"ipMasq\"", "\"ipMsq\""), &ns, "eth0");
    assert_eq!(typo.err_code(), 2);
    assert!(typo.stdout.contains("did you mean"), "{}", typo.stdout);
    assert_eq!(
        run(&good, "/var/run/netns/skiff-no-such-ns", "eth0").err_code(),
        3
    );
    assert_eq!(run(&good, &ns, "").err_code(), 4);
    assert_eq!(
        run("{\"cniVersion\": \"1.0.0\", ", &ns, "eth0").err_code(),
        6
    );
    assert_eq!(
        run(
            &good.replace("\"isGateway\":true", "\"isGateway\":true,\"vlan\":5000"),
            &ns,
            "eth0"
        )
        .err_code(),
        7
    );
    let missing_ipam = run(
        &good.replace("\"type\":\"skiff-ipam\"", "\"type\":\"no-such-ipam\""),
        &ns,
        "eth0",
    );
    assert_eq!(missing_ipam.err_code(), 7);
    // The IPAM store held by someone else for longer than the runtime should wait: 11.
    let lock_dir = fx.data_dir().join(fx.network());
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lock = std::fs::File::create(lock_dir.join("lock")).unwrap();
    // SAFETY: flock on a file this test owns; released when `lock` drops.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    let busy = cni_env(
        BRIDGE_BIN,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "bad"),
            ("CNI_NETNS", &ns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &path()),
            ("SKIFF_IPAM_LOCK_WAIT_MS", "200"),
        ],
        &good,
    );
    assert_eq!(busy.err_code(), 11, "{}", busy.stdout);
    drop(lock);
    // Kubernetes' CNI_ARGS are accepted, unknown ones only with IgnoreUnknown.
    let args = |a: &str| {
        cni_env(
            BRIDGE_BIN,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "args"),
                ("CNI_NETNS", &ns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", &path()),
                ("CNI_ARGS", a),
            ],
            &good,
        )
    };
    assert_eq!(args("FOO=bar").err_code(), 4);
    let ok = args(
        "IgnoreUnknown=1;FOO=bar;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=args;K8S_POD_UID=u1",
    );
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    cni(BRIDGE_BIN, "DEL", "args", &ns, "eth0", &path(), &good).ok();
    // Nothing was made by any of them.
    assert!(!sh(&["ip", "-n", ns.rsplit('/').next().unwrap(), "-o", "link"]).contains("eth0"));
}

/// The host veth (interfaces[1]) and the container MAC (interfaces[2]) of a result.
fn port_and_mac(result: &Value) -> (String, String) {
    (
        result["interfaces"][1]["name"]
            .as_str()
            .unwrap()
            .to_string(),
        result["interfaces"][2]["mac"].as_str().unwrap().to_string(),
    )
}

fn bridge_table(fx: &Fixture) -> String {
    sh(&["nft", "list", "table", "bridge", &fx.table()])
}

#[test]
fn macspoofchk_drops_frames_from_another_mac() {
    let mut fx = Fixture::new();
    // Without ipMasq: the check alone must still reach the firewall.
    let conf = fx
        .conf("1.0.0", "skiff-ipam", r#","macspoofchk":true"#)
        .replace("\"ipMasq\":true", "\"ipMasq\":false");
    let (a, b) = (fx.netns("a"), fx.netns("b"));
    let ra = add(&fx, &conf, "spoof-a", &a);
    let rb = add(&fx, &conf, "spoof-b", &b);
    let (ip_a, ip_b) = (pod_ip(&ra), pod_ip(&rb));
    let (port_a, mac_a) = port_and_mac(&ra);
    let (port_b, mac_b) = port_and_mac(&rb);
    let table = bridge_table(&fx);
    for want in [
        format!("\"{port_a}\" . {mac_a}"),
        format!("\"{port_b}\" . {mac_b}"),
    ] {
        assert!(table.contains(&want), "{want} missing from\n{table}");
    }
    cni(
        BRIDGE_BIN,
        "CHECK",
        "spoof-a",
        &a,
        "eth0",
        &path(),
        &with_prev(&conf, &ra),
    )
    .ok();

    let server = SocketAddr::new(ip_b, 8000);
    let _srv = echo_peer_server(Some(&b), server);
    assert_eq!(connect_from(Some(&a), server).unwrap(), ip_a.to_string());

    let (name_a, name_b) = (a.rsplit('/').next().unwrap(), b.rsplit('/').next().unwrap());
    let set_mac = |mac: &str| {
        sh(&["ip", "-n", name_a, "link", "set", "eth0", "address", mac]);
        // Both ends resolve each other afresh, so only the new MAC is on the wire.
        sh(&["ip", "-n", name_a, "neigh", "flush", "all"]);
        sh(&["ip", "-n", name_b, "neigh", "flush", "all"]);
    };
    set_mac("02:5b:00:00:00:01");
    let spoofed = connect_from(Some(&a), server);
    assert!(
        spoofed.is_err(),
        "pod A reached B from a MAC not its own: {spoofed:?}"
    );
    // Its own MAC again: the check, not a broken link, stopped it.
    set_mac(&mac_a);
    assert_eq!(connect_from(Some(&a), server).unwrap(), ip_a.to_string());

    cni(BRIDGE_BIN, "DEL", "spoof-a", &a, "eth0", &path(), &conf).ok();
    let table = bridge_table(&fx);
    assert!(
        !table.contains(&format!("\"{port_a}\"")),
        "A's elements left behind:\n{table}"
    );
    assert!(
        table.contains(&format!("\"{port_b}\" . {mac_b}")),
        "{table}"
    );
    cni(BRIDGE_BIN, "DEL", "spoof-b", &b, "eth0", &path(), &conf).ok();
    assert!(
        !bridge_table(&fx).contains(&port_b),
        "{}",
        bridge_table(&fx)
    );
}

#[test]
fn macspoofchk_with_a_runtime_mac() {
    let mut fx = Fixture::new();
    let conf = fx.conf(
        "1.0.0",
        "skiff-ipam",
        r#","macspoofchk":true,"runtimeConfig":{"mac":"02:5b:00:00:00:2a"}"#,
    );
    let ns = fx.netns("m");
    let r = add(&fx, &conf, "spoof-m", &ns);
    let (port, mac) = port_and_mac(&r);
    assert_eq!(mac, "02:5b:00:00:00:2a");
    let table = bridge_table(&fx);
    assert!(
        table.contains(&format!("\"{port}\" . {mac}")),
        "{port} . {mac} missing from\n{table}"
    );
    // The masquerade went into the same attachment.
    let inet = sh(&["nft", "list", "table", "inet", &fx.table()]);
    assert!(inet.contains(&pod_ip(&r).to_string()), "{inet}");
    cni(BRIDGE_BIN, "DEL", "spoof-m", &ns, "eth0", &path(), &conf).ok();
    assert!(!bridge_table(&fx).contains(&port), "{}", bridge_table(&fx));
}

#[test]
fn macspoofchk_is_refused_by_the_iptables_backend() {
    let mut fx = Fixture::new();
    let conf = fx.conf(
        "1.0.0",
        "skiff-ipam",
        r#","macspoofchk":true,"firewallBackend":"iptables""#,
    );
    let ns = fx.netns("i");
    let out = cni(BRIDGE_BIN, "ADD", "spoof-i", &ns, "eth0", &path(), &conf);
    assert_eq!(out.err_code(), 7, "{}", out.stdout);
    let msg = out.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("macspoofchk") && msg.contains("nftables"),
        "unclear error: {msg}"
    );
    // Nothing was made: no interface, no port, no address, no record, no rules.
    assert!(!sh(&["ip", "-n", ns.rsplit('/').next().unwrap(), "-o", "link"]).contains("eth0"));
    let ports = Command::new("ip")
        .args(["-o", "link", "show", "master", &fx.bridge()])
        .output()
        .unwrap();
    assert!(ports.stdout.is_empty(), "{ports:?}");
    let leased = std::fs::read_dir(fx.data_dir().join(fx.network()))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("198."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leased, 0);
    assert!(
        !fx.state_dir()
            .join(fx.network())
            .join("spoof-i:eth0")
            .exists()
    );
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = sh(&[save, "-t", "nat"]);
        assert!(
            !rules.contains(&format!("{}-", fx.table())),
            "{save}: {rules}"
        );
    }
    for family in ["inet", "bridge"] {
        assert!(
            !sh(&["nft", "list", "tables", family]).contains(&fx.table()),
            "table {family} {} declared",
            fx.table()
        );
    }
    // DEL of the refused attachment is fine, as the runtime will send one.
    cni(BRIDGE_BIN, "DEL", "spoof-i", &ns, "eth0", &path(), &conf).ok();
}
