//! `spec.podFailurePolicy`: rules matched in order against a failed pod's container exit
//! codes or conditions, deciding whether the failure fails the Job at once, is ignored, or
//! counts towards `backoffLimit`.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// What a failed pod means under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Set when a `FailJob` rule matched: the Job's failure message.
    pub fail_job: Option<String>,
    /// Whether the failure counts towards `backoffLimit` (`Ignore` rules say no).
    pub counts: bool,
    /// The action of the rule that matched.
    pub action: Option<String>,
}

const NO_MATCH: Verdict = Verdict {
    fail_job: None,
    counts: true,
    action: None,
};

pub fn judge(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return NO_MATCH;
    };
    let status = pod.status.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            let containers = status
                .and_then(|s| s.container_statuses.as_deref())
                .unwrap_or(&[]);
            let init = status
                .and_then(|s| s.init_container_statuses.as_deref())
                .unwrap_or(&[]);
            exit_code_match(containers, req)
                .or_else(|| exit_code_match(init, req))
                .map(|(c, code)| {
                    format!(
                        "Container {c} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                        rule.action
                    )
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| {
                    patterns
                        .iter()
                        .any(|p| p.type_ == c.type_ && p.status == c.status)
                })
                .map(|c| {
                    format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                        c.type_, rule.action
                    )
                })
        } else {
            None
        };
        let Some(message) = matched else {
            continue;
        };
        let action = Some(rule.action.clone());
        match rule.action.as_str() {
            "Ignore" => {
                return Verdict {
                    fail_job: None,
                    counts: false,
                    action,
                };
            }
            "Count" | "FailIndex" => {
                return Verdict {
                    fail_job: None,
                    counts: true,
                    action,
                };
            }
            "FailJob" => {
                return Verdict {
                    fail_job: Some(message),
                    counts: true,
                    action,
                };
            }
            // An action this version does not know: the rule is skipped.
            _ => {}
        }
    }
    NO_MATCH
}

/// The first terminated, non-zero container (of the named one, if any) whose code the
/// requirement selects.
fn exit_code_match(
    statuses: &[ContainerStatus],
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    statuses.iter().find_map(|c| {
        let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
        if code == 0 {
            return None;
        }
        if req.container_name.as_ref().is_some_and(|n| *n != c.name) {
            return None;
        }
        let listed = req.values.contains(&code);
        let selected = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        selected.then(|| (c.name.clone(), code))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn failed(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": code}}}]},
        }))
        .unwrap()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).unwrap()
    }

    #[test]
    fn rules_match_in_order() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        let v = judge(Some(&p), &failed(42, json!([])));
        assert_eq!(
            v.fail_job.as_deref(),
            Some(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
            )
        );
        let v = judge(
            Some(&p),
            &failed(42, json!([{"type": "DisruptionTarget", "status": "True"}])),
        );
        assert!(!v.counts && v.fail_job.is_none());
        assert_eq!(v.action.as_deref(), Some("Ignore"));
        let v = judge(Some(&p), &failed(3, json!([])));
        assert_eq!(v.action.as_deref(), Some("Count"));
        assert_eq!(judge(Some(&p), &failed(1, json!([]))), NO_MATCH);
        assert_eq!(judge(None, &failed(42, json!([]))), NO_MATCH);
    }
}
