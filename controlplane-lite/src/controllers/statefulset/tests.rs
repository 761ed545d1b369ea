#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::{Value, json};

use super::*;
use crate::controllers::context::{Ctx, Informers, Settings};
use crate::controllers::runtime::FakeCluster;

struct World {
    cluster: Arc<FakeCluster>,
    ctl: StatefulSetController<FakeCluster>,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    World {
        ctl: StatefulSetController::new(&ctx),
        cluster,
    }
}

/// A set as the API server stores it (defaults applied), with `spec` merged in.
fn web(replicas: i32, spec: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]},
            },
        },
    });
    json_patch::merge(&mut v, &json!({"spec": spec}));
    serde_json::from_value(v).unwrap()
}

fn key() -> ObjectKey {
    ObjectKey::new(Some("ns"), "web")
}

impl World {
    async fn sync(&self) -> Requeue {
        self.ctl.reconcile(&key()).await.unwrap()
    }

    fn set(&self) -> StatefulSet {
        self.cluster.get(Some("ns"), "web").unwrap()
    }

    fn status(&self) -> StatefulSetStatus {
        self.set().status.unwrap()
    }

    async fn change(&self, spec: Value) {
        let _: StatefulSet = self
            .cluster
            .patch(Some("ns"), "web", &json!({"spec": spec}))
            .await
            .unwrap();
    }

    fn pods(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .cluster
            .list::<Pod>()
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect();
        names.sort();
        names
    }

    fn pod(&self, name: &str) -> Pod {
        self.cluster.get(Some("ns"), name).unwrap()
    }

    fn revision(&self, name: &str) -> String {
        self.pod(name).metadata.labels.unwrap()[POD_REVISION_LABEL].clone()
    }

    async fn set_phase(&self, name: &str, phase: &str, ready: bool) {
        let now = Timestamp::now().to_string();
        let status = json!({"status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}]}});
        let _: Pod = self
            .cluster
            .patch_status(Some("ns"), name, &status)
            .await
            .unwrap();
    }

    async fn ready(&self, name: &str) {
        self.set_phase(name, "Running", true).await;
    }

    /// Syncs, making every pod ready, until nothing changes.
    async fn settle(&self) {
        for _ in 0..50 {
            let before = self.cluster.writes().len();
            self.sync().await;
            for p in self.cluster.list::<Pod>() {
                if !is_running_and_ready(&p) && p.metadata.deletion_timestamp.is_none() {
                    self.ready(p.metadata.name.as_deref().unwrap()).await;
                }
            }
            if self.cluster.writes().len() == before {
                return;
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
                assert_eq!(e.component, "statefulset-controller");
                e.message
            })
            .collect()
    }

    fn revisions(&self) -> Vec<ControllerRevision> {
        let mut r = self.cluster.list::<ControllerRevision>();
        r.sort_by_key(|r| r.revision);
        r
    }
}

#[tokio::test]
async fn pods_are_made_in_order_each_ready_before_the_next() {
    let w = world();
    w.cluster.put(&web(
        3,
        json!({"volumeClaimTemplates": [{
            "metadata": {"name": "data", "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        }]}),
    ));
    w.sync().await;
    assert_eq!(w.pods(), ["web-0"]);
    // Not ready yet: nothing more.
    w.sync().await;
    assert_eq!(w.pods(), ["web-0"]);
    w.set_phase("web-0", "Running", false).await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0"]);
    w.ready("web-0").await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1"]);
    w.ready("web-1").await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1", "web-2"]);
    w.ready("web-2").await;
    w.sync().await;

    let p = w.pod("web-1");
    let spec = p.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = &spec.volumes.unwrap()[0];
    assert_eq!(vol.name, "data");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-1"
    );
    let labels = p.metadata.labels.unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-1");
    assert_eq!(labels[POD_INDEX_LABEL], "1");
    assert_eq!(labels["app"], "web");
    let owner = &p.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("StatefulSet", Some(true))
    );

    let mut claims: Vec<PersistentVolumeClaim> = w.cluster.list();
    claims.sort_by_key(|c| c.metadata.name.clone());
    let names: Vec<_> = claims
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["data-web-0", "data-web-1", "data-web-2"]);
    let labels = claims[0].metadata.labels.clone().unwrap();
    assert_eq!(
        (labels["app"].as_str(), labels["tier"].as_str()),
        ("web", "db")
    );
    // Retain: nobody owns the claims.
    assert!(claims[0].metadata.owner_references.is_none());
    assert!(claims[0].status.is_none());

    let st = w.status();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(3));
    assert_eq!(st.current_replicas, Some(3));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.collision_count, Some(0));
    assert_eq!(st.current_revision, st.update_revision);
    let revs = w.revisions();
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].revision, 1);
    assert_eq!(revs[0].metadata.name, st.update_revision);
    assert_eq!(w.revision("web-2"), revs[0].metadata.name.clone().unwrap());
    let rl = revs[0].metadata.labels.clone().unwrap();
    assert_eq!(rl["app"], "web");
    assert!(rl[HASH_LABEL].len() >= 8);
    assert_eq!(
        w.events("SuccessfulCreate"),
        [
            "create Claim data-web-0 Pod web-0 in StatefulSet web success",
            "create Pod web-0 in StatefulSet web successful",
            "create Claim data-web-1 Pod web-1 in StatefulSet web success",
            "create Pod web-1 in StatefulSet web successful",
            "create Claim data-web-2 Pod web-2 in StatefulSet web success",
            "create Pod web-2 in StatefulSet web successful",
        ]
    );
    // Steady: a further sync writes nothing.
    let writes = w.cluster.writes().len();
    w.sync().await;
    assert_eq!(w.cluster.writes().len(), writes, "{:?}", w.cluster.writes());
}

