//! The binder and the local-path provisioner running on a [`FakeCluster`]: binding by
//! capacity, class, modes, selector and pre-binding; the default class; WaitForFirstConsumer
//! and provisioning for a scheduled consumer; reclaim policies; lost claims.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};

use super::*;
use crate::controllers::context::{Informers, Settings};
use crate::controllers::runtime::{Cluster, Delete, FakeCluster};

struct World {
    c: Arc<FakeCluster>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn world(setup: impl FnOnce(&FakeCluster)) -> World {
    let c = Arc::new(FakeCluster::new());
    setup(&c);
    let ctx = Ctx {
        cluster: c.clone(),
        informers: Informers::fake(&c),
        settings: Settings {
            local_path_dir: "/srv/volumes".into(),
            ..Settings::default()
        },
    };
    World {
        tasks: start(&ctx),
        c,
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pv(name: &str, size: &str, class: &str, extra: Value) -> PersistentVolume {
    let mut v = json!({"metadata": {"name": name}, "spec": {
        "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": class, "hostPath": {"path": format!("/data/{name}")},
        "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn pvc(name: &str, size: &str, class: Option<&str>, extra: Value) -> PersistentVolumeClaim {
    let mut v = json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
        "volumeMode": "Filesystem"}});
    if let Some(class) = class {
        v["spec"]["storageClassName"] = json!(class);
    }
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
    )
    .unwrap()
}

fn class(name: &str, provisioner: &str, mode: &str, default: bool) -> StorageClass {
    serde_json::from_value(json!({"metadata": {"name": name, "annotations": {
        "storageclass.kubernetes.io/is-default-class": default.to_string()}},
        "provisioner": provisioner, "volumeBindingMode": mode, "reclaimPolicy": "Delete"}))
    .unwrap()
}

fn pod_using(name: &str, claim: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "x"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}),
    )
    .unwrap()
}

fn claim(c: &FakeCluster, name: &str) -> PersistentVolumeClaim {
    c.get(Some("ns"), name).unwrap()
}

fn volume(c: &FakeCluster, name: &str) -> Option<PersistentVolume> {
    c.get(None, name)
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn volume_phase(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn annotation<'a, K: kube::Resource>(o: &'a K, k: &str) -> Option<&'a str> {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(k))
        .map(String::as_str)
}

async fn bound_to(c: &FakeCluster, claim_name: &str) -> (PersistentVolumeClaim, PersistentVolume) {
    eventually(&format!("claim {claim_name} bound"), || {
        let cl = claim(c, claim_name);
        let v = volume(c, cl.spec.as_ref()?.volume_name.as_deref()?)?;
        (claim_phase(&cl) == "Bound" && volume_phase(&v) == "Bound").then_some((cl, v))
    })
    .await
}

fn has_event(c: &FakeCluster, reason: &str, contains: &str) -> bool {
    c.events()
        .iter()
        .any(|e| e.reason == reason && e.message.contains(contains))
}

#[tokio::test]
async fn claims_bind_to_the_smallest_fitting_volume_of_their_class() {
    let w = world(|c| {
        c.put(&pv("small", "1Gi", "", json!({})));
        c.put(&pv("big", "10Gi", "", json!({})));
        c.put(&pv(
            "medium",
            "5Gi",
            "",
            json!({"spec": {"accessModes": ["ReadOnlyMany"]}}),
        ));
        c.put(&pv("fast", "5Gi", "fast", json!({})));
    });
    let c = &w.c;
    c.put(&pvc("data", "2Gi", Some(""), json!({})));
    c.put(&pvc("quick", "1Gi", Some("fast"), json!({})));
    let (cl, v) = bound_to(c, "data").await;
    assert_eq!(v.metadata.name.as_deref(), Some("big"));
    // Both sides, as the binder writes them.
    let r = v.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(r.name.as_deref(), Some("data"));
    assert_eq!(r.namespace.as_deref(), Some("ns"));
    assert_eq!(r.uid, cl.metadata.uid);
    assert_eq!(annotation(&v, ANN_BOUND_BY_CONTROLLER), Some("yes"));
    assert_eq!(annotation(&cl, ANN_BIND_COMPLETED), Some("yes"));
    assert_eq!(annotation(&cl, ANN_BOUND_BY_CONTROLLER), Some("yes"));
    let st = cl.status.as_ref().unwrap();
    assert_eq!(st.capacity.as_ref().unwrap()["storage"].0, "10Gi");
    assert_eq!(
        st.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_string()][..])
    );
    let (_, v) = bound_to(c, "quick").await;
    assert_eq!(v.metadata.name.as_deref(), Some("fast"));
    // A claim nothing fits stays Pending, with no class to provision from.
    c.put(&pvc("huge", "100Gi", Some(""), json!({})));
    eventually("huge pending", || {
        (claim_phase(&claim(c, "huge")) == "Pending").then_some(())
    })
    .await;
    assert!(has_event(
        c,
        "FailedBinding",
        "no persistent volumes available"
    ));
    assert_eq!(volume_phase(&volume(c, "small").unwrap()), "Available");
}

