//! The simulated nodes the controller suites and benchmarks run on: registered Ready, pods
//! bound to them Running and Ready, scripted exits, deletions finished, and a node that dies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use skiff_controlplane::testing::{EXIT_CODE, FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, workspace_bin};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn pod(name: &str, node: &str, exit: Option<&str>) -> Pod {
    let mut annotations = serde_json::Map::new();
    if let Some(code) = exit {
        annotations.insert(EXIT_CODE.into(), code.into());
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap()
}

async fn phase_of(api: &Api<Pod>, name: &str, want: &str) {
    for _ in 0..100 {
        let p = api.get_opt(name).await.unwrap();
        if p.as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some(want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod {name} never {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_run_pods() {
    let cp = ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), &[]).unwrap();
    let c = client(&cp).await;
    let nodes = FakeNodes::start(
        c.clone(),
        vec![FakeNode::new("sim-1"), FakeNode::new("sim-2")],
    )
    .await
    .unwrap();
    let table = cp.kubectl_ok(&["get", "nodes"]);
    assert!(
        table.contains("sim-1") && table.contains("Ready"),
        "{table}"
    );

    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    pods.create(&PostParams::default(), &pod("runs", "sim-1", None))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("ends", "sim-2", Some("0")))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("fails", "sim-2", Some("3")))
        .await
        .unwrap();
    phase_of(&pods, "runs", "Running").await;
    phase_of(&pods, "ends", "Succeeded").await;
    phase_of(&pods, "fails", "Failed").await;
    let p = pods.get("runs").await.unwrap();
    let ready = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");

    // A graceful delete is finished by the stand-in kubelet.
    pods.delete("runs", &DeleteParams::default()).await.unwrap();
    for _ in 0..100 {
        if pods.get_opt("runs").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pods.get_opt("runs").await.unwrap().is_none());

    // A dead node's pods stay as they are.
    nodes.kill("sim-1");
    pods.create(&PostParams::default(), &pod("orphan", "sim-1", None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = pods.get("orphan").await.unwrap();
    assert!(p.status.and_then(|s| s.phase).as_deref() != Some("Running"));
}
