//! Checks the documents against what kubectl 1.32 reads from them: the explain template's
//! lookups, the field-validation verifier, and the strategic-merge metadata walk.

use std::time::Instant;

use serde_json::Value;

use super::extensions::{ATOMIC_STRUCTS, FIELDS};
use super::*;
use crate::apiserver::registry::{RESOURCES, ResourceInfo};

fn parse(bytes: &[u8]) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!("document is not JSON: {e}"),
    }
}

fn group_doc(r: &ResourceInfo) -> Value {
    let path = group_path(r.group, r.version);
    match v3_group(&path) {
        Some(bytes) => parse(bytes),
        None => panic!("no v3 document for {path}"),
    }
}

fn gvk_matches(v: &Value, group: &str, version: &str, kind: &str) -> bool {
    v["group"] == group && v["version"] == version && v["kind"] == kind
}

fn schema_gvks(schema: &Value) -> Vec<Value> {
    schema["x-kubernetes-group-version-kind"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    // Mirrors kubectl's PatchMetaFromOpenAPIV3: take allOf[0], then follow the ref.
    let schema = schema["allOf"].get(0).unwrap_or(schema);
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(schemas::V3_REF_PREFIX))
    {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

#[test]
fn documents_parse_and_index_points_at_them() {
    let v2 = parse(v2());
    assert_eq!(v2["swagger"], "2.0");
    let index = parse(v3_index());
    let paths = index["paths"].as_object().cloned().unwrap_or_default();
    assert_eq!(paths.len(), group_versions().len());
    for (path, entry) in &paths {
        let url = entry["serverRelativeURL"].as_str().unwrap_or_default();
        let hash = v3_hash(path).unwrap_or_default();
        assert_eq!(url, format!("/openapi/v3/{path}?hash={hash}"));
        assert_eq!(hash.len(), 32);
        let doc = v3_group(path).map(parse);
        assert_eq!(
            doc.as_ref().map(|d| d["openapi"].clone()),
            Some("3.0.0".into())
        );
        // The server may pass the request path as is.
        assert!(v3_group(&format!("/{path}?hash={hash}")).is_some());
    }
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/apps/v1"));
    assert!(v3_group("apis/nope/v1").is_none());
    assert!(v3_group("").is_none());
}

#[test]
fn every_served_kind_has_a_schema() {
    let mut generator = k8s_openapi::schemars::SchemaGenerator::default();
    for r in RESOURCES {
        assert!(
            schemas::add_definition(&mut generator, r.definition),
            "{} is served but openapi/schemas.rs does not know its type",
            r.definition
        );
    }
}

#[test]
fn every_kind_and_list_has_its_gvk() {
    let v2 = parse(v2());
    for r in RESOURCES {
        let list = schemas::list_definition(r);
        let list_kind = format!("{}List", r.kind);
        let doc = group_doc(r);
        for (name, kind) in [(r.definition, r.kind), (list.as_str(), list_kind.as_str())] {
            for schema in [
                &v2["definitions"][name],
                &doc["components"]["schemas"][name],
            ] {
                assert!(
                    schema_gvks(schema)
                        .iter()
                        .any(|g| gvk_matches(g, r.group, r.version, kind)),
                    "{name} lacks its group-version-kind"
                );
            }
        }
    }
}

#[test]
fn every_patch_takes_field_validation_and_strategic_merge() {
    for (group, version) in group_versions() {
        let doc = parse(v3_group(&group_path(group, version)).unwrap_or_default());
        for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
            let Some(patch) = item.get("patch") else {
                continue;
            };
            let params: Vec<&str> = patch["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for wanted in ["fieldValidation", "fieldManager", "dryRun", "force"] {
                assert!(params.contains(&wanted), "PATCH {path} lacks {wanted}");
            }
            assert!(
                patch["requestBody"]["content"]
                    .get("application/strategic-merge-patch+json")
                    .is_some(),
                "PATCH {path} does not take strategic merge patches"
            );
            assert!(
                patch["x-kubernetes-group-version-kind"].is_object(),
                "{path}"
            );
            for method in ["post", "put"] {
                if let Some(op) = item.get(method) {
                    let names: Vec<&str> = op["parameters"]
                        .as_array()
                        .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                        .unwrap_or_default();
                    assert!(names.contains(&"fieldValidation"), "{method} {path}");
                }
            }
        }
    }
    // What kubectl's QueryParamVerifierV3 does: some PATCH with the kind's GVK lists the param.
    for r in RESOURCES {
        let doc = group_doc(r);
        let found = doc["paths"].as_object().is_some_and(|paths| {
            paths.values().any(|item| {
                gvk_matches(
                    &item["patch"]["x-kubernetes-group-version-kind"],
                    r.group,
                    r.version,
                    r.kind,
                ) && item["patch"]["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation"))
            })
        });
        assert!(found, "{} has no PATCH with fieldValidation", r.kind);
    }
}

