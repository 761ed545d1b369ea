//! The decoder against two independent encoders: k8s-pb's prost types (a Rust rendering
//! of the same .proto files) and bodies the real kubectl sent, captured with `-v=9`,
//! whose expected JSON is what the same kubectl printed for `--dry-run=client -o json`.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as net;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

use super::schema::{Message, Shape, Ty, f};
use super::{ProtoError, decode, decoder::Decoder, schema};

// ---------- helpers ----------

/// Wraps an encoded object the way client-go's protobuf serializer does.
fn envelope(api_version: &str, kind: &str, obj: &impl prost::Message) -> Vec<u8> {
    envelope_raw(api_version, kind, obj.encode_to_vec())
}

fn envelope_raw(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

fn strs(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| (*x).to_owned()).collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn qty(x: &str) -> Quantity {
    Quantity { string: s(x) }
}

fn int_port(n: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(n),
        str_val: s(""),
    }
}

fn str_port(name: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(name),
    }
}

/// ObjectMeta as Go writes it: every non-pointer field, zero or not, and an empty Time for
/// the unset creationTimestamp.
fn go_meta(name: &str, label_pairs: &[(&str, &str)]) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: labels(label_pairs),
        ..Default::default()
    }
}

fn decode_ok(body: &[u8]) -> Value {
    match decode(body) {
        Ok(v) => v,
        Err(e) => panic!("decode failed: {e}"),
    }
}

/// Go's JSON writes `"creationTimestamp": null` for the zero Time; the decoder leaves the
/// field out, which means the same.
fn drop_null_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| !(k == "creationTimestamp" && v.is_null()));
            m.values_mut().for_each(drop_null_timestamps);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_null_timestamps),
        _ => {}
    }
}

fn assert_json_eq(got: &Value, want: &Value) {
    assert!(
        got == want,
        "decoded JSON differs\n got: {}\nwant: {}",
        serde_json::to_string_pretty(got).unwrap_or_default(),
        serde_json::to_string_pretty(want).unwrap_or_default()
    );
}

/// Hand-encodes protobuf for bodies no well-behaved encoder would write.
mod raw {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    pub fn key(tag: u32, wire: u8, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | u64::from(wire), out);
    }
    pub fn len(tag: u32, bytes: &[u8], out: &mut Vec<u8>) {
        key(tag, 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    pub fn int(tag: u32, v: u64, out: &mut Vec<u8>) {
        key(tag, 0, out);
        varint(v, out);
    }
}

// ---------- objects built with k8s-pb ----------

/// `kubectl create deployment web --image=busybox --port=80 --replicas=2 -- sleep 1`,
/// with the zero fields Go's encoder writes.
fn kubectl_deployment() -> apps::Deployment {
    let container = core::Container {
        name: s("busybox"),
        image: s("busybox"),
        command: strs(&["sleep", "1"]),
        ports: vec![core::ContainerPort {
            name: s(""),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s(""),
            host_ip: s(""),
        }],
        resources: Some(core::ResourceRequirements::default()),
        working_dir: s(""),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_meta("", &[("app", "web")])),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: s(""),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    service_account: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    hostname: s(""),
                    subdomain: s(""),
                    scheduler_name: s(""),
                    priority_class_name: s(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_as_kubectl_makes_it() {
    let body = envelope("apps/v1", "Deployment", &kubectl_deployment());
    let got = decode_ok(&body);
    // What `kubectl create deployment … --dry-run=client -o json` prints, less the null
    // creationTimestamps.
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "busybox",
                    "image": "busybox",
                    "command": ["sleep", "1"],
                    "ports": [{"containerPort": 80}],
                    "resources": {}
                }]}
            },
            "strategy": {}
        },
        "status": {}
    });
    assert_json_eq(&got, &want);
    let typed: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(got).expect("k8s-openapi reads the decoded Deployment");
    assert_eq!(typed.spec.and_then(|s| s.replicas), Some(2));
}

#[test]
fn configmap_with_data_and_binary_data() {
    let cm = core::ConfigMap {
        metadata: Some(go_meta("cfg", &[])),
        data: labels(&[("a", "b"), ("empty", "")]),
        binary_data: [("bin".to_owned(), vec![0u8, 1, 2, 0xff])].into(),
        immutable: Some(false),
    };
    let got = decode_ok(&envelope("v1", "ConfigMap", &cm));
    let want = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a": "b", "empty": ""},
        "binaryData": {"bin": "AAEC/w=="},
        // immutable is a *bool: an explicit false is meaningful and kept.
        "immutable": false
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(got)
        .expect("k8s-openapi reads the decoded ConfigMap");
}

#[test]
fn secret() {
    let secret = core::Secret {
        metadata: Some(go_meta("creds", &[])),
        immutable: None,
        data: [
            ("user".to_owned(), b"admin".to_vec()),
            ("pass".to_owned(), b"s3cr3t".to_vec()),
        ]
        .into(),
        string_data: labels(&[("note", "plain")]),
        r#type: s("Opaque"),
    };
    let got = decode_ok(&envelope("v1", "Secret", &secret));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"user": "YWRtaW4=", "pass": "czNjcjN0"},
        "stringData": {"note": "plain"},
        "type": "Opaque"
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(got)
        .expect("k8s-openapi reads the decoded Secret");
}

#[test]
fn secret_tls_and_empty_type() {
    let secret = core::Secret {
        metadata: Some(go_meta("tls", &[])),
        data: [
            ("tls.crt".to_owned(), b"CERT".to_vec()),
            ("tls.key".to_owned(), Vec::new()),
        ]
        .into(),
        r#type: s("kubernetes.io/tls"),
        ..Default::default()
    };
    let got = decode_ok(&envelope("v1", "Secret", &secret));
    assert_eq!(got["data"], json!({"tls.crt": "Q0VSVA==", "tls.key": ""}));
    assert_eq!(got["type"], "kubernetes.io/tls");
}

