//! Server-side Table printing (`kubectl get` columns).
//!
//! When a client asks for `application/json;as=Table;v=v1;g=meta.k8s.io`, the
//! API server answers a `meta.k8s.io/v1` Table instead of the list. The
//! columns and cell formatting here follow Kubernetes' own printers
//! (`pkg/printers/internalversion`), so `kubectl get` output is the same as
//! against a real cluster. As on a real API server, rows always carry the
//! `-o wide` cells; kubectl hides priority-1 columns unless asked for them.

mod autoscaling;
mod cluster;
mod core;
mod format;
mod network;
mod storage;
mod workloads;

use jiff::Timestamp;
use serde_json::{Value, json};

pub use format::{canonical_quantity, human_duration};

/// One `meta.k8s.io/v1` TableColumnDefinition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0 shows by default; 1 only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column as it appears in a Table's `columnDefinitions`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The columns of one kind and how to fill them.
struct Printer {
    columns: &'static [Column],
    cells: fn(&Value, Timestamp) -> Vec<Value>,
}

/// Kinds Kubernetes prints with the API server's generic convertor
/// (name and RFC 3339 creation time) because they have no printer of their own.
static GENERIC: Printer = Printer {
    columns: &[
        format::name_column(),
        format::col("Created At", "date", format::AGE_DESCRIPTION),
    ],
    cells: generic,
};

fn generic(obj: &Value, _now: Timestamp) -> Vec<Value> {
    // Go formats a zero time as year 1 rather than leaving the cell empty.
    let created = format::time(obj, "/metadata/creationTimestamp").map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    format::row![format::name(obj), created]
}

/// Kinds skiff does not know, such as custom resources: Name and Age, like a
/// CustomResourceDefinition without additional printer columns.
static CUSTOM: Printer = Printer {
    columns: &[
        format::name_column(),
        format::col("Age", "date", format::AGE_DESCRIPTION),
    ],
    cells: custom,
};

fn custom(obj: &Value, now: Timestamp) -> Vec<Value> {
    format::row![format::name(obj), format::age(obj, now)]
}

fn printer(kind: &str) -> &'static Printer {
    match kind {
        "Namespace" => &core::NAMESPACE,
        "Node" => &core::NODE,
        "Pod" => &core::POD,
        "PodTemplate" => &core::POD_TEMPLATE,
        "ConfigMap" => &core::CONFIG_MAP,
        "Secret" => &core::SECRET,
        "ServiceAccount" => &core::SERVICE_ACCOUNT,
        "Event" => &core::EVENT,
        "ResourceQuota" => &core::RESOURCE_QUOTA,
        "Service" => &network::SERVICE,
        "Endpoints" => &network::ENDPOINTS,
        "EndpointSlice" => &network::ENDPOINT_SLICE,
        "Ingress" => &network::INGRESS,
        "IngressClass" => &network::INGRESS_CLASS,
        "NetworkPolicy" => &network::NETWORK_POLICY,
        "PersistentVolume" => &storage::PERSISTENT_VOLUME,
        "PersistentVolumeClaim" => &storage::PERSISTENT_VOLUME_CLAIM,
        "StorageClass" => &storage::STORAGE_CLASS,
        "Deployment" => &workloads::DEPLOYMENT,
        "ReplicaSet" => &workloads::REPLICA_SET,
        "ReplicationController" => &workloads::REPLICATION_CONTROLLER,
        "StatefulSet" => &workloads::STATEFUL_SET,
        "DaemonSet" => &workloads::DAEMON_SET,
        "Job" => &workloads::JOB,
        "CronJob" => &workloads::CRON_JOB,
        "ControllerRevision" => &workloads::CONTROLLER_REVISION,
        "PodDisruptionBudget" => &workloads::POD_DISRUPTION_BUDGET,
        "HorizontalPodAutoscaler" => &autoscaling::HORIZONTAL_POD_AUTOSCALER,
        "Lease" => &cluster::LEASE,
        "CertificateSigningRequest" => &cluster::CERTIFICATE_SIGNING_REQUEST,
        "RoleBinding" => &cluster::ROLE_BINDING,
        "ClusterRoleBinding" => &cluster::CLUSTER_ROLE_BINDING,
        "PriorityClass" => &cluster::PRIORITY_CLASS,
        "RuntimeClass" => &cluster::RUNTIME_CLASS,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
            &cluster::WEBHOOK_CONFIGURATION
        }
        "Role" | "ClusterRole" | "LimitRange" | "CustomResourceDefinition" => &GENERIC,
        _ => &CUSTOM,
    }
}

/// Columns for a kind (e.g. "Pod"). Kinds Kubernetes prints generically
/// (Role, ClusterRole, LimitRange, CustomResourceDefinition) get Name and
/// Created At as there; unknown kinds get Name and Age as a custom resource does.
pub fn columns(kind: &str) -> &'static [Column] {
    printer(kind).columns
}

/// The cells of one row, matching `columns(kind)` one to one; `now` computes
/// AGE and similar.
pub fn cells(kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    (printer(kind).cells)(obj, now)
}

/// One Table row: cells, row conditions where Kubernetes sets them (finished
/// pods), and the object as `include_object` asks ("None", "Metadata" —
/// the default, also used for unrecognised values — or "Object").
pub fn table_row(kind: &str, obj: &Value, now: Timestamp, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    let mut row = json!({ "cells": cells(kind, obj, now) });
    if kind == "Pod"
        && let Some(conditions) = core::pod_conditions(obj)
    {
        row["conditions"] = conditions;
    }
    row["object"] = object;
    row
}

/// The whole Table for a list of objects. The server fills in
/// `metadata.resourceVersion` / `metadata.continue` (and drops
/// `columnDefinitions` when the client asked for `noHeaders`).
pub fn table(kind: &str, objects: &[Value], now: Timestamp, include_object: &str) -> Value {
    let columns: Vec<Value> = columns(kind).iter().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| table_row(kind, obj, now, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
