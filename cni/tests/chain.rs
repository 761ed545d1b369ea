//! skiff-bridge at the head of a plugin chain, run the way libcni (cnitool, podman's
//! CNI backend, containerd's CRI plugin) runs a network configuration list: ADD in
//! order with each result as the next plugin's prevResult, CHECK in order, DEL in
//! reverse — with the reference `tuning` and `bandwidth` plugins after ours.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>) -> String {
    let mut c = plugin.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    c.to_string()
}

fn bin(plugin: &Value) -> String {
    let t = plugin["type"].as_str().unwrap();
    if t.starts_with("skiff-") {
        format!("{}/{t}", skiff_bin_dir())
    } else {
        format!("{REFERENCE_DIR}/{t}")
    }
}

#[test]
fn reference_plugins_chain_after_skiff_bridge() {
    let mut fx = Fixture::new();
    let ns = fx.netns("ch");
    let ns_name = ns.rsplit('/').next().unwrap().to_string();
    let path = format!("{}:{REFERENCE_DIR}", skiff_bin_dir());
    let first: Value = serde_json::from_str(&fx.conf("1.0.0", "skiff-ipam", "")).unwrap();
    let list = json!({
        "cniVersion": "1.0.0",
        "name": fx.network(),
        "plugins": [
            first,
            {"type": "tuning", "sysctl": {"net.core.somaxconn": "1234"}},
            {"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 80_000, "egressRate": 8_000_000, "egressBurst": 80_000},
        ],
    });
    let plugins = list["plugins"].as_array().unwrap();
    let mut prev: Option<Value> = None;
    for p in plugins {
        let out = cni(
            &bin(p),
            "ADD",
            "chain",
            &ns,
            "eth0",
            &path,
            &plugin_conf(&list, p, prev.as_ref()),
        )
        .ok();
        prev = Some(out.json());
    }
    let result = prev.unwrap();
    assert_eq!(result["ips"][0]["interface"], 2, "{result}");
    assert_eq!(
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns_name,
            "cat",
            "/proc/sys/net/core/somaxconn"
        ])
        .trim(),
        "1234"
    );
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap();
    assert!(
        sh(&["tc", "qdisc", "show", "dev", host_veth]).contains("tbf"),
        "bandwidth did not shape the host veth"
    );

    for p in plugins {
        cni(
            &bin(p),
            "CHECK",
            "chain",
            &ns,
            "eth0",
            &path,
            &plugin_conf(&list, p, Some(&result)),
        )
        .ok();
    }
    for p in plugins.iter().rev() {
        cni(
            &bin(p),
            "DEL",
            "chain",
            &ns,
            "eth0",
            &path,
            &plugin_conf(&list, p, Some(&result)),
        )
        .ok();
    }
    assert!(!sh(&["ip", "-n", &ns_name, "-o", "link"]).contains("eth0"));
    // libcni may DEL again (a runtime retrying after a crash): every plugin must accept it.
    for p in plugins.iter().rev() {
        cni(
            &bin(p),
            "DEL",
            "chain",
            &ns,
            "eth0",
            &path,
            &plugin_conf(&list, p, Some(&result)),
        )
        .ok();
    }
}
