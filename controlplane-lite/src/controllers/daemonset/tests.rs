#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;
use crate::controllers::context::{Ctx, Informers, Settings};
use crate::controllers::runtime::FakeCluster;

struct World {
    cluster: Arc<FakeCluster>,
    ctl: DaemonSetController<FakeCluster>,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    World {
        ctl: DaemonSetController::new(&ctx),
        cluster,
    }
}

/// A DaemonSet as the API server stores it, with `spec` merged in.
fn agent(spec: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": "agent", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
            },
        },
    });
    json_patch::merge(&mut v, &json!({"spec": spec}));
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap()
}

impl World {
    async fn sync(&self) -> Requeue {
        self.ctl
            .reconcile(&ObjectKey::new(Some("ns"), "agent"))
            .await
            .unwrap()
    }

    fn ds(&self) -> DaemonSet {
        self.cluster.get(Some("ns"), "agent").unwrap()
    }

    fn status(&self) -> DaemonSetStatus {
        self.ds().status.unwrap()
    }

    async fn change(&self, spec: Value) {
        let _: DaemonSet = self
            .cluster
            .patch(Some("ns"), "agent", &json!({"spec": spec}))
            .await
            .unwrap();
    }

    /// Live pods by node.
    fn placed(&self) -> BTreeMap<String, Vec<Pod>> {
        let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
        for p in self.cluster.list::<Pod>() {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let n = p.spec.as_ref().unwrap().node_name.clone().unwrap();
            out.entry(n).or_default().push(p);
        }
        out
    }

    fn nodes_with_pods(&self) -> Vec<String> {
        self.placed().keys().cloned().collect()
    }

    async fn ready(&self, p: &Pod) {
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
        let _: Pod = self
            .cluster
            .patch_status(Some("ns"), p.metadata.name.as_deref().unwrap(), &status)
            .await
            .unwrap();
    }

    /// Plays kubelet: every pod without a phase runs and is ready.
    async fn run_pods(&self) {
        for p in self.cluster.list::<Pod>() {
            if p.status.as_ref().and_then(|s| s.phase.as_ref()).is_none() {
                self.ready(&p).await;
            }
        }
    }

    /// Syncs and runs pods until nothing changes; returns the most nodes that were ever
    /// without an available current-or-old pod and the most pods ever on one node.
    async fn settle(&self) -> (usize, usize) {
        let (mut worst_gap, mut most) = (0, 0);
        for _ in 0..100 {
            let before = self.cluster.writes().len();
            self.sync().await;
            let placed = self.placed();
            let ready = placed
                .values()
                .filter(|ps| ps.iter().any(set_pods::is_running_and_ready))
                .count();
            worst_gap = worst_gap.max(self.cluster.list::<Node>().len() - ready);
            most = most.max(placed.values().map(Vec::len).max().unwrap_or(0));
            self.run_pods().await;
            if self.cluster.writes().len() == before {
                return (worst_gap, most);
            }
        }
        panic!("no steady state");
    }

    fn events(&self, reason: &str) -> Vec<String> {
        self.cluster
            .events()
            .into_iter()
            .filter(|e| e.reason == reason)
            .map(|e| {
                assert_eq!(e.component, "daemonset-controller");
                e.message
            })
            .collect()
    }
}

