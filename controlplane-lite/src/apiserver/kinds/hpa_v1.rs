//! Conversion of HorizontalPodAutoscalers between autoscaling/v2 (stored) and
//! autoscaling/v1, as kube-apiserver converts them.
//!
//! v1 carries one CPU utilization target (`spec.targetCPUUtilizationPercentage`) and the
//! current CPU utilization. What it cannot hold travels in annotations, in the shapes
//! kube-apiserver writes there, so a v1 client that reads and writes back an object keeps
//! everything: other metrics (`autoscaling.alpha.kubernetes.io/metrics`, in v1's
//! v2beta1-shaped `MetricSpec`), current metrics (`.../current-metrics`), conditions
//! (`.../conditions`) and behavior (`.../behavior`, with the Go field names of the
//! internal type, as kube-apiserver marshals it). Reading v1 drops those annotations again.

use serde_json::{Map, Value, json};

use super::hpa::{cpu_utilization_metric, default_cpu_metric, insert_nonempty};

pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP: [&str; 4] = [
    METRICS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).into(), v.clone());
        }
    }
}

/// `v[key]` as given, or a zero quantity (a non-pointer Quantity in Go).
fn quantity_or_zero(v: &Value, key: &str) -> Value {
    v.get(key)
        .filter(|q| !q.is_null())
        .cloned()
        .unwrap_or_else(|| json!("0"))
}

fn is_cpu_utilization_target(m: &Value) -> bool {
    m["type"] == "Resource"
        && m.pointer("/resource/name") == Some(&json!("cpu"))
        && m.pointer("/resource/target/averageUtilization")
            .is_some_and(|u| !u.is_null())
}

/// The annotations without the round-trip ones (a fresh map).
fn annotations_without_round_trip(obj: &Value) -> Map<String, Value> {
    let mut a = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in ROUND_TRIP {
        a.remove(k);
    }
    a
}

