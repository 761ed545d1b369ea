//! The range allocator on a [`FakeCluster`].

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::*;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::FakeCluster;

fn ctx(c: &Arc<FakeCluster>, cluster_cidr: &str, mask: u8) -> Ctx<FakeCluster> {
    Ctx {
        cluster: c.clone(),
        informers: Informers::fake(c),
        settings: Settings {
            node_ipam: Some(NodeIpamSettings {
                cluster_cidr: cluster_cidr.into(),
                node_cidr_mask_size: mask,
            }),
            ..Settings::default()
        },
    }
}

fn controller(ctx: &Ctx<FakeCluster>) -> NodeIpam<FakeCluster> {
    let set = ctx.settings.node_ipam.as_ref().unwrap().table().unwrap();
    let c = NodeIpam::new(ctx, set);
    c.rebuild();
    c
}

fn node(name: &str, cidr: Option<&str>) -> Node {
    let spec = match cidr {
        Some(c) => json!({"podCIDR": c, "podCIDRs": [c]}),
        None => json!({}),
    };
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn cidr_of(c: &FakeCluster, name: &str) -> Option<String> {
    let n: Node = c.get(None, name)?;
    let spec = n.spec?;
    assert_eq!(
        spec.pod_cidrs.clone().unwrap_or_default().first(),
        spec.pod_cidr.as_ref(),
        "podCIDR and podCIDRs agree"
    );
    spec.pod_cidr
}

async fn sync(r: &NodeIpam<FakeCluster>, name: &str) -> Requeue {
    r.reconcile(&ObjectKey::new(None, name)).await.unwrap()
}

#[tokio::test]
async fn every_node_gets_its_own_range() {
    let c = Arc::new(FakeCluster::new());
    let ctx = ctx(&c, "10.244.0.0/16", 24);
    let r = controller(&ctx);
    for n in ["a", "b", "c"] {
        c.put(&node(n, None));
        assert_eq!(sync(&r, n).await, Requeue::Done);
    }
    let got: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| cidr_of(&c, n).unwrap())
        .collect();
    assert_eq!(got, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]);
    // Again: nothing changes, nothing is written.
    let writes = c.writes().len();
    for n in ["a", "b", "c"] {
        sync(&r, n).await;
    }
    assert_eq!(c.writes().len(), writes);
}

#[tokio::test]
async fn existing_ranges_are_honoured_and_survive_a_restart() {
    let c = Arc::new(FakeCluster::new());
    c.put(&node("old", Some("10.244.0.0/24")));
    c.put(&node("outside", Some("192.168.7.0/24")));
    c.put(&node("new", None));
    let ctx = ctx(&c, "10.244.0.0/16", 24);
    // A fresh controller (a restarted control plane) rebuilds its table from the Nodes.
    let r = controller(&ctx);
    for n in ["old", "outside", "new"] {
        sync(&r, n).await;
    }
    assert_eq!(cidr_of(&c, "old").unwrap(), "10.244.0.0/24");
    assert_eq!(cidr_of(&c, "outside").unwrap(), "192.168.7.0/24");
    assert_eq!(cidr_of(&c, "new").unwrap(), "10.244.1.0/24");

    let r2 = controller(&ctx);
    c.put(&node("newer", None));
    sync(&r2, "newer").await;
    assert_eq!(cidr_of(&c, "newer").unwrap(), "10.244.2.0/24");
}

#[tokio::test]
async fn a_deleted_node_frees_its_range_and_exhaustion_is_an_event() {
    let c = Arc::new(FakeCluster::new());
    // Room for two nodes.
    let ctx = ctx(&c, "10.244.0.0/23", 24);
    let r = controller(&ctx);
    for n in ["a", "b", "c"] {
        c.put(&node(n, None));
    }
    sync(&r, "a").await;
    sync(&r, "b").await;
    assert_eq!(sync(&r, "c").await, Requeue::After(EXHAUSTED_RETRY));
    assert_eq!(cidr_of(&c, "c"), None);
    let events = c.events();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "CIDRNotAvailable" && e.name == "c" && e.component == COMPONENT),
        "{events:?}"
    );

    let freed = cidr_of(&c, "a").unwrap();
    c.remove::<Node>(None, "a");
    sync(&r, "a").await;
    sync(&r, "c").await;
    assert_eq!(cidr_of(&c, "c").unwrap(), freed);
    assert_ne!(cidr_of(&c, "b").unwrap(), freed);
}

#[tokio::test]
async fn start_follows_the_nodes() {
    let c = Arc::new(FakeCluster::new());
    c.put(&node("kept", Some("10.244.0.0/24")));
    let ctx = ctx(&c, "10.244.0.0/16", 24);
    let tasks = start(&ctx);
    assert_eq!(tasks.len(), 2);
    c.put(&node("joined", None));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cidr_of(&c, "joined").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no range given");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cidr_of(&c, "joined").unwrap(), "10.244.1.0/24");
    for t in tasks {
        t.abort();
    }
}

#[test]
fn bad_settings_start_nothing() {
    let c = Arc::new(FakeCluster::new());
    let mut ctx = ctx(&c, "10.244.0.0/16", 8);
    assert!(start(&ctx).is_empty());
    ctx.settings.node_ipam = None;
    assert!(start(&ctx).is_empty());
}
