//! The taint eviction controller: a pod on a node with NoExecute taints is deleted at once
//! when it does not tolerate them all, or once its shortest `tolerationSeconds` for them has
//! passed since the controller first saw it there. The pod is deleted gracefully, as
//! upstream's taint manager does: on a node whose kubelet is gone it stays Terminating, and
//! its controller replaces it meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use super::taints::{NO_EXECUTE, Tolerance, taints, tolerance};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{
    Cluster, Delete, Informer, ObjectEvent, ObjectKey, ReconcileError, Reconciler, Requeue,
};

pub const COMPONENT: &str = "taint-eviction-controller";

/// Looking a little after a deadline, not a little before it.
const MARGIN: Duration = Duration::from_millis(20);

pub struct TaintEviction<C> {
    cluster: Arc<C>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// Pod → (uid, when its eviction clock started).
    scheduled: Mutex<HashMap<ObjectKey, (String, Instant)>>,
}

fn no_execute(node: &Node) -> Vec<&Taint> {
    taints(node)
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .collect()
}

/// The NoExecute taints of a node, for spotting changes that concern the pods on it.
pub fn no_execute_signature(node: &Node) -> Vec<(String, String)> {
    no_execute(node)
        .into_iter()
        .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
        .collect()
}

impl<C: Cluster> TaintEviction<C> {
    pub fn new(ctx: &Ctx<C>) -> Self {
        TaintEviction {
            cluster: ctx.cluster.clone(),
            pods: ctx.informers.pods.clone(),
            nodes: ctx.informers.nodes.clone(),
            scheduled: Mutex::default(),
        }
    }

    fn scheduled(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, (String, Instant)>> {
        self.scheduled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a pending eviction; tells the pod when there was one.
    fn cancel(&self, key: &ObjectKey, pod: Option<&Pod>) {
        let had = self.scheduled().remove(key).is_some();
        if had && let Some(pod) = pod {
            self.cluster.record(
                ObjectEvent::normal(
                    pod,
                    "TaintManagerEviction",
                    format!("Cancelling deletion of Pod {key}"),
                )
                .from(COMPONENT),
            );
        }
    }

    async fn evict(&self, key: &ObjectKey, pod: &Pod) -> Result<(), ReconcileError> {
        tracing::info!(pod = %key, "deleting pod: its node has a NoExecute taint it does not tolerate (any longer)");
        self.cluster.record(
            ObjectEvent::normal(
                pod,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {key}"),
            )
            .from(COMPONENT),
        );
        let mut marked = pod.clone();
        let status = marked.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let target = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        };
        let already = conditions.iter().any(|c| {
            c.type_ == target.type_ && c.status == target.status && c.reason == target.reason
        });
        if !already {
            conditions.retain(|c| c.type_ != "DisruptionTarget");
            conditions.push(target);
            match self.cluster.replace_status(&marked).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let how = Delete {
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        };
        match self
            .cluster
            .delete::<Pod>(key.namespace.as_deref(), &key.name, &how)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        self.scheduled().remove(key);
        Ok(())
    }
}

impl<C: Cluster> Reconciler for TaintEviction<C> {
    fn name(&self) -> &'static str {
        COMPONENT
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<Requeue, ReconcileError> {
        let Some(pod) = self.pods.get(key.namespace.as_deref(), &key.name) else {
            self.cancel(key, None);
            return Ok(Requeue::Done);
        };
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let node = node_name.and_then(|n| self.nodes.get(None, n));
        let (Some(node), None) = (node, pod.metadata.deletion_timestamp.as_ref()) else {
            // Unbound, on a node that is gone, or already going.
            self.cancel(key, None);
            return Ok(Requeue::Done);
        };
        let taints = no_execute(&node);
        if taints.is_empty() {
            self.cancel(key, Some(&pod));
            return Ok(Requeue::Done);
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        let limit = match tolerance(&taints, tolerations) {
            Tolerance::None => Duration::ZERO,
            Tolerance::Forever => {
                self.cancel(key, Some(&pod));
                return Ok(Requeue::Done);
            }
            Tolerance::For(d) => d,
        };
        let now = Instant::now();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let start = {
            let mut s = self.scheduled();
            let e = s.entry(key.clone()).or_insert_with(|| (uid.clone(), now));
            if e.0 != uid {
                *e = (uid, now);
            }
            e.1
        };
        let deadline = start + limit;
        if now < deadline {
            return Ok(Requeue::After(deadline - now + MARGIN));
        }
        self.evict(key, &pod).await?;
        Ok(Requeue::Done)
    }
}
