#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::metrics::{MetricsError, PodMetricsSource, PodUsage};
use super::*;
use crate::controllers::clock::ManualClock;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

const START: &str = "2025-06-01T12:00:00Z";
const NS: &str = "ns";

/// Usage per pod: (millicores, bytes), or an error for every request.
#[derive(Default)]
struct FakeMetrics {
    usage: Mutex<BTreeMap<String, (i64, i64)>>,
    error: Mutex<Option<MetricsError>>,
    at: Mutex<Option<Timestamp>>,
}

#[async_trait]
impl PodMetricsSource for FakeMetrics {
    async fn pod_metrics(&self, ns: &str, _selector: &str) -> Result<Vec<PodUsage>, MetricsError> {
        assert_eq!(ns, NS);
        if let Some(e) = self.error.lock().unwrap().clone() {
            return Err(e);
        }
        let at = self
            .at
            .lock()
            .unwrap()
            .unwrap_or_else(|| START.parse().unwrap());
        Ok(self
            .usage
            .lock()
            .unwrap()
            .iter()
            .map(|(name, (cpu, mem))| PodUsage {
                name: name.clone(),
                timestamp: at,
                window: Duration::from_secs(15),
                containers: vec![("app".into(), *cpu, *mem)],
            })
            .collect())
    }
}

struct World {
    cluster: Arc<FakeCluster>,
    c: HpaController<FakeCluster>,
    clock: ManualClock,
    metrics: Arc<FakeMetrics>,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    let clock = ManualClock::new(START.parse().unwrap());
    let metrics = Arc::new(FakeMetrics::default());
    let c = HpaController::new(&ctx, metrics.clone(), Arc::new(clock.clone()));
    World {
        cluster,
        c,
        clock,
        metrics,
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "i"}]}},
        },
        "status": {"replicas": replicas},
    }))
    .unwrap()
}

/// A running pod of `app`, ready for an hour, requesting 100m CPU and 100Mi.
fn pod(app: &str, name: &str, requests: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "i", "resources": {"requests": requests}}]},
        "status": {"phase": "Running", "startTime": "2025-06-01T11:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-01T11:00:05Z"}]},
    }))
    .unwrap()
}

fn cpu_utilization(percent: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn hpa(
    name: &str,
    target: &str,
    min: i32,
    max: i32,
    metrics: Value,
    behavior: Value,
) -> HorizontalPodAutoscaler {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": min, "maxReplicas": max, "metrics": metrics,
    });
    if !behavior.is_null() {
        spec["behavior"] = behavior;
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}")},
        "spec": spec,
    }))
    .unwrap()
}

impl World {
    /// `replicas` pods of Deployment `web` (also its size), each using `cpu` millicores.
    fn web(&self, replicas: i32, cpu: i64) {
        self.cluster.put(&deployment("web", replicas));
        for i in 0..replicas {
            let name = format!("web-{i}");
            self.cluster.put(&pod(
                "web",
                &name,
                json!({"cpu": "100m", "memory": "100Mi"}),
            ));
            self.set_usage(&name, cpu, 50 << 20);
        }
    }

    fn set_usage(&self, pod: &str, cpu: i64, memory: i64) {
        self.metrics
            .usage
            .lock()
            .unwrap()
            .insert(pod.to_string(), (cpu, memory));
    }

    fn all_usage(&self, cpu: i64) {
        for v in self.metrics.usage.lock().unwrap().values_mut() {
            v.0 = cpu;
        }
    }

    /// One sync of HPA `name`.
    async fn sync(&self, name: &str) -> Requeue {
        self.c
            .reconcile(&ObjectKey::new(Some(NS), name))
            .await
            .unwrap()
    }

    /// Lets a sync period pass, then syncs.
    async fn tick(&self, name: &str) -> Requeue {
        self.clock.advance(Duration::from_secs(15));
        self.sync(name).await
    }

    fn replicas(&self) -> i32 {
        self.cluster
            .get::<Deployment>(Some(NS), "web")
            .and_then(|d| d.spec)
            .and_then(|s| s.replicas)
            .unwrap()
    }