fn set_annotations(obj: &mut Value, annotations: Map<String, Value>) {
    let meta = crate::apiserver::object::meta_mut(obj);
    if annotations.is_empty() {
        meta.remove("annotations");
    } else {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
}

// ---------- v2 → v1 ----------

/// The stored (v2) object as autoscaling/v1 shows it.
pub fn to_v1(v2: &Value) -> Value {
    let null = Value::Null;
    let spec = v2.get("spec").unwrap_or(&null);
    let status = v2.get("status").unwrap_or(&null);
    let mut annotations = annotations_without_round_trip(v2);
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    let mut out_spec = Map::new();
    if let Some(r) = spec.get("scaleTargetRef") {
        let mut reference = Map::new();
        copy(r, &mut reference, &["kind", "name", "apiVersion"]);
        out_spec.insert("scaleTargetRef".into(), Value::Object(reference));
    }
    copy(spec, &mut out_spec, &["minReplicas", "maxReplicas"]);
    if let Some(cpu) = metrics
        .iter()
        .find(|m| m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu")))
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
        .filter(|u| !u.is_null())
    {
        out_spec.insert("targetCPUUtilizationPercentage".into(), cpu.clone());
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization_target(m))
        .map(metric_spec_to_v1)
        .collect();
    if !others.is_empty() {
        annotations.insert(
            METRICS_ANNOTATION.into(),
            json!(Value::Array(others).to_string()),
        );
    }
    if let Some(b) = spec.get("behavior").filter(|b| b.is_object()) {
        annotations.insert(
            BEHAVIOR_ANNOTATION.into(),
            json!(behavior_to_internal(b).to_string()),
        );
    }

    let mut out_status = Map::new();
    copy(
        status,
        &mut out_status,
        &["observedGeneration", "lastScaleTime"],
    );
    for key in ["currentReplicas", "desiredReplicas"] {
        out_status.insert(
            key.into(),
            status.get(key).cloned().unwrap_or_else(|| json!(0)),
        );
    }
    let current = status
        .get("currentMetrics")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for m in current {
        if m["type"] == "Resource"
            && m.pointer("/resource/name") == Some(&json!("cpu"))
            && let Some(u) = m
                .pointer("/resource/current/averageUtilization")
                .filter(|u| !u.is_null())
        {
            out_status.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
    }
    if !current.is_empty() {
        let list: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
        annotations.insert(
            CURRENT_METRICS_ANNOTATION.into(),
            json!(Value::Array(list).to_string()),
        );
    }
    if let Some(conds) = status
        .get("conditions")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let list: Vec<Value> = conds
            .iter()
            .map(|c| {
                let mut o = Map::new();
                o.insert("type".into(), c.get("type").cloned().unwrap_or(json!("")));
                o.insert(
                    "status".into(),
                    c.get("status").cloned().unwrap_or(json!("")),
                );
                // A zero metav1.Time marshals as null.
                o.insert(
                    "lastTransitionTime".into(),
                    c.get("lastTransitionTime").cloned().unwrap_or(Value::Null),
                );
                copy(c, &mut o, &["reason", "message"]);
                Value::Object(o)
            })
            .collect();
        annotations.insert(
            CONDITIONS_ANNOTATION.into(),
            json!(Value::Array(list).to_string()),
        );
    }

    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v1"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    out.insert(
        "metadata".into(),
        v2.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    out.insert("spec".into(), Value::Object(out_spec));
    out.insert("status".into(), Value::Object(out_status));
    let mut out = Value::Object(out);
    set_annotations(&mut out, annotations);
    out
}

/// A v2 MetricTarget's fields under v1's (v2beta1) names.
fn target_to_v1(target: &Value, out: &mut Map<String, Value>, value_key: &str, average_key: &str) {
    if let Some(v) = target.get("value").filter(|v| !v.is_null()) {
        out.insert(value_key.into(), v.clone());
    }
    if let Some(v) = target.get("averageValue").filter(|v| !v.is_null()) {
        out.insert(average_key.into(), v.clone());
    }
}

fn metric_spec_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m.get("type").cloned().unwrap_or(json!("")));
    let null = Value::Null;
    if let Some(s) = m.get("object").filter(|s| !s.is_null()) {
        let target = s.get("target").unwrap_or(&null);
        let mut o = Map::new();
        o.insert(
            "target".into(),
            s.get("describedObject").cloned().unwrap_or(json!({})),
        );
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        o.insert("targetValue".into(), quantity_or_zero(target, "value"));
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("selector".into(), sel.clone());
        }
        if let Some(a) = target.get("averageValue").filter(|v| !v.is_null()) {
            o.insert("averageValue".into(), a.clone());
        }
        out.insert("object".into(), Value::Object(o));
    }
    if let Some(s) = m.get("pods").filter(|s| !s.is_null()) {
        let mut o = Map::new();
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        o.insert(
            "targetAverageValue".into(),
            quantity_or_zero(s.get("target").unwrap_or(&null), "averageValue"),
        );
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("selector".into(), sel.clone());
        }
        out.insert("pods".into(), Value::Object(o));
    }
    for key in ["resource", "containerResource"] {
        if let Some(s) = m.get(key).filter(|s| !s.is_null()) {
            let mut o = Map::new();
            o.insert("name".into(), s.get("name").cloned().unwrap_or(json!("")));
            let target = s.get("target").unwrap_or(&null);
            if let Some(u) = target.get("averageUtilization").filter(|v| !v.is_null()) {
                o.insert("targetAverageUtilization".into(), u.clone());
            }
            if let Some(a) = target.get("averageValue").filter(|v| !v.is_null()) {
                o.insert("targetAverageValue".into(), a.clone());
            }
            if key == "containerResource" {
                o.insert(
                    "container".into(),
                    s.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(o));
        }
    }
    if let Some(s) = m.get("external").filter(|s| !s.is_null()) {
        let mut o = Map::new();
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("metricSelector".into(), sel.clone());
        }
        target_to_v1(
            s.get("target").unwrap_or(&null),
            &mut o,
            "targetValue",
            "targetAverageValue",
        );
        out.insert("external".into(), Value::Object(o));
    }
    Value::Object(out)
}