#[test]
fn nodeport_service_with_int_and_string_target_ports() {
    let svc = core::Service {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("80-8080"),
                    protocol: s("TCP"),
                    app_protocol: None,
                    port: Some(80),
                    target_port: Some(int_port(8080)),
                    node_port: Some(30080),
                },
                core::ServicePort {
                    name: s("81-web"),
                    protocol: s("TCP"),
                    app_protocol: s("http"),
                    port: Some(81),
                    target_port: Some(str_port("web")),
                    node_port: Some(0),
                },
                // Go writes an unset (non-pointer) targetPort as int 0.
                core::ServicePort {
                    name: s(""),
                    protocol: s(""),
                    port: Some(82),
                    target_port: Some(int_port(0)),
                    node_port: Some(0),
                    ..Default::default()
                },
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s(""),
            cluster_ips: strs(&["10.0.0.7"]),
            r#type: s("NodePort"),
            external_ips: strs(&["192.0.2.1"]),
            session_affinity: s("ClientIP"),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(600),
                }),
            }),
            external_traffic_policy: s("Local"),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ip_families: strs(&["IPv4"]),
            ip_family_policy: s("SingleStack"),
            load_balancer_ip: s(""),
            external_name: s(""),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let got = decode_ok(&envelope("v1", "Service", &svc));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "ports": [
                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "81-web", "protocol": "TCP", "appProtocol": "http", "port": 81, "targetPort": "web"},
                {"port": 82}
            ],
            "selector": {"app": "web"},
            "clusterIPs": ["10.0.0.7"],
            "type": "NodePort",
            "externalIPs": ["192.0.2.1"],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "externalTrafficPolicy": "Local",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack"
        },
        "status": {"loadBalancer": {}}
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(got)
        .expect("k8s-openapi reads the decoded Service");
}

#[test]
fn cronjob() {
    let cj = batch::CronJob {
        metadata: Some(go_meta("nightly", &[])),
        spec: Some(batch::CronJobSpec {
            schedule: s("*/5 * * * *"),
            time_zone: s("Etc/UTC"),
            starting_deadline_seconds: Some(120),
            concurrency_policy: s("Forbid"),
            suspend: Some(false),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(go_meta("nightly", &[])),
                spec: Some(batch::JobSpec {
                    backoff_limit: Some(2),
                    ttl_seconds_after_finished: Some(3600),
                    template: Some(core::PodTemplateSpec {
                        metadata: Some(go_meta("", &[])),
                        spec: Some(core::PodSpec {
                            containers: vec![core::Container {
                                name: s("job"),
                                image: s("busybox"),
                                command: strs(&["echo", "hi"]),
                                resources: Some(core::ResourceRequirements::default()),
                                ..Default::default()
                            }],
                            restart_policy: s("OnFailure"),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            }),
        }),
        status: Some(batch::CronJobStatus {
            active: vec![],
            last_schedule_time: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            last_successful_time: None,
        }),
    };
    let got = decode_ok(&envelope("batch/v1", "CronJob", &cj));
    let want = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "*/5 * * * *",
            "timeZone": "Etc/UTC",
            "startingDeadlineSeconds": 120,
            "concurrencyPolicy": "Forbid",
            "suspend": false,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"name": "nightly"},
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 3600,
                    "template": {
                        "metadata": {},
                        "spec": {
                            "containers": [{
                                "name": "job",
                                "image": "busybox",
                                "command": ["echo", "hi"],
                                "resources": {}
                            }],
                            "restartPolicy": "OnFailure"
                        }
                    }
                }
            }
        },
        "status": {"lastScheduleTime": "2023-11-14T22:13:20Z"}
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::batch::v1::CronJob>(got)
        .expect("k8s-openapi reads the decoded CronJob");
}

