//! Authorization, kept to the identities that must not do everything: anonymous requests
//! and bootstrap tokens. Everyone else authenticated (admin, components, nodes) may do
//! anything, as before there was any authorizer; there is no RBAC and no Node authorizer.
//!
//! The rules are the ones a kubeadm cluster grants these identities:
//! - anonymous: `system:public-info-viewer` (health and version) and kubeadm's rule that
//!   lets anyone read `kube-public/cluster-info`;
//! - `system:bootstrappers`: `system:node-bootstrapper` (create, get, list, watch CSRs),
//!   `system:discovery`, `system:public-info-viewer`, and the cluster-info ConfigMap.

use http::Method;
use serde_json::json;

use super::bootstrap_token::BOOTSTRAPPERS_GROUP;
use super::route::{self, Query, ResourceRequest, Route};
use super::server::Identity;
use super::status::ApiError;

pub const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
pub const CLUSTER_INFO: &str = "cluster-info";

/// What the authorizer says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401: no credentials, and the request needs some.
    Unauthorized,
    /// 403 with Kubernetes' message.
    Forbidden(String),
}

/// The request as the authorizer sees it.
pub struct Attributes<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The raw query string (read only for the restricted identities).
    pub query: Option<&'a str>,
}

/// Whether `id` (`None`: no credentials) may make the request.
pub fn authorize(id: Option<&Identity>, attrs: &Attributes<'_>) -> Decision {
    let restricted_bootstrapper =
        id.is_some_and(|i| i.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP));
    if id.is_some() && !restricted_bootstrapper {
        return Decision::Allow;
    }
    let route = route::parse(attrs.path);
    let read = matches!(*attrs.method, Method::GET | Method::HEAD);
    let public_info = read && matches!(route, Route::Version | Route::Health);
    let cluster_info = read && is_cluster_info(&route);
    let Some(id) = id else {
        return if public_info || cluster_info {
            Decision::Allow
        } else {
            Decision::Unauthorized
        };
    };
    let discovery = read
        && matches!(
            route,
            Route::CoreVersions
                | Route::Groups
                | Route::Group(_)
                | Route::GroupVersion(..)
                | Route::OpenApiV2
                | Route::OpenApiV3Index
                | Route::OpenApiV3(_)
        );
    if public_info || cluster_info || discovery {
        return Decision::Allow;
    }
    match &route {
        Route::Resource(res) => {
            let verb = verb(attrs, res);
            let own_csrs = res.info.group == "certificates.k8s.io"
                && res.info.plural == "certificatesigningrequests"
                && res.subresource.is_none()
                && matches!(verb, "create" | "get" | "list" | "watch");
            if own_csrs {
                Decision::Allow
            } else {
                Decision::Forbidden(resource_message(&id.user, verb, res))
            }
        }
        _ => Decision::Forbidden(format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            id.user,
            attrs.method.as_str().to_ascii_lowercase(),
            attrs.path
        )),
    }
}

fn is_cluster_info(route: &Route) -> bool {
    matches!(route, Route::Resource(r)
        if r.info.group.is_empty()
            && r.info.plural == "configmaps"
            && r.namespace.as_deref() == Some(CLUSTER_INFO_NAMESPACE)
            && r.name.as_deref() == Some(CLUSTER_INFO)
            && r.subresource.is_none())
}

