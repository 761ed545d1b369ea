//! Core (v1) kinds other than Services and Endpoints: Namespace, Node, Pod,
//! PodTemplate, ConfigMap, Secret, ServiceAccount, Event, ResourceQuota.

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use super::format::{
    AGE_DESCRIPTION, CONTAINERS_DESCRIPTION, IMAGES_DESCRIPTION, NAME_DESCRIPTION, age, age_column,
    canonical_quantity, col, container_cells, flag, format_labels, int, is_deleting, key_count,
    list, map, name, name_column, opt_text, row, since, text, time, time_value, wide,
};

// ---- Namespace --------------------------------------------------------------

pub(super) static NAMESPACE: Printer = Printer {
    columns: &[
        name_column(),
        col("Status", "string", "The status of the namespace"),
        age_column(),
    ],
    cells: namespace,
};

fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The API server defaults an empty namespace phase to Active.
    let phase = match text(obj, "/status/phase") {
        "" => "Active",
        p => p,
    };
    row![name(obj), phase, age(obj, now)]
}

// ---- Node -------------------------------------------------------------------

const NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

pub(super) static NODE: Printer = Printer {
    columns: &[
        name_column(),
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        age_column(),
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", NODE_ADDRESSES),
        wide("External-IP", "string", NODE_ADDRESSES),
        wide(
            "OS-Image",
            "string",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        ),
        wide(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        ),
        wide(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        ),
    ],
    cells: node,
};

const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition makes the status; the last one listed wins.
    let ready = list(obj, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if flag(obj, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }

    let roles = node_roles(obj);
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let info = |field: &str| match text(obj, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        v => v.to_string(),
    };
    row![
        name(obj),
        status.join(","),
        roles,
        age(obj, now),
        text(obj, "/status/nodeInfo/kubeletVersion"),
        node_address(obj, "InternalIP"),
        node_address(obj, "ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` labels and the older
/// `kubernetes.io/role=<role>` label, sorted.
fn node_roles(obj: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (key, value) in map(obj, "/metadata/labels").into_iter().flatten() {
        if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if key == NODE_ROLE_LABEL {
            match value.as_str() {
                Some(role) if !role.is_empty() => {
                    roles.insert(role.to_string());
                }
                _ => {}
            }
        }
    }
    roles.into_iter().collect()
}

fn node_address(obj: &Value, kind: &str) -> String {
    list(obj, "/status/addresses")
        .iter()
        .find(|a| text(a, "/type") == kind)
        .map_or_else(|| "<none>".to_string(), |a| text(a, "/address").to_string())
}

// ---- Pod --------------------------------------------------------------------

pub(super) static POD: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        age_column(),
        wide(
            "IP",
            "string",
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        ),
        wide(
            "Node",
            "string",
            "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
        ),
        wide(
            "Nominated Node",
            "string",
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.",
        ),
        wide(
            "Readiness Gates",
            "string",
            "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
        ),
    ],
    cells: pod,
};

/// The reason the node lifecycle controller gives pods on an unreachable node.
const NODE_UNREACHABLE_REASON: &str = "NodeLost";

/// Latest of two optional times (a zero time loses to any real one).
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn has_condition(obj: &Value, type_: &str) -> Option<bool> {
    list(obj, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == type_)
        .map(|c| text(c, "/status") == "True")
}

fn pod(obj: &Value, now: Timestamp) -> Vec<Value> {
    let summary = pod_summary(obj);
    let restarts = match summary.last_restart {
        Some(at) if summary.restarts != 0 => {
            format!("{} ({} ago)", summary.restarts, since(Some(at), now))
        }
        _ => summary.restarts.to_string(),
    };

    // v1 podIP is authoritative over podIPs[0], as in the v1→internal conversion.
    let ip = match text(obj, "/status/podIP") {
        "" => text(obj, "/status/podIPs/0/ip"),
        ip => ip,
    };
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };

    let gates = list(obj, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = gates
            .iter()
            .filter(|g| has_condition(obj, text(g, "/conditionType")) == Some(true))
            .count();
        format!("{passing}/{}", gates.len())
    };

    row![
        name(obj),
        format!("{}/{}", summary.ready, summary.total),
        summary.reason,
        restarts,
        age(obj, now),
        or_none(ip),
        or_none(text(obj, "/spec/nodeName")),
        or_none(text(obj, "/status/nominatedNodeName")),
        readiness_gates,
    ]
}

struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

/// The READY / STATUS / RESTARTS logic of Kubernetes' pod printer.
fn pod_summary(obj: &Value) -> PodSummary {
    // The API server sets phase Pending when a pod is created.
    let phase = match text(obj, "/status/phase") {
        "" => "Pending",
        p => p,
    };
    let mut reason = match text(obj, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let scheduling_gated = list(obj, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated");
    if scheduling_gated {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = list(obj, "/spec/initContainers");
    // Sidecars are init containers that keep running; they count as containers.
    let sidecars: HashMap<&str, bool> = init_specs
        .iter()
        .map(|c| (text(c, "/name"), text(c, "/restartPolicy") == "Always"))
        .collect();
    let is_sidecar = |name: &str| sidecars.get(name).copied().unwrap_or(false);
    let total = list(obj, "/spec/containers").len() + sidecars.values().filter(|s| **s).count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart = None;
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart = None;

    let mut initializing = false;
    for (i, status) in list(obj, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int(status, "/restartCount");
        let finished = time(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = is_sidecar(text(status, "/name"));
        if sidecar {
            sidecar_restarts += count;
            sidecar_last_restart = later(sidecar_last_restart, finished);
        }
        let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
        let waiting_reason = text(status, "/state/waiting/reason");
        match terminated {
            Some(t) if int(t, "/exitCode") == 0 => continue,
            _ if sidecar && flag(status, "/started") => {
                if flag(status, "/ready") {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                    "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                    r => format!("Init:{r}"),
                };
            }
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                reason = format!("Init:{waiting_reason}");
            }
            None => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    if !initializing || has_condition(obj, "Initialized") == Some(true) {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        // Walked backwards so the first container's state decides the reason.
        for status in list(obj, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(
                last_restart,
                time(status, "/lastState/terminated/finishedAt"),
            );
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
            let running = status
                .pointer("/state/running")
                .is_some_and(|r| !r.is_null());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if flag(status, "/ready") && running {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose first container completed while another still runs.
        if reason == "Completed" && has_running {
            reason = if has_condition(obj, "Ready") == Some(true) {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if is_deleting(obj) {
        if text(obj, "/status/reason") == NODE_UNREACHABLE_REASON {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// Row conditions Kubernetes attaches to finished pods.
pub(super) fn pod_conditions(obj: &Value) -> Option<Value> {
    let (reason, message) = match text(obj, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

// ---- PodTemplate ------------------------------------------------------------

pub(super) static POD_TEMPLATE: Printer = Printer {
    columns: &[
        name_column(),
        col("Containers", "string", CONTAINERS_DESCRIPTION),
        col("Images", "string", IMAGES_DESCRIPTION),
        col("Pod Labels", "string", "The labels for the pod template."),
    ],
    cells: pod_template,
};

fn pod_template(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, "/template/spec/containers"));
    row![
        name(obj),
        names,
        images,
        format_labels(obj.pointer("/template/metadata/labels")),
    ]
}

// ---- ConfigMap, Secret, ServiceAccount -------------------------------------

pub(super) static CONFIG_MAP: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Data",
            "string",
            "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
        ),
        age_column(),
    ],
    cells: config_map,
};

fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    let count = key_count(obj, "/data") + key_count(obj, "/binaryData");
    row![name(obj), count as i64, age(obj, now)]
}

pub(super) static SECRET: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        ),
        col(
            "Data",
            "string",
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        ),
        age_column(),
    ],
    cells: secret,
};

fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The API server defaults the type to Opaque and folds write-only
    // stringData into data; count the keys as the stored secret would have them.
    let type_ = match text(obj, "/type") {
        "" => "Opaque",
        t => t,
    };
    let keys: BTreeSet<&str> = map(obj, "/data")
        .into_iter()
        .chain(map(obj, "/stringData"))
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    row![name(obj), type_, keys.len() as i64, age(obj, now)]
}

pub(super) static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Secrets",
            "string",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret",
        ),
        age_column(),
    ],
    cells: service_account,
};

fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![name(obj), list(obj, "/secrets").len() as i64, age(obj, now)]
}

// ---- Event ------------------------------------------------------------------

pub(super) static EVENT: Printer = Printer {
    columns: &[
        col(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        col(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        col(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        col("Object", "string", "The object that this event is about."),
        wide(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        ),
        wide(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
        ),
        col(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        wide(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        ),
        wide(
            "Count",
            "string",
            "The number of times this event has occurred.",
        ),
        super::Column {
            name: "Name",
            type_: "string",
            format: "name",
            description: NAME_DESCRIPTION,
            priority: 1,
        },
    ],
    cells: event,
};

/// Reads a field of a core/v1 Event, falling back to its events.k8s.io/v1
/// name so both API versions of the same stored event print alike.
fn event_field<'a>(obj: &'a Value, core: &str, events: &str) -> Option<&'a Value> {
    obj.get(core)
        .filter(|v| !v.is_null())
        .or_else(|| obj.get(events).filter(|v| !v.is_null()))
}

fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let first = match time_value(event_field(
        obj,
        "firstTimestamp",
        "deprecatedFirstTimestamp",
    )) {
        Some(t) => since(Some(t), now),
        None => since(time(obj, "/eventTime"), now),
    };
    let mut last = match time_value(event_field(obj, "lastTimestamp", "deprecatedLastTimestamp")) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = event_field(obj, "count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match obj.get("series").filter(|s| !s.is_null()) {
        Some(series) => {
            last = since(time(series, "/lastObservedTime"), now);
            count = int(series, "/count");
        }
        // Singleton events of the newer API leave the count unset.
        None if count == 0 => count = 1,
        None => {}
    }

    let null = Value::Null;
    let involved = event_field(obj, "involvedObject", "regarding").unwrap_or(&null);
    let kind = text(involved, "/kind").to_lowercase();
    let target = match text(involved, "/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };

    let source = event_field(obj, "source", "deprecatedSource").unwrap_or(&null);
    let component = first_non_empty(text(source, "/component"), text(obj, "/reportingComponent"))
        .or_else(|| opt_text(obj, "/reportingController"))
        .unwrap_or("");
    let host =
        first_non_empty(text(source, "/host"), text(obj, "/reportingInstance")).unwrap_or("");
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    let message = event_field(obj, "message", "note")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    row![
        last,
        text(obj, "/type"),
        text(obj, "/reason"),
        target,
        text(involved, "/fieldPath"),
        source,
        message,
        first,
        count,
        name(obj),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    [a, b].into_iter().find(|s| !s.is_empty())
}

// ---- ResourceQuota ----------------------------------------------------------

pub(super) static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        col("Age", "string", AGE_DESCRIPTION),
    ],
    cells: resource_quota,
};

fn resource_quota(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let mut resources: Vec<(&String, &Value)> =
        map(obj, "/status/hard").into_iter().flatten().collect();
    resources.sort_by(|a, b| a.0.cmp(b.0));
    for (resource, hard) in resources {
        let used = map(obj, "/status/used")
            .and_then(|u| u.get(resource))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let entry = format!(
            "{resource}: {}/{}",
            canonical_quantity(used),
            canonical_quantity(hard.as_str().unwrap_or("0"))
        );
        if resource.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    row![
        name(obj),
        requests.join(", "),
        limits.join(", "),
        age(obj, now)
    ]
}
