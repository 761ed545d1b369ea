use jiff::Timestamp;
use serde_json::{Value, json};

use super::{cells, columns, table, table_row};

const NOW: &str = "2024-05-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("valid timestamp")
}

/// An RFC 3339 time `secs` seconds before NOW.
fn ago(secs: i64) -> String {
    (now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

/// Headers as kubectl prints them: default columns, and with `-o wide`.
fn headers(kind: &str, wide: bool) -> String {
    columns(kind)
        .iter()
        .filter(|c| wide || c.priority == 0)
        .map(|c| c.name.to_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(kind: &str, obj: &Value) -> Vec<Value> {
    let cells = cells(kind, obj, now());
    assert_eq!(
        cells.len(),
        columns(kind).len(),
        "{kind}: one cell per column"
    );
    cells
}

/// The row as kubectl shows it by default (priority-0 cells), as strings.
fn shown(kind: &str, obj: &Value) -> Vec<String> {
    row(kind, obj)
        .iter()
        .zip(columns(kind))
        .filter(|(_, c)| c.priority == 0)
        .map(|(v, _)| cell_text(v))
        .collect()
}

/// The row with `-o wide`.
fn shown_wide(kind: &str, obj: &Value) -> Vec<String> {
    row(kind, obj).iter().map(cell_text).collect()
}

/// kubectl prints cells with Go's %v.
fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(created_secs_ago)})
}

const ALL_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "Pod",
    "PodTemplate",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Event",
    "ResourceQuota",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ControllerRevision",
    "PodDisruptionBudget",
    "Lease",
    "RoleBinding",
    "ClusterRoleBinding",
    "PriorityClass",
    "RuntimeClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "Role",
    "ClusterRole",
    "Widget",
];

#[test]
fn every_kind_prints_an_empty_object() {
    for kind in ALL_KINDS {
        for obj in [
            json!({}),
            json!({"metadata": {}, "spec": null, "status": null}),
        ] {
            let cells = row(kind, &obj);
            for cell in cells {
                assert!(
                    cell.is_string() || cell.is_i64() || cell.is_boolean(),
                    "{kind}: cell {cell}"
                );
            }
        }
    }
}

#[test]
fn column_definitions_are_well_formed() {
    for kind in ALL_KINDS {
        let cols = columns(kind);
        assert!(cols.iter().any(|c| c.format == "name"), "{kind}");
        for c in cols {
            assert!(
                ["string", "integer", "boolean", "date", "number"].contains(&c.type_),
                "{kind}/{}",
                c.name
            );
            assert!(c.priority == 0 || c.priority == 1);
        }
    }
}

// ---- core ------------------------------------------------------------------

#[test]
fn namespace() {
    assert_eq!(headers("Namespace", true), "NAME STATUS AGE");
    let ns = json!({"metadata": meta("kube-system", 3 * 86400 + 5 * 3600), "status": {"phase": "Active"}});
    assert_eq!(shown("Namespace", &ns), ["kube-system", "Active", "3d5h"]);
    let terminating = json!({"metadata": meta("old", 30), "status": {"phase": "Terminating"}});
    assert_eq!(shown("Namespace", &terminating)[1], "Terminating");
    // Defaulting gives every namespace a phase.
    assert_eq!(
        shown("Namespace", &json!({"metadata": meta("new", 1)}))[1],
        "Active"
    );
}

fn node_obj() -> Value {
    json!({
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ago(45 * 86400),
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/worker": "",
                "kubernetes.io/role": "edge",
                "kubernetes.io/hostname": "node-1"
            }
        },
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"}
            ],
            "addresses": [
                {"type": "Hostname", "address": "node-1"},
                {"type": "InternalIP", "address": "10.0.0.11"}
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-18-amd64",
                "containerRuntimeVersion": "containerd://1.6.20"
            }
        }
    })
}

#[test]
fn node() {
    assert_eq!(headers("Node", false), "NAME STATUS ROLES AGE VERSION");
    assert_eq!(
        headers("Node", true),
        "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"
    );
    assert_eq!(
        shown_wide("Node", &node_obj()),
        [
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,edge,worker",
            "45d",
            "v1.32.4",
            "10.0.0.11",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://1.6.20",
        ]
    );
    let bare = json!({"metadata": {"name": "n"}});
    assert_eq!(
        shown_wide("Node", &bare),
        [
            "n",
            "Unknown",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]
    );
    let not_ready = json!({"metadata": meta("n", 60), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(shown("Node", &not_ready)[1], "NotReady");
}

// ---- pods ------------------------------------------------------------------

fn pod(spec: Value, status: Value) -> Value {
    json!({"metadata": meta("web-0", 312), "spec": spec, "status": status})
}

fn containers(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
            .collect(),
    )
}

fn running(name: &str, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "ready": ready, "restartCount": restarts,
           "state": {"running": {"startedAt": ago(600)}}})
}

