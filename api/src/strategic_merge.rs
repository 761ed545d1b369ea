//! Strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! This is the patch `kubectl apply`, `edit`, `set image`, `label`,
//! `annotate` and `rollout restart` send. It is a JSON merge patch with
//! extra rules that depend on *where* a field sits in the object:
//!
//! * maps merge recursively and `null` deletes a key;
//! * lists replace atomically, unless the field is declared a merging list:
//!   lists of primitives then take the union, lists of objects merge
//!   element-wise by a merge key (`containers` by `name`, `ports` by
//!   `containerPort`, ...);
//! * directives steer the merge: `$patch: replace|delete|merge` in maps and
//!   list elements, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//!   `$setElementOrder/<field>` (which fixes the order of a merged list).
//!
//! Where a field merges and by which key comes from the `patchStrategy` /
//! `patchMergeKey` tags of the Kubernetes API types; [`lookup`] holds that
//! table as a small type graph walked from each kind's root. Kinds the
//! table does not know get plain JSON merge patch (RFC 7386) semantics;
//! [`is_strategic_kind`] tells the server which ones those are (Kubernetes
//! itself refuses strategic patches for custom resources).

use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// A strategic merge patch could not be applied. Messages follow
/// Kubernetes' wording where it has one, with the offending part appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document: the {which} must be a JSON object, got {value}")]
    NotAnObject {
        /// "original" or "patch".
        which: &'static str,
        /// The value, as JSON.
        value: String,
    },
    /// `$patch` has a value other than replace, delete or merge.
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive's value, as JSON.
        directive: String,
        /// The map holding it, as JSON.
        map: String,
    },
    /// An element of a merging list lacks the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The element, as JSON.
        map: String,
        /// The merge key.
        key: String,
    },
    /// A list of objects should merge but the field has no merge key.
    #[error("cannot merge lists without merge key for {field}")]
    NoMergeKeyForField {
        /// The field name.
        field: String,
    },
    /// `$retainKeys` is not a list, or the patch sets a key it does not list.
    #[error("invalid patch format of retainKeys: {detail}")]
    BadRetainKeys {
        /// What was wrong.
        detail: String,
    },
    /// `$setElementOrder/<field>` is not a list, or the field is not a list.
    #[error("invalid patch format of setElementOrder list: {key}: {value}")]
    BadSetElementOrder {
        /// The directive key.
        key: String,
        /// The offending value, as JSON.
        value: String,
    },
    /// The patch list's order contradicts `$setElementOrder`.
    #[error(
        "The order in patch list:\n{patch_list}\n doesn't match $setElementOrder list:\n{order_list}\n"
    )]
    SetElementOrderMismatch {
        /// The patch list, as JSON.
        patch_list: String,
        /// The order list, as JSON.
        order_list: String,
    },
    /// A merging list contains lists.
    #[error("lists of lists are not supported: field {field}")]
    ListOfLists {
        /// The field name.
        field: String,
    },
    /// A merging list mixes element types (e.g. objects and strings).
    #[error("list element types are not identical: field {field}: {values}")]
    MixedListTypes {
        /// The field name.
        field: String,
        /// The elements, as JSON.
        values: String,
    },
    /// `$patch: merge` appeared as a list element.
    #[error("merging lists cannot yet be specified in the patch: field {field}")]
    MergeDirectiveInList {
        /// The field name.
        field: String,
    },
}

/// The types of the Kubernetes API that carry patch strategies somewhere
/// below them. Fields not listed merge like JSON merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    ObjectMeta,
    /// A kind about which only `metadata` is known.
    Object,
    Pod,
    PodSpec,
    PodStatus,
    Container,
    PodTemplate,
    PodTemplateSpec,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController, Job.
    Workload,
    WorkloadSpec,
    CronJob,
    CronJobSpec,
    JobTemplateSpec,
    /// A status whose `conditions` merge by `type`.
    ConditionsStatus,
    /// A kind whose only strategic field is `status.conditions`.
    WithConditionsStatus,
    Service,
    ServiceSpec,
    Node,
    NodeSpec,
    NodeStatus,
    ServiceAccount,
    ComponentStatus,
    PodDisruptionBudget,
    PodDisruptionBudgetSpec,
    WebhookConfiguration,
    Webhook,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicySpec,
    ResourceClaim,
    ResourceClaimStatus,
    CsiNode,
    CsiNodeSpec,
}

