//! The README's examples on a two-worker `skiff lab`, with the real kubectl, through the
//! failures a cluster meets: a rolling update while a client loops requests through the
//! Service (none lost), a drain within a disruption budget, a StatefulSet's names, DNS and volumes across a pod delete, a
//! DaemonSet on every worker, a Job and a CronJob, a worker killed (its pods come back on
//! the other one) and the control plane restarted (nothing lost). Traffic stays inside
//! the lab's namespaces.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::lab::{Lab, ok};
use skiff_tests::eventually;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    path.to_string_lossy().into_owned()
}

/// A pod on `node` that requests `GET /` from `ip:80` in a loop and prints `ok` or
/// `FAIL` for each; its log is the count of answered and lost requests.
fn client(ip: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: client
  labels: {{app: client}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: loop
    image: busybox:1.36
    command:
    - sh
    - -c
    - while true; do if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 {ip} 80 | grep -q '^HTTP/1.[01] 200'; then echo ok; else echo FAIL; fi; sleep 0.05; done
"#
    )
}

/// The client's results so far, oldest first (`true`: answered).
fn results(lab: &Lab) -> Vec<bool> {
    lab.kubectl_ok(&["logs", "client"])
        .lines()
        .filter_map(|l| match l.trim() {
            "ok" => Some(true),
            "FAIL" => Some(false),
            _ => None,
        })
        .collect()
}

/// Waits for `n` more results after the first `from`, and returns how many of those were
/// lost.
fn lost_since(lab: &Lab, from: usize, n: usize) -> (usize, usize) {
    let got = eventually(
        Duration::from_secs(60),
        "the client's next requests",
        || {
            let r = results(lab);
            (r.len() >= from + n).then_some(r)
        },
    );
    let after = &got[from..];
    (after.iter().filter(|ok| !**ok).count(), after.len())
}

/// The body of `GET /` from the Service, as the client pod sees it.
fn page(lab: &Lab, ip: &str) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80");
    let out = lab.kubectl_ok(&["exec", "client", "--", "sh", "-c", &script]);
    out.split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Every object the test made, by kind, name and UID; not the CronJob's Jobs and pods,
/// which come and go by the minute.
fn inventory(lab: &Lab) -> BTreeSet<String> {
    lab.kubectl_ok(&[
        "get",
        "deployments,statefulsets,daemonsets,jobs,cronjobs,services,configmaps,pvc,pv,pods",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}/{.metadata.uid}{\"\\n\"}{end}",
    ])
    .lines()
    .filter(|l| !l.contains("/tick-"))
    .map(str::to_string)
    .collect()
}

const TOLERATE_SHORTLY: &str = r#"[
  {"op": "replace", "path": "/spec/template/spec/volumes/0/configMap/name", "value": "web-page-v2"},
  {"op": "add", "path": "/spec/template/spec/tolerations", "value": [
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
  ]}
]"#;

