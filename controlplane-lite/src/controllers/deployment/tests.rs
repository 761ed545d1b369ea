#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::util::{self, DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION, REVISION_HISTORY};
use crate::controllers::apps_fixtures::{Env, deployment};
use crate::controllers::controller_ref::controller_of;
use crate::controllers::pod_util;
use crate::controllers::runtime::{Cluster, ObjectKey, Reconciler, Requeue};

fn ann<'a>(rs: &'a ReplicaSet, k: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(k))
        .map(String::as_str)
}

fn cond(s: &DeploymentStatus, t: &str) -> (String, String) {
    let c = util::condition(s, t).unwrap_or_else(|| panic!("no {t} condition in {s:?}"));
    (c.status.clone(), c.reason.clone().unwrap_or_default())
}

fn image_of(rs: &ReplicaSet) -> String {
    util::rs_template(rs).spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

async fn set_image(env: &Env, name: &str, image: &str) {
    let _: Deployment = env
        .cluster
        .patch(
            Some("ns"),
            name,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
        )
        .await
        .unwrap();
}

async fn scale(env: &Env, name: &str, replicas: i32) {
    let _: Deployment = env
        .cluster
        .patch(Some("ns"), name, &json!({"spec": {"replicas": replicas}}))
        .await
        .unwrap();
}

/// Settles, making pods ready `batch` at a time, until the Deployment is complete;
/// `check` sees the cluster after every reconcile.
async fn roll_out(env: &Env, name: &str, batch: usize, mut check: impl FnMut(&Env)) {
    for _ in 0..500 {
        env.settle_checked(&mut check).await;
        let d = env.deployment(name);
        if util::complete(&d, d.status.as_ref().unwrap())
            && env.pods().len() == util::replicas(&d) as usize
        {
            return;
        }
        env.ready_some(batch);
        check(env);
    }
    panic!("rollout of {name} never completed");
}

#[tokio::test]
async fn a_new_deployment_gets_a_replica_set_and_becomes_available() {
    let env = Env::new();
    let mut d = deployment("web", 3, "nginx:1");
    d.metadata.annotations = Some([("kubernetes.io/change-cause".into(), "first".into())].into());
    let d = env.cluster.put(&d);
    roll_out(&env, "web", 3, |_| {}).await;

    let rss = env.rss();
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs.metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()[HASH_LABEL],
        hash
    );
    assert_eq!(
        util::rs_template(rs).metadata.unwrap().labels.unwrap()[HASH_LABEL],
        hash
    );
    assert_eq!(
        controller_of(&rs.metadata).unwrap().uid,
        d.metadata.uid.clone().unwrap()
    );
    assert_eq!(ann(rs, REVISION), Some("1"));
    assert_eq!(ann(rs, DESIRED_REPLICAS), Some("3"));
    assert_eq!(ann(rs, MAX_REPLICAS), Some("4"));
    assert_eq!(ann(rs, "kubernetes.io/change-cause"), Some("first"));
    for p in env.pods() {
        assert_eq!(p.metadata.labels.unwrap()[HASH_LABEL], hash);
    }

    let d = env.deployment("web");
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    let s = d.status.clone().unwrap();
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), None)
    );
    assert_eq!(
        cond(&s, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    assert_eq!(
        cond(&s, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
    let scaled = env.events("ScalingReplicaSet");
    assert_eq!(
        scaled,
        [format!("Scaled up replica set web-{hash} from 0 to 3")]
    );
    let ev = env
        .cluster
        .events()
        .into_iter()
        .find(|e| e.reason == "ScalingReplicaSet")
        .unwrap();
    assert_eq!(
        (ev.kind.as_str(), ev.component),
        ("Deployment", super::COMPONENT)
    );
}

/// Pods that count against the surge: not deleted, not finished.
fn active_pods(env: &Env) -> Vec<Pod> {
    env.pods().into_iter().filter(pod_util::is_active).collect()
}

#[tokio::test]
async fn a_rolling_update_stays_within_surge_and_unavailability() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 10, "nginx:1"));
    roll_out(&env, "web", 10, |_| {}).await;
    set_image(&env, "web", "nginx:2").await;
    // maxSurge 25% of 10 → 3 (up), maxUnavailable 25% → 2 (down).
    let (max_total, min_available) = (13, 8);
    let mut max_seen = 0;
    let mut steps = 0;
    roll_out(&env, "web", 1, |env| {
        let pods = active_pods(env);
        let total: i32 = env.rss().iter().map(util::rs_replicas).sum();
        let ready = pods.iter().filter(|p| pod_util::is_ready(p)).count();
        assert!(total <= max_total, "ReplicaSets sum to {total}");
        assert!(pods.len() <= max_total as usize, "{} pods", pods.len());
        assert!(ready >= min_available, "only {ready} available");
        max_seen = max_seen.max(pods.len());
        steps += 1;
    })
    .await;
    assert_eq!(max_seen, 13, "the surge was used");
    assert!(steps > 10);

    let rss = env.rss();
    assert_eq!(rss.len(), 2);
    let (old, new) = (&rss[0], &rss[1]);
    assert_eq!(
        (image_of(old), util::rs_replicas(old)),
        ("nginx:1".into(), 0)
    );
    assert_eq!(
        (image_of(new), util::rs_replicas(new)),
        ("nginx:2".into(), 10)
    );
    assert_eq!(
        (ann(old, REVISION), ann(new, REVISION)),
        (Some("1"), Some("2"))
    );
    let d = env.deployment("web");
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    let s = d.status.unwrap();
    assert_eq!(
        (s.updated_replicas, s.available_replicas),
        (Some(10), Some(10))
    );
    assert_eq!(
        cond(&s, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
    let new_name = new.metadata.name.clone().unwrap();
    assert!(
        env.events("ScalingReplicaSet")
            .contains(&format!("Scaled up replica set {new_name} from 0 to 3"))
    );
}

#[tokio::test]
async fn max_unavailable_zero_waits_for_each_new_pod() {
    let env = Env::new();
    let mut d = deployment("web", 4, "v1");
    d.spec.as_mut().unwrap().strategy = Some(
        serde_json::from_value(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        )
        .unwrap(),
    );
    env.cluster.put(&d);
    roll_out(&env, "web", 4, |_| {}).await;
    set_image(&env, "web", "v2").await;
    roll_out(&env, "web", 1, |env| {
        let pods = active_pods(env);
        assert!(pods.len() <= 5);
        assert!(pods.iter().filter(|p| pod_util::is_ready(p)).count() >= 4);
    })
    .await;
}

#[tokio::test]
async fn recreate_removes_every_old_pod_before_the_new_set() {
    let env = Env::new();
    let mut d = deployment("db", 3, "pg:1");
    d.spec.as_mut().unwrap().strategy =
        Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    env.cluster.put(&d);
    roll_out(&env, "db", 3, |_| {}).await;
    set_image(&env, "db", "pg:2").await;
    roll_out(&env, "db", 3, |env| {
        let images: std::collections::HashSet<String> = active_pods(env)
            .iter()
            .map(|p| {
                p.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap()
            })
            .collect();
        assert!(images.len() <= 1, "old and new side by side: {images:?}");
    })
    .await;
    let rss = env.rss();
    assert_eq!(rss.len(), 2);
    assert_eq!(
        (util::rs_replicas(&rss[0]), util::rs_replicas(&rss[1])),
        (0, 3)
    );
    assert_eq!(image_of(&rss[1]), "pg:2");
}

#[tokio::test]
async fn rollback_reuses_the_old_replica_set_under_a_new_revision() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 2, "v1"));
    roll_out(&env, "web", 2, |_| {}).await;
    set_image(&env, "web", "v2").await;
    roll_out(&env, "web", 2, |_| {}).await;
    // What `kubectl rollout undo` does: put revision 1's template back.
    let v1 = env
        .rss()
        .into_iter()
        .find(|r| ann(r, REVISION) == Some("1"))
        .unwrap();
    let mut template = util::rs_template(&v1);
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove(HASH_LABEL);
    let _: Deployment = env
        .cluster
        .patch(Some("ns"), "web", &json!({"spec": {"template": template}}))
        .await
        .unwrap();
    roll_out(&env, "web", 2, |_| {}).await;
    let rss = env.rss();
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let back = env.rs(v1.metadata.name.as_deref().unwrap());
    assert_eq!(util::rs_replicas(&back), 2);
    assert_eq!(ann(&back, REVISION), Some("3"));
    assert_eq!(ann(&back, REVISION_HISTORY), Some("1"));
    assert_eq!(
        env.deployment("web").metadata.annotations.unwrap()[REVISION],
        "3"
    );
    for p in active_pods(&env) {
        assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("v1"));
    }
}