#[tokio::test]
async fn ordinals_start_where_the_spec_says() {
    let w = world();
    w.cluster.put(&web(2, json!({"ordinals": {"start": 5}})));
    w.settle().await;
    assert_eq!(w.pods(), ["web-5", "web-6"]);
    assert_eq!(
        w.pod("web-6").metadata.labels.unwrap()[POD_INDEX_LABEL],
        "6"
    );
}

#[tokio::test]
async fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let w = world();
    // The finalizer keeps deleted pods terminating until the test lets them go.
    w.cluster.put(&web(
        3,
        json!({"template": {"metadata": {"finalizers": ["skiff.test/hold"]}},
               "volumeClaimTemplates": [{"metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
    ));
    w.settle().await;
    assert_eq!(w.pods(), ["web-0", "web-1", "web-2"]);
    w.change(json!({"replicas": 1})).await;
    w.sync().await;
    assert!(w.pod("web-2").metadata.deletion_timestamp.is_some());
    assert!(w.pod("web-1").metadata.deletion_timestamp.is_none());
    // web-1 waits until web-2 is gone.
    w.sync().await;
    assert!(w.pod("web-1").metadata.deletion_timestamp.is_none());
    w.cluster.remove::<Pod>(Some("ns"), "web-2");
    w.sync().await;
    assert!(w.pod("web-1").metadata.deletion_timestamp.is_some());
    w.cluster.remove::<Pod>(Some("ns"), "web-1");
    w.sync().await;
    assert_eq!(w.pods(), ["web-0"]);
    assert!(w.pod("web-0").metadata.deletion_timestamp.is_none());
    assert_eq!(
        w.events("SuccessfulDelete"),
        [
            "delete Pod web-2 in StatefulSet web successful",
            "delete Pod web-1 in StatefulSet web successful",
        ]
    );
    // Claims stay (Retain).
    assert_eq!(w.cluster.list::<PersistentVolumeClaim>().len(), 3);
    let st = w.status();
    assert_eq!((st.replicas, st.ready_replicas), (1, Some(1)));
}

#[tokio::test]
async fn scale_down_waits_for_an_unready_pod_unless_it_is_the_first_unhealthy() {
    let w = world();
    w.cluster.put(&web(3, json!({})));
    w.settle().await;
    w.change(json!({"replicas": 1})).await;
    // web-2 is unready and a lower pod is too: web-2 waits (OrderedReady).
    w.set_phase("web-1", "Running", false).await;
    w.set_phase("web-2", "Running", false).await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1", "web-2"]);
    w.ready("web-2").await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1"]);
    // The lowest unhealthy pod itself may be removed.
    w.sync().await;
    assert_eq!(w.pods(), ["web-0"]);
}

#[tokio::test]
async fn parallel_creates_and_removes_all_at_once() {
    let w = world();
    w.cluster
        .put(&web(3, json!({"podManagementPolicy": "Parallel"})));
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1", "web-2"]);
    w.change(json!({"replicas": 0})).await;
    w.sync().await;
    assert!(w.pods().is_empty());
    assert_eq!(w.status().replicas, 0);
}

#[tokio::test]
async fn a_rolling_update_goes_down_from_the_highest_ordinal_and_stops_at_the_partition() {
    let w = world();
    w.cluster.put(&web(3, json!({})));
    w.settle().await;
    let old = w.status().current_revision.unwrap();
    w.change(
        json!({"updateStrategy": {"rollingUpdate": {"partition": 1}},
                    "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}),
    )
    .await;
    w.sync().await;
    let new = w.status().update_revision.unwrap();
    assert_ne!(old, new);
    assert_eq!(w.pods(), ["web-0", "web-1"], "web-2 goes first");
    w.sync().await;
    assert_eq!(w.revision("web-2"), new);
    let image = |n: &str| w.pod(n).spec.unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image("web-2"), "nginx:2");
    // web-1 waits for the new web-2 to be ready.
    w.sync().await;
    assert_eq!(w.revision("web-1"), old);
    w.ready("web-2").await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-2"]);
    w.settle().await;
    // web-0 is below the partition and keeps the old template.
    assert_eq!(w.revision("web-1"), new);
    assert_eq!(w.revision("web-0"), old);
    assert_eq!(image("web-0"), "nginx:1");
    let st = w.status();
    assert_eq!(st.current_revision.as_deref(), Some(old.as_str()));
    assert_eq!(st.update_revision.as_deref(), Some(new.as_str()));
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(1), Some(2))
    );
    // A pod recreated below the partition comes back at the old revision.
    w.cluster.remove::<Pod>(Some("ns"), "web-0");
    w.settle().await;
    assert_eq!(w.revision("web-0"), old);
    // Partition 0 finishes the roll-out; the new revision becomes the current one.
    w.change(json!({"updateStrategy": {"rollingUpdate": {"partition": 0}}}))
        .await;
    w.settle().await;
    assert_eq!(w.revision("web-0"), new);
    let st = w.status();
    assert_eq!(st.current_revision.as_deref(), Some(new.as_str()));
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(3), Some(3))
    );
    let deletes = w.events("SuccessfulDelete");
    assert_eq!(
        deletes,
        [
            "delete Pod web-2 in StatefulSet web successful",
            "delete Pod web-1 in StatefulSet web successful",
            "delete Pod web-0 in StatefulSet web successful",
        ]
    );
}

