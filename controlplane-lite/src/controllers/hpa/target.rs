//! The scale target of an HPA: which kinds can be scaled, and their scale (spec and
//! status replicas, pod selector) as the `scale` subresource would report it, read from
//! the informers' caches.

use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use skiff_api::labels::Selector;

use crate::controllers::context::Informers;

/// The kinds with a `scale` subresource here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
}

impl TargetKind {
    /// What the API server names the resource in a "not found" message.
    fn resource(self) -> &'static str {
        match self {
            TargetKind::Deployment => "deployments.apps",
            TargetKind::ReplicaSet => "replicasets.apps",
            TargetKind::StatefulSet => "statefulsets.apps",
        }
    }
}

/// What the `scale` subresource says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    /// The pod selector in its string form; empty when the target has none.
    pub selector: String,
}

/// Maps a reference to a kind, as the REST mapper would: by the group of its apiVersion
/// and its kind. Errors are worded as kube-controller-manager's.
pub fn resolve(reference: &CrossVersionObjectReference) -> Result<TargetKind, String> {
    let av = reference.api_version.as_deref().unwrap_or("");
    let group = match av.split('/').collect::<Vec<_>>().as_slice() {
        [""] | [_] => "",
        [g, _] => g,
        _ => return Err(format!("unexpected GroupVersion string: {av}")),
    };
    match (group, reference.kind.as_str()) {
        ("apps", "Deployment") => Ok(TargetKind::Deployment),
        ("apps", "ReplicaSet") => Ok(TargetKind::ReplicaSet),
        ("apps", "StatefulSet") => Ok(TargetKind::StatefulSet),
        (g, k) => Err(format!("no matches for kind \"{k}\" in group \"{g}\"")),
    }
}

fn selector_string(sel: Option<&LabelSelector>) -> String {
    sel.and_then(|s| Selector::from_label_selector(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The target's scale from the caches.
pub fn scale_of(
    informers: &Informers,
    kind: TargetKind,
    namespace: &str,
    name: &str,
) -> Result<Scale, String> {
    let not_found = || format!("{} \"{name}\" not found", kind.resource());
    let ns = Some(namespace);
    match kind {
        TargetKind::Deployment => {
            let d = informers.deployments.get(ns, name).ok_or_else(not_found)?;
            let spec = d.spec.as_ref();
            Ok(Scale {
                spec_replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
                status_replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                selector: selector_string(spec.map(|s| &s.selector)),
            })
        }
        TargetKind::ReplicaSet => {
            let r = informers.replica_sets.get(ns, name).ok_or_else(not_found)?;
            let spec = r.spec.as_ref();
            Ok(Scale {
                spec_replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
                status_replicas: r.status.as_ref().map_or(0, |s| s.replicas),
                selector: selector_string(spec.map(|s| &s.selector)),
            })
        }
        TargetKind::StatefulSet => {
            let s = informers
                .stateful_sets
                .get(ns, name)
                .ok_or_else(not_found)?;
            let spec = s.spec.as_ref();
            Ok(Scale {
                spec_replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
                status_replicas: s.status.as_ref().map_or(0, |s| s.replicas),
                selector: selector_string(spec.map(|s| &s.selector)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(api_version: Option<&str>, kind: &str) -> CrossVersionObjectReference {
        CrossVersionObjectReference {
            api_version: api_version.map(str::to_string),
            kind: kind.to_string(),
            name: "web".to_string(),
        }
    }

    #[test]
    fn kinds_by_group() {
        assert_eq!(
            resolve(&reference(Some("apps/v1"), "Deployment")),
            Ok(TargetKind::Deployment)
        );
        assert_eq!(
            resolve(&reference(Some("apps/v1"), "StatefulSet")),
            Ok(TargetKind::StatefulSet)
        );
        assert_eq!(
            resolve(&reference(None, "Deployment")),
            Err("no matches for kind \"Deployment\" in group \"\"".to_string())
        );
        assert_eq!(
            resolve(&reference(Some("v1"), "ReplicationController")),
            Err("no matches for kind \"ReplicationController\" in group \"\"".to_string())
        );
        assert_eq!(
            resolve(&reference(Some("a/b/c"), "Deployment")),
            Err("unexpected GroupVersion string: a/b/c".to_string())
        );
    }
}