#[test]
fn every_operation_on_explain_paths_carries_a_gvk() {
    // kubectl explain walks /<prefix>/<plural>, .../{name}, and the namespaced variants, and
    // takes the GVK of any get/post/put/patch/delete there; one without a GVK resets it.
    for r in RESOURCES {
        let doc = group_doc(r);
        let prefix = paths::api_prefix(r.group, r.version);
        let candidates = [
            format!("{prefix}/{}", r.plural),
            format!("{prefix}/{}/{{name}}", r.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
        ];
        let mut gvk = None;
        for path in &candidates {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(op) = doc["paths"][path].get(method) {
                    let found = &op["x-kubernetes-group-version-kind"];
                    assert!(
                        gvk_matches(found, r.group, r.version, r.kind),
                        "{method} {path}"
                    );
                    gvk = Some(found.clone());
                }
            }
        }
        let Some(gvk) = gvk else {
            panic!("explain would not find {}", r.plural);
        };
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(
            schemas.values().any(|s| schema_gvks(s).contains(&gvk)),
            "no schema carries {gvk}"
        );
    }
}

#[test]
fn merge_keys_reach_kubectl_apply() {
    let core = parse(v3_group("api/v1").unwrap_or_default());
    let schemas = &core["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    let env = &schemas["io.k8s.api.core.v1.Container"]["properties"]["env"];
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(env["x-kubernetes-patch-strategy"], "merge");
    let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        serde_json::json!(["port", "protocol"])
    );
    let volumes = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");

    // Walk Deployment.spec.template.spec.containers the way kubectl's
    // PatchMetaFromOpenAPIV3 does, starting from the schema found by GVK.
    let apps = parse(v3_group("apis/apps/v1").unwrap_or_default());
    let deployment = apps["components"]["schemas"]
        .as_object()
        .and_then(|s| {
            s.values().find(|v| {
                schema_gvks(v)
                    .iter()
                    .any(|g| gvk_matches(g, "apps", "v1", "Deployment"))
            })
        })
        .cloned()
        .unwrap_or_default();
    let mut schema = &deployment;
    for field in ["spec", "template", "spec"] {
        schema = resolve(&apps, &schema["properties"][field]);
    }
    let containers = &schema["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let container = resolve(&apps, &containers["items"]);
    assert_eq!(
        container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    let strategy = &resolve(&apps, &deployment["properties"]["spec"])["properties"]["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
}

#[test]
fn explain_has_descriptions() {
    let core = parse(v3_group("api/v1").unwrap_or_default());
    let schemas = &core["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert!(
        containers["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("List of containers belonging to the pod")),
        "{containers}"
    );
    // A field that refers to another type keeps its own description next to the allOf.
    let spec = &schemas["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(
        spec["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(spec["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(schemas["io.k8s.api.core.v1.Pod"]["description"].is_string());
    assert!(schemas["io.k8s.api.core.v1.PodList"]["description"].is_string());
}

#[test]
fn meta_types_look_like_kubernetes() {
    let core = parse(v3_group("api/v1").unwrap_or_default());
    let schemas = &core["components"]["schemas"];
    let time = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!(time["type"], "string");
    assert_eq!(time["format"], "date-time");
    for name in [
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ] {
        assert_eq!(schemas[name]["x-kubernetes-int-or-string"], true, "{name}");
        assert!(schemas[name]["description"].is_string(), "{name}");
    }
    for name in [
        "ObjectMeta",
        "ListMeta",
        "Status",
        "DeleteOptions",
        "WatchEvent",
        "Patch",
    ] {
        let full = format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}");
        assert!(schemas[&full].is_object(), "{full} missing");
    }
    // Kubernetes requires metadata on Event only; k8s-openapi says so for every kind.
    assert!(schemas["io.k8s.api.core.v1.Pod"].get("required").is_none());
    let event_required = &schemas["io.k8s.api.core.v1.Event"]["required"];
    assert!(
        event_required
            .as_array()
            .is_some_and(|r| r.contains(&"metadata".into()))
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"]["x-kubernetes-map-type"],
        "atomic"
    );
    let owners = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["ownerReferences"];
    assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
}

#[test]
fn every_ref_resolves_within_its_document() {
    fn check(v: &Value, prefix: &str, defs: &Value, doc: &str) {
        match v {
            Value::Object(obj) => {
                if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix(prefix).unwrap_or(r);
                    assert!(defs.get(name).is_some(), "{doc}: dangling {r}");
                }
                obj.values().for_each(|x| check(x, prefix, defs, doc));
            }
            Value::Array(items) => items.iter().for_each(|x| check(x, prefix, defs, doc)),
            _ => {}
        }
    }
    let v2 = parse(v2());
    check(&v2, schemas::V2_REF_PREFIX, &v2["definitions"], "v2");
    for (group, version) in group_versions() {
        let path = group_path(group, version);
        let doc = parse(v3_group(&path).unwrap_or_default());
        check(
            &doc,
            schemas::V3_REF_PREFIX,
            &doc["components"]["schemas"],
            &path,
        );
        // No $ref keeps siblings in OpenAPI 3 form.
        fn no_siblings(v: &Value, path: &str) {
            match v {
                Value::Object(obj) => {
                    assert!(!obj.contains_key("$ref") || obj.len() == 1, "{path}: {v}");
                    obj.values().for_each(|x| no_siblings(x, path));
                }
                Value::Array(items) => items.iter().for_each(|x| no_siblings(x, path)),
                _ => {}
            }
        }
        no_siblings(&doc, &path);
    }
}

#[test]
fn extension_table_matches_the_schemas() {
    let defs = schemas::definitions();
    for facts in FIELDS {
        let name = facts.definition();
        let prop = &defs
            .get(&name)
            .map(|d| d["properties"][facts.field].clone());
        assert!(
            prop.as_ref().is_some_and(Value::is_object),
            "{name}.{} is not in the generated schemas",
            facts.field
        );
        if facts.list_type.is_some() {
            assert_eq!(
                prop.as_ref().map(|p| p["type"].clone()),
                Some("array".into()),
                "{name}.{}",
                facts.field
            );
        }
    }
    for (package, type_name) in ATOMIC_STRUCTS {
        assert!(
            defs.contains_key(&format!("{package}.{type_name}")),
            "{package}.{type_name}"
        );
    }
}

#[test]
fn build_is_fast() {
    let started = Instant::now();
    let docs = build();
    let elapsed = started.elapsed();
    let total: usize = docs.v2.len() + docs.groups.iter().map(|g| g.document.len()).sum::<usize>();
    println!(
        "built OpenAPI documents in {elapsed:?}: v2 {} bytes, {} v3 documents, {total} bytes in all",
        docs.v2.len(),
        docs.groups.len()
    );
    for g in &docs.groups {
        println!("  {} {} bytes", g.path, g.document.len());
    }
    assert!(elapsed.as_millis() < 1000, "building took {elapsed:?}");
}

#[test]
fn hash_follows_content() {
    assert_eq!(hash_hex(b"abc"), hash_hex(b"abc"));
    assert_ne!(hash_hex(b"abc"), hash_hex(b"abd"));
    assert_eq!(hash_hex(b"").len(), 32);
}

#[test]
fn operation_ids_are_unique() {
    let v2 = parse(v2());
    let mut ids: Vec<String> = Vec::new();
    for item in v2["paths"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .values()
    {
        for (method, op) in item.as_object().cloned().unwrap_or_default() {
            if method != "parameters" {
                ids.push(op["operationId"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operation ids");
    assert!(ids.contains(&"patchCoreV1NamespacedPod".to_string()));
    assert!(ids.contains(&"replaceAppsV1NamespacedDeploymentScale".to_string()));
    assert!(ids.contains(&"deleteCoreV1CollectionNamespacedPod".to_string()));
    assert!(ids.contains(&"listCoreV1PodForAllNamespaces".to_string()));
}

#[test]
fn v2_is_protobuf_when_asked_for_first() {
    for accept in [
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json",
        "text/plain, application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0.9",
    ] {
        assert!(wants_v2_protobuf(accept), "{accept}");
    }
    for accept in [
        "",
        "*/*",
        "application/json",
        "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "application/vnd.kubernetes.protobuf",
    ] {
        assert!(!wants_v2_protobuf(accept), "{accept}");
    }
}
