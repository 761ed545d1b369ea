//! Schema facts that k8s-openapi's generated schemas leave out: how strategic merge patch and
//! server-side apply treat lists and maps (`x-kubernetes-patch-*`, `x-kubernetes-list-*`,
//! `x-kubernetes-map-type`). kubectl reads the patch extensions to compute three-way strategic
//! merge patches from the v3 documents; without them every list would be replaced wholesale.
//!
//! The table covers the definitions reachable from the served kinds (Kubernetes 1.33). A unit
//! test checks that every entry names a property the generated schemas really have, so an
//! upgrade of k8s-openapi that renames or drops a field shows up as a failing test.

pub(super) const CORE: &str = "io.k8s.api.core.v1";
pub(super) const APPS: &str = "io.k8s.api.apps.v1";
pub(super) const BATCH: &str = "io.k8s.api.batch.v1";
pub(super) const AUTOSCALING: &str = "io.k8s.api.autoscaling.v2";
pub(super) const DISCOVERY: &str = "io.k8s.api.discovery.v1";
pub(super) const NETWORKING: &str = "io.k8s.api.networking.v1";
pub(super) const POLICY: &str = "io.k8s.api.policy.v1";
pub(super) const STORAGE: &str = "io.k8s.api.storage.v1";
pub(super) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Extensions for one property of one definition.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldFacts {
    /// Package part of the definition name, e.g. `io.k8s.api.core.v1`.
    pub package: &'static str,
    /// Type part of the definition name, e.g. `PodSpec`.
    pub type_name: &'static str,
    pub field: &'static str,
    pub patch_strategy: Option<&'static str>,
    pub merge_key: Option<&'static str>,
    pub list_type: Option<&'static str>,
    pub list_map_keys: &'static [&'static str],
    pub map_type: Option<&'static str>,
}

impl FieldFacts {
    pub fn definition(&self) -> String {
        format!("{}.{}", self.package, self.type_name)
    }

    const fn merge(self, merge_key: &'static str) -> Self {
        self.patch("merge", merge_key)
    }

    const fn patch(mut self, strategy: &'static str, merge_key: &'static str) -> Self {
        self.patch_strategy = Some(strategy);
        self.merge_key = Some(merge_key);
        self
    }

    const fn patch_strategy(mut self, strategy: &'static str) -> Self {
        self.patch_strategy = Some(strategy);
        self
    }

    const fn atomic(mut self) -> Self {
        self.list_type = Some("atomic");
        self
    }

    const fn set(mut self) -> Self {
        self.list_type = Some("set");
        self
    }

    const fn map(mut self, keys: &'static [&'static str]) -> Self {
        self.list_type = Some("map");
        self.list_map_keys = keys;
        self
    }

    const fn map_type(mut self, map_type: &'static str) -> Self {
        self.map_type = Some(map_type);
        self
    }
}

const fn f(package: &'static str, type_name: &'static str, field: &'static str) -> FieldFacts {
    FieldFacts {
        package,
        type_name,
        field,
        patch_strategy: None,
        merge_key: None,
        list_type: None,
        list_map_keys: &[],
        map_type: None,
    }
}