/// A Job whose pod uses most of PodSpec and Container: the parts kubectl's generators
/// never set but a client-go program might.
#[test]
fn job_with_a_full_pod_spec() {
    let http_probe = core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: Some(str_port("http")),
                host: s(""),
                scheme: s("HTTPS"),
                http_headers: vec![core::HttpHeader {
                    name: s("X-Probe"),
                    value: s("1"),
                }],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        timeout_seconds: Some(0),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(3),
        termination_grace_period_seconds: Some(0),
    };
    let container = core::Container {
        name: s("app"),
        image: s("registry.example/app:1"),
        args: strs(&["--flag"]),
        working_dir: s("/srv"),
        ports: vec![core::ContainerPort {
            name: s("http"),
            container_port: Some(8443),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env_from: vec![
            core::EnvFromSource {
                prefix: s("CM_"),
                config_map_ref: Some(core::ConfigMapEnvSource {
                    local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                    optional: Some(true),
                }),
                secret_ref: None,
            },
            core::EnvFromSource {
                prefix: s(""),
                config_map_ref: None,
                secret_ref: Some(core::SecretEnvSource {
                    local_object_reference: Some(core::LocalObjectReference { name: s("sec") }),
                    optional: None,
                }),
            },
        ],
        env: vec![
            core::EnvVar {
                name: s("PLAIN"),
                value: s("v"),
                value_from: None,
            },
            core::EnvVar {
                name: s("FROM_CM"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                        key: s("k"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            core::EnvVar {
                name: s("POD_IP"),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        api_version: s("v1"),
                        field_path: s("status.podIP"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            core::EnvVar {
                name: s("MEM"),
                value_from: Some(core::EnvVarSource {
                    resource_field_ref: Some(core::ResourceFieldSelector {
                        container_name: s("app"),
                        resource: s("limits.memory"),
                        divisor: Some(qty("1Mi")),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            core::EnvVar {
                name: s("TOKEN"),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("sec") }),
                        key: s("token"),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".to_owned(), qty("500m")),
                ("memory".to_owned(), qty("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_owned(), qty("100m"))].into(),
            claims: vec![core::ResourceClaim {
                name: s("gpu"),
                request: s(""),
            }],
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("data"),
            read_only: Some(true),
            mount_path: s("/data"),
            sub_path: s(""),
            mount_propagation: None,
            sub_path_expr: s(""),
            recursive_read_only: None,
        }],
        liveness_probe: Some(http_probe),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: Some(int_port(8443)),
                    host: s(""),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        startup_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                grpc: Some(core::GrpcAction {
                    port: Some(9090),
                    service: s("health"),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        lifecycle: Some(core::Lifecycle {
            post_start: Some(core::LifecycleHandler {
                exec: Some(core::ExecAction {
                    command: strs(&["sh", "-c", "true"]),
                }),
                ..Default::default()
            }),
            pre_stop: Some(core::LifecycleHandler {
                sleep: Some(core::SleepAction { seconds: Some(5) }),
                ..Default::default()
            }),
            stop_signal: None,
        }),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(core::SecurityContext {
            capabilities: Some(core::Capabilities {
                add: strs(&["NET_ADMIN"]),
                drop: strs(&["ALL"]),
            }),
            privileged: Some(false),
            run_as_user: Some(1000),
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            seccomp_profile: Some(core::SeccompProfile {
                r#type: s("RuntimeDefault"),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        stdin: Some(false),
        tty: Some(true),
        ..Default::default()
    };
    let volumes = vec![
        core::Volume {
            name: s("data"),
            volume_source: Some(core::VolumeSource {
                empty_dir: Some(core::EmptyDirVolumeSource {
                    medium: s("Memory"),
                    size_limit: Some(qty("64Mi")),
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("host"),
            volume_source: Some(core::VolumeSource {
                host_path: Some(core::HostPathVolumeSource {
                    path: s("/var/log"),
                    r#type: s("Directory"),
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("cm"),
            volume_source: Some(core::VolumeSource {
                config_map: Some(core::ConfigMapVolumeSource {
                    local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                    items: vec![core::KeyToPath {
                        key: s("k"),
                        path: s("k.txt"),
                        mode: Some(0o400),
                    }],
                    default_mode: Some(0o644),
                    optional: None,
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("sec"),
            volume_source: Some(core::VolumeSource {
                secret: Some(core::SecretVolumeSource {
                    secret_name: s("sec"),
                    items: vec![],
                    default_mode: Some(0o600),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("pvc"),
            volume_source: Some(core::VolumeSource {
                persistent_volume_claim: Some(core::PersistentVolumeClaimVolumeSource {
                    claim_name: s("claim"),
                    read_only: Some(false),
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("podinfo"),
            volume_source: Some(core::VolumeSource {
                downward_api: Some(core::DownwardAPIVolumeSource {
                    items: vec![core::DownwardAPIVolumeFile {
                        path: s("labels"),
                        field_ref: Some(core::ObjectFieldSelector {
                            api_version: s("v1"),
                            field_path: s("metadata.labels"),
                        }),
                        resource_field_ref: None,
                        mode: None,
                    }],
                    default_mode: None,
                }),
                ..Default::default()
            }),
        },
        core::Volume {
            name: s("proj"),
            volume_source: Some(core::VolumeSource {
                projected: Some(core::ProjectedVolumeSource {
                    sources: vec![
                        core::VolumeProjection {
                            service_account_token: Some(core::ServiceAccountTokenProjection {
                                audience: s(""),
                                expiration_seconds: Some(3607),
                                path: s("token"),
                            }),
                            ..Default::default()
                        },
                        core::VolumeProjection {
                            config_map: Some(core::ConfigMapProjection {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("kube-root-ca.crt"),
                                }),
                                items: vec![core::KeyToPath {
                                    key: s("ca.crt"),
                                    path: s("ca.crt"),
                                    mode: None,
                                }],
                                optional: None,
                            }),
                            ..Default::default()
                        },
                    ],
                    default_mode: Some(420),
                }),
                ..Default::default()
            }),
        },
    ];
    let term = |key: &str, values: &[&str]| core::NodeSelectorTerm {
        match_expressions: vec![core::NodeSelectorRequirement {
            key: s(key),
            operator: s("In"),
            values: strs(values),
        }],
        match_fields: vec![],
    };
    let pod_term = |app: &str| core::PodAffinityTerm {
        label_selector: Some(meta::LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![meta::LabelSelectorRequirement {
                key: s("app"),
                operator: s("In"),
                values: strs(&[app]),
            }],
        }),
        namespaces: vec![],
        topology_key: s("kubernetes.io/hostname"),
        namespace_selector: None,
        match_label_keys: vec![],
        mismatch_label_keys: vec![],
    };
    let spec = core::PodSpec {
        volumes,
        init_containers: vec![core::Container {
            name: s("init"),
            image: s("busybox"),
            restart_policy: s("Always"),
            resources: Some(core::ResourceRequirements::default()),
            ..Default::default()
        }],
        containers: vec![container],
        restart_policy: s("Never"),
        termination_grace_period_seconds: Some(30),
        active_deadline_seconds: Some(600),
        dns_policy: s("ClusterFirst"),
        node_selector: labels(&[("kubernetes.io/os", "linux")]),
        service_account_name: s("runner"),
        automount_service_account_token: Some(false),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(true),
        share_process_namespace: Some(true),
        security_context: Some(core::PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            fs_group: Some(2000),
            supplemental_groups: vec![3000, 3001],
            sysctls: vec![core::Sysctl {
                name: s("net.ipv4.ip_unprivileged_port_start"),
                value: s("0"),
            }],
            ..Default::default()
        }),
        image_pull_secrets: vec![core::LocalObjectReference { name: s("regcred") }],
        hostname: s("job-host"),
        subdomain: s(""),
        affinity: Some(core::Affinity {
            node_affinity: Some(core::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(core::NodeSelector {
                    node_selector_terms: vec![term("zone", &["a", "b"])],
                }),
                preferred_during_scheduling_ignored_during_execution: vec![
                    core::PreferredSchedulingTerm {
                        weight: Some(10),
                        preference: Some(term("disk", &["ssd"])),
                    },
                ],
            }),
            pod_affinity: Some(core::PodAffinity {
                required_during_scheduling_ignored_during_execution: vec![pod_term("cache")],
                preferred_during_scheduling_ignored_during_execution: vec![],
            }),
            pod_anti_affinity: Some(core::PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: vec![],
                preferred_during_scheduling_ignored_during_execution: vec![
                    core::WeightedPodAffinityTerm {
                        weight: Some(100),
                        pod_affinity_term: Some(pod_term("job")),
                    },
                ],
            }),
        }),
        scheduler_name: s("default-scheduler"),
        tolerations: vec![
            core::Toleration {
                key: s("node.kubernetes.io/not-ready"),
                operator: s("Exists"),
                value: s(""),
                effect: s("NoExecute"),
                toleration_seconds: Some(300),
            },
            core::Toleration {
                key: s("dedicated"),
                operator: s("Equal"),
                value: s("batch"),
                effect: s("NoSchedule"),
                toleration_seconds: None,
            },
        ],
        host_aliases: vec![core::HostAlias {
            ip: s("10.1.2.3"),
            hostnames: strs(&["db.local"]),
        }],
        priority_class_name: s(""),
        priority: Some(0),
        dns_config: Some(core::PodDnsConfig {
            nameservers: strs(&["1.1.1.1"]),
            searches: vec![],
            options: vec![core::PodDnsConfigOption {
                name: s("ndots"),
                value: s("2"),
            }],
        }),
        overhead: [("cpu".to_owned(), qty("10m"))].into(),
        topology_spread_constraints: vec![core::TopologySpreadConstraint {
            max_skew: Some(1),
            topology_key: s("zone"),
            when_unsatisfiable: s("DoNotSchedule"),
            label_selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "job")]),
                match_expressions: vec![],
            }),
            min_domains: None,
            node_affinity_policy: None,
            node_taints_policy: None,
            match_label_keys: vec![],
        }],
        ..Default::default()
    };
    let job = batch::Job {
        metadata: Some(go_meta("full", &[])),
        spec: Some(batch::JobSpec {
            parallelism: Some(1),
            completions: Some(1),
            backoff_limit: Some(4),
            completion_mode: s("NonIndexed"),
            suspend: Some(false),
            pod_failure_policy: Some(batch::PodFailurePolicy {
                rules: vec![batch::PodFailurePolicyRule {
                    action: s("FailJob"),
                    on_exit_codes: Some(batch::PodFailurePolicyOnExitCodesRequirement {
                        container_name: s("app"),
                        operator: s("In"),
                        values: vec![42, 43],
                    }),
                    on_pod_conditions: vec![],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_meta("", &[("app", "job")])),
                spec: Some(spec),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_ok(&envelope("batch/v1", "Job", &job));
    let volumes_json = json!([
        {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "cm", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k.txt", "mode": 256}], "defaultMode": 420}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 384, "optional": false}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "claim"}},
        {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}]}},
        {"name": "proj", "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
        ], "defaultMode": 420}}
    ]);
    let container_json = json!({
        "name": "app",
        "image": "registry.example/app:1",
        "args": ["--flag"],
        "workingDir": "/srv",
        "ports": [{"name": "http", "containerPort": 8443, "protocol": "TCP"}],
        "envFrom": [
            {"prefix": "CM_", "configMapRef": {"name": "cfg", "optional": true}},
            {"secretRef": {"name": "sec"}}
        ],
        "env": [
            {"name": "PLAIN", "value": "v"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": false}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}}
        ],
        "resources": {
            "limits": {"cpu": "500m", "memory": "128Mi"},
            "requests": {"cpu": "100m"},
            "claims": [{"name": "gpu"}]
        },
        "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTPS", "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "failureThreshold": 3,
            "terminationGracePeriodSeconds": 0
        },
        "readinessProbe": {"tcpSocket": {"port": 8443}},
        "startupProbe": {"grpc": {"port": 9090, "service": "health"}},
        "lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "true"]}},
            "preStop": {"sleep": {"seconds": 5}}
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": false,
            "runAsUser": 1000,
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "tty": true
    });
    let affinity_json = json!({
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
            ]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 10,
                "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
            }]
        },
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]},
            "topologyKey": "kubernetes.io/hostname"
        }]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["job"]}]},
                "topologyKey": "kubernetes.io/hostname"
            }
        }]}
    });
    let pod_spec_json = json!({
        "volumes": volumes_json,
        "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always", "resources": {}}],
        "containers": [container_json],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "activeDeadlineSeconds": 600,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "serviceAccountName": "runner",
        "automountServiceAccountToken": false,
        "hostIPC": true,
        "shareProcessNamespace": true,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 2000,
            "supplementalGroups": [3000, 3001],
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "hostname": "job-host",
        "affinity": affinity_json,
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
        ],
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db.local"]}],
        "priority": 0,
        "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
        "overhead": {"cpu": "10m"},
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "job"}}
        }]
    });
    let want = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "full"},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 4,
            "completionMode": "NonIndexed",
            "suspend": false,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": "app", "operator": "In", "values": [42, 43]}
            }]},
            "template": {
                "metadata": {"labels": {"app": "job"}},
                "spec": pod_spec_json
            }
        }
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(got)
        .expect("k8s-openapi reads the decoded Job");
}

#[test]
fn ingress() {
    let backend = |name: &str, port: Option<i32>, port_name: &str| net::IngressBackend {
        service: Some(net::IngressServiceBackend {
            name: s(name),
            port: Some(net::ServiceBackendPort {
                name: s(port_name),
                number: port,
            }),
        }),
        resource: None,
    };
    let ing = net::Ingress {
        metadata: Some(meta::ObjectMeta {
            annotations: labels(&[("a", "b")]),
            ..go_meta("web", &[])
        }),
        spec: Some(net::IngressSpec {
            ingress_class_name: s("nginx"),
            default_backend: Some(backend("defsvc", Some(80), "")),
            tls: vec![net::IngressTls {
                hosts: strs(&["foo.com"]),
                secret_name: s("my-cert"),
            }],
            rules: vec![
                net::IngressRule {
                    host: s("foo.com"),
                    ingress_rule_value: Some(net::IngressRuleValue {
                        http: Some(net::HttpIngressRuleValue {
                            paths: vec![net::HttpIngressPath {
                                path: s("/bar"),
                                path_type: s("Prefix"),
                                backend: Some(backend("svc1", Some(8080), "")),
                            }],
                        }),
                    }),
                },
                net::IngressRule {
                    host: s(""),
                    ingress_rule_value: Some(net::IngressRuleValue {
                        http: Some(net::HttpIngressRuleValue {
                            paths: vec![net::HttpIngressPath {
                                path: s("/path"),
                                path_type: s("Exact"),
                                backend: Some(backend("svc2", None, "http")),
                            }],
                        }),
                    }),
                },
            ],
        }),
        status: Some(net::IngressStatus {
            load_balancer: Some(net::IngressLoadBalancerStatus { ingress: vec![] }),
        }),
    };
    let got = decode_ok(&envelope("networking.k8s.io/v1", "Ingress", &ing));
    let want = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"a": "b"}},
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "defsvc", "port": {"number": 80}}},
            "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}],
            "rules": [
                {"host": "foo.com", "http": {"paths": [
                    {"path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}
                ]}},
                {"http": {"paths": [
                    {"path": "/path", "pathType": "Exact", "backend": {"service": {"name": "svc2", "port": {"name": "http"}}}}
                ]}}
            ]
        },
        "status": {"loadBalancer": {}}
    });
    assert_json_eq(&got, &want);
    serde_json::from_value::<k8s_openapi::api::networking::v1::Ingress>(got)
        .expect("k8s-openapi reads the decoded Ingress");
}

