//! Mutating admission the API server applies after defaulting, as kube-apiserver's default
//! plugins do: DefaultTolerationSeconds (pods tolerate a not-ready or unreachable node for a
//! while, so a short outage does not evict everything) and DefaultStorageClass (a claim that
//! names no class gets the cluster's default one).

use serde_json::{Value, json};

use crate::apiserver::handlers::{Api, decode_stored};
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::status::ApiError;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Settings of the admission plugins (`--default-toleration-seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub default_toleration_seconds: i64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            default_toleration_seconds: 300,
        }
    }
}

/// Admission of a new object (after defaulting, before validation).
pub async fn on_create(api: &Api, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    match info.kind {
        "Pod" => default_tolerations(obj, api.admission.default_toleration_seconds),
        "PersistentVolumeClaim" => default_storage_class(api, obj).await?,
        _ => {}
    }
    Ok(())
}

/// Admission of an update of the main resource (never of a subresource).
pub fn on_update(api: &Api, info: &ResourceInfo, obj: &mut Value) {
    if info.kind == "Pod" {
        default_tolerations(obj, api.admission.default_toleration_seconds);
    }
}

/// Adds `not-ready:NoExecute` and `unreachable:NoExecute` tolerations for `seconds` to a pod
/// that does not tolerate those taints already. A toleration with an empty key (with
/// `Exists`) or an empty effect covers them, as upstream reads it.
pub fn default_tolerations(pod: &mut Value, seconds: i64) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let covers = |t: &Value, key: &str| {
        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
        let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
        (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
    };
    let existing: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = Vec::new();
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        if !existing.iter().any(|t| covers(t, key)) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if added.is_empty() {
        return;
    }
    let mut all = existing;
    all.extend(added);
    spec["tolerations"] = Value::Array(all);
}

/// A claim with no `storageClassName` (absent, not empty) gets the default StorageClass:
/// the newest one marked default, by name when several are equally new.
async fn default_storage_class(api: &Api, claim: &mut Value) -> Result<(), ApiError> {
    let named = claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null());
    let annotated = claim
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(BETA_CLASS_ANNOTATION));
    if named || annotated || !claim.get("spec").is_some_and(Value::is_object) {
        return Ok(());
    }
    let Some(classes) =
        crate::apiserver::registry::lookup("storage.k8s.io", "v1", "storageclasses")
    else {
        return Ok(());
    };
    let listed = api
        .store
        .list(&classes.storage_prefix(), None, 0, None)
        .await
        .map_err(|e| ApiError::from_store(classes, "", e))?;
    let mut all = Vec::with_capacity(listed.kvs.len());
    for kv in &listed.kvs {
        all.push(decode_stored(kv)?);
    }
    if let Some(name) = default_class(&all) {
        claim["spec"]["storageClassName"] = json!(name);
    }
    Ok(())
}

/// The default class among `classes`, as upstream picks it.
pub fn default_class(classes: &[Value]) -> Option<String> {
    let is_default = |c: &Value| {
        let a = c.pointer("/metadata/annotations");
        let flag = |k: &str| {
            a.and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .is_some_and(|v| v == "true")
        };
        flag(DEFAULT_CLASS_ANNOTATION) || flag(BETA_DEFAULT_CLASS_ANNOTATION)
    };
    let created = |c: &Value| {
        c.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    let name = |c: &Value| {
        c.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    classes
        .iter()
        .filter(|c| is_default(c))
        .min_by(|a, b| {
            created(b)
                .cmp(&created(a))
                .then_with(|| name(a).cmp(&name(b)))
        })
        .map(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_both_tolerations_unless_they_have_them() {
        let mut pod = json!({"spec": {"containers": []}});
        default_tolerations(&mut pod, 300);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Their own toleration for one taint is kept; the other is added.
        let mut pod = json!({"spec": {"tolerations": [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}});
        default_tolerations(&mut pod, 300);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 2);
        assert_eq!(t[1]["key"], TAINT_NOT_READY);
        // Tolerating everything covers both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut pod, 300);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
        // An effect-less toleration of the key covers NoExecute too.
        let mut pod =
            json!({"spec": {"tolerations": [{"key": TAINT_NOT_READY, "operator": "Exists"}]}});
        default_tolerations(&mut pod, 30);
        let t = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1]["key"], TAINT_UNREACHABLE);
        assert_eq!(t[1]["tolerationSeconds"], 30);
    }

    #[test]
    fn the_newest_default_class_wins() {
        let class = |name: &str, default: bool, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created,
                "annotations": {DEFAULT_CLASS_ANNOTATION: if default { "true" } else { "false" }}}})
        };
        assert_eq!(default_class(&[]), None);
        assert_eq!(
            default_class(&[class("a", false, "2024-01-01T00:00:00Z")]),
            None
        );
        let classes = [
            class("old", true, "2024-01-01T00:00:00Z"),
            class("new", true, "2024-02-01T00:00:00Z"),
            class("other", false, "2024-03-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).as_deref(), Some("new"));
        let tie = [
            class("b", true, "2024-01-01T00:00:00Z"),
            class("a", true, "2024-01-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&tie).as_deref(), Some("a"));
    }
}