#[tokio::test]
async fn a_pod_lands_on_every_eligible_node() {
    let w = world();
    w.cluster.put(&node("n1", json!({}), json!([])));
    w.cluster.put(&node(
        "n2",
        json!({}),
        json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
               {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
    ));
    w.cluster.put(&node(
        "n3",
        json!({}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    ));
    w.cluster.put(&agent(json!({})));
    w.sync().await;
    assert_eq!(w.nodes_with_pods(), ["n1", "n2"]);
    let p = &w.placed()["n2"][0];
    assert!(p.metadata.name.as_deref().unwrap().starts_with("agent-"));
    let spec = p.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("n2"));
    assert_eq!(placement::pinned_node(&spec), Some("n2"));
    let tol: Vec<String> = spec
        .tolerations
        .unwrap()
        .into_iter()
        .map(|t| format!("{}:{}", t.key.unwrap(), t.effect.unwrap()))
        .collect();
    assert_eq!(
        tol,
        [
            "node.kubernetes.io/not-ready:NoExecute",
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/disk-pressure:NoSchedule",
            "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/pid-pressure:NoSchedule",
            "node.kubernetes.io/unschedulable:NoSchedule",
        ]
    );
    let labels = p.metadata.labels.clone().unwrap();
    let rev: ControllerRevision = w.cluster.list().pop().unwrap();
    assert_eq!(
        labels[POD_REVISION_LABEL],
        rev.metadata.labels.clone().unwrap()[POD_REVISION_LABEL]
    );
    assert_eq!(rev.metadata.labels.unwrap()["app"], "agent");
    assert_eq!(rev.revision, 1);
    assert_eq!(labels["pod-template-generation"], "1");
    assert_eq!(labels["app"], "agent");
    assert_eq!(
        p.metadata.owner_references.clone().unwrap()[0].kind,
        "DaemonSet"
    );
    assert_eq!(w.events("SuccessfulCreate").len(), 2);

    let st = w.status();
    assert_eq!(st.desired_number_scheduled, 2);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.number_ready, 0);
    assert_eq!(st.number_unavailable, Some(2));
    assert_eq!(st.updated_number_scheduled, Some(2));
    assert_eq!(st.observed_generation, Some(1));
    w.run_pods().await;
    w.sync().await;
    let st = w.status();
    assert_eq!((st.number_ready, st.number_available), (2, Some(2)));
    assert_eq!(st.number_unavailable, None);
    // Steady.
    let writes = w.cluster.writes().len();
    w.sync().await;
    assert_eq!(w.cluster.writes().len(), writes, "{:?}", w.cluster.writes());
}