#[tokio::test]
async fn selectors_and_pre_binding() {
    let w = world(|c| {
        c.put(&pv("plain", "1Gi", "", json!({})));
        c.put(&pv(
            "db",
            "5Gi",
            "",
            json!({"metadata": {"labels": {"tier": "db"}}}),
        ));
        c.put(&pv("named", "5Gi", "", json!({})));
        c.put(&pv(
            "reserved",
            "5Gi",
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "mine"}}}),
        ));
    });
    let c = &w.c;
    c.put(&pvc(
        "picky",
        "1Gi",
        Some(""),
        json!({"spec": {"selector": {"matchLabels": {"tier": "db"}}}}),
    ));
    c.put(&pvc(
        "by-name",
        "1Gi",
        Some(""),
        json!({"spec": {"volumeName": "named"}}),
    ));
    c.put(&pvc("mine", "1Gi", Some(""), json!({})));
    assert_eq!(
        bound_to(c, "picky").await.1.metadata.name.as_deref(),
        Some("db")
    );
    let (cl, v) = bound_to(c, "by-name").await;
    assert_eq!(v.metadata.name.as_deref(), Some("named"));
    // The user chose the volume: the claim was not bound by the controller.
    assert_eq!(annotation(&cl, ANN_BOUND_BY_CONTROLLER), None);
    assert_eq!(annotation(&v, ANN_BOUND_BY_CONTROLLER), Some("yes"));
    let (cl, v) = bound_to(c, "mine").await;
    assert_eq!(v.metadata.name.as_deref(), Some("reserved"));
    assert_eq!(annotation(&v, ANN_BOUND_BY_CONTROLLER), None);
    assert_eq!(annotation(&cl, ANN_BOUND_BY_CONTROLLER), Some("yes"));
    // A claim naming a volume too small for it waits, and says why.
    c.put(&pv("tiny", "1Mi", "", json!({})));
    c.put(&pvc(
        "wants-tiny",
        "1Gi",
        Some(""),
        json!({"spec": {"volumeName": "tiny"}}),
    ));
    eventually("mismatch", || {
        has_event(c, "VolumeMismatch", "requested PV is too small").then_some(())
    })
    .await;
    assert_eq!(claim_phase(&claim(c, "wants-tiny")), "Pending");
}

