//! What every path of a Deployment's sync shares: finding (or creating) the new
//! ReplicaSet and keeping revisions in step, scaling ReplicaSets with the events kubectl
//! shows, proportional scaling of a resized rollout, cleanup of old revisions, and status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::json;

use super::DeploymentController;
use super::util::{self, HASH_LABEL};
use crate::controllers::controller_ref::{controller_of, owner_ref};
use crate::controllers::runtime::{Cluster, ClusterError, Delete, ReconcileError};

impl<C: Cluster> DeploymentController<C> {
    /// Writes `d`'s status and takes the stored object back.
    pub(super) async fn write_status(&self, d: &mut Deployment) -> Result<(), ClusterError> {
        *d = self.cluster.replace_status(d).await?;
        Ok(())
    }

    /// Records the new ReplicaSet's revision on the Deployment.
    async fn set_revision(&self, d: &mut Deployment, revision: &str) -> Result<(), ClusterError> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION));
        if current.map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {util::REVISION: revision}}});
        let name = d.metadata.name.clone().unwrap_or_default();
        *d = self
            .cluster
            .patch(d.metadata.namespace.as_deref(), &name, &patch)
            .await?;
        Ok(())
    }

    /// The new ReplicaSet (if one matches the template), with its annotations and the
    /// Deployment's revision brought up to date, and the others.
    pub(super) async fn new_and_old(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), ClusterError> {
        let found = util::find_new(d, rs_list);
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|r| {
                found
                    .as_ref()
                    .is_none_or(|n| n.metadata.uid != r.metadata.uid)
            })
            .cloned()
            .collect();
        let new = match found {
            Some(rs) => Some(self.sync_existing_new(d, rs, &old).await?),
            None if create => Some(self.create_new(d, &old).await?),
            None => None,
        };
        Ok((new, old))
    }

    /// The new ReplicaSet, made now if it does not exist yet.
    pub(super) async fn ensure_new(
        &self,
        d: &mut Deployment,
        new: Option<ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<ReplicaSet, ClusterError> {
        match new {
            Some(n) => Ok(n),
            None => self.create_new(d, old).await,
        }
    }

    async fn sync_existing_new(
        &self,
        d: &mut Deployment,
        rs: ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<ReplicaSet, ClusterError> {
        let new_revision = util::max_revision(old) + 1;
        let mut copy = rs.clone();
        let annotations_changed = util::set_new_rs_annotations(d, &mut copy, new_revision, true);
        let min_ready = util::min_ready_seconds(d);
        let spec = copy.spec.get_or_insert_with(Default::default);
        let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
        if annotations_changed || min_ready_changed {
            spec.min_ready_seconds = (min_ready != 0).then_some(min_ready);
            return self.cluster.replace(&copy).await;
        }
        let revision = copy
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION))
            .cloned()
            .unwrap_or_default();
        self.set_revision(d, &revision).await?;
        let has_progressing = d
            .status
            .as_ref()
            .is_some_and(|s| util::condition(s, "Progressing").is_some());
        if util::progress_deadline(d).is_some() && !has_progressing {
            let msg = format!(
                "Found new replica set {:?}",
                copy.metadata.name.as_deref().unwrap_or_default()
            );
            let c = util::new_condition(
                "Progressing",
                "True",
                util::FOUND_NEW_RS,
                msg,
                self.clock.now(),
            );
            util::set_condition(d.status.get_or_insert_with(Default::default), c);
            self.write_status(d).await?;
        }
        Ok(copy)
    }

    /// Creates the ReplicaSet of `d`'s template: named `<deployment>-<hash>`, its template
    /// and selector carrying the `pod-template-hash` label, as many replicas as the
    /// strategy allows at once. A name taken by another template bumps `collisionCount`.
    async fn create_new(
        &self,
        d: &mut Deployment,
        old: &[ReplicaSet],
    ) -> Result<ReplicaSet, ClusterError> {
        let status = d.status.clone().unwrap_or_default();
        let mut template = util::template(d);
        let hash = util::template_hash(&template, status.collision_count);
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let labels = tmeta.labels.clone();
        let mut selector: LabelSelector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        let min_ready = util::min_ready_seconds(d);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![owner_ref(d)]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: (min_ready != 0).then_some(min_ready),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = old.to_vec();
        all.push(rs.clone());
        let count = util::new_rs_new_replicas(d, &all, &rs);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(count);
        }
        let new_revision = util::max_revision(old) + 1;
        util::set_new_rs_annotations(d, &mut rs, new_revision, false);
        let ns = d.metadata.namespace.clone();
        let (created, already_existed) = match self.cluster.create(&rs).await {
            Ok(c) => (c, false),
            Err(e) if e.is_already_exists() => {
                // A slow cache, or a hash collision with another template.
                let existing = self.replica_sets.get(ns.as_deref(), &name);
                let ours = existing.as_ref().is_some_and(|x| {
                    controller_of(&x.metadata).map(|r| r.uid.as_str()) == d.metadata.uid.as_deref()
                        && util::equal_ignore_hash(&util::template(d), &util::rs_template(x))
                });
                match existing {
                    Some(x) if ours => (x.as_ref().clone(), true),
                    Some(_) => {
                        let mut s = d.status.clone().unwrap_or_default();
                        s.collision_count = Some(s.collision_count.unwrap_or(0) + 1);
                        d.status = Some(s);
                        self.write_status(d).await?;
                        tracing::info!(deployment = %name, "template hash collision; collisionCount bumped");
                        return Err(e);
                    }
                    None => return Err(e),
                }
            }
            Err(e) if e.code == 403 && e.message.contains("being terminated") => return Err(e),
            Err(e) => {
                let msg = format!("Failed to create new replica set {name:?}: {}", e.message);
                if util::progress_deadline(d).is_some() {
                    let c = util::new_condition(
                        "Progressing",
                        "False",
                        util::RS_CREATE_ERROR,
                        msg.clone(),
                        self.clock.now(),
                    );
                    util::set_condition(d.status.get_or_insert_with(Default::default), c);
                    // The create failure is what matters; a failed status write changes nothing.
                    let _ = self.write_status(d).await;
                }
                self.record(d, "Warning", util::RS_CREATE_ERROR, msg);
                return Err(e);
            }
        };
        if !already_existed && count > 0 {
            self.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        self.set_revision(d, &new_revision.to_string()).await?;
        if !already_existed && util::progress_deadline(d).is_some() {
            let msg = format!("Created new replica set {name:?}");
            let c = util::new_condition(
                "Progressing",
                "True",
                util::NEW_RS_CREATED,
                msg,
                self.clock.now(),
            );
            util::set_condition(d.status.get_or_insert_with(Default::default), c);
            self.write_status(d).await?;
        }
        Ok(created)
    }

    /// Sets `rs` to `new_scale` replicas (and the Deployment's size annotations); true
    /// when the size changed.
    pub(super) async fn scale_rs(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> Result<(bool, ReplicaSet), ClusterError> {
        let from = util::rs_replicas(rs);
        if from == new_scale {
            return Ok((false, rs.clone()));
        }
        let op = if from < new_scale { "up" } else { "down" };
        self.scale_rs_as(d, rs, new_scale, op).await
    }

    async fn scale_rs_as(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        new_scale: i32,
        op: &str,
    ) -> Result<(bool, ReplicaSet), ClusterError> {
        let from = util::rs_replicas(rs);
        let size_changes = from != new_scale;
        let desired = util::replicas(d);
        let max = desired + util::max_surge(d);
        if !size_changes && !util::replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
        util::set_replicas_annotations(&mut copy, desired, max);
        let updated = self.cluster.replace(&copy).await?;
        if size_changes {
            self.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {from} to {new_scale}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
        Ok((size_changes, updated))
    }

    /// A resize: some active ReplicaSet was sized for a different `spec.replicas`.
    pub(super) fn is_scaling_event(
        &self,
        d: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> bool {
        let mut all = old.to_vec();
        all.extend(new.cloned());
        let want = util::replicas(d);
        util::active(&all).iter().any(|rs| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(util::DESIRED_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|n| n != want)
        })
    }

    /// The sync of a paused or resized Deployment: scale, no rollout.
    pub(super) async fn sync_scale(
        &self,
        d: &mut Deployment,
        new: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<(), ReconcileError> {
        let (new, old) = self.scale(d, new, old).await?;
        if util::paused(d) {
            self.cleanup(d, &old).await?;
        }
        self.sync_status(d, new.as_ref(), &old).await?;
        Ok(())
    }

    /// Brings the ReplicaSets to the Deployment's size: all of it to the one active set,
    /// or, mid-rollout, the difference spread in proportion to their sizes.
    async fn scale(
        &self,
        d: &Deployment,
        new: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), ClusterError> {
        let want = util::replicas(d);
        if let Some(target) = util::active_or_latest(new.as_ref(), &old) {
            if util::rs_replicas(&target) == want {
                return Ok((new, old));
            }
            let (_, updated) = self.scale_rs(d, &target, want).await?;
            return Ok(replace_in(new, old, updated));
        }
        if util::is_saturated(d, new.as_ref()) {
            for rs in old.iter_mut() {
                if util::rs_replicas(rs) > 0 {
                    let (_, updated) = self.scale_rs(d, rs, 0).await?;
                    *rs = updated;
                }
            }
            return Ok((new, old));
        }
        if !util::is_rolling(d) {
            return Ok((new, old));
        }
        let mut all = old.clone();
        all.extend(new.clone());
        let mut act = util::active(&all);
        let allowed = if want > 0 {
            want + util::max_surge(d)
        } else {
            0
        };
        let to_add = allowed - util::sum_spec(&act);
        let op = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                util::sort_by_size_newer(&mut act);
                "up"
            }
            std::cmp::Ordering::Less => {
                util::sort_by_size_older(&mut act);
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(act.len());
        for rs in &act {
            if to_add != 0 {
                let p = util::proportion(d, rs, to_add, added);
                sizes.push(util::rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(util::rs_replicas(rs));
            }
        }
        let (mut new, mut old) = (new, old);
        for (i, rs) in act.iter().enumerate() {
            let mut size = sizes[i];
            // Leftovers go to the largest.
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            let (_, updated) = self.scale_rs_as(d, rs, size, op).await?;
            (new, old) = replace_in(new, old, updated);
        }
        Ok((new, old))
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    pub(super) async fn cleanup(
        &self,
        d: &Deployment,
        old: &[ReplicaSet],
    ) -> Result<(), ClusterError> {
        let Some(limit) = util::revision_history_limit(d) else {
            return Ok(());
        };
        let mut cleanable: Vec<ReplicaSet> = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        util::sort_by_revision(&mut cleanable);
        for rs in cleanable.iter().take(diff as usize) {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if util::rs_status(rs).0 != 0
                || util::rs_replicas(rs) != 0
                || rs.metadata.generation > observed
            {
                continue;
            }
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            let how = Delete {
                uid: rs.metadata.uid.clone(),
                ..Default::default()
            };
            match self
                .cluster
                .delete::<ReplicaSet>(rs.metadata.namespace.as_deref(), name, &how)
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the status computed from the ReplicaSets, if it changed.
    pub(super) async fn sync_status(
        &self,
        d: &mut Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), ClusterError> {
        let mut all = old.to_vec();
        all.extend(new.cloned());
        let status = util::calculate_status(&all, new, d, self.clock.now());
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        d.status = Some(status);
        self.write_status(d).await
    }

    /// Progressing is Unknown while paused (and after resuming), so a pause never counts
    /// against the progress deadline.
    pub(super) async fn check_paused_conditions(
        &self,
        d: &mut Deployment,
    ) -> Result<(), ClusterError> {
        if util::progress_deadline(d).is_none() {
            return Ok(());
        }
        let status = d.status.clone().unwrap_or_default();
        let cond = util::condition(&status, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some(util::TIMED_OUT)) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(util::PAUSED));
        let now = self.clock.now();
        let c = if util::paused(d) && !paused_cond {
            util::new_condition(
                "Progressing",
                "Unknown",
                util::PAUSED,
                "Deployment is paused".into(),
                now,
            )
        } else if !util::paused(d) && paused_cond {
            util::new_condition(
                "Progressing",
                "Unknown",
                util::RESUMED,
                "Deployment is resumed".into(),
                now,
            )
        } else {
            return Ok(());
        };
        util::set_condition(d.status.get_or_insert_with(Default::default), c);
        self.write_status(d).await
    }
}

/// Puts `updated` in place of the ReplicaSet with its uid.
pub(super) fn replace_in(
    new: Option<ReplicaSet>,
    mut old: Vec<ReplicaSet>,
    updated: ReplicaSet,
) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    if new
        .as_ref()
        .is_some_and(|n| n.metadata.uid == updated.metadata.uid)
    {
        return (Some(updated), old);
    }
    if let Some(slot) = old
        .iter_mut()
        .find(|r| r.metadata.uid == updated.metadata.uid)
    {
        *slot = updated;
    }
    (new, old)
}
