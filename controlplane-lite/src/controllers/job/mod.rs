//! The Job controller: runs a Job's pods until enough of them succeed (or it fails), as
//! kube-controller-manager's does.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer until the Job has counted
//! them: a finished pod is first listed in `status.uncountedTerminatedPods`, then its
//! finalizer is removed, then it moves to the `succeeded`/`failed` counters — so counts
//! stay exact even when pods are deleted right after finishing. Failed pods are replaced
//! after a back-off (10 s doubling to 6 min); `backoffLimit`, `activeDeadlineSeconds` and
//! `podFailurePolicy` end a Job as Failed, enough successes as Complete (each after an
//! interim `FailureTarget`/`SuccessCriteriaMet` condition). Indexed Jobs give each pod a
//! completion index (annotation, label, hostname `<job>-<index>`, `JOB_COMPLETION_INDEX`).
//! Finished Jobs with `ttlSecondsAfterFinished` are deleted by [`TtlController`].

mod backoff;
pub mod conditions;
mod failure_policy;
mod indexes;
mod pods;
mod template;
mod tracking;
mod ttl;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde_json::json;
use skiff_api::labels::Selector;
use tokio::task::JoinHandle;

pub use indexes::Intervals;
pub use pods::{COMPLETION_INDEX, TRACKING_FINALIZER};
pub use template::owner_ref;
use template::pod_from_template;
pub use ttl::TtlController;

use crate::controllers::clock::{self, Clock, SystemClock};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Change, Cluster, ClusterError, Delete, Informer, ObjectEvent, ObjectKey, ReconcileError,
    Reconciler, Requeue, WorkQueue, itself, run, watch,
};

pub const COMPONENT: &str = "job-controller";
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
const MANAGED_BY_US: &str = "kubernetes.io/job-controller";
/// Keeps `status.uncountedTerminatedPods` small; more are counted in the next pass.
const MAX_UNCOUNTED: usize = 500;
/// Pods created or deleted in one pass at most.
const MAX_POD_CHANGES: i32 = 500;
/// A pod created or deleted but never seen in the cache is given up on after this long.
const EXPECTATION_TTL: Duration = Duration::from_secs(300);
/// The first batch of a slow-start creation; each successful batch doubles it.
const SLOW_START: i32 = 1;

/// Tunables, with kube-controller-manager's values by default.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The delay before replacing the first failed pod; it doubles with each failure.
    pub pod_failure_backoff: Duration,
    pub max_pod_failure_backoff: Duration,
    pub workers: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(360),
            workers: 4,
        }
    }
}

/// Starts the Job controller, its orphan-pod cleaner and the TTL-after-finished
/// controller.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let settings = JobSettings {
        workers: ctx.settings.workers,
        ..JobSettings::default()
    };
    start_with(ctx, Arc::new(SystemClock), settings)
}

/// [`start`] with a given clock and settings.
pub fn start_with<C: Cluster>(
    ctx: &Ctx<C>,
    clock: Arc<dyn Clock>,
    settings: JobSettings,
) -> Vec<JoinHandle<()>> {
    let workers = settings.workers;
    let c = Arc::new(JobController::new(ctx, clock.clone(), settings));
    let jobs_q = WorkQueue::new();
    let orphans_q = WorkQueue::new();
    let ttl_q = WorkQueue::new();
    let jobs = ctx.informers.jobs.clone();
    let jobs2 = jobs.clone();
    let ttl = Arc::new(TtlController {
        cluster: ctx.cluster.clone(),
        jobs: jobs.clone(),
        clock,
    });
    vec![
        watch(&jobs, jobs_q.clone(), itself),
        watch(&ctx.informers.pods, jobs_q.clone(), move |ch| {
            jobs_of_pod(&jobs, ch)
        }),
        watch(&ctx.informers.pods, orphans_q.clone(), move |ch| {
            orphan(&jobs2, ch)
        }),
        watch(&ctx.informers.jobs, ttl_q.clone(), itself),
        run(c.clone(), jobs_q, workers),
        run(Arc::new(Orphans(c)), orphans_q, 1),
        run(ttl, ttl_q, 1),
    ]
}