    fn status(&self, name: &str) -> HorizontalPodAutoscalerStatus {
        self.cluster
            .get::<HorizontalPodAutoscaler>(Some(NS), name)
            .and_then(|h| h.status)
            .unwrap_or_default()
    }

    fn condition(&self, name: &str, type_: &str) -> HorizontalPodAutoscalerCondition {
        status::condition(&self.status(name), type_)
            .cloned()
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    /// (status, reason) of a condition.
    fn cond(&self, name: &str, type_: &str) -> (String, String) {
        let c = self.condition(name, type_);
        (c.status, c.reason.unwrap_or_default())
    }

    fn events(&self) -> Vec<String> {
        self.cluster
            .events()
            .into_iter()
            .map(|e| {
                assert_eq!(e.component, COMPONENT);
                format!("{} {} {}", e.type_, e.reason, e.message)
            })
            .collect()
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn cpu_above_target_scales_up() {
    let w = world();
    w.web(2, 150);
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    assert_eq!(w.sync("web").await, Requeue::After(Duration::from_secs(15)));
    // 150% of requests against 50% asks for 6; the classic rule allows doubling, at least 4.
    assert_eq!(w.replicas(), 4);
    assert_eq!(
        w.events(),
        [
            "Normal SuccessfulRescale New size: 4; reason: cpu resource utilization (percentage of request) above target"
        ]
    );
    let st = w.status("web");
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(2), 4));
    assert!(st.last_scale_time.is_some());
    let m = st.current_metrics.unwrap();
    let current = &m[0].resource.as_ref().unwrap().current;
    assert_eq!(current.average_utilization, Some(150));
    assert_eq!(current.average_value.as_ref().unwrap().0, "150m");
    assert_eq!(
        w.cond("web", "AbleToScale"),
        pair("True", "SucceededRescale")
    );
    assert_eq!(
        w.cond("web", "ScalingActive"),
        pair("True", "ValidMetricFound")
    );
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("True", "ScaleUpLimit")
    );
    assert_eq!(
        w.condition("web", "ScalingActive").message.as_deref(),
        Some(
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
        )
    );
}

#[tokio::test]
async fn within_tolerance_nothing_changes() {
    let w = world();
    w.web(3, 54);
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 3);
    assert!(w.events().is_empty(), "{:?}", w.events());
    assert_eq!(
        w.cond("web", "AbleToScale"),
        pair("True", "ReadyForNewScale")
    );
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("False", "DesiredWithinRange")
    );
    let st = w.status("web");
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(3), 3));
    assert!(st.last_scale_time.is_none());
    // A status that did not change is not written again.
    let writes = w.cluster.writes().len();
    w.tick("web").await;
    w.tick("web").await;
    assert_eq!(w.cluster.writes().len(), writes, "{:?}", w.cluster.writes());
    // 60% is outside the 10% tolerance.
    w.all_usage(60);
    w.tick("web").await;
    assert_eq!(w.replicas(), 4);
}

#[tokio::test]
async fn scale_down_waits_for_the_stabilization_window() {
    let w = world();
    w.web(4, 10);
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    // 10% against 50% asks for 1, but 4 was seen at first sight: held for five minutes.
    assert_eq!(w.replicas(), 4);
    assert_eq!(
        w.cond("web", "AbleToScale"),
        pair("True", "ScaleDownStabilized")
    );
    let mut waited = 0;
    while w.replicas() == 4 {
        w.tick("web").await;
        waited += 15;
        assert!(waited <= 600, "never scaled down");
    }
    // Strictly older than the window: the first sight (at 0 s) drops out after 300 s.
    assert_eq!(waited, 315);
    assert_eq!(w.replicas(), 1);
    assert_eq!(
        w.events(),
        ["Normal SuccessfulRescale New size: 1; reason: All metrics below target"]
    );
}

