//! The CronJob controller: starts a Job at each schedule time, as kube-controller-manager's
//! does.
//!
//! Jobs are named `<cronjob>-<scheduled time in minutes since the epoch>`, so a time is
//! never run twice even if the status write after the create is lost, and carry the
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation. Only the most recent missed
//! time is started (more than 100 misses are reported as `TooManyMissedTimes`), not one
//! older than `startingDeadlineSeconds`; `concurrencyPolicy` decides what happens while an
//! earlier Job still runs; finished Jobs beyond the history limits are deleted.

pub mod schedule;
pub mod timing;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use tokio::task::JoinHandle;

use self::schedule::{Schedule, load_zone};
use self::timing::Missed;
use crate::controllers::clock::{Clock, SystemClock};
use crate::controllers::context::Ctx;
use crate::controllers::job::conditions;
use crate::controllers::runtime::{
    Cluster, ClusterError, Delete, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler,
    Requeue, WorkQueue, controller_owner, itself, run, watch,
};

pub const COMPONENT: &str = "cronjob-controller";
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// A Job just created may take this long to show in the cache.
const CREATED_GRACE: Duration = Duration::from_secs(300);

pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    start_with(ctx, Arc::new(SystemClock), TimeZone::system())
}

/// [`start`] with a given clock and the zone of schedules without one.
pub fn start_with<C: Cluster>(
    ctx: &Ctx<C>,
    clock: Arc<dyn Clock>,
    zone: TimeZone,
) -> Vec<JoinHandle<()>> {
    let c = Arc::new(CronJobController::new(ctx, clock, zone));
    let q = WorkQueue::new();
    vec![
        watch(&ctx.informers.cron_jobs, q.clone(), itself),
        watch(&ctx.informers.jobs, q.clone(), |ch| {
            controller_owner(ch, "CronJob")
        }),
        run(c, q, ctx.settings.workers),
    ]
}

pub struct CronJobController<C> {
    cluster: Arc<C>,
    cron_jobs: Informer<CronJob>,
    jobs: Informer<Job>,
    clock: Arc<dyn Clock>,
    /// The zone of schedules that name none (the controller's own).
    zone: TimeZone,
    /// CronJobs as last written, while the cache is behind them.
    written: Mutex<HashMap<ObjectKey, CronJob>>,
    /// Jobs created (namespace, name), until the cache shows them.
    created: Mutex<HashMap<(String, String), Instant>>,
}

fn rv(cj: &CronJob) -> Option<u64> {
    cj.metadata.resource_version.as_deref()?.parse().ok()
}

fn name_of(j: &Job) -> &str {
    j.metadata.name.as_deref().unwrap_or("")
}

/// The name of the Job for a schedule time.
pub fn job_name(cj: &CronJob, at: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        at.as_second().div_euclid(60)
    )
}

fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or(&[])
}

fn remove_active(cj: &mut CronJob, uid: &str) {
    if let Some(s) = cj.status.as_mut() {
        if let Some(list) = s.active.as_mut() {
            list.retain(|r| r.uid.as_deref() != Some(uid));
        }
        if s.active.as_ref().is_some_and(Vec::is_empty) {
            s.active = None;
        }
    }
}

fn finished_as(j: &Job) -> Option<&'static str> {
    if conditions::is_true(j, conditions::COMPLETE) {
        Some(conditions::COMPLETE)
    } else if conditions::is_true(j, conditions::FAILED) {
        Some(conditions::FAILED)
    } else {
        None
    }
}

impl<C: Cluster> CronJobController<C> {
    pub fn new(ctx: &Ctx<C>, clock: Arc<dyn Clock>, zone: TimeZone) -> Self {
        CronJobController {
            cluster: ctx.cluster.clone(),
            cron_jobs: ctx.informers.cron_jobs.clone(),
            jobs: ctx.informers.jobs.clone(),
            clock,
            zone,
            written: Mutex::new(HashMap::new()),
            created: Mutex::new(HashMap::new()),
        }
    }

    fn event(&self, cj: &CronJob, warning: bool, reason: &str, message: impl Into<String>) {
        let ev = if warning {
            ObjectEvent::warning(cj, reason, message)
        } else {
            ObjectEvent::normal(cj, reason, message)
        };
        self.cluster.record(ev.from(COMPONENT));
    }

    /// The CronJob from the cache, or as last written when the cache is behind.
    fn current(&self, key: &ObjectKey) -> Option<CronJob> {
        let cached = self.cron_jobs.get(key.namespace.as_deref(), &key.name);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let Some(cached) = cached else {
            written.remove(key);
            return None;
        };
        match written.get(key) {
            Some(w)
                if w.metadata.uid == cached.metadata.uid
                    && matches!((rv(w), rv(&cached)), (Some(a), Some(b)) if a > b) =>
            {
                Some(w.clone())
            }
            _ => {
                written.remove(key);
                Some((*cached).clone())
            }
        }
    }

