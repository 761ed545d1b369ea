//! Deployment and ReplicaSet rules, worded as Kubernetes words them (values printed the way
//! Go's field errors print them, e.g. `map[string]string{"app":"web"}`).

use serde_json::{Map, Value, json};
use skiff_api::labels;

use crate::apiserver::status::Cause;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const NONNEGATIVE: &str = "must be greater than or equal to 0";

/// Checks a Deployment (`deployment`) or ReplicaSet, and on update what may not change.
pub fn validate(deployment: bool, obj: &Value, old: Option<&Value>, c: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    nonnegative(spec, "replicas", c);
    nonnegative(spec, "minReadySeconds", c);
    selector_and_template(spec, c);
    if deployment {
        strategy(spec, c);
        nonnegative(spec, "revisionHistoryLimit", c);
        if let Some(p) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            nonnegative(spec, "progressDeadlineSeconds", c);
            let min_ready = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if p <= min_ready {
                c.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(p),
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
    if let Some(old) = old
        && obj.pointer("/spec/selector") != old.pointer("/spec/selector")
    {
        c.push(invalid_raw(
            "spec.selector",
            &go_label_selector(obj.pointer("/spec/selector")),
            "field is immutable",
        ));
    }
}

fn invalid_raw(field: &str, rendered: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        message: format!("Invalid value: {rendered}: {detail}"),
    }
}

fn nonnegative(spec: &Value, f: &str, c: &mut Vec<Cause>) {
    if let Some(n) = spec.get(f).and_then(Value::as_i64)
        && n < 0
    {
        c.push(Cause::invalid(format!("spec.{f}"), &json!(n), NONNEGATIVE));
    }
}

fn selector_and_template(spec: &Value, c: &mut Vec<Cause>) {
    let sel = spec.get("selector").filter(|s| !s.is_null());
    let template = spec.get("template").filter(|t| !t.is_null());
    let selector = match sel {
        None => {
            c.push(Cause::required("spec.selector"));
            None
        }
        Some(s) => {
            let parsed: Result<labels::Selector, String> = serde_json::from_value::<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
            >(s.clone())
            .map_err(|e| e.to_string())
            .and_then(|ls| labels::Selector::from_label_selector(&ls).map_err(|e| e.to_string()));
            match parsed {
                Err(e) => {
                    c.push(invalid_raw(
                        "spec.selector",
                        &go_label_selector(Some(s)),
                        &e,
                    ));
                    None
                }
                Ok(p) if p.is_empty() => {
                    c.push(invalid_raw(
                        "spec.selector",
                        &go_label_selector(Some(s)),
                        "empty selector is invalid for deployment",
                    ));
                    None
                }
                Ok(p) => Some(p),
            }
        }
    };
    let Some(template) = template else {
        c.push(Cause::required("spec.template"));
        return;
    };
    let labels_v = template.pointer("/metadata/labels");
    if let Some(selector) = selector {
        let set = labels_v
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if !selector.matches(&set) {
            c.push(invalid_raw(
                "spec.template.metadata.labels",
                &go_string_map(labels_v.and_then(Value::as_object)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    match template.get("spec").filter(|s| !s.is_null()) {
        Some(pod) => {
            super::validation::pod_spec(pod, "spec.template.spec", c);
            let rp = pod
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
            if pod
                .get("activeDeadlineSeconds")
                .is_some_and(|v| !v.is_null())
            {
                c.push(Cause::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                ));
            }
        }
        None => c.push(Cause::required("spec.template.spec.containers")),
    }
}

fn strategy(spec: &Value, c: &mut Vec<Cause>) {
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    let ty = strategy
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match ty {
        "Recreate" => {
            if rolling.is_some() {
                c.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        // Defaulting fills in an absent rollingUpdate before validation runs.
        "RollingUpdate" => {
            if let Some(r) = rolling {
                rolling_update(r, c);
            }
        }
        other => c.push(Cause::not_supported(
            "spec.strategy.type",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// The value of an int-or-percent: the int, or the number before `%`.
fn int_or_percent(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.strip_suffix('%').unwrap_or(s).parse().unwrap_or(0),
        _ => 0,
    }
}

fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn rolling_update(r: &Value, c: &mut Vec<Cause>) {
    let unavailable = r.get("maxUnavailable").filter(|v| !v.is_null());
    let surge = r.get("maxSurge").filter(|v| !v.is_null());
    for (name, v) in [("maxUnavailable", unavailable), ("maxSurge", surge)] {
        let field = format!("spec.strategy.rollingUpdate.{name}");
        match v {
            Some(Value::String(s)) if !is_percent(s) => {
                c.push(invalid_raw(&field, &go_intstr(v), PERCENT_MSG));
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
                c.push(Cause::invalid(field, &json!(n), NONNEGATIVE));
            }
            _ => {}
        }
    }
    if int_or_percent(unavailable) == 0 && int_or_percent(surge) == 0 {
        c.push(invalid_raw(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &go_intstr(unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if let Some(Value::String(s)) = unavailable
        && is_percent(s)
        && int_or_percent(unavailable) > 100
    {
        c.push(invalid_raw(
            "spec.strategy.rollingUpdate.maxUnavailable",
            &go_intstr(unavailable),
            "must not be greater than 100%",
        ));
    }
}

/// `intstr.IntOrString{Type:0, IntVal:1, StrVal:""}`, as `%#v` prints it.
fn go_intstr(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.and_then(Value::as_i64).unwrap_or(0)
        ),
    }
}

/// `map[string]string{"a":"b"}` (keys sorted), or `map[string]string(nil)`.
fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut kv: Vec<(&String, &str)> = m
                .iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            let inner: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// A LabelSelector as `%#v` prints it.
fn go_label_selector(v: Option<&Value>) -> String {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return "null".into();
    };
    let exprs = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
                        e.get("key").and_then(Value::as_str).unwrap_or_default(),
                        e.get("operator")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        go_string_slice(e.get("values")),
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(v.get("matchLabels").and_then(Value::as_object))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(strategy: Value) -> Value {
        json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "a"}},
            "strategy": strategy,
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        }})
    }

    fn causes(obj: &Value, old: Option<&Value>) -> Vec<(String, String)> {
        let mut c = Vec::new();
        validate(true, obj, old, &mut c);
        c.into_iter().map(|c| (c.field, c.message)).collect()
    }

    #[test]
    fn strategies() {
        let ok = deployment(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}),
        );
        assert!(causes(&ok, None).is_empty());
        let both_zero = deployment(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        );
        assert_eq!(
            causes(&both_zero, None),
            [(
                "spec.strategy.rollingUpdate.maxUnavailable".to_string(),
                "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0".to_string()
            )]
        );
        let recreate = deployment(json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}));
        assert_eq!(
            causes(&recreate, None),
            [(
                "spec.strategy.rollingUpdate".to_string(),
                "Forbidden: may not be specified when strategy `type` is 'Recreate'".to_string()
            )]
        );
        let bad = deployment(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "1", "maxUnavailable": "150%"}}),
        );
        let fields: Vec<String> = causes(&bad, None).into_iter().map(|c| c.0).collect();
        assert_eq!(
            fields,
            [
                "spec.strategy.rollingUpdate.maxSurge",
                "spec.strategy.rollingUpdate.maxUnavailable"
            ]
        );
        let odd = deployment(json!({"type": "BlueGreen"}));
        assert_eq!(causes(&odd, None)[0].0, "spec.strategy.type");
    }

    #[test]
    fn selector_template_and_deadlines() {
        let mut d = deployment(json!({"type": "Recreate"}));
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "b", "x": "y"});
        assert_eq!(
            causes(&d, None),
            [(
                "spec.template.metadata.labels".to_string(),
                "Invalid value: map[string]string{\"app\":\"b\", \"x\":\"y\"}: `selector` does not match template `labels`".to_string()
            )]
        );
        let mut d = deployment(json!({"type": "Recreate"}));
        d["spec"]["minReadySeconds"] = json!(10);
        d["spec"]["progressDeadlineSeconds"] = json!(10);
        d["spec"]["replicas"] = json!(-1);
        let fields: Vec<String> = causes(&d, None).into_iter().map(|c| c.0).collect();
        assert_eq!(fields, ["spec.replicas", "spec.progressDeadlineSeconds"]);

        let old = deployment(json!({"type": "Recreate"}));
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "a", "v": "2"}});
        new["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
        assert_eq!(
            causes(&new, Some(&old)),
            [(
                "spec.selector".to_string(),
                "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"a\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable".to_string()
            )]
        );
    }
}
