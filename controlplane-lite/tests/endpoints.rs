//! A Service's EndpointSlices and Endpoints on a real control plane with simulated nodes,
//! read through the real kubectl: following pod readiness, named target ports resolved per
//! pod, terminating pods, publishNotReadyAddresses; and the default ServiceAccount of a new
//! namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sim::{Cluster, cluster};

fn pod_yaml(name: &str, app: &str, port: u16, extra_meta: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {app}
{extra_meta}
spec:
  containers:
  - name: main
    image: busybox
    ports:
    - name: http
      containerPort: {port}
"#
    )
}

fn slices(c: &Cluster, svc: &str) -> Vec<Value> {
    c.json(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
    ])["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// `(pod, port, ready, serving, terminating)` of every endpoint of the Service, sorted.
fn endpoints_of(c: &Cluster, svc: &str) -> Vec<(String, i64, bool, bool, bool)> {
    let mut out = Vec::new();
    for s in slices(c, svc) {
        let port = s["ports"][0]["port"].as_i64().unwrap_or(0);
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let cond = |k: &str| e["conditions"][k].as_bool().unwrap_or(false);
            out.push((
                e["targetRef"]["name"].as_str().unwrap().to_string(),
                port,
                cond("ready"),
                cond("serving"),
                cond("terminating"),
            ));
        }
    }
    out.sort();
    out
}

fn pod_ip(c: &Cluster, pod: &str) -> String {
    c.json(&["get", "pod", pod])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string()
}

