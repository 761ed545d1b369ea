//! Node IPAM against a real control plane and the real kubectl: Nodes get distinct pod
//! ranges, a range a Node brings is kept, the ranges survive a restart, a used-up cluster
//! CIDR is an event, and a deleted Node's range goes to a Node that waited for one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use skiff_tests::{ControlPlane, eventually, workspace_bin};

fn node(name: &str, cidr: Option<&str>) -> String {
    let spec = cidr
        .map(|c| format!("spec:\n  podCIDR: {c}\n  podCIDRs: [{c}]\n"))
        .unwrap_or_default();
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n{spec}")
}

/// Node name → podCIDR, as `kubectl get nodes` shows them (`<none>` for none).
fn cidrs(cp: &ControlPlane) -> BTreeMap<String, String> {
    cp.kubectl_ok(&[
        "get",
        "nodes",
        "--no-headers",
        "-o",
        "custom-columns=NAME:.metadata.name,CIDR:.spec.podCIDR",
    ])
    .lines()
    .filter_map(|l| {
        let mut w = l.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    })
    .collect()
}

#[test]
fn nodes_get_distinct_ranges_kept_across_restarts() {
    let bin = workspace_bin("skiff-controlplane").unwrap();
    // Room for three nodes.
    let mut cp = ControlPlane::start(
        &bin,
        &[
            "--cluster-cidr",
            "10.250.0.0/22",
            "--node-cidr-mask-size",
            "24",
        ],
    )
    .unwrap();
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &node("brought", Some("10.250.1.0/24")),
    );
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &node("outside", Some("192.168.50.0/24")),
    );
    for n in ["ipam-a", "ipam-b"] {
        cp.kubectl_stdin(&["apply", "-f", "-"], &node(n, None));
    }
    let got = eventually(Duration::from_secs(20), "ranges for both nodes", || {
        let c = cidrs(&cp);
        (c.len() == 4 && c.values().all(|v| v != "<none>")).then_some(c)
    });
    assert_eq!(got["brought"], "10.250.1.0/24");
    assert_eq!(got["outside"], "192.168.50.0/24");
    let mut given = vec![got["ipam-a"].clone(), got["ipam-b"].clone()];
    given.sort();
    assert_eq!(given, ["10.250.0.0/24", "10.250.2.0/24"]);
    let pod_cidrs = cp.kubectl_ok(&[
        "get",
        "node",
        "ipam-a",
        "-o",
        "jsonpath={.spec.podCIDRs[0]}",
    ]);
    assert_eq!(pod_cidrs, got["ipam-a"]);

    // A restarted control plane rebuilds its table from the Nodes: no range twice.
    cp.crash();
    cp.launch().unwrap();
    cp.kubectl_stdin(&["apply", "-f", "-"], &node("ipam-c", None));
    let c = eventually(Duration::from_secs(20), "a range for ipam-c", || {
        cidrs(&cp).get("ipam-c").filter(|v| *v != "<none>").cloned()
    });
    assert_eq!(c, "10.250.3.0/24");
    assert_eq!(cidrs(&cp)["ipam-a"], got["ipam-a"]);

    // Used up: the next Node waits, with an event.
    cp.kubectl_stdin(&["apply", "-f", "-"], &node("ipam-d", None));
    eventually(Duration::from_secs(20), "CIDRNotAvailable", || {
        let ev = cp.kubectl_ok(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=CIDRNotAvailable",
            "-o",
            "custom-columns=OBJ:.involvedObject.name,MSG:.message",
            "--no-headers",
        ]);
        ev.contains("ipam-d").then_some(())
    });
    assert_eq!(cidrs(&cp)["ipam-d"], "<none>");

    // A Node leaves: the waiting Node gets its range.
    cp.kubectl_ok(&["delete", "node", "ipam-b"]);
    let d = eventually(Duration::from_secs(10), "a range for ipam-d", || {
        cidrs(&cp).get("ipam-d").filter(|v| *v != "<none>").cloned()
    });
    assert_eq!(d, got["ipam-b"]);
}
