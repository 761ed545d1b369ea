//! Kubernetes' validation rules, answered as field causes (`422 Invalid`).

use std::collections::HashSet;

use serde_json::{Value, json};
use skiff_api::{labels, names};

use crate::apiserver::object;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::status::Cause;

type Causes = Vec<Cause>;

fn name_rule(kind: &str) -> fn(&str) -> Vec<String> {
    match kind {
        "Namespace" => names::dns1123_label_errors,
        "Service" => names::dns1035_label_errors,
        _ => names::dns1123_subdomain_errors,
    }
}

pub fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Causes {
    let mut c = Causes::new();
    metadata(info, obj, &mut c);
    match info.kind {
        "Pod" => {
            if let Some(spec) = obj.get("spec") {
                pod_spec(spec, "spec", &mut c);
            } else {
                c.push(Cause::required("spec"));
            }
            if let Some(old) = old {
                pod_update(obj, old, &mut c);
            }
        }
        "Deployment" | "ReplicaSet" => {
            super::validation_apps::validate(info.kind == "Deployment", obj, old, &mut c);
        }
        "StatefulSet" | "DaemonSet" => {
            workload(
                info,
                &super::validation_sets::as_pods_see_it(info.kind, obj),
                &mut c,
            );
            if let Some(old) = old {
                immutable(obj, old, "/spec/selector", "spec.selector", &mut c);
            }
            match info.kind {
                "StatefulSet" => super::validation_sets::stateful_set(obj, old, &mut c),
                "DaemonSet" => super::validation_sets::daemon_set(obj, old, &mut c),
                _ => {}
            }
        }
        "Job" => {
            if let Some(spec) = obj.pointer("/spec/template/spec") {
                pod_spec(spec, "spec.template.spec", &mut c);
                let rp = spec
                    .get("restartPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if rp != "Never" && rp != "OnFailure" {
                    c.push(Cause::not_supported(
                        "spec.template.spec.restartPolicy",
                        &json!(rp),
                        &["OnFailure", "Never"],
                    ));
                }
            } else {
                c.push(Cause::required("spec.template"));
            }
            for f in ["completions", "parallelism", "backoffLimit"] {
                if obj
                    .pointer(&format!("/spec/{f}"))
                    .and_then(Value::as_i64)
                    .is_some_and(|n| n < 0)
                {
                    c.push(Cause::invalid(
                        format!("spec.{f}"),
                        &obj.pointer(&format!("/spec/{f}"))
                            .cloned()
                            .unwrap_or_default(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            if let Some(old) = old {
                immutable(obj, old, "/spec/selector", "spec.selector", &mut c);
                immutable(obj, old, "/spec/template", "spec.template", &mut c);
            }
            super::validation_batch::job(obj, old, &mut c);
        }
        "CronJob" => {
            if obj
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                c.push(Cause::required("spec.schedule"));
            }
            if let Some(spec) = obj.pointer("/spec/jobTemplate/spec/template/spec") {
                pod_spec(spec, "spec.jobTemplate.spec.template.spec", &mut c);
            } else {
                c.push(Cause::required("spec.jobTemplate.spec.template"));
            }
            super::validation_batch::cron_job(obj, old, &mut c);
        }
        "Service" => service(obj, &mut c),
        super::csr::KIND => super::csr::validate(obj, old, &mut c),
        "HorizontalPodAutoscaler" => super::hpa::validate(obj, old, &mut c),
        "PodDisruptionBudget" => super::pdb::validate(obj, &mut c),
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    for e in names::config_map_key_errors(k) {
                        c.push(Cause::invalid(format!("{field}[{k}]"), &json!(k), e));
                    }
                }
            }
            if info.kind == "ConfigMap"
                && let Some(old) = old
                && old.get("immutable") == Some(&json!(true))
                && (obj.get("data") != old.get("data")
                    || obj.get("binaryData") != old.get("binaryData"))
            {
                c.push(Cause::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        "Namespace" => {
            if let Some(old) = old {
                // A terminating namespace cannot be revived by an update.
                if object::is_deleting(old) && !object::is_deleting(obj) {
                    c.push(Cause::forbidden(
                        "metadata.deletionTimestamp",
                        "field is immutable",
                    ));
                }
            }
        }
        _ => {}
    }
    c
}

fn metadata(info: &ResourceInfo, obj: &Value, c: &mut Causes) {
    let name = object::name(obj);
    if name.is_empty() {
        c.push(Cause::required("metadata.name"));
    } else {
        for e in name_rule(info.kind)(name) {
            c.push(Cause::invalid("metadata.name", &json!(name), e));
        }
        for e in names::path_segment_name_errors(name) {
            c.push(Cause::invalid("metadata.name", &json!(name), e));
        }
    }
    if info.namespaced {
        let ns = object::namespace(obj);
        if ns.is_empty() {
            c.push(Cause::required("metadata.namespace"));
        }
    }
    for (k, v) in object::labels(obj) {
        for e in labels::label_key_errors(&k) {
            c.push(Cause::invalid("metadata.labels", &json!(k), e));
        }
        for e in labels::label_value_errors(&v) {
            c.push(Cause::invalid("metadata.labels", &json!(v), e));
        }
    }
    let ann_size: usize = object::meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    if ann_size > 262_144 {
        c.push(Cause::too_long("metadata.annotations", 262_144));
    }
}

fn immutable(new: &Value, old: &Value, ptr: &str, field: &str, c: &mut Causes) {
    if new.pointer(ptr) != old.pointer(ptr) {
        c.push(Cause::invalid(
            field,
            &new.pointer(ptr).cloned().unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
}

pub(super) fn pod_spec(spec: &Value, path: &str, c: &mut Causes) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        c.push(Cause::required(format!("{path}.containers")));
    }
    let mut seen = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, ct) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = format!("{path}.{list}[{i}]");
            container(ct, &p, c);
            let name = ct.get("name").and_then(Value::as_str).unwrap_or("");
            if !name.is_empty() && !seen.insert(name.to_string()) {
                c.push(Cause::duplicate(format!("{p}.name"), &json!(name)));
            }
        }
    }
    let rp = spec
        .get("restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    one_of(
        c,
        format!("{path}.restartPolicy"),
        rp,
        &["Always", "OnFailure", "Never"],
    );
    let dp = spec
        .get("dnsPolicy")
        .and_then(Value::as_str)
        .unwrap_or("ClusterFirst");
    one_of(
        c,
        format!("{path}.dnsPolicy"),
        dp,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    let mut vols = HashSet::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            c.push(Cause::required(format!("{path}.volumes[{i}].name")));
        } else if !vols.insert(name.to_string()) {
            c.push(Cause::duplicate(
                format!("{path}.volumes[{i}].name"),
                &json!(name),
            ));
        } else {
            for e in names::dns1123_label_errors(name) {
                c.push(Cause::invalid(
                    format!("{path}.volumes[{i}].name"),
                    &json!(name),
                    e,
                ));
            }
        }
    }
    for list in ["initContainers", "containers"] {
        for (i, ct) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, m) in ct
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                if !vols.contains(name) {
                    c.push(Cause {
                        reason: "FieldValueNotFound",
                        field: format!("{path}.{list}[{i}].volumeMounts[{j}].name"),
                        message: format!("Not found: {name:?}"),
                    });
                }
            }
        }
    }
}

