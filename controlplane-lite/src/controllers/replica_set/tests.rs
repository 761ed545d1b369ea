#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::controllers::apps_fixtures::{Env, obj, replica_set};
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::{FakeCluster, Kind, Reconciler};

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("ns"), name)
}

fn owned_by<'a>(pods: &'a [Pod], rs: &ReplicaSet) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| {
            controller_of(&p.metadata).map(|r| r.uid.as_str()) == rs.metadata.uid.as_deref()
        })
        .collect()
}

#[tokio::test]
async fn scales_up_then_down_deleting_the_least_useful_pods() {
    let env = Env::new();
    let rs = env.cluster.put(&replica_set("web", 3));
    env.settle().await;
    let pods = env.pods();
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let name = p.metadata.name.as_deref().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "web");
        let r = controller_of(&p.metadata).unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.block_owner_deletion),
            ("ReplicaSet", "web", Some(true))
        );
        assert_eq!(r.uid, rs.metadata.uid.clone().unwrap());
    }
    assert_eq!(env.events("SuccessfulCreate").len(), 3);
    let st = env.rs("web").status.unwrap();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.fully_labeled_replicas, Some(3));
    assert_eq!(st.ready_replicas, None);
    assert_eq!(st.observed_generation, Some(1));

    // One pod ready: scaling to one keeps it.
    let keep = pods[1].clone();
    env.run_pod(&keep, true);
    env.settle().await;
    let st = env.rs("web").status.unwrap();
    assert_eq!(
        (st.ready_replicas, st.available_replicas),
        (Some(1), Some(1))
    );
    let mut rs = env.rs("web");
    rs.spec.as_mut().unwrap().replicas = Some(1);
    env.cluster.replace(&rs).await.unwrap();
    env.settle().await;
    let pods = env.pods();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].metadata.name, keep.metadata.name);
    assert_eq!(env.events("SuccessfulDelete").len(), 2);
    let rs = env.rs("web");
    let st = rs.status.unwrap();
    assert_eq!(st.replicas, 1);
    assert_eq!(st.observed_generation, rs.metadata.generation);
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let env = Env::new();
    let orphan: Pod = obj(json!({
        "metadata": {"name": "stray", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }));
    env.cluster.put(&orphan);
    let other: Pod = obj(json!({
        "metadata": {"name": "theirs", "namespace": "ns", "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "other", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }));
    env.cluster.put(&other);
    let rs = env.cluster.put(&replica_set("web", 2));
    env.settle().await;
    let pods = env.pods();
    let mine = owned_by(&pods, &rs);
    assert_eq!(mine.len(), 2, "adopted the orphan and made one");
    assert!(
        mine.iter()
            .any(|p| p.metadata.name.as_deref() == Some("stray"))
    );
    let theirs = env.cluster.get::<Pod>(Some("ns"), "theirs").unwrap();
    assert_eq!(controller_of(&theirs.metadata).unwrap().uid, "other");
    // A partly labeled adoptee is counted, not fully labeled.
    assert_eq!(
        env.rs("web").status.unwrap().fully_labeled_replicas,
        Some(1)
    );

    // Relabeled: released, and replaced.
    let _: Pod = env
        .cluster
        .patch(
            Some("ns"),
            "stray",
            &json!({"metadata": {"labels": {"app": "other"}}}),
        )
        .await
        .unwrap();
    env.settle().await;
    let stray = env.cluster.get::<Pod>(Some("ns"), "stray").unwrap();
    assert!(controller_of(&stray.metadata).is_none(), "released");
    assert_eq!(owned_by(&env.pods(), &rs).len(), 2);
}

#[tokio::test]
async fn a_lagging_cache_never_causes_double_creation() {
    let cluster = Arc::new(FakeCluster::new());
    let mut informers = Informers::fake(&cluster);
    // Pods reach this controller's cache only when the test feeds them.
    let (pods, feed) = Informer::<Pod>::manual();
    informers.pods = pods;
    let env = Env::on(cluster.clone(), informers);
    cluster.put(&replica_set("web", 3));
    let k = key("web");
    env.rsc.reconcile(&k).await.unwrap();
    assert_eq!(cluster.list::<Pod>().len(), 3);
    // A burst of wake-ups before the cache shows the pods: nothing more is created.
    for _ in 0..5 {
        env.rsc.reconcile(&k).await.unwrap();
    }
    assert_eq!(cluster.list::<Pod>().len(), 3);
    assert_eq!(env.events("SuccessfulCreate").len(), 3);
    for p in cluster.list::<Pod>() {
        feed.apply(p);
    }
    env.rsc.reconcile(&k).await.unwrap();
    env.rsc.reconcile(&k).await.unwrap();
    assert_eq!(cluster.list::<Pod>().len(), 3);
    assert_eq!(
        cluster
            .get::<ReplicaSet>(Some("ns"), "web")
            .unwrap()
            .status
            .unwrap()
            .replicas,
        3
    );

    // Deletions likewise: the deleted pods still in the cache are not deleted twice, nor
    // replaced by others.
    let mut rs: ReplicaSet = cluster.get(Some("ns"), "web").unwrap();
    rs.spec.as_mut().unwrap().replicas = Some(1);
    cluster.replace(&rs).await.unwrap();
    env.rsc.reconcile(&k).await.unwrap();
    env.rsc.reconcile(&k).await.unwrap();
    assert_eq!(cluster.list::<Pod>().len(), 1);
    assert_eq!(env.events("SuccessfulDelete").len(), 2);
    assert!(
        !env.rsc
            .expectations()
            .satisfied(&k, &env.ctx.informers.pods)
    );
}

#[tokio::test]
async fn pods_become_available_after_min_ready_seconds() {
    let env = Env::new();
    let mut rs = replica_set("web", 1);
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(30);
    env.cluster.put(&rs);
    env.settle().await;
    env.ready_all();
    let r = env.rsc.reconcile(&key("web")).await.unwrap();
    assert_eq!(r, Requeue::After(std::time::Duration::from_secs(31)));
    let st = env.rs("web").status.unwrap();
    assert_eq!((st.ready_replicas, st.available_replicas), (Some(1), None));
    env.time.advance(std::time::Duration::from_secs(31));
    assert_eq!(env.rsc.reconcile(&key("web")).await.unwrap(), Requeue::Done);
    assert_eq!(env.rs("web").status.unwrap().available_replicas, Some(1));
}

/// A cluster whose pod creations fail after a number of successes.
struct Quota {
    inner: FakeCluster,
    creates_left: AtomicUsize,
}

impl Cluster for Quota {
    async fn create<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        if K::kind(&()) == "Pod" {
            let left = self.creates_left.load(Ordering::SeqCst);
            if left == 0 {
                return Err(ClusterError {
                    verb: "create",
                    kind: "Pod".into(),
                    name: String::new(),
                    code: 403,
                    reason: "Forbidden".into(),
                    message: "pods \"web-\" is forbidden: exceeded quota: pods".into(),
                });
            }
            self.creates_left.store(left - 1, Ordering::SeqCst);
        }
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
        self.inner.bind(ns, name, uid, node).await
    }
    fn record(&self, event: ObjectEvent) {
        self.inner.record(event);
    }
}

#[tokio::test]
async fn creation_slow_starts_and_reports_failure() {
    let cluster = Arc::new(Quota {
        inner: FakeCluster::new(),
        creates_left: AtomicUsize::new(3),
    });
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster.inner),
        settings: Settings::default(),
    };
    let rsc = ReplicaSetController::new(&ctx, WallClock::system());
    cluster.inner.put(&replica_set("web", 10));
    let k = key("web");
    // Batches of 1 and 2 succeed; the batch of 4 fails whole, and nothing more is tried.
    assert!(rsc.reconcile(&k).await.is_err());
    assert_eq!(cluster.inner.list::<Pod>().len(), 3);
    let failed: Vec<_> = cluster
        .inner
        .events()
        .into_iter()
        .filter(|e| e.reason == "FailedCreate")
        .collect();
    assert_eq!(failed.len(), 4);
    assert_eq!(failed[0].type_, "Warning");
    assert!(
        failed[0]
            .message
            .starts_with("Error creating: pods \"web-\" is forbidden")
    );
    assert_eq!(failed[0].component, COMPONENT);
    let rs: ReplicaSet = cluster.inner.get(Some("ns"), "web").unwrap();
    let cond = &rs.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_deref()
        ),
        ("ReplicaFailure", "True", Some("FailedCreate"))
    );

    // Quota raised: the rest is made, the condition cleared.
    cluster.creates_left.store(100, Ordering::SeqCst);
    rsc.reconcile(&k).await.unwrap();
    rsc.reconcile(&k).await.unwrap();
    assert_eq!(cluster.inner.list::<Pod>().len(), 10);
    let rs: ReplicaSet = cluster.inner.get(Some("ns"), "web").unwrap();
    assert!(rs.status.unwrap().conditions.is_none());
}
