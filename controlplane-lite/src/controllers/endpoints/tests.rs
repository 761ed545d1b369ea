#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use serde_json::{Value, json};

use super::legacy::{EndpointsController, OVER_CAPACITY};
use super::slices::{CONTROLLER_NAME, MANAGED_BY, SERVICE_NAME, SliceController};
use super::*;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::{FakeCluster, Reconciler, Requeue};

type PortsAndAddresses = (Vec<(String, i32)>, Vec<String>);
type AddressesAndPorts = (Vec<String>, Vec<(String, i32)>);

struct World {
    cluster: Arc<FakeCluster>,
    slices: SliceController<FakeCluster>,
    endpoints: EndpointsController<FakeCluster>,
}

fn world() -> World {
    let cluster = Arc::new(FakeCluster::new());
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings::default(),
    };
    for (n, zone) in [("n1", "zone-a"), ("n2", "")] {
        let mut labels = json!({"kubernetes.io/hostname": n});
        if !zone.is_empty() {
            labels["topology.kubernetes.io/zone"] = json!(zone);
        }
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": n, "labels": labels}})).unwrap();
        cluster.put(&node);
    }
    World {
        slices: SliceController::new(&ctx),
        endpoints: EndpointsController::new(&ctx),
        cluster,
    }
}

fn service(name: &str, spec: Value) -> Service {
    let mut spec = spec;
    if spec.get("clusterIP").is_none() {
        spec["clusterIP"] = json!("10.96.0.10");
    }
    if spec.get("ports").is_none() {
        spec["ports"] =
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]);
    }
    if spec.get("selector").is_none() {
        spec["selector"] = json!({"app": name});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("svc-{name}"),
                     "labels": {"team": "a"}, "creationTimestamp": "2025-06-01T12:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

/// A pod of app `app` on `node` with `ip`; `ready`, and optionally being deleted.
fn pod(name: &str, app: &str, ip: &str, ready: bool, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "lastTransitionTime": "2025-06-01T12:00:05Z"}]},
    });
    json_patch::merge(&mut p, &extra);
    serde_json::from_value(p).unwrap()
}

impl World {
    async fn sync(&self, svc: &str) {
        let key = ObjectKey::new(Some("ns"), svc);
        assert_eq!(self.slices.reconcile(&key).await.unwrap(), Requeue::Done);
        assert_eq!(self.endpoints.reconcile(&key).await.unwrap(), Requeue::Done);
    }

    fn slices(&self, svc: &str) -> Vec<EndpointSlice> {
        self.cluster
            .list::<EndpointSlice>()
            .into_iter()
            .filter(|s| s.metadata.labels.as_ref().unwrap()[SERVICE_NAME] == svc)
            .collect()
    }