/// READY, STATUS, RESTARTS of a pod.
fn pod_status(obj: &Value) -> (String, String, String) {
    let cells = shown("Pod", obj);
    (cells[1].clone(), cells[2].clone(), cells[3].clone())
}

fn triple(ready: &str, status: &str, restarts: &str) -> (String, String, String) {
    (ready.to_string(), status.to_string(), restarts.to_string())
}

#[test]
fn pod_columns() {
    assert_eq!(headers("Pod", false), "NAME READY STATUS RESTARTS AGE");
    assert_eq!(
        headers("Pod", true),
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    );
}

#[test]
fn pod_running() {
    let p = pod(
        json!({"containers": containers(2), "nodeName": "node-1"}),
        json!({"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
               "containerStatuses": [running("c0", true, 0), running("c1", true, 0)]}),
    );
    assert_eq!(
        shown_wide("Pod", &p),
        [
            "web-0",
            "2/2",
            "Running",
            "0",
            "5m12s",
            "10.244.0.5",
            "node-1",
            "<none>",
            "<none>"
        ]
    );
}

#[test]
fn pod_pending_without_status() {
    let p = json!({"metadata": meta("p", 5), "spec": {"containers": containers(1)}});
    assert_eq!(
        shown_wide("Pod", &p),
        [
            "p", "0/1", "Pending", "0", "5s", "<none>", "<none>", "<none>", "<none>"
        ]
    );
}

#[test]
fn pod_container_creating() {
    let p = pod(
        json!({"containers": containers(1), "nodeName": "n"}),
        json!({"phase": "Pending", "containerStatuses": [
            {"name": "c0", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]}),
    );
    assert_eq!(pod_status(&p), triple("0/1", "ContainerCreating", "0"));
}

#[test]
fn pod_crash_loop_shows_last_restart() {
    let p = pod(
        json!({"containers": containers(2)}),
        json!({"phase": "Running", "containerStatuses": [
            {"name": "c0", "ready": false, "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}},
            running("c1", true, 1)
        ]}),
    );
    assert_eq!(
        pod_status(&p),
        triple("1/2", "CrashLoopBackOff", "6 (5m ago)")
    );
}

#[test]
fn pod_restarts_without_termination_time() {
    let p = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running", "containerStatuses": [running("c0", true, 3)]}),
    );
    assert_eq!(pod_status(&p), triple("1/1", "Running", "3"));
}

#[test]
fn pod_completed_and_failed() {
    let done = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "c0", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(60)}}}
        ]}),
    );
    assert_eq!(pod_status(&done), triple("0/1", "Completed", "0"));
    let r = table_row("Pod", &done, now(), "None");
    assert_eq!(
        r["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );

    let failed = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Failed", "containerStatuses": [
            {"name": "c0", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
        ]}),
    );
    assert_eq!(pod_status(&failed), triple("0/1", "ExitCode:2", "0"));
    assert_eq!(
        table_row("Pod", &failed, now(), "None")["conditions"][0]["reason"],
        "Failed"
    );

    let killed = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Failed", "containerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
        ]}),
    );
    assert_eq!(pod_status(&killed).1, "Signal:9");

    let evicted = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
    );
    assert_eq!(pod_status(&evicted), triple("0/1", "Evicted", "0"));
}

#[test]
fn pod_completed_with_a_running_container() {
    let status = |ready_condition: &str| {
        json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": ready_condition}],
        "containerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            running("c1", true, 0)
        ]})
    };
    let spec = json!({"containers": containers(2)});
    assert_eq!(
        pod_status(&pod(spec.clone(), status("True"))),
        triple("1/2", "Running", "0")
    );
    assert_eq!(
        pod_status(&pod(spec, status("False"))),
        triple("1/2", "NotReady", "0")
    );
}