fn container(ct: &Value, p: &str, c: &mut Causes) {
    let name = ct.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        c.push(Cause::required(format!("{p}.name")));
    } else {
        for e in names::dns1123_label_errors(name) {
            c.push(Cause::invalid(format!("{p}.name"), &json!(name), e));
        }
    }
    if ct
        .get("image")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        c.push(Cause::required(format!("{p}.image")));
    }
    let mut port_names = HashSet::new();
    for (i, port) in ct
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cp = port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !(1..=65535).contains(&cp) {
            c.push(Cause::invalid(
                format!("{p}.ports[{i}].containerPort"),
                &json!(cp),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(hp) = port.get("hostPort").and_then(Value::as_i64)
            && !(0..=65535).contains(&hp)
        {
            c.push(Cause::invalid(
                format!("{p}.ports[{i}].hostPort"),
                &json!(hp),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(n) = port.get("name").and_then(Value::as_str) {
            for e in names::port_name_errors(n) {
                c.push(Cause::invalid(format!("{p}.ports[{i}].name"), &json!(n), e));
            }
            if !port_names.insert(n.to_string()) {
                c.push(Cause::duplicate(format!("{p}.ports[{i}].name"), &json!(n)));
            }
        }
        protocol(port, &format!("{p}.ports[{i}].protocol"), c);
    }
    for (i, e) in ct
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let n = e.get("name").and_then(Value::as_str).unwrap_or("");
        if n.is_empty() {
            c.push(Cause::required(format!("{p}.env[{i}].name")));
        } else {
            for err in names::relaxed_env_var_name_errors(n) {
                c.push(Cause::invalid(format!("{p}.env[{i}].name"), &json!(n), err));
            }
        }
    }
    let policy = ct
        .get("imagePullPolicy")
        .and_then(Value::as_str)
        .unwrap_or("IfNotPresent");
    one_of(
        c,
        format!("{p}.imagePullPolicy"),
        policy,
        &["Always", "IfNotPresent", "Never"],
    );
    for kind in ["requests", "limits"] {
        for (res, q) in ct
            .pointer(&format!("/resources/{kind}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let s = q
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| q.to_string());
            if let Err(e) = s.parse::<skiff_api::quantity::Quantity>() {
                c.push(Cause::invalid(
                    format!("{p}.resources.{kind}[{res}]"),
                    &json!(s),
                    e.to_string(),
                ));
            } else if s.starts_with('-') {
                c.push(Cause::invalid(
                    format!("{p}.resources.{kind}[{res}]"),
                    &json!(s),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    // A request above its limit can never be satisfied.
    let req = ct.pointer("/resources/requests").and_then(Value::as_object);
    let lim = ct.pointer("/resources/limits").and_then(Value::as_object);
    if let (Some(req), Some(lim)) = (req, lim) {
        for (res, r) in req {
            let (Some(r), Some(l)) = (r.as_str(), lim.get(res).and_then(Value::as_str)) else {
                continue;
            };
            if let (Ok(rq), Ok(lq)) = (
                r.parse::<skiff_api::quantity::Quantity>(),
                l.parse::<skiff_api::quantity::Quantity>(),
            ) && rq > lq
            {
                c.push(Cause::invalid(
                    format!("{p}.resources.requests[{res}]"),
                    &json!(r),
                    format!("must be less than or equal to {res} limit of {l}"),
                ));
            }
        }
    }
}

/// `value` must be one of `allowed` (Kubernetes' "Unsupported value" otherwise).
fn one_of(c: &mut Causes, field: impl Into<String>, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        c.push(Cause::not_supported(field, &json!(value), allowed));
    }
}

fn protocol(port: &Value, field: &str, c: &mut Causes) {
    let proto = port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    one_of(c, field, proto, &["SCTP", "TCP", "UDP"]);
}

/// Pods are immutable but for a few fields, as Kubernetes enforces.
fn pod_update(new: &Value, old: &Value, c: &mut Causes) {
    let mask = |spec: &Value| -> Value {
        let mut s = spec.clone();
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                for ct in cs {
                    if let Some(o) = ct.as_object_mut() {
                        o.remove("image");
                    }
                }
            }
        }
        if let Some(o) = s.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                o.remove(k);
            }
            // Scheduling fills nodeName once.
            if old
                .pointer("/spec/nodeName")
                .is_none_or(|n| n.as_str() == Some(""))
            {
                o.remove("nodeName");
            }
        }
        s
    };
    let (Some(ns), Some(os)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let mut os = mask(os);
    let ns = mask(ns);
    if let Some(o) = os.as_object_mut()
        && new.pointer("/spec/nodeName").is_some()
        && old
            .pointer("/spec/nodeName")
            .is_none_or(|n| n.as_str() == Some(""))
    {
        o.remove("nodeName");
    }
    if ns != os {
        c.push(Cause::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
    }
}

fn workload(_info: &ResourceInfo, obj: &Value, c: &mut Causes) {
    let Some(sel) = obj.pointer("/spec/selector") else {
        c.push(Cause::required("spec.selector"));
        return;
    };
    let selector: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, _> =
        serde_json::from_value(sel.clone());
    let tmpl_labels: std::collections::BTreeMap<String, String> = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    match selector
        .map_err(|e| e.to_string())
        .and_then(|s| labels::Selector::from_label_selector(&s).map_err(|e| e.to_string()))
    {
        Err(e) => c.push(Cause::invalid("spec.selector", sel, e)),
        Ok(s) if s.is_empty() => c.push(Cause::invalid(
            "spec.selector",
            sel,
            "empty selector is invalid for deployment",
        )),
        Ok(s) => {
            if !s.matches(&tmpl_labels) {
                c.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &json!(tmpl_labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
        && r < 0
    {
        c.push(Cause::invalid(
            "spec.replicas",
            &json!(r),
            "must be greater than or equal to 0",
        ));
    }
    match obj.pointer("/spec/template/spec") {
        Some(spec) => {
            pod_spec(spec, "spec.template.spec", c);
            let rp = spec
                .get("restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always");
            if rp != "Always" {
                c.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    &json!(rp),
                    &["Always"],
                ));
            }
        }
        None => c.push(Cause::required("spec.template")),
    }
}

fn service(obj: &Value, c: &mut Causes) {
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    one_of(
        c,
        "spec.type",
        ty,
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    );
    let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if ty == "ExternalName" {
        if obj
            .pointer("/spec/externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            c.push(Cause::required("spec.externalName"));
        }
    } else if ports.is_none_or(Vec::is_empty) && !headless {
        c.push(Cause::required("spec.ports"));
    }
    let ports = ports.cloned().unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            c.push(Cause::invalid(
                format!("spec.ports[{i}].port"),
                &json!(port),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            c.push(Cause::required(format!("spec.ports[{i}].name")));
        }
        if !name.is_empty() {
            for e in names::dns1123_label_errors(name) {
                c.push(Cause::invalid(
                    format!("spec.ports[{i}].name"),
                    &json!(name),
                    e,
                ));
            }
            if !seen.insert(name.to_string()) {
                c.push(Cause::duplicate(
                    format!("spec.ports[{i}].name"),
                    &json!(name),
                ));
            }
        }
        protocol(p, &format!("spec.ports[{i}].protocol"), c);
        if let Some(tp) = p.get("targetPort") {
            match tp {
                Value::Number(n) if !(1..=65535).contains(&n.as_i64().unwrap_or(0)) => {
                    c.push(Cause::invalid(
                        format!("spec.ports[{i}].targetPort"),
                        tp,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                Value::String(s) => {
                    for e in names::port_name_errors(s) {
                        c.push(Cause::invalid(format!("spec.ports[{i}].targetPort"), tp, e));
                    }
                }
                _ => {}
            }
        }
        if ty == "ClusterIP"
            && p.get("nodePort")
                .and_then(Value::as_i64)
                .is_some_and(|n| n != 0)
        {
            c.push(Cause::forbidden(
                format!("spec.ports[{i}].nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    let aff = obj
        .pointer("/spec/sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("None");
    one_of(c, "spec.sessionAffinity", aff, &["ClientIP", "None"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry;

    fn info(plural: &str) -> &'static ResourceInfo {
        registry::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("registered")
    }

    #[test]
    fn pod_rules() {
        let bad = json!({"metadata": {"name": "Bad_Name", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}});
        let causes = validate(info("pods"), &bad, None);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"metadata.name"), "{causes:?}");
        assert!(fields.contains(&"spec.containers[0].image"), "{causes:?}");
        let ok = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}}]}});
        assert!(validate(info("pods"), &ok, None).is_empty());
        let mut changed = ok.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx");
        assert!(validate(info("pods"), &changed, Some(&ok)).is_empty());
        changed["spec"]["containers"][0]["name"] = json!("d");
        assert!(!validate(info("pods"), &changed, Some(&ok)).is_empty());
    }

    #[test]
    fn selector_must_match_template() {
        let d = json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let causes = validate(info("deployments"), &d, None);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_rules() {
        let s = json!({"metadata": {"name": "9svc", "namespace": "default"}, "spec": {"ports": [{"port": 0}]}});
        let fields: Vec<String> = validate(info("services"), &s, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert!(fields.contains(&"metadata.name".to_string()));
        assert!(fields.contains(&"spec.ports[0].port".to_string()));
    }
}
