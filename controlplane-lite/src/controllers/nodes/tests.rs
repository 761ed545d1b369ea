//! The node lifecycle and taint eviction controllers on a [`FakeCluster`], with a paused
//! clock: grace periods, taints, pods marked not ready, evictions and their timing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::taints::{NOT_READY, UNREACHABLE};
use super::*;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::{FakeCluster, Reconciler, Requeue};

fn ctx(c: &Arc<FakeCluster>) -> Ctx<FakeCluster> {
    Ctx {
        cluster: c.clone(),
        informers: Informers::fake(c),
        settings: Settings::default(),
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn node(name: &str, ready: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()},
            {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": now()},
            {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": now()},
            {"type": "PIDPressure", "status": "False", "lastHeartbeatTime": now()},
        ]},
    }))
    .unwrap()
}

fn renew(c: &FakeCluster, name: &str) {
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": k8s_openapi::jiff::Timestamp::now().to_string()},
    }))
    .unwrap();
    c.put(&lease);
}

fn pod(name: &str, node: &str, tolerations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}], "tolerations": tolerations},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now()},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
        ]},
    }))
    .unwrap()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(None, name)
}

fn pod_key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("default"), name)
}

fn condition(n: &Node, t: &str) -> (String, String, String) {
    let c = n
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
        .clone();
    (
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    )
}

fn taint_keys(n: &Node) -> Vec<(String, String)> {
    taints::taints(n)
        .iter()
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect()
}

fn pod_ready(c: &FakeCluster, name: &str) -> String {
    c.get::<Pod>(Some("default"), name)
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .status
}

fn has(list: &[(String, String)], key: &str, effect: &str) -> bool {
    list.iter().any(|(k, e)| k == key && e == effect)
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_goes_unknown_is_tainted_and_recovers() {
    let c = Arc::new(FakeCluster::new());
    for n in ["n1", "n2"] {
        c.put(&node(n, "True"));
        renew(&c, n);
    }
    c.put(&pod("web", "n1", json!([])));
    let x = ctx(&c);
    let lc = NodeLifecycle::new(&x, WorkQueue::new());

    // Healthy: nothing written, a look again when the grace period would end.
    let r = lc.reconcile(&key("n1")).await.unwrap();
    assert!(
        matches!(r, Requeue::After(d) if d > Duration::from_secs(39) && d < Duration::from_secs(41)),
        "{r:?}"
    );
    assert!(c.writes().is_empty(), "{:?}", c.writes());
    let registered = c.events();
    assert!(
        registered.iter().any(|e| e.reason == "RegisteredNode"
            && e.message == "Node n1 event: Registered Node n1 in Controller"),
        "{registered:?}"
    );

    // n2 keeps renewing; n1 does not.
    tokio::time::advance(Duration::from_secs(30)).await;
    renew(&c, "n2");
    lc.reconcile(&key("n2")).await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    lc.reconcile(&key("n2")).await.unwrap();
    let n2 = c.get::<Node>(None, "n2").unwrap();
    assert_eq!(condition(&n2, "Ready").0, "True");

    lc.reconcile(&key("n1")).await.unwrap();
    let n1 = c.get::<Node>(None, "n1").unwrap();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&n1, t),
            (
                "Unknown".to_string(),
                "NodeStatusUnknown".to_string(),
                "Kubelet stopped posting node status.".to_string()
            ),
            "{t}"
        );
    }
    let t = taint_keys(&n1);
    assert!(has(&t, UNREACHABLE, "NoSchedule"), "{t:?}");
    assert!(has(&t, UNREACHABLE, "NoExecute"), "{t:?}");
    assert!(taints::taints(&n1).iter().all(|t| t.time_added.is_some()));
    // Its pod is not ready any more: its kubelet cannot say otherwise.
    assert_eq!(pod_ready(&c, "web"), "False");
    let events = c.events();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "NodeNotReady" && e.kind == "Node" && e.name == "n1"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.reason == "NodeNotReady"
            && e.kind == "Pod"
            && e.message == "Node is not ready"
            && e.type_ == "Warning"),
        "{events:?}"
    );

    // Another pass changes nothing.
    let writes = c.writes().len();
    lc.reconcile(&key("n1")).await.unwrap();
    assert_eq!(c.writes().len(), writes, "{:?}", c.writes());

    // The kubelet comes back and reports Ready: the taints go.
    let mut back = node("n1", "True");
    back.metadata.resource_version = None;
    back.spec = n1.spec.clone();
    c.put(&back);
    renew(&c, "n1");
    lc.reconcile(&key("n1")).await.unwrap();
    let n1 = c.get::<Node>(None, "n1").unwrap();
    assert!(taint_keys(&n1).is_empty(), "{:?}", taint_keys(&n1));
}

