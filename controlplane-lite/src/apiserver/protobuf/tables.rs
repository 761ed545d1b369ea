//! Field tables for every message reachable from the kinds in [`ROOTS`].
//!
//! Facts of the wire protocol, not logic: field numbers and proto types come from the
//! Kubernetes .proto definitions (as k8s-pb 0.9 renders them), JSON names and the
//! pointer/omitempty distinction behind [`Shape::Keep`] vs [`Shape::OmitZero`] from the Go
//! API types (k8s.io/api v0.32, v0.35 for newer fields), cross-checked against
//! k8s-openapi 0.29's serde names. Each message lists its fields in tag order, which
//! `Message::field` relies on (a unit test checks it).
//!
//! Go's inlined structs (`json:",inline"`, e.g. Volume's VolumeSource) are separate proto
//! messages but one JSON object, hence [`Shape::Inline`] with an empty JSON name.

use super::schema::{Message, Shape, Ty, f};
use super::tables_autoscaling::{
    AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER, AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER,
};
use super::tables_certificates::CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST;
use super::tables_policy::POLICY_V1_EVICTION;

/// The kinds a protobuf body may carry: (apiVersion, kind, message); "*" matches any apiVersion.
pub static ROOTS: &[(&str, &str, &Message)] = &[
    ("v1", "ConfigMap", &CORE_V1_CONFIG_MAP),
    ("v1", "Secret", &CORE_V1_SECRET),
    ("v1", "Namespace", &CORE_V1_NAMESPACE),
    ("v1", "ServiceAccount", &CORE_V1_SERVICE_ACCOUNT),
    ("v1", "Service", &CORE_V1_SERVICE),
    ("v1", "Pod", &CORE_V1_POD),
    (
        "v1",
        "PersistentVolumeClaim",
        &CORE_V1_PERSISTENT_VOLUME_CLAIM,
    ),
    ("v1", "ResourceQuota", &CORE_V1_RESOURCE_QUOTA),
    ("apps/v1", "Deployment", &APPS_V1_DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &APPS_V1_REPLICA_SET),
    ("apps/v1", "StatefulSet", &APPS_V1_STATEFUL_SET),
    ("apps/v1", "DaemonSet", &APPS_V1_DAEMON_SET),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER,
    ),
    (
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        &AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER,
    ),
    ("batch/v1", "Job", &BATCH_V1_JOB),
    (
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        &CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST,
    ),
    ("batch/v1", "CronJob", &BATCH_V1_CRON_JOB),
    ("networking.k8s.io/v1", "Ingress", &NETWORKING_V1_INGRESS),
    ("rbac.authorization.k8s.io/v1", "Role", &RBAC_V1_ROLE),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        &RBAC_V1_CLUSTER_ROLE,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        &RBAC_V1_ROLE_BINDING,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        &RBAC_V1_CLUSTER_ROLE_BINDING,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        &POLICY_V1_POD_DISRUPTION_BUDGET,
    ),
    ("policy/v1", "Eviction", &POLICY_V1_EVICTION),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &SCHEDULING_V1_PRIORITY_CLASS,
    ),
    (
        "authentication.k8s.io/v1",
        "TokenRequest",
        &AUTHENTICATION_V1_TOKEN_REQUEST,
    ),
    ("*", "DeleteOptions", &META_V1_DELETE_OPTIONS),
];