#[tokio::test]
async fn min_and_max_bound_the_size() {
    let w = world();
    w.web(1, 50);
    w.cluster.put(&hpa(
        "web",
        "web",
        2,
        5,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 2);
    assert_eq!(
        w.events(),
        [
            "Normal SuccessfulRescale New size: 2; reason: Current number of replicas below Spec.MinReplicas"
        ]
    );
    // Above maxReplicas: straight back to it.
    w.cluster.put(&deployment("web", 9));
    w.tick("web").await;
    assert_eq!(w.replicas(), 5);
    assert!(w.events()[1].ends_with("reason: Current number of replicas above Spec.MaxReplicas"));
    // Metrics asking for more than maxReplicas get maxReplicas.
    w.cluster.put(&deployment("web", 4));
    w.all_usage(500);
    w.tick("web").await;
    assert_eq!(w.replicas(), 5);
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("True", "TooManyReplicas")
    );
    // And asking for fewer than minReplicas gets minReplicas, once the window has passed.
    w.all_usage(1);
    for _ in 0..21 {
        w.tick("web").await;
    }
    assert_eq!(w.replicas(), 2);
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("True", "TooFewReplicas")
    );
}

#[tokio::test]
async fn behavior_policies_limit_the_rate() {
    let w = world();
    w.web(2, 500);
    let behavior = json!({
        "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    });
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        20,
        json!([cpu_utilization(50)]),
        behavior,
    ));
    w.sync("web").await;
    // One pod a minute, however high the usage.
    assert_eq!(w.replicas(), 3);
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("True", "ScaleUpLimit")
    );
    w.tick("web").await;
    assert_eq!(w.replicas(), 3, "still within the minute");
    for _ in 0..3 {
        w.tick("web").await;
    }
    assert_eq!(w.replicas(), 4, "a minute later, one more");
    // Down by at most half a minute, and no window holds it back. The period started
    // before the pod added within it: from 7, half is 3.
    w.cluster.put(&deployment("web", 8));
    w.all_usage(1);
    w.tick("web").await;
    assert_eq!(w.replicas(), 3);
    assert_eq!(
        w.cond("web", "ScalingLimited"),
        pair("True", "ScaleDownLimit")
    );
    // selectPolicy Disabled stops that direction altogether.
    let mut off = hpa(
        "web",
        "web",
        1,
        20,
        json!([cpu_utilization(50)]),
        json!({
            "scaleDown": {"selectPolicy": "Disabled"},
        }),
    );
    off.metadata.uid = Some("uid-web".into());
    w.cluster.put(&off);
    for _ in 0..30 {
        w.tick("web").await;
    }
    assert_eq!(w.replicas(), 3);
}

#[tokio::test]
async fn several_metrics_take_the_largest() {
    let w = world();
    w.web(2, 50);
    let memory = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "25Mi"}}});
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50), memory]),
        Value::Null,
    ));
    w.sync("web").await;
    // CPU is on target; memory at 50Mi per pod against 25Mi asks for 4.
    assert_eq!(w.replicas(), 4);
    assert_eq!(
        w.events(),
        ["Normal SuccessfulRescale New size: 4; reason: memory resource above target"]
    );
    let m = w.status("web").current_metrics.unwrap();
    assert_eq!(m.len(), 2);
    let mem = &m[1].resource.as_ref().unwrap().current;
    assert_eq!(mem.average_value.as_ref().unwrap().0, "52428800");
    assert_eq!(mem.average_utilization, None);
}

#[tokio::test]
async fn missing_metrics_api_stops_scaling_with_upstreams_words() {
    let w = world();
    w.web(2, 0);
    *w.metrics.error.lock().unwrap() = Some(MetricsError::Api(
        "the server could not find the requested resource (get pods.metrics.k8s.io)".into(),
    ));
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 2);
    let inner = "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)";
    assert_eq!(
        w.events(),
        [
            format!("Warning FailedGetResourceMetric {inner}"),
            format!(
                "Warning FailedComputeMetricsReplicas invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {inner}"
            ),
        ]
    );
    let active = w.condition("web", "ScalingActive");
    assert_eq!(active.status, "False");
    assert_eq!(active.reason.as_deref(), Some("FailedGetResourceMetric"));
    assert_eq!(
        active.message.as_deref(),
        Some(format!("the HPA was unable to compute the replica count: {inner}").as_str())
    );
    assert_eq!(
        w.cond("web", "AbleToScale"),
        pair("True", "SucceededGetScale")
    );
    let st = w.status("web");
    assert_eq!((st.current_replicas, st.desired_replicas), (Some(2), 0));
    assert_eq!(st.current_metrics.unwrap()[0].type_, "");
}