#[tokio::test]
async fn max_unavailable_updates_several_at_once() {
    let w = world();
    w.cluster.put(&web(
        4,
        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}),
    ));
    w.settle().await;
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}),
    )
    .await;
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1"]);
    w.settle().await;
    let new = w.status().update_revision.unwrap();
    for p in w.pods() {
        assert_eq!(w.revision(&p), new);
    }
}

#[tokio::test]
async fn on_delete_updates_only_pods_someone_deleted() {
    let w = world();
    w.cluster.put(&web(
        2,
        json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}),
    ));
    w.settle().await;
    let old = w.revision("web-1");
    w.change(
        json!({"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}),
    )
    .await;
    w.settle().await;
    assert_eq!(w.revision("web-1"), old);
    w.cluster.remove::<Pod>(Some("ns"), "web-1");
    w.settle().await;
    assert_eq!(w.revision("web-1"), w.status().update_revision.unwrap());
    assert_eq!(w.revision("web-0"), old);
}

#[tokio::test]
async fn deleted_and_failed_pods_come_back_with_the_same_name() {
    let w = world();
    w.cluster.put(&web(3, json!({})));
    w.settle().await;
    let uid = w.pod("web-1").metadata.uid.unwrap();
    w.cluster.remove::<Pod>(Some("ns"), "web-1");
    w.sync().await;
    let again = w.pod("web-1");
    assert_ne!(again.metadata.uid.unwrap(), uid);
    w.ready("web-1").await;

    let uid = w.pod("web-0").metadata.uid.unwrap();
    w.set_phase("web-0", "Failed", false).await;
    // Deleted first; made again once it is gone.
    w.sync().await;
    assert_eq!(w.pods(), ["web-1", "web-2"]);
    w.sync().await;
    assert_eq!(w.pods(), ["web-0", "web-1", "web-2"]);
    assert_ne!(w.pod("web-0").metadata.uid.unwrap(), uid);
    assert_eq!(
        w.events("RecreatingFailedPod"),
        ["StatefulSet ns/web is recreating failed Pod web-0"]
    );
}

#[tokio::test]
async fn a_rollback_renumbers_the_old_revision() {
    let w = world();
    w.cluster.put(&web(1, json!({})));
    w.settle().await;
    let image =
        |i: &str| json!({"template": {"spec": {"containers": [{"name": "nginx", "image": i}]}}});
    w.change(image("nginx:2")).await;
    w.settle().await;
    let revs = w.revisions();
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    let first = revs[0].metadata.name.clone();
    // What `kubectl rollout undo` does: patch the old template back in.
    let data = revs[0].data.clone().unwrap().0;
    let t = history::template_of(&data).unwrap();
    let _: StatefulSet = w
        .cluster
        .patch(Some("ns"), "web", &json!({"spec": {"template": t}}))
        .await
        .unwrap();
    w.settle().await;
    let revs = w.revisions();
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[1].metadata.name, first);
    assert_eq!(revs[1].revision, 3);
    assert_eq!(w.status().update_revision, first);
    assert_eq!(w.revision("web-0"), first.unwrap());
}

