//! The scheduler against a real control plane, simulated nodes of different sizes,
//! labels and taints, and the real kubectl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skiff_controlplane::testing::{FakeNode, FakeNodes};
use skiff_tests::{ControlPlane, workspace_bin};

async fn client(cp: &ControlPlane) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn start() -> ControlPlane {
    ControlPlane::start(&workspace_bin("skiff-controlplane").unwrap(), &[]).unwrap()
}

fn node(name: &str, cpu: &str, labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> FakeNode {
    let mut n = FakeNode::new(name);
    n.cpu = cpu.into();
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    n.taints = taints
        .iter()
        .map(|(k, v, e)| (k.to_string(), v.to_string(), e.to_string()))
        .collect();
    n
}

/// Polls kubectl until `f` accepts its output.
async fn until(cp: &ControlPlane, args: &[&str], what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cp.kubectl(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && f(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last output:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `name node` per pod in `default`, once every pod named has a node.
async fn placements(cp: &ControlPlane, names: &[&str]) -> BTreeMap<String, String> {
    let text = until(
        cp,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
        ],
        "pods to be placed",
        |t| {
            let m: BTreeMap<&str, &str> = t.lines().filter_map(|l| l.split_once(' ')).collect();
            names
                .iter()
                .all(|n| m.get(n).is_some_and(|node| !node.is_empty()))
        },
    )
    .await;
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn pod_yaml(name: &str, labels: &str, cpu: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests:\n        cpu: {cpu}\n{extra}---\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_spread_and_honour_selectors_affinity_and_taints() {
    let cp = start();
    let c = client(&cp).await;
    let _nodes = FakeNodes::start(
        c,
        vec![
            node("small", "2", &[("disk", "hdd")], &[]),
            node("big", "8", &[("disk", "ssd")], &[]),
            node(
                "infra",
                "8",
                &[("disk", "ssd")],
                &[("dedicated", "infra", "NoSchedule")],
            ),
        ],
    )
    .await
    .unwrap();
    let mut yaml = String::new();
    for i in 0..6 {
        yaml += &pod_yaml(&format!("web-{i}"), "app: web", "100m", "");
    }
    yaml += &pod_yaml(
        "fast",
        "app: db",
        "100m",
        "  nodeSelector:\n    disk: ssd\n",
    );
    yaml += &pod_yaml(
        "slow",
        "app: batch",
        "100m",
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: disk, operator: NotIn, values: [ssd]}\n",
    );
    yaml += &pod_yaml(
        "agent",
        "app: infra",
        "100m",
        "  nodeSelector:\n    kubernetes.io/hostname: infra\n  tolerations:\n  - {key: dedicated, operator: Equal, value: infra, effect: NoSchedule}\n",
    );
    cp.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    let names = [
        "web-0", "web-1", "web-2", "web-3", "web-4", "web-5", "fast", "slow", "agent",
    ];
    let placed = placements(&cp, &names).await;
    assert_eq!(placed["fast"], "big");
    assert_eq!(placed["slow"], "small");
    assert_eq!(placed["agent"], "infra");
    // No untolerating pod on the tainted node; both open nodes got some web pods.
    let web: Vec<&String> = (0..6).map(|i| &placed[&format!("web-{i}")]).collect();
    assert!(web.iter().all(|n| *n != "infra"), "{placed:?}");
    assert!(
        web.iter().any(|n| *n == "small") && web.iter().any(|n| *n == "big"),
        "{placed:?}"
    );
    // The stand-in kubelet runs them; the API server marked them scheduled.
    until(
        &cp,
        &["get", "pod", "fast", "-o", "jsonpath={.status.phase}"],
        "fast running",
        |t| t == "Running",
    )
    .await;
    let cond = cp.kubectl_ok(&[
        "get",
        "pod",
        "web-0",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}",
    ]);
    assert_eq!(cond, "True");
    let describe = cp.kubectl_ok(&["describe", "pod", "fast"]);
    assert!(
        describe.contains("Successfully assigned default/fast to big"),
        "{describe}"
    );
    assert!(describe.contains("default-scheduler"), "{describe}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfit_pod_waits_with_the_reason_until_a_node_fits() {
    let cp = start();
    let c = client(&cp).await;
    let _nodes = FakeNodes::start(
        c.clone(),
        vec![
            node("n1", "2", &[], &[]),
            node("n2", "4", &[], &[("role", "gpu", "NoSchedule")]),
        ],
    )
    .await
    .unwrap();
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("huge", "app: huge", "6", ""),
    );
    let want = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {role: gpu}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    let describe = until(&cp, &["describe", "pod", "huge"], "FailedScheduling", |t| {
        t.contains("FailedScheduling")
    })
    .await;
    assert!(describe.contains(want), "{describe}");
    assert!(
        describe.contains("Status:           Pending") || describe.contains("Pending"),
        "{describe}"
    );
    let cond = cp.kubectl_ok(&[
        "get",
        "pod",
        "huge",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
    ]);
    assert_eq!(cond, "Unschedulable");
    let table = cp.kubectl_ok(&["get", "pod", "huge"]);
    assert!(table.contains("Pending"), "{table}");

    // A node that fits arrives: the pod is placed and runs.
    let _more = FakeNodes::start(c, vec![node("n3", "8", &[], &[])])
        .await
        .unwrap();
    let placed = placements(&cp, &["huge"]).await;
    assert_eq!(placed["huge"], "n3");
    until(
        &cp,
        &["get", "pod", "huge", "-o", "jsonpath={.status.phase}"],
        "huge running",
        |t| t == "Running",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_anti_affinity_and_topology_spread() {
    let cp = start();
    let c = client(&cp).await;
    let zone = "topology.kubernetes.io/zone";
    let _nodes = FakeNodes::start(
        c,
        vec![
            node("a1", "4", &[(zone, "a")], &[]),
            node("a2", "4", &[(zone, "a")], &[]),
            node("b1", "4", &[(zone, "b")], &[]),
        ],
    )
    .await
    .unwrap();
    // Host port 8080: one per node, the fourth waits.
    let mut yaml = String::new();
    for i in 0..4 {
        yaml += &pod_yaml(&format!("port-{i}"), "app: port", "100m", "").replace(
            "    resources:",
            "    ports:\n    - {containerPort: 80, hostPort: 8080}\n    resources:",
        );
    }
    cp.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    let text = until(
        &cp,
        &[
            "get",
            "pods",
            "-l",
            "app=port",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName},{end}",
        ],
        "three port pods placed",
        |t| t.split(',').filter(|n| !n.is_empty()).count() == 3,
    )
    .await;
    let mut nodes: Vec<&str> = text.split(',').filter(|n| !n.is_empty()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["a1", "a2", "b1"]);
    let describe = until(
        &cp,
        &["describe", "pods", "-l", "app=port"],
        "port refusal",
        |t| t.contains("FailedScheduling"),
    )
    .await;
    assert!(
        describe.contains(
            "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports."
        ),
        "{describe}"
    );
    cp.kubectl_ok(&["delete", "pods", "-l", "app=port", "--wait=false"]);

    // Required anti-affinity on the hostname: one per node.
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: solo}}\n        topologyKey: kubernetes.io/hostname\n";
    let mut yaml = String::new();
    for i in 0..3 {
        yaml += &pod_yaml(&format!("solo-{i}"), "app: solo", "100m", anti);
    }
    cp.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    let placed = placements(&cp, &["solo-0", "solo-1", "solo-2"]).await;
    let mut solo: Vec<&str> = (0..3)
        .map(|i| placed[&format!("solo-{i}")].as_str())
        .collect();
    solo.sort();
    assert_eq!(solo, vec!["a1", "a2", "b1"]);

    // Spread over zones with maxSkew 1: four pods go two and two.
    let spread = format!(
        "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: {zone}\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {{matchLabels: {{app: spread}}}}\n"
    );
    let mut yaml = String::new();
    for i in 0..4 {
        yaml += &pod_yaml(&format!("spread-{i}"), "app: spread", "100m", &spread);
    }
    cp.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    let placed = placements(&cp, &["spread-0", "spread-1", "spread-2", "spread-3"]).await;
    let in_b = (0..4)
        .filter(|i| placed[&format!("spread-{i}")] == "b1")
        .count();
    assert_eq!(in_b, 2, "{placed:?}");
}
