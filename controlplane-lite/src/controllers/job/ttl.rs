//! `spec.ttlSecondsAfterFinished`: a finished Job is deleted (foreground, so its pods go
//! first) once that many seconds have passed since it completed or failed.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

use super::conditions;
use crate::controllers::clock::{self, Clock};
use crate::controllers::runtime::{
    Cluster, Delete, Informer, ObjectKey, ReconcileError, Reconciler, Requeue,
};

pub struct TtlController<C> {
    pub(super) cluster: Arc<C>,
    pub(super) jobs: Informer<Job>,
    pub(super) clock: Arc<dyn Clock>,
}

/// When the Job finished: the transition time of its Complete or Failed condition.
pub fn finished_at(job: &Job) -> Option<Timestamp> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| {
            (c.type_ == conditions::COMPLETE || c.type_ == conditions::FAILED) && c.status == "True"
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

impl<C: Cluster> Reconciler for TtlController<C> {
    fn name(&self) -> &'static str {
        "ttl-after-finished-controller"
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(job) = self.jobs.get(key.namespace.as_deref(), &key.name) else {
            return Ok(Requeue::Done);
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Done);
        }
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(Requeue::Done);
        };
        let Some(finished) = finished_at(&job) else {
            return Ok(Requeue::Done);
        };
        let expires = clock::after(
            finished,
            std::time::Duration::from_secs(ttl.max(0).unsigned_abs().into()),
        );
        let now = self.clock.now();
        if now < expires {
            return Ok(Requeue::After(clock::until(now, expires)));
        }
        tracing::debug!(job = %key, "finished job past its TTL; deleting");
        let how = Delete {
            uid: job.metadata.uid.clone(),
            propagation: Some("Foreground"),
            grace_period_seconds: None,
        };
        match self
            .cluster
            .delete::<Job>(key.namespace.as_deref(), &key.name, &how)
            .await
        {
            Ok(()) => Ok(Requeue::Done),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(Requeue::Done),
            Err(e) => Err(e.into()),
        }
    }
}
