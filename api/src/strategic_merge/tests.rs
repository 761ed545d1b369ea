use super::*;
use serde_json::json;

fn smp(kind: &str, original: Value, patch: Value) -> Value {
    apply_strategic_merge_patch(kind, &original, &patch)
        .unwrap_or_else(|e| panic!("patch failed: {e}"))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v["name"].as_str().expect("a name").to_string())
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1",
                         "args": ["--a", "--b"],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "busybox:1"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}]
                }
            }
        },
        "status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True"}
        ]}
    })
}

#[test]
fn maps_merge_and_null_deletes() {
    let out = smp(
        "ConfigMap",
        json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"y": "changed", "z": "3"}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}}, "data": {"x": "1", "y": "changed", "z": "3"}})
    );
}

#[test]
fn kubectl_label_annotate_and_rollout_restart() {
    let d = deployment();
    let labeled = smp(
        "Deployment",
        d.clone(),
        json!({"metadata": {"labels": {"tier": "front"}}}),
    );
    assert_eq!(
        labeled["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    let unlabeled = smp(
        "Deployment",
        labeled,
        json!({"metadata": {"labels": {"tier": null}}}),
    );
    assert_eq!(unlabeled["metadata"]["labels"], json!({"app": "web"}));
    let annotated = smp(
        "Deployment",
        d.clone(),
        json!({"metadata": {"annotations": {"note": "x"}}}),
    );
    assert_eq!(annotated["metadata"]["annotations"], json!({"note": "x"}));

    let restarted = smp(
        "Deployment",
        d.clone(),
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}),
    );
    assert_eq!(
        restarted["spec"]["template"]["metadata"],
        json!({"labels": {"app": "web"},
               "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}})
    );
    assert_eq!(
        restarted["spec"]["template"]["spec"],
        d["spec"]["template"]["spec"]
    );
}

#[test]
fn kubectl_set_image_merges_one_container() {
    let d = deployment();
    let out = smp(
        "Deployment",
        d.clone(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:2"}]}}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["app", "sidecar"]);
    assert_eq!(containers[1]["image"], "busybox:2");
    assert_eq!(
        containers[0],
        d["spec"]["template"]["spec"]["containers"][0]
    );
}

#[test]
fn kubectl_apply_changes_image_and_removes_env_var() {
    // What kubectl apply sends after the manifest changed app's image and
    // dropped env B: only the differences, deletions as directives, and
    // the intended order of every list it touched.
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:2",
                "name": "app"
            }]
        }}}
    });
    let out = smp("Deployment", deployment(), patch);
    let app = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(app["image"], "nginx:2");
    assert_eq!(
        app["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        app["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["app", "sidecar"]
    );
    assert!(
        !out.to_string().contains('$'),
        "no directive may leak: {out}"
    );
    // Everything else is untouched.
    assert_eq!(out["status"], deployment()["status"]);
    assert_eq!(out["spec"]["strategy"], deployment()["spec"]["strategy"]);
}

#[test]
fn kubectl_apply_adds_env_var_in_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "A"}, {"name": "NEW"}, {"name": "B"}, {"name": "C"}],
            "env": [{"name": "NEW", "value": "n"}],
            "name": "app"
        }]
    }}}});
    let out = smp("Deployment", deployment(), patch);
    let env = &out["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(names(env), ["A", "NEW", "B", "C"]);
    assert_eq!(env[1]["value"], "n");
}

#[test]
fn set_element_order_reorders_and_keeps_server_only_items() {
    let pod = json!({"spec": {"containers": [
        {"name": "a", "image": "a"}, {"name": "b", "image": "b"},
        {"name": "x", "image": "server-added"}, {"name": "c", "image": "c"}
    ]}});
    let out = smp(
        "Pod",
        pod,
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}}),
    );
    // The server-only item stays after its predecessor in the live list.
    assert_eq!(names(&out["spec"]["containers"]), ["b", "a", "x", "c"]);
    assert_eq!(out["spec"]["containers"][2]["image"], "server-added");
}

#[test]
fn set_element_order_with_additions_and_deletions() {
    // Live list has a server-only item "d" after "b"; the patch deletes
    // "a" and adds "n" at the end.
    let pod = json!({"spec": {"containers": [
        {"name": "a"}, {"name": "b", "image": "b"}, {"name": "d", "image": "d"}
    ]}});
    let out = smp(
        "Pod",
        pod,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "n"}],
            "containers": [{"name": "n"}, {"$patch": "delete", "name": "a"}]
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "d", "n"]);
}

