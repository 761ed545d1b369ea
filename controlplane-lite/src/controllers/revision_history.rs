//! ControllerRevisions: the history StatefulSets and DaemonSets keep of their pod templates,
//! which `kubectl rollout history|undo` reads. A revision holds a strategic merge patch that
//! puts the template back (`{"spec":{"template":{"$patch":"replace",...}}}`), is labelled with
//! the template's labels (kubectl finds revisions through the owner's selector) and is
//! controlled by its owner.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::runtime::{Cluster, ClusterError, Delete, Informer};

/// The label every revision carries with its hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The label on pods (and DaemonSet revisions) naming the revision they were made from.
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// The patch a revision stores for `template`, shaped as kube-controller-manager writes it
/// (Go's encoding keeps an empty `resources` on every container and a null
/// `creationTimestamp`), so kubectl's byte comparison in `rollout undo` sees a match when the
/// template is already the revision's.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if !t.is_object() {
        t = json!({});
    }
    let meta = t
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
    if let Some(Value::Object(m)) = meta {
        m.entry("creationTimestamp").or_insert(Value::Null);
    }
    for list in ["initContainers", "containers"] {
        if let Some(cs) = t
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                c.entry("resources").or_insert_with(|| json!({}));
            }
        }
    }
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// The template a revision's patch restores, or None when the data is not such a patch.
pub fn template_of(data: &Value) -> Option<PodTemplateSpec> {
    let t = canonical(data)?;
    serde_json::from_value(t).ok()
}

/// The template in a revision's patch with the encoding's noise removed, for comparisons.
fn canonical(data: &Value) -> Option<Value> {
    let mut t = data.pointer("/spec/template")?.clone();
    let o = t.as_object_mut()?;
    o.remove("$patch");
    if let Some(Value::Object(m)) = o.get_mut("metadata") {
        if m.get("creationTimestamp").is_some_and(Value::is_null) {
            m.remove("creationTimestamp");
        }
        if m.is_empty() {
            o.remove("metadata");
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(cs) = t
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                if c.get("resources") == Some(&json!({})) {
                    c.remove("resources");
                }
            }
        }
    }
    Some(t)
}

/// Whether a revision's data restores the same template as `data`.
pub fn same_data(a: &Value, b: &Value) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The data of a revision (null when it has none).
pub fn data_of(rev: &ControllerRevision) -> &Value {
    static NULL: Value = Value::Null;
    rev.data.as_ref().map(|d| &d.0).unwrap_or(&NULL)
}

/// Kubernetes' `rand.SafeEncodeString`: digits mapped onto consonants and safe digits, so a
/// hash never spells words and never looks like a number.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| ALPHANUMS[(c as usize) % ALPHANUMS.len()] as char)
        .collect()
}

/// 32-bit FNV-1 (what Go's `fnv.New32` computes).
pub fn fnv1_32(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for b in *chunk {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    }
    h
}

