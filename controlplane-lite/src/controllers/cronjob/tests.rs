#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::{Value, json};

use super::*;
use crate::controllers::clock::ManualClock;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

/// The CronJob is created half a minute past noon.
const CREATED: &str = "2025-06-01T12:00:30Z";

struct World {
    cluster: Arc<FakeCluster>,
    c: CronJobController<FakeCluster>,
    clock: ManualClock,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    let clock = ManualClock::new(CREATED.parse().unwrap());
    let c = CronJobController::new(&ctx, Arc::new(clock.clone()), TimeZone::UTC);
    World { cluster, c, clock }
}

fn cron(name: &str, schedule: &str, extra: Value) -> CronJob {
    let mut spec = json!({
        "schedule": schedule, "concurrencyPolicy": "Allow", "suspend": false,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "creationTimestamp": CREATED},
        "spec": spec,
    }))
    .unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl World {
    async fn sync(&self, name: &str) -> Requeue {
        self.c
            .reconcile(&ObjectKey::new(Some("ns"), name))
            .await
            .unwrap()
    }

    fn cron(&self, name: &str) -> CronJob {
        self.cluster.get(Some("ns"), name).unwrap()
    }

    fn jobs(&self) -> Vec<Job> {
        let mut j = self.cluster.list::<Job>();
        j.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        j
    }

    fn job_names(&self) -> Vec<String> {
        self.jobs()
            .into_iter()
            .map(|j| j.metadata.name.unwrap())
            .collect()
    }

    fn active(&self, name: &str) -> Vec<String> {
        active(&self.cron(name))
            .iter()
            .map(|r| r.name.clone().unwrap())
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.cluster
            .events()
            .into_iter()
            .map(|e| format!("{} {}", e.reason, e.message))
            .collect()
    }

    /// The Job ends (as the Job controller would mark it).
    fn finish(&self, name: &str, ok: bool, when: &str) {
        let mut j: Job = self.cluster.get(Some("ns"), name).unwrap();
        let ty = if ok { "Complete" } else { "Failed" };
        j.status = Some(
            serde_json::from_value(json!({
                "startTime": when,
                "completionTime": if ok { json!(when) } else { Value::Null },
                "conditions": [{"type": ty, "status": "True", "lastTransitionTime": when}],
            }))
            .unwrap(),
        );
        self.cluster.put(&j);
    }
}

/// Minutes since the epoch of an RFC 3339 time, as Job names carry them.
fn minutes(s: &str) -> i64 {
    at(s).as_second() / 60
}

#[tokio::test]
async fn every_minute_starts_a_job_at_the_minute() {
    let w = world();
    w.cluster.put(&cron("tick", "* * * * *", json!({})));
    let r = w.sync("tick").await;
    assert!(w.jobs().is_empty());
    assert_eq!(r, Requeue::After(Duration::from_millis(30_100)));
    w.clock.set(at("2025-06-01T12:01:00.2Z"));
    let r = w.sync("tick").await;
    let name = format!("tick-{}", minutes("2025-06-01T12:01:00Z"));
    assert_eq!(w.job_names(), std::slice::from_ref(&name));
    let job = &w.jobs()[0];
    let ann = job.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[SCHEDULED_TIMESTAMP], "2025-06-01T12:01:00Z");
    assert_eq!(job.metadata.labels.as_ref().unwrap()["team"], "a");
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("CronJob", Some(true))
    );
    assert_eq!(w.active("tick"), std::slice::from_ref(&name));
    let st = w.cron("tick").status.unwrap();
    assert_eq!(st.last_schedule_time.unwrap().0, at("2025-06-01T12:01:00Z"));
    assert_eq!(r, Requeue::After(Duration::from_millis(59_900)));
    assert!(
        w.events()
            .contains(&format!("SuccessfulCreate Created job {name}"))
    );
    // The same minute is never started twice.
    w.sync("tick").await;
    assert_eq!(w.jobs().len(), 1);
    // Allow: the next minute starts another alongside.
    w.clock.set(at("2025-06-01T12:02:00.1Z"));
    w.sync("tick").await;
    assert_eq!(w.jobs().len(), 2);
    assert_eq!(w.active("tick").len(), 2);
}