#[tokio::test]
async fn node_selectors_affinity_and_tolerations_choose_nodes() {
    let w = world();
    w.cluster
        .put(&node("ssd-1", json!({"disk": "ssd"}), json!([])));
    w.cluster.put(&node(
        "ssd-2",
        json!({"disk": "ssd", "zone": "b"}),
        json!([]),
    ));
    w.cluster
        .put(&node("hdd-1", json!({"disk": "hdd"}), json!([])));
    w.cluster.put(&node(
        "ssd-db",
        json!({"disk": "ssd"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    ));
    w.cluster.put(&agent(json!({"template": {"spec": {
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}},
    }}})));
    w.sync().await;
    assert_eq!(w.nodes_with_pods(), ["ssd-1"]);
    // Tolerating the taint adds the dedicated node.
    w.change(json!({"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}))
        .await;
    w.settle().await;
    assert_eq!(w.nodes_with_pods(), ["ssd-1", "ssd-db"]);
    // The pod's affinity is the pin to its node alone.
    let p = &w.placed()["ssd-db"][0];
    let terms = &p
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    assert_eq!(
        terms[0].match_fields.as_ref().unwrap()[0].values,
        Some(vec!["ssd-db".into()])
    );
    assert_eq!(w.status().desired_number_scheduled, 2);
}

#[tokio::test]
async fn nodes_joining_get_a_pod_and_nodes_leaving_lose_it() {
    let w = world();
    w.cluster
        .put(&node("n1", json!({"role": "worker"}), json!([])));
    w.cluster.put(&agent(
        json!({"template": {"spec": {"nodeSelector": {"role": "worker"}}}}),
    ));
    w.settle().await;
    assert_eq!(w.nodes_with_pods(), ["n1"]);
    w.cluster
        .put(&node("n2", json!({"role": "worker"}), json!([])));
    w.settle().await;
    assert_eq!(w.nodes_with_pods(), ["n1", "n2"]);
    assert_eq!(w.status().number_ready, 2);
    // A node relabelled away loses its pod; one removed does too.
    w.cluster.put(&node("n1", json!({"role": "db"}), json!([])));
    w.sync().await;
    assert_eq!(w.nodes_with_pods(), ["n2"]);
    w.cluster.remove::<Node>(None, "n2");
    w.sync().await;
    assert!(w.nodes_with_pods().is_empty());
    assert_eq!(w.events("SuccessfulDelete").len(), 2);
    let st = w.status();
    assert_eq!(
        (st.desired_number_scheduled, st.current_number_scheduled),
        (0, 0)
    );
    // A NoExecute taint evicts; a NoSchedule taint lets the pod stay.
    w.cluster
        .put(&node("n3", json!({"role": "worker"}), json!([])));
    w.settle().await;
    w.cluster.put(&node(
        "n3",
        json!({"role": "worker"}),
        json!([{"key": "maintenance", "effect": "NoSchedule"}]),
    ));
    w.sync().await;
    assert_eq!(w.nodes_with_pods(), ["n3"]);
    let st = w.status();
    assert_eq!(
        (st.desired_number_scheduled, st.number_misscheduled),
        (0, 1)
    );
    w.cluster.put(&node(
        "n3",
        json!({"role": "worker"}),
        json!([{"key": "maintenance", "effect": "NoExecute"}]),
    ));
    w.sync().await;
    assert!(w.nodes_with_pods().is_empty());
}

#[tokio::test]
async fn a_rolling_update_replaces_one_pod_at_a_time() {
    let w = world();
    for n in ["n1", "n2", "n3", "n4"] {
        w.cluster.put(&node(n, json!({}), json!([])));
    }
    w.cluster.put(&agent(json!({})));
    w.settle().await;
    let old = w.placed()["n1"][0].metadata.labels.clone().unwrap()[POD_REVISION_LABEL].clone();
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}),
    )
    .await;
    w.sync().await;
    // One old pod went; nothing else yet.
    assert_eq!(w.nodes_with_pods().len(), 3);
    let (gap, most) = w.settle().await;
    assert_eq!(gap, 1, "at most one node without a ready pod");
    assert_eq!(most, 1);
    let placed = w.placed();
    assert_eq!(placed.len(), 4);
    for pods in placed.values() {
        assert_eq!(pods.len(), 1);
        let hash = &pods[0].metadata.labels.as_ref().unwrap()[POD_REVISION_LABEL];
        assert_ne!(hash, &old);
        assert_eq!(
            pods[0].spec.as_ref().unwrap().containers[0]
                .image
                .as_deref(),
            Some("agent:2")
        );
    }
    let st = w.status();
    assert_eq!(st.updated_number_scheduled, Some(4));
    assert_eq!(st.number_available, Some(4));
    let revs: Vec<ControllerRevision> = w.cluster.list();
    let mut numbers: Vec<i64> = revs.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn max_unavailable_percent_replaces_several_at_once() {
    let w = world();
    for n in ["n1", "n2", "n3", "n4"] {
        w.cluster.put(&node(n, json!({}), json!([])));
    }
    w.cluster.put(&agent(
        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}),
    ));
    w.settle().await;
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}),
    )
    .await;
    w.sync().await;
    assert_eq!(w.nodes_with_pods().len(), 2);
    let (gap, _) = w.settle().await;
    assert_eq!(gap, 2);
    assert_eq!(w.status().updated_number_scheduled, Some(4));
}

#[tokio::test]
async fn a_surge_update_starts_the_new_pod_before_the_old_goes() {
    let w = world();
    for n in ["n1", "n2", "n3"] {
        w.cluster.put(&node(n, json!({}), json!([])));
    }
    w.cluster.put(&agent(
        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}),
    ));
    w.settle().await;
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}),
    )
    .await;
    w.sync().await;
    let placed = w.placed();
    assert_eq!(placed.values().map(Vec::len).sum::<usize>(), 4);
    let (gap, most) = w.settle().await;
    assert_eq!(gap, 0, "every node keeps a ready pod");
    assert_eq!(most, 2);
    assert_eq!(w.placed().values().map(Vec::len).sum::<usize>(), 3);
    assert_eq!(w.status().updated_number_scheduled, Some(3));
}

