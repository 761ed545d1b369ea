//! HorizontalPodAutoscalers on a real control plane with simulated nodes, driven by the
//! real kubectl: `kubectl autoscale`, `get`, `describe` and `explain`; v2 manifests read
//! back as autoscaling/v1 and v2 (get, list, watch, patch through v1); validation; and the
//! controller bringing a Deployment within minReplicas and maxReplicas.
//!
//! The controller syncs every second here (`--horizontal-pod-autoscaler-sync-period=1s`).
//! These pods report no usage, so metric-driven scaling is covered by the unit tests and by
//! the end-to-end suites on real pods; here the controller's status and events on a
//! cluster without samples are what is checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler as HpaV2;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use skiff_controlplane::testing::{FakeNode, FakeNodes, StandInBinder};
use skiff_tests::ControlPlane;

const BIN: &str = env!("CARGO_BIN_EXE_skiff-controlplane");

/// Fields drop in order: the simulated nodes and the binder stop before the server does.
struct Cluster {
    _binder: StandInBinder,
    _nodes: FakeNodes,
    client: kube::Client,
    cp: ControlPlane,
}

async fn cluster() -> Cluster {
    let cp = ControlPlane::start(
        BIN.as_ref(),
        &["--horizontal-pod-autoscaler-sync-period=1s"],
    )
    .expect("control plane starts");
    let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let names: Vec<String> = (1..=2).map(|i| format!("sim-{i}")).collect();
    let nodes = FakeNodes::start(
        client.clone(),
        names.iter().map(|n| FakeNode::new(n)).collect(),
    )
    .await
    .unwrap();
    let binder = StandInBinder::start(client.clone(), names, Duration::from_millis(100));
    Cluster {
        cp,
        client,
        _nodes: nodes,
        _binder: binder,
    }
}

impl Cluster {
    /// kubectl off the runtime's threads; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut with_timeout = vec!["--request-timeout=60s"];
        with_timeout.extend_from_slice(args);
        let mut cmd = tokio::process::Command::from(self.cp.kubectl_cmd(&with_timeout));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs (is it on PATH?)");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut s = child.stdin.take().unwrap();
            s.write_all(input.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    async fn apply(&self, yaml: &str) -> String {
        let (ok, out, err) = self.run(&["apply", "-f", "-"], Some(yaml)).await;
        assert!(ok, "kubectl apply failed: {err}\n{out}");
        out
    }

    async fn refused(&self, yaml: &str) -> String {
        let (ok, out, err) = self.run(&["apply", "-f", "-"], Some(yaml)).await;
        assert!(!ok, "kubectl apply unexpectedly succeeded: {out}");
        err
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).unwrap()
    }