#[tokio::test]
async fn history_is_trimmed_to_the_limit() {
    let w = world();
    w.cluster.put(&web(1, json!({"revisionHistoryLimit": 1})));
    w.settle().await;
    for i in 2..=4 {
        w.change(json!({"template": {"spec": {"containers": [{"name": "nginx", "image": format!("nginx:{i}")}]}}}))
            .await;
        w.settle().await;
    }
    let revs = w.revisions();
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [3, 4]);
}

#[tokio::test]
async fn claims_follow_the_retention_policy() {
    let w = world();
    w.cluster.put(&web(
        2,
        json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
               "volumeClaimTemplates": [{"metadata": {"name": "data"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
    ));
    w.settle().await;
    let owners = |c: &str| -> Vec<String> {
        w.cluster
            .get::<PersistentVolumeClaim>(Some("ns"), c)
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|r| format!("{}/{}", r.kind, r.name))
            .collect()
    };
    assert_eq!(owners("data-web-1"), ["StatefulSet/web"]);
    w.change(json!({"replicas": 1})).await;
    w.sync().await;
    // Scaled away: the claim now goes with its pod.
    assert_eq!(owners("data-web-1"), ["Pod/web-1"]);
    assert_eq!(owners("data-web-0"), ["StatefulSet/web"]);
}

#[tokio::test]
async fn orphans_named_like_members_are_adopted() {
    let w = world();
    w.cluster.put(&web(1, json!({})));
    let mut pod = identity::new_pod(&w.set(), &template(&w.set()), 0, "x");
    pod.metadata.owner_references = None;
    w.cluster.put(&pod);
    w.sync().await;
    let refs = w.pod("web-0").metadata.owner_references.unwrap();
    assert_eq!(refs[0].uid, w.set().metadata.uid.unwrap());
}
