//! The control plane's Prometheus `/metrics`, read with the real kubectl after it has done
//! some work: API requests by verb, resource and code, scheduling attempts, controller syncs
//! and process figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");

/// The value of the first sample of `name` whose labels include every `label="value"` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name).then_some((rest, value))
        })
        .find(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn metrics_count_requests_scheduling_and_controller_syncs() {
    let cp = ControlPlane::start(BIN.as_ref(), &[]).expect("control plane starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _nodes = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        FakeNodes::start(client, vec![FakeNode::new("sim-1")])
            .await
            .unwrap()
    });
    cp.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ]);
    cp.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let err = cp.kubectl_err(&["get", "pod", "missing"]);
    assert!(err.contains("not found"), "{err}");

    let text = eventually(Duration::from_secs(20), "metrics show the work", || {
        let t = cp.kubectl_ok(&["get", "--raw", "/metrics"]);
        (sample(
            &t,
            "scheduler_schedule_attempts_total",
            &[("result", "scheduled")],
        )
        .is_some_and(|v| v >= 2.0))
        .then_some(t)
    });
    let created = sample(
        &text,
        "apiserver_request_total",
        &[
            ("verb", "POST"),
            ("group", "apps"),
            ("resource", "deployments"),
            ("code", "201"),
        ],
    );
    assert_eq!(created, Some(1.0), "deployment create counted");
    let not_found = sample(
        &text,
        "apiserver_request_total",
        &[
            ("verb", "GET"),
            ("resource", "pods"),
            ("scope", "resource"),
            ("code", "404"),
        ],
    );
    assert!(not_found.is_some_and(|v| v >= 1.0), "404 counted");
    let lists = sample(
        &text,
        "apiserver_request_duration_seconds_count",
        &[("verb", "LIST"), ("resource", "pods")],
    );
    assert!(lists.is_some_and(|v| v >= 1.0), "list latency observed");
    assert!(
        sample(
            &text,
            "apiserver_request_total",
            &[("verb", "WATCH"), ("resource", "pods")]
        )
        .is_some(),
        "watches counted"
    );
    let syncs = sample(
        &text,
        "workqueue_work_duration_seconds_count",
        &[("name", "deployment-controller")],
    );
    assert!(syncs.is_some_and(|v| v >= 1.0), "deployment syncs timed");
    assert!(
        sample(
            &text,
            "controller_sync_total",
            &[
                ("controller", "replicaset-controller"),
                ("result", "success")
            ]
        )
        .is_some_and(|v| v >= 1.0),
        "replicaset syncs counted"
    );
    assert!(
        sample(&text, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 1e6),
        "process memory"
    );
    assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram"));
    assert!(text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"}"));
    cp.kubectl_ok(&["delete", "deployment", "web", "--wait=false"]);
}
