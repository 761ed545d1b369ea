#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::controllers::clock::ManualClock;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

const T0: &str = "2025-06-01T12:00:00Z";

struct World {
    cluster: Arc<FakeCluster>,
    jobs: JobController<FakeCluster>,
    ttl: TtlController<FakeCluster>,
    clock: ManualClock,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    let clock = ManualClock::new(T0.parse().unwrap());
    let jobs = JobController::new(&ctx, Arc::new(clock.clone()), JobSettings::default());
    let ttl = TtlController {
        cluster: cluster.clone(),
        jobs: ctx.informers.jobs.clone(),
        clock: Arc::new(clock.clone()),
    };
    World {
        cluster,
        jobs,
        ttl,
        clock,
    }
}

/// A Job as the API server stores it: generated selector and labels.
fn job(name: &str, spec: Value) -> Job {
    let uid = format!("uid-{name}");
    let labels = json!({CONTROLLER_UID: uid, JOB_NAME: name, LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name});
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {CONTROLLER_UID: uid}});
    spec["template"] = json!({"metadata": {"labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}});
    for (k, v) in [("parallelism", json!(1)), ("backoffLimit", json!(6))] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    if spec.get("completions").is_none() {
        spec["completions"] = json!(1);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "labels": labels},
        "spec": spec,
    }))
    .unwrap()
}