/// The Job controlling the pod; for a pod without a controller, the Jobs that select it
/// (they may adopt it).
fn jobs_of_pod(jobs: &Informer<Job>, ch: &Change<Pod>) -> Vec<ObjectKey> {
    let pod = ch.obj.as_ref();
    let ns = pod.metadata.namespace.as_deref();
    let owners: Vec<ObjectKey> = controller_of(pod)
        .filter(|o| o.kind == "Job")
        .map(|o| ObjectKey::new(ns, &o.name))
        .into_iter()
        .collect();
    if !owners.is_empty() || controller_of(pod).is_some() || ch.deleted {
        return owners;
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    jobs.list()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == ns)
        .filter(|j| selector_of(j).is_some_and(|s| s.matches(&labels)))
        .map(|j| ObjectKey::of(j.as_ref()))
        .collect()
}

/// A pod holding the tracking finalizer for a Job that is gone or finished.
fn orphan(jobs: &Informer<Job>, ch: &Change<Pod>) -> Vec<ObjectKey> {
    let pod = ch.obj.as_ref();
    if ch.deleted || !pods::has_finalizer(pod) {
        return Vec::new();
    }
    if is_orphan(jobs, pod) {
        vec![ObjectKey::of(pod)]
    } else {
        Vec::new()
    }
}

fn is_orphan(jobs: &Informer<Job>, pod: &Pod) -> bool {
    match controller_of(pod) {
        None => true,
        Some(o) if o.kind != "Job" || o.api_version != "batch/v1" => false,
        Some(o) => match jobs.get(pod.metadata.namespace.as_deref(), &o.name) {
            Some(j) => {
                j.metadata.uid.as_deref() != Some(o.uid.as_str()) || conditions::finished(&j)
            }
            None => true,
        },
    }
}

