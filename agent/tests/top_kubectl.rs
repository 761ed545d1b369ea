//! `kubectl top` end to end: the agent's `/metrics/resource` and `/stats/summary` read from
//! real cgroups of real containerd containers, the control plane's scraper, and
//! `metrics.k8s.io` as the real kubectl reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use skiff_tests::eventually;

const NODE: &str = "node-top";

fn pods_yaml() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: busy, labels: {{app: busy}}}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      requests: {{cpu: 100m, memory: 16Mi}}
      limits: {{cpu: 500m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {{name: idle, labels: {{app: idle}}}}
spec:
  nodeName: {NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: nap
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "100000"]
  - name: nap2
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["sleep", "100000"]
"#
    )
}

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
}

/// The rows of a kubectl table (header first), split on whitespace.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `498m` → 498.
fn millicores(cell: &str) -> i64 {
    cell.strip_suffix('m')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not millicores: {cell:?}"))
}

/// `12Mi` → 12.
fn mebibytes(cell: &str) -> i64 {
    cell.strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not Mi: {cell:?}"))
}

/// `7%` → 7.
fn percent(cell: &str) -> i64 {
    cell.strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a percentage: {cell:?}"))
}

fn quantity_nanos(q: &str) -> i128 {
    skiff_api::quantity::Quantity::parse(q)
        .unwrap_or_else(|e| panic!("{q:?}: {e}"))
        .as_nano()
}

