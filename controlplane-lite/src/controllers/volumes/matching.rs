//! Which PersistentVolume a claim may have, as the persistentvolume-binder decides it:
//! enough capacity, a superset of the access modes (the fewest extra modes first), the same
//! class and volume mode, the claim's selector, the node's affinity; a volume pre-bound to
//! the claim wins; otherwise the smallest that fits.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod,
};
use skiff_api::labels::Selector;
use skiff_api::quantity::Quantity;

/// The pre-GA annotation that still wins over `storageClassName`.
pub const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn annotation<'a>(
    m: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

/// The claim's class: `None` when it names none at all (so the default class may be given
/// to it), `Some("")` when it asks for no class.
pub fn claim_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    annotation(&claim.metadata, BETA_CLASS_ANNOTATION).or_else(|| {
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
    })
}

/// The volume's class; empty for none.
pub fn volume_class(pv: &PersistentVolume) -> &str {
    annotation(&pv.metadata, BETA_CLASS_ANNOTATION)
        .or_else(|| {
            pv.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
        })
        .unwrap_or("")
}

pub fn requested_storage(claim: &PersistentVolumeClaim) -> Quantity {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_default()
}

pub fn capacity(pv: &PersistentVolume) -> Quantity {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_default()
}

pub fn claim_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

pub fn volume_modes(pv: &PersistentVolume) -> &[String] {
    pv.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

/// `Filesystem` unless `Block` is asked for.
fn mode(m: Option<&str>) -> &str {
    m.unwrap_or("Filesystem")
}

pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    mode(claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()))
        != mode(pv.spec.as_ref().and_then(|s| s.volume_mode.as_deref()))
}

/// Whether the volume's `claimRef` names this claim (and its uid, once it has one).
pub fn is_bound_to(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if r.name != claim.metadata.name || r.namespace != claim.metadata.namespace {
        return false;
    }
    match r.uid.as_deref() {
        None | Some("") => true,
        uid => uid == claim.metadata.uid.as_deref(),
    }
}

fn phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn term_matches(t: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name")
                .then_some(node.metadata.name.as_deref())
                .flatten();
            requirement_matches(r, v)
        })
}

/// Whether the volume may be used on `node` (no required affinity: anywhere).
pub fn node_affinity_ok(pv: &PersistentVolume, node: &Node) -> bool {
    let Some(required) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, node))
}

/// The claim's selector; `Err` for one that cannot be parsed (nothing matches it).
fn selector(claim: &PersistentVolumeClaim) -> Result<Option<Selector>, ()> {
    match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => Ok(None),
        Some(ls) => Selector::from_label_selector(ls).map(Some).map_err(|_| ()),
    }
}

/// Among `volumes` that all have one set of access modes: the volume pre-bound to the claim
/// if any, otherwise the smallest fitting one. `node` is set when a node is chosen for the
/// claim's consumer (WaitForFirstConsumer); `delay` when one should be but is not yet, in
/// which case only a pre-bound volume is taken.
fn find_in_group<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &[&'a Arc<PersistentVolume>],
    node: Option<&Node>,
    delay: bool,
) -> Option<&'a Arc<PersistentVolume>> {
    let requested = requested_storage(claim);
    let class = claim_class(claim).unwrap_or("");
    let Ok(selector) = selector(claim) else {
        return None;
    };
    let mut best: Option<&'a Arc<PersistentVolume>> = None;
    for &v in volumes {
        let size = capacity(v);
        if size < requested || volume_mode_mismatch(claim, v) {
            continue;
        }
        if v.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let affinity_ok = node.is_none_or(|n| node_affinity_ok(v, n));
        if is_bound_to(v, claim) {
            // Pre-bound: this one or none (on this node).
            return affinity_ok.then_some(v);
        }
        if node.is_none() && delay {
            continue;
        }
        if phase(v) != "Available" || v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_some() {
            continue;
        }
        let labels = v.metadata.labels.clone().unwrap_or_default();
        if selector.as_ref().is_some_and(|s| !s.matches(&labels)) {
            continue;
        }
        if volume_class(v) != class || !affinity_ok {
            continue;
        }
        if best.is_none_or(|b| capacity(b) > size) {
            best = Some(v);
        }
    }
    best
}