#[tokio::test]
async fn class_less_claims_get_the_default_class() {
    let w = world(|c| {
        c.put(&class("standard", "example.com/nfs", "Immediate", true));
    });
    let c = &w.c;
    // Another class is the default: local-path is made, but not as the default.
    let lp = eventually("local-path class", || {
        c.get::<StorageClass>(None, "local-path")
    })
    .await;
    assert_eq!(lp.provisioner, provisioner::PROVISIONER);
    assert_eq!(
        lp.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert_eq!(lp.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(
        annotation(&lp, "storageclass.kubernetes.io/is-default-class"),
        Some("false")
    );
    c.put(&pvc("data", "1Gi", None, json!({})));
    let cl = eventually("class given and handed to its provisioner", || {
        let cl = claim(c, "data");
        (annotation(&cl, ANN_STORAGE_PROVISIONER) == Some("example.com/nfs")).then_some(cl)
    })
    .await;
    assert_eq!(
        cl.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("standard")
    );
    assert_eq!(
        annotation(&cl, ANN_BETA_STORAGE_PROVISIONER),
        Some("example.com/nfs")
    );
    eventually("pending", || {
        (claim_phase(&claim(c, "data")) == "Pending").then_some(())
    })
    .await;
    assert!(has_event(c, "ExternalProvisioning", "'example.com/nfs'"));
    // A claim that asks for no class keeps none.
    c.put(&pvc("none", "1Gi", Some(""), json!({})));
    eventually("pending", || {
        (claim_phase(&claim(c, "none")) == "Pending").then_some(())
    })
    .await;
    assert_eq!(
        claim(c, "none").spec.unwrap().storage_class_name.as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn a_claim_waits_for_its_pod_then_gets_a_local_volume_on_its_node() {
    let w = world(|c| {
        c.put(&node("n1"));
        c.put(&node("n2"));
    });
    let c = &w.c;
    eventually("local-path class", || {
        c.get::<StorageClass>(None, "local-path")
    })
    .await;
    c.put(&pvc("data", "3Gi", None, json!({})));
    eventually("default class", || {
        (claim(c, "data").spec?.storage_class_name.as_deref() == Some("local-path")).then_some(())
    })
    .await;
    eventually("waiting", || {
        has_event(
            c,
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
        .then_some(())
    })
    .await;
    c.put(&pod_using("web", "data", None));
    eventually("waiting for the pod", || {
        has_event(
            c,
            "WaitForPodScheduled",
            "waiting for pod web to be scheduled",
        )
        .then_some(())
    })
    .await;
    assert!(c.list::<PersistentVolume>().is_empty());
    assert_eq!(claim_phase(&claim(c, "data")), "Pending");

    // Scheduled to n2: a volume there.
    let p = c.get::<Pod>(Some("ns"), "web").unwrap();
    c.bind("ns", "web", p.metadata.uid.as_deref().unwrap(), "n2")
        .await
        .unwrap();
    let (cl, v) = bound_to(c, "data").await;
    let uid = cl.metadata.uid.clone().unwrap();
    assert_eq!(v.metadata.name, Some(format!("pvc-{uid}")));
    assert_eq!(annotation(&cl, ANN_SELECTED_NODE), Some("n2"));
    assert_eq!(
        annotation(&v, ANN_PROVISIONED_BY),
        Some(provisioner::PROVISIONER)
    );
    let spec = v.spec.as_ref().unwrap();
    let hp = spec.host_path.as_ref().unwrap();
    assert_eq!(hp.path, format!("/srv/volumes/pvc-{uid}_ns_data"));
    assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"));
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "3Gi");
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    let term = &spec
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    let e = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (e.key.as_str(), e.operator.as_str()),
        ("kubernetes.io/hostname", "In")
    );
    assert_eq!(e.values.as_deref(), Some(&["n2".to_string()][..]));
    assert!(has_event(
        c,
        "ProvisioningSucceeded",
        &format!("Successfully provisioned volume pvc-{uid}")
    ));

    // Deleted with its claim: a helper pod removes the directory on n2, then the volume goes.
    c.delete::<Pod>(Some("ns"), "web", &Delete::default())
        .await
        .unwrap();
    c.delete::<PersistentVolumeClaim>(Some("ns"), "data", &Delete::default())
        .await
        .unwrap();
    let helper_name = format!("helper-pod-delete-pvc-{uid}");
    let helper = eventually("helper pod", || {
        c.get::<Pod>(
            Some(provisioner::HELPER_NAMESPACE),
            &helper_name[..63.min(helper_name.len())],
        )
    })
    .await;
    let spec = helper.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("n2"));
    assert_eq!(
        spec.containers[0].command.as_deref().unwrap(),
        &[
            "rm".to_string(),
            "-rf".to_string(),
            format!("/srv/volumes/pvc-{uid}_ns_data")
        ]
    );
    assert_eq!(
        volume_phase(&volume(c, &format!("pvc-{uid}")).unwrap()),
        "Released"
    );
    let hname = helper.metadata.name.clone().unwrap();
    let _: Pod = c
        .patch_status(
            Some(provisioner::HELPER_NAMESPACE),
            &hname,
            &json!({"status": {"phase": "Succeeded"}}),
        )
        .await
        .unwrap();
    eventually("volume deleted", || {
        volume(c, &format!("pvc-{uid}")).is_none().then_some(())
    })
    .await;
    eventually("helper deleted", || {
        c.get::<Pod>(Some(provisioner::HELPER_NAMESPACE), &hname)
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn waiting_claims_take_a_volume_on_their_pods_node() {
    let w = world(|c| {
        c.put(&node("n1"));
        c.put(&node("n2"));
        c.put(&class(
            "local-disks",
            "kubernetes.io/no-provisioner",
            "WaitForFirstConsumer",
            false,
        ));
        for n in ["n1", "n2"] {
            c.put(&pv(&format!("disk-{n}"), "10Gi", "local-disks", json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [n]}]}]}}}})));
        }
    });
    let c = &w.c;
    c.put(&pvc("data", "1Gi", Some("local-disks"), json!({})));
    c.put(&pod_using("web", "data", Some("n2")));
    let (cl, v) = bound_to(c, "data").await;
    assert_eq!(v.metadata.name.as_deref(), Some("disk-n2"));
    assert_eq!(annotation(&cl, ANN_SELECTED_NODE), Some("n2"));
}

