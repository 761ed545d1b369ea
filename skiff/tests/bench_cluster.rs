//! `skiff bench cluster` on the real kernel, small: one lab (VXLAN), a few MiB per
//! transfer, a handful of density pods. It prints every figure and leaves nothing behind.
//! Traffic stays between the bench lab's own pods.

use std::process::{Command, Stdio};

use skiff_tests::workspace_bin;

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

#[test]
fn bench_cluster_measures_a_small_lab_and_takes_it_down() {
    for plugin in ["skiff-bridge", "skiff-ipam"] {
        workspace_bin(plugin).expect("the CNI plugins are built");
    }
    let child = Command::new(SKIFF)
        .args([
            "bench",
            "cluster",
            "--density",
            "5",
            "--mib",
            "8",
            "--no-host-gw",
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running skiff bench cluster");
    let pid = child.id();
    let out = child.wait_with_output().expect("skiff bench cluster");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    for want in [
        "startup, lab up --nodes 2 → Ready (vxlan)",
        "pod→pod same node (reference)",
        "pod→pod cross node, vxlan",
        "x same-node)",
        "5/5 Ready in",
        "the 250 target",
        "w1's skiff join (agent + proxy)",
        "w1's containerd shims",
        "5 processes",
        "w1's container log drivers",
    ] {
        assert!(stdout.contains(want), "no {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("n/a"), "{stdout}");

    // The bench's lab is named from its PID (cluster.rs): directory, bridge, namespaces.
    let workdir = std::env::temp_dir().join(format!("skbench-cluster-{pid}-0"));
    assert!(!workdir.exists(), "{} left", workdir.display());
    let id = pid % 18 + 230;
    let bridge = format!("skbc{id}");
    for link in [bridge.clone(), format!("{bridge}-1"), format!("{bridge}-2")] {
        assert!(
            !std::path::Path::new("/sys/class/net").join(&link).exists(),
            "link {link} left"
        );
    }
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&format!("{bridge}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "namespaces left: {netns:?}");
}