#[test]
fn namespace_and_service_account() {
    let ns = core::Namespace {
        metadata: Some(go_meta("team-a", &[("team", "a")])),
        spec: Some(core::NamespaceSpec {
            finalizers: strs(&["kubernetes"]),
        }),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let got = decode_ok(&envelope("v1", "Namespace", &ns));
    assert_json_eq(
        &got,
        &json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"team": "a"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {}
        }),
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(got)
        .expect("k8s-openapi reads the decoded Namespace");

    let sa = core::ServiceAccount {
        metadata: Some(go_meta("runner", &[])),
        secrets: vec![core::ObjectReference {
            kind: s(""),
            namespace: s("default"),
            name: s("runner-token"),
            uid: s(""),
            api_version: s(""),
            resource_version: s(""),
            field_path: s(""),
        }],
        image_pull_secrets: vec![core::LocalObjectReference { name: s("regcred") }],
        automount_service_account_token: Some(false),
    };
    let got = decode_ok(&envelope("v1", "ServiceAccount", &sa));
    assert_json_eq(
        &got,
        &json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "runner"},
            "secrets": [{"namespace": "default", "name": "runner-token"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": false
        }),
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(got)
        .expect("k8s-openapi reads the decoded ServiceAccount");
}

#[test]
fn object_meta_in_full() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("owned"),
            generate_name: s("owned-"),
            namespace: s("default"),
            self_link: s(""),
            uid: s("6f1d2c6e-0000-4000-8000-000000000001"),
            resource_version: s("42"),
            generation: Some(3),
            creation_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            deletion_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(999),
            }),
            deletion_grace_period_seconds: Some(0),
            labels: labels(&[("a", "1")]),
            annotations: labels(&[("note", "x")]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("Deployment"),
                name: s("web"),
                uid: s("6f1d2c6e-0000-4000-8000-000000000002"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            finalizers: strs(&["example.com/keep"]),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:data":{".":{},"f:a":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
        }),
        ..Default::default()
    };
    let got = decode_ok(&envelope("v1", "ConfigMap", &cm));
    assert_json_eq(
        &got["metadata"],
        &json!({
            "name": "owned",
            "generateName": "owned-",
            "namespace": "default",
            "uid": "6f1d2c6e-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "generation": 3,
            // The epoch is a real time, not the zero Time.
            "creationTimestamp": "1970-01-01T00:00:00Z",
            // metav1.Time has whole seconds in JSON.
            "deletionTimestamp": "2023-11-14T22:13:20Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"a": "1"},
            "annotations": {"note": "x"},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "6f1d2c6e-0000-4000-8000-000000000002",
                "controller": true,
                "blockOwnerDeletion": false
            }],
            "finalizers": ["example.com/keep"],
            "managedFields": [{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2023-11-14T22:13:20Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:a": {}}}
            }]
        }),
    );
    serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(got)
        .expect("k8s-openapi reads the full ObjectMeta");
}