#[tokio::test]
async fn a_paused_deployment_scales_but_does_not_roll_out() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 2, "v1"));
    roll_out(&env, "web", 2, |_| {}).await;
    let _: Deployment = env
        .cluster
        .patch(Some("ns"), "web", &json!({"spec": {"paused": true}}))
        .await
        .unwrap();
    set_image(&env, "web", "v2").await;
    scale(&env, "web", 4).await;
    env.settle().await;
    env.ready_all();
    env.settle().await;
    let rss = env.rss();
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(util::rs_replicas(&rss[0]), 4, "scaling still works");
    let d = env.deployment("web");
    let s = d.status.unwrap();
    assert_eq!(
        cond(&s, "Progressing"),
        ("Unknown".into(), "DeploymentPaused".into())
    );
    assert_eq!(s.observed_generation, d.metadata.generation);

    let _: Deployment = env
        .cluster
        .patch(Some("ns"), "web", &json!({"spec": {"paused": false}}))
        .await
        .unwrap();
    roll_out(&env, "web", 4, |_| {}).await;
    let rss = env.rss();
    assert_eq!(rss.len(), 2);
    assert_eq!(image_of(&rss[1]), "v2");
    assert_eq!(util::rs_replicas(&rss[1]), 4);
}

#[tokio::test]
async fn a_resize_mid_rollout_is_spread_in_proportion() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 10, "v1"));
    roll_out(&env, "web", 10, |_| {}).await;
    set_image(&env, "web", "v2").await;
    env.settle().await;
    // The new set surged by 3, the old one gave up the 2 that may be unavailable, and the
    // new one took those too: 13 in all (10 + 3 surge).
    let sizes: Vec<i32> = env.rss().iter().map(util::rs_replicas).collect();
    assert_eq!(sizes, [8, 5]);
    scale(&env, "web", 20).await;
    env.settle().await;
    let rss = env.rss();
    let sizes: Vec<i32> = rss.iter().map(util::rs_replicas).collect();
    // 20 + 5 surge = 25 spread 8:5 → round(8 * 25/13) = 15 and round(5 * 25/13) = 10.
    assert_eq!(sizes, [15, 10]);
    for rs in &rss {
        assert_eq!(ann(rs, DESIRED_REPLICAS), Some("20"));
        assert_eq!(ann(rs, MAX_REPLICAS), Some("25"));
    }
    roll_out(&env, "web", 5, |_| {}).await;
    assert_eq!(util::rs_replicas(&env.rss()[1]), 20);
}