pub static APPS_V1_DAEMON_SET: Message = Message {
    name: "k8s.io.api.apps.v1.DaemonSet",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&APPS_V1_DAEMON_SET_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&APPS_V1_DAEMON_SET_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_DAEMON_SET_CONDITION: Message = Message {
    name: "k8s.io.api.apps.v1.DaemonSetCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static APPS_V1_DAEMON_SET_SPEC: Message = Message {
    name: "k8s.io.api.apps.v1.DaemonSetSpec",
    fields: &[
        f(
            1,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(
            2,
            "template",
            Ty::Message(&CORE_V1_POD_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "updateStrategy",
            Ty::Message(&APPS_V1_DAEMON_SET_UPDATE_STRATEGY),
            Shape::Keep,
        ),
        f(4, "minReadySeconds", Ty::Int32, Shape::OmitZero),
        f(6, "revisionHistoryLimit", Ty::Int32, Shape::Keep),
    ],
};

pub static APPS_V1_DAEMON_SET_STATUS: Message = Message {
    name: "k8s.io.api.apps.v1.DaemonSetStatus",
    fields: &[
        f(1, "currentNumberScheduled", Ty::Int32, Shape::Keep),
        f(2, "numberMisscheduled", Ty::Int32, Shape::Keep),
        f(3, "desiredNumberScheduled", Ty::Int32, Shape::Keep),
        f(4, "numberReady", Ty::Int32, Shape::Keep),
        f(5, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(6, "updatedNumberScheduled", Ty::Int32, Shape::OmitZero),
        f(7, "numberAvailable", Ty::Int32, Shape::OmitZero),
        f(8, "numberUnavailable", Ty::Int32, Shape::OmitZero),
        f(9, "collisionCount", Ty::Int32, Shape::Keep),
        f(
            10,
            "conditions",
            Ty::Message(&APPS_V1_DAEMON_SET_CONDITION),
            Shape::Repeated,
        ),
    ],
};

pub static APPS_V1_DAEMON_SET_UPDATE_STRATEGY: Message = Message {
    name: "k8s.io.api.apps.v1.DaemonSetUpdateStrategy",
    fields: &[
        f(1, "type", Ty::String, Shape::OmitZero),
        f(
            2,
            "rollingUpdate",
            Ty::Message(&APPS_V1_ROLLING_UPDATE_DAEMON_SET),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_DEPLOYMENT: Message = Message {
    name: "k8s.io.api.apps.v1.Deployment",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&APPS_V1_DEPLOYMENT_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&APPS_V1_DEPLOYMENT_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_DEPLOYMENT_CONDITION: Message = Message {
    name: "k8s.io.api.apps.v1.DeploymentCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "message", Ty::String, Shape::OmitZero),
        f(6, "lastUpdateTime", Ty::Time, Shape::OmitZero),
        f(7, "lastTransitionTime", Ty::Time, Shape::OmitZero),
    ],
};

pub static APPS_V1_DEPLOYMENT_SPEC: Message = Message {
    name: "k8s.io.api.apps.v1.DeploymentSpec",
    fields: &[
        f(1, "replicas", Ty::Int32, Shape::Keep),
        f(
            2,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(
            3,
            "template",
            Ty::Message(&CORE_V1_POD_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(
            4,
            "strategy",
            Ty::Message(&APPS_V1_DEPLOYMENT_STRATEGY),
            Shape::Keep,
        ),
        f(5, "minReadySeconds", Ty::Int32, Shape::OmitZero),
        f(6, "revisionHistoryLimit", Ty::Int32, Shape::Keep),
        f(7, "paused", Ty::Bool, Shape::OmitZero),
        f(9, "progressDeadlineSeconds", Ty::Int32, Shape::Keep),
    ],
};

pub static APPS_V1_DEPLOYMENT_STATUS: Message = Message {
    name: "k8s.io.api.apps.v1.DeploymentStatus",
    fields: &[
        f(1, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(2, "replicas", Ty::Int32, Shape::OmitZero),
        f(3, "updatedReplicas", Ty::Int32, Shape::OmitZero),
        f(4, "availableReplicas", Ty::Int32, Shape::OmitZero),
        f(5, "unavailableReplicas", Ty::Int32, Shape::OmitZero),
        f(
            6,
            "conditions",
            Ty::Message(&APPS_V1_DEPLOYMENT_CONDITION),
            Shape::Repeated,
        ),
        f(7, "readyReplicas", Ty::Int32, Shape::OmitZero),
        f(8, "collisionCount", Ty::Int32, Shape::Keep),
        f(9, "terminatingReplicas", Ty::Int32, Shape::Keep),
    ],
};

pub static APPS_V1_DEPLOYMENT_STRATEGY: Message = Message {
    name: "k8s.io.api.apps.v1.DeploymentStrategy",
    fields: &[
        f(1, "type", Ty::String, Shape::OmitZero),
        f(
            2,
            "rollingUpdate",
            Ty::Message(&APPS_V1_ROLLING_UPDATE_DEPLOYMENT),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_REPLICA_SET: Message = Message {
    name: "k8s.io.api.apps.v1.ReplicaSet",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&APPS_V1_REPLICA_SET_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&APPS_V1_REPLICA_SET_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_REPLICA_SET_CONDITION: Message = Message {
    name: "k8s.io.api.apps.v1.ReplicaSetCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static APPS_V1_REPLICA_SET_SPEC: Message = Message {
    name: "k8s.io.api.apps.v1.ReplicaSetSpec",
    fields: &[
        f(1, "replicas", Ty::Int32, Shape::Keep),
        f(
            2,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(
            3,
            "template",
            Ty::Message(&CORE_V1_POD_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(4, "minReadySeconds", Ty::Int32, Shape::OmitZero),
    ],
};

pub static APPS_V1_REPLICA_SET_STATUS: Message = Message {
    name: "k8s.io.api.apps.v1.ReplicaSetStatus",
    fields: &[
        f(1, "replicas", Ty::Int32, Shape::Keep),
        f(2, "fullyLabeledReplicas", Ty::Int32, Shape::OmitZero),
        f(3, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(4, "readyReplicas", Ty::Int32, Shape::OmitZero),
        f(5, "availableReplicas", Ty::Int32, Shape::OmitZero),
        f(
            6,
            "conditions",
            Ty::Message(&APPS_V1_REPLICA_SET_CONDITION),
            Shape::Repeated,
        ),
        f(7, "terminatingReplicas", Ty::Int32, Shape::Keep),
    ],
};

pub static APPS_V1_ROLLING_UPDATE_DAEMON_SET: Message = Message {
    name: "k8s.io.api.apps.v1.RollingUpdateDaemonSet",
    fields: &[
        f(1, "maxUnavailable", Ty::IntOrString, Shape::Keep),
        f(2, "maxSurge", Ty::IntOrString, Shape::Keep),
    ],
};

pub static APPS_V1_ROLLING_UPDATE_DEPLOYMENT: Message = Message {
    name: "k8s.io.api.apps.v1.RollingUpdateDeployment",
    fields: &[
        f(1, "maxUnavailable", Ty::IntOrString, Shape::Keep),
        f(2, "maxSurge", Ty::IntOrString, Shape::Keep),
    ],
};

pub static APPS_V1_ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message = Message {
    name: "k8s.io.api.apps.v1.RollingUpdateStatefulSetStrategy",
    fields: &[
        f(1, "partition", Ty::Int32, Shape::Keep),
        f(2, "maxUnavailable", Ty::IntOrString, Shape::Keep),
    ],
};

pub static APPS_V1_STATEFUL_SET: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSet",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&APPS_V1_STATEFUL_SET_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&APPS_V1_STATEFUL_SET_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_STATEFUL_SET_CONDITION: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static APPS_V1_STATEFUL_SET_ORDINALS: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetOrdinals",
    fields: &[f(1, "start", Ty::Int32, Shape::Keep)],
};

pub static APPS_V1_STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy",
    fields: &[
        f(1, "whenDeleted", Ty::String, Shape::OmitZero),
        f(2, "whenScaled", Ty::String, Shape::OmitZero),
    ],
};

pub static APPS_V1_STATEFUL_SET_SPEC: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetSpec",
    fields: &[
        f(1, "replicas", Ty::Int32, Shape::Keep),
        f(
            2,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(
            3,
            "template",
            Ty::Message(&CORE_V1_POD_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(
            4,
            "volumeClaimTemplates",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM),
            Shape::Repeated,
        ),
        f(5, "serviceName", Ty::String, Shape::Keep),
        f(6, "podManagementPolicy", Ty::String, Shape::OmitZero),
        f(
            7,
            "updateStrategy",
            Ty::Message(&APPS_V1_STATEFUL_SET_UPDATE_STRATEGY),
            Shape::Keep,
        ),
        f(8, "revisionHistoryLimit", Ty::Int32, Shape::Keep),
        f(9, "minReadySeconds", Ty::Int32, Shape::OmitZero),
        f(
            10,
            "persistentVolumeClaimRetentionPolicy",
            Ty::Message(&APPS_V1_STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY),
            Shape::Keep,
        ),
        f(
            11,
            "ordinals",
            Ty::Message(&APPS_V1_STATEFUL_SET_ORDINALS),
            Shape::Keep,
        ),
    ],
};

pub static APPS_V1_STATEFUL_SET_STATUS: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetStatus",
    fields: &[
        f(1, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(2, "replicas", Ty::Int32, Shape::Keep),
        f(3, "readyReplicas", Ty::Int32, Shape::OmitZero),
        f(4, "currentReplicas", Ty::Int32, Shape::OmitZero),
        f(5, "updatedReplicas", Ty::Int32, Shape::OmitZero),
        f(6, "currentRevision", Ty::String, Shape::OmitZero),
        f(7, "updateRevision", Ty::String, Shape::OmitZero),
        f(9, "collisionCount", Ty::Int32, Shape::Keep),
        f(
            10,
            "conditions",
            Ty::Message(&APPS_V1_STATEFUL_SET_CONDITION),
            Shape::Repeated,
        ),
        f(11, "availableReplicas", Ty::Int32, Shape::Keep),
    ],
};

pub static APPS_V1_STATEFUL_SET_UPDATE_STRATEGY: Message = Message {
    name: "k8s.io.api.apps.v1.StatefulSetUpdateStrategy",
    fields: &[
        f(1, "type", Ty::String, Shape::OmitZero),
        f(
            2,
            "rollingUpdate",
            Ty::Message(&APPS_V1_ROLLING_UPDATE_STATEFUL_SET_STRATEGY),
            Shape::Keep,
        ),
    ],
};

pub static AUTHENTICATION_V1_BOUND_OBJECT_REFERENCE: Message = Message {
    name: "k8s.io.api.authentication.v1.BoundObjectReference",
    fields: &[
        f(1, "kind", Ty::String, Shape::OmitZero),
        f(2, "apiVersion", Ty::String, Shape::OmitZero),
        f(3, "name", Ty::String, Shape::OmitZero),
        f(4, "uid", Ty::String, Shape::OmitZero),
    ],
};

pub static AUTHENTICATION_V1_TOKEN_REQUEST: Message = Message {
    name: "k8s.io.api.authentication.v1.TokenRequest",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&AUTHENTICATION_V1_TOKEN_REQUEST_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&AUTHENTICATION_V1_TOKEN_REQUEST_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static AUTHENTICATION_V1_TOKEN_REQUEST_SPEC: Message = Message {
    name: "k8s.io.api.authentication.v1.TokenRequestSpec",
    fields: &[
        f(1, "audiences", Ty::String, Shape::Repeated),
        f(
            3,
            "boundObjectRef",
            Ty::Message(&AUTHENTICATION_V1_BOUND_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(4, "expirationSeconds", Ty::Int64, Shape::Keep),
    ],
};

pub static AUTHENTICATION_V1_TOKEN_REQUEST_STATUS: Message = Message {
    name: "k8s.io.api.authentication.v1.TokenRequestStatus",
    fields: &[
        f(1, "token", Ty::String, Shape::Keep),
        f(2, "expirationTimestamp", Ty::Time, Shape::Keep),
    ],
};

pub static BATCH_V1_CRON_JOB: Message = Message {
    name: "k8s.io.api.batch.v1.CronJob",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&BATCH_V1_CRON_JOB_SPEC), Shape::Keep),
        f(
            3,
            "status",
            Ty::Message(&BATCH_V1_CRON_JOB_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static BATCH_V1_CRON_JOB_SPEC: Message = Message {
    name: "k8s.io.api.batch.v1.CronJobSpec",
    fields: &[
        f(1, "schedule", Ty::String, Shape::Keep),
        f(2, "startingDeadlineSeconds", Ty::Int64, Shape::Keep),
        f(3, "concurrencyPolicy", Ty::String, Shape::OmitZero),
        f(4, "suspend", Ty::Bool, Shape::Keep),
        f(
            5,
            "jobTemplate",
            Ty::Message(&BATCH_V1_JOB_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(6, "successfulJobsHistoryLimit", Ty::Int32, Shape::Keep),
        f(7, "failedJobsHistoryLimit", Ty::Int32, Shape::Keep),
        f(8, "timeZone", Ty::String, Shape::Keep),
    ],
};

pub static BATCH_V1_CRON_JOB_STATUS: Message = Message {
    name: "k8s.io.api.batch.v1.CronJobStatus",
    fields: &[
        f(
            1,
            "active",
            Ty::Message(&CORE_V1_OBJECT_REFERENCE),
            Shape::Repeated,
        ),
        f(4, "lastScheduleTime", Ty::Time, Shape::Keep),
        f(5, "lastSuccessfulTime", Ty::Time, Shape::Keep),
    ],
};

pub static BATCH_V1_JOB: Message = Message {
    name: "k8s.io.api.batch.v1.Job",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&BATCH_V1_JOB_SPEC), Shape::Keep),
        f(3, "status", Ty::Message(&BATCH_V1_JOB_STATUS), Shape::Keep),
    ],
};

pub static BATCH_V1_JOB_CONDITION: Message = Message {
    name: "k8s.io.api.batch.v1.JobCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastProbeTime", Ty::Time, Shape::OmitZero),
        f(4, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(5, "reason", Ty::String, Shape::OmitZero),
        f(6, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static BATCH_V1_JOB_SPEC: Message = Message {
    name: "k8s.io.api.batch.v1.JobSpec",
    fields: &[
        f(1, "parallelism", Ty::Int32, Shape::Keep),
        f(2, "completions", Ty::Int32, Shape::Keep),
        f(3, "activeDeadlineSeconds", Ty::Int64, Shape::Keep),
        f(
            4,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(5, "manualSelector", Ty::Bool, Shape::Keep),
        f(
            6,
            "template",
            Ty::Message(&CORE_V1_POD_TEMPLATE_SPEC),
            Shape::Keep,
        ),
        f(7, "backoffLimit", Ty::Int32, Shape::Keep),
        f(8, "ttlSecondsAfterFinished", Ty::Int32, Shape::Keep),
        f(9, "completionMode", Ty::String, Shape::Keep),
        f(10, "suspend", Ty::Bool, Shape::Keep),
        f(
            11,
            "podFailurePolicy",
            Ty::Message(&BATCH_V1_POD_FAILURE_POLICY),
            Shape::Keep,
        ),
        f(12, "backoffLimitPerIndex", Ty::Int32, Shape::Keep),
        f(13, "maxFailedIndexes", Ty::Int32, Shape::Keep),
        f(14, "podReplacementPolicy", Ty::String, Shape::Keep),
        f(15, "managedBy", Ty::String, Shape::Keep),
        f(
            16,
            "successPolicy",
            Ty::Message(&BATCH_V1_SUCCESS_POLICY),
            Shape::Keep,
        ),
    ],
};

pub static BATCH_V1_JOB_STATUS: Message = Message {
    name: "k8s.io.api.batch.v1.JobStatus",
    fields: &[
        f(
            1,
            "conditions",
            Ty::Message(&BATCH_V1_JOB_CONDITION),
            Shape::Repeated,
        ),
        f(2, "startTime", Ty::Time, Shape::Keep),
        f(3, "completionTime", Ty::Time, Shape::Keep),
        f(4, "active", Ty::Int32, Shape::OmitZero),
        f(5, "succeeded", Ty::Int32, Shape::OmitZero),
        f(6, "failed", Ty::Int32, Shape::OmitZero),
        f(7, "completedIndexes", Ty::String, Shape::OmitZero),
        f(
            8,
            "uncountedTerminatedPods",
            Ty::Message(&BATCH_V1_UNCOUNTED_TERMINATED_PODS),
            Shape::Keep,
        ),
        f(9, "ready", Ty::Int32, Shape::Keep),
        f(10, "failedIndexes", Ty::String, Shape::Keep),
        f(11, "terminating", Ty::Int32, Shape::Keep),
    ],
};

pub static BATCH_V1_JOB_TEMPLATE_SPEC: Message = Message {
    name: "k8s.io.api.batch.v1.JobTemplateSpec",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&BATCH_V1_JOB_SPEC), Shape::Keep),
    ],
};

pub static BATCH_V1_POD_FAILURE_POLICY: Message = Message {
    name: "k8s.io.api.batch.v1.PodFailurePolicy",
    fields: &[f(
        1,
        "rules",
        Ty::Message(&BATCH_V1_POD_FAILURE_POLICY_RULE),
        Shape::Repeated,
    )],
};

pub static BATCH_V1_POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message {
    name: "k8s.io.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
    fields: &[
        f(1, "containerName", Ty::String, Shape::Keep),
        f(2, "operator", Ty::String, Shape::Keep),
        f(3, "values", Ty::Int32, Shape::Repeated),
    ],
};

pub static BATCH_V1_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message = Message {
    name: "k8s.io.api.batch.v1.PodFailurePolicyOnPodConditionsPattern",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
    ],
};

pub static BATCH_V1_POD_FAILURE_POLICY_RULE: Message = Message {
    name: "k8s.io.api.batch.v1.PodFailurePolicyRule",
    fields: &[
        f(1, "action", Ty::String, Shape::Keep),
        f(
            2,
            "onExitCodes",
            Ty::Message(&BATCH_V1_POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT),
            Shape::Keep,
        ),
        f(
            3,
            "onPodConditions",
            Ty::Message(&BATCH_V1_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN),
            Shape::Repeated,
        ),
    ],
};

pub static BATCH_V1_SUCCESS_POLICY: Message = Message {
    name: "k8s.io.api.batch.v1.SuccessPolicy",
    fields: &[f(
        1,
        "rules",
        Ty::Message(&BATCH_V1_SUCCESS_POLICY_RULE),
        Shape::Repeated,
    )],
};

pub static BATCH_V1_SUCCESS_POLICY_RULE: Message = Message {
    name: "k8s.io.api.batch.v1.SuccessPolicyRule",
    fields: &[
        f(1, "succeededIndexes", Ty::String, Shape::Keep),
        f(2, "succeededCount", Ty::Int32, Shape::Keep),
    ],
};

pub static BATCH_V1_UNCOUNTED_TERMINATED_PODS: Message = Message {
    name: "k8s.io.api.batch.v1.UncountedTerminatedPods",
    fields: &[
        f(1, "succeeded", Ty::String, Shape::Repeated),
        f(2, "failed", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_AFFINITY: Message = Message {
    name: "k8s.io.api.core.v1.Affinity",
    fields: &[
        f(
            1,
            "nodeAffinity",
            Ty::Message(&CORE_V1_NODE_AFFINITY),
            Shape::Keep,
        ),
        f(
            2,
            "podAffinity",
            Ty::Message(&CORE_V1_POD_AFFINITY),
            Shape::Keep,
        ),
        f(
            3,
            "podAntiAffinity",
            Ty::Message(&CORE_V1_POD_ANTI_AFFINITY),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_APP_ARMOR_PROFILE: Message = Message {
    name: "k8s.io.api.core.v1.AppArmorProfile",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "localhostProfile", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.AWSElasticBlockStoreVolumeSource",
    fields: &[
        f(1, "volumeID", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(3, "partition", Ty::Int32, Shape::OmitZero),
        f(4, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_AZURE_DISK_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.AzureDiskVolumeSource",
    fields: &[
        f(1, "diskName", Ty::String, Shape::Keep),
        f(2, "diskURI", Ty::String, Shape::Keep),
        f(3, "cachingMode", Ty::String, Shape::Keep),
        f(4, "fsType", Ty::String, Shape::Keep),
        f(5, "readOnly", Ty::Bool, Shape::Keep),
        f(6, "kind", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_AZURE_FILE_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.AzureFileVolumeSource",
    fields: &[
        f(1, "secretName", Ty::String, Shape::Keep),
        f(2, "shareName", Ty::String, Shape::Keep),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_CAPABILITIES: Message = Message {
    name: "k8s.io.api.core.v1.Capabilities",
    fields: &[
        f(1, "add", Ty::String, Shape::Repeated),
        f(2, "drop", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_CEPH_FS_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.CephFSVolumeSource",
    fields: &[
        f(1, "monitors", Ty::String, Shape::Repeated),
        f(2, "path", Ty::String, Shape::OmitZero),
        f(3, "user", Ty::String, Shape::OmitZero),
        f(4, "secretFile", Ty::String, Shape::OmitZero),
        f(
            5,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(6, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_CINDER_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.CinderVolumeSource",
    fields: &[
        f(1, "volumeID", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
        f(
            4,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_CLIENT_IP_CONFIG: Message = Message {
    name: "k8s.io.api.core.v1.ClientIPConfig",
    fields: &[f(1, "timeoutSeconds", Ty::Int32, Shape::Keep)],
};

pub static CORE_V1_CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.ClusterTrustBundleProjection",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "signerName", Ty::String, Shape::Keep),
        f(
            3,
            "labelSelector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(4, "path", Ty::String, Shape::Keep),
        f(5, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONFIG_MAP: Message = Message {
    name: "k8s.io.api.core.v1.ConfigMap",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "data", Ty::String, Shape::Map),
        f(3, "binaryData", Ty::Bytes, Shape::Map),
        f(4, "immutable", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONFIG_MAP_ENV_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ConfigMapEnvSource",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(2, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONFIG_MAP_KEY_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.ConfigMapKeySelector",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(2, "key", Ty::String, Shape::Keep),
        f(3, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONFIG_MAP_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.ConfigMapProjection",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(
            2,
            "items",
            Ty::Message(&CORE_V1_KEY_TO_PATH),
            Shape::Repeated,
        ),
        f(4, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONFIG_MAP_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ConfigMapVolumeSource",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(
            2,
            "items",
            Ty::Message(&CORE_V1_KEY_TO_PATH),
            Shape::Repeated,
        ),
        f(3, "defaultMode", Ty::Int32, Shape::Keep),
        f(4, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_CONTAINER: Message = Message {
    name: "k8s.io.api.core.v1.Container",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "image", Ty::String, Shape::OmitZero),
        f(3, "command", Ty::String, Shape::Repeated),
        f(4, "args", Ty::String, Shape::Repeated),
        f(5, "workingDir", Ty::String, Shape::OmitZero),
        f(
            6,
            "ports",
            Ty::Message(&CORE_V1_CONTAINER_PORT),
            Shape::Repeated,
        ),
        f(7, "env", Ty::Message(&CORE_V1_ENV_VAR), Shape::Repeated),
        f(
            8,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
        f(
            9,
            "volumeMounts",
            Ty::Message(&CORE_V1_VOLUME_MOUNT),
            Shape::Repeated,
        ),
        f(
            10,
            "livenessProbe",
            Ty::Message(&CORE_V1_PROBE),
            Shape::Keep,
        ),
        f(
            11,
            "readinessProbe",
            Ty::Message(&CORE_V1_PROBE),
            Shape::Keep,
        ),
        f(
            12,
            "lifecycle",
            Ty::Message(&CORE_V1_LIFECYCLE),
            Shape::Keep,
        ),
        f(13, "terminationMessagePath", Ty::String, Shape::OmitZero),
        f(14, "imagePullPolicy", Ty::String, Shape::OmitZero),
        f(
            15,
            "securityContext",
            Ty::Message(&CORE_V1_SECURITY_CONTEXT),
            Shape::Keep,
        ),
        f(16, "stdin", Ty::Bool, Shape::OmitZero),
        f(17, "stdinOnce", Ty::Bool, Shape::OmitZero),
        f(18, "tty", Ty::Bool, Shape::OmitZero),
        f(
            19,
            "envFrom",
            Ty::Message(&CORE_V1_ENV_FROM_SOURCE),
            Shape::Repeated,
        ),
        f(20, "terminationMessagePolicy", Ty::String, Shape::OmitZero),
        f(
            21,
            "volumeDevices",
            Ty::Message(&CORE_V1_VOLUME_DEVICE),
            Shape::Repeated,
        ),
        f(22, "startupProbe", Ty::Message(&CORE_V1_PROBE), Shape::Keep),
        f(
            23,
            "resizePolicy",
            Ty::Message(&CORE_V1_CONTAINER_RESIZE_POLICY),
            Shape::Repeated,
        ),
        f(24, "restartPolicy", Ty::String, Shape::Keep),
        f(
            25,
            "restartPolicyRules",
            Ty::Message(&CORE_V1_CONTAINER_RESTART_RULE),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_CONTAINER_EXTENDED_RESOURCE_REQUEST: Message = Message {
    name: "k8s.io.api.core.v1.ContainerExtendedResourceRequest",
    fields: &[
        f(1, "containerName", Ty::String, Shape::Keep),
        f(2, "resourceName", Ty::String, Shape::Keep),
        f(3, "requestName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_CONTAINER_PORT: Message = Message {
    name: "k8s.io.api.core.v1.ContainerPort",
    fields: &[
        f(1, "name", Ty::String, Shape::OmitZero),
        f(2, "hostPort", Ty::Int32, Shape::OmitZero),
        f(3, "containerPort", Ty::Int32, Shape::Keep),
        f(4, "protocol", Ty::String, Shape::OmitZero),
        f(5, "hostIP", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_CONTAINER_RESIZE_POLICY: Message = Message {
    name: "k8s.io.api.core.v1.ContainerResizePolicy",
    fields: &[
        f(1, "resourceName", Ty::String, Shape::Keep),
        f(2, "restartPolicy", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_CONTAINER_RESTART_RULE: Message = Message {
    name: "k8s.io.api.core.v1.ContainerRestartRule",
    fields: &[
        f(1, "action", Ty::String, Shape::OmitZero),
        f(
            2,
            "exitCodes",
            Ty::Message(&CORE_V1_CONTAINER_RESTART_RULE_ON_EXIT_CODES),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_CONTAINER_RESTART_RULE_ON_EXIT_CODES: Message = Message {
    name: "k8s.io.api.core.v1.ContainerRestartRuleOnExitCodes",
    fields: &[
        f(1, "operator", Ty::String, Shape::OmitZero),
        f(2, "values", Ty::Int32, Shape::Repeated),
    ],
};

pub static CORE_V1_CONTAINER_STATE: Message = Message {
    name: "k8s.io.api.core.v1.ContainerState",
    fields: &[
        f(
            1,
            "waiting",
            Ty::Message(&CORE_V1_CONTAINER_STATE_WAITING),
            Shape::Keep,
        ),
        f(
            2,
            "running",
            Ty::Message(&CORE_V1_CONTAINER_STATE_RUNNING),
            Shape::Keep,
        ),
        f(
            3,
            "terminated",
            Ty::Message(&CORE_V1_CONTAINER_STATE_TERMINATED),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_CONTAINER_STATE_RUNNING: Message = Message {
    name: "k8s.io.api.core.v1.ContainerStateRunning",
    fields: &[f(1, "startedAt", Ty::Time, Shape::OmitZero)],
};

pub static CORE_V1_CONTAINER_STATE_TERMINATED: Message = Message {
    name: "k8s.io.api.core.v1.ContainerStateTerminated",
    fields: &[
        f(1, "exitCode", Ty::Int32, Shape::Keep),
        f(2, "signal", Ty::Int32, Shape::OmitZero),
        f(3, "reason", Ty::String, Shape::OmitZero),
        f(4, "message", Ty::String, Shape::OmitZero),
        f(5, "startedAt", Ty::Time, Shape::OmitZero),
        f(6, "finishedAt", Ty::Time, Shape::OmitZero),
        f(7, "containerID", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_CONTAINER_STATE_WAITING: Message = Message {
    name: "k8s.io.api.core.v1.ContainerStateWaiting",
    fields: &[
        f(1, "reason", Ty::String, Shape::OmitZero),
        f(2, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_CONTAINER_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.ContainerStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(
            2,
            "state",
            Ty::Message(&CORE_V1_CONTAINER_STATE),
            Shape::Keep,
        ),
        f(
            3,
            "lastState",
            Ty::Message(&CORE_V1_CONTAINER_STATE),
            Shape::Keep,
        ),
        f(4, "ready", Ty::Bool, Shape::Keep),
        f(5, "restartCount", Ty::Int32, Shape::Keep),
        f(6, "image", Ty::String, Shape::Keep),
        f(7, "imageID", Ty::String, Shape::Keep),
        f(8, "containerID", Ty::String, Shape::OmitZero),
        f(9, "started", Ty::Bool, Shape::Keep),
        f(10, "allocatedResources", Ty::Quantity, Shape::Map),
        f(
            11,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
        f(
            12,
            "volumeMounts",
            Ty::Message(&CORE_V1_VOLUME_MOUNT_STATUS),
            Shape::Repeated,
        ),
        f(
            13,
            "user",
            Ty::Message(&CORE_V1_CONTAINER_USER),
            Shape::Keep,
        ),
        f(
            14,
            "allocatedResourcesStatus",
            Ty::Message(&CORE_V1_RESOURCE_STATUS),
            Shape::Repeated,
        ),
        f(15, "stopSignal", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_CONTAINER_USER: Message = Message {
    name: "k8s.io.api.core.v1.ContainerUser",
    fields: &[f(
        1,
        "linux",
        Ty::Message(&CORE_V1_LINUX_CONTAINER_USER),
        Shape::Keep,
    )],
};

pub static CORE_V1_CSIVOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.CSIVolumeSource",
    fields: &[
        f(1, "driver", Ty::String, Shape::Keep),
        f(2, "readOnly", Ty::Bool, Shape::Keep),
        f(3, "fsType", Ty::String, Shape::Keep),
        f(4, "volumeAttributes", Ty::String, Shape::Map),
        f(
            5,
            "nodePublishSecretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_DOWNWARD_APIPROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.DownwardAPIProjection",
    fields: &[f(
        1,
        "items",
        Ty::Message(&CORE_V1_DOWNWARD_APIVOLUME_FILE),
        Shape::Repeated,
    )],
};

pub static CORE_V1_DOWNWARD_APIVOLUME_FILE: Message = Message {
    name: "k8s.io.api.core.v1.DownwardAPIVolumeFile",
    fields: &[
        f(1, "path", Ty::String, Shape::Keep),
        f(
            2,
            "fieldRef",
            Ty::Message(&CORE_V1_OBJECT_FIELD_SELECTOR),
            Shape::Keep,
        ),
        f(
            3,
            "resourceFieldRef",
            Ty::Message(&CORE_V1_RESOURCE_FIELD_SELECTOR),
            Shape::Keep,
        ),
        f(4, "mode", Ty::Int32, Shape::Keep),
    ],
};

pub static CORE_V1_DOWNWARD_APIVOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.DownwardAPIVolumeSource",
    fields: &[
        f(
            1,
            "items",
            Ty::Message(&CORE_V1_DOWNWARD_APIVOLUME_FILE),
            Shape::Repeated,
        ),
        f(2, "defaultMode", Ty::Int32, Shape::Keep),
    ],
};

pub static CORE_V1_EMPTY_DIR_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.EmptyDirVolumeSource",
    fields: &[
        f(1, "medium", Ty::String, Shape::OmitZero),
        f(2, "sizeLimit", Ty::Quantity, Shape::Keep),
    ],
};

pub static CORE_V1_ENV_FROM_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.EnvFromSource",
    fields: &[
        f(1, "prefix", Ty::String, Shape::OmitZero),
        f(
            2,
            "configMapRef",
            Ty::Message(&CORE_V1_CONFIG_MAP_ENV_SOURCE),
            Shape::Keep,
        ),
        f(
            3,
            "secretRef",
            Ty::Message(&CORE_V1_SECRET_ENV_SOURCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_ENV_VAR: Message = Message {
    name: "k8s.io.api.core.v1.EnvVar",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "value", Ty::String, Shape::OmitZero),
        f(
            3,
            "valueFrom",
            Ty::Message(&CORE_V1_ENV_VAR_SOURCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_ENV_VAR_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.EnvVarSource",
    fields: &[
        f(
            1,
            "fieldRef",
            Ty::Message(&CORE_V1_OBJECT_FIELD_SELECTOR),
            Shape::Keep,
        ),
        f(
            2,
            "resourceFieldRef",
            Ty::Message(&CORE_V1_RESOURCE_FIELD_SELECTOR),
            Shape::Keep,
        ),
        f(
            3,
            "configMapKeyRef",
            Ty::Message(&CORE_V1_CONFIG_MAP_KEY_SELECTOR),
            Shape::Keep,
        ),
        f(
            4,
            "secretKeyRef",
            Ty::Message(&CORE_V1_SECRET_KEY_SELECTOR),
            Shape::Keep,
        ),
        f(
            5,
            "fileKeyRef",
            Ty::Message(&CORE_V1_FILE_KEY_SELECTOR),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_EPHEMERAL_CONTAINER: Message = Message {
    name: "k8s.io.api.core.v1.EphemeralContainer",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_EPHEMERAL_CONTAINER_COMMON),
            Shape::Inline,
        ),
        f(2, "targetContainerName", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_EPHEMERAL_CONTAINER_COMMON: Message = Message {
    name: "k8s.io.api.core.v1.EphemeralContainerCommon",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "image", Ty::String, Shape::OmitZero),
        f(3, "command", Ty::String, Shape::Repeated),
        f(4, "args", Ty::String, Shape::Repeated),
        f(5, "workingDir", Ty::String, Shape::OmitZero),
        f(
            6,
            "ports",
            Ty::Message(&CORE_V1_CONTAINER_PORT),
            Shape::Repeated,
        ),
        f(7, "env", Ty::Message(&CORE_V1_ENV_VAR), Shape::Repeated),
        f(
            8,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
        f(
            9,
            "volumeMounts",
            Ty::Message(&CORE_V1_VOLUME_MOUNT),
            Shape::Repeated,
        ),
        f(
            10,
            "livenessProbe",
            Ty::Message(&CORE_V1_PROBE),
            Shape::Keep,
        ),
        f(
            11,
            "readinessProbe",
            Ty::Message(&CORE_V1_PROBE),
            Shape::Keep,
        ),
        f(
            12,
            "lifecycle",
            Ty::Message(&CORE_V1_LIFECYCLE),
            Shape::Keep,
        ),
        f(13, "terminationMessagePath", Ty::String, Shape::OmitZero),
        f(14, "imagePullPolicy", Ty::String, Shape::OmitZero),
        f(
            15,
            "securityContext",
            Ty::Message(&CORE_V1_SECURITY_CONTEXT),
            Shape::Keep,
        ),
        f(16, "stdin", Ty::Bool, Shape::OmitZero),
        f(17, "stdinOnce", Ty::Bool, Shape::OmitZero),
        f(18, "tty", Ty::Bool, Shape::OmitZero),
        f(
            19,
            "envFrom",
            Ty::Message(&CORE_V1_ENV_FROM_SOURCE),
            Shape::Repeated,
        ),
        f(20, "terminationMessagePolicy", Ty::String, Shape::OmitZero),
        f(
            21,
            "volumeDevices",
            Ty::Message(&CORE_V1_VOLUME_DEVICE),
            Shape::Repeated,
        ),
        f(22, "startupProbe", Ty::Message(&CORE_V1_PROBE), Shape::Keep),
        f(
            23,
            "resizePolicy",
            Ty::Message(&CORE_V1_CONTAINER_RESIZE_POLICY),
            Shape::Repeated,
        ),
        f(24, "restartPolicy", Ty::String, Shape::Keep),
        f(
            25,
            "restartPolicyRules",
            Ty::Message(&CORE_V1_CONTAINER_RESTART_RULE),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_EPHEMERAL_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.EphemeralVolumeSource",
    fields: &[f(
        1,
        "volumeClaimTemplate",
        Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_TEMPLATE),
        Shape::Keep,
    )],
};

pub static CORE_V1_EXEC_ACTION: Message = Message {
    name: "k8s.io.api.core.v1.ExecAction",
    fields: &[f(1, "command", Ty::String, Shape::Repeated)],
};

pub static CORE_V1_FC_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.FCVolumeSource",
    fields: &[
        f(1, "targetWWNs", Ty::String, Shape::Repeated),
        f(2, "lun", Ty::Int32, Shape::Keep),
        f(3, "fsType", Ty::String, Shape::OmitZero),
        f(4, "readOnly", Ty::Bool, Shape::OmitZero),
        f(5, "wwids", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_FILE_KEY_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.FileKeySelector",
    fields: &[
        f(1, "volumeName", Ty::String, Shape::Keep),
        f(2, "path", Ty::String, Shape::Keep),
        f(3, "key", Ty::String, Shape::Keep),
        f(4, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_FLEX_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.FlexVolumeSource",
    fields: &[
        f(1, "driver", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(
            3,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(4, "readOnly", Ty::Bool, Shape::OmitZero),
        f(5, "options", Ty::String, Shape::Map),
    ],
};

pub static CORE_V1_FLOCKER_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.FlockerVolumeSource",
    fields: &[
        f(1, "datasetName", Ty::String, Shape::OmitZero),
        f(2, "datasetUUID", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.GCEPersistentDiskVolumeSource",
    fields: &[
        f(1, "pdName", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(3, "partition", Ty::Int32, Shape::OmitZero),
        f(4, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_GIT_REPO_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.GitRepoVolumeSource",
    fields: &[
        f(1, "repository", Ty::String, Shape::Keep),
        f(2, "revision", Ty::String, Shape::OmitZero),
        f(3, "directory", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_GLUSTERFS_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.GlusterfsVolumeSource",
    fields: &[
        f(1, "endpoints", Ty::String, Shape::Keep),
        f(2, "path", Ty::String, Shape::Keep),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_GRPC_ACTION: Message = Message {
    name: "k8s.io.api.core.v1.GRPCAction",
    fields: &[
        f(1, "port", Ty::Int32, Shape::Keep),
        f(2, "service", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_HOST_ALIAS: Message = Message {
    name: "k8s.io.api.core.v1.HostAlias",
    fields: &[
        f(1, "ip", Ty::String, Shape::Keep),
        f(2, "hostnames", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_HOST_IP: Message = Message {
    name: "k8s.io.api.core.v1.HostIP",
    fields: &[f(1, "ip", Ty::String, Shape::Keep)],
};

pub static CORE_V1_HOST_PATH_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.HostPathVolumeSource",
    fields: &[
        f(1, "path", Ty::String, Shape::Keep),
        f(2, "type", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_HTTP_GET_ACTION: Message = Message {
    name: "k8s.io.api.core.v1.HTTPGetAction",
    fields: &[
        f(1, "path", Ty::String, Shape::OmitZero),
        f(2, "port", Ty::IntOrString, Shape::Keep),
        f(3, "host", Ty::String, Shape::OmitZero),
        f(4, "scheme", Ty::String, Shape::OmitZero),
        f(
            5,
            "httpHeaders",
            Ty::Message(&CORE_V1_HTTP_HEADER),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_HTTP_HEADER: Message = Message {
    name: "k8s.io.api.core.v1.HTTPHeader",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "value", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_IMAGE_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ImageVolumeSource",
    fields: &[
        f(1, "reference", Ty::String, Shape::OmitZero),
        f(2, "pullPolicy", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_ISCSI_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ISCSIVolumeSource",
    fields: &[
        f(1, "targetPortal", Ty::String, Shape::Keep),
        f(2, "iqn", Ty::String, Shape::Keep),
        f(3, "lun", Ty::Int32, Shape::Keep),
        f(4, "iscsiInterface", Ty::String, Shape::OmitZero),
        f(5, "fsType", Ty::String, Shape::OmitZero),
        f(6, "readOnly", Ty::Bool, Shape::OmitZero),
        f(7, "portals", Ty::String, Shape::Repeated),
        f(8, "chapAuthDiscovery", Ty::Bool, Shape::OmitZero),
        f(
            10,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(11, "chapAuthSession", Ty::Bool, Shape::OmitZero),
        f(12, "initiatorName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_KEY_TO_PATH: Message = Message {
    name: "k8s.io.api.core.v1.KeyToPath",
    fields: &[
        f(1, "key", Ty::String, Shape::Keep),
        f(2, "path", Ty::String, Shape::Keep),
        f(3, "mode", Ty::Int32, Shape::Keep),
    ],
};

pub static CORE_V1_LIFECYCLE: Message = Message {
    name: "k8s.io.api.core.v1.Lifecycle",
    fields: &[
        f(
            1,
            "postStart",
            Ty::Message(&CORE_V1_LIFECYCLE_HANDLER),
            Shape::Keep,
        ),
        f(
            2,
            "preStop",
            Ty::Message(&CORE_V1_LIFECYCLE_HANDLER),
            Shape::Keep,
        ),
        f(3, "stopSignal", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_LIFECYCLE_HANDLER: Message = Message {
    name: "k8s.io.api.core.v1.LifecycleHandler",
    fields: &[
        f(1, "exec", Ty::Message(&CORE_V1_EXEC_ACTION), Shape::Keep),
        f(
            2,
            "httpGet",
            Ty::Message(&CORE_V1_HTTP_GET_ACTION),
            Shape::Keep,
        ),
        f(
            3,
            "tcpSocket",
            Ty::Message(&CORE_V1_TCP_SOCKET_ACTION),
            Shape::Keep,
        ),
        f(4, "sleep", Ty::Message(&CORE_V1_SLEEP_ACTION), Shape::Keep),
    ],
};

pub static CORE_V1_LINUX_CONTAINER_USER: Message = Message {
    name: "k8s.io.api.core.v1.LinuxContainerUser",
    fields: &[
        f(1, "uid", Ty::Int64, Shape::Keep),
        f(2, "gid", Ty::Int64, Shape::Keep),
        f(3, "supplementalGroups", Ty::Int64, Shape::Repeated),
    ],
};

pub static CORE_V1_LOAD_BALANCER_INGRESS: Message = Message {
    name: "k8s.io.api.core.v1.LoadBalancerIngress",
    fields: &[
        f(1, "ip", Ty::String, Shape::OmitZero),
        f(2, "hostname", Ty::String, Shape::OmitZero),
        f(3, "ipMode", Ty::String, Shape::Keep),
        f(
            4,
            "ports",
            Ty::Message(&CORE_V1_PORT_STATUS),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_LOAD_BALANCER_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.LoadBalancerStatus",
    fields: &[f(
        1,
        "ingress",
        Ty::Message(&CORE_V1_LOAD_BALANCER_INGRESS),
        Shape::Repeated,
    )],
};

pub static CORE_V1_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "k8s.io.api.core.v1.LocalObjectReference",
    fields: &[f(1, "name", Ty::String, Shape::OmitZero)],
};

pub static CORE_V1_MODIFY_VOLUME_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.ModifyVolumeStatus",
    fields: &[
        f(
            1,
            "targetVolumeAttributesClassName",
            Ty::String,
            Shape::OmitZero,
        ),
        f(2, "status", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_NAMESPACE: Message = Message {
    name: "k8s.io.api.core.v1.Namespace",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&CORE_V1_NAMESPACE_SPEC), Shape::Keep),
        f(
            3,
            "status",
            Ty::Message(&CORE_V1_NAMESPACE_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_NAMESPACE_CONDITION: Message = Message {
    name: "k8s.io.api.core.v1.NamespaceCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(4, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(5, "reason", Ty::String, Shape::OmitZero),
        f(6, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_NAMESPACE_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.NamespaceSpec",
    fields: &[f(1, "finalizers", Ty::String, Shape::Repeated)],
};

pub static CORE_V1_NAMESPACE_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.NamespaceStatus",
    fields: &[
        f(1, "phase", Ty::String, Shape::OmitZero),
        f(
            2,
            "conditions",
            Ty::Message(&CORE_V1_NAMESPACE_CONDITION),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_NFS_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.NFSVolumeSource",
    fields: &[
        f(1, "server", Ty::String, Shape::Keep),
        f(2, "path", Ty::String, Shape::Keep),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_NODE_AFFINITY: Message = Message {
    name: "k8s.io.api.core.v1.NodeAffinity",
    fields: &[
        f(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_NODE_SELECTOR),
            Shape::Keep,
        ),
        f(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_PREFERRED_SCHEDULING_TERM),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_NODE_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.NodeSelector",
    fields: &[f(
        1,
        "nodeSelectorTerms",
        Ty::Message(&CORE_V1_NODE_SELECTOR_TERM),
        Shape::Repeated,
    )],
};

pub static CORE_V1_NODE_SELECTOR_REQUIREMENT: Message = Message {
    name: "k8s.io.api.core.v1.NodeSelectorRequirement",
    fields: &[
        f(1, "key", Ty::String, Shape::Keep),
        f(2, "operator", Ty::String, Shape::Keep),
        f(3, "values", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_NODE_SELECTOR_TERM: Message = Message {
    name: "k8s.io.api.core.v1.NodeSelectorTerm",
    fields: &[
        f(
            1,
            "matchExpressions",
            Ty::Message(&CORE_V1_NODE_SELECTOR_REQUIREMENT),
            Shape::Repeated,
        ),
        f(
            2,
            "matchFields",
            Ty::Message(&CORE_V1_NODE_SELECTOR_REQUIREMENT),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_OBJECT_FIELD_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.ObjectFieldSelector",
    fields: &[
        f(1, "apiVersion", Ty::String, Shape::OmitZero),
        f(2, "fieldPath", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_OBJECT_REFERENCE: Message = Message {
    name: "k8s.io.api.core.v1.ObjectReference",
    fields: &[
        f(1, "kind", Ty::String, Shape::OmitZero),
        f(2, "namespace", Ty::String, Shape::OmitZero),
        f(3, "name", Ty::String, Shape::OmitZero),
        f(4, "uid", Ty::String, Shape::OmitZero),
        f(5, "apiVersion", Ty::String, Shape::OmitZero),
        f(6, "resourceVersion", Ty::String, Shape::OmitZero),
        f(7, "fieldPath", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaim",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM_CONDITION: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaimCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastProbeTime", Ty::Time, Shape::OmitZero),
        f(4, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(5, "reason", Ty::String, Shape::OmitZero),
        f(6, "message", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaimSpec",
    fields: &[
        f(1, "accessModes", Ty::String, Shape::Repeated),
        f(
            2,
            "resources",
            Ty::Message(&CORE_V1_VOLUME_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
        f(3, "volumeName", Ty::String, Shape::OmitZero),
        f(
            4,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(5, "storageClassName", Ty::String, Shape::Keep),
        f(6, "volumeMode", Ty::String, Shape::Keep),
        f(
            7,
            "dataSource",
            Ty::Message(&CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(
            8,
            "dataSourceRef",
            Ty::Message(&CORE_V1_TYPED_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(9, "volumeAttributesClassName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaimStatus",
    fields: &[
        f(1, "phase", Ty::String, Shape::OmitZero),
        f(2, "accessModes", Ty::String, Shape::Repeated),
        f(3, "capacity", Ty::Quantity, Shape::Map),
        f(
            4,
            "conditions",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_CONDITION),
            Shape::Repeated,
        ),
        f(5, "allocatedResources", Ty::Quantity, Shape::Map),
        f(7, "allocatedResourceStatuses", Ty::String, Shape::Map),
        f(
            8,
            "currentVolumeAttributesClassName",
            Ty::String,
            Shape::Keep,
        ),
        f(
            9,
            "modifyVolumeStatus",
            Ty::Message(&CORE_V1_MODIFY_VOLUME_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaimTemplate",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_SPEC),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.PersistentVolumeClaimVolumeSource",
    fields: &[
        f(1, "claimName", Ty::String, Shape::Keep),
        f(2, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.PhotonPersistentDiskVolumeSource",
    fields: &[
        f(1, "pdID", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_POD: Message = Message {
    name: "k8s.io.api.core.v1.Pod",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&CORE_V1_POD_SPEC), Shape::Keep),
        f(3, "status", Ty::Message(&CORE_V1_POD_STATUS), Shape::Keep),
    ],
};

pub static CORE_V1_POD_AFFINITY: Message = Message {
    name: "k8s.io.api.core.v1.PodAffinity",
    fields: &[
        f(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_POD_AFFINITY_TERM),
            Shape::Repeated,
        ),
        f(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_WEIGHTED_POD_AFFINITY_TERM),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_POD_AFFINITY_TERM: Message = Message {
    name: "k8s.io.api.core.v1.PodAffinityTerm",
    fields: &[
        f(
            1,
            "labelSelector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(2, "namespaces", Ty::String, Shape::Repeated),
        f(3, "topologyKey", Ty::String, Shape::Keep),
        f(
            4,
            "namespaceSelector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(5, "matchLabelKeys", Ty::String, Shape::Repeated),
        f(6, "mismatchLabelKeys", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_POD_ANTI_AFFINITY: Message = Message {
    name: "k8s.io.api.core.v1.PodAntiAffinity",
    fields: &[
        f(
            1,
            "requiredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_POD_AFFINITY_TERM),
            Shape::Repeated,
        ),
        f(
            2,
            "preferredDuringSchedulingIgnoredDuringExecution",
            Ty::Message(&CORE_V1_WEIGHTED_POD_AFFINITY_TERM),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_POD_CERTIFICATE_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.PodCertificateProjection",
    fields: &[
        f(1, "signerName", Ty::String, Shape::OmitZero),
        f(2, "keyType", Ty::String, Shape::OmitZero),
        f(3, "maxExpirationSeconds", Ty::Int32, Shape::Keep),
        f(4, "credentialBundlePath", Ty::String, Shape::OmitZero),
        f(5, "keyPath", Ty::String, Shape::OmitZero),
        f(6, "certificateChainPath", Ty::String, Shape::OmitZero),
        f(7, "userAnnotations", Ty::String, Shape::Map),
    ],
};

pub static CORE_V1_POD_CONDITION: Message = Message {
    name: "k8s.io.api.core.v1.PodCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "lastProbeTime", Ty::Time, Shape::OmitZero),
        f(4, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(5, "reason", Ty::String, Shape::OmitZero),
        f(6, "message", Ty::String, Shape::OmitZero),
        f(7, "observedGeneration", Ty::Int64, Shape::OmitZero),
    ],
};

pub static CORE_V1_POD_DNS_CONFIG: Message = Message {
    name: "k8s.io.api.core.v1.PodDNSConfig",
    fields: &[
        f(1, "nameservers", Ty::String, Shape::Repeated),
        f(2, "searches", Ty::String, Shape::Repeated),
        f(
            3,
            "options",
            Ty::Message(&CORE_V1_POD_DNS_CONFIG_OPTION),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_POD_DNS_CONFIG_OPTION: Message = Message {
    name: "k8s.io.api.core.v1.PodDNSConfigOption",
    fields: &[
        f(1, "name", Ty::String, Shape::OmitZero),
        f(2, "value", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_EXTENDED_RESOURCE_CLAIM_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.PodExtendedResourceClaimStatus",
    fields: &[
        f(
            1,
            "requestMappings",
            Ty::Message(&CORE_V1_CONTAINER_EXTENDED_RESOURCE_REQUEST),
            Shape::Repeated,
        ),
        f(2, "resourceClaimName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_IP: Message = Message {
    name: "k8s.io.api.core.v1.PodIP",
    fields: &[f(1, "ip", Ty::String, Shape::Keep)],
};

pub static CORE_V1_POD_OS: Message = Message {
    name: "k8s.io.api.core.v1.PodOS",
    fields: &[f(1, "name", Ty::String, Shape::Keep)],
};

pub static CORE_V1_POD_READINESS_GATE: Message = Message {
    name: "k8s.io.api.core.v1.PodReadinessGate",
    fields: &[f(1, "conditionType", Ty::String, Shape::Keep)],
};

pub static CORE_V1_POD_RESOURCE_CLAIM: Message = Message {
    name: "k8s.io.api.core.v1.PodResourceClaim",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(3, "resourceClaimName", Ty::String, Shape::Keep),
        f(4, "resourceClaimTemplateName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_RESOURCE_CLAIM_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.PodResourceClaimStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "resourceClaimName", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_SCHEDULING_GATE: Message = Message {
    name: "k8s.io.api.core.v1.PodSchedulingGate",
    fields: &[f(1, "name", Ty::String, Shape::Keep)],
};

pub static CORE_V1_POD_SECURITY_CONTEXT: Message = Message {
    name: "k8s.io.api.core.v1.PodSecurityContext",
    fields: &[
        f(
            1,
            "seLinuxOptions",
            Ty::Message(&CORE_V1_SE_LINUX_OPTIONS),
            Shape::Keep,
        ),
        f(2, "runAsUser", Ty::Int64, Shape::Keep),
        f(3, "runAsNonRoot", Ty::Bool, Shape::Keep),
        f(4, "supplementalGroups", Ty::Int64, Shape::Repeated),
        f(5, "fsGroup", Ty::Int64, Shape::Keep),
        f(6, "runAsGroup", Ty::Int64, Shape::Keep),
        f(7, "sysctls", Ty::Message(&CORE_V1_SYSCTL), Shape::Repeated),
        f(
            8,
            "windowsOptions",
            Ty::Message(&CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS),
            Shape::Keep,
        ),
        f(9, "fsGroupChangePolicy", Ty::String, Shape::Keep),
        f(
            10,
            "seccompProfile",
            Ty::Message(&CORE_V1_SECCOMP_PROFILE),
            Shape::Keep,
        ),
        f(
            11,
            "appArmorProfile",
            Ty::Message(&CORE_V1_APP_ARMOR_PROFILE),
            Shape::Keep,
        ),
        f(12, "supplementalGroupsPolicy", Ty::String, Shape::Keep),
        f(13, "seLinuxChangePolicy", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.PodSpec",
    fields: &[
        f(1, "volumes", Ty::Message(&CORE_V1_VOLUME), Shape::Repeated),
        f(
            2,
            "containers",
            Ty::Message(&CORE_V1_CONTAINER),
            Shape::Repeated,
        ),
        f(3, "restartPolicy", Ty::String, Shape::OmitZero),
        f(4, "terminationGracePeriodSeconds", Ty::Int64, Shape::Keep),
        f(5, "activeDeadlineSeconds", Ty::Int64, Shape::Keep),
        f(6, "dnsPolicy", Ty::String, Shape::OmitZero),
        f(7, "nodeSelector", Ty::String, Shape::Map),
        f(8, "serviceAccountName", Ty::String, Shape::OmitZero),
        f(9, "serviceAccount", Ty::String, Shape::OmitZero),
        f(10, "nodeName", Ty::String, Shape::OmitZero),
        f(11, "hostNetwork", Ty::Bool, Shape::OmitZero),
        f(12, "hostPID", Ty::Bool, Shape::OmitZero),
        f(13, "hostIPC", Ty::Bool, Shape::OmitZero),
        f(
            14,
            "securityContext",
            Ty::Message(&CORE_V1_POD_SECURITY_CONTEXT),
            Shape::Keep,
        ),
        f(
            15,
            "imagePullSecrets",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Repeated,
        ),
        f(16, "hostname", Ty::String, Shape::OmitZero),
        f(17, "subdomain", Ty::String, Shape::OmitZero),
        f(18, "affinity", Ty::Message(&CORE_V1_AFFINITY), Shape::Keep),
        f(19, "schedulerName", Ty::String, Shape::OmitZero),
        f(
            20,
            "initContainers",
            Ty::Message(&CORE_V1_CONTAINER),
            Shape::Repeated,
        ),
        f(21, "automountServiceAccountToken", Ty::Bool, Shape::Keep),
        f(
            22,
            "tolerations",
            Ty::Message(&CORE_V1_TOLERATION),
            Shape::Repeated,
        ),
        f(
            23,
            "hostAliases",
            Ty::Message(&CORE_V1_HOST_ALIAS),
            Shape::Repeated,
        ),
        f(24, "priorityClassName", Ty::String, Shape::OmitZero),
        f(25, "priority", Ty::Int32, Shape::Keep),
        f(
            26,
            "dnsConfig",
            Ty::Message(&CORE_V1_POD_DNS_CONFIG),
            Shape::Keep,
        ),
        f(27, "shareProcessNamespace", Ty::Bool, Shape::Keep),
        f(
            28,
            "readinessGates",
            Ty::Message(&CORE_V1_POD_READINESS_GATE),
            Shape::Repeated,
        ),
        f(29, "runtimeClassName", Ty::String, Shape::Keep),
        f(30, "enableServiceLinks", Ty::Bool, Shape::Keep),
        f(31, "preemptionPolicy", Ty::String, Shape::Keep),
        f(32, "overhead", Ty::Quantity, Shape::Map),
        f(
            33,
            "topologySpreadConstraints",
            Ty::Message(&CORE_V1_TOPOLOGY_SPREAD_CONSTRAINT),
            Shape::Repeated,
        ),
        f(
            34,
            "ephemeralContainers",
            Ty::Message(&CORE_V1_EPHEMERAL_CONTAINER),
            Shape::Repeated,
        ),
        f(35, "setHostnameAsFQDN", Ty::Bool, Shape::Keep),
        f(36, "os", Ty::Message(&CORE_V1_POD_OS), Shape::Keep),
        f(37, "hostUsers", Ty::Bool, Shape::Keep),
        f(
            38,
            "schedulingGates",
            Ty::Message(&CORE_V1_POD_SCHEDULING_GATE),
            Shape::Repeated,
        ),
        f(
            39,
            "resourceClaims",
            Ty::Message(&CORE_V1_POD_RESOURCE_CLAIM),
            Shape::Repeated,
        ),
        f(
            40,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
        f(41, "hostnameOverride", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_POD_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.PodStatus",
    fields: &[
        f(1, "phase", Ty::String, Shape::OmitZero),
        f(
            2,
            "conditions",
            Ty::Message(&CORE_V1_POD_CONDITION),
            Shape::Repeated,
        ),
        f(3, "message", Ty::String, Shape::OmitZero),
        f(4, "reason", Ty::String, Shape::OmitZero),
        f(5, "hostIP", Ty::String, Shape::OmitZero),
        f(6, "podIP", Ty::String, Shape::OmitZero),
        f(7, "startTime", Ty::Time, Shape::Keep),
        f(
            8,
            "containerStatuses",
            Ty::Message(&CORE_V1_CONTAINER_STATUS),
            Shape::Repeated,
        ),
        f(9, "qosClass", Ty::String, Shape::OmitZero),
        f(
            10,
            "initContainerStatuses",
            Ty::Message(&CORE_V1_CONTAINER_STATUS),
            Shape::Repeated,
        ),
        f(11, "nominatedNodeName", Ty::String, Shape::OmitZero),
        f(12, "podIPs", Ty::Message(&CORE_V1_POD_IP), Shape::Repeated),
        f(
            13,
            "ephemeralContainerStatuses",
            Ty::Message(&CORE_V1_CONTAINER_STATUS),
            Shape::Repeated,
        ),
        f(14, "resize", Ty::String, Shape::OmitZero),
        f(
            15,
            "resourceClaimStatuses",
            Ty::Message(&CORE_V1_POD_RESOURCE_CLAIM_STATUS),
            Shape::Repeated,
        ),
        f(
            16,
            "hostIPs",
            Ty::Message(&CORE_V1_HOST_IP),
            Shape::Repeated,
        ),
        f(17, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(
            18,
            "extendedResourceClaimStatus",
            Ty::Message(&CORE_V1_POD_EXTENDED_RESOURCE_CLAIM_STATUS),
            Shape::Keep,
        ),
        f(19, "allocatedResources", Ty::Quantity, Shape::Map),
        f(
            20,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_REQUIREMENTS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_POD_TEMPLATE_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.PodTemplateSpec",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&CORE_V1_POD_SPEC), Shape::Keep),
    ],
};

pub static CORE_V1_PORTWORX_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.PortworxVolumeSource",
    fields: &[
        f(1, "volumeID", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_PORT_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.PortStatus",
    fields: &[
        f(1, "port", Ty::Int32, Shape::Keep),
        f(2, "protocol", Ty::String, Shape::Keep),
        f(3, "error", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_PREFERRED_SCHEDULING_TERM: Message = Message {
    name: "k8s.io.api.core.v1.PreferredSchedulingTerm",
    fields: &[
        f(1, "weight", Ty::Int32, Shape::Keep),
        f(
            2,
            "preference",
            Ty::Message(&CORE_V1_NODE_SELECTOR_TERM),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_PROBE: Message = Message {
    name: "k8s.io.api.core.v1.Probe",
    fields: &[
        f(1, "", Ty::Message(&CORE_V1_PROBE_HANDLER), Shape::Inline),
        f(2, "initialDelaySeconds", Ty::Int32, Shape::OmitZero),
        f(3, "timeoutSeconds", Ty::Int32, Shape::OmitZero),
        f(4, "periodSeconds", Ty::Int32, Shape::OmitZero),
        f(5, "successThreshold", Ty::Int32, Shape::OmitZero),
        f(6, "failureThreshold", Ty::Int32, Shape::OmitZero),
        f(7, "terminationGracePeriodSeconds", Ty::Int64, Shape::Keep),
    ],
};

pub static CORE_V1_PROBE_HANDLER: Message = Message {
    name: "k8s.io.api.core.v1.ProbeHandler",
    fields: &[
        f(1, "exec", Ty::Message(&CORE_V1_EXEC_ACTION), Shape::Keep),
        f(
            2,
            "httpGet",
            Ty::Message(&CORE_V1_HTTP_GET_ACTION),
            Shape::Keep,
        ),
        f(
            3,
            "tcpSocket",
            Ty::Message(&CORE_V1_TCP_SOCKET_ACTION),
            Shape::Keep,
        ),
        f(4, "grpc", Ty::Message(&CORE_V1_GRPC_ACTION), Shape::Keep),
    ],
};

pub static CORE_V1_PROJECTED_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ProjectedVolumeSource",
    fields: &[
        f(
            1,
            "sources",
            Ty::Message(&CORE_V1_VOLUME_PROJECTION),
            Shape::Repeated,
        ),
        f(2, "defaultMode", Ty::Int32, Shape::Keep),
    ],
};

pub static CORE_V1_QUOBYTE_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.QuobyteVolumeSource",
    fields: &[
        f(1, "registry", Ty::String, Shape::Keep),
        f(2, "volume", Ty::String, Shape::Keep),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
        f(4, "user", Ty::String, Shape::OmitZero),
        f(5, "group", Ty::String, Shape::OmitZero),
        f(6, "tenant", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_RBD_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.RBDVolumeSource",
    fields: &[
        f(1, "monitors", Ty::String, Shape::Repeated),
        f(2, "image", Ty::String, Shape::Keep),
        f(3, "fsType", Ty::String, Shape::OmitZero),
        f(4, "pool", Ty::String, Shape::OmitZero),
        f(5, "user", Ty::String, Shape::OmitZero),
        f(6, "keyring", Ty::String, Shape::OmitZero),
        f(
            7,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(8, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_RESOURCE_CLAIM: Message = Message {
    name: "k8s.io.api.core.v1.ResourceClaim",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "request", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.ResourceFieldSelector",
    fields: &[
        f(1, "containerName", Ty::String, Shape::OmitZero),
        f(2, "resource", Ty::String, Shape::Keep),
        f(3, "divisor", Ty::Quantity, Shape::OmitZero),
    ],
};

pub static CORE_V1_RESOURCE_HEALTH: Message = Message {
    name: "k8s.io.api.core.v1.ResourceHealth",
    fields: &[
        f(1, "resourceID", Ty::String, Shape::Keep),
        f(2, "health", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_RESOURCE_QUOTA: Message = Message {
    name: "k8s.io.api.core.v1.ResourceQuota",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&CORE_V1_RESOURCE_QUOTA_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&CORE_V1_RESOURCE_QUOTA_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_RESOURCE_QUOTA_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.ResourceQuotaSpec",
    fields: &[
        f(1, "hard", Ty::Quantity, Shape::Map),
        f(2, "scopes", Ty::String, Shape::Repeated),
        f(
            3,
            "scopeSelector",
            Ty::Message(&CORE_V1_SCOPE_SELECTOR),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_RESOURCE_QUOTA_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.ResourceQuotaStatus",
    fields: &[
        f(1, "hard", Ty::Quantity, Shape::Map),
        f(2, "used", Ty::Quantity, Shape::Map),
    ],
};

pub static CORE_V1_RESOURCE_REQUIREMENTS: Message = Message {
    name: "k8s.io.api.core.v1.ResourceRequirements",
    fields: &[
        f(1, "limits", Ty::Quantity, Shape::Map),
        f(2, "requests", Ty::Quantity, Shape::Map),
        f(
            3,
            "claims",
            Ty::Message(&CORE_V1_RESOURCE_CLAIM),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_RESOURCE_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.ResourceStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(
            2,
            "resources",
            Ty::Message(&CORE_V1_RESOURCE_HEALTH),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_SCALE_IO_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.ScaleIOVolumeSource",
    fields: &[
        f(1, "gateway", Ty::String, Shape::Keep),
        f(2, "system", Ty::String, Shape::Keep),
        f(
            3,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(4, "sslEnabled", Ty::Bool, Shape::OmitZero),
        f(5, "protectionDomain", Ty::String, Shape::OmitZero),
        f(6, "storagePool", Ty::String, Shape::OmitZero),
        f(7, "storageMode", Ty::String, Shape::OmitZero),
        f(8, "volumeName", Ty::String, Shape::OmitZero),
        f(9, "fsType", Ty::String, Shape::OmitZero),
        f(10, "readOnly", Ty::Bool, Shape::OmitZero),
    ],
};

pub static CORE_V1_SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    name: "k8s.io.api.core.v1.ScopedResourceSelectorRequirement",
    fields: &[
        f(1, "scopeName", Ty::String, Shape::Keep),
        f(2, "operator", Ty::String, Shape::Keep),
        f(3, "values", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_SCOPE_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.ScopeSelector",
    fields: &[f(
        1,
        "matchExpressions",
        Ty::Message(&CORE_V1_SCOPED_RESOURCE_SELECTOR_REQUIREMENT),
        Shape::Repeated,
    )],
};

pub static CORE_V1_SECCOMP_PROFILE: Message = Message {
    name: "k8s.io.api.core.v1.SeccompProfile",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "localhostProfile", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_SECRET: Message = Message {
    name: "k8s.io.api.core.v1.Secret",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "data", Ty::Bytes, Shape::Map),
        f(3, "type", Ty::String, Shape::OmitZero),
        f(4, "stringData", Ty::String, Shape::Map),
        f(5, "immutable", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SECRET_ENV_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.SecretEnvSource",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(2, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SECRET_KEY_SELECTOR: Message = Message {
    name: "k8s.io.api.core.v1.SecretKeySelector",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(2, "key", Ty::String, Shape::Keep),
        f(3, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SECRET_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.SecretProjection",
    fields: &[
        f(
            1,
            "",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Inline,
        ),
        f(
            2,
            "items",
            Ty::Message(&CORE_V1_KEY_TO_PATH),
            Shape::Repeated,
        ),
        f(4, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SECRET_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.SecretVolumeSource",
    fields: &[
        f(1, "secretName", Ty::String, Shape::OmitZero),
        f(
            2,
            "items",
            Ty::Message(&CORE_V1_KEY_TO_PATH),
            Shape::Repeated,
        ),
        f(3, "defaultMode", Ty::Int32, Shape::Keep),
        f(4, "optional", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SECURITY_CONTEXT: Message = Message {
    name: "k8s.io.api.core.v1.SecurityContext",
    fields: &[
        f(
            1,
            "capabilities",
            Ty::Message(&CORE_V1_CAPABILITIES),
            Shape::Keep,
        ),
        f(2, "privileged", Ty::Bool, Shape::Keep),
        f(
            3,
            "seLinuxOptions",
            Ty::Message(&CORE_V1_SE_LINUX_OPTIONS),
            Shape::Keep,
        ),
        f(4, "runAsUser", Ty::Int64, Shape::Keep),
        f(5, "runAsNonRoot", Ty::Bool, Shape::Keep),
        f(6, "readOnlyRootFilesystem", Ty::Bool, Shape::Keep),
        f(7, "allowPrivilegeEscalation", Ty::Bool, Shape::Keep),
        f(8, "runAsGroup", Ty::Int64, Shape::Keep),
        f(9, "procMount", Ty::String, Shape::Keep),
        f(
            10,
            "windowsOptions",
            Ty::Message(&CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS),
            Shape::Keep,
        ),
        f(
            11,
            "seccompProfile",
            Ty::Message(&CORE_V1_SECCOMP_PROFILE),
            Shape::Keep,
        ),
        f(
            12,
            "appArmorProfile",
            Ty::Message(&CORE_V1_APP_ARMOR_PROFILE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_SERVICE: Message = Message {
    name: "k8s.io.api.core.v1.Service",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&CORE_V1_SERVICE_SPEC), Shape::Keep),
        f(
            3,
            "status",
            Ty::Message(&CORE_V1_SERVICE_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_SERVICE_ACCOUNT: Message = Message {
    name: "k8s.io.api.core.v1.ServiceAccount",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "secrets",
            Ty::Message(&CORE_V1_OBJECT_REFERENCE),
            Shape::Repeated,
        ),
        f(
            3,
            "imagePullSecrets",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Repeated,
        ),
        f(4, "automountServiceAccountToken", Ty::Bool, Shape::Keep),
    ],
};

pub static CORE_V1_SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.ServiceAccountTokenProjection",
    fields: &[
        f(1, "audience", Ty::String, Shape::OmitZero),
        f(2, "expirationSeconds", Ty::Int64, Shape::Keep),
        f(3, "path", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_SERVICE_PORT: Message = Message {
    name: "k8s.io.api.core.v1.ServicePort",
    fields: &[
        f(1, "name", Ty::String, Shape::OmitZero),
        f(2, "protocol", Ty::String, Shape::OmitZero),
        f(3, "port", Ty::Int32, Shape::Keep),
        f(4, "targetPort", Ty::IntOrString, Shape::OmitZero),
        f(5, "nodePort", Ty::Int32, Shape::OmitZero),
        f(6, "appProtocol", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_SERVICE_SPEC: Message = Message {
    name: "k8s.io.api.core.v1.ServiceSpec",
    fields: &[
        f(
            1,
            "ports",
            Ty::Message(&CORE_V1_SERVICE_PORT),
            Shape::Repeated,
        ),
        f(2, "selector", Ty::String, Shape::Map),
        f(3, "clusterIP", Ty::String, Shape::OmitZero),
        f(4, "type", Ty::String, Shape::OmitZero),
        f(5, "externalIPs", Ty::String, Shape::Repeated),
        f(7, "sessionAffinity", Ty::String, Shape::OmitZero),
        f(8, "loadBalancerIP", Ty::String, Shape::OmitZero),
        f(9, "loadBalancerSourceRanges", Ty::String, Shape::Repeated),
        f(10, "externalName", Ty::String, Shape::OmitZero),
        f(11, "externalTrafficPolicy", Ty::String, Shape::OmitZero),
        f(12, "healthCheckNodePort", Ty::Int32, Shape::OmitZero),
        f(13, "publishNotReadyAddresses", Ty::Bool, Shape::OmitZero),
        f(
            14,
            "sessionAffinityConfig",
            Ty::Message(&CORE_V1_SESSION_AFFINITY_CONFIG),
            Shape::Keep,
        ),
        f(17, "ipFamilyPolicy", Ty::String, Shape::Keep),
        f(18, "clusterIPs", Ty::String, Shape::Repeated),
        f(19, "ipFamilies", Ty::String, Shape::Repeated),
        f(20, "allocateLoadBalancerNodePorts", Ty::Bool, Shape::Keep),
        f(21, "loadBalancerClass", Ty::String, Shape::Keep),
        f(22, "internalTrafficPolicy", Ty::String, Shape::Keep),
        f(23, "trafficDistribution", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_SERVICE_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.ServiceStatus",
    fields: &[
        f(
            1,
            "loadBalancer",
            Ty::Message(&CORE_V1_LOAD_BALANCER_STATUS),
            Shape::Keep,
        ),
        f(
            2,
            "conditions",
            Ty::Message(&META_V1_CONDITION),
            Shape::Repeated,
        ),
    ],
};

pub static CORE_V1_SESSION_AFFINITY_CONFIG: Message = Message {
    name: "k8s.io.api.core.v1.SessionAffinityConfig",
    fields: &[f(
        1,
        "clientIP",
        Ty::Message(&CORE_V1_CLIENT_IP_CONFIG),
        Shape::Keep,
    )],
};

pub static CORE_V1_SE_LINUX_OPTIONS: Message = Message {
    name: "k8s.io.api.core.v1.SELinuxOptions",
    fields: &[
        f(1, "user", Ty::String, Shape::OmitZero),
        f(2, "role", Ty::String, Shape::OmitZero),
        f(3, "type", Ty::String, Shape::OmitZero),
        f(4, "level", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_SLEEP_ACTION: Message = Message {
    name: "k8s.io.api.core.v1.SleepAction",
    fields: &[f(1, "seconds", Ty::Int64, Shape::Keep)],
};

pub static CORE_V1_STORAGE_OS_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.StorageOSVolumeSource",
    fields: &[
        f(1, "volumeName", Ty::String, Shape::OmitZero),
        f(2, "volumeNamespace", Ty::String, Shape::OmitZero),
        f(3, "fsType", Ty::String, Shape::OmitZero),
        f(4, "readOnly", Ty::Bool, Shape::OmitZero),
        f(
            5,
            "secretRef",
            Ty::Message(&CORE_V1_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_SYSCTL: Message = Message {
    name: "k8s.io.api.core.v1.Sysctl",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "value", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_TCP_SOCKET_ACTION: Message = Message {
    name: "k8s.io.api.core.v1.TCPSocketAction",
    fields: &[
        f(1, "port", Ty::IntOrString, Shape::Keep),
        f(2, "host", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_TOLERATION: Message = Message {
    name: "k8s.io.api.core.v1.Toleration",
    fields: &[
        f(1, "key", Ty::String, Shape::OmitZero),
        f(2, "operator", Ty::String, Shape::OmitZero),
        f(3, "value", Ty::String, Shape::OmitZero),
        f(4, "effect", Ty::String, Shape::OmitZero),
        f(5, "tolerationSeconds", Ty::Int64, Shape::Keep),
    ],
};

pub static CORE_V1_TOPOLOGY_SPREAD_CONSTRAINT: Message = Message {
    name: "k8s.io.api.core.v1.TopologySpreadConstraint",
    fields: &[
        f(1, "maxSkew", Ty::Int32, Shape::Keep),
        f(2, "topologyKey", Ty::String, Shape::Keep),
        f(3, "whenUnsatisfiable", Ty::String, Shape::Keep),
        f(
            4,
            "labelSelector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(5, "minDomains", Ty::Int32, Shape::Keep),
        f(6, "nodeAffinityPolicy", Ty::String, Shape::Keep),
        f(7, "nodeTaintsPolicy", Ty::String, Shape::Keep),
        f(8, "matchLabelKeys", Ty::String, Shape::Repeated),
    ],
};

pub static CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "k8s.io.api.core.v1.TypedLocalObjectReference",
    fields: &[
        f(1, "apiGroup", Ty::String, Shape::Keep),
        f(2, "kind", Ty::String, Shape::Keep),
        f(3, "name", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_TYPED_OBJECT_REFERENCE: Message = Message {
    name: "k8s.io.api.core.v1.TypedObjectReference",
    fields: &[
        f(1, "apiGroup", Ty::String, Shape::Keep),
        f(2, "kind", Ty::String, Shape::Keep),
        f(3, "name", Ty::String, Shape::Keep),
        f(4, "namespace", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_VOLUME: Message = Message {
    name: "k8s.io.api.core.v1.Volume",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "", Ty::Message(&CORE_V1_VOLUME_SOURCE), Shape::Inline),
    ],
};

pub static CORE_V1_VOLUME_DEVICE: Message = Message {
    name: "k8s.io.api.core.v1.VolumeDevice",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "devicePath", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_VOLUME_MOUNT: Message = Message {
    name: "k8s.io.api.core.v1.VolumeMount",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "readOnly", Ty::Bool, Shape::OmitZero),
        f(3, "mountPath", Ty::String, Shape::Keep),
        f(4, "subPath", Ty::String, Shape::OmitZero),
        f(5, "mountPropagation", Ty::String, Shape::Keep),
        f(6, "subPathExpr", Ty::String, Shape::OmitZero),
        f(7, "recursiveReadOnly", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_VOLUME_MOUNT_STATUS: Message = Message {
    name: "k8s.io.api.core.v1.VolumeMountStatus",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(2, "mountPath", Ty::String, Shape::Keep),
        f(3, "readOnly", Ty::Bool, Shape::OmitZero),
        f(4, "recursiveReadOnly", Ty::String, Shape::Keep),
    ],
};

pub static CORE_V1_VOLUME_PROJECTION: Message = Message {
    name: "k8s.io.api.core.v1.VolumeProjection",
    fields: &[
        f(
            1,
            "secret",
            Ty::Message(&CORE_V1_SECRET_PROJECTION),
            Shape::Keep,
        ),
        f(
            2,
            "downwardAPI",
            Ty::Message(&CORE_V1_DOWNWARD_APIPROJECTION),
            Shape::Keep,
        ),
        f(
            3,
            "configMap",
            Ty::Message(&CORE_V1_CONFIG_MAP_PROJECTION),
            Shape::Keep,
        ),
        f(
            4,
            "serviceAccountToken",
            Ty::Message(&CORE_V1_SERVICE_ACCOUNT_TOKEN_PROJECTION),
            Shape::Keep,
        ),
        f(
            5,
            "clusterTrustBundle",
            Ty::Message(&CORE_V1_CLUSTER_TRUST_BUNDLE_PROJECTION),
            Shape::Keep,
        ),
        f(
            6,
            "podCertificate",
            Ty::Message(&CORE_V1_POD_CERTIFICATE_PROJECTION),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_VOLUME_RESOURCE_REQUIREMENTS: Message = Message {
    name: "k8s.io.api.core.v1.VolumeResourceRequirements",
    fields: &[
        f(1, "limits", Ty::Quantity, Shape::Map),
        f(2, "requests", Ty::Quantity, Shape::Map),
    ],
};

pub static CORE_V1_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.VolumeSource",
    fields: &[
        f(
            1,
            "hostPath",
            Ty::Message(&CORE_V1_HOST_PATH_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            2,
            "emptyDir",
            Ty::Message(&CORE_V1_EMPTY_DIR_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            3,
            "gcePersistentDisk",
            Ty::Message(&CORE_V1_GCE_PERSISTENT_DISK_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            4,
            "awsElasticBlockStore",
            Ty::Message(&CORE_V1_AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            5,
            "gitRepo",
            Ty::Message(&CORE_V1_GIT_REPO_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            6,
            "secret",
            Ty::Message(&CORE_V1_SECRET_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            7,
            "nfs",
            Ty::Message(&CORE_V1_NFS_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            8,
            "iscsi",
            Ty::Message(&CORE_V1_ISCSI_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            9,
            "glusterfs",
            Ty::Message(&CORE_V1_GLUSTERFS_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            10,
            "persistentVolumeClaim",
            Ty::Message(&CORE_V1_PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            11,
            "rbd",
            Ty::Message(&CORE_V1_RBD_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            12,
            "flexVolume",
            Ty::Message(&CORE_V1_FLEX_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            13,
            "cinder",
            Ty::Message(&CORE_V1_CINDER_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            14,
            "cephfs",
            Ty::Message(&CORE_V1_CEPH_FS_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            15,
            "flocker",
            Ty::Message(&CORE_V1_FLOCKER_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            16,
            "downwardAPI",
            Ty::Message(&CORE_V1_DOWNWARD_APIVOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            17,
            "fc",
            Ty::Message(&CORE_V1_FC_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            18,
            "azureFile",
            Ty::Message(&CORE_V1_AZURE_FILE_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            19,
            "configMap",
            Ty::Message(&CORE_V1_CONFIG_MAP_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            20,
            "vsphereVolume",
            Ty::Message(&CORE_V1_VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            21,
            "quobyte",
            Ty::Message(&CORE_V1_QUOBYTE_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            22,
            "azureDisk",
            Ty::Message(&CORE_V1_AZURE_DISK_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            23,
            "photonPersistentDisk",
            Ty::Message(&CORE_V1_PHOTON_PERSISTENT_DISK_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            24,
            "portworxVolume",
            Ty::Message(&CORE_V1_PORTWORX_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            25,
            "scaleIO",
            Ty::Message(&CORE_V1_SCALE_IO_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            26,
            "projected",
            Ty::Message(&CORE_V1_PROJECTED_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            27,
            "storageos",
            Ty::Message(&CORE_V1_STORAGE_OS_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            28,
            "csi",
            Ty::Message(&CORE_V1_CSIVOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            29,
            "ephemeral",
            Ty::Message(&CORE_V1_EPHEMERAL_VOLUME_SOURCE),
            Shape::Keep,
        ),
        f(
            30,
            "image",
            Ty::Message(&CORE_V1_IMAGE_VOLUME_SOURCE),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = Message {
    name: "k8s.io.api.core.v1.VsphereVirtualDiskVolumeSource",
    fields: &[
        f(1, "volumePath", Ty::String, Shape::Keep),
        f(2, "fsType", Ty::String, Shape::OmitZero),
        f(3, "storagePolicyName", Ty::String, Shape::OmitZero),
        f(4, "storagePolicyID", Ty::String, Shape::OmitZero),
    ],
};

pub static CORE_V1_WEIGHTED_POD_AFFINITY_TERM: Message = Message {
    name: "k8s.io.api.core.v1.WeightedPodAffinityTerm",
    fields: &[
        f(1, "weight", Ty::Int32, Shape::Keep),
        f(
            2,
            "podAffinityTerm",
            Ty::Message(&CORE_V1_POD_AFFINITY_TERM),
            Shape::Keep,
        ),
    ],
};

pub static CORE_V1_WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message {
    name: "k8s.io.api.core.v1.WindowsSecurityContextOptions",
    fields: &[
        f(1, "gmsaCredentialSpecName", Ty::String, Shape::Keep),
        f(2, "gmsaCredentialSpec", Ty::String, Shape::Keep),
        f(3, "runAsUserName", Ty::String, Shape::Keep),
        f(4, "hostProcess", Ty::Bool, Shape::Keep),
    ],
};

pub static META_V1_CONDITION: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.Condition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "status", Ty::String, Shape::Keep),
        f(3, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(4, "lastTransitionTime", Ty::Time, Shape::Keep),
        f(5, "reason", Ty::String, Shape::Keep),
        f(6, "message", Ty::String, Shape::Keep),
    ],
};

pub static META_V1_DELETE_OPTIONS: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    fields: &[
        f(1, "gracePeriodSeconds", Ty::Int64, Shape::Keep),
        f(
            2,
            "preconditions",
            Ty::Message(&META_V1_PRECONDITIONS),
            Shape::Keep,
        ),
        f(3, "orphanDependents", Ty::Bool, Shape::Keep),
        f(4, "propagationPolicy", Ty::String, Shape::Keep),
        f(5, "dryRun", Ty::String, Shape::Repeated),
        f(
            6,
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            Ty::Bool,
            Shape::Keep,
        ),
    ],
};

pub static META_V1_LABEL_SELECTOR: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector",
    fields: &[
        f(1, "matchLabels", Ty::String, Shape::Map),
        f(
            2,
            "matchExpressions",
            Ty::Message(&META_V1_LABEL_SELECTOR_REQUIREMENT),
            Shape::Repeated,
        ),
    ],
};

pub static META_V1_LABEL_SELECTOR_REQUIREMENT: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
    fields: &[
        f(1, "key", Ty::String, Shape::Keep),
        f(2, "operator", Ty::String, Shape::Keep),
        f(3, "values", Ty::String, Shape::Repeated),
    ],
};

pub static META_V1_MANAGED_FIELDS_ENTRY: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
    fields: &[
        f(1, "manager", Ty::String, Shape::OmitZero),
        f(2, "operation", Ty::String, Shape::OmitZero),
        f(3, "apiVersion", Ty::String, Shape::OmitZero),
        f(4, "time", Ty::Time, Shape::Keep),
        f(6, "fieldsType", Ty::String, Shape::OmitZero),
        f(7, "fieldsV1", Ty::FieldsV1, Shape::Keep),
        f(8, "subresource", Ty::String, Shape::OmitZero),
    ],
};

pub static META_V1_OBJECT_META: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    fields: &[
        f(1, "name", Ty::String, Shape::OmitZero),
        f(2, "generateName", Ty::String, Shape::OmitZero),
        f(3, "namespace", Ty::String, Shape::OmitZero),
        f(4, "selfLink", Ty::String, Shape::OmitZero),
        f(5, "uid", Ty::String, Shape::OmitZero),
        f(6, "resourceVersion", Ty::String, Shape::OmitZero),
        f(7, "generation", Ty::Int64, Shape::OmitZero),
        f(8, "creationTimestamp", Ty::Time, Shape::OmitZero),
        f(9, "deletionTimestamp", Ty::Time, Shape::Keep),
        f(10, "deletionGracePeriodSeconds", Ty::Int64, Shape::Keep),
        f(11, "labels", Ty::String, Shape::Map),
        f(12, "annotations", Ty::String, Shape::Map),
        f(
            13,
            "ownerReferences",
            Ty::Message(&META_V1_OWNER_REFERENCE),
            Shape::Repeated,
        ),
        f(14, "finalizers", Ty::String, Shape::Repeated),
        f(
            17,
            "managedFields",
            Ty::Message(&META_V1_MANAGED_FIELDS_ENTRY),
            Shape::Repeated,
        ),
    ],
};

pub static META_V1_OWNER_REFERENCE: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.OwnerReference",
    fields: &[
        f(1, "kind", Ty::String, Shape::Keep),
        f(3, "name", Ty::String, Shape::Keep),
        f(4, "uid", Ty::String, Shape::Keep),
        f(5, "apiVersion", Ty::String, Shape::Keep),
        f(6, "controller", Ty::Bool, Shape::Keep),
        f(7, "blockOwnerDeletion", Ty::Bool, Shape::Keep),
    ],
};

pub static META_V1_PRECONDITIONS: Message = Message {
    name: "k8s.io.apimachinery.pkg.apis.meta.v1.Preconditions",
    fields: &[
        f(1, "uid", Ty::String, Shape::Keep),
        f(2, "resourceVersion", Ty::String, Shape::Keep),
    ],
};

pub static NETWORKING_V1_HTTP_INGRESS_PATH: Message = Message {
    name: "k8s.io.api.networking.v1.HTTPIngressPath",
    fields: &[
        f(1, "path", Ty::String, Shape::OmitZero),
        f(
            2,
            "backend",
            Ty::Message(&NETWORKING_V1_INGRESS_BACKEND),
            Shape::Keep,
        ),
        f(3, "pathType", Ty::String, Shape::Keep),
    ],
};

pub static NETWORKING_V1_HTTP_INGRESS_RULE_VALUE: Message = Message {
    name: "k8s.io.api.networking.v1.HTTPIngressRuleValue",
    fields: &[f(
        1,
        "paths",
        Ty::Message(&NETWORKING_V1_HTTP_INGRESS_PATH),
        Shape::Repeated,
    )],
};

pub static NETWORKING_V1_INGRESS: Message = Message {
    name: "k8s.io.api.networking.v1.Ingress",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&NETWORKING_V1_INGRESS_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&NETWORKING_V1_INGRESS_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static NETWORKING_V1_INGRESS_BACKEND: Message = Message {
    name: "k8s.io.api.networking.v1.IngressBackend",
    fields: &[
        f(
            3,
            "resource",
            Ty::Message(&CORE_V1_TYPED_LOCAL_OBJECT_REFERENCE),
            Shape::Keep,
        ),
        f(
            4,
            "service",
            Ty::Message(&NETWORKING_V1_INGRESS_SERVICE_BACKEND),
            Shape::Keep,
        ),
    ],
};

pub static NETWORKING_V1_INGRESS_LOAD_BALANCER_INGRESS: Message = Message {
    name: "k8s.io.api.networking.v1.IngressLoadBalancerIngress",
    fields: &[
        f(1, "ip", Ty::String, Shape::OmitZero),
        f(2, "hostname", Ty::String, Shape::OmitZero),
        f(
            4,
            "ports",
            Ty::Message(&NETWORKING_V1_INGRESS_PORT_STATUS),
            Shape::Repeated,
        ),
    ],
};

pub static NETWORKING_V1_INGRESS_LOAD_BALANCER_STATUS: Message = Message {
    name: "k8s.io.api.networking.v1.IngressLoadBalancerStatus",
    fields: &[f(
        1,
        "ingress",
        Ty::Message(&NETWORKING_V1_INGRESS_LOAD_BALANCER_INGRESS),
        Shape::Repeated,
    )],
};

pub static NETWORKING_V1_INGRESS_PORT_STATUS: Message = Message {
    name: "k8s.io.api.networking.v1.IngressPortStatus",
    fields: &[
        f(1, "port", Ty::Int32, Shape::Keep),
        f(2, "protocol", Ty::String, Shape::Keep),
        f(3, "error", Ty::String, Shape::Keep),
    ],
};

pub static NETWORKING_V1_INGRESS_RULE: Message = Message {
    name: "k8s.io.api.networking.v1.IngressRule",
    fields: &[
        f(1, "host", Ty::String, Shape::OmitZero),
        f(
            2,
            "",
            Ty::Message(&NETWORKING_V1_INGRESS_RULE_VALUE),
            Shape::Inline,
        ),
    ],
};

pub static NETWORKING_V1_INGRESS_RULE_VALUE: Message = Message {
    name: "k8s.io.api.networking.v1.IngressRuleValue",
    fields: &[f(
        1,
        "http",
        Ty::Message(&NETWORKING_V1_HTTP_INGRESS_RULE_VALUE),
        Shape::Keep,
    )],
};

pub static NETWORKING_V1_INGRESS_SERVICE_BACKEND: Message = Message {
    name: "k8s.io.api.networking.v1.IngressServiceBackend",
    fields: &[
        f(1, "name", Ty::String, Shape::Keep),
        f(
            2,
            "port",
            Ty::Message(&NETWORKING_V1_SERVICE_BACKEND_PORT),
            Shape::Keep,
        ),
    ],
};

pub static NETWORKING_V1_INGRESS_SPEC: Message = Message {
    name: "k8s.io.api.networking.v1.IngressSpec",
    fields: &[
        f(
            1,
            "defaultBackend",
            Ty::Message(&NETWORKING_V1_INGRESS_BACKEND),
            Shape::Keep,
        ),
        f(
            2,
            "tls",
            Ty::Message(&NETWORKING_V1_INGRESS_TLS),
            Shape::Repeated,
        ),
        f(
            3,
            "rules",
            Ty::Message(&NETWORKING_V1_INGRESS_RULE),
            Shape::Repeated,
        ),
        f(4, "ingressClassName", Ty::String, Shape::Keep),
    ],
};

pub static NETWORKING_V1_INGRESS_STATUS: Message = Message {
    name: "k8s.io.api.networking.v1.IngressStatus",
    fields: &[f(
        1,
        "loadBalancer",
        Ty::Message(&NETWORKING_V1_INGRESS_LOAD_BALANCER_STATUS),
        Shape::Keep,
    )],
};

pub static NETWORKING_V1_INGRESS_TLS: Message = Message {
    name: "k8s.io.api.networking.v1.IngressTLS",
    fields: &[
        f(1, "hosts", Ty::String, Shape::Repeated),
        f(2, "secretName", Ty::String, Shape::OmitZero),
    ],
};

pub static NETWORKING_V1_SERVICE_BACKEND_PORT: Message = Message {
    name: "k8s.io.api.networking.v1.ServiceBackendPort",
    fields: &[
        f(1, "name", Ty::String, Shape::OmitZero),
        f(2, "number", Ty::Int32, Shape::OmitZero),
    ],
};

pub static POLICY_V1_POD_DISRUPTION_BUDGET: Message = Message {
    name: "k8s.io.api.policy.v1.PodDisruptionBudget",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "spec",
            Ty::Message(&POLICY_V1_POD_DISRUPTION_BUDGET_SPEC),
            Shape::Keep,
        ),
        f(
            3,
            "status",
            Ty::Message(&POLICY_V1_POD_DISRUPTION_BUDGET_STATUS),
            Shape::Keep,
        ),
    ],
};

pub static POLICY_V1_POD_DISRUPTION_BUDGET_SPEC: Message = Message {
    name: "k8s.io.api.policy.v1.PodDisruptionBudgetSpec",
    fields: &[
        f(1, "minAvailable", Ty::IntOrString, Shape::Keep),
        f(
            2,
            "selector",
            Ty::Message(&META_V1_LABEL_SELECTOR),
            Shape::Keep,
        ),
        f(3, "maxUnavailable", Ty::IntOrString, Shape::Keep),
        f(4, "unhealthyPodEvictionPolicy", Ty::String, Shape::Keep),
    ],
};

pub static POLICY_V1_POD_DISRUPTION_BUDGET_STATUS: Message = Message {
    name: "k8s.io.api.policy.v1.PodDisruptionBudgetStatus",
    fields: &[
        f(1, "observedGeneration", Ty::Int64, Shape::OmitZero),
        f(2, "disruptedPods", Ty::Time, Shape::Map),
        f(3, "disruptionsAllowed", Ty::Int32, Shape::Keep),
        f(4, "currentHealthy", Ty::Int32, Shape::Keep),
        f(5, "desiredHealthy", Ty::Int32, Shape::Keep),
        f(6, "expectedPods", Ty::Int32, Shape::Keep),
        f(
            7,
            "conditions",
            Ty::Message(&META_V1_CONDITION),
            Shape::Repeated,
        ),
    ],
};

pub static RBAC_V1_AGGREGATION_RULE: Message = Message {
    name: "k8s.io.api.rbac.v1.AggregationRule",
    fields: &[f(
        1,
        "clusterRoleSelectors",
        Ty::Message(&META_V1_LABEL_SELECTOR),
        Shape::Repeated,
    )],
};

pub static RBAC_V1_CLUSTER_ROLE: Message = Message {
    name: "k8s.io.api.rbac.v1.ClusterRole",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "rules",
            Ty::Message(&RBAC_V1_POLICY_RULE),
            Shape::Repeated,
        ),
        f(
            3,
            "aggregationRule",
            Ty::Message(&RBAC_V1_AGGREGATION_RULE),
            Shape::Keep,
        ),
    ],
};

pub static RBAC_V1_CLUSTER_ROLE_BINDING: Message = Message {
    name: "k8s.io.api.rbac.v1.ClusterRoleBinding",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "subjects",
            Ty::Message(&RBAC_V1_SUBJECT),
            Shape::Repeated,
        ),
        f(3, "roleRef", Ty::Message(&RBAC_V1_ROLE_REF), Shape::Keep),
    ],
};

pub static RBAC_V1_POLICY_RULE: Message = Message {
    name: "k8s.io.api.rbac.v1.PolicyRule",
    fields: &[
        f(1, "verbs", Ty::String, Shape::Repeated),
        f(2, "apiGroups", Ty::String, Shape::Repeated),
        f(3, "resources", Ty::String, Shape::Repeated),
        f(4, "resourceNames", Ty::String, Shape::Repeated),
        f(5, "nonResourceURLs", Ty::String, Shape::Repeated),
    ],
};

pub static RBAC_V1_ROLE: Message = Message {
    name: "k8s.io.api.rbac.v1.Role",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "rules",
            Ty::Message(&RBAC_V1_POLICY_RULE),
            Shape::Repeated,
        ),
    ],
};

pub static RBAC_V1_ROLE_BINDING: Message = Message {
    name: "k8s.io.api.rbac.v1.RoleBinding",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "subjects",
            Ty::Message(&RBAC_V1_SUBJECT),
            Shape::Repeated,
        ),
        f(3, "roleRef", Ty::Message(&RBAC_V1_ROLE_REF), Shape::Keep),
    ],
};

pub static RBAC_V1_ROLE_REF: Message = Message {
    name: "k8s.io.api.rbac.v1.RoleRef",
    fields: &[
        f(1, "apiGroup", Ty::String, Shape::Keep),
        f(2, "kind", Ty::String, Shape::Keep),
        f(3, "name", Ty::String, Shape::Keep),
    ],
};

pub static RBAC_V1_SUBJECT: Message = Message {
    name: "k8s.io.api.rbac.v1.Subject",
    fields: &[
        f(1, "kind", Ty::String, Shape::Keep),
        f(2, "apiGroup", Ty::String, Shape::OmitZero),
        f(3, "name", Ty::String, Shape::Keep),
        f(4, "namespace", Ty::String, Shape::OmitZero),
    ],
};

pub static SCHEDULING_V1_PRIORITY_CLASS: Message = Message {
    name: "k8s.io.api.scheduling.v1.PriorityClass",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "value", Ty::Int32, Shape::Keep),
        f(3, "globalDefault", Ty::Bool, Shape::OmitZero),
        f(4, "description", Ty::String, Shape::OmitZero),
        f(5, "preemptionPolicy", Ty::String, Shape::Keep),
    ],
};