/// The request's verb, as RBAC names it.
pub fn verb(attrs: &Attributes<'_>, res: &ResourceRequest) -> &'static str {
    let named = res.name.is_some();
    match *attrs.method {
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD if Query::parse(attrs.query).flag("watch") => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn resource_message(user: &str, verb: &str, res: &ResourceRequest) -> String {
    let resource = match &res.subresource {
        Some(s) => format!("{}/{s}", res.info.plural),
        None => res.info.plural.to_string(),
    };
    let scope = match &res.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let what = match &res.name {
        Some(n) => format!("{} \"{n}\"", res.info.qualified_plural()),
        None => res.info.qualified_plural(),
    };
    format!(
        "{what} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        res.info.group
    )
}

/// The Status a refused request is answered with.
pub fn error(decision: &Decision, path: &str) -> Option<ApiError> {
    match decision {
        Decision::Allow => None,
        Decision::Unauthorized => Some(ApiError::new(401, "Unauthorized", "Unauthorized")),
        Decision::Forbidden(msg) => {
            let mut e = ApiError::forbidden(msg.clone());
            if let Route::Resource(r) = route::parse(path) {
                let mut details = json!({"group": r.info.group, "kind": r.info.plural});
                if let Some(n) = r.name {
                    details["name"] = json!(n);
                }
                e.details = Some(details);
            }
            Some(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrapper() -> Identity {
        Identity {
            user: "system:bootstrap:abcdef".into(),
            groups: vec![
                "system:bootstrappers".into(),
                "system:bootstrappers:skiff:default-node-token".into(),
            ],
        }
    }

    fn decide(id: Option<&Identity>, method: Method, path: &str) -> Decision {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        authorize(
            id,
            &Attributes {
                method: &method,
                path,
                query,
            },
        )
    }

    const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

    #[test]
    fn bootstrappers_may_only_ask_for_certificates() {
        let b = bootstrapper();
        let b = Some(&b);
        assert_eq!(decide(b, Method::POST, CSRS), Decision::Allow);
        assert_eq!(decide(b, Method::GET, CSRS), Decision::Allow);
        assert_eq!(
            decide(b, Method::GET, &format!("{CSRS}?watch=true")),
            Decision::Allow
        );
        assert_eq!(
            decide(b, Method::GET, &format!("{CSRS}/node-csr-x")),
            Decision::Allow
        );
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            assert_eq!(decide(b, Method::GET, path), Decision::Allow, "{path}");
        }
        assert_eq!(
            decide(
                b,
                Method::GET,
                "/api/v1/namespaces/kube-public/configmaps/cluster-info"
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(b, Method::POST, "/api/v1/namespaces/default/pods"),
            Decision::Forbidden(
                "pods is forbidden: User \"system:bootstrap:abcdef\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"".into()
            )
        );
        assert_eq!(
            decide(b, Method::GET, "/api/v1/nodes"),
            Decision::Forbidden(
                "nodes is forbidden: User \"system:bootstrap:abcdef\" cannot list resource \"nodes\" in API group \"\" at the cluster scope".into()
            )
        );
        // Approving or deleting its own request is the cluster's business, not the node's.
        for (m, p) in [
            (Method::PUT, format!("{CSRS}/x/approval")),
            (Method::PUT, format!("{CSRS}/x/status")),
            (Method::DELETE, format!("{CSRS}/x")),
            (Method::PATCH, format!("{CSRS}/x")),
        ] {
            assert!(matches!(decide(b, m, &p), Decision::Forbidden(_)), "{p}");
        }
        assert!(matches!(
            decide(
                b,
                Method::GET,
                "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef"
            ),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            decide(b, Method::GET, "/metrics"),
            Decision::Forbidden(m) if m == "forbidden: User \"system:bootstrap:abcdef\" cannot get path \"/metrics\""
        ));
    }

    #[test]
    fn anonymous_sees_public_info_only() {
        for path in [
            "/version",
            "/healthz",
            "/livez",
            "/readyz",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ] {
            assert_eq!(decide(None, Method::GET, path), Decision::Allow, "{path}");
        }
        for (m, path) in [
            (Method::GET, "/api/v1/namespaces/default/pods"),
            (Method::GET, "/api"),
            (Method::GET, "/api/v1/namespaces/kube-public/configmaps"),
            (
                Method::GET,
                "/api/v1/namespaces/kube-system/configmaps/cluster-info",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/kube-public/configmaps/cluster-info",
            ),
            (Method::POST, CSRS),
        ] {
            assert_eq!(decide(None, m, path), Decision::Unauthorized, "{path}");
        }
    }

    #[test]
    fn everyone_else_may_do_anything() {
        let node = Identity {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        };
        let admin = Identity {
            user: "skiff-admin".into(),
            groups: vec!["system:masters".into()],
        };
        for id in [&node, &admin] {
            assert_eq!(
                decide(
                    Some(id),
                    Method::DELETE,
                    "/api/v1/namespaces/default/pods/x"
                ),
                Decision::Allow
            );
        }
    }
}
