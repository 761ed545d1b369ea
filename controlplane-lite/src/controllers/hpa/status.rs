//! The HPA's status as the controller writes it: conditions (AbleToScale, ScalingActive,
//! ScalingLimited) whose transition time moves only when their status does, and the merge
//! patch that replaces the whole status.

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

pub const ABLE_TO_SCALE: &str = "AbleToScale";
pub const SCALING_ACTIVE: &str = "ScalingActive";
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// Sets one condition, adding it at the end if it is new.
pub fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) {
    let value = if value { "True" } else { "False" };
    let list = status.conditions.get_or_insert_with(Vec::new);
    let index = match list.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            list.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            list.len() - 1
        }
    };
    let c = &mut list[index];
    if c.status != value {
        c.last_transition_time = Some(Time(now));
    }
    c.status = value.to_string();
    c.reason = Some(reason.to_string());
    c.message = Some(message.into());
}

pub fn condition<'a>(
    status: &'a HorizontalPodAutoscalerStatus,
    type_: &str,
) -> Option<&'a HorizontalPodAutoscalerCondition> {
    status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

/// `{"status": ...}` replacing every field the controller owns, unset ones included.
pub fn patch(status: &HorizontalPodAutoscalerStatus) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for key in [
            "currentReplicas",
            "currentMetrics",
            "lastScaleTime",
            "observedGeneration",
            "conditions",
        ] {
            o.entry(key).or_insert(Value::Null);
        }
    }
    serde_json::json!({ "status": v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_with_the_status_only() {
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().expect("time");
        let t1: Timestamp = "2025-01-01T00:01:00Z".parse().expect("time");
        let mut s = HorizontalPodAutoscalerStatus::default();
        set_condition(&mut s, ABLE_TO_SCALE, true, "SucceededGetScale", "a", t0);
        set_condition(
            &mut s,
            SCALING_ACTIVE,
            false,
            "FailedGetResourceMetric",
            "b",
            t0,
        );
        set_condition(&mut s, ABLE_TO_SCALE, true, "ReadyForNewScale", "c", t1);
        let able = condition(&s, ABLE_TO_SCALE).expect("set");
        assert_eq!(able.reason.as_deref(), Some("ReadyForNewScale"));
        assert_eq!(able.last_transition_time, Some(Time(t0)));
        set_condition(&mut s, ABLE_TO_SCALE, false, "FailedGetScale", "d", t1);
        let able = condition(&s, ABLE_TO_SCALE).expect("set");
        assert_eq!(able.last_transition_time, Some(Time(t1)));
        let types: Vec<&str> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, [ABLE_TO_SCALE, SCALING_ACTIVE]);
        let p = patch(&s);
        assert!(p["status"]["currentMetrics"].is_null());
        assert_eq!(p["status"]["desiredReplicas"], 0);
    }
}
