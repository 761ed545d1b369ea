//! The scheduling loop end to end on a [`FakeCluster`]: binds, events, conditions,
//! retries when the cluster changes, back-off, preemption.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::start;
use super::testutil::{node_obj, pod_obj};
use crate::controllers::context::{Ctx, Informers, Settings};
use crate::controllers::runtime::{Cluster, ClusterError, Delete, FakeCluster, Kind, ObjectEvent};

fn ctx<C: Cluster>(cluster: Arc<C>, fake: &FakeCluster) -> Ctx<C> {
    Ctx {
        cluster,
        informers: Informers::fake(fake),
        settings: Settings::default(),
    }
}

fn node_of(c: &FakeCluster, name: &str) -> Option<String> {
    c.get::<Pod>(Some("default"), name)
        .and_then(|p| p.spec?.node_name)
        .filter(|n| !n.is_empty())
}

fn condition(c: &FakeCluster, name: &str) -> Option<(String, String, String)> {
    let p = c.get::<Pod>(Some("default"), name)?;
    let cond = p
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        cond.status,
        cond.reason.unwrap_or_default(),
        cond.message.unwrap_or_default(),
    ))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn events(c: &FakeCluster, reason: &str) -> Vec<ObjectEvent> {
    c.events()
        .into_iter()
        .filter(|e| e.reason == reason)
        .collect()
}

fn pod(name: &str, cpu: &str, spec: Value) -> Pod {
    pod_obj(name, &[], json!({"cpu": cpu}), spec)
}

fn small_node(name: &str, cpu: &str, taints: Value) -> Node {
    node_obj(name, cpu, "8Gi", 110, &[], taints)
}

#[tokio::test]
async fn binds_pending_pods_and_says_so() {
    let c = Arc::new(FakeCluster::new());
    c.put(&small_node("n1", "4", json!([])));
    c.put(&small_node("n2", "4", json!([])));
    let _s = start(&ctx(c.clone(), &c));
    for i in 0..20 {
        c.put(&pod(&format!("p{i}"), "100m", json!({})));
    }
    // Not ours: another scheduler's, and one already placed.
    c.put(&pod("other", "100m", json!({"schedulerName": "custom"})));
    c.put(&pod("placed", "100m", json!({"nodeName": "n2"})));
    until("all bound", || {
        (0..20).all(|i| node_of(&c, &format!("p{i}")).is_some())
    })
    .await;
    let on_n1 = (0..20)
        .filter(|i| node_of(&c, &format!("p{i}")).as_deref() == Some("n1"))
        .count();
    // Equal nodes: least-allocated keeps them level.
    assert!((8..=12).contains(&on_n1), "{on_n1} of 20 on n1");
    assert_eq!(condition(&c, "p0").unwrap().0, "True");
    until("events", || events(&c, "Scheduled").len() == 20).await;
    let e = events(&c, "Scheduled")
        .into_iter()
        .find(|e| e.name == "p3")
        .unwrap();
    let node = node_of(&c, "p3").unwrap();
    assert_eq!(
        e.message,
        format!("Successfully assigned default/p3 to {node}")
    );
    assert_eq!(e.component, "default-scheduler");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(node_of(&c, "other").is_none());
    assert!(
        !c.writes()
            .iter()
            .any(|w| w.contains("default/placed") || w.contains("default/other"))
    );
}

#[tokio::test(start_paused = true)]
async fn unschedulable_pods_are_told_why_and_retried_when_a_node_comes() {
    let c = Arc::new(FakeCluster::new());
    c.put(&small_node("n1", "1", json!([])));
    c.put(&small_node(
        "n2",
        "4",
        json!([{"key": "node-role", "value": "x", "effect": "NoSchedule"}]),
    ));
    c.put(&small_node(
        "n3",
        "4",
        json!([{"key": "node-role", "value": "x", "effect": "NoSchedule"}]),
    ));
    let _s = start(&ctx(c.clone(), &c));
    c.put(&pod("big", "2", json!({})));
    until("condition", || condition(&c, "big").is_some()).await;
    let (status, reason, message) = condition(&c, "big").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Unschedulable")
    );
    let want = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role: x}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    assert_eq!(message, want);
    let failed = events(&c, "FailedScheduling");
    assert_eq!(failed[0].message, want);
    assert_eq!(failed[0].type_, "Warning");
    // Time passes; nothing changed: no hot loop, at most the five-minute retry.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(events(&c, "FailedScheduling").len(), 1);
    c.put(&small_node("n4", "4", json!([])));
    until("bound to the new node", || {
        node_of(&c, "big").as_deref() == Some("n4")
    })
    .await;
    assert_eq!(condition(&c, "big").unwrap().0, "True");
}

