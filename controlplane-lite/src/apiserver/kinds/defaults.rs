//! Kubernetes' defaulting, so objects read back as they would from a real cluster.

use serde_json::{Value, json};

use crate::apiserver::object::default_at;
use crate::apiserver::registry::ResourceInfo;

pub fn apply(info: &ResourceInfo, obj: &mut Value) {
    match info.kind {
        "Namespace" => namespace(obj),
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
            if obj.pointer("/status/phase").is_none() {
                default_at(obj, &["status", "phase"], json!("Pending"));
            }
            let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
            default_at(obj, &["status", "qosClass"], json!(qos));
        }
        "Service" => service(obj),
        "Secret" => secret(obj),
        "HorizontalPodAutoscaler" => super::hpa::defaults(obj),
        "Deployment" => {
            default_at(obj, &["spec", "replicas"], json!(1));
            default_at(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
            if obj.pointer("/spec/strategy/type") == Some(&json!("RollingUpdate")) {
                default_at(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!("25%"),
                );
                default_at(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!("25%"),
                );
            }
            default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            template(obj, &["spec", "template"]);
        }
        "ReplicaSet" => {
            default_at(obj, &["spec", "replicas"], json!(1));
            template(obj, &["spec", "template"]);
        }
        "StatefulSet" => {
            default_at(obj, &["spec", "replicas"], json!(1));
            default_at(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            default_at(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
                default_at(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "partition"],
                    json!(0),
                );
            }
            default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(
                obj,
                &[
                    "spec",
                    "persistentVolumeClaimRetentionPolicy",
                    "whenDeleted",
                ],
                json!("Retain"),
            );
            default_at(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy", "whenScaled"],
                json!("Retain"),
            );
            if let Some(claims) = obj
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for c in claims {
                    default_at(c, &["spec", "volumeMode"], json!("Filesystem"));
                    default_at(c, &["status", "phase"], json!("Pending"));
                }
            }
            template(obj, &["spec", "template"]);
        }
        "DaemonSet" => {
            default_at(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
                default_at(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
                    json!(1),
                );
                default_at(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "maxSurge"],
                    json!(0),
                );
            }
            default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
            template(obj, &["spec", "template"]);
        }
        "Job" => {
            job_spec(obj, &["spec"]);
        }
        "CronJob" => {
            default_at(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
            default_at(obj, &["spec", "suspend"], json!(false));
            default_at(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
            default_at(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
            job_spec(obj, &["spec", "jobTemplate", "spec"]);
        }
        "PersistentVolumeClaim" => {
            default_at(obj, &["spec", "volumeMode"], json!("Filesystem"));
            default_at(obj, &["status", "phase"], json!("Pending"));
        }
        "PersistentVolume" => {
            default_at(
                obj,
                &["spec", "persistentVolumeReclaimPolicy"],
                json!("Retain"),
            );
            default_at(obj, &["spec", "volumeMode"], json!("Filesystem"));
            default_at(obj, &["status", "phase"], json!("Pending"));
        }
        "StorageClass" => {
            default_at(obj, &["reclaimPolicy"], json!("Delete"));
            default_at(obj, &["volumeBindingMode"], json!("Immediate"));
        }
        "Endpoints" => {
            if let Some(subsets) = obj.get_mut("subsets").and_then(Value::as_array_mut) {
                for s in subsets {
                    if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
                        for p in ports {
                            default_at(p, &["protocol"], json!("TCP"));
                        }
                    }
                }
            }
        }
        "EndpointSlice" => {
            // Clients dereference name and protocol unconditionally (kubectl describe does).
            if let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default_at(p, &["name"], json!(""));
                    default_at(p, &["protocol"], json!("TCP"));
                }
            }
        }
        "Ingress" => {
            if let Some(rules) = obj.pointer_mut("/spec/rules").and_then(Value::as_array_mut) {
                for r in rules {
                    if let Some(paths) = r.pointer_mut("/http/paths").and_then(Value::as_array_mut)
                    {
                        for p in paths {
                            default_at(p, &["pathType"], json!("ImplementationSpecific"));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        default_at(
            obj,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            json!(name),
        );
        if let Some(l) = obj.pointer_mut("/metadata/labels/kubernetes.io~1metadata.name") {
            // The label always names the namespace, whatever a client wrote.
            *l = json!(name);
        }
    }
    default_at(obj, &["spec", "finalizers"], json!(["kubernetes"]));
    default_at(obj, &["status", "phase"], json!("Active"));
}

fn secret(obj: &mut Value) {
    default_at(obj, &["type"], json!("Opaque"));
    // stringData is write-only: it folds into data, base64-encoded, and is never stored.
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    if let Some(sd) = sd.as_object() {
        use base64::Engine;
        for (k, v) in sd {
            if let Some(s) = v.as_str() {
                let enc = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                let data = crate::apiserver::object::entry(obj, &["data"]);
                if !data.is_object() {
                    *data = json!({});
                }
                if let Some(d) = data.as_object_mut() {
                    d.insert(k.clone(), json!(enc));
                }
            }
        }
    }
}

fn service(obj: &mut Value) {
    default_at(obj, &["spec", "type"], json!("ClusterIP"));
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    default_at(obj, &["spec", "sessionAffinity"], json!("None"));
    if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
            if p.get("targetPort").is_none_or(Value::is_null) {
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                if let Some(o) = p.as_object_mut() {
                    o.insert("targetPort".into(), port);
                }
            }
        }
    }
    if ty == "ExternalName" {
        return;
    }
    default_at(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        default_at(obj, &["spec", "externalTrafficPolicy"], json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_at(obj, &["spec", "allocateLoadBalancerNodePorts"], json!(true));
    }
    if obj.pointer("/spec/sessionAffinity") == Some(&json!("ClientIP")) {
        default_at(
            obj,
            &[
                "spec",
                "sessionAffinityConfig",
                "clientIP",
                "timeoutSeconds",
            ],
            json!(10800),
        );
    }
}

fn template(obj: &mut Value, path: &[&str]) {
    let mut p = String::new();
    for s in path {
        p.push('/');
        p.push_str(s);
    }
    p.push_str("/spec");
    if let Some(spec) = obj.pointer_mut(&p) {
        pod_spec(spec);
    }
}

fn job_spec(obj: &mut Value, path: &[&str]) {
    let ptr: String = path.iter().map(|s| format!("/{s}")).collect();
    let Some(spec) = obj.pointer_mut(&ptr) else {
        return;
    };
    let completions_unset = spec.get("completions").is_none_or(Value::is_null);
    let parallelism_unset = spec.get("parallelism").is_none_or(Value::is_null);
    if completions_unset && parallelism_unset {
        default_at(spec, &["completions"], json!(1));
    }
    default_at(spec, &["parallelism"], json!(1));
    default_at(spec, &["backoffLimit"], json!(6));
    default_at(spec, &["completionMode"], json!("NonIndexed"));
    default_at(spec, &["suspend"], json!(false));
    default_at(spec, &["manualSelector"], Value::Null);
    default_at(
        spec,
        &["podReplacementPolicy"],
        json!("TerminatingOrFailed"),
    );
    if let Some(s) = spec.pointer_mut("/template/spec") {
        default_at(s, &["restartPolicy"], json!("Never"));
        pod_spec(s);
    }
    if spec.get("manualSelector").is_some_and(Value::is_null)
        && let Some(o) = spec.as_object_mut()
    {
        o.remove("manualSelector");
    }
}

/// Defaults of a PodSpec (also inside workload templates).
pub fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["securityContext"], json!({}));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    default_at(spec, &["enableServiceLinks"], json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for src in ["configMap", "secret", "downwardAPI", "projected"] {
                if let Some(s) = v.get_mut(src) {
                    default_at(s, &["defaultMode"], json!(420));
                }
            }
            if let Some(hp) = v.get_mut("hostPath") {
                default_at(hp, &["type"], json!(""));
            }
        }
    }
}