// ---------- bodies the real kubectl sent ----------

/// `kubectl create …` bodies captured from kubectl 1.32 (`-v=9` hex dump), next to the JSON
/// the same command printed with `--dry-run=client -o json`.
const FIXTURES: &[(&str, &[u8], &str)] = &[
    (
        "configmap",
        include_bytes!("testdata/configmap.pb"),
        include_str!("testdata/configmap.json"),
    ),
    (
        "secret_generic",
        include_bytes!("testdata/secret_generic.pb"),
        include_str!("testdata/secret_generic.json"),
    ),
    (
        "secret_docker",
        include_bytes!("testdata/secret_docker.pb"),
        include_str!("testdata/secret_docker.json"),
    ),
    (
        "namespace",
        include_bytes!("testdata/namespace.pb"),
        include_str!("testdata/namespace.json"),
    ),
    (
        "serviceaccount",
        include_bytes!("testdata/serviceaccount.pb"),
        include_str!("testdata/serviceaccount.json"),
    ),
    (
        "deployment",
        include_bytes!("testdata/deployment.pb"),
        include_str!("testdata/deployment.json"),
    ),
    (
        "deployment_multi",
        include_bytes!("testdata/deployment_multi.pb"),
        include_str!("testdata/deployment_multi.json"),
    ),
    (
        "job",
        include_bytes!("testdata/job.pb"),
        include_str!("testdata/job.json"),
    ),
    (
        "cronjob",
        include_bytes!("testdata/cronjob.pb"),
        include_str!("testdata/cronjob.json"),
    ),
    (
        "job_from_cronjob",
        include_bytes!("testdata/job_from_cronjob.pb"),
        include_str!("testdata/job_from_cronjob.json"),
    ),
    (
        "service_clusterip",
        include_bytes!("testdata/service_clusterip.pb"),
        include_str!("testdata/service_clusterip.json"),
    ),
    (
        "service_clusterip_none",
        include_bytes!("testdata/service_clusterip_none.pb"),
        include_str!("testdata/service_clusterip_none.json"),
    ),
    (
        "service_nodeport",
        include_bytes!("testdata/service_nodeport.pb"),
        include_str!("testdata/service_nodeport.json"),
    ),
    (
        "service_nodeport_fixed",
        include_bytes!("testdata/service_nodeport_fixed.pb"),
        include_str!("testdata/service_nodeport_fixed.json"),
    ),
    (
        "service_loadbalancer",
        include_bytes!("testdata/service_loadbalancer.pb"),
        include_str!("testdata/service_loadbalancer.json"),
    ),
    (
        "service_externalname",
        include_bytes!("testdata/service_externalname.pb"),
        include_str!("testdata/service_externalname.json"),
    ),
    (
        "ingress",
        include_bytes!("testdata/ingress.pb"),
        include_str!("testdata/ingress.json"),
    ),
    (
        "role",
        include_bytes!("testdata/role.pb"),
        include_str!("testdata/role.json"),
    ),
    (
        "clusterrole",
        include_bytes!("testdata/clusterrole.pb"),
        include_str!("testdata/clusterrole.json"),
    ),
    (
        "rolebinding",
        include_bytes!("testdata/rolebinding.pb"),
        include_str!("testdata/rolebinding.json"),
    ),
    (
        "clusterrolebinding",
        include_bytes!("testdata/clusterrolebinding.pb"),
        include_str!("testdata/clusterrolebinding.json"),
    ),
    (
        "quota",
        include_bytes!("testdata/quota.pb"),
        include_str!("testdata/quota.json"),
    ),
    (
        "priorityclass",
        include_bytes!("testdata/priorityclass.pb"),
        include_str!("testdata/priorityclass.json"),
    ),
    (
        "pdb",
        include_bytes!("testdata/pdb.pb"),
        include_str!("testdata/pdb.json"),
    ),
];