#[tokio::test(start_paused = true)]
async fn tolerations_node_selectors_and_ports() {
    let c = Arc::new(FakeCluster::new());
    c.put(&small_node("plain", "4", json!([])));
    c.put(&node_obj(
        "gpu",
        "4",
        "8Gi",
        110,
        &[("accel", "gpu")],
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    ));
    let _s = start(&ctx(c.clone(), &c));
    c.put(&pod("tolerant", "100m", json!({"nodeSelector": {"accel": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})));
    c.put(&pod(
        "picky",
        "100m",
        json!({"nodeSelector": {"accel": "gpu"}}),
    ));
    let port = json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    c.put(&pod("web1", "100m", port.clone()));
    until("tolerant and web1 bound", || {
        node_of(&c, "tolerant").is_some() && node_of(&c, "web1").is_some()
    })
    .await;
    assert_eq!(node_of(&c, "tolerant").as_deref(), Some("gpu"));
    assert_eq!(node_of(&c, "web1").as_deref(), Some("plain"));
    c.put(&pod("web2", "100m", port));
    until("picky and web2 refused", || {
        condition(&c, "picky").is_some() && condition(&c, "web2").is_some()
    })
    .await;
    assert_eq!(
        condition(&c, "picky").unwrap().2,
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        condition(&c, "web2").unwrap().2,
        "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
    );
    // The port is freed: web2 goes where web1 was.
    c.remove::<Pod>(Some("default"), "web1");
    until("web2 bound", || node_of(&c, "web2").is_some()).await;
    assert_eq!(node_of(&c, "web2").as_deref(), Some("plain"));
}

/// A cluster whose first binds fail, to see the scheduler back off and retry.
struct FlakyBinds {
    inner: Arc<FakeCluster>,
    failures: AtomicU32,
}

impl Cluster for FlakyBinds {
    async fn create<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        self.inner.create(obj).await
    }
    async fn replace<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        self.inner.replace(obj).await
    }
    async fn replace_status<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        self.inner.replace_status(obj).await
    }
    async fn patch<K: Kind>(
        &self,
        ns: Option<&str>,
        name: &str,
        p: &Value,
    ) -> Result<K, ClusterError> {
        self.inner.patch(ns, name, p).await
    }
    async fn patch_status<K: Kind>(
        &self,
        ns: Option<&str>,
        name: &str,
        p: &Value,
    ) -> Result<K, ClusterError> {
        self.inner.patch_status(ns, name, p).await
    }
    async fn delete<K: Kind>(
        &self,
        ns: Option<&str>,
        name: &str,
        how: &Delete,
    ) -> Result<(), ClusterError> {
        self.inner.delete::<K>(ns, name, how).await
    }
    async fn bind(&self, ns: &str, name: &str, uid: &str, node: &str) -> Result<(), ClusterError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ClusterError {
                verb: "bind",
                kind: "Pod".into(),
                name: name.into(),
                code: 500,
                reason: "InternalError".into(),
                message: "the store is unavailable".into(),
            });
        }
        self.inner.bind(ns, name, uid, node).await
    }
    fn record(&self, event: ObjectEvent) {
        self.inner.record(event);
    }
}

#[tokio::test(start_paused = true)]
async fn failed_binds_back_off_and_retry() {
    let fake = Arc::new(FakeCluster::new());
    fake.put(&small_node("n1", "4", json!([])));
    let flaky = Arc::new(FlakyBinds {
        inner: fake.clone(),
        failures: AtomicU32::new(2),
    });
    let _s = start(&ctx(flaky, &fake));
    let t0 = tokio::time::Instant::now();
    fake.put(&pod("p", "1", json!({})));
    until("bound", || node_of(&fake, "p").is_some()).await;
    // Two failures: 1 s then 2 s of back-off.
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    let failed = events(&fake, "FailedScheduling");
    assert_eq!(
        failed[0].message,
        "Binding rejected: the store is unavailable"
    );
    // The failed attempts released the node: one pod of 1 cpu counted once.
    let p2 = pod("p2", "3", json!({}));
    fake.put(&p2);
    until("p2 bound", || node_of(&fake, "p2").is_some()).await;
}

