#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use serde_json::json;

use super::*;
use crate::volumes::MapSources;

fn pod(container: serde_json::Value) -> (Pod, Container) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [container]},
        "status": {"podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}], "hostIP": "192.168.1.2"},
    }))
    .unwrap();
    let c = pod.spec.as_ref().unwrap().containers[0].clone();
    (pod, c)
}

fn sources() -> MapSources {
    let s = MapSources::new();
    s.put_config_map(
        serde_json::from_value::<ConfigMap>(json!({
            "metadata": {"name": "cfg", "namespace": "shop"},
            "data": {"MODE": "fast", "LEVEL": "3", "bad=name": "x"},
        }))
        .unwrap(),
    );
    s.put_secret(
        serde_json::from_value::<Secret>(json!({
            "metadata": {"name": "creds", "namespace": "shop"},
            "data": {"PASSWORD": "aHVudGVyMg=="},
        }))
        .unwrap(),
    );
    s
}

fn services() -> Vec<Service> {
    let svc = |ns: &str, name: &str, ip: &str, ports: serde_json::Value| {
        serde_json::from_value::<Service>(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    };
    vec![
        svc(
            "default",
            "kubernetes",
            "10.96.0.1",
            json!([{"name": "https", "port": 443}]),
        ),
        svc(
            "shop",
            "my-db",
            "10.96.0.20",
            json!([{"name": "sql", "port": 5432, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "UDP"}]),
        ),
        svc("shop", "headless", "None", json!([{"port": 80}])),
        svc("other", "elsewhere", "10.96.0.30", json!([{"port": 80}])),
    ]
}

async fn build(container: serde_json::Value) -> Result<Environment, EnvError> {
    let (pod, c) = pod(container);
    let allocatable = Allocatable::default();
    let services = services();
    container_env(
        &sources(),
        &EnvContext {
            pod: &pod,
            container: &c,
            allocatable: &allocatable,
            services: &services,
        },
    )
    .await
}

fn get<'a>(env: &'a Environment, name: &str) -> Option<&'a str> {
    env.vars
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn every_source_of_values() {
    let env = build(json!({
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "GREETING", "value": "hello $(CFG_MODE) $$(CFG_MODE) $(UNDEFINED)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "DB", "value": "$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT)"},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
        ],
        "resources": {"limits": {"memory": "64Mi"}},
    }))
    .await
    .unwrap();
    assert_eq!(get(&env, "CFG_MODE"), Some("fast"));
    assert_eq!(get(&env, "CFG_bad=name"), None);
    assert_eq!(env.skipped, vec!["CFG_bad=name".to_string()]);
    assert_eq!(get(&env, "PASSWORD"), Some("hunter2"));
    assert_eq!(
        get(&env, "GREETING"),
        Some("hello fast $(CFG_MODE) $(UNDEFINED)")
    );
    assert_eq!(get(&env, "POD"), Some("web"));
    assert_eq!(get(&env, "IP"), Some("10.1.0.7"));
    assert_eq!(get(&env, "APP"), Some("web"));
    assert_eq!(get(&env, "LEVEL"), Some("3"));
    assert_eq!(get(&env, "PW"), Some("hunter2"));
    assert_eq!(get(&env, "MEM"), Some("64"));
    assert_eq!(get(&env, "DB"), Some("10.96.0.20:5432"));
    assert_eq!(get(&env, "OPT"), None);
    // Pod-defined variables come first, in order; Service variables after.
    let names: Vec<&str> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&names[..3], &["CFG_LEVEL", "CFG_MODE", "PASSWORD"]);
    assert!(
        names.iter().position(|n| *n == "DB")
            < names.iter().position(|n| *n == "KUBERNETES_SERVICE_HOST")
    );
}

#[tokio::test]
async fn service_variables_like_docker_links() {
    let env = build(
        json!({"name": "app", "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]}),
    )
    .await
    .unwrap();
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("mine"));
    assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("443"));
    assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
    assert_eq!(get(&env, "KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
    assert_eq!(get(&env, "MY_DB_SERVICE_HOST"), Some("10.96.0.20"));
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT_METRICS"), Some("9100"));
    assert_eq!(
        get(&env, "MY_DB_PORT_9100_UDP"),
        Some("udp://10.96.0.20:9100")
    );
    assert_eq!(get(&env, "MY_DB_PORT_9100_UDP_PROTO"), Some("udp"));
    assert_eq!(get(&env, "MY_DB_PORT_5432_TCP_PORT"), Some("5432"));
    assert_eq!(get(&env, "MY_DB_PORT_5432_TCP_ADDR"), Some("10.96.0.20"));
    assert_eq!(get(&env, "HEADLESS_SERVICE_HOST"), None);
    assert_eq!(get(&env, "ELSEWHERE_SERVICE_HOST"), None);
}

#[tokio::test]
async fn service_links_off_keeps_the_master_service() {
    let (mut pod, c) = pod(json!({"name": "app"}));
    pod.spec.as_mut().unwrap().enable_service_links = Some(false);
    let vars = service_env(&pod, &services());
    assert!(vars.contains_key("KUBERNETES_SERVICE_HOST"));
    assert!(!vars.contains_key("MY_DB_SERVICE_HOST"));
    let _ = c;
}

#[tokio::test]
async fn missing_references_fail_in_kubelets_words() {
    let err = build(json!({"name": "app", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "couldn't find key nope in ConfigMap shop/cfg"
    );
    let err = build(json!({"name": "app", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "secret \"gone\" not found");
    let err = build(json!({"name": "app", "envFrom": [{"configMapRef": {"name": "gone"}}]}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "configmap \"gone\" not found");
    let ok = build(
        json!({"name": "app", "envFrom": [{"configMapRef": {"name": "gone", "optional": true}}]}),
    )
    .await;
    assert!(ok.is_ok());
}