    /// The Jobs this CronJob controls.
    fn jobs_of(&self, cj: &CronJob) -> Vec<Job> {
        let uid = cj.metadata.uid.as_deref().unwrap_or("");
        self.jobs
            .list()
            .into_iter()
            .filter(|j| j.metadata.namespace == cj.metadata.namespace)
            .filter(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .map(|j| (*j).clone())
            .collect()
    }

    /// Whether a Job this controller created is still on its way to the cache.
    fn recently_created(&self, ns: &str, name: &str) -> bool {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        created.retain(|(n, j), at| {
            at.elapsed() < CREATED_GRACE && self.jobs.get(Some(n), j).is_none()
        });
        created.contains_key(&(ns.to_string(), name.to_string()))
    }

    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let how = Delete {
            uid: job.metadata.uid.clone(),
            propagation: Some("Background"),
            grace_period_seconds: None,
        };
        match self
            .cluster
            .delete::<Job>(job.metadata.namespace.as_deref(), name_of(job), &how)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                self.event(
                    cj,
                    true,
                    "FailedDelete",
                    format!("Deleted job: {}", e.message),
                );
                return false;
            }
        }
        remove_active(cj, job.metadata.uid.as_deref().unwrap_or(""));
        self.event(
            cj,
            false,
            "SuccessfulDelete",
            format!("Deleted job {}", name_of(job)),
        );
        true
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn clean_history(&self, cj: &mut CronJob, jobs: &[Job]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        let mut changed = false;
        for (kind, limit) in [
            (conditions::COMPLETE, spec.successful_jobs_history_limit),
            (conditions::FAILED, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Job> = jobs
                .iter()
                .filter(|j| finished_as(j) == Some(kind))
                .collect();
            let extra = done.len().saturating_sub(limit.max(0) as usize);
            if extra == 0 {
                continue;
            }
            // Oldest start first (never started last), then by name.
            done.sort_by(|a, b| {
                let start = |j: &Job| {
                    j.status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .map(|t| t.0)
                };
                match (start(a), start(b)) {
                    (Some(x), Some(y)) => x.cmp(&y).then_with(|| name_of(a).cmp(name_of(b))),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => name_of(a).cmp(name_of(b)),
                }
            });
            for j in done.into_iter().take(extra) {
                if self.delete_job(cj, j).await {
                    changed = true;
                }
            }
        }
        changed
    }

    /// Brings the active list up to date and starts the Job of a due schedule time.
    /// Returns when to look again and whether the status changed.
    async fn sync(
        &self,
        cj: &mut CronJob,
        jobs: &[Job],
    ) -> Result<(Option<Duration>, bool), ClusterError> {
        let now = self.clock.now();
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let mut changed = false;
        for j in jobs {
            let uid = j.metadata.uid.as_deref().unwrap_or("");
            let listed = active(cj).iter().any(|r| r.uid.as_deref() == Some(uid));
            let finished = finished_as(j);
            if !listed && finished.is_none() {
                self.event(
                    cj,
                    true,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        name_of(j)
                    ),
                );
            } else if listed && let Some(cond) = finished {
                remove_active(cj, uid);
                self.event(
                    cj,
                    false,
                    "SawCompletedJob",
                    format!("Saw completed job: {}, condition: {cond}", name_of(j)),
                );
                changed = true;
            }
            if finished == Some(conditions::COMPLETE)
                && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.as_ref())
            {
                let status = cj.status.get_or_insert_with(Default::default);
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < done.0)
                {
                    status.last_successful_time = Some(done.clone());
                    changed = true;
                }
            }
        }
        // Active Jobs that are gone.
        for r in active(cj).to_vec() {
            let uid = r.uid.as_deref().unwrap_or("");
            let name = r.name.as_deref().unwrap_or("");
            if jobs.iter().any(|j| j.metadata.uid.as_deref() == Some(uid))
                || self.recently_created(&ns, name)
            {
                continue;
            }
            if self.jobs.get(Some(&ns), name).is_none() {
                self.event(
                    cj,
                    false,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                );
                remove_active(cj, uid);
                changed = true;
            }
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok((None, changed));
        }
        let zone = match spec.time_zone.as_deref() {
            Some(tz) => match load_zone(tz) {
                Ok(z) => z,
                Err(e) => {
                    self.event(
                        cj,
                        true,
                        "UnknownTimeZone",
                        format!("invalid timeZone: {tz:?}: {e}"),
                    );
                    return Ok((None, changed));
                }
            },
            None => self.zone.clone(),
        };
        if spec.suspend == Some(true) {
            return Ok((None, changed));
        }
        if spec.schedule.contains("TZ") {
            self.event(
                cj,
                true,
                "UnsupportedSchedule",
                format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                    spec.schedule
                ),
            );
        }
        let sched = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.event(
                    cj,
                    true,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok((None, changed));
            }
        };
        let next = |cj: &CronJob| timing::until_next(cj, now, &sched, &zone);
        let recent = match timing::most_recent(cj, now, &sched, &zone, true) {
            Ok(r) => r,
            Err(e) => {
                self.event(
                    cj,
                    true,
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return Ok((None, changed));
            }
        };
        let Some(scheduled) = recent.most_recent.filter(|t| *t <= now) else {
            return Ok((next(cj), changed));
        };
        if recent.missed == Missed::Many {
            self.event(
                cj,
                true,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            );
        }
        if let Some(sds) = spec.starting_deadline_seconds
            && scheduled
                .checked_add(jiff::SignedDuration::from_secs(sds))
                .is_ok_and(|late| late < now)
        {
            self.event(
                cj,
                true,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    timing::rfc1123z(scheduled)
                ),
            );
            return Ok((next(cj), changed));
        }
        let name = job_name(cj, scheduled);
        let last = cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0);
        if active(cj)
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            || last == Some(scheduled)
        {
            return Ok((next(cj), changed));
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !active(cj).is_empty() {
            self.event(
                cj,
                false,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            );
            return Ok((next(cj), changed));
        }
        if policy == "Replace" {
            for r in active(cj).to_vec() {
                let Some(j) = self.jobs.get(Some(&ns), r.name.as_deref().unwrap_or("")) else {
                    continue;
                };
                if !self.delete_job(cj, &j).await {
                    return Err(ClusterError {
                        verb: "replace",
                        kind: "Job".into(),
                        name: name_of(&j).to_string(),
                        code: 0,
                        reason: String::new(),
                        message: format!("could not replace job {ns}/{}", name_of(&j)),
                    });
                }
                changed = true;
            }
        }
        let job = job_from_template(cj, &name, scheduled, &zone);
        let made = match self.cluster.create(&job).await {
            Ok(made) => {
                self.event(cj, false, "SuccessfulCreate", format!("Created job {name}"));
                self.created
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((ns.clone(), name.clone()), Instant::now());
                made
            }
            Err(e) if e.is_already_exists() => {
                // Made by an earlier pass whose status write was lost, or by someone else.
                let Some(existing) = self.jobs.get(Some(&ns), &name) else {
                    return Err(e);
                };
                let ours = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| {
                        o.controller == Some(true)
                            && o.uid.as_str() == cj.metadata.uid.as_deref().unwrap_or("")
                    });
                let uid = existing.metadata.uid.as_deref();
                if !ours || active(cj).iter().any(|r| r.uid.as_deref() == uid) {
                    return Ok((None, changed));
                }
                (*existing).clone()
            }
            Err(e) => {
                self.event(
                    cj,
                    true,
                    "FailedCreate",
                    format!("Error creating job: {}", e.message),
                );
                return Err(e);
            }
        };
        let status = cj.status.get_or_insert_with(Default::default);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(ObjectReference {
                api_version: Some("batch/v1".into()),
                kind: Some("Job".into()),
                name: made.metadata.name.clone(),
                namespace: made.metadata.namespace.clone(),
                uid: made.metadata.uid.clone(),
                resource_version: made.metadata.resource_version.clone(),
                field_path: None,
            });
        status.last_schedule_time = Some(Time(scheduled));
        Ok((next(cj), true))
    }
}

/// The Job for a schedule time: the template's metadata and spec, the schedule time
/// annotation, and the CronJob as controller.
pub fn job_from_template(cj: &CronJob, name: &str, at: Timestamp, zone: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), timing::rfc3339_in(at, zone));
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj.metadata.name.clone().unwrap_or_default(),
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

impl<C: Cluster> Reconciler for CronJobController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(mut cj) = self.current(key) else {
            return Ok(Requeue::Done);
        };
        let jobs = self.jobs_of(&cj);
        let cleaned = self.clean_history(&mut cj, &jobs).await;
        let (after, changed) = match self.sync(&mut cj, &jobs).await {
            Ok(r) => r,
            Err(e) => {
                if cleaned {
                    self.write(key, &cj).await?;
                }
                return Err(e.into());
            }
        };
        if cleaned || changed {
            self.write(key, &cj).await?;
        }
        Ok(after.map_or(Requeue::Done, Requeue::After))
    }
}

impl<C: Cluster> CronJobController<C> {
    async fn write(&self, key: &ObjectKey, cj: &CronJob) -> Result<(), ClusterError> {
        let written = self.cluster.replace_status(cj).await?;
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), written);
        Ok(())
    }
}
