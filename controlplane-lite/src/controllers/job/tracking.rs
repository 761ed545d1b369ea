//! Exact counting: a finished pod is listed in `status.uncountedTerminatedPods`, then
//! its tracking finalizer is removed, then it moves to the counters; the Job's terminal
//! condition is written once nothing is uncounted or terminating.

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::JobStatus;

use super::{
    JobController, MAX_UNCOUNTED, Pass, conditions, failure_policy, job_uid, pod_failed, pods,
};
use crate::controllers::runtime::{Cluster, ReconcileError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

impl<C: Cluster> JobController<C> {
    /// Counts finished pods through `uncountedTerminatedPods`, removes their finalizers,
    /// and writes the status (with the final condition when the Job is done).
    pub(super) async fn track(
        &self,
        pass: &mut Pass,
        mut needs_flush: bool,
    ) -> Result<(), ReconcileError> {
        let mut with_finalizer: HashSet<String> = pass
            .pods
            .iter()
            .filter(|p| pods::has_finalizer(p) && !pass.expected_rm.contains(pods::uid(p)))
            .map(|p| pods::uid(p).to_string())
            .collect();
        let policy = pass.spec.pod_failure_policy.clone();
        let finished_failing = pass
            .finished
            .as_ref()
            .is_some_and(|c| c.type_ != conditions::SUCCESS_CRITERIA_MET);
        let job_deleting = pass.job.metadata.deletion_timestamp.is_some();
        let finished = pass.finished.is_some();
        let completions = pass.completions().unwrap_or(0);
        needs_flush |= count_released(
            pass.job.status.get_or_insert_with(Default::default),
            &with_finalizer,
        );
        let already_uncounted = pass
            .job
            .status
            .as_ref()
            .and_then(|s| s.uncounted_terminated_pods.as_ref())
            .map_or(0, |u| {
                u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
            });
        let mut to_release: Vec<usize> = Vec::new();
        let mut new_indexes: Vec<i32> = Vec::new();
        let mut added_succeeded: Vec<String> = Vec::new();
        let mut added_failed: Vec<String> = Vec::new();
        let mut reached_max = false;
        for (i, pod) in pass.pods.iter().enumerate() {
            let uid = pods::uid(pod);
            if !pods::has_finalizer(pod) || pass.expected_rm.contains(uid) {
                continue;
            }
            let failed = pod_failed(pod, &pass.job);
            // A pod still running keeps its finalizer unless the Job is ending.
            if !(job_deleting || finished || pods::succeeded(pod) || failed) {
                continue;
            }
            to_release.push(i);
            let ix = pods::completion_index(pod);
            if pods::succeeded(pod) && !pass.uncounted_failed.contains(uid) {
                if pass.indexed {
                    if let Some(ix) = ix
                        && ix < completions
                        && !pass.prev_succeeded_indexes.has(ix)
                    {
                        new_indexes.push(ix);
                        needs_flush = true;
                    }
                } else if !pass.uncounted_succeeded.contains(uid) {
                    added_succeeded.push(uid.to_string());
                    needs_flush = true;
                }
            } else if (failed || finished_failing)
                && !pass.uncounted_failed.contains(uid)
                && (!pass.indexed || ix.is_some_and(|ix| ix < completions))
                && failure_policy::judge(policy.as_ref(), pod).counts
            {
                added_failed.push(uid.to_string());
                needs_flush = true;
            }
            if already_uncounted + new_indexes.len() + added_succeeded.len() + added_failed.len()
                >= MAX_UNCOUNTED
            {
                reached_max = true;
                break;
            }
        }
        {
            let unc = pass
                .job
                .status
                .get_or_insert_with(Default::default)
                .uncounted_terminated_pods
                .get_or_insert_with(Default::default);
            if !added_succeeded.is_empty() {
                unc.succeeded
                    .get_or_insert_with(Vec::new)
                    .extend(added_succeeded);
            }
            if !added_failed.is_empty() {
                unc.failed.get_or_insert_with(Vec::new).extend(added_failed);
            }
        }
        if pass.indexed {
            pass.succeeded_indexes = pass.succeeded_indexes.with(new_indexes);
            let s = pass.succeeded_indexes.to_string();
            let status = pass.job.status.get_or_insert_with(Default::default);
            if status.completed_indexes.as_deref().unwrap_or("") != s {
                needs_flush = true;
            }
            status.succeeded = Some(pass.succeeded_indexes.total()).filter(|n| *n != 0);
            status.completed_indexes = Some(s).filter(|s| !s.is_empty());
        }
        // The interim condition goes in first; the terminal one waits for the pods.
        let now = pass.now;
        if let Some(f) = pass.finished.clone() {
            let conds = pass
                .job
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            if f.type_ == conditions::FAILURE_TARGET {
                conds.push(f.clone());
                needs_flush = true;
                pass.finished = Some(conditions::new(
                    conditions::FAILED,
                    true,
                    conditions::reason(&f),
                    conditions::message(&f),
                    now,
                ));
            } else if f.type_ == conditions::SUCCESS_CRITERIA_MET {
                if !conds
                    .iter()
                    .any(|c| c.type_ == conditions::SUCCESS_CRITERIA_MET)
                {
                    conds.push(f.clone());
                    needs_flush = true;
                }
                pass.finished = Some(conditions::new(
                    conditions::COMPLETE,
                    true,
                    conditions::reason(&f),
                    conditions::message(&f),
                    now,
                ));
            }
        }

        // 1. Record the newly finished pods as uncounted.
        if needs_flush {
            pass.job = self.write_status(&pass.key, &pass.job).await?;
            let record = pass.backoff;
            self.memory(&pass.key, job_uid(&pass.job), |m| m.backoff = record);
            needs_flush = false;
        }
        // 2. Release them.
        let mut release_err = None;
        let results = futures::future::join_all(
            to_release
                .iter()
                .map(|i| self.remove_finalizer(&pass.pods[*i])),
        )
        .await;
        for (i, r) in to_release.iter().zip(results) {
            let pod = &pass.pods[*i];
            match r {
                Ok(()) => {
                    with_finalizer.remove(pods::uid(pod));
                    self.memory(&pass.key, job_uid(&pass.job), |m| {
                        m.finalizer_removed.insert(pods::uid(pod).to_string());
                    });
                }
                Err(e) => release_err = Some(e),
            }
        }
        // 3. Count them.
        let status = pass.job.status.get_or_insert_with(Default::default);
        if count_released(status, &with_finalizer) {
            needs_flush = true;
        }
        if let Some(e) = release_err {
            if needs_flush {
                pass.job = self.write_status(&pass.key, &pass.job).await?;
            }
            return Err(e.into());
        }
        // 4. Finish, once nothing is left uncounted or terminating.
        let finished_now = !reached_max && self.enact_finished(pass);
        if needs_flush || finished_now {
            pass.job = self.write_status(&pass.key, &pass.job).await?;
        }
        if finished_now && let Some(f) = &pass.finished {
            if f.type_ == conditions::COMPLETE {
                if let (Some(c), Some(s)) = (
                    pass.completions(),
                    pass.job.status.as_ref().and_then(|s| s.succeeded),
                ) && s > c
                {
                    self.event(
                        &pass.job,
                        true,
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    );
                }
                self.event(&pass.job, false, "Completed", "Job completed");
            } else {
                self.event(
                    &pass.job,
                    true,
                    conditions::reason(f),
                    conditions::message(f),
                );
            }
        }
        Ok(())
    }

    fn enact_finished(&self, pass: &mut Pass) -> bool {
        let Some(f) = pass.finished.clone() else {
            return false;
        };
        let terminating = pass.n_terminating;
        let status = pass.job.status.get_or_insert_with(Default::default);
        let uncounted = status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
            u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
        });
        if uncounted > 0 || terminating > 0 {
            return false;
        }
        let list = status.conditions.get_or_insert_with(Vec::new);
        conditions::ensure(
            list,
            &f.type_,
            true,
            conditions::reason(&f),
            conditions::message(&f),
            pass.now,
        );
        if f.type_ == conditions::COMPLETE {
            status.completion_time = Some(Time(pass.now));
        }
        true
    }
}

/// Moves uncounted pods whose finalizer is gone into the counters. Returns whether the
/// status changed.
fn count_released(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let unc = status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let mut changed = false;
    let mut moved = |list: &mut Option<Vec<String>>| -> i32 {
        let Some(l) = list.as_mut() else { return 0 };
        let before = l.len();
        l.retain(|u| with_finalizer.contains(u));
        let n = (before - l.len()) as i32;
        if n > 0 {
            changed = true;
        }
        if l.is_empty() {
            *list = None;
        }
        n
    };
    let s = moved(&mut unc.succeeded);
    let f = moved(&mut unc.failed);
    if s > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + s);
    }
    if f > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + f);
    }
    changed
}
