//! The RollingUpdate strategy: the new ReplicaSet grows while the total stays within
//! `replicas + maxSurge`; old ones shrink while at least `replicas - maxUnavailable` stay
//! available, their unhealthy pods first. One step per sync; the next waits for the
//! ReplicaSets' status to show the effect.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::DeploymentController;
use super::sync::replace_in;
use super::util;
use crate::controllers::runtime::{Cluster, ClusterError, ReconcileError, Requeue};

impl<C: Cluster> DeploymentController<C> {
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        new: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<Requeue, ReconcileError> {
        let new = self.ensure_new(d, new, &old).await?;
        let mut all = old.clone();
        all.push(new.clone());

        let (scaled_up, new) = self.reconcile_new(d, &all, new).await?;
        if scaled_up {
            return self.sync_rollout_status(d, Some(&new), &old).await;
        }
        let (scaled_down, old) = self.reconcile_old(d, &new, old).await?;
        if scaled_down {
            return self.sync_rollout_status(d, Some(&new), &old).await;
        }
        let status = d.status.clone().unwrap_or_default();
        if util::complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, Some(&new), &old).await
    }

    /// Grows the new ReplicaSet as far as maxSurge allows (or shrinks it to the size).
    async fn reconcile_new(
        &self,
        d: &Deployment,
        all: &[ReplicaSet],
        new: ReplicaSet,
    ) -> Result<(bool, ReplicaSet), ClusterError> {
        let want = util::replicas(d);
        let have = util::rs_replicas(&new);
        if have == want {
            return Ok((false, new));
        }
        let target = if have > want {
            want
        } else {
            util::new_rs_new_replicas(d, all, &new)
        };
        self.scale_rs(d, &new, target).await
    }

    /// Shrinks old ReplicaSets as far as availability allows: unhealthy replicas first
    /// (removing them loses nothing), then available ones down to the minimum.
    async fn reconcile_old(
        &self,
        d: &Deployment,
        new: &ReplicaSet,
        old: Vec<ReplicaSet>,
    ) -> Result<(bool, Vec<ReplicaSet>), ClusterError> {
        let active_old = util::active(&old);
        if util::sum_spec(&active_old) == 0 {
            return Ok((false, old));
        }
        let mut all = active_old.clone();
        all.push(new.clone());
        let all_pods = util::sum_spec(&all);
        let min_available = util::replicas(d) - util::max_unavailable(d);
        // New pods not yet available would otherwise let old ones go too early.
        let new_unavailable = util::rs_replicas(new) - util::rs_available(new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok((false, old));
        }
        let (active_old, cleaned) = self
            .cleanup_unhealthy(d, active_old, max_scaled_down)
            .await?;
        let mut all = active_old.clone();
        all.push(new.clone());
        let (active_old, scaled) = self.scale_down_old(d, &all, active_old).await?;
        let mut old = old;
        for rs in active_old {
            (_, old) = replace_in(None, old, rs);
        }
        Ok((cleaned + scaled > 0, old))
    }

    async fn cleanup_unhealthy(
        &self,
        d: &Deployment,
        mut old: Vec<ReplicaSet>,
        max_cleanup: i32,
    ) -> Result<(Vec<ReplicaSet>, i32), ClusterError> {
        util::sort_by_creation(&mut old);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let have = util::rs_replicas(rs);
            let available = util::rs_available(rs);
            // More available than wanted: a status from before the last scale-down.
            if have == 0 || available >= have {
                continue;
            }
            let down = (max_cleanup - total).min(have - available);
            let (_, updated) = self.scale_rs(d, rs, have - down).await?;
            *rs = updated;
            total += down;
        }
        Ok((old, total))
    }

    async fn scale_down_old(
        &self,
        d: &Deployment,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
    ) -> Result<(Vec<ReplicaSet>, i32), ClusterError> {
        let min_available = util::replicas(d) - util::max_unavailable(d);
        // A ReplicaSet's status may still count pods its last scale-down is removing; only
        // what it keeps counts.
        let available: i32 = all
            .iter()
            .map(|rs| util::rs_available(rs).min(util::rs_replicas(rs)))
            .sum();
        if available <= min_available {
            return Ok((old, 0));
        }
        util::sort_by_creation(&mut old);
        let budget = available - min_available;
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= budget {
                break;
            }
            let have = util::rs_replicas(rs);
            if have == 0 {
                continue;
            }
            let down = have.min(budget - total);
            let (_, updated) = self.scale_rs(d, rs, have - down).await?;
            *rs = updated;
            total += down;
        }
        Ok((old, total))
    }
}