#[test]
fn real_kubectl_bodies_decode_to_kubectls_own_json() {
    for (name, body, json_text) in FIXTURES {
        let got = match decode(body) {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        };
        let mut want: Value = serde_json::from_str(json_text).expect("fixture JSON");
        drop_null_timestamps(&mut want);
        assert!(
            got == want,
            "{name}: decoded JSON differs\n got: {}\nwant: {}",
            serde_json::to_string_pretty(&got).unwrap_or_default(),
            serde_json::to_string_pretty(&want).unwrap_or_default()
        );
    }
}

// ---------- errors a user sees ----------

#[test]
fn unknown_field_names_message_tag_and_path() {
    // A container field number no Kubernetes version has used.
    let mut container = Vec::new();
    raw::len(1, b"app", &mut container);
    raw::int(999, 1, &mut container);
    let mut spec = Vec::new();
    raw::len(2, &container, &mut spec);
    let mut pod = Vec::new();
    raw::len(2, &spec, &mut pod);
    let err = decode(&envelope_raw("v1", "Pod", pod)).expect_err("unknown tag");
    let text = err.to_string();
    assert!(
        matches!(&err, ProtoError::UnknownField { message, tag: 999, path }
            if message == "k8s.io.api.core.v1.Container" && path == "spec.containers[0]"),
        "{text}"
    );
    assert!(text.contains("JSON"), "{text}");
}