/// How one field patches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    /// The type of the value (for lists: of each element), if it matters.
    ty: Option<Ty>,
    /// `patchStrategy: merge` on a list.
    merge: bool,
    /// `patchMergeKey` of a merging list of objects.
    key: Option<&'static str>,
    /// `patchStrategy: replace` on a map.
    replace: bool,
}

impl Meta {
    const fn child(ty: Ty) -> Meta {
        Meta {
            ty: Some(ty),
            merge: false,
            key: None,
            replace: false,
        }
    }

    const fn child_opt(ty: Option<Ty>) -> Meta {
        Meta {
            ty,
            merge: false,
            key: None,
            replace: false,
        }
    }

    const fn merge_by(key: &'static str, ty: Option<Ty>) -> Meta {
        Meta {
            ty,
            merge: true,
            key: Some(key),
            replace: false,
        }
    }

    const fn union() -> Meta {
        Meta {
            ty: None,
            merge: true,
            key: None,
            replace: false,
        }
    }

    const fn replace_map() -> Meta {
        Meta {
            ty: None,
            merge: false,
            key: None,
            replace: true,
        }
    }
}

/// The root type of each kind that supports strategic merge.
fn root_type(kind: &str) -> Option<Ty> {
    Some(match kind {
        "Pod" => Ty::Pod,
        "PodTemplate" => Ty::PodTemplate,
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicationController"
        | "Job" => Ty::Workload,
        "CronJob" => Ty::CronJob,
        "Service" => Ty::Service,
        "Node" => Ty::Node,
        "Namespace"
        | "PersistentVolumeClaim"
        | "HorizontalPodAutoscaler"
        | "FlowSchema"
        | "PriorityLevelConfiguration"
        | "ServiceCIDR" => Ty::WithConditionsStatus,
        "ServiceAccount" => Ty::ServiceAccount,
        "ComponentStatus" => Ty::ComponentStatus,
        "PodDisruptionBudget" => Ty::PodDisruptionBudget,
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => {
            Ty::WebhookConfiguration
        }
        "ValidatingAdmissionPolicy" => Ty::ValidatingAdmissionPolicy,
        "ResourceClaim" => Ty::ResourceClaim,
        "CSINode" => Ty::CsiNode,
        "ConfigMap"
        | "Secret"
        | "Endpoints"
        | "EndpointSlice"
        | "Event"
        | "Lease"
        | "Ingress"
        | "IngressClass"
        | "NetworkPolicy"
        | "Role"
        | "ClusterRole"
        | "RoleBinding"
        | "ClusterRoleBinding"
        | "LimitRange"
        | "ResourceQuota"
        | "PriorityClass"
        | "StorageClass"
        | "PersistentVolume"
        | "ControllerRevision"
        | "CSIDriver"
        | "CSIStorageCapacity"
        | "VolumeAttachment"
        | "RuntimeClass"
        | "CertificateSigningRequest"
        | "ValidatingAdmissionPolicyBinding" => Ty::Object,
        _ => return None,
    })
}

