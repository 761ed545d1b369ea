//! Test fixtures for the ReplicaSet and Deployment controllers: both reconcilers on one
//! [`FakeCluster`] with a manual clock, driven a step at a time, and a hand-played kubelet
//! that schedules pods and makes them ready when a test says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::{ManualClock, WallClock};
use super::context::{Ctx, Informers, Settings};
use super::deployment::DeploymentController;
use super::pod_util;
use super::replica_set::ReplicaSetController;
use super::runtime::{FakeCluster, ObjectKey, Reconciler};

pub struct Env {
    pub cluster: Arc<FakeCluster>,
    pub ctx: Ctx<FakeCluster>,
    pub rsc: ReplicaSetController<FakeCluster>,
    pub dc: DeploymentController<FakeCluster>,
    pub clock: WallClock,
    pub time: ManualClock,
}

impl Env {
    pub fn new() -> Env {
        let cluster = Arc::new(FakeCluster::new());
        Self::on(cluster.clone(), Informers::fake(&cluster))
    }

    pub fn on(cluster: Arc<FakeCluster>, informers: Informers) -> Env {
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let (clock, time) = WallClock::manual(start);
        let ctx = Ctx {
            cluster: cluster.clone(),
            informers,
            settings: Settings::default(),
        };
        Env {
            rsc: ReplicaSetController::new(&ctx, clock.clone()),
            dc: DeploymentController::new(&ctx, clock.clone()),
            cluster,
            ctx,
            clock,
            time,
        }
    }

    /// One pass of every controller over every object; returns whether anything was written.
    pub async fn step(&self, check: &mut dyn FnMut(&Env)) -> bool {
        let before = self.cluster.writes().len();
        for d in self.cluster.list::<Deployment>() {
            let key = ObjectKey::of(&d);
            let _ = self.dc.reconcile(&key).await;
            check(self);
        }
        for rs in self.cluster.list::<ReplicaSet>() {
            let key = ObjectKey::of(&rs);
            let _ = self.rsc.reconcile(&key).await;
            check(self);
        }
        self.cluster.writes().len() != before
    }

    /// Reconciles until nothing changes, calling `check` after every reconcile.
    pub async fn settle_checked(&self, mut check: impl FnMut(&Env)) {
        for _ in 0..200 {
            if !self.step(&mut check).await {
                return;
            }
        }
        panic!(
            "controllers never settled: {:?}",
            self.cluster
                .writes()
                .iter()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
        );
    }

    pub async fn settle(&self) {
        self.settle_checked(|_| {}).await;
    }

    pub fn pods(&self) -> Vec<Pod> {
        self.cluster.list::<Pod>()
    }

    pub fn rss(&self) -> Vec<ReplicaSet> {
        let mut v = self.cluster.list::<ReplicaSet>();
        v.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
        v
    }

    pub fn deployment(&self, name: &str) -> Deployment {
        self.cluster.get(Some("ns"), name).expect("deployment")
    }

    pub fn rs(&self, name: &str) -> ReplicaSet {
        self.cluster.get(Some("ns"), name).expect("replicaset")
    }

    /// Binds the pod to a node and marks it Running and Ready now (or only Running).
    pub fn run_pod(&self, pod: &Pod, ready: bool) {
        let mut p = pod.clone();
        let now = self.clock.now().to_string();
        p.spec.as_mut().unwrap().node_name = Some("node-1".into());
        p.status = Some(
            serde_json::from_value(json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": now}],
            }))
            .unwrap(),
        );
        self.cluster.put(&p);
    }

    /// Makes up to `n` pods that are not ready yet ready; returns how many.
    pub fn ready_some(&self, n: usize) -> usize {
        let mut done = 0;
        let mut pods = self.pods();
        pods.sort_by_key(|p| p.metadata.name.clone());
        for p in pods {
            if done == n {
                break;
            }
            if pod_util::is_active(&p) && !pod_util::is_ready(&p) {
                self.run_pod(&p, true);
                done += 1;
            }
        }
        done
    }

    pub fn ready_all(&self) -> usize {
        self.ready_some(usize::MAX)
    }

    pub fn events(&self, reason: &str) -> Vec<String> {
        self.cluster
            .events()
            .into_iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.message)
            .collect()
    }
}

pub fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A Deployment `name` in namespace `ns` with `replicas` of image `image`.
pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    obj(json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}], "restartPolicy": "Always"}},
        },
    }))
}

/// A ReplicaSet `name` selecting `app=<name>`.
pub fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    obj(json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "img"}]}},
        },
    }))
}