impl World {
    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey::new(Some("ns"), name)
    }

    /// Reconciles until nothing changes (at most a few passes).
    async fn settle(&self, name: &str) -> Requeue {
        let mut last = Requeue::Done;
        for _ in 0..8 {
            let before = self.cluster.writes().len();
            last = self.jobs.reconcile(&self.key(name)).await.unwrap();
            if self.cluster.writes().len() == before {
                break;
            }
        }
        last
    }

    fn job(&self, name: &str) -> Job {
        self.cluster.get::<Job>(Some("ns"), name).unwrap()
    }

    fn pods(&self) -> Vec<Pod> {
        let mut p = self.cluster.list::<Pod>();
        p.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        p
    }

    fn live_pods(&self) -> Vec<Pod> {
        self.pods().into_iter().filter(pods::active).collect()
    }

    /// The stand-in kubelet: the pod runs, Ready.
    fn run(&self, pod: &Pod) {
        let mut p = self
            .cluster
            .get::<Pod>(Some("ns"), pods::name(pod))
            .unwrap();
        let now = self.clock.now().to_string();
        p.status = Some(
            serde_json::from_value(json!({"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}))
            .unwrap(),
        );
        self.cluster.put(&p);
    }

    /// The stand-in kubelet: the pod's container ended with `code`.
    fn finish(&self, pod: &Pod, code: i32) {
        let mut p = self
            .cluster
            .get::<Pod>(Some("ns"), pods::name(pod))
            .unwrap();
        let now = self.clock.now().to_string();
        p.status = Some(serde_json::from_value(json!({
            "phase": if code == 0 { "Succeeded" } else { "Failed" },
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": now}}}],
        })).unwrap());
        self.cluster.put(&p);
    }

    /// The stand-in kubelet finishes a deletion (the pod stopped; the finalizer, if still
    /// there, keeps the object).
    fn stop_deleted(&self) {
        for p in self.pods() {
            if pods::deleting(&p) && !pods::terminal(&p) {
                let mut p = p.clone();
                let st = p.status.get_or_insert_with(Default::default);
                st.phase = Some("Failed".into());
                self.cluster.put(&p);
                if !pods::has_finalizer(&p) {
                    self.cluster.remove::<Pod>(Some("ns"), pods::name(&p));
                }
            }
        }
    }

    fn condition(&self, name: &str, ty: &str) -> Option<JobCondition> {
        conditions::find(&self.job(name), ty).cloned()
    }

    fn reasons(&self) -> Vec<String> {
        self.cluster
            .events()
            .into_iter()
            .map(|e| format!("{} {}", e.reason, e.message))
            .collect()
    }
}

fn status(j: &Job) -> k8s_openapi::api::batch::v1::JobStatus {
    j.status.clone().unwrap_or_default()
}

#[tokio::test]
async fn completions_with_parallelism() {
    let w = world();
    w.cluster
        .put(&job("work", json!({"completions": 5, "parallelism": 2})));
    w.settle("work").await;
    let pods = w.live_pods();
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert!(pods::has_finalizer(p));
        assert!(pods::name(p).starts_with("work-"));
        let labels = p.metadata.labels.clone().unwrap();
        assert_eq!(labels[JOB_NAME], "work");
        assert_eq!(labels[CONTROLLER_UID], "uid-work");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    }
    let st = status(&w.job("work"));
    assert_eq!(st.active, Some(2));
    assert_eq!(st.ready, Some(0));
    assert!(st.start_time.is_some());

    w.run(&pods[0]);
    w.settle("work").await;
    assert_eq!(status(&w.job("work")).ready, Some(1));

    // Pods succeed one after another; never more than two at once, never more than five.
    let mut created = 2;
    for _ in 0..10 {
        let live = w.live_pods();
        if live.is_empty() {
            break;
        }
        assert!(live.len() <= 2, "{}", live.len());
        w.finish(&live[0], 0);
        w.settle("work").await;
        created = w
            .cluster
            .writes()
            .iter()
            .filter(|x| x.starts_with("create Pod"))
            .count();
    }
    assert_eq!(created, 5);
    let j = w.job("work");
    let st = status(&j);
    assert_eq!(st.succeeded, Some(5));
    assert_eq!(st.failed, None);
    assert_eq!(st.active, None);
    assert!(st.completion_time.is_some());
    let scm = w
        .condition("work", conditions::SUCCESS_CRITERIA_MET)
        .unwrap();
    assert_eq!(scm.reason.as_deref(), Some("CompletionsReached"));
    let complete = w.condition("work", conditions::COMPLETE).unwrap();
    assert_eq!(complete.status, "True");
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    // Counted pods lose their finalizer; nothing is left uncounted.
    assert!(w.pods().iter().all(|p| !pods::has_finalizer(p)));
    let unc = st.uncounted_terminated_pods.unwrap_or_default();
    assert!(unc.succeeded.is_none() && unc.failed.is_none());
    assert!(w.reasons().iter().any(|r| r == "Completed Job completed"));
    assert_eq!(
        w.reasons()
            .iter()
            .filter(|r| r.starts_with("SuccessfulCreate Created pod: work-"))
            .count(),
        5
    );
    // A finished Job is left alone.
    let before = w.cluster.writes().len();
    w.settle("work").await;
    assert_eq!(w.cluster.writes().len(), before);
}

#[tokio::test]
async fn counts_are_exact_when_pods_vanish() {
    let w = world();
    w.cluster
        .put(&job("exact", json!({"completions": 2, "parallelism": 2})));
    w.settle("exact").await;
    let pods = w.live_pods();
    w.finish(&pods[0], 0);
    // The first pass records the pod as uncounted before releasing it.
    w.jobs.reconcile(&w.key("exact")).await.unwrap();
    let st = status(&w.job("exact"));
    assert_eq!(st.succeeded, Some(1));
    // Someone deletes the finished pod at once: it is still counted once.
    w.cluster.remove::<Pod>(Some("ns"), pods::name(&pods[0]));
    w.settle("exact").await;
    assert_eq!(status(&w.job("exact")).succeeded, Some(1));
    assert_eq!(w.live_pods().len(), 1);
}

#[tokio::test]
async fn no_completions_means_done_at_first_success() {
    let w = world();
    let mut j = job("any", json!({"parallelism": 3}));
    j.spec.as_mut().unwrap().completions = None;
    w.cluster.put(&j);
    w.settle("any").await;
    let live = w.live_pods();
    assert_eq!(live.len(), 3);
    w.finish(&live[1], 0);
    w.settle("any").await;
    // The others keep running; the Job completes when they are done.
    assert_eq!(w.live_pods().len(), 2);
    assert!(w.condition("any", conditions::COMPLETE).is_none());
    for p in w.live_pods() {
        w.finish(&p, 0);
    }
    w.settle("any").await;
    assert!(w.condition("any", conditions::COMPLETE).is_some());
    assert_eq!(status(&w.job("any")).succeeded, Some(3));
}

#[tokio::test]
async fn indexed_jobs_give_each_pod_an_index() {
    let w = world();
    w.cluster.put(&job(
        "idx",
        json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}),
    ));
    w.settle("idx").await;
    let live = w.live_pods();
    assert_eq!(live.len(), 2);
    let mut seen = Vec::new();
    for p in &live {
        let ix = pods::completion_index(p).unwrap();
        seen.push(ix);
        assert!(pods::name(p).starts_with(&format!("idx-{ix}-")));
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX],
            ix.to_string()
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{ix}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        let e = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .unwrap();
        assert_eq!(
            e.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
    }
    seen.sort();
    assert_eq!(seen, [0, 1]);

    // Index 0 fails: it is retried with the same index, after the back-off.
    let by_ix = |ix: i32| {
        w.live_pods()
            .into_iter()
            .find(|p| pods::completion_index(p) == Some(ix))
            .unwrap()
    };
    let live_indexes = || {
        let mut l: Vec<i32> = w
            .live_pods()
            .iter()
            .filter_map(pods::completion_index)
            .collect();
        l.sort();
        l
    };
    w.finish(&by_ix(0), 1);
    let again = w.settle("idx").await;
    assert_eq!(status(&w.job("idx")).failed, Some(1));
    assert_eq!(live_indexes(), [1]);
    assert!(matches!(again, Requeue::After(d) if d <= Duration::from_secs(10)));
    w.clock.advance(Duration::from_secs(11));
    w.settle("idx").await;
    assert_eq!(live_indexes(), [0, 1]);
    // Index 1 succeeds; the lowest pending index (2) starts.
    w.finish(&by_ix(1), 0);
    w.settle("idx").await;
    let st = status(&w.job("idx"));
    assert_eq!(st.completed_indexes.as_deref(), Some("1"));
    assert_eq!(st.succeeded, Some(1));
    assert_eq!(live_indexes(), [0, 2]);
    w.finish(&by_ix(0), 0);
    w.finish(&by_ix(2), 0);
    w.settle("idx").await;
    w.finish(&by_ix(3), 0);
    w.settle("idx").await;
    let st = status(&w.job("idx"));
    assert_eq!(st.completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(st.succeeded, Some(4));
    assert!(w.condition("idx", conditions::COMPLETE).is_some());
}