#[tokio::test]
async fn pods_without_samples_count_conservatively() {
    let w = world();
    w.web(3, 10);
    w.metrics.usage.lock().unwrap().remove("web-2");
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 0}});
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        behavior,
    ));
    w.sync("web").await;
    // The pod without a sample may be busy: (10 + 10 + 100) / 300 = 40% → ceil(0.8 × 3) = 3.
    assert_eq!(w.replicas(), 3);
    // With no samples at all the metric fails.
    w.metrics.usage.lock().unwrap().clear();
    w.tick("web").await;
    assert_eq!(
        w.cond("web", "ScalingActive"),
        pair("False", "FailedGetResourceMetric")
    );
    assert!(
        w.condition("web", "ScalingActive")
            .message
            .unwrap()
            .ends_with("no metrics returned from resource metrics API")
    );
}

#[tokio::test]
async fn no_requests_no_utilization() {
    let w = world();
    w.cluster.put(&deployment("web", 1));
    w.cluster.put(&pod("web", "web-0", json!({})));
    w.set_usage("web-0", 50, 1 << 20);
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 1);
    let active = w.condition("web", "ScalingActive");
    assert_eq!(active.status, "False");
    assert_eq!(active.reason.as_deref(), Some("FailedGetResourceMetric"));
    assert_eq!(
        active.message.as_deref(),
        Some(
            "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container app of Pod web-0"
        )
    );
}

#[tokio::test]
async fn unknown_target_cannot_be_scaled() {
    let w = world();
    w.cluster.put(&hpa(
        "web",
        "nope",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(
        w.cond("web", "AbleToScale"),
        pair("False", "FailedGetScale")
    );
    assert_eq!(
        w.condition("web", "AbleToScale").message.as_deref(),
        Some(
            "the HPA controller was unable to get the target's current scale: deployments.apps \"nope\" not found"
        )
    );
    assert_eq!(
        w.events(),
        ["Warning FailedGetScale deployments.apps \"nope\" not found"]
    );
}

#[tokio::test]
async fn each_hpa_is_evaluated_once_per_period() {
    let w = world();
    w.web(2, 150);
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 4);
    // Its own status write wakes it at once: it waits for the rest of the period.
    w.cluster.put(&deployment("web", 4));
    w.clock.advance(Duration::from_secs(5));
    assert_eq!(w.sync("web").await, Requeue::After(Duration::from_secs(10)));
    assert_eq!(w.replicas(), 4);
    w.clock.advance(Duration::from_secs(10));
    w.sync("web").await;
    // The two pods still at 150% ask for ceil(3 × 2) = 6.
    assert_eq!(w.replicas(), 6);
}

#[tokio::test]
async fn two_hpas_on_one_target_are_ambiguous() {
    let w = world();
    w.web(2, 50);
    w.cluster.put(&hpa(
        "a",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.cluster.put(&hpa(
        "b",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("a").await;
    assert_eq!(
        w.cond("a", "ScalingActive"),
        pair("True", "ValidMetricFound")
    );
    w.sync("b").await;
    assert_eq!(
        w.cond("b", "ScalingActive"),
        pair("False", "AmbiguousSelector")
    );
    assert_eq!(
        w.condition("b", "ScalingActive").message.as_deref(),
        Some("pods by selector app=web are controlled by multiple HPAs: [ns/a ns/b]")
    );
    // Once one goes, the other is alone again.
    w.cluster.remove::<HorizontalPodAutoscaler>(Some(NS), "a");
    assert_eq!(w.sync("a").await, Requeue::Done);
    w.tick("b").await;
    assert_eq!(
        w.cond("b", "ScalingActive"),
        pair("True", "ValidMetricFound")
    );
}

#[tokio::test]
async fn zero_replicas_disable_scaling() {
    let w = world();
    w.cluster.put(&deployment("web", 0));
    w.cluster.put(&hpa(
        "web",
        "web",
        1,
        10,
        json!([cpu_utilization(50)]),
        Value::Null,
    ));
    w.sync("web").await;
    assert_eq!(w.replicas(), 0);
    assert_eq!(
        w.cond("web", "ScalingActive"),
        pair("False", "ScalingDisabled")
    );
}