#[test]
fn envelope_errors() {
    assert!(matches!(decode(b"{\"kind\":1}"), Err(ProtoError::NoMagic)));
    assert!(matches!(decode(b"k8s"), Err(ProtoError::NoMagic)));
    assert!(matches!(
        decode(b"k8s\0"),
        Err(ProtoError::NoTypeMeta("apiVersion"))
    ));
    let err = decode(&envelope_raw("example.com/v1", "Widget", Vec::new())).expect_err("kind");
    assert!(
        err.to_string().contains("Widget") && err.to_string().contains("example.com/v1"),
        "{err}"
    );
    let mut gz = Unknown::decode(&envelope_raw("v1", "ConfigMap", Vec::new())[4..])
        .expect("envelope round trip");
    gz.content_encoding = s("gzip");
    let mut body = b"k8s\0".to_vec();
    body.extend(gz.encode_to_vec());
    assert!(matches!(
        decode(&body),
        Err(ProtoError::UnsupportedEnvelope {
            what: "contentEncoding",
            ..
        })
    ));
    // An unknown envelope field is refused too.
    let mut body = envelope_raw("v1", "ConfigMap", Vec::new());
    raw::len(9, b"x", &mut body);
    assert!(matches!(
        decode(&body),
        Err(ProtoError::UnknownField { tag: 9, .. })
    ));
}

#[test]
fn wrong_wire_type_and_truncation() {
    // ConfigMap.metadata (field 1) sent as a varint.
    let mut cm = Vec::new();
    raw::int(1, 5, &mut cm);
    let err = decode(&envelope_raw("v1", "ConfigMap", cm)).expect_err("wire type");
    assert!(
        matches!(err, ProtoError::WrongWireType { tag: 1, ref path, .. } if path == "metadata"),
        "{err}"
    );
    // A name whose length runs past the end of its message.
    let meta_bytes = vec![0x0a, 0x05, b'a', b'b'];
    let mut cm = Vec::new();
    raw::len(1, &meta_bytes, &mut cm);
    let err = decode(&envelope_raw("v1", "ConfigMap", cm)).expect_err("truncated");
    assert!(matches!(err, ProtoError::Wire { .. }), "{err}");
    // Invalid UTF-8 in a string field.
    let mut meta_bytes = Vec::new();
    raw::len(1, &[0xff, 0xfe], &mut meta_bytes);
    let mut cm = Vec::new();
    raw::len(1, &meta_bytes, &mut cm);
    let err = decode(&envelope_raw("v1", "ConfigMap", cm)).expect_err("utf8");
    assert!(
        matches!(err, ProtoError::InvalidValue { ref path, .. } if path == "metadata.name"),
        "{err}"
    );
}

#[test]
fn bad_special_values_are_refused() {
    // IntOrString type 7.
    let mut ios = Vec::new();
    raw::int(1, 7, &mut ios);
    let mut port = Vec::new();
    raw::int(3, 80, &mut port);
    raw::len(4, &ios, &mut port);
    let mut spec = Vec::new();
    raw::len(1, &port, &mut spec);
    let mut svc = Vec::new();
    raw::len(2, &spec, &mut svc);
    let err = decode(&envelope_raw("v1", "Service", svc)).expect_err("intstr");
    assert!(
        matches!(err, ProtoError::InvalidValue { ref path, .. } if path == "spec.ports[0].targetPort"),
        "{err}"
    );
    // A timestamp past year 9999.
    let mut time = Vec::new();
    raw::int(1, 300_000_000_000, &mut time);
    let mut meta_bytes = Vec::new();
    raw::len(8, &time, &mut meta_bytes);
    let mut cm = Vec::new();
    raw::len(1, &meta_bytes, &mut cm);
    let err = decode(&envelope_raw("v1", "ConfigMap", cm)).expect_err("time");
    assert!(matches!(err, ProtoError::InvalidValue { .. }), "{err}");
    // managedFields whose fieldsV1 is not JSON.
    let mut fields = Vec::new();
    raw::len(1, b"\x01\x02", &mut fields);
    let mut entry = Vec::new();
    raw::len(7, &fields, &mut entry);
    let mut meta_bytes = Vec::new();
    raw::len(17, &entry, &mut meta_bytes);
    let mut cm = Vec::new();
    raw::len(1, &meta_bytes, &mut cm);
    let err = decode(&envelope_raw("v1", "ConfigMap", cm)).expect_err("fieldsV1");
    assert!(
        matches!(err, ProtoError::InvalidValue { ref path, .. } if path == "metadata.managedFields[0].fieldsV1"),
        "{err}"
    );
}

/// A message type that nests itself, to reach the depth cap (no Kubernetes type recurses).
static NESTED: Message = Message {
    name: "test.Nested",
    fields: &[f(1, "child", Ty::Message(&NESTED), Shape::Keep)],
};

#[test]
fn nesting_is_capped() {
    let mut bytes = Vec::new();
    for _ in 0..(super::MAX_DEPTH + 5) {
        let mut outer = Vec::new();
        raw::len(1, &bytes, &mut outer);
        bytes = outer;
    }
    let mut obj = serde_json::Map::new();
    let err = Decoder::default()
        .message(&NESTED, &bytes, &mut obj)
        .expect_err("too deep");
    assert!(matches!(err, ProtoError::TooDeep { .. }), "{err}");

    let mut shallow = Vec::new();
    raw::len(1, &[], &mut shallow);
    let mut outer = Vec::new();
    raw::len(1, &shallow, &mut outer);
    let mut obj = serde_json::Map::new();
    Decoder::default()
        .message(&NESTED, &outer, &mut obj)
        .expect("shallow nesting");
    assert_eq!(Value::Object(obj), json!({"child": {"child": {}}}));
}