#[tokio::test]
async fn completed_jobs_leave_the_active_list() {
    let w = world();
    w.cluster.put(&cron("tick", "* * * * *", json!({})));
    w.clock.set(at("2025-06-01T12:01:00.5Z"));
    w.sync("tick").await;
    let name = w.job_names()[0].clone();
    w.finish(&name, true, "2025-06-01T12:01:20Z");
    w.sync("tick").await;
    assert!(w.active("tick").is_empty());
    let st = w.cron("tick").status.unwrap();
    assert_eq!(
        st.last_successful_time.unwrap().0,
        at("2025-06-01T12:01:20Z")
    );
    assert!(w.events().contains(&format!(
        "SawCompletedJob Saw completed job: {name}, condition: Complete"
    )));
}

#[tokio::test]
async fn forbid_skips_while_a_job_runs() {
    let w = world();
    w.cluster.put(&cron(
        "solo",
        "* * * * *",
        json!({"concurrencyPolicy": "Forbid"}),
    ));
    w.clock.set(at("2025-06-01T12:01:00.5Z"));
    w.sync("solo").await;
    w.clock.set(at("2025-06-01T12:02:00.5Z"));
    w.sync("solo").await;
    assert_eq!(w.jobs().len(), 1);
    assert!(w.events().contains(
        &"JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid".to_string()
    ));
    // Once it is done, the next time runs.
    let first = w.job_names()[0].clone();
    w.finish(&first, true, "2025-06-01T12:02:10Z");
    w.clock.set(at("2025-06-01T12:03:00.5Z"));
    w.sync("solo").await;
    assert_eq!(w.jobs().len(), 2);
}

#[tokio::test]
async fn replace_deletes_the_running_job() {
    let w = world();
    w.cluster.put(&cron(
        "swap",
        "* * * * *",
        json!({"concurrencyPolicy": "Replace"}),
    ));
    w.clock.set(at("2025-06-01T12:01:00.5Z"));
    w.sync("swap").await;
    let first = w.job_names()[0].clone();
    w.clock.set(at("2025-06-01T12:02:00.5Z"));
    w.sync("swap").await;
    let names = w.job_names();
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], first);
    assert_eq!(w.active("swap"), names);
    assert!(
        w.events()
            .contains(&format!("SuccessfulDelete Deleted job {first}"))
    );
}

#[tokio::test]
async fn only_the_latest_missed_time_runs() {
    let w = world();
    w.cluster.put(&cron("late", "*/5 * * * *", json!({})));
    // Down for 22 minutes: 4 times missed, only 12:20 runs.
    w.clock.set(at("2025-06-01T12:22:00Z"));
    w.sync("late").await;
    assert_eq!(
        w.job_names(),
        [format!("late-{}", minutes("2025-06-01T12:20:00Z"))]
    );
    assert!(
        !w.events()
            .iter()
            .any(|e| e.starts_with("TooManyMissedTimes"))
    );
}

#[tokio::test]
async fn too_many_missed_times_are_reported() {
    let w = world();
    w.cluster.put(&cron("stale", "* * * * *", json!({})));
    // More than 100 minutes later.
    w.clock.set(at("2025-06-01T14:00:30Z"));
    w.sync("stale").await;
    assert!(w.events().contains(&"TooManyMissedTimes too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".to_string()));
    // As kube-controller-manager does, the most recent time still runs.
    assert_eq!(
        w.job_names(),
        [format!("stale-{}", minutes("2025-06-01T14:00:00Z"))]
    );
}

#[tokio::test]
async fn starting_deadline_skips_late_starts() {
    let w = world();
    w.cluster.put(&cron(
        "strict",
        "0 * * * *",
        json!({"startingDeadlineSeconds": 10}),
    ));
    // 13:00 was due, but it is 13:00:30: too late.
    w.clock.set(at("2025-06-01T13:00:30Z"));
    let r = w.sync("strict").await;
    assert!(w.jobs().is_empty());
    assert_eq!(r, Requeue::After(Duration::from_millis(3_570_100)));
    // Within the deadline, it runs.
    w.clock.set(at("2025-06-01T14:00:05Z"));
    w.sync("strict").await;
    assert_eq!(w.jobs().len(), 1);
}

