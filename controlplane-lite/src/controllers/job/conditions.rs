//! Job conditions as the Job controller writes them.
//!
//! A Job ends in two steps: first an interim `SuccessCriteriaMet` or `FailureTarget`
//! condition is recorded, and the terminal `Complete` or `Failed` follows once no pod of the
//! Job is still terminating and every finished pod has been counted.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUSPENDED: &str = "Suspended";

pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";

pub fn new(ty: &str, status: bool, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: ty.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()).filter(|s| !s.is_empty()),
        message: Some(message.to_string()).filter(|s| !s.is_empty()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn find<'a>(job: &'a Job, ty: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

pub fn is_true(job: &Job, ty: &str) -> bool {
    find(job, ty).is_some_and(|c| c.status == "True")
}

/// Complete or Failed.
pub fn finished(job: &Job) -> bool {
    is_true(job, COMPLETE) || is_true(job, FAILED)
}

/// Sets the condition of type `ty`; a new one is only added when true. Returns whether
/// anything changed.
pub fn ensure(
    list: &mut Vec<JobCondition>,
    ty: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let want = new(ty, status, reason, message, now);
    if let Some(c) = list.iter_mut().find(|c| c.type_ == ty) {
        if c.status != want.status || c.reason != want.reason || c.message != want.message {
            *c = want;
            return true;
        }
        return false;
    }
    if status {
        list.push(want);
        return true;
    }
    false
}

pub fn reason(c: &JobCondition) -> &str {
    c.reason.as_deref().unwrap_or("")
}

pub fn message(c: &JobCondition) -> &str {
    c.message.as_deref().unwrap_or("")
}
