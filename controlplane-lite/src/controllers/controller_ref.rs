//! ControllerRef management, as kube-controller-manager's: a controller owns the objects
//! whose controller ownerReference names its uid; it adopts orphans its selector matches and
//! releases what it owns but no longer matches. Adoption and release are merge patches of
//! `ownerReferences` pinned to the object's resourceVersion, so a concurrent change to the
//! list is never lost (the loser reconciles again).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;
use skiff_api::labels::Selector;

use super::runtime::{Cluster, ClusterError, Kind};

/// The object's controller reference, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` (`controller` and `blockOwnerDeletion` set).
pub fn owner_ref<K: Kind>(owner: &K) -> OwnerReference {
    let m = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller does with one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Owned and matching.
    Keep,
    /// An orphan the selector matches.
    Adopt,
    /// Owned but no longer matching.
    Release,
    /// Someone else's, or nothing to do.
    Ignore,
}

/// The decision for `obj` given its controller `owner` and whether the selector matches.
pub fn decide(owner: &ObjectMeta, obj: &ObjectMeta, matches: bool) -> Claim {
    let owner_uid = owner.uid.as_deref().unwrap_or("");
    let owner_deleting = owner.deletion_timestamp.is_some();
    match controller_of(obj) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Keep,
        // A controller being deleted takes no action on what it owns.
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || obj.deletion_timestamp.is_some() => Claim::Ignore,
        None if owner.namespace.is_some() && owner.namespace != obj.namespace => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Claims `candidates` for `owner`: returns the ones it owns after adopting and releasing.
/// Objects gone meanwhile are skipped; any other failure stops the claim.
pub async fn claim<C: Cluster, O: Kind, K: Kind>(
    cluster: &C,
    owner: &O,
    selector: &Selector,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>, ClusterError> {
    let mut owned = Vec::with_capacity(candidates.len());
    for obj in candidates {
        let labels = obj.meta().labels.clone().unwrap_or_default();
        match decide(owner.meta(), obj.meta(), selector.matches(&labels)) {
            Claim::Keep => owned.push(obj),
            Claim::Ignore => {}
            Claim::Adopt => {
                if let Some(adopted) = adopt(cluster, owner, obj.as_ref()).await? {
                    owned.push(Arc::new(adopted));
                }
            }
            Claim::Release => {
                let uid = owner.meta().uid.clone().unwrap_or_default();
                release(cluster, &uid, obj.as_ref()).await?;
            }
        }
    }
    Ok(owned)
}

/// Makes `owner` the controller of `obj`; `None` when `obj` is gone.
pub async fn adopt<C: Cluster, O: Kind, K: Kind>(
    cluster: &C,
    owner: &O,
    obj: &K,
) -> Result<Option<K>, ClusterError> {
    let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
    let ours = owner_ref(owner);
    refs.retain(|r| r.uid != ours.uid);
    refs.push(ours);
    patch_refs(cluster, obj, refs).await
}

/// Drops the controller reference to `owner_uid` from `obj`.
pub async fn release<C: Cluster, K: Kind>(
    cluster: &C,
    owner_uid: &str,
    obj: &K,
) -> Result<Option<K>, ClusterError> {
    let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner_uid);
    patch_refs(cluster, obj, refs).await
}

async fn patch_refs<C: Cluster, K: Kind>(
    cluster: &C,
    obj: &K,
    refs: Vec<OwnerReference>,
) -> Result<Option<K>, ClusterError> {
    let m = obj.meta();
    let refs = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": m.resource_version,
    }});
    let name = m.name.clone().unwrap_or_default();
    match cluster
        .patch::<K>(m.namespace.as_deref(), &name, &patch)
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            namespace: Some("ns".into()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    uid: o.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let rs = meta("rs", None);
        assert_eq!(decide(&rs, &meta("p", Some("rs")), true), Claim::Keep);
        assert_eq!(decide(&rs, &meta("p", Some("rs")), false), Claim::Release);
        assert_eq!(decide(&rs, &meta("p", Some("other")), true), Claim::Ignore);
        assert_eq!(decide(&rs, &meta("p", None), true), Claim::Adopt);
        assert_eq!(decide(&rs, &meta("p", None), false), Claim::Ignore);
        let mut deleting = rs.clone();
        deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        assert_eq!(decide(&deleting, &meta("p", None), true), Claim::Ignore);
        assert_eq!(
            decide(&deleting, &meta("p", Some("rs")), false),
            Claim::Ignore
        );
        assert_eq!(decide(&deleting, &meta("p", Some("rs")), true), Claim::Keep);
    }
}