#[tokio::test]
async fn released_volumes_follow_their_reclaim_policy() {
    let w = world(|c| {
        c.put(&pv("kept", "1Gi", "", json!({})));
        c.put(&pv(
            "dropped",
            "1Gi",
            "",
            json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        ));
        c.put(&pv(
            "recycled",
            "1Gi",
            "",
            json!({"spec": {"persistentVolumeReclaimPolicy": "Recycle"}}),
        ));
    });
    let c = &w.c;
    for (claim_name, vol) in [("a", "kept"), ("b", "dropped"), ("cc", "recycled")] {
        c.put(&pvc(
            claim_name,
            "1Gi",
            Some(""),
            json!({"spec": {"volumeName": vol}}),
        ));
        bound_to(c, claim_name).await;
        c.delete::<PersistentVolumeClaim>(Some("ns"), claim_name, &Delete::default())
            .await
            .unwrap();
    }
    eventually("retained", || {
        (volume_phase(&volume(c, "kept")?) == "Released").then_some(())
    })
    .await;
    // Nothing here can delete a volume it did not make: Failed, as upstream with no plugin.
    let v = eventually("delete failed", || {
        volume(c, "dropped").filter(|v| volume_phase(v) == "Failed")
    })
    .await;
    assert!(
        v.status
            .unwrap()
            .message
            .unwrap()
            .contains("no deletable volume plugin matched")
    );
    assert!(has_event(c, "VolumeFailedDelete", "dropped"));
    let v = eventually("recycle refused", || {
        volume(c, "recycled").filter(|v| volume_phase(v) == "Failed")
    })
    .await;
    assert!(
        v.status
            .unwrap()
            .message
            .unwrap()
            .contains("Recycle is not supported")
    );
    assert!(has_event(c, "VolumeFailedRecycle", "data is kept"));
    // The retained volume keeps its claimRef until an administrator frees it.
    let kept = volume(c, "kept").unwrap();
    assert!(kept.spec.as_ref().unwrap().claim_ref.is_some());
    let _: PersistentVolume = c
        .patch(None, "kept", &json!({"spec": {"claimRef": null}}))
        .await
        .unwrap();
    eventually("available again", || {
        (volume_phase(&volume(c, "kept")?) == "Available").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_claim_whose_volume_is_gone_is_lost() {
    let w = world(|c| {
        c.put(&pv("v", "1Gi", "", json!({})));
    });
    let c = &w.c;
    c.put(&pvc("data", "1Gi", Some(""), json!({})));
    bound_to(c, "data").await;
    c.delete::<PersistentVolume>(None, "v", &Delete::default())
        .await
        .unwrap();
    eventually("lost", || {
        (claim_phase(&claim(c, "data")) == "Lost").then_some(())
    })
    .await;
    assert!(has_event(
        c,
        "ClaimLost",
        "Bound claim has lost its PersistentVolume"
    ));
}

#[tokio::test]
async fn a_node_chosen_by_the_scheduler_is_where_the_volume_goes() {
    let w = world(|c| {
        c.put(&node("n1"));
        c.put(&node("n2"));
    });
    let c = &w.c;
    eventually("local-path class", || {
        c.get::<StorageClass>(None, "local-path")
    })
    .await;
    // As kube-scheduler leaves it before binding the pod: the claim names the node.
    c.put(&pvc(
        "data",
        "1Gi",
        Some("local-path"),
        json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n1"}}}),
    ));
    let (_, v) = bound_to(c, "data").await;
    let spec = v.spec.unwrap();
    let term = &spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms[0];
    assert_eq!(
        term.match_expressions.as_ref().unwrap()[0]
            .values
            .as_deref(),
        Some(&["n1".to_string()][..])
    );
    // A claim whose node is unknown gets nothing, rather than a volume elsewhere.
    c.put(&pvc(
        "lost",
        "1Gi",
        Some("local-path"),
        json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n9"}}}),
    ));
    eventually("refused", || {
        has_event(c, "ProvisioningFailed", "nodes \"n9\" not found").then_some(())
    })
    .await;
    assert_eq!(c.list::<PersistentVolume>().len(), 1);
}
