//! Jobs and CronJobs on a real control plane with simulated nodes, driven by the real
//! kubectl: completions and parallelism, back-off to BackoffLimitExceeded, Indexed Jobs,
//! TTL after finishing, CronJobs firing and honouring Forbid, and the 422 of a bad
//! schedule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;
use sim::{Cluster, cluster};

fn job_yaml(name: &str, spec: &str, exit: &str, run_seconds: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    metadata:
      annotations:
        skiff.test/exit-code: "{exit}"
        skiff.test/run-seconds: "{run_seconds}"
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
"#
    )
}

fn active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completions_and_parallelism() {
    let c = cluster().await;
    c.apply(&job_yaml(
        "work",
        "  completions: 5\n  parallelism: 2",
        "0",
        "1",
    ));
    // Never more than two pods at once.
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let most = most.clone();
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        tokio::spawn(async move {
            loop {
                if let Ok(list) = pods
                    .list(&ListParams::default().labels("batch.kubernetes.io/job-name=work"))
                    .await
                {
                    let n = list.items.iter().filter(|p| active(p)).count();
                    most.fetch_max(n, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/work",
        "--timeout=90s",
    ]);
    watcher.abort();
    let job = c.json(&["get", "job", "work"]);
    assert_eq!(job["status"]["succeeded"], 5, "{job}");
    assert!(job["status"]["completionTime"].is_string());
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        job["metadata"]["uid"]
    );
    assert_eq!(job["metadata"]["labels"]["job-name"], "work");
    let conds: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(conds, ["SuccessCriteriaMet", "Complete"]);
    let pods = c.pods_of("work").await;
    assert_eq!(pods.len(), 5);
    assert!(pods.iter().all(|p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
            && p.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
    }));
    let most = most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} pods ran at once");
    let table = c.kubectl(&["get", "job", "work"]);
    assert!(table.contains("5/5"), "{table}");
    let events = c.events_of("work");
    assert!(
        events.iter().any(|e| e == "Completed Job completed"),
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("SuccessfulCreate Created pod: work-"))
            .count(),
        5,
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_pods_exceed_the_backoff_limit() {
    let c = cluster().await;
    c.apply(&job_yaml("flaky", "  backoffLimit: 1", "3", "0"));
    c.kubectl(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=90s",
    ]);
    let job = c.json(&["get", "job", "flaky"]);
    assert_eq!(job["status"]["failed"], 2, "{job}");
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    // The replacement waited out the back-off (10 s) after the first failure.
    let pods = c.pods_of("flaky").await;
    assert_eq!(pods.len(), 2);
    let mut started: Vec<jiff::Timestamp> = pods
        .iter()
        .map(|p| p.metadata.creation_timestamp.as_ref().unwrap().0)
        .collect();
    started.sort();
    let gap = started[1].duration_since(started[0]);
    assert!(gap.as_secs() >= 9, "replaced after {gap:?}");
    assert!(
        c.events_of("flaky")
            .iter()
            .any(|e| e == "BackoffLimitExceeded Job has reached the specified backoff limit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn indexed_jobs() {
    let c = cluster().await;
    c.apply(&job_yaml(
        "idx",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
        "0",
        "0.5",
    ));
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=90s",
    ]);
    let job = c.json(&["get", "job", "idx"]);
    assert_eq!(job["status"]["completedIndexes"], "0-2", "{job}");
    assert_eq!(job["status"]["succeeded"], 3);
    let mut seen: Vec<(String, String)> = c
        .pods_of("idx")
        .await
        .into_iter()
        .map(|p| {
            let ix =
                p.metadata.annotations.unwrap()["batch.kubernetes.io/job-completion-index"].clone();
            let host = p.spec.unwrap().hostname.unwrap();
            (ix, host)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("0".to_string(), "idx-0".to_string()),
            ("1".to_string(), "idx-1".to_string()),
            ("2".to_string(), "idx-2".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_jobs_go_after_their_ttl() {
    let c = cluster().await;
    c.apply(&job_yaml("brief", "  ttlSecondsAfterFinished: 1", "0", "0"));
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    for _ in 0..300 {
        if jobs.get_opt("brief").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(jobs.get_opt("brief").await.unwrap().is_none());
    // Its pods went with it.
    for _ in 0..100 {
        if c.pods_of("brief").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.pods_of("brief").await.is_empty());
}

/// Pretends the CronJob last ran `ago` seconds back, so its next time is already due.
fn backdate(c: &Cluster, cronjob: &str, ago: i64) {
    let t = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(ago))
        .unwrap();
    let when = t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    c.kubectl(&[
        "patch",
        "cronjob",
        cronjob,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(r#"{{"status":{{"lastScheduleTime":"{when}"}}}}"#),
    ]);
}

fn jobs_of(c: &Cluster, cronjob: &str) -> Vec<Value> {
    c.json(&["get", "jobs"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            j["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|o| o["name"] == cronjob))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_jobs_fire_and_jobs_start_from_them() {
    let c = cluster().await;
    c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=* * * * *",
    ]);
    // Last run three minutes ago: the latest minute is due now.
    backdate(&c, "tick", 180);
    let job = c
        .eventually(20, "the scheduled job", || {
            jobs_of(&c, "tick").into_iter().next()
        })
        .await;
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let stamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let at: jiff::Timestamp = stamp.parse().unwrap();
    assert_eq!(at.as_second() % 60, 0);
    assert_eq!(name, format!("tick-{}", at.as_second() / 60));
    let cj = c
        .eventually(20, "the active list", || {
            let cj = c.json(&["get", "cronjob", "tick"]);
            cj["status"]["active"].is_array().then_some(cj)
        })
        .await;
    assert_eq!(cj["status"]["active"][0]["name"], name.as_str());
    assert!(cj["status"]["lastScheduleTime"].is_string());
    assert!(
        c.events_of("tick")
            .contains(&format!("SuccessfulCreate Created job {name}"))
    );
    // The job runs pods like any other.
    c.eventually(30, "a pod of the scheduled job", || {
        c.json(&["get", "pods", "-l", &format!("job-name={name}")])["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
    })
    .await;
    // kubectl create job --from=cronjob/ makes a Job from its template.
    c.kubectl(&["create", "job", "by-hand", "--from=cronjob/tick"]);
    let made = c.json(&["get", "job", "by-hand"]);
    assert_eq!(
        made["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    c.eventually(30, "a pod of the manual job", || {
        c.json(&["get", "pods", "-l", "job-name=by-hand"])["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbid_skips_while_the_last_job_runs() {
    let c = cluster().await;
    // The pods never end (no scripted exit).
    c.apply(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: solo
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
"#,
    );
    backdate(&c, "solo", 180);
    c.eventually(20, "the first job", || {
        jobs_of(&c, "solo").into_iter().next()
    })
    .await;
    // Wait for the next minute: it comes and goes without a second job.
    c.eventually(75, "JobAlreadyActive", || {
        c.events_of("solo")
            .into_iter()
            .find(|e| e.starts_with("JobAlreadyActive"))
    })
    .await;
    assert_eq!(
        c.events_of("solo")
            .into_iter()
            .find(|e| e.starts_with("JobAlreadyActive"))
            .unwrap(),
        "JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid"
    );
    assert_eq!(jobs_of(&c, "solo").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_schedules_and_zones_are_refused() {
    let c = cluster().await;
    let err = c.kubectl_err(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{err}"
    );
    let err = c.kubectl_err(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=every minute",
    ]);
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]"#),
        "{err}"
    );
    let cron = |schedule: &str, zone: &str| {
        format!(
            r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: mars
spec:
  schedule: "{schedule}"
  timeZone: {zone}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
"#
        )
    };
    let err = c.apply_err(&cron("@hourly", "Mars/Olympus"));
    assert!(
        err.contains(r#"The CronJob "mars" is invalid: spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#),
        "{err}"
    );
    let err = c.apply_err(&cron("@fortnightly", "Europe/Paris"));
    assert!(
        err.contains(
            r#"spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly"#
        ),
        "{err}"
    );
    // Both good: taken.
    c.apply(&cron("@hourly", "Europe/Paris"));
    let cj = c.json(&["get", "cronjob", "mars"]);
    assert_eq!(cj["spec"]["timeZone"], "Europe/Paris");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_jobs_are_refused() {
    let c = cluster().await;
    let err = c.apply_err(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: picky
spec:
  manualSelector: true
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: b}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
"#,
    );
    assert!(err.contains(r#"The Job "picky" is invalid"#), "{err}");
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value:")
            && err.contains("`selector` does not match template `labels`"),
        "{err}"
    );
    let err = c.apply_err(&job_yaml(
        "idx",
        "  parallelism: 2\n  completionMode: Indexed",
        "0",
        "0",
    ));
    assert!(
        err.contains("spec.completions: Required value: when completion mode is Indexed"),
        "{err}"
    );
    let err = c.apply_err(&job_yaml("neg", "  backoffLimit: -1", "0", "0"));
    assert!(
        err.contains("spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    // The template's restart policy must be Never or OnFailure.
    let err = c.apply_err(
        &job_yaml("always", "", "0", "0").replace("restartPolicy: Never", "restartPolicy: Always"),
    );
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always""#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_stop_at_their_deadline() {
    let c = cluster().await;
    // The pods would run for a minute; the Job may run for two seconds.
    c.apply(&job_yaml(
        "late",
        "  parallelism: 2\n  completions: 2\n  activeDeadlineSeconds: 2",
        "0",
        "60",
    ));
    c.kubectl(&[
        "wait",
        "--for=condition=failed",
        "job/late",
        "--timeout=30s",
    ]);
    let job = c.json(&["get", "job", "late"]);
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "DeadlineExceeded", "{job}");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    // Its running pods were stopped, and counted as failed.
    c.eventually(20, "the pods gone", || {
        let pods = c.json(&["get", "pods", "-l", "job-name=late"]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| {
                p["metadata"]["deletionTimestamp"].is_string()
                    || matches!(p["status"]["phase"].as_str(), Some("Failed" | "Succeeded"))
            })
            .then_some(())
    })
    .await;
    let job = c.json(&["get", "job", "late"]);
    assert_eq!(job["status"]["failed"], 2, "{job}");
    assert_eq!(job["status"]["active"].as_i64().unwrap_or(0), 0, "{job}");
    assert!(
        c.events_of("late")
            .iter()
            .any(|e| e == "DeadlineExceeded Job was active longer than specified deadline")
    );
}