#[test]
fn set_element_order_when_the_list_is_new() {
    let out = smp(
        "Pod",
        json!({"spec": {}}),
        json!({"spec": {
            "$setElementOrder/initContainers": [{"name": "one"}, {"name": "two"}],
            "initContainers": [{"name": "one", "image": "1"}, {"name": "two", "image": "2"},
                               {"name": "gone", "$patch": "delete"}]
        }}),
    );
    assert_eq!(
        out["spec"]["initContainers"],
        json!([{"name": "one", "image": "1"}, {"name": "two", "image": "2"}])
    );
}

#[test]
fn set_element_order_for_primitive_lists() {
    let out = smp(
        "Pod",
        json!({"metadata": {"finalizers": ["x", "y", "server"]}}),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["y", "z", "x"],
            "finalizers": ["z"]
        }}),
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["y", "z", "x", "server"])
    );
}

#[test]
fn set_element_order_mismatch_is_an_error() {
    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
        &json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]
        }}),
    )
    .unwrap_err();
    assert!(
        matches!(err, SmpError::SetElementOrderMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("The order in patch list:\n"));

    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"spec": {}}),
        &json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
    )
    .unwrap_err();
    assert!(matches!(err, SmpError::BadSetElementOrder { .. }), "{err}");
}

#[test]
fn merge_without_set_element_order_follows_kubernetes_placement() {
    // New items go before the server items that follow their merged
    // neighbours, as Kubernetes' interleaving does.
    let out = smp(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
        json!({"spec": {"containers": [{"name": "b", "image": "new"}, {"name": "d"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "d", "c"]);
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "b", "image": "new"})
    );
}

#[test]
fn primitive_lists_replace_unless_declared_merging() {
    let d = deployment();
    let out = smp(
        "Deployment",
        d.clone(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["--c"]}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--c"])
    );

    // metadata.finalizers merges: union, new items first when no order given.
    let out = smp(
        "Deployment",
        d.clone(),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));

    // Node spec.podCIDRs merges too.
    let out = smp(
        "Node",
        json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        json!({"spec": {"podCIDRs": ["fd00::/64"]}}),
    );
    assert_eq!(out["spec"]["podCIDRs"], json!(["fd00::/64", "10.0.0.0/24"]));
}

#[test]
fn delete_from_primitive_list() {
    let out = smp(
        "Pod",
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "c"],
            "$deleteFromPrimitiveList/finalizers": ["b"]
        }}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));

    // Deleting from a list that does not exist does not create it.
    let out = smp(
        "Pod",
        json!({"metadata": {"name": "p"}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out, json!({"metadata": {"name": "p"}}));

    // It also works on lists that otherwise replace.
    let out = smp(
        "Pod",
        json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
        json!({"spec": {"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["x"]}]}}),
    );
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["y"]));
}

#[test]
fn patch_directives_in_list_elements() {
    let pod = json!({"spec": {"containers": [
        {"name": "a", "image": "a"}, {"name": "b", "image": "b"}
    ]}});
    let out = smp(
        "Pod",
        pod.clone(),
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b"]);

    let out = smp(
        "Pod",
        pod.clone(),
        json!({"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "z", "image": "z"}])
    );

    let err = apply_strategic_merge_patch(
        "Pod",
        &pod,
        &json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
    )
    .unwrap_err();
    assert!(
        matches!(err, SmpError::MergeDirectiveInList { .. }),
        "{err}"
    );

    let err = apply_strategic_merge_patch(
        "Pod",
        &pod,
        &json!({"spec": {"containers": [{"name": "a", "$patch": "explode"}]}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown patch type: \"explode\" in map: "),
        "{err}"
    );
}

#[test]
fn patch_directives_in_maps() {
    let d = deployment();
    let out = smp(
        "Deployment",
        d.clone(),
        json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}}),
    );
    assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));

    let out = smp(
        "Deployment",
        d.clone(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({}));

    let out = smp(
        "Deployment",
        d.clone(),
        json!({"metadata": {"labels": {"$patch": "merge", "x": "1"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web", "x": "1"}));

    // A whole-object replace.
    let out = smp(
        "ConfigMap",
        json!({"data": {"a": "1"}, "x": 1}),
        json!({"$patch": "replace", "data": {"b": "2"}}),
    );
    assert_eq!(out, json!({"data": {"b": "2"}}));

    let err =
        apply_strategic_merge_patch("ConfigMap", &json!({}), &json!({"$patch": 5})).unwrap_err();
    assert!(matches!(err, SmpError::BadPatchType { .. }));
}

#[test]
fn retain_keys() {
    // Switching a Deployment to Recreate: kubectl sends $retainKeys so the
    // old rollingUpdate block goes away.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    // Switching a volume's source.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"volumes": [
            {"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cm"}}
        ]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );

    let err = apply_strategic_merge_patch(
        "Deployment",
        &deployment(),
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    )
    .unwrap_err();
    assert!(matches!(err, SmpError::BadRetainKeys { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid patch format of retainKeys")
    );
}

#[test]
fn merge_keys_by_path() {
    // Container ports merge by containerPort, volumeMounts by mountPath.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "app",
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
        }]}}}}),
    );
    let app = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        app["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );

    // Tolerations are atomic.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );

    // Status conditions merge by type.
    let out = smp(
        "Deployment",
        deployment(),
        json!({"status": {"conditions": [{"type": "Progressing", "status": "False"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}])
    );

    // Service ports merge by port.
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}});
    let out = smp(
        "Service",
        svc,
        json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}])
    );

    // Owner references merge by uid.
    let out = smp(
        "Pod",
        json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs"}]}}),
        json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "name": "other"}]}}),
    );
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "rs", "controller": true}, {"uid": "2", "name": "other"}])
    );

    // A pod's host aliases merge by ip, numbers compare by value.
    let out = smp(
        "Pod",
        json!({"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                        "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}),
        json!({"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                        "containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "web"}]}]}}),
    );
    assert_eq!(
        out["spec"]["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["b"]}])
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn workload_templates_reach_the_pod_spec() {
    for kind in [
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "ReplicationController",
    ] {
        let orig = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}}});
        let out = smp(
            kind,
            orig,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}}),
        );
        assert_eq!(
            names(&out["spec"]["template"]["spec"]["containers"]),
            ["a", "b"],
            "{kind}"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"], "2",
            "{kind}"
        );
    }
    let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}}}}});
    let out = smp(
        "CronJob",
        cron,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}}}}}),
    );
    let containers = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["a", "b"]);
    assert_eq!(containers[1]["image"], "2");
}

