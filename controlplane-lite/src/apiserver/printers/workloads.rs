//! Workload kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
//! CronJob, ReplicationController, ControllerRevision, PodDisruptionBudget.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use super::format::{
    CONTAINERS_DESCRIPTION, IMAGES_DESCRIPTION, age, age_column, col, container_cells,
    format_label_selector, format_labels, go_bool, human_duration, int, is_deleting, list, name,
    name_column, opt_bool, opt_int, opt_text, row, selector_string, since, text, time, wide,
};

/// Replica counts default to 1 in every workload API.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, "/spec/replicas").unwrap_or(1)
}

fn template_containers(obj: &Value) -> (String, String) {
    container_cells(list(obj, "/spec/template/spec/containers"))
}

// ---- Deployment -------------------------------------------------------------

pub(super) static DEPLOYMENT: Printer = Printer {
    columns: &[
        name_column(),
        col("Ready", "string", "Number of the pod with ready state"),
        col(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        ),
        col(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide(
            "Selector",
            "string",
            "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
        ),
    ],
    cells: deployment,
};

fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    // Unlike the other workloads, Deployment prints an empty selector as "".
    let selector =
        selector_string(obj.pointer("/spec/selector")).unwrap_or_else(|()| "<invalid>".to_string());
    row![
        name(obj),
        format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            desired_replicas(obj)
        ),
        int(obj, "/status/updatedReplicas"),
        int(obj, "/status/availableReplicas"),
        age(obj, now),
        containers,
        images,
        selector,
    ]
}

// ---- ReplicaSet, ReplicationController --------------------------------------

pub(super) static REPLICA_SET: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replica set.",
        ),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide(
            "Selector",
            "string",
            "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        ),
    ],
    cells: replica_set,
};

fn replica_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    row![
        name(obj),
        desired_replicas(obj),
        int(obj, "/status/replicas"),
        int(obj, "/status/readyReplicas"),
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/selector")),
    ]
}

pub(super) static REPLICATION_CONTROLLER: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replication controller.",
        ),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide(
            "Selector",
            "string",
            "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        ),
    ],
    cells: replication_controller,
};

fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    row![
        name(obj),
        desired_replicas(obj),
        int(obj, "/status/replicas"),
        int(obj, "/status/readyReplicas"),
        age(obj, now),
        containers,
        images,
        // A replication controller's selector is a plain label map.
        format_labels(obj.pointer("/spec/selector")),
    ]
}

// ---- StatefulSet ------------------------------------------------------------

pub(super) static STATEFUL_SET: Printer = Printer {
    columns: &[
        name_column(),
        col("Ready", "string", "Number of the pod with ready state"),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
    ],
    cells: stateful_set,
};

fn stateful_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    row![
        name(obj),
        format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            desired_replicas(obj)
        ),
        age(obj, now),
        containers,
        images,
    ]
}

// ---- DaemonSet --------------------------------------------------------------

pub(super) static DAEMON_SET: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        col(
            "Current",
            "integer",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
        ),
        col(
            "Ready",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
        ),
        col(
            "Up-to-date",
            "integer",
            "The total number of nodes that are running updated daemon pod",
        ),
        col(
            "Available",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        ),
        col(
            "Node Selector",
            "string",
            "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
        ),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide(
            "Selector",
            "string",
            "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        ),
    ],
    cells: daemon_set,
};

fn daemon_set(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    row![
        name(obj),
        int(obj, "/status/desiredNumberScheduled"),
        int(obj, "/status/currentNumberScheduled"),
        int(obj, "/status/numberReady"),
        int(obj, "/status/updatedNumberScheduled"),
        int(obj, "/status/numberAvailable"),
        format_labels(obj.pointer("/spec/template/spec/nodeSelector")),
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/selector")),
    ]
}

// ---- Job --------------------------------------------------------------------

const JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

pub(super) static JOB: Printer = Printer {
    columns: &[
        name_column(),
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide("Selector", "string", JOB_SELECTOR),
    ],
    cells: job,
};

/// Status of the first condition of this type, false when there is none.
fn job_condition(obj: &Value, type_: &str) -> bool {
    list(obj, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == type_)
        .is_some_and(|c| text(c, "/status") == "True")
}

fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(obj, "/status/succeeded");
    let completions = match opt_int(obj, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(obj, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(obj, "/status/startTime"),
        time(obj, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if is_deleting(obj) {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = template_containers(obj);
    row![
        name(obj),
        status,
        completions,
        duration,
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/selector")),
    ]
}

// ---- CronJob ----------------------------------------------------------------

pub(super) static CRON_JOB: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        ),
        col(
            "Timezone",
            "string",
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
        ),
        col(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
        ),
        col(
            "Active",
            "integer",
            "A list of pointers to currently running jobs.",
        ),
        col(
            "Last Schedule",
            "string",
            "Information when was the last time the job was successfully scheduled.",
        ),
        age_column(),
        wide("Containers", "string", CONTAINERS_DESCRIPTION),
        wide("Images", "string", IMAGES_DESCRIPTION),
        wide("Selector", "string", JOB_SELECTOR),
    ],
    cells: cron_job,
};

fn cron_job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match time(obj, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    // suspend defaults to false in the API, so a real cluster never shows <unset>.
    let suspend = go_bool(opt_bool(obj, "/spec/suspend").unwrap_or(false));
    let (containers, images) =
        container_cells(list(obj, "/spec/jobTemplate/spec/template/spec/containers"));
    row![
        name(obj),
        text(obj, "/spec/schedule"),
        opt_text(obj, "/spec/timeZone").unwrap_or("<none>"),
        suspend,
        list(obj, "/status/active").len() as i64,
        last_schedule,
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/jobTemplate/spec/selector")),
    ]
}

// ---- ControllerRevision -----------------------------------------------------

pub(super) static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        name_column(),
        col("Controller", "string", "Controller of the object"),
        col(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        age_column(),
    ],
    cells: controller_revision,
};

fn controller_revision(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |r| {
                // "kind.group/name" in lower case, e.g. "daemonset.apps/fluentd".
                let group = text(r, "/apiVersion")
                    .rsplit_once('/')
                    .map_or("", |(group, _)| group);
                let kind = text(r, "/kind");
                let group_kind = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                if group_kind.is_empty() {
                    text(r, "/name").to_string()
                } else {
                    format!("{}/{}", group_kind.to_lowercase(), text(r, "/name"))
                }
            },
        );
    row![name(obj), controller, int(obj, "/revision"), age(obj, now)]
}

// ---- PodDisruptionBudget ----------------------------------------------------

pub(super) static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        age_column(),
    ],
    cells: pod_disruption_budget,
};

/// An IntOrString as Go prints it, "N/A" when unset.
fn int_or_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".to_string(),
    }
}

fn pod_disruption_budget(obj: &Value, now: Timestamp) -> Vec<Value> {
    row![
        name(obj),
        int_or_string(obj.pointer("/spec/minAvailable")),
        int_or_string(obj.pointer("/spec/maxUnavailable")),
        int(obj, "/status/disruptionsAllowed"),
        age(obj, now),
    ]
}
