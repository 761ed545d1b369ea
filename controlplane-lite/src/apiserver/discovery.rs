//! Discovery documents: `/version`, `/api`, `/apis`, and one resource list per group/version.

use serde_json::{Value, json};

use super::registry::{self, RESOURCES};

/// The Kubernetes version skiff speaks (the API types are those of 1.33).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const GIT_VERSION: &str = concat!("v1.33.0-skiff.", env!("CARGO_PKG_VERSION"));

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str) -> Option<Value> {
    let versions: Vec<Value> = registry::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
}

pub fn groups() -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in registry::group_versions() {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    let mut groups: Vec<Value> = names.into_iter().filter_map(group_json).collect();
    groups.push(crate::metrics_api::group_entry());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str) -> Option<Value> {
    let mut g = group_json(name)?;
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in registry::in_group_version(group, version) {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "storageVersionHash": storage_version_hash(r.group, r.version, r.kind),
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        for sub in r.subresources {
            let entry = match *sub {
                "scale" => json!({
                    "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
                }),
                "binding" => json!({
                    "name": format!("{}/binding", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": "Binding", "verbs": ["create"],
                }),
                // What `kubectl drain` looks for before it evicts rather than deletes.
                "eviction" => json!({
                    "name": format!("{}/eviction", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
                }),
                // Connect subresources, named and with the verbs kube-apiserver gives them.
                "log" => json!({
                    "name": format!("{}/log", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get"],
                }),
                "exec" | "attach" | "portforward" => json!({
                    "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": connect_kind(sub), "verbs": ["create", "get"],
                }),
                "proxy" => json!({
                    "name": format!("{}/proxy", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": format!("{}ProxyOptions", r.kind), "verbs": ["create", "delete", "get", "patch", "update"],
                }),
                other => json!({
                    "name": format!("{}/{other}", r.plural), "singularName": "", "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": ["get", "patch", "update"],
                }),
            };
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn connect_kind(sub: &str) -> &'static str {
    match sub {
        "exec" => "PodExecOptions",
        "attach" => "PodAttachOptions",
        _ => "PodPortForwardOptions",
    }
}

/// A stable short hash per kind; clients only compare it for equality.
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{group}/{version}/{kind}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h.to_be_bytes())[..11].to_string()
}

/// Every kind served, for tests and the OpenAPI documents.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    RESOURCES.iter().map(|r| r.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_cover_every_group() {
        let core = resource_list("", "v1").expect("core");
        assert_eq!(core["groupVersion"], "v1");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"pods/binding") && names.contains(&"namespaces"));
        let eviction = core["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "pods/eviction"))
            .expect("pods/eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert_eq!(eviction["verbs"], json!(["create"]));
        let policy = resource_list("policy", "v1").expect("policy");
        assert!(policy.to_string().contains("\"shortNames\":[\"pdb\"]"));
        let apps = resource_list("apps", "v1").expect("apps");
        assert!(apps.to_string().contains("deployments/scale"));
        assert!(groups().to_string().contains("storage.k8s.io"));
        assert!(group("batch").is_some() && group("nope").is_none());
        assert_eq!(kinds().count(), RESOURCES.len());
    }
}