fn metric_status_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m.get("type").cloned().unwrap_or(json!("")));
    let null = Value::Null;
    if let Some(s) = m.get("object").filter(|s| !s.is_null()) {
        let current = s.get("current").unwrap_or(&null);
        let mut o = Map::new();
        o.insert(
            "target".into(),
            s.get("describedObject").cloned().unwrap_or(json!({})),
        );
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        o.insert("currentValue".into(), quantity_or_zero(current, "value"));
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("selector".into(), sel.clone());
        }
        if let Some(a) = current.get("averageValue").filter(|v| !v.is_null()) {
            o.insert("averageValue".into(), a.clone());
        }
        out.insert("object".into(), Value::Object(o));
    }
    if let Some(s) = m.get("pods").filter(|s| !s.is_null()) {
        let mut o = Map::new();
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        o.insert(
            "currentAverageValue".into(),
            quantity_or_zero(s.get("current").unwrap_or(&null), "averageValue"),
        );
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("selector".into(), sel.clone());
        }
        out.insert("pods".into(), Value::Object(o));
    }
    for key in ["resource", "containerResource"] {
        if let Some(s) = m.get(key).filter(|s| !s.is_null()) {
            let current = s.get("current").unwrap_or(&null);
            let mut o = Map::new();
            o.insert("name".into(), s.get("name").cloned().unwrap_or(json!("")));
            if let Some(u) = current.get("averageUtilization").filter(|v| !v.is_null()) {
                o.insert("currentAverageUtilization".into(), u.clone());
            }
            o.insert(
                "currentAverageValue".into(),
                quantity_or_zero(current, "averageValue"),
            );
            if key == "containerResource" {
                o.insert(
                    "container".into(),
                    s.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(o));
        }
    }
    if let Some(s) = m.get("external").filter(|s| !s.is_null()) {
        let current = s.get("current").unwrap_or(&null);
        let mut o = Map::new();
        o.insert(
            "metricName".into(),
            s.pointer("/metric/name").cloned().unwrap_or(json!("")),
        );
        if let Some(sel) = s.pointer("/metric/selector").filter(|v| !v.is_null()) {
            o.insert("metricSelector".into(), sel.clone());
        }
        o.insert("currentValue".into(), quantity_or_zero(current, "value"));
        if let Some(a) = current.get("averageValue").filter(|v| !v.is_null()) {
            o.insert("currentAverageValue".into(), a.clone());
        }
        out.insert("external".into(), Value::Object(o));
    }
    Value::Object(out)
}

/// Behavior with the internal type's Go field names (it has no JSON tags).
fn behavior_to_internal(b: &Value) -> Value {
    let rules = |r: Option<&Value>| match r.filter(|r| r.is_object()) {
        None => Value::Null,
        Some(r) => {
            let policies = r.get("policies").and_then(Value::as_array).map(|ps| {
                ps.iter()
                    .map(|p| {
                        json!({
                            "Type": p.get("type").cloned().unwrap_or(json!("")),
                            "Value": p.get("value").cloned().unwrap_or(json!(0)),
                            "PeriodSeconds": p.get("periodSeconds").cloned().unwrap_or(json!(0)),
                        })
                    })
                    .collect::<Vec<_>>()
            });
            json!({
                "StabilizationWindowSeconds": r.get("stabilizationWindowSeconds").cloned().unwrap_or(Value::Null),
                "SelectPolicy": r.get("selectPolicy").cloned().unwrap_or(Value::Null),
                "Policies": policies,
            })
        }
    };
    json!({"ScaleUp": rules(b.get("scaleUp")), "ScaleDown": rules(b.get("scaleDown"))})
}

// ---------- v1 → v2 ----------