/// 32-bit FNV-1a (what Go's `fnv.New32a` computes).
pub fn fnv1a_32(chunks: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for chunk in chunks {
        for b in *chunk {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The hash of a revision's data, as `history.HashControllerRevision` makes it: FNV-1 over
/// the serialized data and the collision count in decimal.
pub fn revision_hash(data: &Value, collision_count: i32) -> String {
    let raw = serde_json::to_vec(data).unwrap_or_default();
    let probe = collision_count.to_string();
    safe_encode(&fnv1_32(&[&raw, probe.as_bytes()]).to_string())
}

/// `<prefix>-<hash>`, the prefix cut so the name stays within 253 characters.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let cut = prefix
        .char_indices()
        .nth(223)
        .map_or(prefix, |(i, _)| &prefix[..i]);
    format!("{cut}-{hash}")
}

/// Revision `number` of an `apps/v1` owner's template: named `<owner>-<hash>`, labelled
/// with the template's labels and `hash_label: hash` (kubectl finds revisions through the
/// owner's selector), carrying the owner's annotations, controlled by the owner.
pub fn new_revision(
    kind: &str,
    owner: &ObjectMeta,
    template: &PodTemplateSpec,
    (hash_label, hash): (&str, String),
    data: &Value,
    number: i64,
) -> ControllerRevision {
    let owner_name = owner.name.as_deref().unwrap_or_default();
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let name = revision_name(owner_name, &hash);
    labels.insert(hash_label.into(), hash);
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: owner.namespace.clone(),
            labels: Some(labels),
            annotations: owner.annotations.clone(),
            owner_references: Some(vec![controller_ref(
                kind,
                owner_name,
                owner.uid.as_deref().unwrap_or_default(),
            )]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: number,
    }
}

/// A controller reference to an `apps/v1` owner.
pub fn controller_ref(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The uid of the object's controller, if it has one.
pub fn controller_uid(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// The revisions in `namespace` controlled by `uid`, oldest revision first (ties by
/// creation, then name, as Kubernetes sorts them).
pub fn owned(
    informer: &Informer<ControllerRevision>,
    namespace: &str,
    uid: &str,
) -> Vec<Arc<ControllerRevision>> {
    let mut revs: Vec<_> = informer
        .list()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
        .filter(|r| controller_uid(&r.metadata) == Some(uid))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    revs
}

/// Revisions in `namespace` that nobody controls and that `selector` matches: the history a
/// deleted owner left behind (`--cascade=orphan`), which a new owner of the same name takes.
pub fn orphans(
    informer: &Informer<ControllerRevision>,
    namespace: &str,
    selector: &Selector,
) -> Vec<Arc<ControllerRevision>> {
    informer
        .list()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(namespace))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter(|r| controller_uid(&r.metadata).is_none())
        .filter(|r| selector.matches(r.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
        .collect()
}

/// Makes `owner` the controller of `rev`; the resourceVersion in the patch makes it fail
/// rather than overwrite a concurrent change.
pub async fn adopt<C: Cluster>(
    cluster: &C,
    rev: &ControllerRevision,
    owner: OwnerReference,
) -> Result<ControllerRevision, ClusterError> {
    let mut refs = rev.metadata.owner_references.clone().unwrap_or_default();
    refs.push(owner);
    cluster
        .patch(
            rev.metadata.namespace.as_deref(),
            rev.metadata.name.as_deref().unwrap_or_default(),
            &json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": rev.metadata.resource_version,
            }}),
        )
        .await
}

/// The revision number after the highest in `revs` (sorted).
pub fn next_revision(revs: &[Arc<ControllerRevision>]) -> i64 {
    revs.last().map_or(1, |r| r.revision + 1)
}

/// Deletes up to `count` of `revs` (oldest first), passing over those named in `live`.
pub async fn delete_oldest<C: Cluster>(
    cluster: &C,
    revs: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    count: usize,
) -> Result<(), ClusterError> {
    let doomed = revs
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .take(count);
    for r in doomed {
        let how = Delete {
            uid: r.metadata.uid.clone(),
            ..Default::default()
        };
        match cluster
            .delete::<ControllerRevision>(
                r.metadata.namespace.as_deref(),
                r.metadata.name.as_deref().unwrap_or_default(),
                &how,
            )
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hashes_are_fnv_and_safely_encoded() {
        // Reference values of Go's hash/fnv.
        assert_eq!(fnv1_32(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv1_32(&[b"a"]), 0x050c_5d7e);
        assert_eq!(fnv1a_32(&[b"a"]), 0xe40c_292c);
        assert_eq!(fnv1a_32(&[b"fo", b"obar"]), 0xbf9c_f968);
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn the_data_is_the_patch_kubectl_compares() {
        // The revision kube-controller-manager 1.33 wrote for this template.
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
            "spec": {"containers": [{"image": "test", "imagePullPolicy": "Always", "name": "test",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30},
        }))
        .unwrap();
        let data = template_patch(&template);
        let upstream = r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;
        assert_eq!(serde_json::to_string(&data).unwrap(), upstream);
        // ... and so is the name it gave it.
        assert_eq!(revision_hash(&data, 0), "c77f6d978");
        assert_eq!(template_of(&data).unwrap(), template);
        let mut other = template.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("test:2".into());
        assert!(!same_data(&data, &template_patch(&other)));
        // An empty resources block, as a restore through kubectl leaves, is no change.
        let mut restored = template.clone();
        restored.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        assert!(same_data(&data, &template_patch(&restored)));
    }
}