#[test]
fn pod_init_containers() {
    let spec = json!({"initContainers": containers(2), "containers": [{"name": "app"}]});
    let main_waiting = json!([{"name": "app", "ready": false, "restartCount": 0,
                               "state": {"waiting": {"reason": "PodInitializing"}}}]);

    let first_running = pod(
        spec.clone(),
        json!({"phase": "Pending",
               "initContainerStatuses": [running("c0", false, 0),
                   {"name": "c1", "state": {"waiting": {"reason": "PodInitializing"}}}],
               "containerStatuses": main_waiting}),
    );
    assert_eq!(pod_status(&first_running), triple("0/1", "Init:0/2", "0"));

    let second_running = pod(
        spec.clone(),
        json!({"phase": "Pending",
               "initContainerStatuses": [
                   {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                   running("c1", false, 0)],
               "containerStatuses": main_waiting}),
    );
    assert_eq!(pod_status(&second_running), triple("0/1", "Init:1/2", "0"));

    let crashing = pod(
        spec.clone(),
        json!({"phase": "Pending",
               "initContainerStatuses": [
                   {"name": "c0", "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}},
                   {"name": "c1", "state": {"waiting": {"reason": "PodInitializing"}}}],
               "containerStatuses": main_waiting}),
    );
    // While initializing, restarts count the init containers.
    assert_eq!(
        pod_status(&crashing),
        triple("0/1", "Init:CrashLoopBackOff", "4 (90s ago)")
    );

    let failed = pod(
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
    );
    assert_eq!(pod_status(&failed).1, "Init:Error");

    let exit_code = pod(
        spec.clone(),
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 3}}}]}),
    );
    assert_eq!(pod_status(&exit_code).1, "Init:ExitCode:3");

    let signal = pod(
        spec,
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "c0", "state": {"terminated": {"exitCode": 143, "signal": 15}}}]}),
    );
    assert_eq!(pod_status(&signal).1, "Init:Signal:15");
}

#[test]
fn pod_sidecar_counts_as_a_container() {
    let spec = json!({
        "initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "setup"}],
        "containers": [{"name": "app"}]
    });
    let p = pod(
        spec,
        json!({"phase": "Running",
               "conditions": [{"type": "Initialized", "status": "True"}],
               "initContainerStatuses": [
                   {"name": "proxy", "started": true, "ready": true, "restartCount": 2,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3 * 3600)}}},
                   {"name": "setup", "restartCount": 1,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}}],
               "containerStatuses": [running("app", true, 0)]}),
    );
    // Only the sidecar's restarts count once the pod is initialized.
    assert_eq!(pod_status(&p), triple("2/2", "Running", "2 (3h ago)"));
}

#[test]
fn pod_terminating_and_node_lost() {
    let mut p = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running", "containerStatuses": [running("c0", true, 0)]}),
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(0));
    assert_eq!(pod_status(&p), triple("1/1", "Terminating", "0"));

    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_status(&p).1, "Unknown");

    // Without a deletion, the reason itself shows.
    if let Some(m) = p["metadata"].as_object_mut() {
        m.remove("deletionTimestamp");
    }
    assert_eq!(pod_status(&p).1, "NodeLost");

    // A finished pod being deleted keeps its final status.
    let mut done = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Succeeded"}),
    );
    done["metadata"]["deletionTimestamp"] = json!(ago(0));
    assert_eq!(pod_status(&done).1, "Succeeded");
}