/// The volume the claim should be bound to, if one fits.
pub fn find_best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [Arc<PersistentVolume>],
    node: Option<&Node>,
    delay: bool,
) -> Option<&'a Arc<PersistentVolume>> {
    let wanted = claim_modes(claim);
    // Volumes grouped by their exact set of access modes, the smallest sets first.
    let mut groups: BTreeMap<(usize, Vec<String>), Vec<&'a Arc<PersistentVolume>>> =
        BTreeMap::new();
    for v in volumes {
        let mut modes = volume_modes(v).to_vec();
        modes.sort();
        modes.dedup();
        if wanted.iter().all(|m| modes.contains(m)) {
            groups.entry((modes.len(), modes)).or_default().push(v);
        }
    }
    groups
        .values()
        .find_map(|group| find_in_group(claim, group, node, delay))
}

/// Why a volume the claim names cannot be its, if it cannot.
pub fn unsatisfied(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<&'static str> {
    if capacity(pv) < requested_storage(claim) {
        return Some("requested PV is too small");
    }
    if volume_class(pv) != claim_class(claim).unwrap_or("") {
        return Some("storageClassName does not match");
    }
    if volume_mode_mismatch(claim, pv) {
        return Some("incompatible volumeMode");
    }
    None
}

/// The claims a pod uses: its persistentVolumeClaim volumes and its generic ephemeral
/// volumes (whose claims are named `<pod>-<volume>`).
pub fn claims_of(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| format!("{name}-{}", v.name))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pv(v: Value) -> Arc<PersistentVolume> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn volume(name: &str, size: &str, modes: &[&str], class: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"capacity": {"storage": size}, "accessModes": modes,
            "storageClassName": class, "hostPath": {"path": "/x"}}, "status": {"phase": "Available"}})
    }

    fn claim(v: Value) -> PersistentVolumeClaim {
        serde_json::from_value(v).unwrap()
    }

    fn simple_claim(size: &str, modes: &[&str], class: Option<&str>) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": "data", "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        claim(c)
    }

    fn best<'a>(c: &PersistentVolumeClaim, vs: &'a [Arc<PersistentVolume>]) -> Option<&'a str> {
        find_best_match(c, vs, None, false).and_then(|v| v.metadata.name.as_deref())
    }

    #[test]
    fn the_smallest_volume_that_fits() {
        let vs = vec![
            pv(volume("big", "10Gi", &["ReadWriteOnce"], "")),
            pv(volume("small", "1Gi", &["ReadWriteOnce"], "")),
            pv(volume("medium", "5Gi", &["ReadWriteOnce"], "")),
        ];
        assert_eq!(
            best(&simple_claim("2Gi", &["ReadWriteOnce"], Some("")), &vs),
            Some("medium")
        );
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadWriteOnce"], Some("")), &vs),
            Some("small")
        );
        assert_eq!(
            best(&simple_claim("1024Mi", &["ReadWriteOnce"], None), &vs),
            Some("small")
        );
        assert_eq!(
            best(&simple_claim("11Gi", &["ReadWriteOnce"], Some("")), &vs),
            None
        );
    }

    #[test]
    fn class_modes_and_volume_mode_must_match() {
        let vs = vec![
            pv(volume("fast", "1Gi", &["ReadWriteOnce"], "fast")),
            pv(volume(
                "many",
                "1Gi",
                &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
                "",
            )),
            pv(volume("two", "1Gi", &["ReadWriteOnce", "ReadOnlyMany"], "")),
        ];
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadWriteOnce"], Some("fast")), &vs),
            Some("fast")
        );
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadWriteOnce"], Some("slow")), &vs),
            None
        );
        // The fewest extra modes first.
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadOnlyMany"], Some("")), &vs),
            Some("two")
        );
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadWriteMany"], Some("")), &vs),
            Some("many")
        );
        let mut block = simple_claim("1Gi", &["ReadWriteOnce"], Some("fast"));
        block.spec.as_mut().unwrap().volume_mode = Some("Block".into());
        assert_eq!(best(&block, &vs), None);
    }

    #[test]
    fn selectors_prebinding_and_bound_volumes() {
        let mut labelled = volume("labelled", "5Gi", &["ReadWriteOnce"], "");
        labelled["metadata"]["labels"] = json!({"tier": "db"});
        let mut taken = volume("taken", "1Gi", &["ReadWriteOnce"], "");
        taken["spec"]["claimRef"] = json!({"name": "other", "namespace": "ns", "uid": "u9"});
        taken["status"]["phase"] = json!("Bound");
        let mut mine = volume("mine", "8Gi", &["ReadWriteOnce"], "other-class");
        mine["spec"]["claimRef"] = json!({"name": "data", "namespace": "ns"});
        let vs = vec![
            pv(volume("plain", "2Gi", &["ReadWriteOnce"], "")),
            pv(labelled),
            pv(taken),
        ];
        let mut sel = simple_claim("1Gi", &["ReadWriteOnce"], Some(""));
        sel.spec.as_mut().unwrap().selector =
            Some(serde_json::from_value(json!({"matchLabels": {"tier": "db"}})).unwrap());
        assert_eq!(best(&sel, &vs), Some("labelled"));
        assert_eq!(
            best(&simple_claim("1Gi", &["ReadWriteOnce"], Some("")), &vs),
            Some("plain")
        );
        // Pre-bound by claimRef: taken whatever else would fit better (but not if too small).
        let mut with_mine = vs.clone();
        with_mine.push(pv(mine));
        assert_eq!(
            best(
                &simple_claim("1Gi", &["ReadWriteOnce"], Some("")),
                &with_mine
            ),
            Some("mine")
        );
        assert_eq!(
            best(
                &simple_claim("9Gi", &["ReadWriteOnce"], Some("")),
                &with_mine
            ),
            None
        );
    }

    #[test]
    fn waiting_for_a_node_and_node_affinity() {
        let mut local = volume("local", "1Gi", &["ReadWriteOnce"], "local");
        local["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
        let vs = vec![pv(local)];
        let c = simple_claim("1Gi", &["ReadWriteOnce"], Some("local"));
        let node = |n: &str| -> Node {
            serde_json::from_value(
                json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}),
            )
            .unwrap()
        };
        assert!(find_best_match(&c, &vs, None, true).is_none());
        assert!(find_best_match(&c, &vs, Some(&node("n1")), true).is_some());
        assert!(find_best_match(&c, &vs, Some(&node("n2")), true).is_none());
    }

    #[test]
    fn node_selector_operators() {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8"}}}),
        )
        .unwrap();
        let with = |req: Value| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "v"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [req]}}}})).unwrap()
        };
        let ok = |req: Value| node_affinity_ok(&with(req), &n);
        assert!(ok(
            json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]})
        ));
        assert!(!ok(
            json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})
        ));
        assert!(ok(
            json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})
        ));
        assert!(ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})
        ));
        assert!(!ok(
            json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})
        ));
        assert!(ok(
            json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
        ));
        assert!(!ok(json!({})));
    }

    #[test]
    fn a_named_volume_must_satisfy_the_claim() {
        let v = pv(volume("v", "1Gi", &["ReadWriteOnce"], "fast"));
        assert_eq!(
            unsatisfied(&v, &simple_claim("2Gi", &[], Some("fast"))),
            Some("requested PV is too small")
        );
        assert_eq!(
            unsatisfied(&v, &simple_claim("1Gi", &[], Some(""))),
            Some("storageClassName does not match")
        );
        assert_eq!(
            unsatisfied(&v, &simple_claim("1Gi", &[], Some("fast"))),
            None
        );
    }

    #[test]
    fn the_claims_a_pod_uses() {
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "web"}, "spec": {"containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "db"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "cfg", "configMap": {"name": "x"}},
            ]}}),
        )
        .unwrap();
        assert_eq!(
            claims_of(&p),
            vec!["db".to_string(), "web-scratch".to_string()]
        );
    }
}