#[test]
fn the_examples_survive_rollouts_a_dead_worker_and_a_control_plane_restart() {
    let lab = Lab::new();
    lab.up(2);

    for f in [
        "deployment.yaml",
        "statefulset.yaml",
        "daemonset.yaml",
        "job.yaml",
    ] {
        lab.kubectl_ok(&["apply", "-f", &example(f)]);
    }
    let web_ip = lab.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    lab.apply(&client(&web_ip, "w1"));

    // The Deployment over both workers; the client gets answers.
    let web = lab.ready_pods("app=web", 3, Duration::from_secs(120));
    let nodes: BTreeSet<&str> = web.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, BTreeSet::from(["w1", "w2"]), "{web:?}");
    lab.ready_pods("app=client", 1, Duration::from_secs(60));
    let (lost, n) = lost_since(&lab, 0, 10);
    assert_eq!(lost, 0, "{lost} of the first {n} requests lost");

    // A rolling update to a new page (and a short toleration of a dead node, used
    // below), while the client loops: no request is lost.
    lab.kubectl_ok(&[
        "create",
        "configmap",
        "web-page-v2",
        "--from-literal=index.html=hello from version 2",
    ]);
    let before = results(&lab).len();
    lab.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        TOLERATE_SHORTLY,
    ]);
    lab.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let web = lab.ready_pods("app=web", 3, Duration::from_secs(120));
    assert!(web.iter().any(|p| p.node == "w2"), "{web:?}");
    let (lost, n) = lost_since(&lab, before, results(&lab).len() - before + 10);
    assert_eq!(lost, 0, "{lost} of {n} requests lost during the rollout");
    assert_eq!(page(&lab, &web_ip), "hello from version 2");

    // The StatefulSet: stable names, a DNS name per pod, a volume per pod that outlives
    // the pod.
    let db = lab.ready_pods("app=db", 2, Duration::from_secs(120));
    let names: Vec<&str> = db.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["db-0", "db-1"]);
    for p in &db {
        let answer = lab.exec_until(
            "client",
            &[
                "nslookup",
                &format!("{}.db.default.svc.cluster.local", p.name),
            ],
            "a StatefulSet pod's DNS name",
        );
        assert!(answer.contains(&p.ip), "{}: {answer}", p.name);
        let mark = format!("echo written-by-{} > /data/mark", p.name);
        lab.kubectl_ok(&["exec", &p.name, "--", "sh", "-c", &mark]);
    }
    lab.kubectl_ok(&["delete", "pod", "db-0", "--grace-period=2"]);
    let again = eventually(Duration::from_secs(120), "db-0 back", || {
        lab.pods("app=db")
            .into_iter()
            .find(|p| p.name == "db-0" && p.ready && !p.deleting && p.uid != db[0].uid)
    });
    for (pod, want) in [("db-0", "written-by-db-0"), ("db-1", "written-by-db-1")] {
        let got = lab.kubectl_ok(&["exec", pod, "--", "cat", "/data/mark"]);
        assert_eq!(got.trim(), want, "{pod}'s volume");
    }
    assert_eq!(again.node, db[0].node, "the volume is on db-0's node");

    // The DaemonSet on every worker; the Job completes.
    let agents = lab.ready_pods("app=node-agent", 2, Duration::from_secs(60));
    let nodes: BTreeSet<&str> = agents.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, BTreeSet::from(["w1", "w2"]), "{agents:?}");
    lab.kubectl_ok(&[
        "wait",
        "--for=condition=Complete",
        "job/count",
        "--timeout=120s",
    ]);

    // Draining w2 within a disruption budget: web moves to w1 with no request lost; a db
    // pod whose volume is on w2 waits for w2 to be uncordoned, and comes back there.
    lab.kubectl_ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    eventually(Duration::from_secs(30), "the budget's status", || {
        let allowed = lab.kubectl_ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.disruptionsAllowed}",
        ]);
        (allowed.trim() == "1").then_some(())
    });
    let db_nodes = lab.ready_pods("app=db", 2, Duration::from_secs(60));
    let before = results(&lab).len();
    let out = lab.kubectl_ok(&[
        "drain",
        "w2",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--grace-period=5",
        "--timeout=180s",
    ]);
    assert!(out.contains("node/w2 drained"), "{out}");
    let web = lab.ready_pods("app=web", 3, Duration::from_secs(60));
    assert!(web.iter().all(|p| p.node == "w1"), "{web:?}");
    lab.kubectl_ok(&["uncordon", "w2"]);
    let after = lab.ready_pods("app=db", 2, Duration::from_secs(120));
    let nodes = |pods: &[common::lab::PodRow]| -> Vec<(String, String)> {
        pods.iter()
            .map(|p| (p.name.clone(), p.node.clone()))
            .collect()
    };
    assert_eq!(
        nodes(&after),
        nodes(&db_nodes),
        "each db pod stays with its volume"
    );
    // A restart rollout spreads web over both workers again.
    lab.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    lab.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let web = eventually(Duration::from_secs(60), "web on both workers", || {
        let web = lab.ready_pods("app=web", 3, Duration::from_secs(60));
        web.iter().any(|p| p.node == "w2").then_some(web)
    });
    let (lost, n) = lost_since(&lab, before, results(&lab).len() - before + 10);
    assert_eq!(
        lost, 0,
        "{lost} of {n} requests lost during the drain and rollout: {web:?}"
    );

    // A worker dies: it goes NotReady, its web pods come back on the other worker, and the
    // Service answers again from there.
    let at_kill = results(&lab).len();
    ok(
        lab.skiff(&["lab", "kill-node", "w2"]),
        "skiff lab kill-node",
    );
    eventually(Duration::from_secs(60), "w2 NotReady", || {
        (lab.node_ready("w2") != "True").then_some(())
    });
    let moved = eventually(Duration::from_secs(120), "web pods moved to w1", || {
        let live: Vec<_> = lab
            .pods("app=web")
            .into_iter()
            .filter(|p| !p.deleting && p.node == "w1" && p.ready)
            .collect();
        (live.len() == 3).then_some(live)
    });
    assert!(moved.iter().all(|p| p.node == "w1"), "{moved:?}");
    // The lost pods leave the Service: every request answered again.
    let answered = eventually(
        Duration::from_secs(60),
        "the Service answering again",
        || {
            let from = results(&lab).len();
            let (lost, _) = lost_since(&lab, from, 10);
            (lost == 0).then_some(from)
        },
    );

    let window = &results(&lab)[at_kill..answered];
    eprintln!(
        "while w2 was dying: {} of {} requests lost",
        window.iter().filter(|ok| !**ok).count(),
        window.len()
    );

    // The control plane restarts, cleanly and then killed: nothing is lost, the data path
    // never stops, and the cluster carries on.
    let objects = inventory(&lab);
    for how in [&[][..], &["--kill"][..]] {
        let mut args = vec!["lab", "restart-control-plane"];
        args.extend_from_slice(how);
        let out = ok(lab.skiff(&args), "skiff lab restart-control-plane");
        assert!(out.contains("the control plane is back"), "{out}");
        let now = inventory(&lab);
        let lost: Vec<_> = objects.difference(&now).collect();
        assert!(
            lost.is_empty(),
            "lost at restart-control-plane {how:?}: {lost:?}"
        );
    }
    let (lost, n) = lost_since(&lab, answered, results(&lab).len() - answered + 10);
    assert_eq!(lost, 0, "{lost} of {n} requests lost across the restarts");
    assert_eq!(lab.node_ready("w1"), "True");
    lab.kubectl_ok(&["scale", "deployment/web", "--replicas=4"]);
    lab.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let out = ok(
        lab.skiff(&["lab", "restart-node", "w2"]),
        "skiff lab restart-node",
    );
    assert!(out.contains("w2 is back"), "{out}");

    // The CronJob has fired (once a minute) and its Job completed.
    eventually(Duration::from_secs(120), "a CronJob's Job complete", || {
        let jobs = lab.kubectl_ok(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].name} {.status.succeeded}{\"\\n\"}{end}",
        ]);
        jobs.lines().any(|l| l == "tick 1").then_some(())
    });

    ok(lab.skiff(&["lab", "down"]), "skiff lab down");
    lab.assert_gone(2);
}
