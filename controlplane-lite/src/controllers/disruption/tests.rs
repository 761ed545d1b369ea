//! The disruption controller on a [`FakeCluster`]: the counts for integer and percentage
//! budgets (the latter from the controllers' scale), the condition and its reasons, and
//! the disruptedPods entries evictions leave.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::*;
use crate::controllers::clock::ManualClock;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

const NOW: &str = "2026-03-01T10:00:00Z";
const NS: &str = "ns";

struct World {
    c: Arc<FakeCluster>,
    clock: ManualClock,
    dc: DisruptionController<FakeCluster>,
}

fn world() -> World {
    let c = Arc::new(FakeCluster::new());
    let clock = ManualClock::new(NOW.parse().unwrap());
    let ctx = Ctx {
        cluster: c.clone(),
        informers: Informers::fake(&c),
        settings: Settings::default(),
    };
    let dc = DisruptionController::new(&ctx, Arc::new(clock.clone()));
    World { c, clock, dc }
}

fn obj<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

impl World {
    /// A Deployment of `replicas` with its ReplicaSet; returns the ReplicaSet's uid.
    fn deployment(&self, name: &str, replicas: i32) {
        let sel = json!({"matchLabels": {"app": name}});
        let tmpl = json!({"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        self.c.put::<Deployment>(&obj(json!({
            "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-d")},
            "spec": {"replicas": replicas, "selector": sel, "template": tmpl},
        })));
        self.c.put::<ReplicaSet>(&obj(json!({
            "metadata": {"name": format!("{name}-rs"), "namespace": NS, "uid": format!("{name}-rs"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": format!("{name}-d"), "controller": true}]},
            "spec": {"replicas": replicas, "selector": sel, "template": tmpl},
        })));
    }

    fn pod(&self, name: &str, app: &str, owner: (&str, &str), ready: bool) {
        let (kind, owner_name) = owner;
        self.c.put::<Pod>(&obj(json!({
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name, "uid": owner_name, "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })));
    }

    fn pdb(&self, name: &str, app: &str, spec: Value) {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": app}});
        self.c.put::<PodDisruptionBudget>(&obj(
            json!({"metadata": {"name": name, "namespace": NS}, "spec": spec}),
        ));
    }

    fn status(&self, name: &str) -> k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus {
        self.c
            .get::<PodDisruptionBudget>(Some(NS), name)
            .unwrap()
            .status
            .unwrap()
    }

    async fn sync(&self, name: &str) -> Result<Requeue, ReconcileError> {
        self.dc.reconcile(&ObjectKey::new(Some(NS), name)).await
    }
}

fn condition(
    st: &k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus,
) -> (String, String, String) {
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn counts(st: &k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus) -> [i32; 4] {
    [
        st.expected_pods,
        st.desired_healthy,
        st.current_healthy,
        st.disruptions_allowed,
    ]
}

#[tokio::test]
async fn min_available_integer_counts_the_pods() {
    let w = world();
    w.deployment("web", 3);
    for i in 0..3 {
        w.pod(&format!("web-{i}"), "web", ("ReplicaSet", "web-rs"), true);
    }
    w.pdb("web", "web", json!({"minAvailable": 2}));
    assert_eq!(w.sync("web").await.unwrap(), Requeue::Done);
    let st = w.status("web");
    assert_eq!(counts(&st), [3, 2, 3, 1]);
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        condition(&st),
        ("True".into(), "SufficientPods".into(), String::new())
    );
    // One pod becomes unready: the budget is exactly met, nothing may go.
    w.pod("web-2", "web", ("ReplicaSet", "web-rs"), false);
    w.sync("web").await.unwrap();
    let st = w.status("web");
    assert_eq!(counts(&st), [3, 2, 2, 0]);
    assert_eq!(
        condition(&st),
        ("False".into(), "InsufficientPods".into(), String::new())
    );
    // A second sync with nothing new writes nothing.
    let writes = w.c.writes().len();
    w.sync("web").await.unwrap();
    assert_eq!(w.c.writes().len(), writes);
}

#[tokio::test]
async fn percentages_and_max_unavailable_use_the_controllers_scale() {
    let w = world();
    // The Deployment wants 4 but only 3 pods exist (one not yet created).
    w.deployment("web", 4);
    for i in 0..3 {
        w.pod(&format!("web-{i}"), "web", ("ReplicaSet", "web-rs"), true);
    }
    w.pdb("max", "web", json!({"maxUnavailable": "50%"}));
    w.sync("max").await.unwrap();
    assert_eq!(counts(&w.status("max")), [4, 2, 3, 1]);
    w.pdb("min", "web", json!({"minAvailable": "60%"}));
    w.sync("min").await.unwrap();
    // 60% of 4 rounds up to 3.
    assert_eq!(counts(&w.status("min")), [4, 3, 3, 0]);
    w.pdb("one", "web", json!({"maxUnavailable": 1}));
    w.sync("one").await.unwrap();
    assert_eq!(counts(&w.status("one")), [4, 3, 3, 0]);

    // A StatefulSet's replicas count as its scale.
    w.c.put::<StatefulSet>(&obj(json!({
        "metadata": {"name": "db", "namespace": NS, "uid": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    })));
    w.pod("db-0", "db", ("StatefulSet", "db"), true);
    w.pod("db-1", "db", ("StatefulSet", "db"), true);
    w.pdb("db", "db", json!({"maxUnavailable": "50%"}));
    w.sync("db").await.unwrap();
    assert_eq!(counts(&w.status("db")), [2, 1, 2, 1]);
}

#[tokio::test]
async fn a_pod_without_a_scale_fails_the_sync() {
    let w = world();
    w.pod("agent-x", "agent", ("DaemonSet", "agent"), true);
    w.pdb("agent", "agent", json!({"maxUnavailable": 1}));
    assert!(w.sync("agent").await.is_err());
    let st = w.status("agent");
    assert_eq!(st.disruptions_allowed, 0);
    let (value, reason, message) = condition(&st);
    assert_eq!((value.as_str(), reason.as_str()), ("False", "SyncFailed"));
    assert_eq!(message, "found no controllers for pod \"agent-x\"");
    assert!(
        w.c.events()
            .iter()
            .any(|e| e.reason == "CalculateExpectedPodCountFailed")
    );
    // An integer minAvailable needs no scale.
    w.pdb("agent", "agent", json!({"minAvailable": 1}));
    w.sync("agent").await.unwrap();
    let st = w.status("agent");
    assert_eq!(counts(&st), [1, 1, 1, 0]);
    assert_eq!(condition(&st).1, "InsufficientPods");
}

#[tokio::test]
async fn no_pods_allow_nothing() {
    let w = world();
    w.pdb("empty", "none", json!({"maxUnavailable": 1}));
    w.sync("empty").await.unwrap();
    assert_eq!(counts(&w.status("empty")), [0, 0, 0, 0]);
    assert!(w.c.events().iter().any(|e| e.reason == "NoPods"));
}

#[tokio::test]
async fn disrupted_pods_are_not_healthy_until_they_expire() {
    let w = world();
    w.deployment("web", 3);
    for i in 0..3 {
        w.pod(&format!("web-{i}"), "web", ("ReplicaSet", "web-rs"), true);
    }
    w.pdb("web", "web", json!({"minAvailable": 1}));
    w.sync("web").await.unwrap();
    assert_eq!(counts(&w.status("web")), [3, 1, 3, 2]);

    // Two evictions, as the API server records them; one pod is already going.
    let now: Timestamp = NOW.parse().unwrap();
    let mut pdb = w.c.get::<PodDisruptionBudget>(Some(NS), "web").unwrap();
    let st = pdb.status.as_mut().unwrap();
    st.disrupted_pods = Some(
        [
            ("web-0".to_string(), Time(now)),
            ("web-1".to_string(), Time(now)),
        ]
        .into(),
    );
    st.disruptions_allowed = 0;
    w.c.put(&pdb);
    let mut going = w.c.get::<Pod>(Some(NS), "web-1").unwrap();
    going.metadata.deletion_timestamp = Some(Time(now));
    w.c.put(&going);

    w.clock.advance(Duration::from_secs(30));
    let requeue = w.sync("web").await.unwrap();
    assert_eq!(requeue, Requeue::After(Duration::from_secs(90)));
    let st = w.status("web");
    // web-1 is being deleted (no longer tracked, not healthy); web-0 still expected to go.
    assert_eq!(
        st.disrupted_pods
            .clone()
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["web-0".to_string()]
    );
    assert_eq!(counts(&st), [3, 1, 1, 0]);

    // web-0 was never deleted: after two minutes it counts again, with an event.
    w.clock.advance(Duration::from_secs(91));
    assert_eq!(w.sync("web").await.unwrap(), Requeue::Done);
    let st = w.status("web");
    assert!(st.disrupted_pods.is_none());
    assert_eq!(counts(&st), [3, 1, 2, 1]);
    assert!(w.c.events().iter().any(|e| e.reason == "NotDeleted"));

    // A pod that is gone drops out of the map at once.
    let mut pdb = w.c.get::<PodDisruptionBudget>(Some(NS), "web").unwrap();
    pdb.status.as_mut().unwrap().disrupted_pods =
        Some([("web-gone".to_string(), Time(w.clock.now()))].into());
    w.c.put(&pdb);
    w.sync("web").await.unwrap();
    assert!(w.status("web").disrupted_pods.is_none());
}

#[tokio::test]
async fn the_controller_follows_its_pods() {
    let c = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: c.clone(),
        informers: Informers::fake(&c),
        settings: Settings::default(),
    };
    let tasks = start(&ctx);
    let w = World {
        c: c.clone(),
        clock: ManualClock::new(NOW.parse().unwrap()),
        dc: DisruptionController::new(&ctx, Arc::new(SystemClock)),
    };
    w.deployment("web", 2);
    w.pdb("web", "web", json!({"minAvailable": 1}));
    w.pod("web-0", "web", ("ReplicaSet", "web-rs"), true);
    w.pod("web-1", "web", ("ReplicaSet", "web-rs"), true);
    let mut ok = false;
    for _ in 0..300 {
        let st = c
            .get::<PodDisruptionBudget>(Some(NS), "web")
            .and_then(|p| p.status);
        if st.is_some_and(|s| s.disruptions_allowed == 1 && s.current_healthy == 2) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.abort();
    }
    assert!(ok, "status never caught up with the pods");
}