fn controller_of(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

fn selector_of(job: &Job) -> Option<Selector> {
    let s = job.spec.as_ref()?.selector.as_ref()?;
    Selector::from_label_selector(s)
        .ok()
        .filter(|s| !s.is_empty())
}

/// What the controller remembers about one Job between passes.
#[derive(Default)]
struct Memory {
    uid: String,
    backoff: backoff::Record,
    /// Pods created (by name) that the cache has not shown yet.
    creating: HashMap<String, Instant>,
    /// Pods deleted (by uid) that the cache still shows alive.
    deleting: HashMap<String, Instant>,
    /// Pods (by uid) whose finalizer was removed, until the cache shows it.
    finalizer_removed: HashSet<String>,
    /// The Job as last written, while the cache has not caught up with it.
    written: Option<Job>,
}

/// The Job controller.
pub struct JobController<C> {
    cluster: Arc<C>,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    clock: Arc<dyn Clock>,
    settings: JobSettings,
    memory: Mutex<HashMap<ObjectKey, Memory>>,
}

/// Numeric resourceVersions (the store's revisions) compare; others never do.
fn newer(a: &Job, b: &Job) -> bool {
    let rv = |j: &Job| {
        j.metadata
            .resource_version
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
    };
    matches!((rv(a), rv(b)), (Some(x), Some(y)) if x > y)
}

/// One pass over one Job.
struct Pass {
    job: Job,
    spec: k8s_openapi::api::batch::v1::JobSpec,
    key: ObjectKey,
    indexed: bool,
    pods: Vec<Pod>,
    /// Indexes into `pods`.
    active: Vec<usize>,
    expected_rm: HashSet<String>,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    succeeded: i32,
    failed: i32,
    prev_succeeded_indexes: Intervals,
    succeeded_indexes: Intervals,
    finished: Option<JobCondition>,
    backoff: backoff::Record,
    n_active: i32,
    n_ready: i32,
    n_terminating: i32,
    requeue: Option<Duration>,
    now: Timestamp,
}

impl Pass {
    fn completions(&self) -> Option<i32> {
        self.spec.completions
    }

    fn suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }

    fn valid_index(&self, p: &Pod) -> bool {
        !self.indexed
            || pods::completion_index(p).is_some_and(|i| i < self.completions().unwrap_or(0))
    }

    fn requeue_after(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

/// Deleted pods count as failed unless only failed pods are replaced (then only their
/// phase says so).
fn pod_failed(p: &Pod, job: &Job) -> bool {
    if pods::phase(p) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pods::deleting(p) && !pods::succeeded(p)
}

fn only_replace_failed(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

impl<C: Cluster> JobController<C> {
    pub fn new(ctx: &Ctx<C>, clock: Arc<dyn Clock>, settings: JobSettings) -> Self {
        JobController {
            cluster: ctx.cluster.clone(),
            jobs: ctx.informers.jobs.clone(),
            pods: ctx.informers.pods.clone(),
            clock,
            settings,
            memory: Mutex::new(HashMap::new()),
        }
    }

    fn memory<T>(&self, key: &ObjectKey, uid: &str, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let m = all.entry(key.clone()).or_default();
        if m.uid != uid {
            *m = Memory {
                uid: uid.to_string(),
                ..Memory::default()
            };
        }
        f(m)
    }

    fn forget(&self, key: &ObjectKey) {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The Job from the cache, or as last written when the cache is behind.
    fn current(&self, key: &ObjectKey) -> Option<Job> {
        let cached = self.jobs.get(key.namespace.as_deref(), &key.name)?;
        let uid = cached.metadata.uid.clone().unwrap_or_default();
        let written = self.memory(key, &uid, |m| match &m.written {
            Some(w) if newer(w, &cached) => Some(w.clone()),
            _ => {
                m.written = None;
                None
            }
        });
        Some(written.unwrap_or_else(|| (*cached).clone()))
    }

    async fn write_status(&self, key: &ObjectKey, job: &Job) -> Result<Job, ClusterError> {
        let written = self.cluster.replace_status(job).await?;
        let uid = written.metadata.uid.clone().unwrap_or_default();
        self.memory(key, &uid, |m| m.written = Some(written.clone()));
        Ok(written)
    }

    fn event(&self, job: &Job, warning: bool, reason: &str, message: impl Into<String>) {
        let ev = if warning {
            ObjectEvent::warning(job, reason, message)
        } else {
            ObjectEvent::normal(job, reason, message)
        };
        self.cluster.record(ev.from(COMPONENT));
    }

    /// Whether every pod created or deleted earlier shows in the cache; prunes what does.
    fn expectations_met(&self, key: &ObjectKey, job: &Job, all: &[Pod]) -> bool {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let ns = job.metadata.namespace.as_deref();
        self.memory(key, &uid, |m| {
            let now = Instant::now();
            m.creating.retain(|name, at| {
                now.duration_since(*at) < EXPECTATION_TTL && self.pods.get(ns, name).is_none()
            });
            m.deleting.retain(|pod_uid, at| {
                now.duration_since(*at) < EXPECTATION_TTL
                    && all
                        .iter()
                        .any(|p| pods::uid(p) == pod_uid && !pods::deleting(p))
            });
            m.finalizer_removed.retain(|pod_uid| {
                all.iter()
                    .any(|p| pods::uid(p) == pod_uid && pods::has_finalizer(p))
            });
            m.creating.is_empty() && m.deleting.is_empty()
        })
    }

    /// The pods of the Job: those it controls, and orphans its selector matches (adopted).
    async fn claim_pods(&self, job: &Job) -> Result<Vec<Pod>, ReconcileError> {
        let ns = job.metadata.namespace.as_deref();
        let uid = job.metadata.uid.as_deref().unwrap_or("");
        let selector = selector_of(job);
        let mut out = Vec::new();
        for p in self.pods.list() {
            if p.metadata.namespace.as_deref() != ns {
                continue;
            }
            match controller_of(&p) {
                Some(o) if o.uid == uid => out.push((*p).clone()),
                Some(_) => {}
                None => {
                    let labels = p.metadata.labels.clone().unwrap_or_default();
                    if job.metadata.deletion_timestamp.is_some()
                        || !selector.as_ref().is_some_and(|s| s.matches(&labels))
                        || pods::terminal(&p)
                        || pods::deleting(&p)
                    {
                        continue;
                    }
                    if let Some(adopted) = self.adopt(job, &p).await? {
                        out.push(adopted);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn adopt(&self, job: &Job, pod: &Pod) -> Result<Option<Pod>, ReconcileError> {
        let mut owners = pod.metadata.owner_references.clone().unwrap_or_default();
        owners.push(owner_ref(job));
        let mut finalizers = pod.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
            finalizers.push(TRACKING_FINALIZER.to_string());
        }
        let patch = json!({"metadata": {
            "resourceVersion": pod.metadata.resource_version,
            "ownerReferences": owners,
            "finalizers": finalizers,
        }});
        match self
            .cluster
            .patch::<Pod>(pod.metadata.namespace.as_deref(), pods::name(pod), &patch)
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the tracking finalizer; a pod already gone counts as done.
    async fn remove_finalizer(&self, pod: &Pod) -> Result<(), ClusterError> {
        if !pods::has_finalizer(pod) {
            return Ok(());
        }
        let finalizers: Vec<&String> = pod
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != TRACKING_FINALIZER)
            .collect();
        let patch = json!({"metadata": {
            "resourceVersion": pod.metadata.resource_version,
            "finalizers": finalizers,
        }});
        match self
            .cluster
            .patch::<Pod>(pod.metadata.namespace.as_deref(), pods::name(pod), &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn reconcile_job(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(mut job) = self.current(key) else {
            self.forget(key);
            return Ok(Requeue::Done);
        };
        let spec = job.spec.clone().unwrap_or_default();
        if spec
            .managed_by
            .as_deref()
            .is_some_and(|m| m != MANAGED_BY_US)
        {
            return Ok(Requeue::Done);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        if conditions::finished(&job) {
            self.memory(key, &uid, |m| m.backoff = backoff::Record::default());
            // Pods the Job no longer counts must not keep its finalizer.
            for p in self.pods.list() {
                if controller_of(&p).is_some_and(|o| o.uid == uid) && pods::has_finalizer(&p) {
                    self.remove_finalizer(&p).await?;
                }
            }
            return Ok(Requeue::Done);
        }
        let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
        if mode != "NonIndexed" && mode != "Indexed" {
            self.event(
                &job,
                true,
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            );
            return Ok(Requeue::Done);
        }
        let now = self.clock.now();
        let status = job.status.get_or_insert_with(Default::default);
        let uncounted = status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default)
            .clone();
        let uncounted_succeeded: HashSet<String> = uncounted
            .succeeded
            .unwrap_or_default()
            .into_iter()
            .collect();
        let uncounted_failed: HashSet<String> =
            uncounted.failed.unwrap_or_default().into_iter().collect();

        let all_pods: Vec<Pod> = {
            let ns = job.metadata.namespace.as_deref();
            self.pods
                .list()
                .into_iter()
                .filter(|p| p.metadata.namespace.as_deref() == ns)
                .map(|p| (*p).clone())
                .collect()
        };
        let satisfied = self.expectations_met(key, &job, &all_pods);
        let pods = self.claim_pods(&job).await?;
        let expected_rm = self.memory(key, &uid, |m| m.finalizer_removed.clone());
        let active: Vec<usize> = (0..pods.len())
            .filter(|i| pods::active(&pods[*i]))
            .collect();
        let mut pass = Pass {
            indexed: mode == "Indexed",
            key: key.clone(),
            n_active: active.len() as i32,
            n_ready: active.iter().filter(|i| pods::ready(&pods[**i])).count() as i32,
            n_terminating: pods.iter().filter(|p| pods::terminating(p)).count() as i32,
            active,
            pods,
            expected_rm,
            uncounted_succeeded,
            uncounted_failed,
            succeeded: 0,
            failed: 0,
            prev_succeeded_indexes: Intervals::default(),
            succeeded_indexes: Intervals::default(),
            finished: None,
            backoff: backoff::Record::default(),
            requeue: None,
            now,
            spec: spec.clone(),
            job,
        };

        // Finished pods not yet counted anywhere.
        let countable = |p: &Pod| {
            pods::has_finalizer(p)
                && !pass.expected_rm.contains(pods::uid(p))
                && pass.valid_index(p)
        };
        let new_succeeded: Vec<&Pod> = pass
            .pods
            .iter()
            .filter(|p| countable(p) && !pass.uncounted_succeeded.contains(pods::uid(p)))
            .filter(|p| pods::succeeded(p))
            .collect();
        let new_failed: Vec<&Pod> = pass
            .pods
            .iter()
            .filter(|p| countable(p) && !pass.uncounted_failed.contains(pods::uid(p)))
            .filter(|p| pod_failed(p, &pass.job))
            .collect();
        let policy = spec.pod_failure_policy.as_ref();
        let counted_failures = new_failed
            .iter()
            .filter(|p| failure_policy::judge(policy, p).counts)
            .count() as i32;
        let st = pass.job.status.clone().unwrap_or_default();
        pass.succeeded = st.succeeded.unwrap_or(0)
            + new_succeeded.len() as i32
            + pass.uncounted_succeeded.len() as i32;
        pass.failed =
            st.failed.unwrap_or(0) + counted_failures + pass.uncounted_failed.len() as i32;
        let old_backoff = self.memory(key, &uid, |m| m.backoff);
        pass.backoff = old_backoff.after(&new_succeeded, &new_failed);

        if st.start_time.is_none()
            && !pass.suspended()
            && let Some(s) = pass.job.status.as_mut()
        {
            s.start_time = Some(Time(now));
        }

        // How the Job ends, if it does.
        if conditions::is_true(&pass.job, conditions::SUCCESS_CRITERIA_MET) {
            pass.finished = conditions::find(&pass.job, conditions::SUCCESS_CRITERIA_MET).cloned();
        } else if let Some(ft) =
            conditions::find(&pass.job, conditions::FAILURE_TARGET).filter(|c| c.status == "True")
        {
            pass.finished = Some(conditions::new(
                conditions::FAILED,
                true,
                conditions::reason(ft),
                conditions::message(ft),
                now,
            ));
        } else if let Some(msg) = pass
            .pods
            .iter()
            .filter(|p| pod_failed(p, &pass.job))
            .find_map(|p| failure_policy::judge(policy, p).fail_job)
        {
            pass.finished = Some(conditions::new(
                conditions::FAILURE_TARGET,
                true,
                conditions::POD_FAILURE_POLICY,
                &msg,
                now,
            ));
        }
        if pass.finished.is_none() {
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            if pass.failed > backoff_limit || past_backoff_limit_on_failure(&pass.job, &pass.pods) {
                pass.finished = Some(conditions::new(
                    conditions::FAILURE_TARGET,
                    true,
                    conditions::BACKOFF_LIMIT_EXCEEDED,
                    "Job has reached the specified backoff limit",
                    now,
                ));
            } else if let Some(left) = deadline_left(&pass.job, now) {
                if left.is_zero() {
                    pass.finished = Some(conditions::new(
                        conditions::FAILURE_TARGET,
                        true,
                        conditions::DEADLINE_EXCEEDED,
                        "Job was active longer than specified deadline",
                        now,
                    ));
                } else {
                    pass.requeue_after(left);
                }
            }
        }
        if pass.indexed {
            let completions = pass.completions().unwrap_or(0);
            let prev = Intervals::parse(st.completed_indexes.as_deref().unwrap_or(""), completions);
            let new: Vec<i32> = pass
                .pods
                .iter()
                .filter(|p| pods::succeeded(p) && pods::has_finalizer(p))
                .filter_map(pods::completion_index)
                .filter(|i| *i < completions)
                .collect();
            pass.succeeded_indexes = prev.with(new);
            pass.prev_succeeded_indexes = prev;
            pass.succeeded = pass.succeeded_indexes.total();
        }

        let mut manage_err = None;
        let mut suspend_changed = false;
        if pass.finished.is_some() {
            let (ready_gone, gone, err) = self.delete_pods(&pass, &pass.active, false).await;
            if gone != pass.n_active || !satisfied {
                // Not finished until every pod is gone and seen.
                pass.finished = None;
            }
            pass.n_active -= gone;
            pass.n_terminating += gone;
            pass.n_ready -= ready_gone;
            manage_err = err;
        } else {
            let mut managed = false;
            if satisfied && pass.job.metadata.deletion_timestamp.is_none() {
                manage_err = self.manage(&mut pass).await;
                managed = true;
            }
            let complete = match pass.completions() {
                None => pass.succeeded > 0 && pass.n_active == 0,
                Some(c) => pass.succeeded >= c && pass.n_active == 0,
            };
            if complete {
                pass.finished = Some(conditions::new(
                    conditions::SUCCESS_CRITERIA_MET,
                    true,
                    conditions::COMPLETIONS_REACHED,
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if managed {
                let suspended = pass.suspended();
                let status = pass.job.status.get_or_insert_with(Default::default);
                let list = status.conditions.get_or_insert_with(Vec::new);
                if suspended {
                    if conditions::ensure(
                        list,
                        conditions::SUSPENDED,
                        true,
                        "JobSuspended",
                        "Job suspended",
                        now,
                    ) {
                        suspend_changed = true;
                        self.event(&pass.job, false, "Suspended", "Job suspended");
                    }
                } else if conditions::ensure(
                    list,
                    conditions::SUSPENDED,
                    false,
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    suspend_changed = true;
                    // The deadline counts from the resumption.
                    if let Some(s) = pass.job.status.as_mut() {
                        s.start_time = Some(Time(now));
                    }
                    self.event(&pass.job, false, "Resumed", "Job resumed");
                }
                if pass
                    .job
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(Vec::is_empty)
                    && let Some(s) = pass.job.status.as_mut()
                {
                    s.conditions = None;
                }
            }
        }

        let needs_flush = suspend_changed
            || st.active.unwrap_or(0) != pass.n_active
            || st.ready != Some(pass.n_ready)
            || st.terminating != Some(pass.n_terminating);
        if let Some(s) = pass.job.status.as_mut() {
            s.active = Some(pass.n_active).filter(|n| *n != 0);
            s.ready = Some(pass.n_ready);
            s.terminating = Some(pass.n_terminating);
        }
        self.track(&mut pass, needs_flush).await?;
        if let Some(e) = manage_err {
            return Err(e.into());
        }
        Ok(pass.requeue.map_or(Requeue::Done, Requeue::After))
    }

    /// Creates or deletes pods towards the wanted number of active ones.
    async fn manage(&self, pass: &mut Pass) -> Option<ClusterError> {
        let parallelism = pass.spec.parallelism.unwrap_or(1);
        if pass.suspended() {
            let all = pass.active.clone();
            let (ready_gone, gone, err) = self.delete_pods(pass, &all, true).await;
            pass.n_active -= gone;
            pass.n_terminating += gone;
            pass.n_ready -= ready_gone;
            return err;
        }
        let want = match pass.completions() {
            None if pass.succeeded > 0 => pass.n_active,
            None => parallelism,
            Some(c) => (c - pass.succeeded).min(parallelism).max(0),
        };
        let surplus = (pass.n_active - want).max(0);
        let mut remove = self.pods_to_remove(pass, surplus as usize);
        remove.truncate(MAX_POD_CHANGES as usize);
        if !remove.is_empty() {
            let (ready_gone, gone, err) = self.delete_pods(pass, &remove, true).await;
            pass.n_active -= gone;
            pass.n_terminating += gone;
            pass.n_ready -= ready_gone;
            return err;
        }
        let terminating = if only_replace_failed(&pass.job) {
            pass.n_terminating
        } else {
            0
        };
        let mut missing = (want - terminating - pass.n_active).min(MAX_POD_CHANGES);
        if missing <= 0 {
            return None;
        }
        let wait = pass.backoff.remaining(
            pass.now,
            self.settings.pod_failure_backoff,
            self.settings.max_pod_failure_backoff,
        );
        if !wait.is_zero() {
            pass.requeue_after(wait.max(Duration::from_secs(1)));
            return None;
        }
        let mut indexes: Vec<i32> = Vec::new();
        if pass.indexed {
            let busy: Vec<i32> = pass
                .active
                .iter()
                .filter_map(|i| pods::completion_index(&pass.pods[*i]))
                .collect();
            let mut taken = pass.succeeded_indexes.with(busy);
            if only_replace_failed(&pass.job) {
                taken = taken.with(
                    pass.pods
                        .iter()
                        .filter(|p| pods::terminating(p))
                        .filter_map(pods::completion_index),
                );
            }
            indexes = taken.first_missing(missing as usize, pass.completions().unwrap_or(0));
            missing = indexes.len() as i32;
        }
        let mut next_index = indexes.into_iter();
        let mut batch = SLOW_START.min(missing);
        let mut failure = None;
        while missing > 0 && batch > 0 {
            let templates: Vec<Pod> = (0..batch)
                .map(|_| pod_from_template(&pass.job, next_index.next()))
                .collect();
            let results =
                futures::future::join_all(templates.iter().map(|p| self.cluster.create(p))).await;
            let mut failed_now = false;
            for r in results {
                match r {
                    Ok(p) => {
                        let name = pods::name(&p).to_string();
                        self.event(
                            &pass.job,
                            false,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                        self.memory(&pass.key, job_uid(&pass.job), |m| {
                            m.creating.insert(name, Instant::now());
                        });
                        pass.n_active += 1;
                    }
                    Err(e) => {
                        // A terminating namespace refuses every create; nothing to report.
                        if !(e.code == 403 && e.message.contains("being terminated")) {
                            self.event(
                                &pass.job,
                                true,
                                "FailedCreate",
                                format!("Error creating: {}", e.message),
                            );
                        }
                        failed_now = true;
                        failure = Some(e);
                    }
                }
            }
            missing -= batch;
            if failed_now {
                break;
            }
            batch = (batch * 2).min(missing);
        }
        failure
    }

    /// Surplus active pods to remove: for Indexed Jobs first those with a duplicate,
    /// missing or out-of-range index, then in removal order.
    fn pods_to_remove(&self, pass: &Pass, at_least: usize) -> Vec<usize> {
        let mut rm: Vec<usize> = Vec::new();
        let mut left: Vec<usize> = Vec::new();
        if pass.indexed {
            let completions = pass.completions().unwrap_or(0);
            let mut by_index: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
            for &i in &pass.active {
                match pods::completion_index(&pass.pods[i]) {
                    Some(ix) if ix < completions => by_index.entry(ix).or_default().push(i),
                    _ => rm.push(i),
                }
            }
            for (_, mut same) in by_index {
                same.sort_by(|a, b| pods::removal_order(&pass.pods[*a], &pass.pods[*b]));
                let keep = same.pop();
                rm.extend(same);
                left.extend(keep);
            }
        } else {
            left = pass.active.clone();
        }
        if rm.len() < at_least {
            left.sort_by(|a, b| pods::removal_order(&pass.pods[*a], &pass.pods[*b]));
            let more = at_least - rm.len();
            rm.extend(left.into_iter().take(more));
        }
        rm
    }

    /// Deletes pods (optionally removing their finalizer first, when the Job will not
    /// count them). Returns how many ready pods and how many pods went, and an error.
    async fn delete_pods(
        &self,
        pass: &Pass,
        which: &[usize],
        drop_finalizer: bool,
    ) -> (i32, i32, Option<ClusterError>) {
        let work = which.iter().map(|i| {
            let pod = &pass.pods[*i];
            async move {
                if drop_finalizer && let Err(e) = self.remove_finalizer(pod).await {
                    return Err(e);
                }
                self.cluster
                    .delete::<Pod>(
                        pod.metadata.namespace.as_deref(),
                        pods::name(pod),
                        &Delete {
                            uid: pod.metadata.uid.clone(),
                            ..Delete::default()
                        },
                    )
                    .await
                    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
            }
        });
        let results = futures::future::join_all(work).await;
        let (mut ready, mut gone, mut err) = (0, 0, None);
        for (i, r) in which.iter().zip(results) {
            let pod = &pass.pods[*i];
            match r {
                Ok(()) => {
                    gone += 1;
                    if pods::ready(pod) {
                        ready += 1;
                    }
                    self.memory(&pass.key, job_uid(&pass.job), |m| {
                        m.deleting
                            .insert(pods::uid(pod).to_string(), Instant::now());
                    });
                    self.event(
                        &pass.job,
                        false,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pods::name(pod)),
                    );
                }
                Err(e) => {
                    self.event(
                        &pass.job,
                        true,
                        "FailedDelete",
                        format!("Error deleting: {}", e.message),
                    );
                    err = Some(e);
                }
            }
        }
        (ready, gone, err)
    }
}

/// With restartPolicy OnFailure, container restarts count as failures.
fn past_backoff_limit_on_failure(job: &Job, all: &[Pod]) -> bool {
    let spec = job.spec.as_ref();
    let restart = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if restart != Some("OnFailure") {
        return false;
    }
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    let restarts: i32 = all
        .iter()
        .filter(|p| matches!(pods::phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Time left before `activeDeadlineSeconds` (zero once past); `None` without a deadline
/// or while suspended.
fn deadline_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let spec = job.spec.as_ref()?;
    let ads = spec.active_deadline_seconds?;
    if spec.suspend == Some(true) {
        return None;
    }
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    let end = clock::after(start, Duration::from_secs(ads.max(0).unsigned_abs()));
    Some(clock::until(now, end))
}

fn job_uid(job: &Job) -> &str {
    job.metadata.uid.as_deref().unwrap_or("")
}

impl<C: Cluster> Reconciler for JobController<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        self.reconcile_job(key).await
    }
}

/// Removes the tracking finalizer from pods whose Job is gone or finished.
pub struct Orphans<C>(Arc<JobController<C>>);

impl<C: Cluster> Reconciler for Orphans<C> {
    fn name(&self) -> &'static str {
        "job-orphan-pods"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let c = &self.0;
        let Some(pod) = c.pods.get(key.namespace.as_deref(), &key.name) else {
            return Ok(Requeue::Done);
        };
        if pods::has_finalizer(&pod) && is_orphan(&c.jobs, &pod) {
            c.remove_finalizer(&pod).await?;
        }
        Ok(Requeue::Done)
    }
}