#[tokio::test(start_paused = true)]
async fn preemption_evicts_lower_priority_pods() {
    let c = Arc::new(FakeCluster::new());
    c.put(&small_node("n1", "2", json!([])));
    let _s = start(&ctx(c.clone(), &c));
    c.put(&pod("low1", "1", json!({"priority": 1})));
    c.put(&pod("low2", "1", json!({"priority": 2})));
    until("lows bound", || {
        node_of(&c, "low1").is_some() && node_of(&c, "low2").is_some()
    })
    .await;
    c.put(&pod("high", "1", json!({"priority": 100})));
    until("a victim evicted", || {
        c.get::<Pod>(Some("default"), "low1").is_none()
    })
    .await;
    // The least important pod went; the other stays.
    assert!(c.get::<Pod>(Some("default"), "low2").is_some());
    until("high bound", || {
        node_of(&c, "high").as_deref() == Some("n1")
    })
    .await;
    let p = c.get::<Pod>(Some("default"), "high").unwrap();
    assert_eq!(p.status.unwrap().nominated_node_name.as_deref(), Some("n1"));
    let pre = events(&c, "Preempted");
    assert_eq!(pre[0].name, "low1");
    assert_eq!(pre[0].message, "Preempted by pod high on node n1");
    // A pod that may not preempt says so.
    c.put(&pod(
        "polite",
        "2",
        json!({"priority": 1000, "preemptionPolicy": "Never"}),
    ));
    until("polite refused", || condition(&c, "polite").is_some()).await;
    assert_eq!(
        condition(&c, "polite").unwrap().2,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[tokio::test(start_paused = true)]
async fn anti_affinity_places_one_per_node_and_spread_evens_zones() {
    let c = Arc::new(FakeCluster::new());
    for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        c.put(&node_obj(
            n,
            "4",
            "8Gi",
            110,
            &[("topology.kubernetes.io/zone", z)],
            json!([]),
        ));
    }
    let _s = start(&ctx(c.clone(), &c));
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "one"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    for i in 0..4 {
        c.put(&pod_obj(
            &format!("one{i}"),
            &[("app", "one")],
            json!({}),
            anti.clone(),
        ));
    }
    until("three placed, one refused", || {
        (0..4)
            .filter(|i| node_of(&c, &format!("one{i}")).is_some())
            .count()
            == 3
            && (0..4).any(|i| condition(&c, &format!("one{i}")).is_some_and(|c| c.0 == "False"))
    })
    .await;
    let mut nodes: Vec<String> = (0..4)
        .filter_map(|i| node_of(&c, &format!("one{i}")))
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["a1", "a2", "b1"]);
    let refused = (0..4)
        .find_map(|i| condition(&c, &format!("one{i}")).filter(|c| c.0 == "False"))
        .unwrap();
    assert_eq!(
        refused.2,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );

    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "sp"}}}]});
    for i in 0..6 {
        c.put(&pod_obj(
            &format!("sp{i}"),
            &[("app", "sp")],
            json!({}),
            spread.clone(),
        ));
    }
    until("spread placed", || {
        (0..6).all(|i| node_of(&c, &format!("sp{i}")).is_some())
    })
    .await;
    let in_b = (0..6)
        .filter(|i| node_of(&c, &format!("sp{i}")).as_deref() == Some("b1"))
        .count();
    assert_eq!(in_b, 3);
}

#[tokio::test(start_paused = true)]
async fn a_pod_waits_for_the_node_its_volume_is_pinned_to() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let c = Arc::new(FakeCluster::new());
    let cordoned = |yes: bool| {
        let mut n = small_node("b", "4", json!([]));
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(yes);
        n
    };
    c.put(&small_node("a", "4", json!([])));
    c.put(&cordoned(true));
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "pv-b"},
        "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                 "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"},
                 "claimRef": {"namespace": "default", "name": "data-db-1", "uid": "c1"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}},
        "status": {"phase": "Bound"},
    }))
    .unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data-db-1", "namespace": "default", "uid": "c1",
                     "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
        "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-b"},
        "status": {"phase": "Bound"},
    }))
    .unwrap();
    c.put(&pv);
    c.put(&pvc);
    let _s = start(&ctx(c.clone(), &c));
    c.put(&pod(
        "db-1",
        "100m",
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}]}),
    ));
    until("refused", || condition(&c, "db-1").is_some()).await;
    let want = "0/2 nodes are available: 1 node(s) had volume node affinity conflict, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    assert_eq!(
        condition(&c, "db-1").unwrap(),
        ("False".into(), "Unschedulable".into(), want.into())
    );
    assert_eq!(events(&c, "FailedScheduling")[0].message, want);
    // Nothing that helps: it stays where it is, and never goes to the other node.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(node_of(&c, "db-1").is_none());
    assert_eq!(events(&c, "FailedScheduling").len(), 1);
    // Uncordoned: the pod goes back to its volume's node.
    c.put(&cordoned(false));
    until("placed on its volume's node", || {
        node_of(&c, "db-1").as_deref() == Some("b")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn pods_wait_for_their_immediate_claims_to_bind() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let c = Arc::new(FakeCluster::new());
    c.put(&small_node("a", "4", json!([])));
    let _s = start(&ctx(c.clone(), &c));
    let spec =
        json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]});
    c.put(&pod("p", "100m", spec));
    until("refused", || condition(&c, "p").is_some()).await;
    assert_eq!(
        condition(&c, "p").unwrap().2,
        "0/1 nodes are available: persistentvolumeclaim \"data\" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let mut pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "default", "uid": "c1"},
        "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    c.put(&pvc);
    until("told it waits for the binding", || {
        condition(&c, "p")
            .is_some_and(|(_, _, m)| m.contains("pod has unbound immediate PersistentVolumeClaims"))
    })
    .await;
    assert!(node_of(&c, "p").is_none());
    // The binder binds it: the claim's change brings the pod back, and it is placed.
    let spec = pvc.spec.as_mut().unwrap();
    spec.volume_name = Some("pv1".into());
    pvc.metadata.annotations = Some(
        [(
            "pv.kubernetes.io/bind-completed".to_string(),
            "yes".to_string(),
        )]
        .into(),
    );
    c.put(&serde_json::from_value::<k8s_openapi::api::core::v1::PersistentVolume>(json!({
        "metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}},
    })).unwrap());
    c.put(&pvc);
    until("placed", || node_of(&c, "p").as_deref() == Some("a")).await;
}
