//! DeleteOptions (the body of a DELETE from client-go) and policy/v1 Eviction (what
//! `kubectl drain` POSTs) against k8s-pb's encoder.

use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message as _;
use serde_json::json;

use super::decode;
use crate::apiserver::handlers::DeleteOptions;

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

fn envelope(api_version: &str, kind: &str, obj: &impl prost::Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(obj.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn full_options() -> meta::DeleteOptions {
    meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("1f0c-uid"),
            resource_version: s("77"),
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: None,
    }
}

#[test]
fn delete_options_decode_in_full() {
    let v = decode(&envelope("v1", "DeleteOptions", &full_options())).expect("decode");
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "1f0c-uid", "resourceVersion": "77"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        })
    );
    let o = DeleteOptions::from_json(&v);
    assert_eq!(o.grace_period, Some(0));
    assert_eq!(o.precondition_uid.as_deref(), Some("1f0c-uid"));
    assert_eq!(o.precondition_rv.as_deref(), Some("77"));
    assert_eq!(o.propagation.as_deref(), Some("Foreground"));
    assert!(o.dry_run);
}

#[test]
fn delete_options_as_kubectl_delete_sends_them() {
    // `kubectl delete pod` without flags: only the propagation policy, under whatever
    // apiVersion the client's group has.
    let opts = meta::DeleteOptions {
        propagation_policy: s("Background"),
        ..Default::default()
    };
    let v = decode(&envelope("apps/v1", "DeleteOptions", &opts)).expect("decode");
    let o = DeleteOptions::from_json(&v);
    assert_eq!(o.propagation.as_deref(), Some("Background"));
    assert_eq!((o.grace_period, o.dry_run), (None, false));
    // The deprecated orphanDependents means propagation Orphan; false means nothing.
    let orphan = meta::DeleteOptions {
        orphan_dependents: Some(true),
        ..Default::default()
    };
    let v = decode(&envelope("v1", "DeleteOptions", &orphan)).expect("decode");
    assert_eq!(
        DeleteOptions::from_json(&v).propagation.as_deref(),
        Some("Orphan")
    );
    let kept = meta::DeleteOptions {
        orphan_dependents: Some(false),
        ..Default::default()
    };
    let v = decode(&envelope("v1", "DeleteOptions", &kept)).expect("decode");
    assert_eq!(DeleteOptions::from_json(&v).propagation, None);
}

#[test]
fn an_eviction_decodes_as_kubectl_drain_sends_it() {
    let ev = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("web-1"),
            namespace: s("default"),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(30),
            ..Default::default()
        }),
    };
    let v = decode(&envelope("policy/v1", "Eviction", &ev)).expect("decode");
    assert_eq!(
        v,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 30},
        })
    );
    assert_eq!(
        DeleteOptions::from_json(&v["deleteOptions"]).grace_period,
        Some(30)
    );
}
