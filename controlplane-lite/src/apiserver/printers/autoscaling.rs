//! HorizontalPodAutoscaler, printed from its stored (autoscaling/v2) form whichever
//! version the client asked for, as kube-apiserver prints its internal version.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use super::format::{
    age, age_column, canonical_quantity, col, int, list, name, name_column, row, text,
};

pub(super) static HORIZONTAL_POD_AUTOSCALER: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Reference",
            "string",
            "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
        ),
        col(
            "Targets",
            "string",
            "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond.",
        ),
        col(
            "MinPods",
            "string",
            "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.",
        ),
        col(
            "MaxPods",
            "integer",
            "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.",
        ),
        col(
            "Replicas",
            "integer",
            "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
        ),
        age_column(),
    ],
    cells: horizontal_pod_autoscaler,
};

fn horizontal_pod_autoscaler(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(obj, "/spec/scaleTargetRef/kind"),
        text(obj, "/spec/scaleTargetRef/name")
    );
    let min_pods = obj
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or_else(|| "<unset>".to_string(), |n| n.to_string());
    row![
        name(obj),
        reference,
        targets(
            list(obj, "/spec/metrics"),
            list(obj, "/status/currentMetrics")
        ),
        min_pods,
        int(obj, "/spec/maxReplicas"),
        int(obj, "/status/currentReplicas"),
        age(obj, now),
    ]
}

fn quantity(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(canonical_quantity)
}

/// `current/target` per metric (the first two, then `+ N more...`), as kube-apiserver's
/// printer writes them; a current value not reported yet is `<unknown>`.
pub(super) fn targets(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    const SHOWN: usize = 2;
    let unknown = || "<unknown>".to_string();
    let mut cells = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let current = |source: &str, field: &str| {
            status
                .and_then(|s| s.get(source))
                .filter(|s| !s.is_null())
                .and_then(|s| s.get("current"))
                .and_then(|c| c.get(field))
        };
        let cell = match spec.get("type").and_then(Value::as_str).unwrap_or("") {
            ty @ ("External" | "Object") => {
                let source = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.get(source).and_then(|s| s.get("target"));
                match quantity(target.and_then(|t| t.get("averageValue"))) {
                    Some(avg) => format!(
                        "{}/{avg} (avg)",
                        quantity(current(source, "averageValue")).unwrap_or_else(unknown)
                    ),
                    None => format!(
                        "{}/{}",
                        quantity(current(source, "value")).unwrap_or_else(unknown),
                        quantity(target.and_then(|t| t.get("value"))).unwrap_or_default()
                    ),
                }
            }
            "Pods" => format!(
                "{}/{}",
                quantity(current("pods", "averageValue")).unwrap_or_else(unknown),
                quantity(spec.pointer("/pods/target/averageValue")).unwrap_or_default()
            ),
            ty @ ("Resource" | "ContainerResource") => {
                let source = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let src = spec.get(source).unwrap_or(&Value::Null);
                let resource = src.get("name").and_then(Value::as_str).unwrap_or("");
                let target = src.get("target").unwrap_or(&Value::Null);
                match quantity(target.get("averageValue")) {
                    Some(avg) => format!(
                        "{resource}: {}/{avg}",
                        quantity(current(source, "averageValue")).unwrap_or_else(unknown)
                    ),
                    None => {
                        let now = current(source, "averageUtilization")
                            .and_then(Value::as_i64)
                            .map_or_else(unknown, |u| format!("{u}%"));
                        let want = target
                            .get("averageUtilization")
                            .and_then(Value::as_i64)
                            .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                        format!("{resource}: {now}/{want}")
                    }
                }
            }
            _ => "<unknown type>".to_string(),
        };
        cells.push(cell);
    }
    let total = cells.len();
    if total > SHOWN {
        cells.truncate(SHOWN);
        return format!("{} + {} more...", cells.join(", "), total - SHOWN);
    }
    cells.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn target_cells() {
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}});
        let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "0.5Gi"}}});
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}});
        assert_eq!(targets(&[], &[]), "<none>");
        assert_eq!(
            targets(std::slice::from_ref(&cpu), &[]),
            "cpu: <unknown>/50%"
        );
        let cpu_now = json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 250, "averageValue": "250m"}}});
        let mem_now = json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "104857600"}}});
        assert_eq!(
            targets(&[cpu.clone(), mem.clone()], &[cpu_now.clone(), mem_now]),
            "cpu: 250%/50%, memory: 104857600/512Mi"
        );
        // A metric whose computation failed has an empty status.
        assert_eq!(
            targets(
                &[cpu.clone(), mem.clone(), pods],
                &[json!({"type": ""}), json!({"type": ""})]
            ),
            "cpu: <unknown>/50%, memory: <unknown>/512Mi + 1 more..."
        );
    }

    #[test]
    fn row() {
        let hpa = json!({
            "metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2},
        });
        let now: Timestamp = "2025-01-01T00:02:00Z".parse().expect("time");
        assert_eq!(
            horizontal_pod_autoscaler(&hpa, now),
            row![
                "web",
                "Deployment/web",
                "cpu: <unknown>/50%",
                "1",
                5,
                2,
                "2m"
            ]
        );
    }
}
