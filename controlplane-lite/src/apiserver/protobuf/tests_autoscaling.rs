//! The HorizontalPodAutoscaler tables against k8s-pb's encoder, with the objects built as
//! Go's encoder writes them (every non-pointer field, zero or not).

use k8s_pb::api::autoscaling::{v1, v2};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::{Value, json};

use super::decode;

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

fn envelope(api_version: &str, kind: &str, obj: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn meta(name: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn decoded(body: &[u8]) -> Value {
    let mut v = match decode(body) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    };
    // Go's JSON writes `creationTimestamp: null` for the zero Time; the decoder omits it.
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("creationTimestamp");
    }
    v
}

#[test]
fn autoscale_v2_as_kubectl_makes_it() {
    let reference = v2::CrossVersionObjectReference {
        kind: s("Deployment"),
        name: s("web"),
        api_version: s("apps/v1"),
    };
    let hpa = v2::HorizontalPodAutoscaler {
        metadata: Some(meta("web")),
        spec: Some(v2::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(reference),
            min_replicas: Some(1),
            max_replicas: Some(5),
            metrics: vec![
                v2::MetricSpec {
                    r#type: s("Resource"),
                    resource: Some(v2::ResourceMetricSource {
                        name: s("cpu"),
                        target: Some(v2::MetricTarget {
                            r#type: s("Utilization"),
                            average_utilization: Some(50),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                },
                v2::MetricSpec {
                    r#type: s("Pods"),
                    pods: Some(v2::PodsMetricSource {
                        metric: Some(v2::MetricIdentifier {
                            name: s("qps"),
                            selector: None,
                        }),
                        target: Some(v2::MetricTarget {
                            r#type: s("AverageValue"),
                            average_value: Some(Quantity { string: s("1k") }),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                },
            ],
            behavior: Some(v2::HorizontalPodAutoscalerBehavior {
                scale_up: None,
                scale_down: Some(v2::HpaScalingRules {
                    stabilization_window_seconds: Some(60),
                    select_policy: None,
                    policies: vec![v2::HpaScalingPolicy {
                        r#type: s("Pods"),
                        value: Some(1),
                        period_seconds: Some(30),
                    }],
                    tolerance: None,
                }),
            }),
        }),
        status: Some(v2::HorizontalPodAutoscalerStatus {
            current_replicas: Some(0),
            desired_replicas: Some(0),
            ..Default::default()
        }),
    };
    let got = decoded(&envelope("autoscaling/v2", "HorizontalPodAutoscaler", &hpa));
    let want = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}},
        },
        "status": {"desiredReplicas": 0},
    });
    assert_eq!(got, want);
}

#[test]
fn autoscale_v1_as_kubectl_makes_it() {
    let hpa = v1::HorizontalPodAutoscaler {
        metadata: Some(meta("web")),
        spec: Some(v1::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(v1::CrossVersionObjectReference {
                kind: s("Deployment"),
                name: s("web"),
                api_version: s("apps/v1"),
            }),
            min_replicas: Some(1),
            max_replicas: Some(5),
            target_cpu_utilization_percentage: Some(50),
        }),
        status: Some(v1::HorizontalPodAutoscalerStatus {
            current_replicas: Some(0),
            desired_replicas: Some(0),
            ..Default::default()
        }),
    };
    let got = decoded(&envelope("autoscaling/v1", "HorizontalPodAutoscaler", &hpa));
    let want = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50,
        },
        "status": {"currentReplicas": 0, "desiredReplicas": 0},
    });
    assert_eq!(got, want);
}
