//! `skiff lab` on the real kernel: two workers, each a network namespace with its own
//! containerd, agent and proxy, joined to a control plane on the host through a bridge.
//! Pods talk across workers over VXLAN, Services answer by ClusterIP, DNS and NodePort,
//! `kubectl logs`/`exec` reach the workers' agents, a killed worker goes NotReady, and
//! `lab down` leaves nothing behind. Traffic stays on the lab's own bridge and namespaces.

mod common;

use std::time::Duration;

use common::lab::{Lab, http_get, ok};
use skiff_tests::{eventually, workspace_bin};

/// Three replicas serving one page from a ConfigMap, spread over the workers, behind a
/// NodePort Service.
const WEB: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-page
data:
  index.html: "hello from the lab\n"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
      volumes:
      - name: www
        configMap: {name: web-page}
      containers:
      - name: httpd
        image: busybox:1.36
        command: ["sh", "-c", "echo serving $(hostname) && exec httpd -f -p 8080 -h /www"]
        volumeMounts: [{name: www, mountPath: /www}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

const PAGE: &str = "hello from the lab";

#[test]
fn a_two_worker_lab_runs_pods_across_workers_and_goes_away_without_a_trace() {
    // The node agents find the CNI plugins beside the skiff binary.
    for plugin in ["skiff-bridge", "skiff-ipam"] {
        workspace_bin(plugin).expect("the CNI plugins are built");
    }
    let lab = Lab::new();
    let printed = lab.up(2);
    assert!(
        printed.contains(&format!("kubeconfig: {}", lab.kubeconfig().display())),
        "{printed}"
    );
    for k in 1..=2 {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("w{k} ")))
            .unwrap_or_else(|| panic!("no line for w{k} in:\n{printed}"));
        assert!(line.contains(&lab.worker_address(k)), "{line}");
    }

    // Both nodes Ready, at their lab addresses, with pod ranges of their own.
    let nodes = lab.kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type==\"InternalIP\")].address} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    let rows: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 2, "{nodes}");
    assert_eq!(rows[0][0], "w1", "{nodes}");
    assert_eq!(rows[1][0], "w2", "{nodes}");
    assert_ne!(rows[0][1], rows[1][1], "{nodes}");
    for (k, row) in rows.iter().enumerate() {
        assert!(row[1].starts_with("10.244."), "{nodes}");
        assert_eq!(row[2], lab.worker_address(k as u32 + 1), "{nodes}");
        assert_eq!(row[3], "True", "{nodes}");
    }

    // Three replicas, spread over both workers.
    lab.apply(WEB);
    let pods = lab.ready_pods("app=web", 3, Duration::from_secs(120));
    let on = |node: &str| pods.iter().filter(|p| p.node == node).count();
    assert_eq!(
        (on("w1").max(on("w2")), on("w1").min(on("w2"))),
        (2, 1),
        "{pods:?}"
    );
    let on_w1 = pods.iter().find(|p| p.node == "w1").expect("a pod on w1");
    let on_w2 = pods.iter().find(|p| p.node == "w2").expect("a pod on w2");

    // Pod to pod across workers, by address (VXLAN between the namespaces).
    let got = lab.http_in_pod(&on_w1.name, &format!("{}:8080", on_w2.ip));
    assert_eq!(got, PAGE);

    // The Service by ClusterIP and by DNS name, from a pod on each worker.
    let cluster_ip = lab.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    for pod in [on_w1, on_w2] {
        let got = lab.http_in_pod(&pod.name, &format!("{cluster_ip}:80"));
        assert_eq!(got, PAGE);
        let answer = lab.exec_until(
            &pod.name,
            &["nslookup", "web.default.svc.cluster.local"],
            "the Service's DNS name",
        );
        let resolved = skiff_tests::nslookup_address(&answer);
        assert_eq!(resolved, cluster_ip, "{answer}");
        let got = lab.http_in_pod(&pod.name, &format!("{resolved}:80"));
        assert_eq!(got, PAGE);
    }

    // The NodePort from the host, at each worker's address.
    let node_port = lab.kubectl_ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    for k in 1..=2 {
        let addr = format!("{}:{node_port}", lab.worker_address(k));
        let body = eventually(
            Duration::from_secs(30),
            "the NodePort from the host",
            || http_get(&addr, "/"),
        );
        assert_eq!(body.trim(), PAGE);
    }

    // Logs, exec and port-forward go through the control plane to each worker's agent.
    for pod in [on_w1, on_w2] {
        let logs = lab.kubectl_ok(&["logs", &pod.name]);
        assert!(logs.contains(&format!("serving {}", pod.name)), "{logs}");
        let host = lab.kubectl_ok(&["exec", &pod.name, "--", "hostname"]);
        assert_eq!(host.trim(), pod.name);
        let (mut forward, local) = lab.port_forward(&format!("pod/{}", pod.name), 8080);
        let body = http_get(&format!("127.0.0.1:{local}"), "/");
        let _ = forward.kill();
        let _ = forward.wait();
        assert_eq!(body.as_deref().map(str::trim), Some(PAGE), "port-forward");
    }
    let (mut forward, local) = lab.port_forward("svc/web", 80);
    let body = http_get(&format!("127.0.0.1:{local}"), "/");
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(
        body.as_deref().map(str::trim),
        Some(PAGE),
        "port-forward svc/web"
    );

    // A dead worker goes NotReady within the node monitor grace period (20s here).
    ok(
        lab.skiff(&["lab", "kill-node", "w2"]),
        "skiff lab kill-node",
    );
    eventually(Duration::from_secs(45), "w2 NotReady", || {
        (lab.node_ready("w2") != "True").then_some(())
    });

    // Back with the credentials it has, Ready again (heartbeats from the new process).
    let out = ok(
        lab.skiff(&["lab", "restart-node", "w2"]),
        "skiff lab restart-node",
    );
    assert!(out.contains("w2 is back"), "{out}");
    assert_eq!(lab.node_ready("w2"), "True");

    // Down: no namespace, link, process, cgroup or directory is left.
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(2);
    // Once more: down is idempotent.
    ok(lab.skiff(&["lab", "down"]), "skiff lab down, again");
}

