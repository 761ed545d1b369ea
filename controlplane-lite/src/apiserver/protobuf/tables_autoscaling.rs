//! Field tables for HorizontalPodAutoscaler, autoscaling/v2 and autoscaling/v1 (what
//! `kubectl autoscale` sends, v2 first and v1 when v2 is not served). Field numbers from
//! the Kubernetes .proto files (as k8s-pb 0.9 renders them), shapes from the Go types of
//! k8s.io/api v0.33, as in [`super::tables`].

use super::schema::{Message, Shape, Ty, f};
use super::tables::{META_V1_LABEL_SELECTOR, META_V1_OBJECT_META};

pub static AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&V2_SPEC), Shape::Keep),
        f(3, "status", Ty::Message(&V2_STATUS), Shape::Keep),
    ],
};

static V2_SPEC: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerSpec",
    fields: &[
        f(1, "scaleTargetRef", Ty::Message(&V2_REFERENCE), Shape::Keep),
        f(2, "minReplicas", Ty::Int32, Shape::Keep),
        f(3, "maxReplicas", Ty::Int32, Shape::Keep),
        f(4, "metrics", Ty::Message(&V2_METRIC_SPEC), Shape::Repeated),
        f(5, "behavior", Ty::Message(&V2_BEHAVIOR), Shape::Keep),
    ],
};

static V2_REFERENCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.CrossVersionObjectReference",
    fields: &[
        f(1, "kind", Ty::String, Shape::Keep),
        f(2, "name", Ty::String, Shape::Keep),
        f(3, "apiVersion", Ty::String, Shape::OmitZero),
    ],
};

static V2_METRIC_SPEC: Message = Message {
    name: "k8s.io.api.autoscaling.v2.MetricSpec",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "object", Ty::Message(&V2_OBJECT_SOURCE), Shape::Keep),
        f(3, "pods", Ty::Message(&V2_PODS_SOURCE), Shape::Keep),
        f(4, "resource", Ty::Message(&V2_RESOURCE_SOURCE), Shape::Keep),
        f(5, "external", Ty::Message(&V2_EXTERNAL_SOURCE), Shape::Keep),
        f(
            7,
            "containerResource",
            Ty::Message(&V2_CONTAINER_RESOURCE_SOURCE),
            Shape::Keep,
        ),
    ],
};

static V2_OBJECT_SOURCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ObjectMetricSource",
    fields: &[
        f(
            1,
            "describedObject",
            Ty::Message(&V2_REFERENCE),
            Shape::Keep,
        ),
        f(2, "target", Ty::Message(&V2_METRIC_TARGET), Shape::Keep),
        f(3, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
    ],
};

static V2_PODS_SOURCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.PodsMetricSource",
    fields: &[
        f(1, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
        f(2, "target", Ty::Message(&V2_METRIC_TARGET), Shape::Keep),
    ],
};

static V2_RESOURCE_SOURCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ResourceMetricSource",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "target", Ty::Message(&V2_METRIC_TARGET), Shape::Keep),
    ],
};

static V2_CONTAINER_RESOURCE_SOURCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ContainerResourceMetricSource",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "target", Ty::Message(&V2_METRIC_TARGET), Shape::Keep),
        f(3, "container", Ty::String, Shape::Keep),
    ],
};

static V2_EXTERNAL_SOURCE: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ExternalMetricSource",
    fields: &[
        f(1, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
        f(2, "target", Ty::Message(&V2_METRIC_TARGET), Shape::Keep),
    ],
};

static V2_METRIC_IDENTIFIER: Message = Message {
    name: "k8s.io.api.autoscaling.v2.MetricIdentifier",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(
            2,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
    ],
};

static V2_METRIC_TARGET: Message = Message {
    name: "k8s.io.api.autoscaling.v2.MetricTarget",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "value", Ty::Quantity, Shape::Keep),
        f(3, "averageValue", Ty::Quantity, Shape::Keep),
        f(4, "averageUtilization", Ty::Int32, Shape::Keep),
    ],
};

static V2_BEHAVIOR: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerBehavior",
    fields: &[
        f(1, "scaleUp", Ty::Message(&V2_SCALING_RULES), Shape::Keep),
        f(2, "scaleDown", Ty::Message(&V2_SCALING_RULES), Shape::Keep),
    ],
};

static V2_SCALING_RULES: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HPAScalingRules",
    fields: &[
        f(1, "selectPolicy", Ty::String, Shape::Keep),
        f(
            2,
            "policies",
            Ty::Message(&V2_SCALING_POLICY),
            Shape::Repeated,
        ),
        f(3, "stabilizationWindowSeconds", Ty::Int32, Shape::Keep),
        f(4, "tolerance", Ty::Quantity, Shape::Keep),
    ],
};

