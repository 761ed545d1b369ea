//! Per-kind behaviour: decoding through the k8s-openapi types, defaulting, validation and
//! the create/update strategies (what a client may set, what the server owns).

use serde_json::{Value, json};

use super::object;
use super::registry::ResourceInfo;

pub mod admission;
pub mod csr;
pub mod defaults;
pub mod hpa;
pub mod hpa_v1;
pub mod pdb;
pub mod validation;
mod validation_apps;
pub mod validation_batch;
pub mod validation_sets;

/// Runs `v` through the k8s-openapi type of `kind`, so the stored JSON is exactly what
/// Kubernetes would store: wrong types are refused, unknown fields are dropped.
pub fn normalize(kind: &str, v: Value) -> Result<Value, String> {
    use k8s_openapi::api;
    macro_rules! through {
        ($t:ty) => {{
            let typed: $t = serde_json::from_value(v).map_err(|e| e.to_string())?;
            serde_json::to_value(&typed).map_err(|e| e.to_string())
        }};
    }
    match kind {
        "Namespace" => through!(api::core::v1::Namespace),
        "Node" => through!(api::core::v1::Node),
        "Pod" => through!(api::core::v1::Pod),
        "Service" => through!(api::core::v1::Service),
        "Endpoints" => through!(api::core::v1::Endpoints),
        "ConfigMap" => through!(api::core::v1::ConfigMap),
        "Secret" => through!(api::core::v1::Secret),
        "Event" => through!(api::core::v1::Event),
        "ServiceAccount" => through!(api::core::v1::ServiceAccount),
        "PersistentVolume" => through!(api::core::v1::PersistentVolume),
        "PersistentVolumeClaim" => through!(api::core::v1::PersistentVolumeClaim),
        "Deployment" => through!(api::apps::v1::Deployment),
        "ReplicaSet" => through!(api::apps::v1::ReplicaSet),
        "StatefulSet" => through!(api::apps::v1::StatefulSet),
        "DaemonSet" => through!(api::apps::v1::DaemonSet),
        "ControllerRevision" => through!(api::apps::v1::ControllerRevision),
        "Job" => through!(api::batch::v1::Job),
        "CronJob" => through!(api::batch::v1::CronJob),
        "EndpointSlice" => through!(api::discovery::v1::EndpointSlice),
        "Ingress" => through!(api::networking::v1::Ingress),
        "Lease" => through!(api::coordination::v1::Lease),
        "StorageClass" => through!(api::storage::v1::StorageClass),
        "CertificateSigningRequest" => {
            through!(api::certificates::v1::CertificateSigningRequest)
        }
        "HorizontalPodAutoscaler" => through!(api::autoscaling::v2::HorizontalPodAutoscaler),
        "PodDisruptionBudget" => through!(api::policy::v1::PodDisruptionBudget),
        other => Err(format!("no type for kind {other}")),
    }
    .map(|mut v| {
        drop_empty(&mut v);
        v
    })
}

/// [`normalize`] through the type of the version `info` names (the stored version's type
/// is what [`normalize`] uses).
pub fn normalize_as(info: &ResourceInfo, v: Value) -> Result<Value, String> {
    use k8s_openapi::api;
    match (info.kind, info.version) {
        ("HorizontalPodAutoscaler", "v1") => {
            let typed: api::autoscaling::v1::HorizontalPodAutoscaler =
                serde_json::from_value(v).map_err(|e| e.to_string())?;
            let mut v = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
            drop_empty(&mut v);
            Ok(v)
        }
        _ => normalize(info.kind, v),
    }
}

/// Go's `omitempty` leaves empty maps and lists of these fields out of the JSON; doing the
/// same keeps `kubectl diff` and `-o yaml` free of `annotations: {}` noise.
fn drop_empty(v: &mut Value) {
    let empty = |x: &Value| {
        x.as_object().is_some_and(|m| m.is_empty()) || x.as_array().is_some_and(|a| a.is_empty())
    };
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "managedFields",
        ] {
            if m.get(k).is_some_and(empty) {
                m.remove(k);
            }
        }
    }
    if let Some(o) = v.as_object_mut() {
        for k in ["data", "binaryData"] {
            if o.get(k).is_some_and(empty) {
                o.remove(k);
            }
        }
    }
}

