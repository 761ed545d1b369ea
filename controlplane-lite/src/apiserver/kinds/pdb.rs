//! `policy/v1` PodDisruptionBudget: validation of the spec as upstream's (at most one of
//! minAvailable and maxUnavailable, each a non-negative integer or a percentage of at most
//! 100%), and the status counters, which may never be negative.

use serde_json::{Value, json};
use skiff_api::labels;

use crate::apiserver::status::Cause;

/// The `unhealthyPodEvictionPolicy` values.
pub const EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

pub fn validate(obj: &Value, c: &mut Vec<Cause>) {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        c.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (field, v) in [("spec.minAvailable", min), ("spec.maxUnavailable", max)] {
        if let Some(v) = v {
            int_or_percent(field, v, c);
        }
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        let parsed: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, _> =
            serde_json::from_value(sel.clone());
        if let Err(e) = parsed
            .map_err(|e| e.to_string())
            .and_then(|s| labels::Selector::from_label_selector(&s).map_err(|e| e.to_string()))
        {
            c.push(Cause::invalid("spec.selector", sel, e));
        }
    }
    if let Some(p) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
        && !EVICTION_POLICIES.contains(&p)
    {
        c.push(Cause::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            &json!(p),
            EVICTION_POLICIES,
        ));
    }
    if let Some(status) = obj.get("status") {
        for f in [
            "disruptionsAllowed",
            "currentHealthy",
            "desiredHealthy",
            "expectedPods",
        ] {
            if let Some(n) = status.get(f).and_then(Value::as_i64)
                && n < 0
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

/// A non-negative integer, or digits followed by `%` and no more than 100%.
fn int_or_percent(field: &str, v: &Value, c: &mut Vec<Cause>) {
    match v {
        Value::Number(n) => {
            if n.as_i64().is_none_or(|n| n < 0) {
                c.push(Cause::invalid(
                    field,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        Value::String(s) => match parse_percent(s) {
            None => c.push(Cause::invalid(
                field,
                v,
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            Some(p) if p > 100 => c.push(Cause::invalid(field, v, "must not be greater than 100%")),
            Some(_) => {}
        },
        _ => c.push(Cause::invalid(field, v, "must be an integer or a percentage")),
    }
}

/// `"25%"` → 25; anything else but digits and one trailing `%` → None.
pub fn parse_percent(s: &str) -> Option<u64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(spec: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(&json!({"metadata": {"name": "p"}, "spec": spec}), &mut c);
        c.into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn one_of_min_and_max_as_int_or_percent() {
        assert!(
            causes(json!({"minAvailable": 2, "selector": {"matchLabels": {"a": "b"}}})).is_empty()
        );
        assert!(causes(json!({"maxUnavailable": "25%"})).is_empty());
        // Upstream accepts a budget with neither (it then allows no disruption).
        assert!(causes(json!({"selector": {}})).is_empty());
        let both = causes(json!({"minAvailable": 1, "maxUnavailable": 1}));
        assert_eq!(both.len(), 1);
        assert!(both[0].contains("minAvailable and maxUnavailable cannot be both set"));
        assert!(causes(json!({"minAvailable": -1}))[0].contains("greater than or equal to 0"));
        assert!(causes(json!({"maxUnavailable": "150%"}))[0].contains("not be greater than 100%"));
        assert!(causes(json!({"minAvailable": "half"}))[0].contains("a valid percent string"));
        assert!(
            causes(json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}))[0]
                .contains("supported values: \"AlwaysAllow\", \"IfHealthyBudget\"")
        );
        assert!(
            causes(json!({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}))[0]
                .starts_with("spec.selector")
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("25%"), Some(25));
        assert_eq!(parse_percent("%"), None);
        assert_eq!(parse_percent("2.5%"), None);
        assert_eq!(parse_percent("25"), None);
    }
}