#[test]
fn new_values_are_cleaned_of_directives_and_nulls() {
    let out = smp(
        "Pod",
        json!({"metadata": {"name": "p"}}),
        json!({"spec": {"containers": [
            {"name": "a", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": "1"}], "image": null},
            {"name": "gone", "$patch": "delete"}
        ]}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}})
    );
    // A new container merged into an existing list is cleaned as well
    // (and, without $setElementOrder, lands first, as in Kubernetes).
    let out = smp(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": [{"name": "b", "resources": {"limits": null}}]}}),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "b", "resources": {}}, {"name": "a"}])
    );
}

#[test]
fn type_changes_replace() {
    let out = smp(
        "ConfigMap",
        json!({"data": {"a": "1"}, "x": [1, 2], "y": {"z": 1}}),
        json!({"data": "flat", "x": {"k": null, "v": 1}, "y": [1]}),
    );
    assert_eq!(out, json!({"data": "flat", "x": {"v": 1}, "y": [1]}));
}

#[test]
fn errors() {
    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"spec": {"containers": [{"name": "a"}]}}),
        &json!({"spec": {"containers": [{"image": "no-name"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: {\"image\":\"no-name\"} does not contain declared merge key: name"
    );
    let err = apply_strategic_merge_patch("Pod", &json!([]), &json!({})).unwrap_err();
    assert!(matches!(
        err,
        SmpError::NotAnObject {
            which: "original",
            ..
        }
    ));
    let err = apply_strategic_merge_patch("Pod", &json!({}), &json!("x")).unwrap_err();
    assert!(matches!(err, SmpError::NotAnObject { which: "patch", .. }));
    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"metadata": {"finalizers": ["a"]}}),
        &json!({"metadata": {"finalizers": [{"x": 1}]}}),
    )
    .unwrap_err();
    assert!(matches!(err, SmpError::MixedListTypes { .. }), "{err}");
    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"metadata": {"finalizers": [["a"]]}}),
        &json!({"metadata": {"finalizers": [["b"]]}}),
    )
    .unwrap_err();
    assert!(matches!(err, SmpError::ListOfLists { .. }), "{err}");
    let err = apply_strategic_merge_patch(
        "Pod",
        &json!({"metadata": {"ownerReferences": [{"uid": "1"}]}}),
        &json!({"metadata": {"ownerReferences": [{"$patch": "delete"}]}}),
    )
    .unwrap_err();
    assert!(matches!(err, SmpError::NoMergeKey { .. }), "{err}");
}

#[test]
fn empty_patch_list_keeps_merging_list() {
    let out = smp(
        "Pod",
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": []}}),
    );
    assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
}