    fn endpoint_of(&self, svc: &str, pod: &str) -> Endpoint {
        self.slices(svc)
            .into_iter()
            .flat_map(|s| s.endpoints)
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some(pod))
            .unwrap()
    }

    fn endpoints(&self, svc: &str) -> Endpoints {
        self.cluster.get(Some("ns"), svc).unwrap()
    }

    fn writes(&self) -> usize {
        self.cluster.writes().len()
    }
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    list.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[tokio::test]
async fn ready_unready_and_terminating_pods() {
    let w = world();
    w.cluster.put(&service("web", json!({})));
    w.cluster.put(&pod("a", "web", "10.0.0.1", true, json!({})));
    w.cluster
        .put(&pod("b", "web", "10.0.0.2", false, json!({})));
    w.cluster.put(&pod(
        "c",
        "web",
        "10.0.0.3",
        true,
        json!({"metadata": {"deletionTimestamp": "2025-06-01T12:01:00Z"}}),
    ));
    // Neither finished nor address-less pods are endpoints; nor other apps.
    w.cluster.put(&pod(
        "done",
        "web",
        "10.0.0.4",
        false,
        json!({"status": {"phase": "Succeeded"}}),
    ));
    w.cluster.put(&pod(
        "new",
        "web",
        "",
        false,
        json!({"status": {"podIPs": null}}),
    ));
    w.cluster
        .put(&pod("other", "api", "10.0.0.9", true, json!({})));
    w.sync("web").await;

    let slices = w.slices("web");
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert_eq!(s.address_type, "IPv4");
    assert!(s.metadata.name.as_deref().unwrap().starts_with("web-"));
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "a");
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", "svc-web")
    );
    let ports = s.ports.as_ref().unwrap();
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(s.endpoints.len(), 3);
    assert_eq!(conditions(&w.endpoint_of("web", "a")), (true, true, false));
    assert_eq!(
        conditions(&w.endpoint_of("web", "b")),
        (false, false, false)
    );
    assert_eq!(conditions(&w.endpoint_of("web", "c")), (false, true, true));
    let a = w.endpoint_of("web", "a");
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.zone.as_deref(), Some("zone-a"));
    assert_eq!(a.addresses, ["10.0.0.1"]);
    assert!(
        s.metadata.annotations.as_ref().unwrap()[TRIGGER_TIME].starts_with("2025-06-01T12:00:")
    );

    // Endpoints: ready under addresses, unready under notReadyAddresses, terminating out.
    let ep = w.endpoints("web");
    let subsets = ep.subsets.unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.2"]);
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    let a = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    assert_eq!(a.target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-a"));
    assert_eq!(ep.metadata.labels.unwrap()["team"], "a");
    assert!(ep.metadata.annotations.unwrap().contains_key(TRIGGER_TIME));

    // Nothing changed: nothing is written.
    let before = w.writes();
    w.sync("web").await;
    assert_eq!(w.writes(), before);

    // A pod becomes ready: one update of each.
    w.cluster.put(&pod("b", "web", "10.0.0.2", true, json!({})));
    w.sync("web").await;
    assert_eq!(w.writes(), before + 2);
    assert_eq!(conditions(&w.endpoint_of("web", "b")), (true, true, false));
    let subsets = w.endpoints("web").subsets.unwrap();
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
}

#[tokio::test]
async fn publish_not_ready_addresses() {
    let w = world();
    w.cluster
        .put(&service("db", json!({"publishNotReadyAddresses": true})));
    w.cluster.put(&pod("a", "db", "10.0.0.1", false, json!({})));
    w.cluster.put(&pod(
        "b",
        "db",
        "10.0.0.2",
        true,
        json!({"metadata": {"deletionTimestamp": "2025-06-01T12:01:00Z"}}),
    ));
    w.sync("db").await;
    assert_eq!(conditions(&w.endpoint_of("db", "a")), (true, false, false));
    assert_eq!(conditions(&w.endpoint_of("db", "b")), (true, true, true));
    let subsets = w.endpoints("db").subsets.unwrap();
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[tokio::test]
async fn named_ports_resolve_per_pod() {
    let w = world();
    w.cluster.put(&service(
        "api",
        json!({"ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": "http"},
                         {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100}]}),
    ));
    w.cluster.put(&pod("a", "api", "10.0.0.1", true, json!({})));
    w.cluster.put(&pod(
        "b",
        "api",
        "10.0.0.2",
        true,
        json!({"spec": {"containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]}]}}),
    ));
    // No port named http: only the numeric port.
    w.cluster.put(&pod(
        "c",
        "api",
        "10.0.0.3",
        true,
        json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": null}]}}),
    ));
    w.sync("api").await;
    let mut sets: Vec<PortsAndAddresses> = w
        .slices("api")
        .into_iter()
        .map(|s| {
            let mut ports: Vec<(String, i32)> = s
                .ports
                .unwrap()
                .into_iter()
                .map(|p| (p.name.unwrap(), p.port.unwrap()))
                .collect();
            ports.sort();
            let addrs = s.endpoints.into_iter().flat_map(|e| e.addresses).collect();
            (ports, addrs)
        })
        .collect();
    sets.sort();
    assert_eq!(
        sets,
        [
            (
                vec![("metrics".to_string(), 9100)],
                vec!["10.0.0.3".to_string()]
            ),
            (
                vec![("metrics".to_string(), 9100), ("web".to_string(), 8080)],
                vec!["10.0.0.1".to_string()]
            ),
            (
                vec![("metrics".to_string(), 9100), ("web".to_string(), 9090)],
                vec!["10.0.0.2".to_string()]
            ),
        ]
    );
    // Endpoints: subsets grouped by the addresses each port reaches.
    let subsets = w.endpoints("api").subsets.unwrap();
    let mut view: Vec<AddressesAndPorts> = subsets
        .iter()
        .map(|s| {
            (
                ips(&s.addresses),
                s.ports
                    .iter()
                    .flatten()
                    .map(|p| (p.name.clone().unwrap(), p.port))
                    .collect(),
            )
        })
        .collect();
    view.sort();
    assert_eq!(
        view,
        [
            (
                vec!["10.0.0.1".to_string()],
                vec![("web".to_string(), 8080)]
            ),
            (
                vec![
                    "10.0.0.1".to_string(),
                    "10.0.0.2".to_string(),
                    "10.0.0.3".to_string()
                ],
                vec![("metrics".to_string(), 9100)]
            ),
            (
                vec!["10.0.0.2".to_string()],
                vec![("web".to_string(), 9090)]
            ),
        ]
    );
}

#[tokio::test]
async fn many_endpoints_split_into_slices_of_a_hundred() {
    let w = world();
    w.cluster.put(&service("big", json!({})));
    for i in 0..250 {
        w.cluster.put(&pod(
            &format!("p{i:03}"),
            "big",
            &format!("10.1.{}.{}", i / 200, i % 200 + 1),
            true,
            json!({}),
        ));
    }
    w.sync("big").await;
    let mut sizes: Vec<usize> = w.slices("big").iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    let total: usize = sizes.iter().sum();
    assert_eq!(total, 250);
    assert_eq!(
        ips(&w.endpoints("big").subsets.unwrap()[0].addresses).len(),
        250
    );

    // Removing pods from one slice rewrites that slice alone.
    let victim = w
        .slices("big")
        .into_iter()
        .find(|s| s.endpoints.len() == 100)
        .unwrap();
    for e in victim.endpoints.iter().take(10) {
        let name = e.target_ref.as_ref().unwrap().name.clone().unwrap();
        w.cluster.remove::<Pod>(Some("ns"), &name);
    }
    let before: Vec<String> = w.cluster.writes();
    w.slices
        .reconcile(&ObjectKey::new(Some("ns"), "big"))
        .await
        .unwrap();
    let new: Vec<String> = w.cluster.writes()[before.len()..].to_vec();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].starts_with("update EndpointSlice ns/big-"));
    let mut sizes: Vec<usize> = w.slices("big").iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 90, 100]);
    // New pods fill the slice that has room before any slice is made.
    for i in 0..5 {
        w.cluster.put(&pod(
            &format!("q{i}"),
            "big",
            &format!("10.2.0.{}", i + 1),
            true,
            json!({}),
        ));
    }
    w.sync("big").await;
    let mut sizes: Vec<usize> = w.slices("big").iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 95, 100]);
}