fn set_ready(c: &Cluster, pod: &str, ready: bool) {
    let s = if ready { "True" } else { "False" };
    let patch = json!({"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": s},
        {"type": "Ready", "status": s},
    ]}});
    c.kubectl(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// Flips the pod's readiness through the API and times until a slice shows it.
async fn readiness_to_slice(c: &Cluster, pod: &str, ready: bool) -> Duration {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let s = if ready { "True" } else { "False" };
    let patch = json!({"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "ContainersReady", "status": s},
        {"type": "Ready", "status": s},
    ]}});
    let t = Instant::now();
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let lp = ListParams::default().labels("kubernetes.io/service-name=web");
    while t.elapsed() < Duration::from_secs(10) {
        let shown = slices.list(&lp).await.unwrap().items.iter().any(|sl| {
            sl.endpoints.iter().any(|e| {
                e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                    && e.conditions.as_ref().and_then(|c| c.ready) == Some(ready)
            })
        });
        if shown {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{pod} ready={ready} never reached its slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_follow_pods() {
    let c = cluster().await;
    c.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: web
    port: 80
    targetPort: http
"#,
    );
    // No pods yet: one empty placeholder slice.
    let placeholder = c
        .eventually(10, "the placeholder slice", || {
            slices(&c, "web").into_iter().next()
        })
        .await;
    assert!(
        placeholder["endpoints"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    assert_eq!(placeholder["addressType"], "IPv4");
    assert_eq!(
        placeholder["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        placeholder["metadata"]["ownerReferences"][0]["kind"],
        "Service"
    );

    // `a` and `b` name port 8080 `http`, `c` names 9090; `b` is not ready; `d` is not selected;
    // `a` has a finalizer of ours so it stays a while once deleted.
    c.apply(&pod_yaml(
        "a",
        "web",
        8080,
        "  finalizers: [skiff.test/hold]",
    ));
    c.apply(&pod_yaml(
        "b",
        "web",
        8080,
        "  annotations: {skiff.test/unready: \"true\"}",
    ));
    c.apply(&pod_yaml("c", "web", 9090, ""));
    c.apply(&pod_yaml("d", "other", 8080, ""));
    let want = vec![
        ("a".to_string(), 8080, true, true, false),
        ("b".to_string(), 8080, false, false, false),
        ("c".to_string(), 9090, true, true, false),
    ];
    c.eventually(20, "the three endpoints", || {
        (endpoints_of(&c, "web") == want).then_some(())
    })
    .await;
    // Two port sets, two slices; each endpoint names its pod and node.
    let all = slices(&c, "web");
    assert_eq!(all.len(), 2, "{all:?}");
    for s in &all {
        assert_eq!(s["ports"][0]["name"], "web");
        assert_eq!(s["ports"][0]["protocol"], "TCP");
        for e in s["endpoints"].as_array().unwrap() {
            let pod = e["targetRef"]["name"].as_str().unwrap();
            assert_eq!(e["targetRef"]["kind"], "Pod");
            assert_eq!(e["addresses"][0], pod_ip(&c, pod).as_str());
            assert!(e["nodeName"].as_str().unwrap().starts_with("sim-"));
        }
    }
    // The legacy Endpoints: a subset per port, the unready pod apart.
    let ip = |p: &str| pod_ip(&c, p);
    let legacy = c
        .eventually(10, "the Endpoints", || {
            let ep = c.json(&["get", "endpoints", "web"]);
            (ep["subsets"].as_array().map(Vec::len) == Some(2)).then_some(ep)
        })
        .await;
    let mut subsets: Vec<(i64, Vec<String>, Vec<String>)> = legacy["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let addrs = |k: &str| -> Vec<String> {
                s[k].as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["ip"].as_str().unwrap().to_string())
                    .collect()
            };
            (
                s["ports"][0]["port"].as_i64().unwrap(),
                addrs("addresses"),
                addrs("notReadyAddresses"),
            )
        })
        .collect();
    subsets.sort();
    assert_eq!(
        subsets,
        [
            (8080, vec![ip("a")], vec![ip("b")]),
            (9090, vec![ip("c")], vec![]),
        ]
    );
    let table = c.kubectl(&["get", "endpoints", "web"]);
    assert!(table.contains(&format!("{}:8080", ip("a"))), "{table}");

    // `b` turns ready.
    set_ready(&c, "b", true);
    c.eventually(10, "b ready", || {
        endpoints_of(&c, "web")
            .contains(&("b".to_string(), 8080, true, true, false))
            .then_some(())
    })
    .await;
    // How long a readiness change takes to reach the slice, seen from an API client.
    let mut took = Vec::new();
    for ready in [false, true, false, true, false, true] {
        took.push(readiness_to_slice(&c, "b", ready).await);
    }
    took.sort();
    println!(
        "readiness change to EndpointSlice update: median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // `a` is deleted but held by its finalizer: still serving, terminating, no longer ready;
    // gone from the legacy Endpoints.
    c.kubectl(&["delete", "pod", "a", "--wait=false"]);
    c.eventually(10, "a terminating", || {
        endpoints_of(&c, "web")
            .contains(&("a".to_string(), 8080, false, true, true))
            .then_some(())
    })
    .await;
    c.eventually(10, "a out of Endpoints", || {
        let ep = c.json(&["get", "endpoints", "web"]);
        let s = ep["subsets"].to_string();
        (!s.contains(&format!("\"{}\"", ip("a")))).then_some(())
    })
    .await;
    c.kubectl(&[
        "patch",
        "pod",
        "a",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    c.eventually(10, "a gone", || {
        (endpoints_of(&c, "web")
            == vec![
                ("b".to_string(), 8080, true, true, false),
                ("c".to_string(), 9090, true, true, false),
            ])
        .then_some(())
    })
    .await;

    // The selector changes: the endpoints follow it.
    c.kubectl(&[
        "patch",
        "service",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"selector":{"app":"other"}}}"#,
    ]);
    c.eventually(10, "d alone", || {
        (endpoints_of(&c, "web") == vec![("d".to_string(), 8080, true, true, false)]).then_some(())
    })
    .await;
    // A Service without a selector is left to its users.
    c.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: outside
spec:
  ports:
  - port: 80
"#,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(slices(&c, "outside").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_ready_addresses_can_be_published() {
    let c = cluster().await;
    c.apply(
        r#"apiVersion: v1
kind: Service
metadata:
  name: peers
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    app: db
  ports:
  - port: 5432
    targetPort: 5432
"#,
    );
    c.apply(&pod_yaml(
        "db-0",
        "db",
        5432,
        "  annotations: {skiff.test/unready: \"true\"}",
    ));
    // Not ready, yet published as ready; not serving, as the pod says.
    c.eventually(20, "db-0 published", || {
        (endpoints_of(&c, "peers") == vec![("db-0".to_string(), 5432, true, false, false)])
            .then_some(())
    })
    .await;
    let s = &slices(&c, "peers")[0];
    assert_eq!(
        s["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    let ep = c
        .eventually(10, "the Endpoints", || {
            let ep = c.json(&["get", "endpoints", "peers"]);
            ep["subsets"].is_array().then_some(ep)
        })
        .await;
    assert_eq!(
        ep["subsets"][0]["addresses"][0]["ip"],
        pod_ip(&c, "db-0").as_str()
    );
    assert!(ep["subsets"][0]["notReadyAddresses"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_namespaces_get_a_default_service_account() {
    let c = cluster().await;
    c.kubectl(&["create", "namespace", "fresh"]);
    let sa = c
        .eventually(10, "the default ServiceAccount", || {
            let out = tokio::task::block_in_place(|| {
                c.cp.kubectl(&[
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "fresh",
                    "-o",
                    "json",
                ])
            });
            out.status
                .success()
                .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
        })
        .await;
    assert_eq!(sa["metadata"]["namespace"], "fresh");
    // Deleted, it comes back.
    let uid = sa["metadata"]["uid"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "serviceaccount", "default", "-n", "fresh"]);
    c.eventually(10, "a new default ServiceAccount", || {
        let out = tokio::task::block_in_place(|| {
            c.cp.kubectl(&[
                "get",
                "serviceaccount",
                "default",
                "-n",
                "fresh",
                "-o",
                "json",
            ])
        });
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["metadata"]["uid"].as_str()? != uid).then_some(())
    })
    .await;
    // Every namespace there was at start has one too.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        c.kubectl(&["get", "serviceaccount", "default", "-n", ns]);
    }
}