#[tokio::test]
async fn failures_back_off_then_exceed_the_limit() {
    let w = world();
    w.cluster.put(&job("flaky", json!({"backoffLimit": 2})));
    w.settle("flaky").await;
    let mut delays = Vec::new();
    for attempt in 0..3 {
        let live = w.live_pods();
        assert_eq!(live.len(), 1, "attempt {attempt}");
        w.finish(&live[0], 1);
        match w.settle("flaky").await {
            Requeue::After(d) => {
                delays.push(d);
                // Not replaced before the back-off.
                assert!(w.live_pods().is_empty());
                w.clock.advance(d);
                w.settle("flaky").await;
            }
            Requeue::Done => break,
        }
    }
    assert_eq!(
        delays,
        [Duration::from_secs(10), Duration::from_secs(20)],
        "{delays:?}"
    );
    let st = status(&w.job("flaky"));
    assert_eq!(st.failed, Some(3));
    let target = w.condition("flaky", conditions::FAILURE_TARGET).unwrap();
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    let failed = w.condition("flaky", conditions::FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert!(w.condition("flaky", conditions::COMPLETE).is_none());
    assert!(
        w.reasons()
            .iter()
            .any(|r| r == "BackoffLimitExceeded Job has reached the specified backoff limit")
    );
}

#[tokio::test]
async fn active_deadline_stops_the_job() {
    let w = world();
    w.cluster.put(&job(
        "slow",
        json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 30}),
    ));
    let first = w.settle("slow").await;
    assert_eq!(first, Requeue::After(Duration::from_secs(30)));
    for p in w.live_pods() {
        w.run(&p);
    }
    w.clock.advance(Duration::from_secs(31));
    w.settle("slow").await;
    // The pods are deleted; the Job fails once they are gone.
    assert!(w.live_pods().is_empty());
    let target = w.condition("slow", conditions::FAILURE_TARGET).unwrap();
    assert_eq!(target.reason.as_deref(), Some("DeadlineExceeded"));
    w.stop_deleted();
    w.settle("slow").await;
    let failed = w.condition("slow", conditions::FAILED).unwrap();
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    let st = status(&w.job("slow"));
    assert_eq!(st.failed, Some(2));
    assert_eq!(st.terminating, Some(0));
    assert!(w.pods().is_empty(), "{:?}", w.pods());
}