#[tokio::test]
async fn no_pods_leave_a_placeholder() {
    let w = world();
    w.cluster.put(&service("empty", json!({})));
    w.sync("empty").await;
    let slices = w.slices("empty");
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.is_empty());
    assert!(slices[0].ports.as_ref().is_none_or(Vec::is_empty));
    assert!(w.endpoints("empty").subsets.is_none());
    let before = w.writes();
    w.sync("empty").await;
    assert_eq!(w.writes(), before);
    // A pod arrives: the placeholder is reused rather than replaced.
    w.cluster
        .put(&pod("a", "empty", "10.0.0.1", true, json!({})));
    w.sync("empty").await;
    let slices = w.slices("empty");
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].endpoints.len(), 1);
    assert!(
        w.cluster.writes()[before..]
            .iter()
            .all(|x| !x.starts_with("create EndpointSlice") && !x.starts_with("delete"))
    );
}

#[tokio::test]
async fn services_without_selector_are_left_alone() {
    let w = world();
    let mut svc = service("manual", json!({}));
    svc.spec.as_mut().unwrap().selector = None;
    w.cluster.put(&svc);
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "manual", "namespace": "ns"},
        "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 80, "protocol": "TCP"}]}],
    }))
    .unwrap();
    w.cluster.put(&ep);
    let before = w.writes();
    w.sync("manual").await;
    assert_eq!(w.writes(), before);
    assert!(w.slices("manual").is_empty());
    // Deleting the Service removes its Endpoints.
    w.cluster.remove::<Service>(Some("ns"), "manual");
    w.sync("manual").await;
    assert!(w.cluster.get::<Endpoints>(Some("ns"), "manual").is_none());
}