/// An autoscaling/v1 object in the stored (v2) form. Fails only on a malformed
/// round-trip annotation, as kube-apiserver's conversion does.
pub fn from_v1(v1: &Value) -> Result<Value, String> {
    let null = Value::Null;
    let spec = v1.get("spec").unwrap_or(&null);
    let status = v1.get("status");
    let annotation = |key: &str| -> Result<Option<Value>, String> {
        match v1
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
        {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("decoding annotation {key}: {e}")),
        }
    };

    let mut out_spec = Map::new();
    if let Some(r) = spec.get("scaleTargetRef") {
        let mut reference = Map::new();
        copy(r, &mut reference, &["kind", "name", "apiVersion"]);
        out_spec.insert("scaleTargetRef".into(), Value::Object(reference));
    }
    copy(spec, &mut out_spec, &["minReplicas", "maxReplicas"]);
    // Other metrics first, then the CPU target, as kube-apiserver orders them.
    let mut metrics: Vec<Value> = match annotation(METRICS_ANNOTATION)? {
        Some(Value::Array(list)) => list.iter().map(metric_spec_from_v1).collect(),
        Some(_) => return Err(format!("annotation {METRICS_ANNOTATION} is not a list")),
        None => Vec::new(),
    };
    if let Some(cpu) = spec
        .get("targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        metrics.push(cpu_utilization_metric(cpu));
    }
    if metrics.is_empty() {
        metrics.push(default_cpu_metric());
    }
    out_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = annotation(BEHAVIOR_ANNOTATION)? {
        insert_nonempty(&mut out_spec, "behavior", behavior_from_internal(&b));
    }

    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v2"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    out.insert(
        "metadata".into(),
        v1.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    out.insert("spec".into(), Value::Object(out_spec));
    if let Some(status) = status.filter(|s| s.is_object()) {
        let mut out_status = Map::new();
        copy(
            status,
            &mut out_status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        match annotation(CURRENT_METRICS_ANNOTATION)? {
            Some(Value::Array(list)) => {
                let list: Vec<Value> = list.iter().map(metric_status_from_v1).collect();
                insert_nonempty(&mut out_status, "currentMetrics", Value::Array(list));
            }
            Some(_) => {
                return Err(format!(
                    "annotation {CURRENT_METRICS_ANNOTATION} is not a list"
                ));
            }
            None => {
                if let Some(u) = status
                    .get("currentCPUUtilizationPercentage")
                    .filter(|u| !u.is_null())
                {
                    out_status.insert(
                        "currentMetrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
                    );
                }
            }
        }
        if let Some(Value::Array(conds)) = annotation(CONDITIONS_ANNOTATION)? {
            let list: Vec<Value> = conds
                .into_iter()
                .map(|mut c| {
                    if let Some(o) = c.as_object_mut() {
                        o.retain(|_, v| !v.is_null());
                    }
                    c
                })
                .collect();
            insert_nonempty(&mut out_status, "conditions", Value::Array(list));
        }
        out.insert("status".into(), Value::Object(out_status));
    }
    let mut out = Value::Object(out);
    set_annotations(&mut out, annotations_without_round_trip(v1));
    Ok(out)
}

fn metric_spec_from_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m.get("type").cloned().unwrap_or(json!("")));
    let identifier = |name: Option<&Value>, selector: Option<&Value>| {
        let mut id = Map::new();
        id.insert("name".into(), name.cloned().unwrap_or(json!("")));
        if let Some(sel) = selector.filter(|s| !s.is_null()) {
            id.insert("selector".into(), sel.clone());
        }
        Value::Object(id)
    };
    if let Some(s) = m.get("object").filter(|s| !s.is_null()) {
        let average = s.get("averageValue").filter(|v| !v.is_null());
        let mut target = Map::new();
        target.insert(
            "type".into(),
            json!(if average.is_some() {
                "AverageValue"
            } else {
                "Value"
            }),
        );
        target.insert("value".into(), quantity_or_zero(s, "targetValue"));
        if let Some(a) = average {
            target.insert("averageValue".into(), a.clone());
        }
        out.insert(
            "object".into(),
            json!({
                "describedObject": s.get("target").cloned().unwrap_or(json!({})),
                "metric": identifier(s.get("metricName"), s.get("selector")),
                "target": target,
            }),
        );
    }
    if let Some(s) = m.get("pods").filter(|s| !s.is_null()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": identifier(s.get("metricName"), s.get("selector")),
                "target": {"type": "AverageValue", "averageValue": quantity_or_zero(s, "targetAverageValue")},
            }),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(s) = m.get(key).filter(|s| !s.is_null()) {
            let util = s.get("targetAverageUtilization").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                json!(if util.is_some() {
                    "Utilization"
                } else {
                    "AverageValue"
                }),
            );
            if let Some(u) = util {
                target.insert("averageUtilization".into(), u.clone());
            }
            if let Some(a) = s.get("targetAverageValue").filter(|v| !v.is_null()) {
                target.insert("averageValue".into(), a.clone());
            }
            let mut o = Map::new();
            o.insert("name".into(), s.get("name").cloned().unwrap_or(json!("")));
            o.insert("target".into(), Value::Object(target));
            if key == "containerResource" {
                o.insert(
                    "container".into(),
                    s.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(o));
        }
    }
    if let Some(s) = m.get("external").filter(|s| !s.is_null()) {
        let value = s.get("targetValue").filter(|v| !v.is_null());
        let mut target = Map::new();
        target.insert(
            "type".into(),
            json!(if value.is_some() {
                "Value"
            } else {
                "AverageValue"
            }),
        );
        if let Some(v) = value {
            target.insert("value".into(), v.clone());
        }
        if let Some(a) = s.get("targetAverageValue").filter(|v| !v.is_null()) {
            target.insert("averageValue".into(), a.clone());
        }
        out.insert(
            "external".into(),
            json!({
                "metric": identifier(s.get("metricName"), s.get("metricSelector")),
                "target": target,
            }),
        );
    }
    Value::Object(out)
}

