//! `metrics.k8s.io/v1beta1`, served by the API server itself as metrics-server serves it
//! through the aggregation layer: discovery, NodeMetrics (cluster-scoped) and PodMetrics
//! (namespaced), get and list with label and field selectors, read-only.

use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Map, Value, json};

use super::format;
use super::scraper::list_objects;
use super::storage::{MetricsStore, NodeUsage, PodUsage, Usage};
use crate::apiserver::handlers::Api;
use crate::apiserver::object;
use crate::apiserver::registry::{self, ResourceInfo};
use crate::apiserver::response::{self, Response};
use crate::apiserver::route::Query;
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::ApiError;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Whether a request path is this group's.
pub fn handles(path: &str) -> bool {
    path.strip_prefix("/apis/metrics.k8s.io")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn group_version() -> Value {
    json!({"groupVersion": API_VERSION, "version": VERSION})
}

/// The group's entry in `/apis`.
pub fn group_entry() -> Value {
    json!({"name": GROUP, "versions": [group_version()], "preferredVersion": group_version()})
}

fn api_group() -> Value {
    let mut g = group_entry();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// What a path under the group names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Group,
    Resources,
    Nodes(Option<&'a str>),
    /// Namespace (none: all) and name.
    Pods(Option<&'a str>, Option<&'a str>),
}

fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/apis/metrics.k8s.io")?.trim_matches('/');
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    Some(match parts.as_slice() {
        [] => Target::Group,
        [VERSION] => Target::Resources,
        [VERSION, "nodes"] => Target::Nodes(None),
        [VERSION, "nodes", name] => Target::Nodes(Some(name)),
        [VERSION, "pods"] => Target::Pods(None, None),
        [VERSION, "namespaces", ns, "pods"] => Target::Pods(Some(ns), None),
        [VERSION, "namespaces", ns, "pods", name] => Target::Pods(Some(ns), Some(name)),
        _ => return None,
    })
}

fn info(plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    registry::lookup("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError {
        details: Some(json!({"name": name, "group": GROUP, "kind": resource})),
        ..ApiError::new(
            404,
            "NotFound",
            format!("{resource}.{GROUP} \"{name}\" not found"),
        )
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": format::cpu(u.cpu_nano_cores), "memory": format::memory(u.memory_bytes)})
}

/// The metadata metrics-server gives a metrics object: the node's or pod's name,
/// namespace and labels, created now.
fn metadata(obj: &Value, namespaced: bool) -> Value {
    let mut m = Map::new();
    m.insert(
        "name".into(),
        json!(
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
    );
    if namespaced {
        m.insert(
            "namespace".into(),
            json!(
                obj.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
        );
    }
    m.insert("creationTimestamp".into(), json!(format::now()));
    let labels = object::labels(obj);
    if !labels.is_empty() {
        m.insert("labels".into(), json!(labels));
    }
    Value::Object(m)
}

fn node_metrics(node: &Value, u: &NodeUsage) -> Value {
    json!({
        "metadata": metadata(node, false),
        "timestamp": format::time_ms(u.window.timestamp_ms),
        "window": format::go_duration_ms(u.window.window_ms),
        "usage": usage_json(&u.usage),
    })
}

fn pod_metrics(pod: &Value, u: &PodUsage) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|(name, usage)| json!({"name": name, "usage": usage_json(usage)}))
        .collect();
    json!({
        "metadata": metadata(pod, true),
        "timestamp": format::time_ms(u.window.timestamp_ms),
        "window": format::go_duration_ms(u.window.window_ms),
        "containers": containers,
    })
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Sums of the containers' usage, for a pod's Table row.
fn pod_total(item: &Value) -> (u64, u64) {
    let parse = |v: &Value, f: fn(&skiff_api::quantity::Quantity) -> i128| {
        v.as_str()
            .and_then(|s| skiff_api::quantity::Quantity::parse(s).ok())
            .map_or(0, |q| u64::try_from(f(&q)).unwrap_or(0))
    };
    item["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .fold((0, 0), |(cpu, mem), c| {
            (
                cpu + parse(&c["usage"]["cpu"], |q| q.as_nano()),
                mem + parse(&c["usage"]["memory"], |q| i128::from(q.value())),
            )
        })
}

/// metrics-server's Table: name, cpu, memory, window.
fn table(items: &[Value], pods: bool) -> Value {
    let column = |name: &str, format: &str, description: &str| json!({"name": name, "type": "string", "format": format, "description": description, "priority": 0});
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let (cpu, memory) = if pods {
                let (c, m) = pod_total(item);
                (json!(format::cpu(c)), json!(format::memory(m)))
            } else {
                (
                    item["usage"]["cpu"].clone(),
                    item["usage"]["memory"].clone(),
                )
            };
            json!({
                "cells": [item["metadata"]["name"], cpu, memory, item["window"]],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            column("Name", "name", "Name of the resource"),
            column("cpu", "quantity", ""),
            column("memory", "quantity", ""),
            column("Window", "duration", ""),
        ],
        "rows": rows,
    })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn list_reply(kind: &str, items: Vec<Value>, headers: &HeaderMap, pods: bool) -> Response {
    if wants_table(headers) {
        return response::json(StatusCode::OK, &table(&items, pods));
    }
    response::json(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items}),
    )
}