#[tokio::test]
async fn hostnames_for_the_matching_subdomain() {
    let w = world();
    w.cluster
        .put(&service("db", json!({"clusterIP": "None", "ports": []})));
    w.cluster.put(&pod(
        "db-0",
        "db",
        "10.0.0.1",
        true,
        json!({"spec": {"hostname": "db-0", "subdomain": "db"}}),
    ));
    w.cluster.put(&pod(
        "x",
        "db",
        "10.0.0.2",
        true,
        json!({"spec": {"hostname": "x", "subdomain": "other"}}),
    ));
    w.sync("db").await;
    assert_eq!(
        w.endpoint_of("db", "db-0").hostname.as_deref(),
        Some("db-0")
    );
    assert_eq!(w.endpoint_of("db", "x").hostname, None);
    let slices = w.slices("db");
    // Headless without families: both address types are looked at; only IPv4 has pods.
    assert!(
        slices
            .iter()
            .any(|s| s.address_type == "IPv4" && s.endpoints.len() == 2)
    );
    let labels = slices[0].metadata.labels.clone().unwrap();
    assert_eq!(labels[HEADLESS], "");
    let ep = w.endpoints("db");
    let subsets = ep.subsets.unwrap();
    assert!(subsets[0].ports.is_none());
    let a = subsets[0].addresses.clone().unwrap();
    assert_eq!(a[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(ep.metadata.labels.unwrap()[HEADLESS], "");
}

#[tokio::test]
async fn address_types_follow_families() {
    let w = world();
    w.cluster.put(&service(
        "dual",
        json!({"clusterIP": "10.96.0.20", "ipFamilies": ["IPv4", "IPv6"]}),
    ));
    w.cluster.put(&pod(
        "a",
        "dual",
        "10.0.0.1",
        true,
        json!({"status": {"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}),
    ));
    w.sync("dual").await;
    let mut types: Vec<(String, Vec<String>)> = w
        .slices("dual")
        .into_iter()
        .map(|s| {
            (
                s.address_type,
                s.endpoints.into_iter().flat_map(|e| e.addresses).collect(),
            )
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            ("IPv4".to_string(), vec!["10.0.0.1".to_string()]),
            ("IPv6".to_string(), vec!["fd00::1".to_string()])
        ]
    );
    // Endpoints carry the primary family only.
    assert_eq!(
        ips(&w.endpoints("dual").subsets.unwrap()[0].addresses),
        ["10.0.0.1"]
    );
}

#[tokio::test]
async fn pods_leaving_the_selector_leave_the_slices() {
    let w = world();
    w.cluster.put(&service("web", json!({})));
    w.cluster.put(&pod("a", "web", "10.0.0.1", true, json!({})));
    w.sync("web").await;
    // Relabelled: the pod change names the Service it was in.
    let moved = pod("a", "api", "10.0.0.1", true, json!({}));
    let change = crate::controllers::runtime::Change {
        obj: Arc::new(moved.clone()),
        deleted: false,
    };
    let keys = services_of_pod(
        &w.cluster.informer::<Service>(),
        &w.slices_placements(),
        &change,
    );
    assert_eq!(keys, [ObjectKey::new(Some("ns"), "web")]);
    w.cluster.put(&moved);
    w.sync("web").await;
    assert!(w.slices("web")[0].endpoints.is_empty());
    assert!(w.endpoints("web").subsets.is_none());
}

#[tokio::test]
async fn endpoints_over_capacity_are_truncated() {
    let w = world();
    w.cluster.put(&service("huge", json!({})));
    for i in 0..1005 {
        w.cluster.put(&pod(
            &format!("p{i:04}"),
            "huge",
            &format!("10.3.{}.{}", i / 250, i % 250 + 1),
            i % 2 == 0,
            json!({}),
        ));
    }
    w.endpoints
        .reconcile(&ObjectKey::new(Some("ns"), "huge"))
        .await
        .unwrap();
    let ep = w.endpoints("huge");
    let s = &ep.subsets.unwrap()[0];
    assert_eq!(ips(&s.addresses).len(), 503);
    assert_eq!(ips(&s.not_ready_addresses).len(), 497);
    assert_eq!(ep.metadata.annotations.unwrap()[OVER_CAPACITY], "truncated");
}

impl World {
    fn slices_placements(&self) -> Placements {
        self.slices.placements()
    }
}