fn https_get(port: u16, path: &str, identity: Option<(&str, &str)>) -> (u16, String) {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    let client = b.build().unwrap();
    let url = format!("https://127.0.0.1:{port}{path}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let res = client.get(url).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    })
}

/// Every cgroup directory under the node's pod tree whose name holds `uid`.
fn pod_cgroups(c: &Cluster, uid: &str) -> Vec<std::path::PathBuf> {
    host::cgroup_dirs(&c.node.cgroup_root())
        .iter()
        .flat_map(|root| host::subdirs_deepest_first(root))
        .filter(|d| d.to_string_lossy().contains(uid))
        .collect()
}

#[test]
fn kubectl_top_pods_and_nodes() {
    let c = Cluster::start_with(NODE, &["--metric-resolution", "1s"], &[]);
    let cp = &c.cp;

    // The group is discovered before any pod runs.
    let groups = cp.kubectl_ok(&["api-versions"]);
    assert!(
        groups.lines().any(|l| l == "metrics.k8s.io/v1beta1"),
        "{groups}"
    );
    let resources: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1"]))
            .unwrap();
    assert_eq!(resources["resources"][0]["kind"], "NodeMetrics");
    assert_eq!(resources["resources"][1]["kind"], "PodMetrics");

    c.apply(&pods_yaml());
    let busy = c.wait_pod("busy", "running", Duration::from_secs(60), running);
    let idle = c.wait_pod("idle", "running", Duration::from_secs(60), running);
    let uids = [
        busy["metadata"]["uid"].as_str().unwrap().to_string(),
        idle["metadata"]["uid"].as_str().unwrap().to_string(),
    ];

    // kubectl top pods: the spinning pod near its 500m limit, the sleeping one near 0.
    let top_pods = eventually(
        Duration::from_secs(90),
        "top pods: busy near its limit",
        || {
            let out = cp.kubectl(&["top", "pods"]);
            if !out.status.success() {
                return None;
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let rows = rows(&text);
            let cpu = |name: &str| {
                rows.iter()
                    .find(|r| r[0] == name)
                    .map(|r| millicores(&r[1]))
            };
            let (b, i) = (cpu("busy")?, cpu("idle")?);
            (350..=600).contains(&b).then_some(())?;
            assert!(i <= 10, "idle pod at {i}m:\n{text}");
            Some(text)
        },
    );
    println!("$ kubectl top pods\n{top_pods}");
    let r = rows(&top_pods);
    assert_eq!(r[0], ["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    assert_eq!(r.len(), 3, "{top_pods}");
    for row in &r[1..] {
        assert!(mebibytes(&row[2]) >= 0);
    }

    // The figures move every second and a loaded machine may starve the loop for a
    // moment, so each check below waits for a reading that shows it.
    let top_containers = eventually(Duration::from_secs(30), "top pods --containers", || {
        let text = cp.kubectl_ok(&["top", "pods", "--containers"]);
        let r = rows(&text);
        assert_eq!(r[0], ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]);
        let mut names: Vec<String> = r[1..]
            .iter()
            .map(|r| format!("{}/{}", r[0], r[1]))
            .collect();
        names.sort();
        assert_eq!(names, ["busy/spin", "idle/nap", "idle/nap2"]);
        let spin = r.iter().find(|r| r[1] == "spin").unwrap();
        (millicores(&spin[2]) >= 250).then_some(text)
    });
    println!("$ kubectl top pods --containers\n{top_containers}");

    // A label selector and a single pod, through kubectl.
    let selected = cp.kubectl_ok(&["top", "pods", "-l", "app=idle", "--no-headers"]);
    assert_eq!(rows(&selected).len(), 1, "{selected}");
    assert_eq!(rows(&selected)[0][0], "idle");
    let one = cp.kubectl_ok(&["top", "pod", "busy", "--no-headers"]);
    assert_eq!(rows(&one)[0][0], "busy");

    let top_nodes = eventually(Duration::from_secs(30), "top nodes", || {
        let text = cp.kubectl_ok(&["top", "nodes"]);
        let r = rows(&text);
        assert_eq!(
            r[0],
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
        );
        let node = r.iter().find(|r| r[0] == NODE).unwrap();
        assert!(percent(&node[2]) > 0, "{text}");
        assert!(mebibytes(&node[3]) > 0, "{text}");
        assert!(percent(&node[4]) > 0, "{text}");
        // The node runs at least the spinning pod.
        (millicores(&node[1]) >= 250).then_some(text)
    });
    println!("$ kubectl top nodes\n{top_nodes}");

    // The API as metrics-server answers it.
    let list = eventually(
        Duration::from_secs(30),
        "busy near its limit in the API",
        || {
            let list: Value = serde_json::from_str(&cp.kubectl_ok(&[
                "get",
                "--raw",
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
            ]))
            .unwrap();
            let busy = list["items"]
                .as_array()?
                .iter()
                .find(|i| i["metadata"]["name"] == "busy")?;
            let cpu = quantity_nanos(busy["containers"][0]["usage"]["cpu"].as_str()?);
            (250_000_000..=600_000_000).contains(&cpu).then_some(list)
        },
    );
    assert_eq!(list["kind"], "PodMetricsList");
    assert_eq!(list["apiVersion"], "metrics.k8s.io/v1beta1");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let busy_m = items
        .iter()
        .find(|i| i["metadata"]["name"] == "busy")
        .unwrap();
    assert_eq!(busy_m["metadata"]["namespace"], "default");
    assert_eq!(busy_m["metadata"]["labels"]["app"], "busy");
    assert!(
        busy_m["window"].as_str().unwrap().ends_with('s'),
        "{busy_m}"
    );
    assert!(
        busy_m["timestamp"].as_str().unwrap().ends_with('Z'),
        "{busy_m}"
    );
    assert_eq!(busy_m["containers"][0]["name"], "spin");
    for item in items {
        for c in item["containers"].as_array().unwrap() {
            let mem = quantity_nanos(c["usage"]["memory"].as_str().unwrap());
            assert!(mem > 0, "no memory in {item}");
        }
    }
    let selected: Value = serde_json::from_str(&cp.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dbusy",
    ]))
    .unwrap();
    assert_eq!(selected["items"].as_array().unwrap().len(), 1, "{selected}");
    let node_m: Value = serde_json::from_str(&cp.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/apis/metrics.k8s.io/v1beta1/nodes/{NODE}"),
    ]))
    .unwrap();
    assert_eq!(node_m["kind"], "NodeMetrics");
    assert!(quantity_nanos(node_m["usage"]["memory"].as_str().unwrap()) > 0);
    let metrics_table = cp.kubectl_ok(&["get", "podmetrics.metrics.k8s.io"]);
    println!("$ kubectl get podmetrics.metrics.k8s.io\n{metrics_table}");
    assert_eq!(rows(&metrics_table)[0], ["NAME", "CPU", "MEMORY", "WINDOW"]);

    // Errors in metrics-server's and the API server's words; read-only.
    let err = cp.kubectl_err(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
    ]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let err = cp.kubectl_err(&["top", "pod", "nope"]);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
    let out = cp.kubectl_stdin_output(
        &[
            "create",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "-f",
            "-",
        ],
        "{}",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("MethodNotAllowed"),
        "{err}"
    );

    // The agent's own endpoints: refused without the control plane's certificate.
    let port = c.node.port;
    for path in ["/metrics/resource", "/stats/summary"] {
        assert_eq!(https_get(port, path, None), (401, "Unauthorized".into()));
    }
    let pki = cp.data_dir().join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    let (cert, key) = (
        read("apiserver-kubelet-client.crt"),
        read("apiserver-kubelet-client.key"),
    );
    let (status, text) = https_get(port, "/metrics/resource", Some((&cert, &key)));
    assert_eq!(status, 200);
    for prefix in [
        "node_cpu_usage_seconds_total ",
        "node_memory_working_set_bytes ",
        "container_cpu_usage_seconds_total{container=\"spin\",namespace=\"default\",pod=\"busy\"} ",
        "container_memory_working_set_bytes{container=\"nap\",namespace=\"default\",pod=\"idle\"} ",
        "container_start_time_seconds{container=\"spin\",namespace=\"default\",pod=\"busy\"} ",
        "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"busy\"} ",
        "pod_memory_working_set_bytes{namespace=\"default\",pod=\"idle\"} ",
        "scrape_error ",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"));
        // Value and millisecond timestamp.
        let fields: Vec<&str> = line[prefix.len()..].split(' ').collect();
        assert_eq!(fields.len(), 2, "{line}");
        assert!(fields[0].parse::<f64>().is_ok(), "{line}");
        assert_eq!(fields[1].len(), 13, "{line}");
    }
    // Through the API server's node proxy, as `kubectl get --raw` reaches kubelet. The
    // scraper reads the node every second, so a rate is there.
    eventually(
        Duration::from_secs(30),
        "the summary's rate of busy",
        || {
            let summary: Value = serde_json::from_str(&cp.kubectl_ok(&[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
            ]))
            .unwrap();
            assert_eq!(summary["node"]["nodeName"], NODE);
            let node = &summary["node"];
            assert!(node["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
            assert!(node["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
            let pod = summary["pods"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["podRef"]["name"] == "busy")
                .unwrap_or_else(|| panic!("{summary}"));
            assert_eq!(pod["podRef"]["uid"], uids[0].as_str());
            let spin = &pod["containers"][0];
            assert_eq!(spin["name"], "spin");
            assert!(spin["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
            let rate = spin["cpu"]["usageNanoCores"].as_u64()?;
            (200_000_000..=650_000_000).contains(&rate).then_some(())
        },
    );

    // Deleted pods leave the API, and their cgroups go.
    cp.kubectl_ok(&["delete", "pod", "busy", "idle", "--wait=false"]);
    c.wait_gone("busy", Duration::from_secs(60));
    c.wait_gone("idle", Duration::from_secs(60));
    eventually(Duration::from_secs(20), "no pod metrics left", || {
        let list: Value = serde_json::from_str(&cp.kubectl_ok(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/pods",
        ]))
        .unwrap();
        list["items"].as_array().unwrap().is_empty().then_some(())
    });
    for uid in &uids {
        eventually(Duration::from_secs(20), "pod cgroups removed", || {
            pod_cgroups(&c, uid).is_empty().then_some(())
        });
    }
}