static V2_SCALING_POLICY: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HPAScalingPolicy",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "value", Ty::Int32, Shape::Keep),
        f(3, "periodSeconds", Ty::Int32, Shape::Keep),
    ],
};

static V2_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
    fields: &[
        f(1, "observedGeneration", Ty::Int64, Shape::Keep),
        f(2, "lastScaleTime", Ty::Time, Shape::Keep),
        f(3, "currentReplicas", Ty::Int32, Shape::OmitZero),
        f(4, "desiredReplicas", Ty::Int32, Shape::Keep),
        f(
            5,
            "currentMetrics",
            Ty::Message(&V2_METRIC_STATUS),
            Shape::Repeated,
        ),
        f(6, "conditions", Ty::Message(&V2_CONDITION), Shape::Repeated),
    ],
};

static V2_CONDITION: Message = Message {
    name: "k8s.io.api.autoscaling.v2.HorizontalPodAutoscalerCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "message", Ty::String, Shape::OmitZero),
    ],
};

static V2_METRIC_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.MetricStatus",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "object", Ty::Message(&V2_OBJECT_STATUS), Shape::Keep),
        f(3, "pods", Ty::Message(&V2_PODS_STATUS), Shape::Keep),
        f(4, "resource", Ty::Message(&V2_RESOURCE_STATUS), Shape::Keep),
        f(5, "external", Ty::Message(&V2_EXTERNAL_STATUS), Shape::Keep),
        f(
            7,
            "containerResource",
            Ty::Message(&V2_CONTAINER_RESOURCE_STATUS),
            Shape::Keep,
        ),
    ],
};

static V2_OBJECT_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ObjectMetricStatus",
    fields: &[
        f(1, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
        f(2, "current", Ty::Message(&V2_VALUE_STATUS), Shape::Keep),
        f(
            3,
            "describedObject",
            Ty::Message(&V2_REFERENCE),
            Shape::Keep,
        ),
    ],
};

static V2_PODS_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.PodsMetricStatus",
    fields: &[
        f(1, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
        f(2, "current", Ty::Message(&V2_VALUE_STATUS), Shape::Keep),
    ],
};

static V2_RESOURCE_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ResourceMetricStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "current", Ty::Message(&V2_VALUE_STATUS), Shape::Keep),
    ],
};

static V2_CONTAINER_RESOURCE_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ContainerResourceMetricStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "current", Ty::Message(&V2_VALUE_STATUS), Shape::Keep),
        f(3, "container", Ty::String, Shape::Keep),
    ],
};

static V2_EXTERNAL_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.ExternalMetricStatus",
    fields: &[
        f(1, "metric", Ty::Message(&V2_METRIC_IDENTIFIER), Shape::Keep),
        f(2, "current", Ty::Message(&V2_VALUE_STATUS), Shape::Keep),
    ],
};

static V2_VALUE_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v2.MetricValueStatus",
    fields: &[
        f(1, "value", Ty::Quantity, Shape::Keep),
        f(2, "averageValue", Ty::Quantity, Shape::Keep),
        f(3, "averageUtilization", Ty::Int32, Shape::Keep),
    ],
};

pub static AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER: Message = Message {
    name: "k8s.io.api.autoscaling.v1.HorizontalPodAutoscaler",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&V1_SPEC), Shape::Keep),
        f(3, "status", Ty::Message(&V1_STATUS), Shape::Keep),
    ],
};

static V1_SPEC: Message = Message {
    name: "k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerSpec",
    fields: &[
        f(1, "scaleTargetRef", Ty::Message(&V1_REFERENCE), Shape::Keep),
        f(2, "minReplicas", Ty::Int32, Shape::Keep),
        f(3, "maxReplicas", Ty::Int32, Shape::Keep),
        f(4, "targetCPUUtilizationPercentage", Ty::Int32, Shape::Keep),
    ],
};

static V1_REFERENCE: Message = Message {
    name: "k8s.io.api.autoscaling.v1.CrossVersionObjectReference",
    fields: &[
        f(1, "kind", Ty::String, Shape::Keep),
        f(2, "name", Ty::String, Shape::Keep),
        f(3, "apiVersion", Ty::String, Shape::OmitZero),
    ],
};

static V1_STATUS: Message = Message {
    name: "k8s.io.api.autoscaling.v1.HorizontalPodAutoscalerStatus",
    fields: &[
        f(1, "observedGeneration", Ty::Int64, Shape::Keep),
        f(2, "lastScaleTime", Ty::Time, Shape::Keep),
        f(3, "currentReplicas", Ty::Int32, Shape::Keep),
        f(4, "desiredReplicas", Ty::Int32, Shape::Keep),
        f(5, "currentCPUUtilizationPercentage", Ty::Int32, Shape::Keep),
    ],
};