#[test]
fn unknown_kinds_use_json_merge_patch() {
    assert!(!is_strategic_kind("Widget"));
    assert!(is_strategic_kind("ConfigMap"));
    let out = smp(
        "Widget",
        json!({"spec": {"items": [{"name": "a", "v": 1}], "keep": true, "drop": 1}}),
        json!({"spec": {"items": [{"name": "b"}], "drop": null}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"items": [{"name": "b"}], "keep": true}})
    );
}

#[test]
fn field_strategy_table() {
    let s = |kind, path: &[&str]| field_strategy(kind, path).expect("known kind");
    let merge_by = |key| FieldStrategy {
        merge: true,
        merge_key: Some(key),
        replace: false,
    };
    let atomic = FieldStrategy {
        merge: false,
        merge_key: None,
        replace: false,
    };
    let cases: &[(&str, &[&str], FieldStrategy)] = &[
        ("Pod", &["spec", "containers"], merge_by("name")),
        ("Pod", &["spec", "initContainers"], merge_by("name")),
        ("Pod", &["spec", "ephemeralContainers"], merge_by("name")),
        (
            "Pod",
            &["spec", "containers", "ports"],
            merge_by("containerPort"),
        ),
        ("Pod", &["spec", "containers", "env"], merge_by("name")),
        (
            "Pod",
            &["spec", "containers", "volumeMounts"],
            merge_by("mountPath"),
        ),
        (
            "Pod",
            &["spec", "containers", "volumeDevices"],
            merge_by("devicePath"),
        ),
        ("Pod", &["spec", "initContainers", "env"], merge_by("name")),
        ("Pod", &["spec", "volumes"], merge_by("name")),
        ("Pod", &["spec", "imagePullSecrets"], merge_by("name")),
        ("Pod", &["spec", "hostAliases"], merge_by("ip")),
        (
            "Pod",
            &["spec", "topologySpreadConstraints"],
            merge_by("topologyKey"),
        ),
        ("Pod", &["spec", "tolerations"], atomic),
        ("Pod", &["spec", "containers", "args"], atomic),
        ("Pod", &["spec", "containers", "envFrom"], atomic),
        ("Pod", &["status", "conditions"], merge_by("type")),
        ("Pod", &["status", "podIPs"], merge_by("ip")),
        ("Pod", &["status", "containerStatuses"], atomic),
        ("Pod", &["metadata", "ownerReferences"], merge_by("uid")),
        (
            "Pod",
            &["metadata", "finalizers"],
            FieldStrategy {
                merge: true,
                merge_key: None,
                replace: false,
            },
        ),
        (
            "Deployment",
            &["spec", "template", "spec", "containers", "env"],
            merge_by("name"),
        ),
        (
            "Deployment",
            &["spec", "template", "metadata", "finalizers"],
            FieldStrategy {
                merge: true,
                merge_key: None,
                replace: false,
            },
        ),
        ("Deployment", &["status", "conditions"], merge_by("type")),
        ("StatefulSet", &["spec", "volumeClaimTemplates"], atomic),
        (
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ],
            merge_by("name"),
        ),
        (
            "PodTemplate",
            &["template", "spec", "volumes"],
            merge_by("name"),
        ),
        ("Service", &["spec", "ports"], merge_by("port")),
        ("Service", &["status", "conditions"], merge_by("type")),
        ("Node", &["status", "addresses"], merge_by("type")),
        ("Node", &["status", "conditions"], merge_by("type")),
        ("ServiceAccount", &["secrets"], merge_by("name")),
        ("ServiceAccount", &["imagePullSecrets"], atomic),
        ("Namespace", &["status", "conditions"], merge_by("type")),
        (
            "PersistentVolumeClaim",
            &["status", "conditions"],
            merge_by("type"),
        ),
        ("Endpoints", &["subsets"], atomic),
        ("EndpointSlice", &["endpoints"], atomic),
        (
            "MutatingWebhookConfiguration",
            &["webhooks", "matchConditions"],
            merge_by("name"),
        ),
        (
            "PodDisruptionBudget",
            &["spec", "selector"],
            FieldStrategy {
                merge: false,
                merge_key: None,
                replace: true,
            },
        ),
    ];
    for (kind, path, want) in cases {
        assert_eq!(s(kind, path), *want, "{kind} {path:?}");
    }
    assert_eq!(field_strategy("Widget", &["spec"]), None);
}

#[test]
fn inputs_are_not_modified() {
    let original = deployment();
    let patch = json!({"spec": {"replicas": 5}});
    let out = smp("Deployment", original.clone(), patch.clone());
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(original, deployment());
}