    /// Polls `f` every 200 ms for up to 30 s.
    async fn eventually<T>(&self, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..150 {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn deployment_replicas(&self, name: &str) -> i64 {
        self.json(&["get", "deployment", name]).await["spec"]["replicas"]
            .as_i64()
            .unwrap()
    }

    /// The HPA's condition of `type_` as (status, reason, message).
    async fn condition(&self, name: &str, type_: &str) -> Option<(String, String, String)> {
        let hpa = self.json(&["get", "hpa", name]).await;
        hpa["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                (s("status"), s("reason"), s("message"))
            })
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: busybox
        resources:
          requests: {cpu: 100m, memory: 64Mi}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_get_describe_explain() {
    let c = cluster().await;
    c.apply(WEB).await;
    let out = c
        .ok(&[
            "autoscale",
            "deployment",
            "web",
            "--cpu-percent=50",
            "--min=1",
            "--max=5",
        ])
        .await;
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );

    // The table kube-apiserver prints; REPLICAS fills in once the controller has synced.
    let table = c
        .eventually("the HPA to report its replicas", async || {
            let out = c.ok(&["get", "hpa"]).await;
            let row = out.lines().nth(1)?.split_whitespace().collect::<Vec<_>>();
            (row.get(6) == Some(&"1")).then_some(out)
        })
        .await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        [
            "web",
            "Deployment/web",
            "cpu:",
            "<unknown>/50%",
            "1",
            "5",
            "1"
        ],
        "{table}"
    );

    // The same object in both versions.
    let v2 = c.json(&["get", "hpa", "web"]).await;
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    let v1 = c
        .json(&["get", "horizontalpodautoscalers.v1.autoscaling", "web"])
        .await;
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert_eq!(v1["spec"]["scaleTargetRef"]["kind"], "Deployment");

    // These pods report no usage: the HPA says why it cannot scale, in upstream's words.
    let (status, reason, message) = c
        .eventually("ScalingActive to be False", async || {
            c.condition("web", "ScalingActive")
                .await
                .filter(|(s, _, _)| s == "False")
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "FailedGetResourceMetric")
    );
    assert!(
        message.starts_with("the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: "),
        "{message}"
    );
    let able = c.condition("web", "AbleToScale").await.unwrap();
    assert_eq!(
        (able.0.as_str(), able.1.as_str()),
        ("True", "SucceededGetScale")
    );

    let describe = c.ok(&["describe", "hpa", "web"]).await;
    for want in [
        "Reference:",
        "Deployment/web",
        "resource cpu on pods  (as a percentage of request):  <unknown> / 50%",
        "Min replicas:",
        "Max replicas:",
        "Deployment pods:",
        "1 current / 0 desired",
        "ScalingActive",
        "FailedGetResourceMetric",
        "horizontal-pod-autoscaler",
        "FailedComputeMetricsReplicas",
    ] {
        assert!(
            describe.contains(want),
            "describe lacks {want:?}:\n{describe}"
        );
    }

    let explain = c.ok(&["explain", "hpa.spec.behavior"]).await;
    assert!(explain.contains("VERSION:    v2"), "{explain}");
    assert!(explain.contains("scaleDown"), "{explain}");
    let resources = c.ok(&["api-resources", "--api-group=autoscaling"]).await;
    assert!(
        resources.contains("horizontalpodautoscalers   hpa          autoscaling/v2"),
        "{resources}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_and_max_replicas_move_the_target() {
    let c = cluster().await;
    c.apply(WEB).await;
    c.ok(&["autoscale", "deployment", "web", "--min=3", "--max=4"])
        .await;
    c.eventually("the Deployment to grow to minReplicas", async || {
        (c.deployment_replicas("web").await == 3).then_some(())
    })
    .await;
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    // Scaled by hand past maxReplicas: brought back.
    c.ok(&["scale", "deployment", "web", "--replicas=7"]).await;
    c.eventually("the Deployment to shrink to maxReplicas", async || {
        (c.deployment_replicas("web").await == 4).then_some(())
    })
    .await;
    let events = c
        .eventually("both rescale events", async || {
            let out = c
                .ok(&[
                    "get",
                    "events",
                    "--field-selector=involvedObject.kind=HorizontalPodAutoscaler",
                    "-o",
                    "custom-columns=REASON:.reason,MESSAGE:.message,FROM:.source.component",
                ])
                .await;
            (out.contains("above Spec.MaxReplicas")).then_some(out)
        })
        .await;
    assert!(
        events.contains("New size: 3; reason: Current number of replicas below Spec.MinReplicas"),
        "{events}"
    );
    assert!(
        events.contains("New size: 4; reason: Current number of replicas above Spec.MaxReplicas"),
        "{events}"
    );
    assert!(events.contains("SuccessfulRescale"), "{events}");
    assert!(events.contains("horizontal-pod-autoscaler"), "{events}");
    let hpa = c.json(&["get", "hpa", "web"]).await;
    assert!(hpa["status"]["lastScaleTime"].is_string(), "{hpa}");
}

const API_V2: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: api
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 1
  maxReplicas: 6
  metrics:
  - type: Resource
    resource:
      name: memory
      target:
        type: AverageValue
        averageValue: 100Mi
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 60
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_manifests_read_back_as_v1_and_v2() {
    let c = cluster().await;
    assert_eq!(
        c.apply(API_V2).await.trim(),
        "horizontalpodautoscaler.autoscaling/api created"
    );
    assert_eq!(
        c.apply(API_V2).await.trim(),
        "horizontalpodautoscaler.autoscaling/api unchanged"
    );
    let v2 = c.json(&["get", "hpa", "api"]).await;
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["name"], "memory");
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"],
        json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    assert_eq!(v2["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);
    let out = c.ok(&["get", "hpa", "api"]).await;
    assert!(
        out.contains("memory: <unknown>/100Mi, cpu: <unknown>/60%"),
        "{out}"
    );

    // As v1: the CPU target in its own field, the rest kept in annotations.
    let v1 = c
        .json(&["get", "horizontalpodautoscalers.v1.autoscaling", "api"])
        .await;
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    let ann = &v1["metadata"]["annotations"];
    let metrics: Value = serde_json::from_str(
        ann["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        metrics,
        json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}])
    );
    assert!(ann["autoscaling.alpha.kubernetes.io/behavior"].is_string());

    // Typed v1 clients list, watch and patch the same objects.
    let api_v1: Api<HpaV1> = Api::namespaced(c.client.clone(), "default");
    let listed = api_v1.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0]
            .spec
            .as_ref()
            .unwrap()
            .target_cpu_utilization_percentage,
        Some(60)
    );
    let mut events = watcher::watcher(api_v1.clone(), watcher::Config::default()).boxed();
    let first = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("a watch event")
        .expect("stream open")
        .expect("decodes as v1");
    assert!(matches!(first, Event::Init), "{first:?}");
    api_v1
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"maxReplicas": 9, "targetCPUUtilizationPercentage": 70}}),
            ),
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.next().await {
            match ev.expect("decodes as v1") {
                Event::Apply(h) | Event::InitApply(h)
                    if h.spec.as_ref().is_some_and(|s| s.max_replicas == 9) =>
                {
                    return h;
                }
                _ => {}
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("the patch seen through the v1 watch");
    assert_eq!(
        seen.spec.unwrap().target_cpu_utilization_percentage,
        Some(70)
    );

    // The v1 patch kept what v1 cannot show.
    let api_v2: Api<HpaV2> = Api::namespaced(c.client.clone(), "default");
    let back = api_v2.get("api").await.unwrap();
    let spec = back.spec.unwrap();
    assert_eq!(spec.max_replicas, 9);
    let metrics = spec.metrics.unwrap();
    assert_eq!(metrics.len(), 2);
    assert_eq!(metrics[0].resource.as_ref().unwrap().name, "memory");
    assert_eq!(
        metrics[1]
            .resource
            .as_ref()
            .unwrap()
            .target
            .average_utilization,
        Some(70)
    );
    assert_eq!(
        spec.behavior
            .unwrap()
            .scale_down
            .unwrap()
            .stabilization_window_seconds,
        Some(60)
    );
    assert!(
        back.metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("autoscaling.alpha.kubernetes.io/")),
        "round-trip annotations are not stored"
    );

    // A v1 manifest without a target gets the 80% CPU default.
    c.apply(
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: old
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
"#,
    )
    .await;
    let old = c.json(&["get", "hpa", "old"]).await;
    assert_eq!(
        old["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(old["spec"]["minReplicas"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_autoscalers_are_refused() {
    let c = cluster().await;
    let err = c
        .refused(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: bad
spec:
  scaleTargetRef: {kind: Deployment}
  minReplicas: 3
  maxReplicas: 2
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 0}
  - type: Pods
    resource:
      name: memory
      target: {type: AverageValue, averageValue: 1Mi}
"#,
        )
        .await;
    for want in [
        "The HorizontalPodAutoscaler \"bad\" is invalid:",
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
        "spec.scaleTargetRef.name: Required value",
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
        "spec.metrics[1].pods: Required value: must populate information for the given metric source",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // A v1 object is validated in the stored form, with its paths.
    let err = c
        .refused(
            r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: bad
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 0
  maxReplicas: 2
  targetCPUUtilizationPercentage: -5
"#,
        )
        .await;
    for want in [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: -5: must be greater than 0",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let (ok, _, err) = c
        .run(&["autoscale", "deployment", "nope", "--max=3"], None)
        .await;
    assert!(!ok);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
}