/// Paths of fields present in `input` that did not survive [`normalize`]: what Kubernetes'
/// strict decoding calls unknown fields.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, normalized, String::new(), &mut out);
    out
}

fn walk_unknown(input: &Value, norm: &Value, path: String, out: &mut Vec<String>) {
    match (input, norm) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(nv) => walk_unknown(v, nv, p, out),
                    None if v.is_null() => {}
                    // An empty map or list that Kubernetes' types would keep as absent.
                    None if v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|l| l.is_empty()) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                walk_unknown(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether the kind keeps its status apart from the main resource (updates to the object
/// leave status alone; `/status` updates change only status).
pub fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.has_subresource("status")
}

fn has_spec(obj: &Value) -> bool {
    obj.get("spec").is_some_and(|s| !s.is_null())
}

/// What the server sets on a new object, before validation.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value) {
    let m = object::meta_mut(obj);
    m.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    m.insert(
        "creationTimestamp".into(),
        Value::String(object::now_rfc3339()),
    );
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("resourceVersion");
    m.remove("selfLink");
    if !info.namespaced {
        m.remove("namespace");
    }
    if has_spec(obj)
        || matches!(
            info.kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob"
        )
    {
        object::meta_mut(obj).insert("generation".into(), json!(1));
    }
    // The server owns status for these: whatever a client sends on create is reset.
    if has_status_subresource(info)
        && !matches!(info.kind, "Node")
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    defaults::apply(info, obj);
}

/// Carries server-owned fields from `old` to `new` for an update of the main resource
/// (`subresource == None`) or of `status`.
pub fn prepare_update(
    info: &ResourceInfo,
    new: &mut Value,
    old: &Value,
    subresource: Option<&str>,
) {
    // An approval takes the new conditions only: the generic strategy would keep the old.
    if subresource != Some("approval") {
        generic_prepare_update(info, new, old, subresource);
    }
    if info.kind == csr::KIND {
        csr::prepare_update(new, old, subresource);
    }
}

fn generic_prepare_update(
    info: &ResourceInfo,
    new: &mut Value,
    old: &Value,
    subresource: Option<&str>,
) {
    if subresource == Some("status") {
        // A status update changes status only (and keeps everything else as stored).
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        if let Some(o) = merged.as_object_mut() {
            match status {
                Some(s) => {
                    o.insert("status".into(), s);
                }
                None => {
                    o.remove("status");
                }
            }
        }
        *new = merged;
        return;
    }
    if let Some(om) = object::meta(old) {
        let keep: Vec<(String, Value)> = [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ]
        .iter()
        .filter_map(|k| om.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
        let nm = object::meta_mut(new);
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            nm.remove(k);
        }
        for (k, v) in keep {
            nm.insert(k, v);
        }
        if !info.namespaced {
            nm.remove("namespace");
        }
    }
    if has_status_subresource(info)
        && let Some(o) = new.as_object_mut()
    {
        match old.get("status") {
            Some(s) => {
                o.insert("status".into(), s.clone());
            }
            None => {
                o.remove("status");
            }
        }
    }
    defaults::apply(info, new);
    if new.get("spec") != old.get("spec") {
        let g = object::meta(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        object::meta_mut(new).insert("generation".into(), json!(g + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry;

    #[test]
    fn normalize_drops_unknown_and_reports_them() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1}, "data": {"k": "v"}, "extra": {"x": 1}, "labels": null});
        let n = normalize("ConfigMap", input.clone()).expect("normalize");
        assert!(n.get("extra").is_none());
        let mut u = unknown_fields(&input, &n);
        u.sort();
        assert_eq!(u, vec!["extra".to_string(), "metadata.bogus".to_string()]);
    }

    #[test]
    fn normalize_rejects_wrong_types() {
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": "nope"}});
        assert!(normalize("Pod", bad).is_err());
    }

    #[test]
    fn status_is_server_owned() {
        let deps = registry::lookup("apps", "v1", "deployments").expect("deployments");
        let old = json!({"metadata": {"name": "d", "uid": "u1", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        prepare_update(deps, &mut new, &old, None);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 2);
        let mut st =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 5}, "status": {"replicas": 3}});
        prepare_update(deps, &mut st, &old, Some("status"));
        assert_eq!(st["spec"]["replicas"], 1);
        assert_eq!(st["status"]["replicas"], 3);
    }
}