/// Property-level extensions, grouped by package and sorted by type and field.
// One entry per line keeps the table scannable; rustfmt would spread most over three.
#[rustfmt::skip]
pub(super) static FIELDS: &[FieldFacts] = &[
    f(CORE, "Capabilities", "add").atomic(),
    f(CORE, "Capabilities", "drop").atomic(),
    f(CORE, "CephFSPersistentVolumeSource", "monitors").atomic(),
    f(CORE, "CephFSVolumeSource", "monitors").atomic(),
    f(CORE, "ConfigMapProjection", "items").atomic(),
    f(CORE, "ConfigMapVolumeSource", "items").atomic(),
    f(CORE, "Container", "args").atomic(),
    f(CORE, "Container", "command").atomic(),
    f(CORE, "Container", "env").merge("name").map(&["name"]),
    f(CORE, "Container", "envFrom").atomic(),
    f(CORE, "Container", "ports").merge("containerPort").map(&["containerPort", "protocol"]),
    f(CORE, "Container", "resizePolicy").atomic(),
    f(CORE, "Container", "volumeDevices").merge("devicePath").map(&["devicePath"]),
    f(CORE, "Container", "volumeMounts").merge("mountPath").map(&["mountPath"]),
    f(CORE, "ContainerImage", "names").atomic(),
    f(CORE, "ContainerStatus", "allocatedResourcesStatus").merge("name").map(&["name"]),
    f(CORE, "ContainerStatus", "volumeMounts").merge("mountPath").map(&["mountPath"]),
    f(CORE, "DownwardAPIProjection", "items").atomic(),
    f(CORE, "DownwardAPIVolumeSource", "items").atomic(),
    f(CORE, "EndpointSubset", "addresses").atomic(),
    f(CORE, "EndpointSubset", "notReadyAddresses").atomic(),
    f(CORE, "EndpointSubset", "ports").atomic(),
    f(CORE, "Endpoints", "subsets").atomic(),
    f(CORE, "ExecAction", "command").atomic(),
    f(CORE, "FCVolumeSource", "targetWWNs").atomic(),
    f(CORE, "FCVolumeSource", "wwids").atomic(),
    f(CORE, "HTTPGetAction", "httpHeaders").atomic(),
    f(CORE, "HostAlias", "hostnames").atomic(),
    f(CORE, "ISCSIPersistentVolumeSource", "portals").atomic(),
    f(CORE, "ISCSIVolumeSource", "portals").atomic(),
    f(CORE, "LinuxContainerUser", "supplementalGroups").atomic(),
    f(CORE, "LoadBalancerIngress", "ports").atomic(),
    f(CORE, "LoadBalancerStatus", "ingress").atomic(),
    f(CORE, "NamespaceSpec", "finalizers").atomic(),
    f(CORE, "NamespaceStatus", "conditions").merge("type").map(&["type"]),
    f(CORE, "NodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic(),
    f(CORE, "NodeSelector", "nodeSelectorTerms").atomic(),
    f(CORE, "NodeSelectorRequirement", "values").atomic(),
    f(CORE, "NodeSelectorTerm", "matchExpressions").atomic(),
    f(CORE, "NodeSelectorTerm", "matchFields").atomic(),
    f(CORE, "NodeSpec", "podCIDRs").patch_strategy("merge").set(),
    f(CORE, "NodeSpec", "taints").atomic(),
    f(CORE, "NodeStatus", "addresses").merge("type").map(&["type"]),
    f(CORE, "NodeStatus", "conditions").merge("type").map(&["type"]),
    f(CORE, "NodeStatus", "images").atomic(),
    f(CORE, "NodeStatus", "runtimeHandlers").atomic(),
    f(CORE, "NodeStatus", "volumesAttached").atomic(),
    f(CORE, "NodeStatus", "volumesInUse").atomic(),
    f(CORE, "PersistentVolumeClaimSpec", "accessModes").atomic(),
    f(CORE, "PersistentVolumeClaimStatus", "accessModes").atomic(),
    f(CORE, "PersistentVolumeClaimStatus", "allocatedResourceStatuses").map_type("granular"),
    f(CORE, "PersistentVolumeClaimStatus", "conditions").merge("type").map(&["type"]),
    f(CORE, "PersistentVolumeSpec", "accessModes").atomic(),
    f(CORE, "PersistentVolumeSpec", "claimRef").map_type("granular"),
    f(CORE, "PersistentVolumeSpec", "mountOptions").atomic(),
    f(CORE, "PodAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic(),
    f(CORE, "PodAffinity", "requiredDuringSchedulingIgnoredDuringExecution").atomic(),
    f(CORE, "PodAffinityTerm", "matchLabelKeys").atomic(),
    f(CORE, "PodAffinityTerm", "mismatchLabelKeys").atomic(),
    f(CORE, "PodAffinityTerm", "namespaces").atomic(),
    f(CORE, "PodAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic(),
    f(CORE, "PodAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution").atomic(),
    f(CORE, "PodDNSConfig", "nameservers").atomic(),
    f(CORE, "PodDNSConfig", "options").atomic(),
    f(CORE, "PodDNSConfig", "searches").atomic(),
    f(CORE, "PodSecurityContext", "supplementalGroups").atomic(),
    f(CORE, "PodSecurityContext", "sysctls").atomic(),
    f(CORE, "PodSpec", "containers").merge("name").map(&["name"]),
    f(CORE, "PodSpec", "ephemeralContainers").merge("name").map(&["name"]),
    f(CORE, "PodSpec", "hostAliases").merge("ip").map(&["ip"]),
    f(CORE, "PodSpec", "imagePullSecrets").merge("name").map(&["name"]),
    f(CORE, "PodSpec", "initContainers").merge("name").map(&["name"]),
    f(CORE, "PodSpec", "nodeSelector").map_type("atomic"),
    f(CORE, "PodSpec", "readinessGates").atomic(),
    f(CORE, "PodSpec", "resourceClaims").patch("merge,retainKeys", "name").map(&["name"]),
    f(CORE, "PodSpec", "schedulingGates").merge("name").map(&["name"]),
    f(CORE, "PodSpec", "tolerations").atomic(),
    f(CORE, "PodSpec", "topologySpreadConstraints").merge("topologyKey").map(&["topologyKey", "whenUnsatisfiable"]),
    f(CORE, "PodSpec", "volumes").patch("merge,retainKeys", "name").map(&["name"]),
    f(CORE, "PodStatus", "conditions").merge("type").map(&["type"]),
    f(CORE, "PodStatus", "containerStatuses").atomic(),
    f(CORE, "PodStatus", "ephemeralContainerStatuses").atomic(),
    f(CORE, "PodStatus", "hostIPs").merge("ip").atomic(),
    f(CORE, "PodStatus", "initContainerStatuses").atomic(),
    f(CORE, "PodStatus", "podIPs").merge("ip").map(&["ip"]),
    f(CORE, "PodStatus", "resourceClaimStatuses").patch("merge,retainKeys", "name").map(&["name"]),
    f(CORE, "ProjectedVolumeSource", "sources").atomic(),
    f(CORE, "RBDPersistentVolumeSource", "monitors").atomic(),
    f(CORE, "RBDVolumeSource", "monitors").atomic(),
    f(CORE, "ResourceRequirements", "claims").map(&["name"]),
    f(CORE, "ResourceStatus", "resources").map(&["resourceID"]),
    f(CORE, "SecretProjection", "items").atomic(),
    f(CORE, "SecretVolumeSource", "items").atomic(),
    f(CORE, "ServiceAccount", "imagePullSecrets").atomic(),
    f(CORE, "ServiceAccount", "secrets").merge("name").map(&["name"]),
    f(CORE, "ServiceSpec", "clusterIPs").atomic(),
    f(CORE, "ServiceSpec", "externalIPs").atomic(),
    f(CORE, "ServiceSpec", "ipFamilies").atomic(),
    f(CORE, "ServiceSpec", "loadBalancerSourceRanges").atomic(),
    f(CORE, "ServiceSpec", "ports").merge("port").map(&["port", "protocol"]),
    f(CORE, "ServiceSpec", "selector").map_type("atomic"),
    f(CORE, "ServiceStatus", "conditions").merge("type").map(&["type"]),
    f(CORE, "TopologySelectorLabelRequirement", "values").atomic(),
    f(CORE, "TopologySelectorTerm", "matchLabelExpressions").atomic(),
    f(CORE, "TopologySpreadConstraint", "matchLabelKeys").atomic(),
    f(APPS, "DaemonSetStatus", "conditions").merge("type").map(&["type"]),
    f(APPS, "DeploymentSpec", "strategy").patch_strategy("retainKeys"),
    f(APPS, "DeploymentStatus", "conditions").merge("type").map(&["type"]),
    f(APPS, "ReplicaSetStatus", "conditions").merge("type").map(&["type"]),
    f(APPS, "StatefulSetSpec", "volumeClaimTemplates").atomic(),
    f(APPS, "StatefulSetStatus", "conditions").merge("type").map(&["type"]),
    f(AUTOSCALING, "HPAScalingRules", "policies").atomic(),
    f(AUTOSCALING, "HorizontalPodAutoscalerSpec", "metrics").atomic(),
    f(AUTOSCALING, "HorizontalPodAutoscalerStatus", "conditions").merge("type").map(&["type"]),
    f(AUTOSCALING, "HorizontalPodAutoscalerStatus", "currentMetrics").atomic(),
    f(POLICY, "PodDisruptionBudgetStatus", "conditions")
        .merge("type")
        .map(&["type"]),
    f(BATCH, "CronJobStatus", "active").atomic(),
    f(BATCH, "JobStatus", "conditions").merge("type").atomic(),
    f(BATCH, "PodFailurePolicy", "rules").atomic(),
    f(BATCH, "PodFailurePolicyOnExitCodesRequirement", "values").set(),
    f(BATCH, "PodFailurePolicyRule", "onPodConditions").atomic(),
    f(BATCH, "SuccessPolicy", "rules").atomic(),
    f(BATCH, "UncountedTerminatedPods", "failed").set(),
    f(BATCH, "UncountedTerminatedPods", "succeeded").set(),
    f(DISCOVERY, "Endpoint", "addresses").set(),
    f(DISCOVERY, "EndpointHints", "forNodes").atomic(),
    f(DISCOVERY, "EndpointHints", "forZones").atomic(),
    f(DISCOVERY, "EndpointSlice", "endpoints").atomic(),
    f(DISCOVERY, "EndpointSlice", "ports").atomic(),
    f(NETWORKING, "HTTPIngressRuleValue", "paths").atomic(),
    f(NETWORKING, "IngressLoadBalancerIngress", "ports").atomic(),
    f(NETWORKING, "IngressLoadBalancerStatus", "ingress").atomic(),
    f(NETWORKING, "IngressSpec", "rules").atomic(),
    f(NETWORKING, "IngressSpec", "tls").atomic(),
    f(NETWORKING, "IngressTLS", "hosts").atomic(),
    f(STORAGE, "StorageClass", "allowedTopologies").atomic(),
    f(STORAGE, "StorageClass", "mountOptions").atomic(),
    f(META, "APIResource", "categories").atomic(),
    f(META, "APIResource", "shortNames").atomic(),
    f(META, "APIResourceList", "resources").atomic(),
    f(META, "DeleteOptions", "dryRun").atomic(),
    f(META, "LabelSelector", "matchExpressions").atomic(),
    f(META, "LabelSelectorRequirement", "values").atomic(),
    f(META, "ObjectMeta", "finalizers").patch_strategy("merge").set(),
    f(META, "ObjectMeta", "managedFields").atomic(),
    f(META, "ObjectMeta", "ownerReferences").merge("uid").map(&["uid"]),
    f(META, "StatusDetails", "causes").atomic(),
];

/// Definitions that apply treats as one value (`x-kubernetes-map-type: atomic`): a change to
/// any field replaces the whole object.
pub(super) static ATOMIC_STRUCTS: &[(&str, &str)] = &[
    (CORE, "ConfigMapKeySelector"),
    (CORE, "EndpointAddress"),
    (CORE, "EndpointPort"),
    (CORE, "LocalObjectReference"),
    (CORE, "NodeSelector"),
    (CORE, "NodeSelectorTerm"),
    (CORE, "ObjectFieldSelector"),
    (CORE, "ObjectReference"),
    (CORE, "ResourceFieldSelector"),
    (CORE, "SecretKeySelector"),
    (CORE, "SecretReference"),
    (CORE, "TopologySelectorTerm"),
    (CORE, "TypedLocalObjectReference"),
    (DISCOVERY, "EndpointPort"),
    (NETWORKING, "ServiceBackendPort"),
    (META, "LabelSelector"),
    (META, "OwnerReference"),
];
