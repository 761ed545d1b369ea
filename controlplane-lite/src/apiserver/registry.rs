//! The kinds the API server serves, and what it knows about each.

/// Static facts about one served resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name as it appears in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served besides the main resource (`status`, `scale`, `binding`).
    pub subresources: &'static [&'static str],
    /// The fully qualified OpenAPI definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: &'static str,
    /// The version objects of this resource are stored in. Every version of a resource
    /// shares one storage prefix; a version other than this one is converted at the API
    /// boundary (see `apiserver::conversion`).
    pub storage_version: &'static str,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as Kubernetes names a resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage prefix: `/registry/<group or core>/<plural>/`.
    pub fn storage_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// Whether this is the version objects are stored in.
    pub fn is_storage(&self) -> bool {
        self.version == self.storage_version
    }

    /// The entry of the version objects are stored in (this one unless the resource is
    /// served in several versions).
    pub fn storage(&'static self) -> &'static ResourceInfo {
        if self.is_storage() {
            return self;
        }
        lookup(self.group, self.storage_version, self.plural).unwrap_or(self)
    }
}

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $def:expr) => {
        res!(
            $group, $version, $kind, $plural, $singular, $ns, $short, $cat, $sub, $def, $version
        )
    };
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $def:expr, $stored:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            definition: $def,
            storage_version: $stored,
        }
    };
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every resource served, grouped by API group and version.
pub static RESOURCES: &[ResourceInfo] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        NONE,
        &["status"],
        "io.k8s.api.core.v1.Namespace"
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        NONE,
        &["status", "proxy"],
        "io.k8s.api.core.v1.Node"
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        &[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward"
        ],
        "io.k8s.api.core.v1.Pod"
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &["status"],
        "io.k8s.api.core.v1.Service"
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        NONE,
        NONE,
        "io.k8s.api.core.v1.Endpoints"
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        NONE,
        NONE,
        "io.k8s.api.core.v1.ConfigMap"
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        NONE,
        NONE,
        NONE,
        "io.k8s.api.core.v1.Secret"
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        NONE,
        NONE,
        "io.k8s.api.core.v1.Event"
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        NONE,
        NONE,
        "io.k8s.api.core.v1.ServiceAccount"
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        NONE,
        &["status"],
        "io.k8s.api.core.v1.PersistentVolume"
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        NONE,
        &["status"],
        "io.k8s.api.core.v1.PersistentVolumeClaim"
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &["status", "scale"],
        "io.k8s.api.apps.v1.Deployment"
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &["status", "scale"],
        "io.k8s.api.apps.v1.ReplicaSet"
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        &["status", "scale"],
        "io.k8s.api.apps.v1.StatefulSet"
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &["status"],
        "io.k8s.api.apps.v1.DaemonSet"
    ),
    res!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        NONE,
        NONE,
        NONE,
        "io.k8s.api.apps.v1.ControllerRevision"
    ),
    // One resource in two versions: v2 is stored and preferred (listed first, so discovery
    // prefers it); v1 objects are converted on the way in and out.
    res!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        ALL,
        &["status"],
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"
    ),
    res!(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        ALL,
        &["status"],
        "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
        "v2"
    ),
    res!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        NONE,
        ALL,
        &["status"],
        "io.k8s.api.batch.v1.Job"
    ),
    res!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        ALL,
        &["status"],
        "io.k8s.api.batch.v1.CronJob"
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        NONE,
        NONE,
        NONE,
        "io.k8s.api.discovery.v1.EndpointSlice"
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        NONE,
        &["status"],
        "io.k8s.api.networking.v1.Ingress"
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        NONE,
        NONE,
        NONE,
        "io.k8s.api.coordination.v1.Lease"
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        &["sc"],
        NONE,
        NONE,
        "io.k8s.api.storage.v1.StorageClass"
    ),
    res!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        NONE,
        &["status"],
        "io.k8s.api.policy.v1.PodDisruptionBudget"
    ),
    res!(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        NONE,
        &["status", "approval"],
        "io.k8s.api.certificates.v1.CertificateSigningRequest"
    ),
];

/// The group/versions served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Looks a resource up by group, version and plural name.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Every resource once, in the version it is stored in (for walks over the store).
pub fn stored() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.is_storage())
}

/// Looks a resource up by its `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Resources of one group/version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        for r in RESOURCES {
            assert_eq!(
                lookup(r.group, r.version, r.plural).map(|x| x.kind),
                Some(r.kind)
            );
            assert_eq!(
                by_kind(&r.api_version(), r.kind).map(|x| x.plural),
                Some(r.plural)
            );
        }
        assert_eq!(group_versions().first(), Some(&("", "v1")));
    }

    #[test]
    fn versions_share_storage() {
        let v1 = lookup("autoscaling", "v1", "horizontalpodautoscalers").expect("v1");
        let v2 = lookup("autoscaling", "v2", "horizontalpodautoscalers").expect("v2");
        assert!(!v1.is_storage() && v2.is_storage());
        assert!(std::ptr::eq(v1.storage(), v2) && std::ptr::eq(v2.storage(), v2));
        assert_eq!(v1.storage_prefix(), v2.storage_prefix());
        let gvs = group_versions();
        let pos = |v| gvs.iter().position(|gv| *gv == ("autoscaling", v));
        assert!(pos("v2") < pos("v1"), "v2 is preferred");
        assert_eq!(
            stored()
                .filter(|r| r.plural == "horizontalpodautoscalers")
                .count(),
            1
        );
        for r in RESOURCES {
            assert!(
                lookup(r.group, r.storage_version, r.plural).is_some(),
                "{}",
                r.plural
            );
        }
    }
}
