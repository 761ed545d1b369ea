//! Every manifest under `examples/` (the README's walkthrough), applied with the real
//! kubectl to a control plane with simulated nodes: each is accepted as written, and the
//! controllers take each to the state the walkthrough describes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");
const WAIT: Duration = Duration::from_secs(30);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = cp.kubectl(&a);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted_and_reaches_its_state() {
    let cp = ControlPlane::start(
        BIN.as_ref(),
        &["--load-balancer-pool", "192.168.240.10-192.168.240.20"],
    )
    .expect("control plane starts");
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let _nodes = FakeNodes::start(client, vec![FakeNode::new("sim-1"), FakeNode::new("sim-2")])
        .await
        .unwrap();

    tokio::task::spawn_blocking(move || {
        let dir = examples();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 9, "examples: {files:?}");
        // Server-side validation of every file first, then the real thing, one by one, so
        // a failure names its file.
        for f in &files {
            let f = f.to_string_lossy();
            cp.kubectl_ok(&["apply", "--dry-run=server", "-f", &f]);
            cp.kubectl_ok(&["apply", "-f", &f]);
        }

        eventually(WAIT, "web available with 3 replicas", || {
            let d = json(&cp, &["get", "deployment", "web"]);
            (d["status"]["availableReplicas"] == 3).then_some(())
        });
        eventually(WAIT, "web's endpoints", || {
            let s = json(
                &cp,
                &[
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=web",
                ],
            );
            let n: usize = s["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["endpoints"].as_array().map_or(0, Vec::len))
                .sum();
            (n == 3).then_some(())
        });
        let np = json(&cp, &["get", "service", "web-nodeport"]);
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
        eventually(WAIT, "web-lb's address from the pool", || {
            let lb = json(&cp, &["get", "service", "web-lb"]);
            lb["status"]["loadBalancer"]["ingress"][0]["ip"]
                .as_str()
                .filter(|ip| ip.starts_with("192.168.240."))
                .map(str::to_string)
        });
        eventually(WAIT, "db-0 and db-1 ready with their claims", || {
            let s = json(&cp, &["get", "statefulset", "db"]);
            let pvcs = json(&cp, &["get", "pvc"]);
            let names: Vec<&str> = pvcs["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect();
            (s["status"]["readyReplicas"] == 2
                && names.contains(&"data-db-0")
                && names.contains(&"data-db-1"))
            .then_some(())
        });
        eventually(WAIT, "node-agent on both nodes", || {
            let d = json(&cp, &["get", "daemonset", "node-agent"]);
            (d["status"]["numberReady"] == 2).then_some(())
        });
        // The simulated kubelet keeps containers running (they finish on real nodes: the
        // lab's end-to-end test): both of the Job's pods run at once.
        eventually(WAIT, "the count Job's two pods", || {
            let j = json(&cp, &["get", "job", "count"]);
            (j["status"]["active"] == 2).then_some(())
        });
        for pod in ["hello", "secret-reader", "note-writer"] {
            eventually(WAIT, &format!("pod {pod} running or done"), || {
                let p = json(&cp, &["get", "pod", pod]);
                matches!(p["status"]["phase"].as_str(), Some("Running" | "Succeeded")).then_some(())
            });
        }
        let cron = json(&cp, &["get", "cronjob", "tick"]);
        assert_eq!(cron["spec"]["schedule"], "* * * * *");
    })
    .await
    .unwrap();
}