#[tokio::test]
async fn old_revisions_beyond_the_limit_are_deleted() {
    let env = Env::new();
    let mut d = deployment("web", 1, "v1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    env.cluster.put(&d);
    roll_out(&env, "web", 1, |_| {}).await;
    for v in ["v2", "v3", "v4"] {
        set_image(&env, "web", v).await;
        roll_out(&env, "web", 1, |_| {}).await;
    }
    let rss = env.rss();
    let revs: Vec<Option<&str>> = rss.iter().map(|r| ann(r, REVISION)).collect();
    assert_eq!(revs, [Some("3"), Some("4")]);
}

#[tokio::test]
async fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let env = Env::new();
    let mut d = deployment("web", 2, "v1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    env.cluster.put(&d);
    env.settle().await;
    // Pods were made (updatedReplicas grew), then nothing.
    let s = env.deployment("web").status.unwrap();
    assert_eq!(
        cond(&s, "Progressing"),
        ("True".into(), "ReplicaSetUpdated".into())
    );
    assert_eq!(
        cond(&s, "Available"),
        ("False".into(), "MinimumReplicasUnavailable".into())
    );
    // Nothing moves: the controller asks to look again once the deadline passes.
    let r = env
        .dc
        .reconcile(&ObjectKey::new(Some("ns"), "web"))
        .await
        .unwrap();
    assert_eq!(r, Requeue::After(std::time::Duration::from_secs(11)));
    env.time.advance(std::time::Duration::from_secs(11));
    env.settle().await;
    let s = env.deployment("web").status.unwrap();
    assert_eq!(
        cond(&s, "Progressing"),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    let c = util::condition(&s, "Progressing").unwrap();
    let rs = &env.rss()[0];
    assert_eq!(
        c.message.as_deref(),
        Some(
            format!(
                "ReplicaSet {:?} has timed out progressing.",
                rs.metadata.name.as_deref().unwrap()
            )
            .as_str()
        )
    );
    // Progress again afterwards is reported.
    env.ready_all();
    env.settle().await;
    let s = env.deployment("web").status.unwrap();
    assert_eq!(
        cond(&s, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
}

#[tokio::test]
async fn orphaned_replica_sets_are_adopted_and_scaled() {
    let env = Env::new();
    // A ReplicaSet left by a Deployment deleted with --cascade=orphan.
    env.cluster.put(&deployment("web", 2, "v1"));
    roll_out(&env, "web", 2, |_| {}).await;
    let rs = env.rss().remove(0);
    env.cluster.remove::<Deployment>(Some("ns"), "web");
    let mut orphan = rs.clone();
    orphan.metadata.owner_references = None;
    env.cluster.put(&orphan);
    let d = env.cluster.put(&deployment("web", 3, "v1"));
    roll_out(&env, "web", 3, |_| {}).await;
    let rss = env.rss();
    assert_eq!(rss.len(), 1, "adopted, not replaced");
    assert_eq!(
        controller_of(&rss[0].metadata).unwrap().uid,
        d.metadata.uid.unwrap()
    );
    assert_eq!(util::rs_replicas(&rss[0]), 3);
}

#[tokio::test]
async fn scaling_to_zero_and_back() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 3, "v1"));
    roll_out(&env, "web", 3, |_| {}).await;
    scale(&env, "web", 0).await;
    env.settle().await;
    assert!(env.pods().is_empty());
    let s = env.deployment("web").status.unwrap();
    assert_eq!((s.replicas, s.available_replicas), (None, None));
    scale(&env, "web", 2).await;
    roll_out(&env, "web", 2, |_| {}).await;
    assert_eq!(env.pods().len(), 2);
    let msgs = env.events("ScalingReplicaSet");
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("Scaled down replica set") && m.ends_with("from 3 to 0")),
        "{msgs:?}"
    );
}

#[tokio::test]
async fn a_stale_replica_set_status_never_lets_availability_drop() {
    let env = Env::new();
    env.cluster.put(&deployment("web", 10, "v1"));
    roll_out(&env, "web", 10, |_| {}).await;
    set_image(&env, "web", "v2").await;
    let key = ObjectKey::new(Some("ns"), "web");
    for _ in 0..200 {
        // The Deployment controller runs again and again before the ReplicaSet controller
        // has reported the effect of its last step.
        for _ in 0..3 {
            let _ = env.dc.reconcile(&key).await;
        }
        for rs in env.rss() {
            let _ = env.rsc.reconcile(&ObjectKey::of(&rs)).await;
        }
        let ready = active_pods(&env)
            .iter()
            .filter(|p| pod_util::is_ready(p))
            .count();
        assert!(ready >= 8, "only {ready} available");
        assert!(active_pods(&env).len() <= 13);
        let d = env.deployment("web");
        if util::complete(&d, d.status.as_ref().unwrap()) && env.pods().len() == 10 {
            return;
        }
        env.ready_some(1);
    }
    panic!("rollout never completed");
}