#[tokio::test]
async fn suspend_and_resume() {
    let w = world();
    w.cluster
        .put(&job("nap", json!({"parallelism": 2, "completions": 2})));
    w.settle("nap").await;
    assert_eq!(w.live_pods().len(), 2);
    let mut j = w.job("nap");
    j.spec.as_mut().unwrap().suspend = Some(true);
    w.cluster.put(&j);
    w.settle("nap").await;
    assert!(w.live_pods().is_empty());
    let c = w.condition("nap", conditions::SUSPENDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("True", Some("JobSuspended"))
    );
    // Suspension deletes without counting failures.
    w.stop_deleted();
    w.settle("nap").await;
    assert_eq!(status(&w.job("nap")).failed, None);
    let mut j = w.job("nap");
    j.spec.as_mut().unwrap().suspend = Some(false);
    w.clock.advance(Duration::from_secs(5));
    w.cluster.put(&j);
    w.settle("nap").await;
    assert_eq!(w.live_pods().len(), 2);
    let c = w.condition("nap", conditions::SUSPENDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    let start = status(&w.job("nap")).start_time.unwrap().0;
    assert_eq!(start, w.clock.now());
    let r = w.reasons();
    assert!(r.contains(&"Suspended Job suspended".to_string()));
    assert!(r.contains(&"Resumed Job resumed".to_string()));
}

#[tokio::test]
async fn a_job_created_suspended_does_not_start() {
    let w = world();
    w.cluster.put(&job("later", json!({"suspend": true})));
    w.settle("later").await;
    assert!(w.pods().is_empty());
    assert!(status(&w.job("later")).start_time.is_none());
}

#[tokio::test]
async fn pod_failure_policy_fails_or_ignores() {
    let w = world();
    w.cluster.put(&job(
        "pfp",
        json!({"completions": 1, "backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
        ]}}),
    ));
    w.settle("pfp").await;
    // An ignored failure is replaced without counting.
    w.finish(&w.live_pods()[0], 3);
    w.settle("pfp").await;
    assert_eq!(status(&w.job("pfp")).failed, None);
    assert!(w.condition("pfp", conditions::FAILED).is_none());
    w.clock.advance(Duration::from_secs(10));
    w.settle("pfp").await;
    assert_eq!(w.live_pods().len(), 1);
    // A FailJob rule ends the Job, whatever the back-off limit.
    w.finish(&w.live_pods()[0], 42);
    w.settle("pfp").await;
    let failed = w.condition("pfp", conditions::FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    let msg = failed.message.unwrap();
    assert!(msg.starts_with("Container c for pod ns/pfp-"), "{msg}");
    assert!(
        msg.ends_with("failed with exit code 42 matching FailJob rule at index 1"),
        "{msg}"
    );
    assert_eq!(status(&w.job("pfp")).failed, Some(1));
}

#[tokio::test]
async fn ttl_after_finished_deletes_the_job() {
    let w = world();
    w.cluster
        .put(&job("brief", json!({"ttlSecondsAfterFinished": 60})));
    w.settle("brief").await;
    w.finish(&w.live_pods()[0], 0);
    w.settle("brief").await;
    assert!(w.condition("brief", conditions::COMPLETE).is_some());
    let key = w.key("brief");
    assert_eq!(
        w.ttl.reconcile(&key).await.unwrap(),
        Requeue::After(Duration::from_secs(60))
    );
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(w.ttl.reconcile(&key).await.unwrap(), Requeue::Done);
    assert!(
        w.cluster
            .writes()
            .contains(&"delete Job ns/brief".to_string())
    );
}

#[tokio::test]
async fn orphans_lose_the_finalizer() {
    let w = world();
    w.cluster.put(&job("gone", json!({})));
    w.settle("gone").await;
    let pod = w.live_pods()[0].clone();
    w.cluster.remove::<Job>(Some("ns"), "gone");
    let orphans = Orphans(Arc::new(JobController::new(
        &Ctx {
            cluster: w.cluster.clone(),
            informers: Informers::fake(&w.cluster),
            settings: Settings::default(),
        },
        Arc::new(w.clock.clone()),
        JobSettings::default(),
    )));
    orphans.reconcile(&ObjectKey::of(&pod)).await.unwrap();
    let p = w.cluster.get::<Pod>(Some("ns"), pods::name(&pod)).unwrap();
    assert!(!pods::has_finalizer(&p));
}

#[tokio::test]
async fn a_stale_cache_never_hides_a_written_status() {
    let w = world();
    w.cluster.put(&job("fresh", json!({})));
    let key = w.key("fresh");
    let cached = w.job("fresh");
    let mut written = cached.clone();
    written.metadata.resource_version = Some("999999".into());
    written.status = Some(serde_json::from_value(json!({"succeeded": 1})).unwrap());
    w.jobs
        .memory(&key, "uid-fresh", |m| m.written = Some(written));
    let current = w.jobs.current(&key).unwrap();
    assert_eq!(status(&current).succeeded, Some(1));
    // Once the cache is newer, it wins again.
    w.jobs.memory(&key, "uid-fresh", |m| {
        m.written.as_mut().unwrap().metadata.resource_version = Some("1".into())
    });
    assert_eq!(status(&w.jobs.current(&key).unwrap()).succeeded, None);
    let now: Timestamp = w.clock.now();
    assert_eq!(now, T0.parse::<Timestamp>().unwrap());
}