#[tokio::test(start_paused = true)]
async fn a_node_reporting_not_ready_gets_the_not_ready_taints_and_keeps_its_pods_conditions() {
    let c = Arc::new(FakeCluster::new());
    c.put(&node("n1", "False"));
    c.put(&node("n2", "True"));
    c.put(&pod("web", "n1", json!([])));
    let x = ctx(&c);
    let lc = NodeLifecycle::new(&x, WorkQueue::new());
    lc.reconcile(&key("n1")).await.unwrap();
    let n1 = c.get::<Node>(None, "n1").unwrap();
    let t = taint_keys(&n1);
    assert!(has(&t, NOT_READY, "NoSchedule"), "{t:?}");
    assert!(has(&t, NOT_READY, "NoExecute"), "{t:?}");
    assert!(!has(&t, UNREACHABLE, "NoExecute"), "{t:?}");
    assert_eq!(pod_ready(&c, "web"), "True");

    // Later unreachable: the NoExecute taint is swapped at once.
    tokio::time::advance(Duration::from_secs(41)).await;
    lc.reconcile(&key("n1")).await.unwrap();
    let t = taint_keys(&c.get::<Node>(None, "n1").unwrap());
    assert!(has(&t, UNREACHABLE, "NoExecute"), "{t:?}");
    assert!(!has(&t, NOT_READY, "NoExecute"), "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn cordoned_and_pressured_nodes_get_no_schedule_taints() {
    let c = Arc::new(FakeCluster::new());
    let mut n = node("n1", "True");
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    n.status.as_mut().unwrap().conditions.as_mut().unwrap()[2].status = "True".into();
    c.put(&n);
    renew(&c, "n1");
    let x = ctx(&c);
    let lc = NodeLifecycle::new(&x, WorkQueue::new());
    lc.reconcile(&key("n1")).await.unwrap();
    let t = taint_keys(&c.get::<Node>(None, "n1").unwrap());
    assert_eq!(
        t,
        vec![
            (taints::DISK_PRESSURE.to_string(), "NoSchedule".to_string()),
            (taints::UNSCHEDULABLE.to_string(), "NoSchedule".to_string()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_node_is_down_nothing_is_evicted() {
    let c = Arc::new(FakeCluster::new());
    c.put(&node("solo", "True"));
    renew(&c, "solo");
    let x = ctx(&c);
    let lc = NodeLifecycle::new(&x, WorkQueue::new());
    lc.reconcile(&key("solo")).await.unwrap();
    tokio::time::advance(Duration::from_secs(41)).await;
    lc.reconcile(&key("solo")).await.unwrap();
    let n = c.get::<Node>(None, "solo").unwrap();
    assert_eq!(condition(&n, "Ready").0, "Unknown");
    let t = taint_keys(&n);
    // The scheduler keeps away, but the pods stay: the fault may be the control plane's.
    assert!(has(&t, UNREACHABLE, "NoSchedule"), "{t:?}");
    assert!(!has(&t, UNREACHABLE, "NoExecute"), "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn noexecute_taints_are_rate_limited_per_zone() {
    let c = Arc::new(FakeCluster::new());
    for n in ["a", "b", "c", "d", "e"] {
        c.put(&node(n, "True"));
        renew(&c, n);
    }
    let x = ctx(&c);
    let lc = NodeLifecycle::new(&x, WorkQueue::new());
    for n in ["a", "b", "c", "d", "e"] {
        lc.reconcile(&key(n)).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(41)).await;
    for n in ["c", "d", "e"] {
        renew(&c, n);
        lc.reconcile(&key(n)).await.unwrap();
    }
    lc.reconcile(&key("a")).await.unwrap();
    let r = lc.reconcile(&key("b")).await.unwrap();
    let noexec = |n: &str| {
        has(
            &taint_keys(&c.get::<Node>(None, n).unwrap()),
            UNREACHABLE,
            "NoExecute",
        )
    };
    assert!(noexec("a"));
    assert!(!noexec("b"));
    // One node per 10 s (the default --node-eviction-rate of 0.1).
    assert!(
        matches!(r, Requeue::After(d) if d > Duration::from_secs(9) && d <= Duration::from_secs(10)),
        "{r:?}"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    for n in ["c", "d", "e"] {
        renew(&c, n);
        lc.reconcile(&key(n)).await.unwrap();
    }
    lc.reconcile(&key("b")).await.unwrap();
    assert!(noexec("b"));
}

fn tainted_node(name: &str) -> Node {
    let mut n = node(name, "Unknown");
    n.spec.as_mut().unwrap().taints = Some(vec![
        serde_json::from_value(json!({"key": UNREACHABLE, "effect": "NoSchedule"})).unwrap(),
        serde_json::from_value(
            json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now()}),
        )
        .unwrap(),
    ]);
    n
}

#[tokio::test(start_paused = true)]
async fn pods_are_evicted_when_their_tolerations_run_out() {
    let c = Arc::new(FakeCluster::new());
    c.put(&tainted_node("n1"));
    let for_seconds = |s: i64| json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}]);
    c.put(&pod("intolerant", "n1", json!([])));
    c.put(&pod("patient", "n1", for_seconds(2)));
    c.put(&pod("stubborn", "n1", json!([{"operator": "Exists"}])));
    let x = ctx(&c);
    let ev = TaintEviction::new(&x);

    // No toleration: deleted at once, marked as a disruption target first.
    assert_eq!(
        ev.reconcile(&pod_key("intolerant")).await.unwrap(),
        Requeue::Done
    );
    assert!(c.get::<Pod>(Some("default"), "intolerant").is_none());
    assert!(
        c.writes()
            .iter()
            .any(|w| w == "update status of Pod default/intolerant")
    );
    assert!(c.events().iter().any(|e| e.reason == "TaintManagerEviction"
        && e.message == "Marking for deletion Pod default/intolerant"));

    // Two seconds of toleration: looked at again then, and deleted.
    let r = ev.reconcile(&pod_key("patient")).await.unwrap();
    assert!(
        matches!(r, Requeue::After(d) if d >= Duration::from_secs(2) && d < Duration::from_secs(3)),
        "{r:?}"
    );
    assert!(c.get::<Pod>(Some("default"), "patient").is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    // A look in between does not restart the clock.
    let r = ev.reconcile(&pod_key("patient")).await.unwrap();
    assert!(
        matches!(r, Requeue::After(d) if d < Duration::from_millis(1100)),
        "{r:?}"
    );
    tokio::time::advance(Duration::from_millis(1100)).await;
    ev.reconcile(&pod_key("patient")).await.unwrap();
    assert!(c.get::<Pod>(Some("default"), "patient").is_none());

    // Tolerating everything forever: never.
    assert_eq!(
        ev.reconcile(&pod_key("stubborn")).await.unwrap(),
        Requeue::Done
    );
    assert!(c.get::<Pod>(Some("default"), "stubborn").is_some());
}

#[tokio::test(start_paused = true)]
async fn an_eviction_is_cancelled_when_the_taint_goes() {
    let c = Arc::new(FakeCluster::new());
    c.put(&tainted_node("n1"));
    c.put(&pod(
        "web",
        "n1",
        json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
    ));
    let x = ctx(&c);
    let ev = TaintEviction::new(&x);
    assert!(matches!(
        ev.reconcile(&pod_key("web")).await.unwrap(),
        Requeue::After(_)
    ));
    tokio::time::advance(Duration::from_secs(3)).await;
    c.put(&node("n1", "True"));
    assert_eq!(ev.reconcile(&pod_key("web")).await.unwrap(), Requeue::Done);
    assert!(c.events().iter().any(|e| e.reason == "TaintManagerEviction"
        && e.message == "Cancelling deletion of Pod default/web"));
    // Tainted again later: a fresh five seconds.
    tokio::time::advance(Duration::from_secs(10)).await;
    c.put(&tainted_node("n1"));
    let r = ev.reconcile(&pod_key("web")).await.unwrap();
    assert!(
        matches!(r, Requeue::After(d) if d >= Duration::from_secs(5)),
        "{r:?}"
    );
    assert!(c.get::<Pod>(Some("default"), "web").is_some());
}

/// The whole loop, as `start` wires it: a node goes silent, its intolerant pod goes.
#[tokio::test(start_paused = true)]
async fn started_controllers_evict_from_a_silent_node() {
    let c = Arc::new(FakeCluster::new());
    for n in ["n1", "n2"] {
        c.put(&node(n, "True"));
        renew(&c, n);
    }
    c.put(&pod(
        "web",
        "n1",
        json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]),
    ));
    let mut x = ctx(&c);
    x.settings.node_monitor_grace = Duration::from_secs(3);
    let tasks = start(&x);
    // n2 stays alive.
    let keep = {
        let c = c.clone();
        tokio::spawn(async move {
            loop {
                renew(&c, "n2");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut gone_at = None;
    for i in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if c.get::<Pod>(Some("default"), "web").is_none() {
            gone_at = Some(i);
            break;
        }
    }
    let gone_at = gone_at.expect("pod evicted");
    // 3 s of grace, then 2 s of toleration.
    assert!((48..=60).contains(&gone_at), "{gone_at}");
    let n1 = c.get::<Node>(None, "n1").unwrap();
    assert_eq!(condition(&n1, "Ready").0, "Unknown");
    assert_eq!(
        condition(&c.get::<Node>(None, "n2").unwrap(), "Ready").0,
        "True"
    );
    keep.abort();
    for t in tasks {
        t.abort();
    }
}
