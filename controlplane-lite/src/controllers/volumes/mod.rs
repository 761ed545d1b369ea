//! Persistent volumes: the persistentvolume-binder (claims meet volumes) and the built-in
//! local-path provisioner (volumes made on the node a claim's pod runs on), with the
//! `local-path` StorageClass they start with.

pub mod binder;
pub mod matching;
pub mod provisioner;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use tokio::task::JoinHandle;

use super::context::Ctx;
use super::runtime::{Change, Cluster, Informer, ObjectKey, WorkQueue, itself, run, watch};
pub use binder::Binder;
pub use provisioner::LocalPath;

pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";

/// The default StorageClass, as the DefaultStorageClass admission picks it.
pub fn default_class(classes: &[Arc<StorageClass>]) -> Option<String> {
    let values: Vec<serde_json::Value> = classes
        .iter()
        .filter_map(|c| serde_json::to_value(c.as_ref()).ok())
        .collect();
    crate::apiserver::kinds::admission::default_class(&values)
}

/// Starts the binder and the provisioner on `ctx`, and makes the `local-path` class.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let mut tasks = start_binder(ctx);
    tasks.extend(start_provisioner(ctx));
    let (cluster, classes) = (ctx.cluster.clone(), ctx.informers.storage_classes.clone());
    tasks.push(tokio::spawn(async move {
        provisioner::ensure_class(cluster.as_ref(), &classes).await;
    }));
    tasks
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn unbound_claims(claims: &Informer<PersistentVolumeClaim>) -> Vec<ObjectKey> {
    claims
        .list()
        .iter()
        .filter(|c| volume_name(c).is_empty())
        .map(|c| ObjectKey::of(c.as_ref()))
        .collect()
}

/// A claim's change concerns itself and the volumes that name it.
fn claim_keys(
    change: &Change<PersistentVolumeClaim>,
    volumes: &Informer<PersistentVolume>,
) -> Vec<ObjectKey> {
    let c = &change.obj;
    let mut keys = itself(change);
    let vname = volume_name(c);
    if !vname.is_empty() {
        keys.push(ObjectKey::new(None, vname));
    }
    if change.deleted {
        for v in volumes.list() {
            let names_it = v
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some_and(|r| r.name == c.metadata.name && r.namespace == c.metadata.namespace);
            if names_it && v.metadata.name.as_deref() != Some(vname) {
                keys.push(ObjectKey::of(v.as_ref()));
            }
        }
    }
    keys
}

/// A volume's change concerns itself, the claim it names or that names it, and — when it
/// is free — every claim still waiting.
fn volume_keys(
    change: &Change<PersistentVolume>,
    claims: &Informer<PersistentVolumeClaim>,
) -> Vec<ObjectKey> {
    let v = &change.obj;
    let mut keys = itself(change);
    let name = v.metadata.name.as_deref().unwrap_or("");
    match v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        Some(r) => {
            if let (Some(ns), Some(n)) = (r.namespace.as_deref(), r.name.as_deref()) {
                keys.push(ObjectKey::new(Some(ns), n));
            }
        }
        None if !change.deleted => keys.extend(unbound_claims(claims)),
        None => {}
    }
    keys.extend(
        claims
            .list()
            .iter()
            .filter(|c| volume_name(c) == name)
            .map(|c| ObjectKey::of(c.as_ref())),
    );
    keys
}

/// A pod concerns its unbound claims: they may wait for it (WaitForFirstConsumer).
fn pod_claim_keys(pod: &Pod, claims: &Informer<PersistentVolumeClaim>) -> Vec<ObjectKey> {
    let ns = pod.metadata.namespace.as_deref();
    matching::claims_of(pod)
        .into_iter()
        .filter(|c| {
            claims
                .get(ns, c)
                .is_some_and(|c| volume_name(&c).is_empty())
        })
        .map(|c| ObjectKey::new(ns, &c))
        .collect()
}

pub fn start_binder<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(Binder::new(ctx));
    let i = &ctx.informers;
    let (volumes, claims1, claims2, claims3) = (
        i.pvs.clone(),
        i.pvcs.clone(),
        i.pvcs.clone(),
        i.pvcs.clone(),
    );
    vec![
        watch(&i.pvcs, queue.clone(), move |c| claim_keys(c, &volumes)),
        watch(&i.pvs, queue.clone(), move |c| volume_keys(c, &claims1)),
        watch(&i.storage_classes, queue.clone(), move |_| {
            unbound_claims(&claims2)
        }),
        watch(&i.pods, queue.clone(), move |c| {
            if c.deleted {
                Vec::new()
            } else {
                pod_claim_keys(&c.obj, &claims3)
            }
        }),
        // One worker: bindings are few, and one at a time never races itself for a volume.
        run(r, queue, 1),
    ]
}

pub fn start_provisioner<C: Cluster>(ctx: &Ctx<C>) -> Vec<JoinHandle<()>> {
    let queue = WorkQueue::new();
    let r = Arc::new(LocalPath::new(ctx));
    let i = &ctx.informers;
    vec![
        watch(&i.pvcs, queue.clone(), |c| {
            if c.deleted { Vec::new() } else { itself(c) }
        }),
        watch(&i.pvs, queue.clone(), |c| {
            if c.deleted { Vec::new() } else { itself(c) }
        }),
        watch(&i.pods, queue.clone(), |c: &Change<Pod>| {
            let m = &c.obj.metadata;
            if m.namespace.as_deref() != Some(provisioner::HELPER_NAMESPACE) {
                return Vec::new();
            }
            m.labels
                .as_ref()
                .and_then(|l| l.get(provisioner::HELPER_LABEL))
                .map(|pv| vec![ObjectKey::new(None, pv)])
                .unwrap_or_default()
        }),
        run(r, queue, ctx.settings.workers),
    ]
}
