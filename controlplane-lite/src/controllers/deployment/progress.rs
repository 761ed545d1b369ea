//! The Progressing condition of a rollout: `NewReplicaSetAvailable` when complete,
//! `ReplicaSetUpdated` while it moves, `ProgressDeadlineExceeded` once it has not moved for
//! `progressDeadlineSeconds`; and the look again at the deadline.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::SignedDuration;

use super::DeploymentController;
use super::util;
use crate::controllers::runtime::{Cluster, ReconcileError, Requeue};

impl<C: Cluster> DeploymentController<C> {
    /// Writes the rollout's status and conditions; says when to check progress again.
    pub(super) async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<Requeue, ReconcileError> {
        let now = self.clock.now();
        let mut all = old.to_vec();
        all.extend(new.cloned());
        let mut status = util::calculate_status(&all, new, d, now);
        let deadline = util::progress_deadline(d);
        if deadline.is_none() {
            util::remove_condition(&mut status, "Progressing");
        }
        let current = d
            .status
            .as_ref()
            .and_then(|s| util::condition(s, "Progressing"))
            .cloned();
        let is_complete = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(util::NEW_RS_AVAILABLE));
        let new_name = new.and_then(|n| n.metadata.name.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        if deadline.is_some() && !is_complete {
            if util::complete(d, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                    None => format!("Deployment {d_name:?} has successfully progressed."),
                };
                util::set_condition(
                    &mut status,
                    util::new_condition("Progressing", "True", util::NEW_RS_AVAILABLE, msg, now),
                );
            } else if util::progressing(d, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => format!("Deployment {d_name:?} is progressing."),
                };
                let mut c = util::new_condition("Progressing", "True", util::RS_UPDATED, msg, now);
                // Progress moves lastUpdateTime even when the reason stays the same.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, "Progressing");
                }
                util::set_condition(&mut status, c);
            } else if util::timed_out(d, &status, now) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => format!("Deployment {d_name:?} has timed out progressing."),
                };
                util::set_condition(
                    &mut status,
                    util::new_condition("Progressing", "False", util::TIMED_OUT, msg, now),
                );
            }
        }
        // The new ReplicaSet's failure first, else any old one's.
        let failure = new
            .into_iter()
            .chain(all.iter())
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .find(|c| c.type_ == "ReplicaFailure")
            .map(util::from_rs_condition);
        match failure {
            Some(c) => util::set_condition(&mut status, c),
            None => util::remove_condition(&mut status, "ReplicaFailure"),
        }
        if d.status.as_ref() == Some(&status) {
            return Ok(self.requeue_stuck(d, &status));
        }
        d.status = Some(status);
        self.write_status(d).await?;
        Ok(Requeue::Done)
    }

    /// A rollout that has not moved is looked at again when its deadline passes.
    fn requeue_stuck(&self, d: &Deployment, new: &DeploymentStatus) -> Requeue {
        let Some(deadline) = util::progress_deadline(d) else {
            return Requeue::Done;
        };
        let Some(cur) = d
            .status
            .as_ref()
            .and_then(|s| util::condition(s, "Progressing"))
        else {
            return Requeue::Done;
        };
        if util::complete(d, new) || cur.reason.as_deref() == Some(util::TIMED_OUT) {
            return Requeue::Done;
        }
        let Some(last) = cur.last_update_time.as_ref() else {
            return Requeue::Done;
        };
        let at = last.0 + SignedDuration::from_secs(i64::from(deadline));
        let after = Duration::try_from(self.clock.now().duration_until(at)).unwrap_or_default();
        if after < Duration::from_secs(1) {
            return Requeue::After(Duration::from_secs(1));
        }
        Requeue::After(after + Duration::from_secs(1))
    }
}