fn object_reply(kind: &str, mut item: Value, headers: &HeaderMap, pods: bool) -> Response {
    if wants_table(headers) {
        return response::json(StatusCode::OK, &table(std::slice::from_ref(&item), pods));
    }
    item["kind"] = json!(kind);
    item["apiVersion"] = json!(API_VERSION);
    response::json(StatusCode::OK, &item)
}

async fn nodes(
    api: &Api,
    store: &MetricsStore,
    name: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let info = info("nodes")?;
    if let Some(name) = name {
        let (node, _) = api
            .read(info, None, name)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let u = store
            .node(name)
            .ok_or_else(|| not_found("nodemetrics", name))?;
        return Ok(object_reply(
            "NodeMetrics",
            node_metrics(&node, &u),
            headers,
            false,
        ));
    }
    let sel = Selectors::from_query(info, query)?;
    let items = node_items(&list_objects(api, info, None).await?, &sel, store);
    Ok(list_reply("NodeMetricsList", items, headers, false))
}

/// The NodeMetrics of the selected nodes that have usage.
fn node_items(nodes: &[Value], sel: &Selectors, store: &MetricsStore) -> Vec<Value> {
    nodes
        .iter()
        .filter(|n| sel.matches(n))
        .filter_map(|n| store.node(name_of(n)).map(|u| node_metrics(n, &u)))
        .collect()
}

/// The PodMetrics of the selected pods that have usage, by namespace and name.
fn pod_items(pods: &[Value], sel: &Selectors, store: &MetricsStore) -> Vec<Value> {
    let mut items: Vec<(&str, &str, Value)> = pods
        .iter()
        .filter(|p| sel.matches(p))
        .filter_map(|p| {
            let (ns, n) = (namespace_of(p), name_of(p));
            let u = store.pod(ns, n)?;
            Some((ns, n, pod_metrics(p, &u)))
        })
        .collect();
    items.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    items.into_iter().map(|(_, _, v)| v).collect()
}