fn metric_status_from_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m.get("type").cloned().unwrap_or(json!("")));
    let identifier = |name: Option<&Value>, selector: Option<&Value>| {
        let mut id = Map::new();
        id.insert("name".into(), name.cloned().unwrap_or(json!("")));
        if let Some(sel) = selector.filter(|s| !s.is_null()) {
            id.insert("selector".into(), sel.clone());
        }
        Value::Object(id)
    };
    if let Some(s) = m.get("object").filter(|s| !s.is_null()) {
        let mut current = Map::new();
        current.insert("value".into(), quantity_or_zero(s, "currentValue"));
        if let Some(a) = s.get("averageValue").filter(|v| !v.is_null()) {
            current.insert("averageValue".into(), a.clone());
        }
        out.insert(
            "object".into(),
            json!({
                "describedObject": s.get("target").cloned().unwrap_or(json!({})),
                "metric": identifier(s.get("metricName"), s.get("selector")),
                "current": current,
            }),
        );
    }
    if let Some(s) = m.get("pods").filter(|s| !s.is_null()) {
        out.insert(
            "pods".into(),
            json!({
                "metric": identifier(s.get("metricName"), s.get("selector")),
                "current": {"averageValue": quantity_or_zero(s, "currentAverageValue")},
            }),
        );
    }
    for key in ["resource", "containerResource"] {
        if let Some(s) = m.get(key).filter(|s| !s.is_null()) {
            let mut current = Map::new();
            if let Some(u) = s.get("currentAverageUtilization").filter(|v| !v.is_null()) {
                current.insert("averageUtilization".into(), u.clone());
            }
            current.insert(
                "averageValue".into(),
                quantity_or_zero(s, "currentAverageValue"),
            );
            let mut o = Map::new();
            o.insert("name".into(), s.get("name").cloned().unwrap_or(json!("")));
            o.insert("current".into(), Value::Object(current));
            if key == "containerResource" {
                o.insert(
                    "container".into(),
                    s.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(o));
        }
    }
    if let Some(s) = m.get("external").filter(|s| !s.is_null()) {
        let mut current = Map::new();
        current.insert("value".into(), quantity_or_zero(s, "currentValue"));
        if let Some(a) = s.get("currentAverageValue").filter(|v| !v.is_null()) {
            current.insert("averageValue".into(), a.clone());
        }
        out.insert(
            "external".into(),
            json!({
                "metric": identifier(s.get("metricName"), s.get("metricSelector")),
                "current": current,
            }),
        );
    }
    Value::Object(out)
}

