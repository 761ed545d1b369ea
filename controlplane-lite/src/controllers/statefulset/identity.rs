//! A StatefulSet pod's stable identity — its name, labels, hostname and subdomain — and its
//! storage: the claims made from `volumeClaimTemplates` and who owns them under the
//! set's `persistentVolumeClaimRetentionPolicy`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::controllers::revision_history::{POD_REVISION_LABEL, controller_ref};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

pub fn namespace(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or_default()
}

/// `<parent>-<ordinal>` split apart, when the name has that shape.
pub fn parent_and_ordinal(pod_name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = pod_name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The pod's ordinal when its name makes it a member of `set`.
pub fn ordinal_in(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let (parent, ord) = parent_and_ordinal(pod.metadata.name.as_deref()?)?;
    (parent == name(set)).then_some(ord)
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", name(set))
}

pub fn claim_name(template: &str, set: &StatefulSet, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", name(set))
}

pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

fn service_name(set: &StatefulSet) -> Option<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
}

/// The pod of `ordinal` from `template` (the template of the revision named `revision`).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set, ordinal);
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(POD_REVISION_LABEL.into(), revision.into());
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = service_name(set);
    // Claims first, then the template's own volumes that no claim replaces.
    let claims = claim_templates(set);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .map(|t| Volume {
            name: t.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(t, set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !volumes.iter().any(|c| c.name == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(format!("{}-", self::name(set))),
            namespace: Some(namespace(set).to_string()),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref("StatefulSet", self::name(set), &uid)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The labels that make up a pod's identity, as they should be.
pub fn identity_labels(set: &StatefulSet, ordinal: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POD_NAME_LABEL.to_string(), pod_name(set, ordinal)),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ])
}

/// Whether the pod carries its identity labels.
pub fn identity_matches(set: &StatefulSet, pod: &Pod, ordinal: i32) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    identity_labels(set, ordinal)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The claims the pod of `ordinal` uses, as they are created: the template's metadata and
/// spec, named for the pod, labelled with the set's selector.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .filter_map(|t| {
            let tname = t.metadata.name.as_deref()?;
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            Some(PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(tname, set, ordinal)),
                    namespace: Some(namespace(set).to_string()),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    finalizers: t.metadata.finalizers.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            })
        })
        .collect()
}

/// `(whenDeleted, whenScaled)`, Retain unless the set says Delete.
fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

fn plain_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        ..Default::default()
    }
}

/// The owner references a claim of `pod` should carry: the set's when claims go with the set
/// (`whenDeleted: Delete`), the pod's when the pod was scaled away and claims go with it
/// (`whenScaled: Delete`); others' references are kept. None when nothing changes.
pub fn claim_owners(
    set: &StatefulSet,
    pod: &Pod,
    scaled_down: bool,
    current: &[OwnerReference],
) -> Option<Vec<OwnerReference>> {
    let (when_deleted, when_scaled) = retention(set);
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let (want_set, want_pod) = match (when_deleted, when_scaled) {
        (false, false) => (false, false),
        (true, false) => (true, false),
        (false, true) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    };
    let mut refs: Vec<OwnerReference> = current
        .iter()
        .filter(|r| !(r.kind == "StatefulSet" && r.uid == set_uid))
        .filter(|r| !(r.kind == "Pod" && r.uid == pod_uid))
        .cloned()
        .collect();
    if want_set {
        let old = current.iter().find(|r| r.uid == set_uid).cloned();
        refs.push(old.unwrap_or_else(|| plain_ref("apps/v1", "StatefulSet", name(set), &set_uid)));
    }
    if want_pod && !pod_uid.is_empty() {
        let old = current.iter().find(|r| r.uid == pod_uid).cloned();
        refs.push(old.unwrap_or_else(|| {
            plain_ref(
                "v1",
                "Pod",
                pod.metadata.name.as_deref().unwrap_or_default(),
                &pod_uid,
            )
        }));
    }
    let same = refs.len() == current.len() && refs.iter().all(|r| current.contains(r));
    (!same).then_some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_the_name_suffix() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web-+1"), None);
        assert_eq!(parent_and_ordinal("web"), None);
    }
}