async fn pods(
    api: &Api,
    store: &MetricsStore,
    namespace: Option<&str>,
    name: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let info = info("pods")?;
    if let (Some(ns), Some(name)) = (namespace, name) {
        let (pod, _) = api
            .read(info, Some(ns), name)
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let u = store
            .pod(ns, name)
            .ok_or_else(|| not_found("podmetrics", &format!("{ns}/{name}")))?;
        return Ok(object_reply(
            "PodMetrics",
            pod_metrics(&pod, &u),
            headers,
            true,
        ));
    }
    let sel = Selectors::from_query(info, query)?;
    let items = pod_items(&list_objects(api, info, namespace).await?, &sel, store);
    Ok(list_reply("PodMetricsList", items, headers, true))
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// Answers a request whose path [`handles`] accepted.
pub async fn handle(
    api: &Api,
    store: &MetricsStore,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let Some(target) = target(uri.path()) else {
        return response::error(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if method != Method::GET && method != Method::HEAD {
        return response::error(&method_not_allowed());
    }
    let query = Query::parse(uri.query());
    if query.flag("watch") {
        let resource = match target {
            Target::Nodes(_) => "nodes",
            _ => "pods",
        };
        return response::error(&ApiError::new(
            405,
            "MethodNotAllowed",
            format!("watch is not supported on resources of kind \"{resource}.{GROUP}\""),
        ));
    }
    let result = match target {
        Target::Group => Ok(response::json(StatusCode::OK, &api_group())),
        Target::Resources => Ok(response::json(StatusCode::OK, &resource_list())),
        Target::Nodes(name) => nodes(api, store, name, &query, headers).await,
        Target::Pods(ns, name) => pods(api, store, ns, name, &query, headers).await,
    };
    result.unwrap_or_else(|e| response::error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_api::storage::Window;

    #[test]
    fn paths() {
        assert!(handles("/apis/metrics.k8s.io"));
        assert!(handles("/apis/metrics.k8s.io/v1beta1/nodes"));
        assert!(!handles("/apis/metrics.k8s.io.example/v1"));
        assert!(!handles("/apis/apps/v1"));
        assert_eq!(target("/apis/metrics.k8s.io/"), Some(Target::Group));
        assert_eq!(
            target("/apis/metrics.k8s.io/v1beta1"),
            Some(Target::Resources)
        );
        assert_eq!(
            target("/apis/metrics.k8s.io/v1beta1/nodes/n1"),
            Some(Target::Nodes(Some("n1")))
        );
        assert_eq!(
            target("/apis/metrics.k8s.io/v1beta1/pods"),
            Some(Target::Pods(None, None))
        );
        assert_eq!(
            target("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web"),
            Some(Target::Pods(Some("default"), Some("web")))
        );
        assert_eq!(target("/apis/metrics.k8s.io/v1/nodes"), None);
        assert_eq!(
            target("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web/x"),
            None
        );
    }

    #[test]
    fn objects_as_metrics_server_writes_them() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u"}});
        let u = PodUsage {
            window: Window {
                timestamp_ms: 1_733_400_000_500,
                window_ms: 15_000,
            },
            containers: vec![
                (
                    "app".into(),
                    Usage {
                        cpu_nano_cores: 12_345,
                        memory_bytes: 6_789 * 1024,
                    },
                ),
                (
                    "side".into(),
                    Usage {
                        cpu_nano_cores: 500_000_000,
                        memory_bytes: 1 << 20,
                    },
                ),
            ],
        };
        let v = pod_metrics(&pod, &u);
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
        assert!(v["metadata"].get("uid").is_none());
        assert!(v["metadata"]["creationTimestamp"].is_string());
        assert_eq!(v["timestamp"], "2024-12-05T12:00:00Z");
        assert_eq!(v["window"], "15s");
        assert_eq!(
            v["containers"],
            json!([
                {"name": "app", "usage": {"cpu": "12345n", "memory": "6789Ki"}},
                {"name": "side", "usage": {"cpu": "500m", "memory": "1Mi"}},
            ])
        );
        let t = table(&[v], true);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "500012345n", "7813Ki", "15s"])
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");

        let node = json!({"metadata": {"name": "n1"}});
        let v = node_metrics(
            &node,
            &NodeUsage {
                window: Window {
                    timestamp_ms: 1_733_400_000_000,
                    window_ms: 1_002,
                },
                usage: Usage {
                    cpu_nano_cores: 2_000_000_000,
                    memory_bytes: 3 << 30,
                },
            },
        );
        assert_eq!(v["usage"], json!({"cpu": "2", "memory": "3Gi"}));
        assert_eq!(v["window"], "1.002s");
        assert!(v["metadata"].get("labels").is_none() && v["metadata"].get("namespace").is_none());
    }

    #[test]
    fn discovery_documents() {
        assert_eq!(
            group_entry()["preferredVersion"]["groupVersion"],
            "metrics.k8s.io/v1beta1"
        );
        assert_eq!(api_group()["kind"], "APIGroup");
        let list = resource_list();
        let kinds: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["NodeMetrics", "PodMetrics"]);
    }

    fn store_with(pods: &[(&str, &str)], nodes: &[&str]) -> MetricsStore {
        use crate::metrics_api::parse::{Point, Scrape};
        let store = MetricsStore::new(std::time::Duration::from_secs(1));
        for ms in [1_000, 2_000] {
            let point = |cpu_ms: i64| Point {
                timestamp_ms: 1_733_400_000_000 + ms,
                cpu_ns: (cpu_ms * ms) as u64 * 1_000,
                memory_bytes: 4096,
                start_ms: 1_733_000_000_000,
            };
            for node in nodes {
                let mut s = Scrape {
                    node: Some(point(1_000)),
                    ..Default::default()
                };
                if *node == "n1" {
                    for (ns, name) in pods {
                        s.pods.insert(
                            (ns.to_string(), name.to_string()),
                            [("app".to_string(), point(100))].into(),
                        );
                    }
                }
                store.store(node, s);
            }
        }
        store
    }

    fn selectors(kind: &str, query: &str) -> Result<Selectors, ApiError> {
        Selectors::from_query(info(kind).unwrap(), &Query::parse(Some(query)))
    }

    #[test]
    fn lists_filter_by_selectors_and_skip_what_has_no_usage() {
        let store = store_with(
            &[("default", "web-1"), ("default", "web-2"), ("other", "db")],
            &["n1", "n2"],
        );
        let pod = |ns: &str, name: &str, app: &str| json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": app}}});
        let pods = [
            pod("other", "db", "db"),
            pod("default", "web-2", "web"),
            pod("default", "web-1", "web"),
            pod("default", "idle", "web"),
        ];
        let names = |items: Vec<Value>| -> Vec<String> {
            items
                .iter()
                .map(|i| {
                    format!(
                        "{}/{}",
                        i["metadata"]["namespace"].as_str().unwrap(),
                        i["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let all = pod_items(&pods, &selectors("pods", "").unwrap(), &store);
        assert_eq!(names(all), ["default/web-1", "default/web-2", "other/db"]);
        let web = pod_items(
            &pods,
            &selectors("pods", "labelSelector=app%3Dweb").unwrap(),
            &store,
        );
        assert_eq!(names(web), ["default/web-1", "default/web-2"]);
        let set = pod_items(
            &pods,
            &selectors("pods", "labelSelector=app+in+(db,cache)").unwrap(),
            &store,
        );
        assert_eq!(names(set), ["other/db"]);
        let field = pod_items(
            &pods,
            &selectors("pods", "fieldSelector=metadata.name%3Dweb-2").unwrap(),
            &store,
        );
        assert_eq!(names(field), ["default/web-2"]);
        assert_eq!(
            selectors("pods", "labelSelector=app%3D%3D%3D")
                .err()
                .unwrap()
                .code,
            400
        );

        let nodes = [
            json!({"metadata": {"name": "n2", "labels": {"zone": "b"}}}),
            json!({"metadata": {"name": "n1", "labels": {"zone": "a"}}}),
            json!({"metadata": {"name": "n3", "labels": {"zone": "a"}}}),
        ];
        let zone_a = node_items(
            &nodes,
            &selectors("nodes", "labelSelector=zone%3Da").unwrap(),
            &store,
        );
        assert_eq!(zone_a.len(), 1);
        assert_eq!(zone_a[0]["metadata"]["name"], "n1");
        assert_eq!(zone_a[0]["usage"]["cpu"], "1");
        assert_eq!(
            node_items(&nodes, &selectors("nodes", "").unwrap(), &store).len(),
            2
        );
    }

    #[test]
    fn not_found_in_metrics_servers_words() {
        let e = not_found("podmetrics", "default/web");
        assert_eq!(e.code, 404);
        assert_eq!(
            e.message,
            "podmetrics.metrics.k8s.io \"default/web\" not found"
        );
    }
}
