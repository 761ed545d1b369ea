//! A control plane with two simulated nodes, a stand-in binder and kubectl helpers, for
//! the suites of the workload and endpoint controllers.

// Each suite uses its own part of these helpers.
#![allow(dead_code)]

pub mod pod_binder;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use pod_binder::PodBinder;
use serde_json::Value;
use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, workspace_bin};

/// Fields drop in order: the simulation stops while the server still answers, then the
/// server goes.
pub struct Cluster {
    _binder: PodBinder,
    _nodes: FakeNodes,
    pub client: kube::Client,
    pub cp: ControlPlane,
}

/// Starts the control plane and the nodes `sim-1` and `sim-2`.
pub async fn cluster() -> Cluster {
    let cp = ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), &[]).unwrap();
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let names = vec!["sim-1".to_string(), "sim-2".to_string()];
    let nodes = FakeNodes::start(
        client.clone(),
        names.iter().map(|n| FakeNode::new(n)).collect(),
    )
    .await
    .unwrap();
    let binder = PodBinder::start(client.clone(), names);
    Cluster {
        cp,
        client,
        _nodes: nodes,
        _binder: binder,
    }
}

impl Cluster {
    /// kubectl, without holding up the simulated nodes on this runtime.
    pub fn kubectl(&self, args: &[&str]) -> String {
        tokio::task::block_in_place(|| self.cp.kubectl_ok(args))
    }

    pub fn kubectl_err(&self, args: &[&str]) -> String {
        tokio::task::block_in_place(|| self.cp.kubectl_err(args))
    }

    pub fn apply(&self, yaml: &str) -> String {
        tokio::task::block_in_place(|| self.cp.kubectl_stdin(&["apply", "-f", "-"], yaml))
    }

    /// `kubectl apply` that must fail; its stderr.
    pub fn apply_err(&self, yaml: &str) -> String {
        let out = tokio::task::block_in_place(|| {
            self.cp.kubectl_stdin_output(&["apply", "-f", "-"], yaml)
        });
        assert!(!out.status.success(), "apply succeeded:\n{yaml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&a)).unwrap()
    }

    pub async fn pods_of(&self, job: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap()
            .items
    }

    /// Polls until `f` gives a value, for up to `secs` seconds.
    pub async fn eventually<T>(
        &self,
        secs: u64,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        for _ in 0..secs * 10 {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Reasons and messages of the events about `name`.
    pub fn events_of(&self, name: &str) -> Vec<String> {
        self.json(&["get", "events"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .map(|e| {
                format!(
                    "{} {}",
                    e["reason"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}