#[test]
fn pod_scheduling_gated_and_readiness_gates() {
    let gated = pod(
        json!({"containers": containers(1), "schedulingGates": [{"name": "wait"}]}),
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(pod_status(&gated).1, "SchedulingGated");

    let gates = pod(
        json!({"containers": containers(1), "nodeName": "n1",
               "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running", "nominatedNodeName": "n2",
               "podIPs": [{"ip": "fd00::5"}],
               "conditions": [{"type": "example.com/lb", "status": "True"},
                              {"type": "example.com/dns", "status": "False"}],
               "containerStatuses": [running("c0", true, 0)]}),
    );
    let wide = shown_wide("Pod", &gates);
    assert_eq!(wide[5..], ["fd00::5", "n1", "n2", "1/2"]);
}

// ---- services and networking ----------------------------------------------

#[test]
fn service() {
    assert_eq!(
        headers("Service", false),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"
    );
    assert_eq!(
        headers("Service", true),
        "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR"
    );
    let node_port = json!({
        "metadata": meta("web", 600),
        "spec": {"type": "NodePort", "clusterIP": "10.96.12.7", "clusterIPs": ["10.96.12.7"],
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                           {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "web", "tier": "front"}}
    });
    assert_eq!(
        shown_wide("Service", &node_port),
        [
            "web",
            "NodePort",
            "10.96.12.7",
            "<none>",
            "80:30080/TCP,53/UDP",
            "10m",
            "app=web,tier=front"
        ]
    );

    let headless = json!({"metadata": meta("db", 60), "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
    assert_eq!(
        shown_wide("Service", &headless),
        [
            "db",
            "ClusterIP",
            "None",
            "<none>",
            "5432/TCP",
            "60s",
            "<none>"
        ]
    );

    let lb = |ingress: Value, external: Value| {
        json!({"metadata": meta("lb", 60),
               "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "externalIPs": external,
                        "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
               "status": {"loadBalancer": {"ingress": ingress}}})
    };
    assert_eq!(shown("Service", &lb(json!([]), json!([])))[3], "<pending>");
    assert_eq!(
        shown(
            "Service",
            &lb(
                json!([{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]),
                json!(["198.51.100.1"])
            )
        )[3],
        "203.0.113.9,lb.example.com,198.51.100.1"
    );

    let external_name = json!({"metadata": meta("ext", 60),
                               "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        shown("Service", &external_name),
        [
            "ext",
            "ExternalName",
            "<none>",
            "db.example.com",
            "<none>",
            "60s"
        ]
    );
}

#[test]
fn endpoints() {
    assert_eq!(headers("Endpoints", true), "NAME ENDPOINTS AGE");
    let ep = json!({
        "metadata": meta("web", 120),
        "subsets": [
            {"addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.1.7"}],
             "notReadyAddresses": [{"ip": "10.244.2.2"}],
             "ports": [{"port": 8080, "name": "http"}, {"port": 8443, "name": "https"}]}
        ]
    });
    assert_eq!(
        shown("Endpoints", &ep),
        [
            "web",
            "10.244.0.5:8080,10.244.1.7:8080,10.244.0.5:8443 + 1 more...",
            "2m"
        ]
    );
    let headless =
        json!({"metadata": meta("h", 5), "subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
    assert_eq!(shown("Endpoints", &headless)[1], "fd00::1");
    assert_eq!(
        shown("Endpoints", &json!({"metadata": meta("e", 5)}))[1],
        "<none>"
    );
}

#[test]
fn endpoint_slice() {
    assert_eq!(
        headers("EndpointSlice", true),
        "NAME ADDRESSTYPE PORTS ENDPOINTS AGE"
    );
    let slice = json!({
        "metadata": meta("web-abc12", 30),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
            {"addresses": ["10.244.1.7"]},
            {"addresses": ["10.244.2.8"]},
            {"addresses": ["10.244.3.9"]}
        ]
    });
    assert_eq!(
        shown("EndpointSlice", &slice),
        [
            "web-abc12",
            "IPv4",
            "80,metrics,*",
            "10.244.0.5,10.244.1.7,10.244.2.8 + 1 more...",
            "30s"
        ]
    );
    let empty = json!({"metadata": meta("e", 5), "addressType": "IPv6"});
    assert_eq!(
        shown("EndpointSlice", &empty),
        ["e", "IPv6", "<unset>", "<unset>", "5s"]
    );
}

#[test]
fn ingress() {
    assert_eq!(
        headers("Ingress", true),
        "NAME CLASS HOSTS ADDRESS PORTS AGE"
    );
    let ing = json!({
        "metadata": meta("site", 3600 * 5 + 60 * 7),
        "spec": {"ingressClassName": "nginx",
                 "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"},
                           {"host": "c.example.com"}, {"host": "d.example.com"}],
                 "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.1"}]}}
    });
    assert_eq!(
        shown("Ingress", &ing),
        [
            "site",
            "nginx",
            "a.example.com,b.example.com,c.example.com + 2 more...",
            "192.0.2.1,192.0.2.10",
            "80, 443",
            "5h7m"
        ]
    );
    let bare = json!({"metadata": meta("x", 5), "spec": {"rules": [{"http": {}}]}});
    assert_eq!(
        shown("Ingress", &bare),
        ["x", "<none>", "*", "", "80", "5s"]
    );

    assert_eq!(
        headers("IngressClass", true),
        "NAME CONTROLLER PARAMETERS AGE"
    );
    let class = json!({"metadata": meta("nginx", 5),
                       "spec": {"controller": "k8s.io/ingress-nginx",
                                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
    assert_eq!(
        shown("IngressClass", &class),
        [
            "nginx",
            "k8s.io/ingress-nginx",
            "IngressParameters.k8s.example.com/external-lb",
            "5s"
        ]
    );
}

#[test]
fn network_policy() {
    assert_eq!(headers("NetworkPolicy", true), "NAME POD-SELECTOR AGE");
    let np = json!({"metadata": meta("deny", 5), "spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
    assert_eq!(shown("NetworkPolicy", &np), ["deny", "role=db", "5s"]);
    let all = json!({"metadata": meta("all", 5), "spec": {"podSelector": {}}});
    assert_eq!(shown("NetworkPolicy", &all)[1], "<none>");
}

// ---- config -----------------------------------------------------------------

#[test]
fn config_map_secret_service_account() {
    assert_eq!(headers("ConfigMap", true), "NAME DATA AGE");
    let cm = json!({"metadata": meta("cfg", 90), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        row("ConfigMap", &cm),
        [json!("cfg"), json!(3), json!("90s")]
    );

    assert_eq!(headers("Secret", true), "NAME TYPE DATA AGE");
    let secret = json!({"metadata": meta("tls", 90), "type": "kubernetes.io/tls",
                        "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        row("Secret", &secret),
        [
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("90s")
        ]
    );
    let string_data =
        json!({"metadata": meta("s", 1), "data": {"a": ""}, "stringData": {"a": "x", "b": "y"}});
    assert_eq!(shown("Secret", &string_data), ["s", "Opaque", "2", "1s"]);

    assert_eq!(headers("ServiceAccount", true), "NAME SECRETS AGE");
    let sa = json!({"metadata": meta("default", 7200)});
    assert_eq!(
        row("ServiceAccount", &sa),
        [json!("default"), json!(0), json!("120m")]
    );
}

#[test]
fn event() {
    assert_eq!(
        headers("Event", false),
        "LAST SEEN TYPE REASON OBJECT MESSAGE"
    );
    assert_eq!(
        headers("Event", true),
        "LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME"
    );
    let ev = json!({
        "metadata": meta("web-0.17c1", 600),
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(42),
        "count": 7,
        "type": "Warning"
    });
    assert_eq!(
        shown_wide("Event", &ev),
        [
            "42s",
            "Warning",
            "BackOff",
            "pod/web-0",
            "spec.containers{app}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "10m",
            "7",
            "web-0.17c1"
        ]
    );

    // A new-style event recorded through core/v1: eventTime and series.
    let series = json!({
        "metadata": meta("n.1", 600),
        "involvedObject": {"kind": "Node", "name": "node-1"},
        "reason": "Starting", "message": "Starting kubelet.", "type": "Normal",
        "eventTime": "2024-05-01T11:50:00.000000Z",
        "series": {"count": 3, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-1"
    });
    assert_eq!(
        shown_wide("Event", &series),
        [
            "60s",
            "Normal",
            "Starting",
            "node/node-1",
            "",
            "kubelet, node-1",
            "Starting kubelet.",
            "10m",
            "3",
            "n.1"
        ]
    );

    // events.k8s.io/v1 field names.
    let v1 = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": meta("x.2", 30),
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "note": "Scaled up replica set web-7d4 to 3", "type": "Normal",
        "eventTime": "2024-05-01T11:59:30.000000Z",
        "reportingController": "deployment-controller"
    });
    assert_eq!(
        shown_wide("Event", &v1),
        [
            "30s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller",
            "Scaled up replica set web-7d4 to 3",
            "30s",
            "1",
            "x.2"
        ]
    );
}

#[test]
fn resource_quota_and_pod_template() {
    assert_eq!(headers("ResourceQuota", true), "NAME REQUEST LIMIT AGE");
    let rq = json!({"metadata": meta("q", 5),
                    "status": {"hard": {"pods": "10", "requests.cpu": "1000m", "limits.memory": "2048Mi"},
                               "used": {"pods": "2", "requests.cpu": "500m"}}});
    assert_eq!(
        shown("ResourceQuota", &rq),
        [
            "q",
            "pods: 2/10, requests.cpu: 500m/1",
            "limits.memory: 0/2Gi",
            "5s"
        ]
    );

    assert_eq!(
        headers("PodTemplate", true),
        "NAME CONTAINERS IMAGES POD LABELS"
    );
    let pt = json!({"metadata": meta("t", 5),
                    "template": {"metadata": {"labels": {"app": "x"}},
                                 "spec": {"containers": [{"name": "a", "image": "nginx:1.27"}, {"name": "b", "image": "busybox"}]}}});
    assert_eq!(
        shown("PodTemplate", &pt),
        ["t", "a,b", "nginx:1.27,busybox", "app=x"]
    );
}

// ---- workloads --------------------------------------------------------------

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
}

#[test]
fn deployment() {
    assert_eq!(
        headers("Deployment", false),
        "NAME READY UP-TO-DATE AVAILABLE AGE"
    );
    assert_eq!(
        headers("Deployment", true),
        "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"
    );
    let d = json!({
        "metadata": meta("web", 19 * 60),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        row("Deployment", &d),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("19m"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );
    // replicas defaults to 1; an empty selector prints as nothing, not <none>.
    let bare = json!({"metadata": meta("d", 5), "spec": {"selector": {}}});
    assert_eq!(
        shown_wide("Deployment", &bare),
        ["d", "0/1", "0", "0", "5s", "", "", ""]
    );
    let bad = json!({"metadata": meta("d", 5),
                     "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
    assert_eq!(shown_wide("Deployment", &bad)[7], "<invalid>");
}

#[test]
fn replica_set_and_replication_controller() {
    assert_eq!(
        headers("ReplicaSet", false),
        "NAME DESIRED CURRENT READY AGE"
    );
    assert_eq!(
        headers("ReplicaSet", true),
        "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR"
    );
    let rs = json!({
        "metadata": meta("web-7d4", 90),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4"}},
                 "template": template()},
        "status": {"replicas": 3, "readyReplicas": 1}
    });
    assert_eq!(
        row("ReplicaSet", &rs),
        [
            json!("web-7d4"),
            json!(3),
            json!(3),
            json!(1),
            json!("90s"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,pod-template-hash=7d4")
        ]
    );

    assert_eq!(
        headers("ReplicationController", false),
        "NAME DESIRED CURRENT READY AGE"
    );
    let rc = json!({"metadata": meta("rc", 5), "spec": {"replicas": 0, "selector": {"app": "x"}}});
    assert_eq!(
        shown_wide("ReplicationController", &rc),
        ["rc", "0", "0", "0", "5s", "", "", "app=x"]
    );
}

#[test]
fn stateful_set() {
    assert_eq!(headers("StatefulSet", false), "NAME READY AGE");
    assert_eq!(
        headers("StatefulSet", true),
        "NAME READY AGE CONTAINERS IMAGES"
    );
    let sts = json!({"metadata": meta("db", 8 * 60 + 19), "spec": {"replicas": 1, "template": template()},
                     "status": {"readyReplicas": 1}});
    assert_eq!(
        shown_wide("StatefulSet", &sts),
        ["db", "1/1", "8m19s", "nginx,log", "nginx:1.27,busybox"]
    );
}

#[test]
fn daemon_set() {
    assert_eq!(
        headers("DaemonSet", false),
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert_eq!(
        headers("DaemonSet", true),
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR"
    );
    let mut tmpl = template();
    tmpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    let ds = json!({
        "metadata": meta("proxy", 86400),
        "spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}}, "template": tmpl},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    assert_eq!(
        shown_wide("DaemonSet", &ds),
        [
            "proxy",
            "3",
            "3",
            "2",
            "3",
            "2",
            "kubernetes.io/os=linux",
            "24h",
            "nginx,log",
            "nginx:1.27,busybox",
            "k8s-app=proxy"
        ]
    );
    let bare = json!({"metadata": meta("d", 5)});
    assert_eq!(shown("DaemonSet", &bare)[6], "<none>");
}

#[test]
fn job() {
    assert_eq!(
        headers("Job", false),
        "NAME STATUS COMPLETIONS DURATION AGE"
    );
    assert_eq!(
        headers("Job", true),
        "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"
    );
    let complete = json!({
        "metadata": meta("pi", 600),
        "spec": {"completions": 1, "parallelism": 1,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                 "template": template()},
        "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(600 - 17),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                  {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        shown_wide("Job", &complete),
        [
            "pi",
            "Complete",
            "1/1",
            "17s",
            "10m",
            "nginx,log",
            "nginx:1.27,busybox",
            "batch.kubernetes.io/controller-uid=abc"
        ]
    );

    let running = json!({"metadata": meta("work", 400),
                         "spec": {"parallelism": 4},
                         "status": {"succeeded": 2, "active": 2, "startTime": ago(312)}});
    assert_eq!(
        shown("Job", &running),
        ["work", "Running", "2/1 of 4", "5m12s", "6m40s"]
    );

    let failed = json!({"metadata": meta("f", 5), "spec": {"completions": 3},
                        "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
    assert_eq!(shown("Job", &failed), ["f", "Failed", "0/3", "", "5s"]);

    let suspended = json!({"metadata": meta("s", 5),
                           "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(shown("Job", &suspended)[1..3], ["Suspended", "0/1"]);

    let mut terminating = suspended.clone();
    terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(shown("Job", &terminating)[1], "Terminating");

    let failure_target = json!({"metadata": meta("t", 5),
                                "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
    assert_eq!(shown("Job", &failure_target)[1], "FailureTarget");
}

#[test]
fn cron_job() {
    assert_eq!(
        headers("CronJob", false),
        "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE"
    );
    assert_eq!(
        headers("CronJob", true),
        "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE CONTAINERS IMAGES SELECTOR"
    );
    let cj = json!({
        "metadata": meta("backup", 3 * 86400),
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": false,
                 "jobTemplate": {"spec": {"template": template()}}},
        "status": {"active": [{"name": "backup-1"}], "lastScheduleTime": ago(150)}
    });
    assert_eq!(
        row("CronJob", &cj),
        [
            json!("backup"),
            json!("*/5 * * * *"),
            json!("Etc/UTC"),
            json!("False"),
            json!(1),
            json!("2m30s"),
            json!("3d"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("<none>")
        ]
    );
    let never = json!({"metadata": meta("n", 5), "spec": {"schedule": "@daily", "suspend": true}});
    assert_eq!(
        shown("CronJob", &never),
        ["n", "@daily", "<none>", "True", "0", "<none>", "5s"]
    );
}

#[test]
fn controller_revision_and_pdb() {
    assert_eq!(
        headers("ControllerRevision", true),
        "NAME CONTROLLER REVISION AGE"
    );
    let cr = json!({"metadata": {"name": "proxy-5f7", "creationTimestamp": ago(5),
                                 "ownerReferences": [
                                     {"apiVersion": "v1", "kind": "Pod", "name": "x"},
                                     {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "proxy", "controller": true}]},
                    "revision": 2});
    assert_eq!(
        row("ControllerRevision", &cr),
        [
            json!("proxy-5f7"),
            json!("daemonset.apps/proxy"),
            json!(2),
            json!("5s")
        ]
    );

    assert_eq!(
        headers("PodDisruptionBudget", true),
        "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE"
    );
    let pdb = json!({"metadata": meta("web", 5), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        shown("PodDisruptionBudget", &pdb),
        ["web", "2", "N/A", "1", "5s"]
    );
    let pct = json!({"metadata": meta("db", 5), "spec": {"maxUnavailable": "25%"}});
    assert_eq!(
        shown("PodDisruptionBudget", &pct),
        ["db", "N/A", "25%", "0", "5s"]
    );
}

// ---- storage ----------------------------------------------------------------

#[test]
fn persistent_volume() {
    assert_eq!(
        headers("PersistentVolume", false),
        "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE"
    );
    assert!(headers("PersistentVolume", true).ends_with("AGE VOLUMEMODE"));
    let pv = json!({
        "metadata": meta("pv-1", 3600),
        "spec": {"capacity": {"storage": "10240Mi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local",
                 "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Block"},
        "status": {"phase": "Bound"}
    });
    assert_eq!(
        shown_wide("PersistentVolume", &pv),
        [
            "pv-1",
            "10Gi",
            "RWO,ROX",
            "Delete",
            "Bound",
            "default/data",
            "local",
            "<unset>",
            "",
            "60m",
            "Block"
        ]
    );
    let mut released = json!({"metadata": meta("pv-2", 5),
                              "spec": {"capacity": {"storage": "1Gi"}}});
    released["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "old"});
    released["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(
        shown_wide("PersistentVolume", &released),
        [
            "pv-2",
            "1Gi",
            "",
            "Retain",
            "Terminating",
            "",
            "old",
            "<unset>",
            "",
            "5s",
            "Filesystem"
        ]
    );
}

#[test]
fn persistent_volume_claim() {
    assert_eq!(
        headers("PersistentVolumeClaim", false),
        "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE"
    );
    let bound = json!({
        "metadata": meta("data", 7200),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "standard", "volumeName": "pvc-123"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    });
    assert_eq!(
        shown_wide("PersistentVolumeClaim", &bound),
        [
            "data",
            "Bound",
            "pvc-123",
            "1Gi",
            "RWO",
            "standard",
            "<unset>",
            "120m",
            "Filesystem"
        ]
    );
    let pending = json!({"metadata": meta("new", 5),
                         "spec": {"resources": {"requests": {"storage": "5Gi"}}}});
    assert_eq!(
        shown_wide("PersistentVolumeClaim", &pending),
        [
            "new",
            "Pending",
            "",
            "",
            "",
            "",
            "<unset>",
            "5s",
            "Filesystem"
        ]
    );
}

#[test]
fn storage_class() {
    assert_eq!(
        headers("StorageClass", true),
        "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"
    );
    let sc = json!({
        "metadata": {"name": "standard", "creationTimestamp": ago(86400 * 10),
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer"
    });
    assert_eq!(
        row("StorageClass", &sc),
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false),
            json!("10d")
        ]
    );
    let other = json!({"metadata": meta("fast", 5), "provisioner": "csi.example.com",
                       "reclaimPolicy": "Retain", "allowVolumeExpansion": true});
    assert_eq!(
        shown("StorageClass", &other),
        [
            "fast",
            "csi.example.com",
            "Retain",
            "Immediate",
            "true",
            "5s"
        ]
    );
}

// ---- cluster ----------------------------------------------------------------

#[test]
fn lease_bindings_priority_runtime_webhooks() {
    assert_eq!(headers("Lease", true), "NAME HOLDER AGE");
    let lease =
        json!({"metadata": meta("node-1", 86400 * 3), "spec": {"holderIdentity": "node-1"}});
    assert_eq!(shown("Lease", &lease), ["node-1", "node-1", "3d"]);

    assert_eq!(headers("RoleBinding", false), "NAME ROLE AGE");
    assert_eq!(
        headers("ClusterRoleBinding", true),
        "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS"
    );
    let rb = json!({"metadata": meta("admins", 5),
                    "roleRef": {"kind": "ClusterRole", "name": "admin", "apiGroup": "rbac.authorization.k8s.io"},
                    "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                                 {"kind": "Group", "name": "ops"},
                                 {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]});
    assert_eq!(
        shown_wide("RoleBinding", &rb),
        [
            "admins",
            "ClusterRole/admin",
            "5s",
            "alice, bob",
            "ops",
            "build/ci"
        ]
    );

    assert_eq!(
        headers("PriorityClass", false),
        "NAME VALUE GLOBAL-DEFAULT AGE PREEMPTIONPOLICY"
    );
    let pc = json!({"metadata": meta("system-node-critical", 5), "value": 2000001000});
    assert_eq!(
        row("PriorityClass", &pc),
        [
            json!("system-node-critical"),
            json!(2000001000),
            json!(false),
            json!("5s"),
            json!("PreemptLowerPriority")
        ]
    );

    assert_eq!(headers("RuntimeClass", true), "NAME HANDLER AGE");
    let rc = json!({"metadata": meta("gvisor", 5), "handler": "runsc"});
    assert_eq!(shown("RuntimeClass", &rc), ["gvisor", "runsc", "5s"]);

    assert_eq!(
        headers("ValidatingWebhookConfiguration", true),
        "NAME WEBHOOKS AGE"
    );
    let wh = json!({"metadata": meta("policy", 5), "webhooks": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(
        row("MutatingWebhookConfiguration", &wh),
        [json!("policy"), json!(2), json!("5s")]
    );
}

// ---- generic and unknown kinds ----------------------------------------------

#[test]
fn generic_and_custom_kinds() {
    assert_eq!(headers("ClusterRole", true), "NAME CREATED AT");
    let role = json!({"metadata": {"name": "view", "creationTimestamp": "2024-04-01T08:30:00Z"}});
    assert_eq!(
        shown("ClusterRole", &role),
        ["view", "2024-04-01T08:30:00Z"]
    );
    assert_eq!(
        shown("Role", &json!({"metadata": {"name": "r"}})),
        ["r", "0001-01-01T00:00:00Z"]
    );

    assert_eq!(headers("Widget", true), "NAME AGE");
    assert_eq!(columns("Widget")[1].type_, "date");
    let widget = json!({"metadata": meta("w", 65)});
    assert_eq!(shown("Widget", &widget), ["w", "65s"]);
    assert_eq!(
        shown("Widget", &json!({"metadata": {"name": "x"}})),
        ["x", "<unknown>"]
    );
}

// ---- the Table --------------------------------------------------------------

#[test]
fn table_shape_and_include_object() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cfg", "namespace": "default", "resourceVersion": "7",
                                 "creationTimestamp": ago(30)},
                    "data": {"k": "v"}});
    let t = table("ConfigMap", std::slice::from_ref(&cm), now(), "Metadata");
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
               "description": super::format::NAME_DESCRIPTION, "priority": 0})
    );
    assert_eq!(t["columnDefinitions"][2]["name"], "Age");
    assert_eq!(t["rows"][0]["cells"], json!(["cfg", 1, "30s"]));
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]})
    );
    assert!(t["rows"][0].get("conditions").is_none());

    let t = table("ConfigMap", std::slice::from_ref(&cm), now(), "Object");
    assert_eq!(t["rows"][0]["object"], cm);
    let t = table("ConfigMap", std::slice::from_ref(&cm), now(), "None");
    assert_eq!(t["rows"][0]["object"], Value::Null);

    let empty = table("Pod", &[], now(), "Metadata");
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["columnDefinitions"].as_array().map(Vec::len), Some(9));
}
