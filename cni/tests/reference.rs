//! The same scenario through the reference plugins (Debian's containernetworking-plugins)

//! and through skiff's: the results and the kernel state they leave must match.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn conf(fx: &Fixture, plugin: &str, ipam: &str, tag: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{net}","type":"{plugin}","bridge":"{br}","isDefaultGateway":true,
            "mtu":1400,"hairpinMode":true,
            "ipam":{{"type":"{ipam}","dataDir":"{data}","ranges":[[{{"subnet":"{s4}"}}],[{{"subnet":"{s6}"}}]]}}}}"#,
        net = fx.network(),
        br = fx.bridge(),
        data = fx.data_dir().join(tag).display(),
        s4 = fx.subnet(),
        s6 = fx.subnet6(),
    )
}

fn ip_json(args: &[&str]) -> Value {
    let mut full = vec!["ip", "-j"];
    full.extend_from_slice(args);
    serde_json::from_str(&sh(&full)).unwrap()
}

/// The state a pod attachment leaves, with the names and MACs that are random removed.
fn kernel_state(fx: &Fixture, ns_name: &str, host_veth: &str) -> Value {
    let addrs = |v: &Value| -> Vec<String> {
        let mut out: Vec<String> = v[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["scope"] != "link")
            .map(|a| {
                format!(
                    "{}/{} {}",
                    a["local"].as_str().unwrap(),
                    a["prefixlen"],
                    a["scope"].as_str().unwrap()
                )
            })
            .collect();
        out.sort();
        out
    };
    let routes = |family: &str| -> Vec<String> {
        let mut out: Vec<String> = ip_json(&["-n", ns_name, family, "route", "show"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                !r["dst"].as_str().unwrap_or("").starts_with("fe80") && r["dst"] != "multicast"
            })
            .map(|r| {
                format!(
                    "{} via {} dev {}",
                    r["dst"].as_str().unwrap(),
                    r["gateway"].as_str().unwrap_or("-"),
                    r["dev"].as_str().unwrap()
                )
            })
            .collect();
        out.sort();
        out
    };
    let pod_if = ip_json(&["-n", ns_name, "-d", "addr", "show", "dev", "eth0"]);
    let bridge = ip_json(&["-d", "addr", "show", "dev", &fx.bridge()]);
    let veth = ip_json(&["-d", "link", "show", "dev", host_veth]);
    json!({
        "pod": {
            "addresses": addrs(&pod_if),
            "mtu": pod_if[0]["mtu"],
            "up": pod_if[0]["operstate"],
            "routes4": routes("-4"),
            "routes6": routes("-6"),
        },
        "bridge": {
            "addresses": addrs(&bridge),
            "kind": bridge[0]["linkinfo"]["info_kind"],
            "up": bridge[0]["flags"].as_array().unwrap().contains(&json!("UP")),
        },
        "hostVeth": {
            "master": veth[0]["master"],
            "mtu": veth[0]["mtu"],
            "hairpin": veth[0]["linkinfo"]["info_slave_data"]["hairpin"],
            "up": veth[0]["flags"].as_array().unwrap().contains(&json!("UP")),
        },
    })
}

fn run_scenario(
    fx: &mut Fixture,
    bin: &str,
    plugin: &str,
    ipam: &str,
    tag: &str,
) -> (Value, Value) {
    let ns = fx.netns(tag);
    let ns_name = ns.rsplit('/').next().unwrap().to_string();
    let path = format!("{}:{}", skiff_bin_dir(), REFERENCE_DIR);
    let c = conf(fx, plugin, ipam, tag);
    let mut result = cni(bin, "ADD", "parity", &ns, "eth0", &path, &c)
        .ok()
        .json();
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        host_veth.starts_with("veth") && host_veth.len() == 12,
        "{host_veth}"
    );
    let state = kernel_state(fx, &ns_name, &host_veth);
    let mut prev: Value = serde_json::from_str(&c).unwrap();
    prev["prevResult"] = result.clone();
    cni(
        bin,
        "CHECK",
        "parity",
        &ns,
        "eth0",
        &path,
        &prev.to_string(),
    )
    .ok();
    cni(bin, "DEL", "parity", &ns, "eth0", &path, &prev.to_string()).ok();
    // Random parts: MACs and the host veth name.
    for i in result["interfaces"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("mac");
    }
    result["interfaces"][1]["name"] = json!("veth*");
    result["interfaces"][2]["sandbox"] = json!("netns");
    (result, state)
}

#[test]
fn skiff_matches_the_reference_bridge_and_host_local() {
    let mut fx = Fixture::new();
    let (ref_result, ref_state) = run_scenario(
        &mut fx,
        &format!("{REFERENCE_DIR}/bridge"),
        "bridge",
        "host-local",
        "r",
    );
    // The reference leaves its bridge; start ours from nothing as well.
    sh(&["ip", "link", "del", &fx.bridge()]);
    let (our_result, our_state) =
        run_scenario(&mut fx, BRIDGE_BIN, "skiff-bridge", "skiff-ipam", "s");
    assert_eq!(our_result, ref_result, "results differ");
    assert_eq!(our_state, ref_state, "kernel state differs");
}

#[test]
fn skiff_ipam_result_matches_host_local_under_the_reference_bridge() {
    let mut fx = Fixture::new();
    let (ref_result, _) = run_scenario(
        &mut fx,
        &format!("{REFERENCE_DIR}/bridge"),
        "bridge",
        "host-local",
        "r",
    );
    sh(&["ip", "link", "del", &fx.bridge()]);
    let (mixed_result, _) = run_scenario(
        &mut fx,
        &format!("{REFERENCE_DIR}/bridge"),
        "bridge",
        "skiff-ipam",
        "m",
    );
    assert_eq!(mixed_result, ref_result);
}