#[tokio::test]
async fn on_delete_replaces_only_deleted_pods() {
    let w = world();
    for n in ["n1", "n2"] {
        w.cluster.put(&node(n, json!({}), json!([])));
    }
    w.cluster.put(&agent(
        json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
    ));
    w.settle().await;
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}),
    )
    .await;
    w.settle().await;
    let image = |n: &str| {
        w.placed()[n][0].spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(
        (image("n1"), image("n2")),
        ("agent:1".into(), "agent:1".into())
    );
    let doomed = w.placed()["n1"][0].metadata.name.clone().unwrap();
    w.cluster.remove::<Pod>(Some("ns"), &doomed);
    w.settle().await;
    assert_eq!(
        (image("n1"), image("n2")),
        ("agent:2".into(), "agent:1".into())
    );
    assert_eq!(w.status().updated_number_scheduled, Some(1));
}

#[tokio::test]
async fn failed_pods_are_replaced_under_a_back_off() {
    let w = world();
    w.cluster.put(&node("n1", json!({}), json!([])));
    w.cluster.put(&agent(json!({})));
    w.settle().await;
    let cluster = w.cluster.clone();
    let fail = |p: Pod| {
        let cluster = cluster.clone();
        async move {
            let _: Pod = cluster
                .patch_status(
                    Some("ns"),
                    p.metadata.name.as_deref().unwrap(),
                    &json!({"status": {"phase": "Failed"}}),
                )
                .await
                .unwrap();
        }
    };
    fail(w.placed()["n1"][0].clone()).await;
    w.sync().await;
    assert_eq!(
        w.events("FailedDaemonPod"),
        [format!(
            "Found failed daemon pod ns/{} on node n1, will try to kill it",
            w.events("SuccessfulCreate")[0].trim_start_matches("Created pod: ")
        )]
    );
    w.sync().await;
    assert_eq!(w.placed()["n1"].len(), 1);
    // Failing again within the back-off: it waits.
    fail(w.placed()["n1"][0].clone()).await;
    match w.sync().await {
        Requeue::After(d) => assert!(d <= Duration::from_secs(1)),
        Requeue::Done => panic!("expected a requeue after the back-off"),
    }
    assert_eq!(w.events("FailedDaemonPod").len(), 1);
}

#[tokio::test]
async fn an_old_template_coming_back_renumbers_its_revision() {
    let w = world();
    w.cluster.put(&node("n1", json!({}), json!([])));
    w.cluster.put(&agent(json!({})));
    w.settle().await;
    let image =
        |i: &str| json!({"template": {"spec": {"containers": [{"name": "agent", "image": i}]}}});
    w.change(image("agent:2")).await;
    w.settle().await;
    w.change(image("agent:1")).await;
    w.settle().await;
    let mut revs: Vec<ControllerRevision> = w.cluster.list();
    revs.sort_by_key(|r| r.revision);
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [2, 3]);
    let hash = revs[1].metadata.labels.clone().unwrap()[POD_REVISION_LABEL].clone();
    assert_eq!(
        w.placed()["n1"][0].metadata.labels.clone().unwrap()[POD_REVISION_LABEL],
        hash
    );
    assert_eq!(
        history::template_of(&revs[1].data.clone().unwrap().0)
            .unwrap()
            .spec
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("agent:1")
    );
}

#[test]
fn only_label_and_taint_changes_of_nodes_wake_the_sets() {
    let seen = Mutex::new(HashMap::new());
    let change = |n: Node, deleted: bool| Change {
        obj: Arc::new(n),
        deleted,
    };
    let n = node("n1", json!({"a": "1"}), json!([]));
    assert!(placement_changed(&seen, &change(n.clone(), false)));
    let mut beat = n.clone();
    beat.status = Some(
        serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "True"}]}))
            .unwrap(),
    );
    assert!(!placement_changed(&seen, &change(beat, false)));
    let relabelled = node("n1", json!({"a": "2"}), json!([]));
    assert!(placement_changed(&seen, &change(relabelled.clone(), false)));
    let tainted = node(
        "n1",
        json!({"a": "2"}),
        json!([{"key": "k", "effect": "NoSchedule"}]),
    );
    assert!(placement_changed(&seen, &change(tainted.clone(), false)));
    assert!(placement_changed(&seen, &change(tainted, true)));
}
