//! Kubernetes' validation of StatefulSets and DaemonSets beyond what every workload shares
//! (selector, template, replicas): update strategies, pod management, claim templates and
//! retention, and the StatefulSet spec fields an update may not change.

use std::borrow::Cow;

use serde_json::{Value, json};
use skiff_api::names;

use crate::apiserver::status::Cause;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn nonnegative(obj: &Value, ptr: &str, field: &str, c: &mut Vec<Cause>) {
    if let Some(n) = obj.pointer(ptr).and_then(Value::as_i64)
        && n < 0
    {
        c.push(Cause::invalid(
            field,
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// The number an int-or-percent stands for (the percentage itself for a percent), if valid.
fn int_or_percent(v: &Value) -> Option<(i64, bool)> {
    match v {
        Value::Number(n) => n.as_i64().map(|n| (n, false)),
        Value::String(s) => {
            let digits = s.strip_suffix('%')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok().map(|n| (n, true))
        }
        _ => None,
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`; returns the value (0 when
/// invalid).
fn positive_int_or_percent(v: &Value, field: &str, c: &mut Vec<Cause>) -> i64 {
    match (v, int_or_percent(v)) {
        (Value::String(_), None) => {
            c.push(Cause::invalid(field, v, PERCENT_MSG));
            0
        }
        (_, None) => {
            c.push(Cause::invalid(
                field,
                v,
                "must be an integer or percentage (e.g '5%')",
            ));
            0
        }
        (_, Some((n, false))) => {
            if n < 0 {
                c.push(Cause::invalid(
                    field,
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
            n
        }
        (_, Some((n, true))) => {
            if n > 100 {
                c.push(Cause::invalid(field, v, "must not be greater than 100%"));
            }
            n
        }
    }
}

/// Go's `%#v` of an update strategy whose type is wrong, as Kubernetes prints it.
fn go_strategy(kind: &str, ty: &str, rolling: Option<&Value>) -> String {
    let ru = match kind {
        "DaemonSetUpdateStrategy" => "RollingUpdateDaemonSet",
        _ => "RollingUpdateStatefulSetStrategy",
    };
    let ptr = match rolling.filter(|r| !r.is_null()) {
        Some(r) => format!("({r})"),
        None => "(nil)".to_string(),
    };
    format!("apps.{kind}{{Type:{ty:?}, RollingUpdate:(*apps.{ru}){ptr}}}")
}

fn common(obj: &Value, kind: &str, c: &mut Vec<Cause>) {
    nonnegative(obj, "/spec/minReadySeconds", "spec.minReadySeconds", c);
    nonnegative(
        obj,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        c,
    );
    if obj
        .pointer("/spec/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        c.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// The set as its pods will be: a StatefulSet's claim templates become volumes of its pods,
/// so the template may mount them.
pub fn as_pods_see_it<'a>(kind: &str, obj: &'a Value) -> Cow<'a, Value> {
    let claims: Vec<&str> = obj
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    if kind != "StatefulSet" || claims.is_empty() {
        return Cow::Borrowed(obj);
    }
    let mut v = obj.clone();
    if let Some(spec) = v
        .pointer_mut("/spec/template/spec")
        .and_then(Value::as_object_mut)
    {
        let vols = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(vols) = vols.as_array_mut() {
            vols.retain(|x| !claims.contains(&x["name"].as_str().unwrap_or("")));
            for c in claims {
                vols.push(json!({"name": c, "persistentVolumeClaim": {"claimName": c}}));
            }
        }
    }
    Cow::Owned(v)
}

pub fn stateful_set(obj: &Value, old: Option<&Value>, c: &mut Vec<Cause>) {
    common(obj, "StatefulSet", c);
    nonnegative(obj, "/spec/ordinals/start", "spec.ordinals.start", c);
    match obj
        .pointer("/spec/podManagementPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" => c.push(Cause::required("spec.podManagementPolicy")),
        "OrderedReady" | "Parallel" => {}
        other => c.push(Cause::invalid(
            "spec.podManagementPolicy",
            &json!(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let rolling = obj
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|v| !v.is_null());
    match obj
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" => c.push(Cause::required("spec.updateStrategy")),
        "OnDelete" => {
            if let Some(r) = rolling {
                c.push(Cause::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    r,
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(r) = rolling {
                nonnegative(
                    r,
                    "/partition",
                    "spec.updateStrategy.rollingUpdate.partition",
                    c,
                );
                if let Some(mu) = r.get("maxUnavailable").filter(|v| !v.is_null()) {
                    let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                    let n = positive_int_or_percent(mu, field, c);
                    if n == 0 && int_or_percent(mu).is_some() {
                        c.push(Cause::invalid(field, mu, "cannot be 0"));
                    }
                }
            }
        }
        other => c.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.updateStrategy".into(),
            message: format!(
                "Invalid value: {}: must be 'RollingUpdate' or 'OnDelete'",
                go_strategy("StatefulSetUpdateStrategy", other, rolling)
            ),
        }),
    }
    for when in ["whenDeleted", "whenScaled"] {
        if let Some(v) = obj
            .pointer(&format!(
                "/spec/persistentVolumeClaimRetentionPolicy/{when}"
            ))
            .and_then(Value::as_str)
            && v != "Retain"
            && v != "Delete"
        {
            c.push(Cause::not_supported(
                format!("spec.persistentVolumeClaimRetentionPolicy.{when}"),
                &json!(v),
                &["Retain", "Delete"],
            ));
        }
    }
    if let Some(svc) = obj
        .pointer("/spec/serviceName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        for e in names::dns1035_label_errors(svc) {
            c.push(Cause::invalid("spec.serviceName", &json!(svc), e));
        }
    }
    for (i, t) in obj
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("spec.volumeClaimTemplates[{i}]");
        match t.pointer("/metadata/name").and_then(Value::as_str) {
            None | Some("") => c.push(Cause::required(format!("{p}.metadata.name"))),
            Some(n) => {
                for e in names::dns1123_subdomain_errors(n) {
                    c.push(Cause::invalid(format!("{p}.metadata.name"), &json!(n), e));
                }
            }
        }
        if t.pointer("/spec/accessModes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            c.push(Cause {
                reason: "FieldValueRequired",
                field: format!("{p}.spec.accessModes"),
                message: "Required value: at least 1 access mode is required".into(),
            });
        }
        if t.pointer("/spec/resources/requests/storage").is_none() {
            c.push(Cause::required(format!("{p}.spec.resources[storage]")));
        }
    }
    if let Some(old) = old {
        // Only these may change; the selector has its own message.
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
            "selector",
        ];
        let rest = |o: &Value| -> Value {
            let mut spec = o.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = spec.as_object_mut() {
                for f in mutable {
                    m.remove(f);
                }
            }
            spec
        };
        if rest(obj) != rest(old) {
            c.push(Cause::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

pub fn daemon_set(obj: &Value, _old: Option<&Value>, c: &mut Vec<Cause>) {
    common(obj, "DaemonSet", c);
    let rolling = obj
        .pointer("/spec/updateStrategy/rollingUpdate")
        .filter(|v| !v.is_null());
    match obj
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(r) = rolling else {
                c.push(Cause::required("spec.updateStrategy.rollingUpdate"));
                return;
            };
            let base = "spec.updateStrategy.rollingUpdate";
            let zero = json!(0);
            let mu = r
                .get("maxUnavailable")
                .filter(|v| !v.is_null())
                .unwrap_or(&zero);
            let ms = r.get("maxSurge").filter(|v| !v.is_null()).unwrap_or(&zero);
            let unavailable = positive_int_or_percent(mu, &format!("{base}.maxUnavailable"), c);
            let surge = positive_int_or_percent(ms, &format!("{base}.maxSurge"), c);
            match (unavailable != 0, surge != 0) {
                (true, true) => c.push(Cause::invalid(
                    format!("{base}.maxSurge"),
                    ms,
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => c.push(Cause::invalid(
                    format!("{base}.maxUnavailable"),
                    mu,
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => c.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.updateStrategy".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"RollingUpdate\", \"OnDelete\"",
                go_strategy("DaemonSetUpdateStrategy", other, rolling)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(c: &[Cause]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn stateful_set_strategies() {
        let mut c = Vec::new();
        let sts = json!({"spec": {"podManagementPolicy": "Sometimes",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1, "maxUnavailable": "0%"}}}});
        stateful_set(&sts, None, &mut c);
        assert_eq!(
            fields(&c),
            [
                "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": cannot be 0",
            ]
        );
        let mut c = Vec::new();
        let sts = json!({"spec": {"podManagementPolicy": "Parallel", "updateStrategy": {"type": "Sideways"}}});
        stateful_set(&sts, None, &mut c);
        assert_eq!(
            fields(&c),
            [
                "spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:\"Sideways\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'"
            ]
        );
        let mut c = Vec::new();
        let sts = json!({"spec": {"podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}});
        stateful_set(&sts, None, &mut c);
        assert_eq!(c[0].field, "spec.updateStrategy.rollingUpdate");
    }

    #[test]
    fn stateful_set_updates_touch_only_mutable_fields() {
        let old = json!({"spec": {"podManagementPolicy": "OrderedReady", "serviceName": "a",
            "replicas": 1, "updateStrategy": {"type": "OnDelete"}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["updateStrategy"] = json!({"type": "RollingUpdate"});
        let mut c = Vec::new();
        stateful_set(&new, Some(&old), &mut c);
        assert!(c.is_empty(), "{:?}", fields(&c));
        new["spec"]["serviceName"] = json!("b");
        stateful_set(&new, Some(&old), &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec");
        assert!(
            c[0].message
                .starts_with("Forbidden: updates to statefulset spec")
        );
    }

    #[test]
    fn daemon_set_strategies() {
        let check = |ru: Value| {
            let mut c = Vec::new();
            daemon_set(
                &json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}}),
                None,
                &mut c,
            );
            fields(&c)
        };
        assert!(check(json!({"maxUnavailable": 1, "maxSurge": 0})).is_empty());
        assert!(check(json!({"maxUnavailable": 0, "maxSurge": "25%"})).is_empty());
        assert_eq!(
            check(json!({"maxUnavailable": 1, "maxSurge": 1})),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"
            ]
        );
        assert_eq!(
            check(json!({"maxUnavailable": 0, "maxSurge": 0})),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0 when maxSurge is 0"
            ]
        );
        assert_eq!(
            check(json!({"maxUnavailable": "150%", "maxSurge": 0})),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
            ]
        );
        assert_eq!(
            check(json!({"maxUnavailable": "x", "maxSurge": 0})),
            [
                format!("spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"x\": {PERCENT_MSG}"),
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"x\": cannot be 0 when maxSurge is 0".to_string(),
            ]
        );
        let mut c = Vec::new();
        daemon_set(
            &json!({"spec": {"updateStrategy": {"type": "Never"}}}),
            None,
            &mut c,
        );
        assert_eq!(
            fields(&c),
            [
                "spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Never\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""
            ]
        );
    }
}