fn container(c: &mut Value) {
    default_at(
        c,
        &["terminationMessagePath"],
        json!("/dev/termination-log"),
    );
    default_at(c, &["terminationMessagePolicy"], json!("File"));
    default_at(c, &["resources"], json!({}));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_at(c, &["imagePullPolicy"], json!(pull_policy_for(&image)));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_at(p, &["timeoutSeconds"], json!(1));
            default_at(p, &["periodSeconds"], json!(10));
            default_at(p, &["successThreshold"], json!(1));
            default_at(p, &["failureThreshold"], json!(3));
            if let Some(h) = p.get_mut("httpGet") {
                default_at(h, &["path"], json!("/"));
                default_at(h, &["scheme"], json!("HTTP"));
            }
        }
    }
    // Requests default to limits when only limits are given.
    let limits = c.pointer("/resources/limits").cloned();
    if let Some(Value::Object(l)) = limits {
        for (k, v) in l {
            default_at(c, &["resources", "requests", &k], v);
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
pub fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Kubernetes' QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["containers", "initContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = c.pointer("/resources/requests").and_then(Value::as_object);
            let lim = c.pointer("/resources/limits").and_then(Value::as_object);
            let relevant = |m: Option<&serde_json::Map<String, Value>>| {
                m.map(|m| {
                    m.iter()
                        .filter(|(k, _)| *k == "cpu" || *k == "memory")
                        .count()
                })
                .unwrap_or(0)
            };
            if relevant(req) > 0 || relevant(lim) > 0 {
                any = true;
            }
            for r in ["cpu", "memory"] {
                let l = lim.and_then(|m| m.get(r));
                let q = req.and_then(|m| m.get(r));
                match (l, q) {
                    (Some(l), Some(q)) if l == q => {}
                    (Some(_), None) => {}
                    _ => guaranteed = false,
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry;

    #[test]
    fn pod_defaults() {
        let pods = registry::lookup("", "v1", "pods").expect("pods");
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}});
        apply(pods, &mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        assert_eq!(
            pull_policy_for("registry:5000/busybox:1.36"),
            "IfNotPresent"
        );
        assert_eq!(pull_policy_for("localhost:5000/busybox"), "Always");
    }

    #[test]
    fn qos() {
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn service_and_secret() {
        let svc = registry::lookup("", "v1", "services").expect("svc");
        let mut s = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        apply(svc, &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        let sec = registry::lookup("", "v1", "secrets").expect("secret");
        let mut x = json!({"stringData": {"a": "hi"}});
        apply(sec, &mut x);
        assert_eq!(x["data"]["a"], "aGk=");
        assert!(x.get("stringData").is_none());
        assert_eq!(x["type"], "Opaque");
    }
}
