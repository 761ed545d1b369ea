#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

struct Env {
    cluster: Arc<FakeCluster>,
    c: ServiceLbController<FakeCluster>,
    queue: WorkQueue<ObjectKey>,
}

fn env_on(cluster: Arc<FakeCluster>, pool: &str) -> Env {
    let ctx = Ctx {
        cluster: cluster.clone(),
        informers: Informers::fake(&cluster),
        settings: Settings {
            load_balancer_pool: pool.parse().unwrap(),
            ..Settings::default()
        },
    };
    let queue = WorkQueue::new();
    Env {
        c: ServiceLbController::new(&ctx, queue.clone()),
        cluster,
        queue,
    }
}

fn env(pool: &str) -> Env {
    env_on(Arc::new(FakeCluster::new()), pool)
}

fn svc(name: &str, spec: Value) -> Service {
    let mut s = json!({"type": "LoadBalancer", "ports": [{"port": 80}]});
    json_patch::merge(&mut s, &spec);
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": s,
    }))
    .unwrap()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Some("default"), name)
}

impl Env {
    async fn sync(&self, name: &str) {
        self.c.reconcile(&key(name)).await.unwrap();
    }

    fn ingress(&self, name: &str) -> Value {
        let s: Service = self.cluster.get(Some("default"), name).unwrap();
        serde_json::to_value(s.status.unwrap_or_default()).unwrap()["loadBalancer"]["ingress"]
            .clone()
    }

    fn ip(&self, name: &str) -> Option<String> {
        self.ingress(name)[0]["ip"].as_str().map(str::to_string)
    }

    fn reasons(&self, name: &str) -> Vec<String> {
        self.cluster
            .events()
            .iter()
            .filter(|e| e.name == name)
            .map(|e| {
                assert_eq!(e.component, COMPONENT);
                e.reason.clone()
            })
            .collect()
    }
}

#[tokio::test]
async fn allocates_distinct_addresses_with_vip_mode() {
    let e = env("10.1.0.0/30");
    e.cluster.put(&svc("a", json!({})));
    e.cluster.put(&svc("b", json!({})));
    e.sync("a").await;
    e.sync("b").await;
    assert_eq!(e.ingress("a"), json!([{"ip": "10.1.0.1", "ipMode": "VIP"}]));
    assert_eq!(e.ip("b").as_deref(), Some("10.1.0.2"));
    assert_eq!(e.reasons("a"), ["IPAllocated"]);
    // Again: nothing changes, nothing is written.
    let writes = e.cluster.writes().len();
    e.sync("a").await;
    assert_eq!(e.cluster.writes().len(), writes);
}

#[tokio::test]
async fn requested_address_outside_pool_or_taken_fails_with_an_event() {
    let e = env("10.1.0.10-10.1.0.12");
    e.cluster
        .put(&svc("a", json!({"loadBalancerIP": "10.1.0.12"})));
    e.sync("a").await;
    assert_eq!(e.ip("a").as_deref(), Some("10.1.0.12"));

    e.cluster
        .put(&svc("out", json!({"loadBalancerIP": "192.168.0.1"})));
    e.sync("out").await;
    assert_eq!(e.ip("out"), None);
    assert_eq!(e.reasons("out"), ["AllocationFailed"]);

    let mut taken = svc("taken", json!({}));
    taken.metadata.annotations =
        Some([(IPS_ANNOTATION.to_string(), "10.1.0.12".to_string())].into());
    e.cluster.put(&taken);
    e.sync("taken").await;
    assert_eq!(e.ip("taken"), None);
    assert_eq!(e.reasons("taken"), ["AllocationFailed"]);
    // The holder keeps it.
    e.sync("a").await;
    assert_eq!(e.ip("a").as_deref(), Some("10.1.0.12"));

    // Once the holder lets go, the waiting Service is woken and gets it.
    e.cluster.remove::<Service>(Some("default"), "a");
    e.sync("a").await;
    assert_eq!(e.queue.len(), 1);
    e.sync("taken").await;
    assert_eq!(e.ip("taken").as_deref(), Some("10.1.0.12"));
}

#[tokio::test]
async fn exhausted_pool_leaves_services_pending_until_an_address_frees() {
    let e = env("10.1.0.5/32");
    e.cluster.put(&svc("a", json!({})));
    e.cluster.put(&svc("b", json!({})));
    e.sync("a").await;
    e.sync("b").await;
    assert_eq!(e.ip("a").as_deref(), Some("10.1.0.5"));
    assert_eq!(e.ip("b"), None);
    assert_eq!(e.reasons("b"), ["AllocationFailed"]);

    // a becomes a ClusterIP Service: its status is cleared and b gets the address.
    let mut a: Service = e.cluster.get(Some("default"), "a").unwrap();
    a.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    e.cluster.put(&a);
    e.sync("a").await;
    assert_eq!(e.ingress("a"), Value::Null);
    e.sync("b").await;
    assert_eq!(e.ip("b").as_deref(), Some("10.1.0.5"));
}

#[tokio::test]
async fn addresses_are_stable_across_a_restart() {
    let cluster = Arc::new(FakeCluster::new());
    let e = env_on(cluster.clone(), "10.1.0.0/29");
    for n in ["a", "b", "c"] {
        e.cluster.put(&svc(n, json!({})));
        e.sync(n).await;
    }
    let before: Vec<_> = ["a", "b", "c"].iter().map(|n| e.ip(n)).collect();
    // a goes away while the controller is down; a new Service comes.
    cluster.remove::<Service>(Some("default"), "a");
    cluster.put(&svc("d", json!({})));
    let e = env_on(cluster, "10.1.0.0/29");
    // The newcomer is handled first and must not take what b and c hold.
    e.sync("d").await;
    e.sync("c").await;
    e.sync("b").await;
    assert_eq!(e.ip("b"), before[1]);
    assert_eq!(e.ip("c"), before[2]);
    assert_eq!(
        e.ip("d"),
        before[0],
        "the freed address is the first free one"
    );
    assert_eq!(
        e.reasons("b"),
        ["IPAllocated"],
        "no new event for an unchanged Service"
    );
}

#[tokio::test]
async fn services_of_another_class_or_type_are_left_alone() {
    let e = env("10.1.0.0/30");
    e.cluster.put(&svc(
        "classy",
        json!({"loadBalancerClass": "example.com/lb"}),
    ));
    e.cluster.put(&svc("plain", json!({"type": "ClusterIP"})));
    e.sync("classy").await;
    e.sync("plain").await;
    e.sync("gone").await;
    assert_eq!(e.ingress("classy"), Value::Null);
    assert_eq!(e.ingress("plain"), Value::Null);
    assert!(e.cluster.events().is_empty());
    assert!(e.cluster.writes().is_empty());
}