#[test]
fn a_lab_whose_up_failed_half_way_is_taken_down() {
    let lab = Lab::new();
    // No node can be Ready within no time: up fails after making everything.
    let out = lab.up_with(2, &["--timeout-seconds", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("skiff lab down --workdir"), "{err}");
    assert!(lab.workdir.join("lab.json").exists());
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(2);
    let again = ok(lab.skiff(&["lab", "down"]), "skiff lab down, again");
    assert!(again.contains("no lab in"), "{again}");
}

#[test]
fn a_lab_with_a_wider_node_cidr_mask_runs_more_pods_per_worker() {
    let lab = Lab::new();
    ok(
        lab.up_with(1, &["--node-cidr-mask-size", "23", "--max-pods", "300"]),
        "skiff lab up --node-cidr-mask-size 23",
    );
    let node = lab.kubectl_ok(&[
        "get",
        "node",
        "w1",
        "-o",
        "jsonpath={.spec.podCIDR} {.status.capacity.pods}",
    ]);
    let (cidr, pods) = node.split_once(' ').expect("cidr and pods");
    assert!(
        cidr.starts_with("10.244.") && cidr.ends_with(".0/23"),
        "{node}"
    );
    assert_eq!(pods, "300", "{node}");
    lab.kubectl_ok(&[
        "run",
        "one",
        "--image=busybox:1.36",
        "--image-pull-policy=IfNotPresent",
        "--restart=Never",
        "--",
        "sleep",
        "1000",
    ]);
    lab.kubectl_ok(&["wait", "--for=condition=Ready", "pod/one", "--timeout=60s"]);
    let ip = lab.kubectl_ok(&["get", "pod", "one", "-o", "jsonpath={.status.podIP}"]);
    let third: u32 = cidr
        .split('.')
        .nth(2)
        .and_then(|o| o.parse().ok())
        .expect("octet");
    let octets: Vec<u32> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert_eq!(octets.len(), 4, "{ip}");
    assert!(
        octets[0] == 10 && octets[1] == 244 && (octets[2] == third || octets[2] == third + 1),
        "{ip} is not in {cidr}"
    );
    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(1);
}