static SCALARS: Message = Message {
    name: "test.Scalars",
    fields: &[
        f(1, "i32", Ty::Int32, Shape::Keep),
        f(2, "i64", Ty::Int64, Shape::Keep),
        f(3, "nums", Ty::Int32, Shape::Repeated),
        f(4, "micro", Ty::MicroTime, Shape::Keep),
        f(5, "time", Ty::Time, Shape::Keep),
        f(6, "double", Ty::Double, Shape::Keep),
        f(7, "raw", Ty::RawExtension, Shape::Keep),
        f(8, "child", Ty::Message(&SCALARS), Shape::Keep),
        f(9, "omit", Ty::String, Shape::OmitZero),
    ],
};

#[test]
fn scalars_packing_and_merging() {
    let mut b = Vec::new();
    // Negative int32 arrives sign-extended to ten bytes.
    raw::int(1, (-5i64) as u64, &mut b);
    raw::int(2, (-7i64) as u64, &mut b);
    // Repeated numbers: unpacked, then packed, both accepted and concatenated.
    raw::int(3, 1, &mut b);
    let mut packed = Vec::new();
    raw::varint(2, &mut packed);
    raw::varint(300, &mut packed);
    raw::len(3, &packed, &mut b);
    let mut micro = Vec::new();
    raw::int(1, 1_700_000_000, &mut micro);
    raw::int(2, 123_456_789, &mut micro);
    raw::len(4, &micro, &mut b);
    // A zero Time (empty message) is absent.
    raw::len(5, &[], &mut b);
    raw::key(6, 1, &mut b);
    b.extend_from_slice(&2.5f64.to_le_bytes());
    let mut ext = Vec::new();
    raw::len(1, br#"{"kind":"Thing","n":1}"#, &mut ext);
    raw::len(7, &ext, &mut b);
    // A singular message twice merges; a scalar twice keeps the last.
    let mut c1 = Vec::new();
    raw::int(1, 1, &mut c1);
    raw::int(2, 10, &mut c1);
    raw::len(8, &c1, &mut b);
    let mut c2 = Vec::new();
    raw::int(1, 2, &mut c2);
    raw::len(8, &c2, &mut b);
    // An omitempty string: set, then zeroed, ends absent.
    raw::len(9, b"x", &mut b);
    raw::len(9, b"", &mut b);
    let mut obj = serde_json::Map::new();
    Decoder::default()
        .message(&SCALARS, &b, &mut obj)
        .expect("scalars");
    assert_json_eq(
        &Value::Object(obj),
        &json!({
            "i32": -5,
            "i64": -7,
            "nums": [1, 2, 300],
            "micro": "2023-11-14T22:13:20.123456Z",
            "double": 2.5,
            "raw": {"kind": "Thing", "n": 1},
            "child": {"i32": 2, "i64": 10}
        }),
    );
}

/// Cheap deterministic fuzzing: every corruption of real bodies must come back as a value
/// or an error, never a panic.
#[test]
fn corrupted_bodies_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, body, _) in FIXTURES {
        for _ in 0..300 {
            let mut b = body.to_vec();
            match next() % 3 {
                0 => {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                1 => {
                    let n = (next() as usize) % b.len();
                    b.truncate(n.max(4));
                }
                _ => {
                    let i = 4 + (next() as usize) % (b.len() - 4);
                    b.insert(i, next() as u8);
                }
            }
            let _ = decode(&b);
        }
    }
}

// ---------- the tables themselves ----------

fn all_messages() -> Vec<&'static Message> {
    let mut seen: Vec<&'static Message> = Vec::new();
    let mut todo: Vec<&'static Message> = schema::ROOTS.iter().map(|(_, _, m)| *m).collect();
    while let Some(m) = todo.pop() {
        if seen.iter().any(|s| std::ptr::eq(*s, m)) {
            continue;
        }
        seen.push(m);
        for field in m.fields {
            if let Ty::Message(inner) = field.ty {
                todo.push(inner);
            }
        }
    }
    seen
}

/// The JSON names a message contributes to its object, inlined messages included.
fn json_names(m: &'static Message, out: &mut Vec<&'static str>) {
    for field in m.fields {
        match (field.shape, field.ty) {
            (Shape::Inline, Ty::Message(inner)) => json_names(inner, out),
            _ => out.push(field.json),
        }
    }
}

#[test]
fn tables_are_well_formed() {
    let messages = all_messages();
    assert!(messages.len() > 200, "{} messages", messages.len());
    for m in messages {
        assert!(
            m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
            "{}: tags must be sorted and unique",
            m.name
        );
        for field in m.fields {
            if field.shape == Shape::Inline {
                assert!(
                    matches!(field.ty, Ty::Message(_)) && field.json.is_empty(),
                    "{}: inline field {} must be an unnamed message",
                    m.name,
                    field.tag
                );
            } else {
                assert!(!field.json.is_empty(), "{} field {}", m.name, field.tag);
            }
            if field.shape == Shape::OmitZero {
                assert!(
                    !matches!(field.ty, Ty::Message(_)),
                    "{}: Go never omits a struct",
                    m.name
                );
            }
        }
        let mut names = Vec::new();
        json_names(m, &mut names);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            names.len(),
            "{}: duplicate JSON names",
            m.name
        );
    }
}

#[test]
fn every_root_kind_is_found() {
    for (av, kind, m) in schema::ROOTS {
        let av = if *av == "*" { "v1" } else { av };
        let found = schema::root(av, kind).expect("root");
        assert!(std::ptr::eq(found, *m), "{av} {kind}");
    }
    assert!(schema::root("apps/v1", "ConfigMap").is_none());
    assert!(schema::root("apps/v1", "DeleteOptions").is_some());
}
