//! The Recreate strategy: every old ReplicaSet goes to zero and its pods are gone before
//! the new ReplicaSet is made and scaled up, so old and new never run side by side.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::DeploymentController;
use super::util;
use crate::controllers::runtime::{Cluster, ReconcileError, Requeue};

impl<C: Cluster> DeploymentController<C> {
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        new: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> Result<Requeue, ReconcileError> {
        let mut scaled_down = false;
        for rs in old.iter_mut() {
            if util::rs_replicas(rs) > 0 {
                let (_, updated) = self.scale_rs(d, rs, 0).await?;
                *rs = updated;
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running(d, new.as_ref(), &old) {
            return self.sync_rollout_status(d, new.as_ref(), &old).await;
        }
        let new = self.ensure_new(d, new, &old).await?;
        let (_, new) = self.scale_rs(d, &new, util::replicas(d)).await?;
        let status = d.status.clone().unwrap_or_default();
        if util::complete(d, &status) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, Some(&new), &old).await
    }
}