fn behavior_from_internal(b: &Value) -> Value {
    let rules = |r: Option<&Value>| -> Value {
        let Some(r) = r.filter(|r| r.is_object()) else {
            return Value::Null;
        };
        let mut out = Map::new();
        if let Some(w) = r.get("StabilizationWindowSeconds").filter(|v| !v.is_null()) {
            out.insert("stabilizationWindowSeconds".into(), w.clone());
        }
        if let Some(p) = r.get("SelectPolicy").filter(|v| !v.is_null()) {
            out.insert("selectPolicy".into(), p.clone());
        }
        if let Some(ps) = r.get("Policies").and_then(Value::as_array) {
            let list: Vec<Value> = ps
                .iter()
                .map(|p| {
                    json!({
                        "type": p.get("Type").cloned().unwrap_or(json!("")),
                        "value": p.get("Value").cloned().unwrap_or(json!(0)),
                        "periodSeconds": p.get("PeriodSeconds").cloned().unwrap_or(json!(0)),
                    })
                })
                .collect();
            out.insert("policies".into(), Value::Array(list));
        }
        Value::Object(out)
    };
    let mut out = Map::new();
    for (from, to) in [("ScaleUp", "scaleUp"), ("ScaleDown", "scaleDown")] {
        let r = rules(b.get(from));
        if !r.is_null() {
            out.insert(to.into(), r);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_full() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                ],
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                    "scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                },
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 250, "averageValue": "250m"}}},
                ],
                "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "SucceededRescale", "message": "ok"}],
            },
        })
    }

    #[test]
    fn v2_to_v1_keeps_the_rest_in_annotations() {
        let v1 = to_v1(&v2_full());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 250);
        assert_eq!(v1["status"]["currentReplicas"], 2);
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let metrics: Value = serde_json::from_str(ann[METRICS_ANNOTATION].as_str().unwrap_or(""))
            .unwrap_or_default();
        assert_eq!(
            metrics,
            json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}])
        );
        let current: Value =
            serde_json::from_str(ann[CURRENT_METRICS_ANNOTATION].as_str().unwrap_or(""))
                .unwrap_or_default();
        assert_eq!(
            current[1],
            json!({"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 250, "currentAverageValue": "250m"}})
        );
        let behavior: Value = serde_json::from_str(ann[BEHAVIOR_ANNOTATION].as_str().unwrap_or(""))
            .unwrap_or_default();
        assert_eq!(
            behavior["ScaleDown"]["StabilizationWindowSeconds"],
            Value::Null
        );
        assert_eq!(behavior["ScaleUp"]["Policies"][0]["PeriodSeconds"], 15);
        assert!(
            ann[CONDITIONS_ANNOTATION]
                .as_str()
                .unwrap_or("")
                .contains("SucceededRescale")
        );
    }

    #[test]
    fn round_trip_through_v1_keeps_everything_but_the_order() {
        let v2 = v2_full();
        let back = from_v1(&to_v1(&v2)).unwrap_or_default();
        assert_eq!(back["metadata"], v2["metadata"]);
        assert_eq!(back["spec"]["behavior"], v2["spec"]["behavior"]);
        assert_eq!(back["status"], v2["status"]);
        // Other metrics come first, then the CPU target, as kube-apiserver converts.
        assert_eq!(back["spec"]["metrics"], v2["spec"]["metrics"]);
        let mut swapped = v2.clone();
        if let Some(m) = swapped["spec"]["metrics"].as_array_mut() {
            m.reverse();
        }
        let back = from_v1(&to_v1(&swapped)).unwrap_or_default();
        assert_eq!(back["spec"]["metrics"], v2["spec"]["metrics"]);
    }

    #[test]
    fn plain_v1_objects() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20},
        });
        let v2 = from_v1(&v1).unwrap_or_default();
        assert_eq!(v2["spec"]["metrics"], json!([default_cpu_metric()]));
        assert_eq!(
            v2["status"]["currentMetrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20}}}])
        );
        assert!(v2["metadata"].get("annotations").is_none());
        let mut bad = v1.clone();
        bad["metadata"]["annotations"] = json!({METRICS_ANNOTATION: "{nope"});
        assert!(from_v1(&bad).is_err());
        // A stored object without status reads as v1's zero status.
        let v1 = to_v1(&json!({"metadata": {"name": "x"}, "spec": {"maxReplicas": 1}}));
        assert_eq!(
            v1["status"],
            json!({"currentReplicas": 0, "desiredReplicas": 0})
        );
    }
}
