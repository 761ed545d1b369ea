//! Turning a request path into what it names.

use std::collections::HashMap;

use super::registry::{self, ResourceInfo};

/// A request on a resource: a collection, one object, or an object's subresource.
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    /// The resource in the version it is stored in: what the handlers read and write.
    pub info: &'static ResourceInfo,
    /// The version the path names: what the client sends and receives. The same entry as
    /// `info` unless the resource is served in several versions.
    pub served: &'static ResourceInfo,
    /// Set for namespaced resources when the path names a namespace.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    Health,
    /// `/metrics`: Prometheus metrics of the whole control plane process.
    Metrics,
    Resource(ResourceRequest),
    NotFound,
}

pub fn parse(path: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["metrics"] => Route::Metrics,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        ["api"] => Route::CoreVersions,
        ["api", version] => Route::GroupVersion(String::new(), version.to_string()),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["apis", group, version] => Route::GroupVersion(group.to_string(), version.to_string()),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let found = |plural: &str| registry::lookup(group, version, plural);
    let req = |info: &'static ResourceInfo,
               namespace: Option<&str>,
               name: Option<&str>,
               sub: Option<&str>| {
        Route::Resource(ResourceRequest {
            info: info.storage(),
            served: info,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        // /namespaces/<ns>/<plural>[/<name>[/<sub>]] when <plural> is a namespaced resource;
        // otherwise /namespaces/<name>[/<sub>] addresses the Namespace object itself.
        ["namespaces", ns, plural, tail @ ..] if found(plural).is_some_and(|i| i.namespaced) => {
            let Some(info) = found(plural) else {
                return Route::NotFound;
            };
            match tail {
                [] => req(info, Some(ns), None, None),
                [name] => req(info, Some(ns), Some(name), None),
                [name, sub] => req(info, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            }
        }
        [plural, tail @ ..] => {
            let Some(info) = found(plural) else {
                return Route::NotFound;
            };
            match tail {
                [] => req(info, None, None, None),
                [name] if !info.namespaced => req(info, None, Some(name), None),
                [name, sub] if !info.namespaced => req(info, None, Some(name), Some(sub)),
                // nodes/<name>/proxy/<path>: the rest is the agent's path.
                [name, "proxy", ..] if !info.namespaced && info.has_subresource("proxy") => {
                    req(info, None, Some(name), Some("proxy"))
                }
                _ => Route::NotFound,
            }
        }
        [] => Route::NotFound,
    }
}

/// Decoded query parameters (last value wins, as in Kubernetes for single-valued ones).
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map = HashMap::new();
        if let Some(q) = raw {
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Query(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(String::as_str),
            Some("1" | "true" | "True")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceRequest {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.info.kind, "Pod");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(r.info.kind, "Namespace");
        assert_eq!(r.name.as_deref(), Some("kube-system"));
        let r = res("/api/v1/namespaces/x/status");
        assert_eq!(r.info.kind, "Namespace");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/apis/apps/v1/deployments");
        assert!(r.namespace.is_none() && r.name.is_none());
        let r = res("/apis/apps/v1/namespaces/a/deployments/d/scale");
        assert_eq!(r.subresource.as_deref(), Some("scale"));
        let r = res("/api/v1/nodes/n1");
        assert_eq!(r.name.as_deref(), Some("n1"));
        assert!(matches!(parse("/api/v1/pods/x"), Route::NotFound));
        assert!(matches!(parse("/api/v1/widgets"), Route::NotFound));
        assert!(matches!(parse("/apis/apps/v1"), Route::GroupVersion(..)));
        let r = res("/apis/autoscaling/v1/namespaces/a/horizontalpodautoscalers/h/status");
        assert_eq!((r.info.version, r.served.version), ("v2", "v1"));
        let r = res("/apis/autoscaling/v2/horizontalpodautoscalers");
        assert_eq!((r.info.version, r.served.version), ("v2", "v2"));
    }
}