/// The patch metadata of `field` inside a value of type `ty`, transcribed
/// from the struct tags of the Kubernetes API types (core/v1, apps/v1,
/// batch/v1, policy/v1, admissionregistration/v1, storage/v1, resource,
/// meta/v1).
fn lookup(ty: Option<Ty>, field: &str) -> Meta {
    use Ty::*;
    let Some(ty) = ty else {
        return Meta::default();
    };
    let has_metadata = !matches!(
        ty,
        ObjectMeta
            | PodSpec
            | PodStatus
            | Container
            | WorkloadSpec
            | CronJobSpec
            | ConditionsStatus
            | ServiceSpec
            | NodeSpec
            | NodeStatus
            | PodDisruptionBudgetSpec
            | Webhook
            | ValidatingAdmissionPolicySpec
            | ResourceClaimStatus
            | CsiNodeSpec
    );
    if field == "metadata" && has_metadata {
        return Meta::child(ObjectMeta);
    }
    match (ty, field) {
        (ObjectMeta, "finalizers") => Meta::union(),
        (ObjectMeta, "ownerReferences") => Meta::merge_by("uid", None),

        (Pod, "spec") | (PodTemplateSpec, "spec") => Meta::child(PodSpec),
        (Pod, "status") => Meta::child(PodStatus),
        (PodTemplate, "template") | (WorkloadSpec, "template") => Meta::child(PodTemplateSpec),

        (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            Meta::merge_by("name", Some(Container))
        }
        (PodSpec, "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
            Meta::merge_by("name", None)
        }
        (PodSpec, "hostAliases") => Meta::merge_by("ip", None),
        (PodSpec, "topologySpreadConstraints") => Meta::merge_by("topologyKey", None),

        (Container, "ports") => Meta::merge_by("containerPort", None),
        (Container, "env") => Meta::merge_by("name", None),
        (Container, "volumeMounts") => Meta::merge_by("mountPath", None),
        (Container, "volumeDevices") => Meta::merge_by("devicePath", None),

        (PodStatus, "conditions") => Meta::merge_by("type", None),
        (PodStatus, "hostIPs" | "podIPs") => Meta::merge_by("ip", None),
        (PodStatus, "resourceClaimStatuses") => Meta::merge_by("name", None),

        (Workload, "spec") | (JobTemplateSpec, "spec") => Meta::child(WorkloadSpec),
        (CronJob, "spec") => Meta::child(CronJobSpec),
        (CronJobSpec, "jobTemplate") => Meta::child(JobTemplateSpec),

        (Workload | WithConditionsStatus | Service | PodDisruptionBudget, "status") => {
            Meta::child(ConditionsStatus)
        }
        (ConditionsStatus | ComponentStatus, "conditions") => Meta::merge_by("type", None),

        (Service, "spec") => Meta::child(ServiceSpec),
        (ServiceSpec, "ports") => Meta::merge_by("port", None),

        (Node, "spec") => Meta::child(NodeSpec),
        (Node, "status") => Meta::child(NodeStatus),
        (NodeSpec, "podCIDRs") => Meta::union(),
        (NodeStatus, "conditions" | "addresses") => Meta::merge_by("type", None),

        (ServiceAccount, "secrets") => Meta::merge_by("name", None),

        (PodDisruptionBudget, "spec") => Meta::child(PodDisruptionBudgetSpec),
        (PodDisruptionBudgetSpec, "selector") => Meta::replace_map(),

        (WebhookConfiguration, "webhooks") => Meta::merge_by("name", Some(Webhook)),
        (Webhook, "matchConditions") => Meta::merge_by("name", None),
        (ValidatingAdmissionPolicy, "spec") => Meta::child(ValidatingAdmissionPolicySpec),
        (ValidatingAdmissionPolicySpec, "matchConditions" | "variables") => {
            Meta::merge_by("name", None)
        }

        (ResourceClaim, "status") => Meta::child(ResourceClaimStatus),
        (ResourceClaimStatus, "reservedFor") => Meta::merge_by("uid", None),

        (CsiNode, "spec") => Meta::child(CsiNodeSpec),
        (CsiNodeSpec, "drivers") => Meta::merge_by("name", None),

        _ => Meta::default(),
    }
}

/// Whether `kind` gets strategic semantics (otherwise
/// [`apply_strategic_merge_patch`] falls back to JSON merge patch).
pub fn is_strategic_kind(kind: &str) -> bool {
    root_type(kind).is_some()
}

/// How a field of a kind patches, for callers that compute patches or
/// explain them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldStrategy {
    /// The list merges instead of being replaced.
    pub merge: bool,
    /// For merging lists of objects, the key elements are matched by.
    pub merge_key: Option<&'static str>,
    /// The map is replaced instead of merged.
    pub replace: bool,
}