#[tokio::test]
async fn starting_deadline_bounds_how_far_back_it_looks() {
    let w = world();
    let mut cj = cron(
        "window",
        "0 * * * *",
        json!({"startingDeadlineSeconds": 3600}),
    );
    cj.status =
        Some(serde_json::from_value(json!({"lastScheduleTime": "2025-06-01T09:00:00Z"})).unwrap());
    w.cluster.put(&cj);
    // 10:00, 11:00 and 12:00 were missed; 12:00 is within the hour: it runs, alone.
    w.clock.set(at("2025-06-01T12:30:00Z"));
    w.sync("window").await;
    assert_eq!(
        w.job_names(),
        [format!("window-{}", minutes("2025-06-01T12:00:00Z"))]
    );
    assert!(
        !w.events()
            .iter()
            .any(|e| e.starts_with("TooManyMissedTimes"))
    );
}

#[tokio::test]
async fn history_limits_remove_the_oldest() {
    let w = world();
    w.cluster.put(&cron(
        "hist",
        "* * * * *",
        json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}),
    ));
    for (i, ok) in [(1, true), (2, true), (3, false), (4, true)] {
        w.clock.set(at(&format!("2025-06-01T12:0{i}:00.5Z")));
        w.sync("hist").await;
        let name = format!("hist-{}", minutes(&format!("2025-06-01T12:0{i}:00Z")));
        w.finish(&name, ok, &format!("2025-06-01T12:0{i}:30Z"));
    }
    w.sync("hist").await;
    assert_eq!(
        w.job_names(),
        [format!("hist-{}", minutes("2025-06-01T12:04:00Z"))]
    );
    assert_eq!(
        w.events()
            .iter()
            .filter(|e| e.starts_with("SuccessfulDelete"))
            .count(),
        3
    );
}

#[tokio::test]
async fn time_zones_shift_the_schedule() {
    let w = world();
    w.cluster.put(&cron(
        "tokyo",
        "0 9 * * *",
        json!({"timeZone": "Asia/Tokyo"}),
    ));
    // 09:00 in Tokyo is 00:00 UTC.
    w.clock.set(at("2025-06-02T00:00:01Z"));
    w.sync("tokyo").await;
    let jobs = w.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2025-06-02T09:00:00+09:00"
    );
    assert_eq!(
        jobs[0].metadata.name.as_deref().unwrap(),
        format!("tokyo-{}", minutes("2025-06-02T00:00:00Z"))
    );
    // An unknown zone starts nothing and says why.
    let mut bad = cron("nowhere", "* * * * *", json!({"timeZone": "Nowhere/Atall"}));
    bad.metadata.uid = Some("uid-nowhere".into());
    w.cluster.put(&bad);
    w.sync("nowhere").await;
    assert!(
        w.events().contains(
            &"UnknownTimeZone invalid timeZone: \"Nowhere/Atall\": unknown time zone Nowhere/Atall"
                .to_string()
        )
    );
}

#[tokio::test]
async fn suspended_cron_jobs_do_nothing() {
    let w = world();
    w.cluster
        .put(&cron("nap", "* * * * *", json!({"suspend": true})));
    w.clock.set(at("2025-06-01T12:05:00Z"));
    assert_eq!(w.sync("nap").await, Requeue::Done);
    assert!(w.jobs().is_empty());
}

#[tokio::test]
async fn jobs_that_vanish_leave_the_list() {
    let w = world();
    w.cluster.put(&cron("gone", "* * * * *", json!({})));
    w.clock.set(at("2025-06-01T12:01:00.5Z"));
    w.sync("gone").await;
    let name = w.job_names()[0].clone();
    w.cluster.remove::<Job>(Some("ns"), &name);
    // Still inside the grace for jobs just created: kept.
    w.sync("gone").await;
    assert_eq!(w.active("gone"), std::slice::from_ref(&name));
    w.c.created.lock().unwrap().clear();
    w.sync("gone").await;
    assert!(w.active("gone").is_empty());
    assert!(
        w.events()
            .contains(&format!("MissingJob Active job went missing: {name}"))
    );
}

#[tokio::test]
async fn jobs_it_did_not_start_are_reported() {
    let w = world();
    let cj = w.cluster.put(&cron("manual", "@daily", json!({})));
    let mut j = job_from_template(&cj, "manual-by-hand", at(CREATED), &TimeZone::UTC);
    j.metadata.annotations = None;
    w.cluster.put(&j);
    w.sync("manual").await;
    assert!(
        w.events().contains(
            &"UnexpectedJob Saw a job that the controller did not create or forgot: manual-by-hand"
                .to_string()
        )
    );
}
