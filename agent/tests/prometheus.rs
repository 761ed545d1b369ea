//! The agent's Prometheus `/metrics`, read through the API server's `nodes/proxy` with the
//! real kubectl: pod start latency, probe results by container, pod sync durations and the
//! requests the agent served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

/// The value of the first sample of `name` whose labels include every pair.
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
fn agent_metrics_show_pod_starts_probes_and_requests() {
    let node = "node-prom";
    let c = Cluster::start(node, &[]);
    c.apply(&pod_yaml(
        "probed",
        node,
        "",
        "    command: [\"sleep\", \"3600\"]
    readinessProbe:
      exec:
        command: [\"true\"]
      periodSeconds: 1
    livenessProbe:
      exec:
        command: [\"sh\", \"-c\", \"exit 0\"]
      periodSeconds: 1",
    ));
    c.wait_pod("probed", "ready", Duration::from_secs(30), |p| {
        condition(p, "Ready") == "True"
    });
    let path = format!("/api/v1/nodes/{node}/proxy/metrics");
    let text = skiff_tests::eventually(Duration::from_secs(15), "probe counts", || {
        let t = c.cp.kubectl_ok(&["get", "--raw", &path]);
        sample(
            &t,
            "prober_probe_total",
            &[
                ("probe_type", "Liveness"),
                ("pod", "probed"),
                ("result", "successful"),
            ],
        )
        .is_some_and(|v| v >= 2.0)
        .then_some(t)
    });
    let ready = sample(
        &text,
        "prober_probe_total",
        &[
            ("probe_type", "Readiness"),
            ("container", "app"),
            ("pod", "probed"),
            ("namespace", "default"),
            ("result", "successful"),
        ],
    );
    assert!(ready.is_some_and(|v| v >= 1.0), "{text}");
    assert!(
        sample(&text, "kubelet_pod_start_duration_seconds_count", &[]).is_some_and(|v| v >= 1.0),
        "pod start observed"
    );
    let start_sum = sample(&text, "kubelet_pod_start_duration_seconds_sum", &[]).unwrap();
    assert!(start_sum > 0.0 && start_sum < 30.0, "{start_sum}");
    assert!(
        sample(
            &text,
            "kubelet_pod_worker_duration_seconds_count",
            &[("operation", "sync")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(sample(&text, "kubelet_running_pods", &[]).is_some_and(|v| v >= 1.0));
    assert!(
        sample(&text, "kubelet_http_requests_total", &[("path", "metrics")])
            .is_some_and(|v| v >= 1.0)
    );
    assert!(text.contains("# TYPE prober_probe_duration_seconds histogram"));

    // The series of a pod that is gone go with it.
    c.delete_and_wait("probed");
    let after = c.cp.kubectl_ok(&["get", "--raw", &path]);
    assert!(
        sample(&after, "prober_probe_total", &[("pod", "probed")]).is_none(),
        "{after}"
    );
}