/// The strategy of the field at `path` (field names from the kind's root;
/// list elements are implicit, so `["spec", "containers", "ports"]` is the
/// ports of every container). `None` for unknown kinds.
pub fn field_strategy(kind: &str, path: &[&str]) -> Option<FieldStrategy> {
    let mut ty = Some(root_type(kind)?);
    let mut meta = Meta::default();
    for field in path {
        meta = lookup(ty, field);
        ty = meta.ty;
    }
    Some(FieldStrategy {
        merge: meta.merge,
        merge_key: meta.key,
        replace: meta.replace,
    })
}

/// Applies `patch` to `original` for an object of `kind` ("Pod",
/// "Deployment", ...) and returns the result. Neither input is modified.
pub fn apply_strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, SmpError> {
    let Some(root) = root_type(kind) else {
        let mut doc = original.clone();
        json_patch::merge(&mut doc, patch);
        return Ok(doc);
    };
    let Value::Object(original) = original else {
        return Err(SmpError::NotAnObject {
            which: "original",
            value: original.to_string(),
        });
    };
    let Value::Object(patch) = patch else {
        return Err(SmpError::NotAnObject {
            which: "patch",
            value: patch.to_string(),
        });
    };
    merge_map(original.clone(), patch.clone(), Some(root)).map(Value::Object)
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> SmpError {
    SmpError::BadPatchType {
        directive: directive.to_string(),
        map: Value::Object(map.clone()).to_string(),
    }
}

fn no_merge_key(map: &Value, key: &str) -> SmpError {
    SmpError::NoMergeKey {
        map: map.to_string(),
        key: key.to_string(),
    }
}

/// Merges `patch` into `original`, both maps of type `ty`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Option<Ty>,
) -> Result<Map<String, Value>, SmpError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                return merge_map(Map::new(), patch, ty);
            }
            Some("delete") => return Ok(Map::new()),
            // Kubernetes only names replace and delete for maps; an explicit
            // "merge" asks for what happens anyway.
            Some("merge") => {
                patch.remove(DIRECTIVE);
            }
            _ => return Err(bad_patch_type(directive, &patch)),
        }
    }

    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, ty)?;

    for (raw_key, patch_value) in patch {
        let (key, delete_list) = match raw_key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(field) => (field.to_string(), true),
            None => (raw_key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let meta = lookup(ty, &key);
        let Some(current) = original.get_mut(&key) else {
            if !delete_list && let Some(v) = fresh(patch_value, meta)? {
                original.insert(key, v);
            }
            continue;
        };
        match (current, patch_value) {
            (Value::Object(current), Value::Object(p)) => {
                let merged = if meta.replace {
                    merge_map(Map::new(), p, meta.ty)?
                } else {
                    merge_map(std::mem::take(current), p, meta.ty)?
                };
                *current = merged;
            }
            (Value::Array(current), Value::Array(p)) => {
                let (merged, _) = merge_list(std::mem::take(current), p, meta, delete_list, &key)?;
                *current = merged;
            }
            (current, p) => {
                if delete_list {
                    continue;
                }
                match fresh(p, meta)? {
                    Some(v) => *current = v,
                    None => {
                        original.remove(&key);
                    }
                }
            }
        }
    }
    Ok(original)
}

/// A patch value for a key the original lacks (or whose type changed):
/// directives are resolved against nothing and nulls dropped, so no `$`
/// keys leak into the stored object. `None` means "leave the key out".
fn fresh(value: Value, meta: Meta) -> Result<Option<Value>, SmpError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => {
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            let ty = if meta.merge { None } else { meta.ty };
            Ok(Some(Value::Object(merge_map(Map::new(), map, ty)?)))
        }
        Value::Array(items) => Ok(Some(Value::Array(fresh_list(items, meta)?))),
        scalar => Ok(Some(scalar)),
    }
}

