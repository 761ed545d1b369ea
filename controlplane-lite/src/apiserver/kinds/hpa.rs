//! HorizontalPodAutoscaler in its stored version (autoscaling/v2): defaulting and
//! validation as kube-apiserver 1.33 applies them (with the alpha feature gates off).
//!
//! autoscaling/v1 objects are converted to this form first (`hpa_v1`), so they are
//! defaulted and validated here too, and their errors name the v2 field paths, as
//! kube-apiserver's (which validates its internal, v2-shaped, version) do.

use serde_json::{Map, Value, json};
use skiff_api::names;
use skiff_api::quantity::Quantity;

use crate::apiserver::object::{self, default_at};
use crate::apiserver::status::Cause;

/// The CPU target of an HPA that names no metric (and of a v1 one without
/// `targetCPUUtilizationPercentage`).
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;
/// The longest policy period and stabilization window validation allows.
const MAX_PERIOD_SECONDS: i64 = 1800;
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;

/// `{type: Resource, resource: {name: cpu, target: Utilization 80%}}`.
pub fn default_cpu_metric() -> Value {
    cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)
}

pub fn cpu_utilization_metric(percent: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn default_scale_up() -> Value {
    json!({
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    })
}

/// The scale-down rules leave the window unset: the controller's
/// `--horizontal-pod-autoscaler-downscale-stabilization` fills it.
fn default_scale_down() -> Value {
    json!({
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    })
}

/// Fills the unset fields of `rules` from `defaults`, as the v2 defaulter copies them.
fn fill_rules(rules: Option<&Value>, defaults: Value) -> Value {
    let mut out = defaults;
    if let (Some(given), Some(o)) = (rules.and_then(Value::as_object), out.as_object_mut()) {
        for key in ["selectPolicy", "stabilizationWindowSeconds", "policies"] {
            if let Some(v) = given.get(key).filter(|v| !v.is_null()) {
                o.insert(key.into(), v.clone());
            }
        }
    }
    out
}

pub fn defaults(obj: &mut Value) {
    default_at(obj, &["spec", "minReplicas"], json!(1));
    let metrics = object::entry(obj, &["spec", "metrics"]);
    if metrics.as_array().is_none_or(Vec::is_empty) {
        *metrics = json!([default_cpu_metric()]);
    }
    if let Some(behavior) = obj
        .pointer_mut("/spec/behavior")
        .and_then(Value::as_object_mut)
    {
        let up = fill_rules(behavior.get("scaleUp"), default_scale_up());
        let down = fill_rules(behavior.get("scaleDown"), default_scale_down());
        behavior.insert("scaleUp".into(), up);
        behavior.insert("scaleDown".into(), down);
    }
    // The per-HPA tolerance is alpha in 1.33 (HPAConfigurableTolerance, off by default):
    // kube-apiserver drops the field, and so does this.
    for dir in ["scaleUp", "scaleDown"] {
        if let Some(rules) = obj
            .pointer_mut(&format!("/spec/behavior/{dir}"))
            .and_then(Value::as_object_mut)
        {
            rules.remove("tolerance");
        }
    }
    // The status is a struct in Go: a new object reads back with a zero one.
    default_at(obj, &["status", "desiredReplicas"], json!(0));
}

type Causes = Vec<Cause>;

fn required(field: impl Into<String>, detail: &str) -> Cause {
    let mut c = Cause::required(field);
    if !detail.is_empty() {
        c.message = format!("Required value: {detail}");
    }
    c
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn validate(obj: &Value, old: Option<&Value>, c: &mut Causes) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    // minReplicas 0 needs the HPAScaleToZero gate, unless the object already has it.
    let lower = if old.and_then(|o| o.pointer("/spec/minReplicas")) == Some(&json!(0)) {
        0
    } else {
        1
    };
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(m) = min
        && m < lower
    {
        c.push(Cause::invalid(
            "spec.minReplicas",
            &json!(m),
            format!("must be greater than or equal to {lower}"),
        ));
    }
    if max < 1 {
        c.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if let Some(m) = min
        && max < m
    {
        c.push(Cause::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    cross_version_ref(
        spec.get("scaleTargetRef").unwrap_or(&null),
        "spec.scaleTargetRef",
        c,
    );
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut scales_from_zero = false;
    for (i, m) in metrics.iter().enumerate() {
        metric_spec(m, &format!("spec.metrics[{i}]"), c);
        scales_from_zero |= matches!(str_at(m, "type"), "Object" | "External");
    }
    if min == Some(0) && !scales_from_zero {
        c.push(Cause::forbidden(
            "spec.metrics",
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        for dir in ["scaleUp", "scaleDown"] {
            if let Some(rules) = b.get(dir).filter(|r| !r.is_null()) {
                scaling_rules(rules, &format!("spec.behavior.{dir}"), c);
            }
        }
    }
    if old.is_some() {
        for f in ["currentReplicas", "desiredReplicas"] {
            if let Some(n) = obj
                .pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .filter(|n| *n < 0)
            {
                c.push(Cause::invalid(
                    format!("status.{f}"),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

fn cross_version_ref(r: &Value, path: &str, c: &mut Causes) {
    for key in ["kind", "name"] {
        let v = str_at(r, key);
        if v.is_empty() {
            c.push(Cause::required(format!("{path}.{key}")));
        } else {
            for e in names::path_segment_name_errors(v) {
                c.push(Cause::invalid(format!("{path}.{key}"), &json!(v), e));
            }
        }
    }
}

const SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn present(m: &Value, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// One metric: its type, exactly one source of that type, and the source's target.
fn metric_spec(m: &Value, path: &str, c: &mut Causes) {
    let ty = str_at(m, "type");
    if ty.is_empty() {
        c.push(required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !SOURCE_TYPES.contains(&ty) {
        c.push(Cause::not_supported(
            format!("{path}.type"),
            &json!(ty),
            SOURCE_TYPES,
        ));
    }
    // Only the first source given is looked into, as upstream does.
    let mut given: Vec<&str> = Vec::new();
    for key in [
        "object",
        "external",
        "pods",
        "resource",
        "containerResource",
    ] {
        if !present(m, key) {
            continue;
        }
        given.push(key);
        if given.len() == 1 {
            let src = &m[key];
            let p = format!("{path}.{key}");
            match key {
                "object" => object_source(src, &p, c),
                "external" => external_source(src, &p, c),
                "pods" => pods_source(src, &p, c),
                "resource" => resource_source(src, &p, false, c),
                _ => resource_source(src, &p, true, c),
            }
        }
    }
    let expected = match ty {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        _ => "",
    };
    if expected.is_empty() {
        c.push(Cause::not_supported(
            format!("{path}.type"),
            &json!(ty),
            SOURCE_TYPES,
        ));
    } else if !present(m, expected) {
        c.push(required(
            format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    if given.len() != 1 {
        for key in given.iter().filter(|k| **k != expected) {
            c.push(Cause::forbidden(
                format!("{path}.{key}"),
                "must populate the given metric source only",
            ));
        }
    }
}

fn object_source(src: &Value, path: &str, c: &mut Causes) {
    cross_version_ref(
        src.get("describedObject").unwrap_or(&Value::Null),
        &format!("{path}.describedObject"),
        c,
    );
    metric_identifier(src.get("metric"), &format!("{path}.metric"), c);
    let target = src.get("target").unwrap_or(&Value::Null);
    metric_target(target, &format!("{path}.target"), c);
    if !present(target, "value") && !present(target, "averageValue") {
        c.push(required(
            format!("{path}.target.averageValue"),
            "must set either a target value or averageValue",
        ));
    }
}

fn external_source(src: &Value, path: &str, c: &mut Causes) {
    metric_identifier(src.get("metric"), &format!("{path}.metric"), c);
    let target = src.get("target").unwrap_or(&Value::Null);
    metric_target(target, &format!("{path}.target"), c);
    let (value, average) = (present(target, "value"), present(target, "averageValue"));
    if !value && !average {
        c.push(required(
            format!("{path}.target.averageValue"),
            "must set either a target value for metric or a per-pod target",
        ));
    }
    if value && average {
        c.push(Cause::forbidden(
            format!("{path}.target.value"),
            "may not set both a target value for metric and a per-pod target",
        ));
    }
}

fn pods_source(src: &Value, path: &str, c: &mut Causes) {
    metric_identifier(src.get("metric"), &format!("{path}.metric"), c);
    let target = src.get("target").unwrap_or(&Value::Null);
    metric_target(target, &format!("{path}.target"), c);
    if !present(target, "averageValue") {
        c.push(required(
            format!("{path}.target.averageValue"),
            "must specify a positive target averageValue",
        ));
    }
}

fn resource_source(src: &Value, path: &str, container: bool, c: &mut Causes) {
    if str_at(src, "name").is_empty() {
        c.push(required(
            format!("{path}.name"),
            "must specify a resource name",
        ));
    }
    if container {
        let name = str_at(src, "container");
        if name.is_empty() {
            c.push(required(
                format!("{path}.container"),
                "must specify a container",
            ));
        } else {
            for e in names::dns1123_label_errors(name) {
                c.push(Cause::invalid(format!("{path}.container"), &json!(name), e));
            }
        }
    }
    let target = src.get("target").unwrap_or(&Value::Null);
    metric_target(target, &format!("{path}.target"), c);
    let (util, average) = (
        present(target, "averageUtilization"),
        present(target, "averageValue"),
    );
    if !util && !average {
        c.push(required(
            format!("{path}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if util && average {
        c.push(Cause::forbidden(
            format!("{path}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

fn metric_target(t: &Value, path: &str, c: &mut Causes) {
    let ty = str_at(t, "type");
    if ty.is_empty() {
        c.push(required(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(ty, "Utilization" | "Value" | "AverageValue") {
        c.push(Cause::invalid(
            format!("{path}.type"),
            &json!(ty),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for key in ["value", "averageValue"] {
        let Some(q) = t.get(key).and_then(Value::as_str) else {
            continue;
        };
        match Quantity::parse(q) {
            Ok(parsed) if parsed.signum() == 1 => {}
            Ok(_) => c.push(Cause::invalid(
                format!("{path}.{key}"),
                &json!(q),
                "must be positive",
            )),
            Err(e) => c.push(Cause::invalid(
                format!("{path}.{key}"),
                &json!(q),
                e.to_string(),
            )),
        }
    }
    if let Some(u) = t
        .get("averageUtilization")
        .and_then(Value::as_i64)
        .filter(|u| *u < 1)
    {
        c.push(Cause::invalid(
            format!("{path}.averageUtilization"),
            &json!(u),
            "must be greater than 0",
        ));
    }
}

fn metric_identifier(id: Option<&Value>, path: &str, c: &mut Causes) {
    let name = id.map(|i| str_at(i, "name")).unwrap_or("");
    if name.is_empty() {
        c.push(required(
            format!("{path}.name"),
            "must specify a metric name",
        ));
    } else {
        for e in names::path_segment_name_errors(name) {
            c.push(Cause::invalid(format!("{path}.name"), &json!(name), e));
        }
    }
}

fn scaling_rules(rules: &Value, path: &str, c: &mut Causes) {
    if let Some(w) = rules
        .get("stabilizationWindowSeconds")
        .and_then(Value::as_i64)
    {
        if w < 0 {
            c.push(Cause::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(w),
                "must be greater than or equal to zero",
            ));
        }
        if w > MAX_STABILIZATION_WINDOW_SECONDS {
            c.push(Cause::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(w),
                format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    if let Some(p) = rules.get("selectPolicy").and_then(Value::as_str)
        && !matches!(p, "Disabled" | "Max" | "Min")
    {
        c.push(Cause::not_supported(
            format!("{path}.selectPolicy"),
            &json!(p),
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = rules
        .get("policies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if policies.is_empty() {
        c.push(required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let ty = str_at(p, "type");
        if !matches!(ty, "Pods" | "Percent") {
            c.push(Cause::not_supported(
                format!("{at}.type"),
                &json!(ty),
                &["Percent", "Pods"],
            ));
        }
        let value = p.get("value").and_then(Value::as_i64).unwrap_or(0);
        if value <= 0 {
            c.push(Cause::invalid(
                format!("{at}.value"),
                &json!(value),
                "must be greater than zero",
            ));
        }
        let period = p.get("periodSeconds").and_then(Value::as_i64).unwrap_or(0);
        if period <= 0 {
            c.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                "must be greater than zero",
            ));
        }
        if period > MAX_PERIOD_SECONDS {
            c.push(Cause::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
}

/// An empty map stays out of the object, as Go's `omitempty` leaves it.
pub(super) fn insert_nonempty(m: &mut Map<String, Value>, key: &str, v: Value) {
    let empty = v.is_null()
        || v.as_object().is_some_and(Map::is_empty)
        || v.as_array().is_some_and(Vec::is_empty);
    if !empty {
        m.insert(key.into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(spec: Value) -> Value {
        let mut o = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        defaults(&mut o);
        o
    }

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        let mut c = Vec::new();
        validate(obj, old, &mut c);
        c.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn target() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    }

    #[test]
    fn defaults_fill_min_metrics_and_behavior() {
        let o = hpa(json!({"scaleTargetRef": target(), "maxReplicas": 3}));
        assert_eq!(o["spec"]["minReplicas"], 1);
        assert_eq!(o["spec"]["metrics"], json!([default_cpu_metric()]));
        assert!(o["spec"].get("behavior").is_none());
        assert_eq!(o["status"], json!({"desiredReplicas": 0}));
        let o = hpa(json!({
            "scaleTargetRef": target(), "maxReplicas": 3,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}], "tolerance": "0.05"}},
        }));
        let b = &o["spec"]["behavior"];
        assert_eq!(b["scaleUp"], default_scale_up());
        assert_eq!(
            b["scaleDown"],
            json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]})
        );
        assert!(messages(&o, None).is_empty(), "{:?}", messages(&o, None));
    }

    #[test]
    fn replica_bounds_and_target_ref() {
        let o = hpa(
            json!({"minReplicas": 0, "maxReplicas": 0, "scaleTargetRef": {"kind": "Deployment"}}),
        );
        assert_eq!(
            messages(&o, None),
            vec![
                "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
                "spec.maxReplicas: Invalid value: 0: must be greater than 0",
                "spec.scaleTargetRef.name: Required value",
                "spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero replicas",
            ]
        );
        let o = hpa(
            json!({"minReplicas": 3, "maxReplicas": 2, "scaleTargetRef": {"kind": "a/b", "name": ".."}}),
        );
        assert_eq!(
            messages(&o, None),
            vec![
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Invalid value: \"a/b\": may not contain '/'",
                "spec.scaleTargetRef.name: Invalid value: \"..\": may not be '..'",
            ]
        );
    }

    #[test]
    fn metric_targets() {
        let o = hpa(
            json!({"maxReplicas": 2, "scaleTargetRef": target(), "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue"}}},
                {"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 5}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Bogus", "averageValue": "-1"}}},
            ]}),
        );
        assert_eq!(
            messages(&o, None),
            vec![
                "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
                "spec.metrics[1].resource.target.averageUtilization: Required value: must set either a target raw value or a target utilization",
                "spec.metrics[2].pods: Required value: must populate information for the given metric source",
                "spec.metrics[3].resource.target.type: Invalid value: \"Bogus\": must be either Utilization, Value, or AverageValue",
                "spec.metrics[3].resource.target.averageValue: Invalid value: \"-1\": must be positive",
            ]
        );
    }

    #[test]
    fn behavior_rules() {
        let o = hpa(
            json!({"maxReplicas": 2, "scaleTargetRef": target(), "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Most", "policies": []},
                "scaleDown": {"policies": [{"type": "Pod", "value": 0, "periodSeconds": 1801}]},
            }}),
        );
        assert_eq!(
            messages(&o, None),
            vec![
                "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600",
                "spec.behavior.scaleUp.selectPolicy: Unsupported value: \"Most\": supported values: \"Disabled\", \"Max\", \"Min\"",
                "spec.behavior.scaleUp.policies: Required value: must specify at least one Policy",
                "spec.behavior.scaleDown.policies[0].type: Unsupported value: \"Pod\": supported values: \"Percent\", \"Pods\"",
                "spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero",
                "spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
            ]
        );
    }
}
