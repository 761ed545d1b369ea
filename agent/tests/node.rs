//! Node registration and heartbeats against a real skiff control plane, checked with
//! the real kubectl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use skiff_agent::node::{Health, NodeConfig, NodeReporter};
use skiff_tests::{ControlPlane, eventually, workspace_bin};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn node_cfg(name: &str, dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        root_dir: dir.to_path_buf(),
        max_pods: 110,
        node_ip: Some("127.0.0.1".parse().unwrap()),
        labels: Default::default(),
        daemon_port: Some(10250),
        pod_cidr: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_reports_and_heartbeats() {
    let cp = ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut reporter = NodeReporter::new(
        client(&cp).await,
        node_cfg("node-a", dir.path()),
        "containerd://1.6.20".into(),
    );
    reporter.register(&Health::healthy()).await.unwrap();

    let node: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "node", "node-a", "-o", "json"])).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-a"
    );
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(
        node["status"]["allocatable"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );
    assert_eq!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        "containerd://1.6.20"
    );
    assert_eq!(node["status"]["nodeInfo"]["operatingSystem"], "linux");
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    assert_eq!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        10250
    );
    let table = cp.kubectl_ok(&["get", "nodes"]);
    assert!(
        table.contains("node-a") && table.contains("Ready"),
        "{table}"
    );

    let (tx, rx) = tokio::sync::watch::channel(Health::healthy());
    let task = tokio::spawn(reporter.run(rx));
    let lease = eventually(Duration::from_secs(5), "node lease", || {
        let out = cp.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "node-a",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(lease, "node-a");

    let mut broken = Health::healthy();
    broken.network = Err("no networks found in /etc/cni/net.d".into());
    tx.send(broken).unwrap();
    let msg = eventually(Duration::from_secs(5), "NotReady", || {
        let out = cp.kubectl_ok(&[
            "get",
            "node",
            "node-a",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
        ]);
        out.contains("NetworkPluginNotReady").then_some(out)
    });
    assert!(msg.contains("no networks found"), "{msg}");
    assert!(cp.kubectl_ok(&["get", "nodes"]).contains("NotReady"));
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();

    // A restarted agent takes its Node over instead of failing.
    let mut again = NodeReporter::new(
        client(&cp).await,
        node_cfg("node-a", dir.path()),
        "containerd://1.6.20".into(),
    );
    again.register(&Health::healthy()).await.unwrap();
    assert!(!cp.kubectl_ok(&["get", "nodes"]).contains("NotReady"));
}