/// The elements of a list with nothing to merge into: elements carrying a
/// `$patch` directive are dropped (as Kubernetes does), the rest cleaned.
fn fresh_list(items: Vec<Value>, meta: Meta) -> Result<Vec<Value>, SmpError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(map) => {
                if map.contains_key(DIRECTIVE) {
                    continue;
                }
                out.push(Value::Object(merge_map(Map::new(), map, meta.ty)?));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `$retainKeys`: drop every key of the original the list does not name.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadRetainKeys {
            detail: format!("{RETAIN_KEYS} must be a list, got {retain}"),
        });
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(SmpError::BadRetainKeys {
                detail: format!(
                    "patch sets {k:?}, which {} does not list",
                    Value::Array(retain.clone())
                ),
            });
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merge the field's list now (if the patch has
/// one) and put the result in the given order; items only the server has
/// keep their place relative to the original list.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Option<Ty>,
) -> Result<(), SmpError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let field = directive[SET_ELEMENT_ORDER.len()..].to_string();
        let Value::Array(order) = order else {
            return Err(SmpError::BadSetElementOrder {
                key: directive,
                value: order.to_string(),
            });
        };
        let meta = lookup(ty, &field);
        let as_list = |v: Option<&Value>| -> Result<Option<Vec<Value>>, SmpError> {
            match v {
                None => Ok(None),
                Some(Value::Array(a)) => Ok(Some(a.clone())),
                Some(other) => Err(SmpError::BadSetElementOrder {
                    key: directive.clone(),
                    value: format!("{field} is not a list: {other}"),
                }),
            }
        };
        let original_list = as_list(original.get(&field))?;
        let patch_list = as_list(patch.get(&field))?;
        validate_order(patch_list.as_deref().unwrap_or(&[]), &order, meta.key)?;

        let original_list = original_list.unwrap_or_default();
        let (merged, working) = match (original.contains_key(&field), patch_list) {
            (true, None) => (original_list.clone(), None),
            (false, Some(p)) => (fresh_list(p, meta)?, None),
            (true, Some(p)) => merge_list(original_list.clone(), p, meta, false, &field)?,
            (false, None) => continue,
        };
        // Kubernetes orders server-only items against the original list as
        // its merge left it in place: survivors of deletions, then appended
        // items, cut to the original length.
        let server_order = match working {
            Some(mut w) => {
                w.truncate(original_list.len());
                w
            }
            None => original_list,
        };
        let (in_order, server_only) = partition(merged, &order, meta.key)?;
        let result = normalize_order(in_order, server_only, &order, &server_order, meta.key);
        original.insert(field.clone(), Value::Array(result));
        patch.remove(&field);
    }
    Ok(())
}

fn has_delete_directive(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// Checks that the patch list's items appear in `$setElementOrder` in the
/// same relative order (deletions aside).
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&'static str>,
) -> Result<(), SmpError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = patch_list
        .iter()
        .filter(|v| key.is_none() || !has_delete_directive(v))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < kept.len() && oi < order.len() {
        if kept[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same_item(kept[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < kept.len() {
        return Err(SmpError::SetElementOrderMismatch {
            patch_list: Value::Array(patch_list.to_vec()).to_string(),
            order_list: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

/// JSON equality where numbers compare by value (`80` equals `80.0`), as
/// Kubernetes' float64-decoded JSON does.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

/// Whether two list items are "the same element": equal merge-key values
/// for lists of objects, equal values for lists of primitives.
fn same_item(a: &Value, b: &Value, key: Option<&str>) -> Result<bool, SmpError> {
    match key {
        None => Ok(json_eq(a, b)),
        Some(k) => {
            let ka = a.get(k).ok_or_else(|| no_merge_key(a, k))?;
            let kb = b.get(k).ok_or_else(|| no_merge_key(b, k))?;
            Ok(json_eq(ka, kb))
        }
    }
}

/// Position of `item` in `list` by merge key (or value), if present.
fn index_of(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        None => list.iter().position(|v| json_eq(v, item)),
        Some(k) => {
            let want = item.get(k);
            list.iter().position(|v| match (v.get(k), want) {
                (Some(a), Some(b)) => json_eq(a, b),
                (None, None) => true,
                _ => false,
            })
        }
    }
}

/// Splits `merged` into items that appear in `by` and items that do not.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    key: Option<&'static str>,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in merged {
        if let Some(k) = key
            && item.get(k).is_none()
        {
            return Err(no_merge_key(&item, k));
        }
        if index_of(by, &item, key).is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders patch items by `patch_order` and server-only items by
/// `server_order`, then interleaves them: a server-only item goes before a
/// patch item only when both occur in the original list in that order, so
/// new items land before the server items that follow their predecessor.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    patch_items.sort_by_key(|v| index_of(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| index_of(server_order, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_of(server_order, l, key), index_of(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    Object,
    Scalar,
}

/// The common element kind of the lists (Kubernetes refuses mixed lists
/// and lists of lists when it has to merge them).
fn element_kind(a: &[Value], b: &[Value], field: &str) -> Result<Option<ElemKind>, SmpError> {
    let mut kind: Option<(ElemKind, u8)> = None;
    for v in a.iter().chain(b) {
        let (k, tag) = match v {
            Value::Array(_) => {
                return Err(SmpError::ListOfLists {
                    field: field.to_string(),
                });
            }
            Value::Object(_) => (ElemKind::Object, 0),
            Value::String(_) => (ElemKind::Scalar, 1),
            Value::Number(_) => (ElemKind::Scalar, 2),
            Value::Bool(_) => (ElemKind::Scalar, 3),
            Value::Null => (ElemKind::Scalar, 4),
        };
        match kind {
            None => kind = Some((k, tag)),
            Some((_, t)) if t != tag => {
                let all: Vec<Value> = a.iter().chain(b).cloned().collect();
                return Err(SmpError::MixedListTypes {
                    field: field.to_string(),
                    values: Value::Array(all).to_string(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(kind.map(|(k, _)| k))
}

/// Merges two lists of field `field` according to `meta`; `delete_list`
/// marks a `$deleteFromPrimitiveList` patch. Besides the result, returns
/// for merged lists of objects the working list before reordering (the
/// surviving originals, merged, then the appended items), which
/// `$setElementOrder` needs to place server-only items.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: Meta,
    delete_list: bool,
    field: &str,
) -> Result<(Vec<Value>, Option<Vec<Value>>), SmpError> {
    if !meta.merge && !delete_list {
        return Ok((fresh_list(patch, meta)?, None));
    }
    if original.is_empty() && patch.is_empty() {
        return Ok((original, None));
    }
    let kind = element_kind(&original, &patch, field)?;
    if kind != Some(ElemKind::Object) {
        if delete_list {
            let kept = original
                .into_iter()
                .filter(|v| !patch.iter().any(|p| json_eq(p, v)))
                .collect();
            return Ok((kept, None));
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| json_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, None)?;
        let result = normalize_order(in_patch, server_only, &patch, &original, None);
        return Ok((result, None));
    }

    let key = meta.key.ok_or_else(|| SmpError::NoMergeKeyForField {
        field: field.to_string(),
    })?;
    let mut original = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let wanted = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, wanted)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(SmpError::MergeDirectiveInList {
                    field: field.to_string(),
                });
            }
            _ => {
                let map = item.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &map));
            }
        }
    }
    if replace {
        // The list becomes exactly the patch's plain elements.
        original = fresh_list(plain, meta)?;
        plain = Vec::new();
    }

    let server_order = original.clone();
    let mut merged = original;
    for item in &plain {
        let wanted = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
        let found = merged
            .iter()
            .position(|o| o.get(key).is_some_and(|v| json_eq(v, wanted)));
        let Value::Object(patch_map) = item.clone() else {
            continue;
        };
        match found {
            Some(i) => {
                let current = match std::mem::take(&mut merged[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(current, patch_map, meta.ty)?);
            }
            None => {
                if let Some(v) = fresh(Value::Object(patch_map), Meta::child_opt(meta.ty))? {
                    merged.push(v);
                }
            }
        }
    }
    let working = if replace { None } else { Some(merged.clone()) };
    let (in_patch, server_only) = partition(merged, &plain, Some(key))?;
    let result = normalize_order(in_patch, server_only, &plain, &server_order, Some(key));
    Ok((result, working))
}

#[cfg(test)]
mod tests;
