//! VolumeBinding, as kube-scheduler's filter does it without CSI: a pod's claims must
//! exist and not be going away (pre-filter); unbound claims of an Immediate class must be
//! bound first (pre-filter); a bound claim's volume must allow the node (its required node
//! affinity); an unbound WaitForFirstConsumer claim needs, on the node, an available volume
//! that fits it or a class that can provision there.
//!
//! The scheduler does not bind volumes itself: once the pod is bound, the
//! persistentvolume-binder names the pod's node on its waiting claims (the
//! `volume.kubernetes.io/selected-node` annotation), and binds or provisions there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use skiff_api::labels::Selector;

use super::node_affinity::Term;
use super::{Plugin, Status};
use crate::controllers::volumes::matching::{
    capacity, claim_class, claim_modes, is_bound_to, requested_storage, volume_class,
    volume_mode_mismatch, volume_modes,
};
use crate::controllers::volumes::{ANN_BIND_COMPLETED, ANN_SELECTED_NODE};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// The provisioner of classes that cannot provision (local volumes made by hand).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// A claim a pod uses: a `persistentVolumeClaim` volume, or the claim of a generic
/// ephemeral volume (named `<pod>-<volume>`, owned by the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodClaim {
    pub name: String,
    pub ephemeral: bool,
}

/// The claims of a pod spec, in the order of its volumes.
pub fn pod_claims(pod_name: &str, spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PodClaim> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(PodClaim {
                    name: c.claim_name.clone(),
                    ephemeral: false,
                })
            } else {
                v.ephemeral.as_ref().map(|_| PodClaim {
                    name: format!("{pod_name}-{}", v.name),
                    ephemeral: true,
                })
            }
        })
        .collect()
}

/// A volume with its required node affinity parsed once.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub pv: Arc<PersistentVolume>,
    /// `None`: the volume may be used anywhere.
    affinity: Option<Vec<Term>>,
}

impl VolumeInfo {
    pub fn new(pv: Arc<PersistentVolume>) -> VolumeInfo {
        let affinity = pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.as_ref())
            .map(|r| r.node_selector_terms.iter().map(Term::parse).collect());
        VolumeInfo { pv, affinity }
    }

    /// Whether the volume's required node affinity lets it be used on `node`: terms ORed,
    /// matched against the node's labels and name as NodeAffinity matches them.
    pub fn fits(&self, node: &NodeInfo) -> bool {
        self.affinity
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t.matches(&node.name, &node.labels)))
    }
}

/// The claims, volumes and classes the scheduler sees, kept current from the watches.
#[derive(Debug, Default)]
pub struct Volumes {
    claims: HashMap<(String, String), Arc<PersistentVolumeClaim>>,
    volumes: HashMap<String, Arc<VolumeInfo>>,
    classes: HashMap<String, Arc<StorageClass>>,
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

impl Volumes {
    pub fn set_claim(&mut self, c: Arc<PersistentVolumeClaim>) {
        let key = (
            c.metadata.namespace.clone().unwrap_or_default(),
            name_of(&c.metadata),
        );
        self.claims.insert(key, c);
    }

    pub fn remove_claim(&mut self, ns: &str, name: &str) {
        self.claims.remove(&(ns.to_string(), name.to_string()));
    }

    pub fn set_volume(&mut self, v: Arc<PersistentVolume>) {
        self.volumes
            .insert(name_of(&v.metadata), Arc::new(VolumeInfo::new(v)));
    }

    pub fn remove_volume(&mut self, name: &str) {
        self.volumes.remove(name);
    }

    pub fn set_class(&mut self, c: Arc<StorageClass>) {
        self.classes.insert(name_of(&c.metadata), c);
    }

    pub fn remove_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    pub fn claim(&self, ns: &str, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.claims.get(&(ns.to_string(), name.to_string()))
    }

    pub fn class(&self, name: &str) -> Option<&Arc<StorageClass>> {
        self.classes.get(name)
    }

    pub fn claim_keys(&self) -> HashSet<(String, String)> {
        self.claims.keys().cloned().collect()
    }

    pub fn volume_names(&self) -> HashSet<String> {
        self.volumes.keys().cloned().collect()
    }

    pub fn class_names(&self) -> HashSet<String> {
        self.classes.keys().cloned().collect()
    }
}

fn annotation<'a>(c: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    c.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

/// Bound, and the binder has finished with it.
fn fully_bound(c: &PersistentVolumeClaim) -> bool {
    !volume_name(c).is_empty() && annotation(c, ANN_BIND_COMPLETED).is_some()
}

/// The claim's class binds only once a consumer is scheduled. A claim without a class, or
/// with a class that does not exist (yet), binds immediately.
fn delays_binding(c: &PersistentVolumeClaim, vols: &Volumes) -> bool {
    let class = claim_class(c).unwrap_or("");
    !class.is_empty()
        && vols
            .class(class)
            .and_then(|sc| sc.volume_binding_mode.as_deref())
            == Some("WaitForFirstConsumer")
}

/// A bound claim and its volume (`None`: the volume does not exist).
#[derive(Debug, Clone)]
struct BoundClaim {
    volume: Option<Arc<VolumeInfo>>,
}

/// An unbound WaitForFirstConsumer claim and what could serve it.
#[derive(Debug, Clone)]
struct WaitingClaim {
    claim: Arc<PersistentVolumeClaim>,
    /// The node the binder has already chosen for it, if any.
    selected: Option<String>,
    /// The volumes of its class (candidates to be matched on each node).
    candidates: Vec<Arc<VolumeInfo>>,
    class: Option<Arc<StorageClass>>,
}

/// What the pre-filter found; `None` from [`pre_filter`] when the pod uses no claims.
#[derive(Debug, Clone, Default)]
pub struct FilterState {
    bound: Vec<BoundClaim>,
    /// Smallest request first, so each gets the smallest volume that fits.
    waiting: Vec<WaitingClaim>,
}

/// kube-scheduler's PreFilter: the claims exist, are not being deleted, are not lost, an
/// ephemeral volume's claim belongs to the pod, and no Immediate claim is still unbound.
pub fn pre_filter(vols: &Volumes, pod: &PodInfo) -> Result<Option<FilterState>, Status> {
    if pod.claims.is_empty() {
        return Ok(None);
    }
    let refuse = |msg: String| Status::unresolvable(Plugin::VolumeBinding, msg);
    let mut claims = Vec::with_capacity(pod.claims.len());
    for pc in &pod.claims {
        let Some(c) = vols.claim(&pod.namespace, &pc.name) else {
            return Err(refuse(if pc.ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim \"{}\"",
                    pc.name
                )
            } else {
                format!("persistentvolumeclaim \"{}\" not found", pc.name)
            }));
        };
        let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Lost") {
            return Err(refuse(format!(
                "persistentvolumeclaim \"{}\" bound to non-existent persistentvolume \"{}\"",
                pc.name,
                volume_name(c)
            )));
        }
        if c.metadata.deletion_timestamp.is_some() {
            return Err(refuse(format!(
                "persistentvolumeclaim \"{}\" is being deleted",
                pc.name
            )));
        }
        if pc.ephemeral {
            let owned = c
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == pod.uid);
            if !owned {
                return Err(refuse(format!(
                    "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
                    pod.namespace, pc.name, pod.namespace, pod.name
                )));
            }
        }
        claims.push(c.clone());
    }
    let mut state = FilterState::default();
    let mut immediate = false;
    for c in claims {
        if fully_bound(&c) {
            state.bound.push(BoundClaim {
                volume: vols.volumes.get(volume_name(&c)).cloned(),
            });
        } else if delays_binding(&c, vols) && volume_name(&c).is_empty() {
            let class_name = claim_class(&c).unwrap_or("").to_string();
            let candidates = vols
                .volumes
                .values()
                .filter(|v| volume_class(&v.pv) == class_name)
                .cloned()
                .collect();
            state.waiting.push(WaitingClaim {
                selected: annotation(&c, ANN_SELECTED_NODE).map(str::to_string),
                class: vols.class(&class_name).cloned(),
                candidates,
                claim: c,
            });
        } else {
            // Immediate, or pre-bound to a volume the binder has not finished binding.
            immediate = true;
        }
    }
    if immediate {
        return Err(refuse(UNBOUND_IMMEDIATE.to_string()));
    }
    state
        .waiting
        .sort_by_key(|w| requested_storage(&w.claim).value());
    Ok(Some(state))
}

/// Whether `v` can serve the waiting claim on `node` (the binder's matching, with the
/// access modes checked as the scheduler's path does): the volume pre-bound to the claim
/// (if the node suits it), or an available one of the class, big enough, of the same
/// volume mode, selected by the claim's selector, that the node may use.
fn matches(
    w: &WaitingClaim,
    v: &VolumeInfo,
    node: &NodeInfo,
    selector: &Option<Selector>,
) -> Option<bool> {
    let pv = &v.pv;
    if capacity(pv) < requested_storage(&w.claim)
        || volume_mode_mismatch(&w.claim, pv)
        || pv.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let fits = v.fits(node);
    if is_bound_to(pv, &w.claim) {
        // Pre-bound to this claim: this volume or none.
        return Some(fits);
    }
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Available")
        || pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some()
    {
        return None;
    }
    let empty = BTreeMap::new();
    let labels = pv.metadata.labels.as_ref().unwrap_or(&empty);
    if selector.as_ref().is_some_and(|s| !s.matches(labels)) || !fits {
        return None;
    }
    let have = volume_modes(pv);
    if !claim_modes(&w.claim).iter().all(|m| have.contains(m)) {
        return None;
    }
    Some(true)
}

/// The volume the waiting claim would get on `node`, none of `chosen`; none when the
/// volume pre-bound to the claim cannot be used there.
fn find_volume<'a>(
    w: &'a WaitingClaim,
    node: &NodeInfo,
    chosen: &HashSet<&str>,
) -> Option<&'a VolumeInfo> {
    let selector = match w.claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => None,
        Some(ls) => Some(Selector::from_label_selector(ls).ok()?),
    };
    let mut best: Option<&VolumeInfo> = None;
    for v in &w.candidates {
        let name = v.pv.metadata.name.as_deref().unwrap_or("");
        if chosen.contains(name) {
            continue;
        }
        match matches(w, v, node, &selector) {
            None => {}
            Some(false) => return None,
            Some(true) if is_bound_to(&v.pv, &w.claim) => return Some(v),
            Some(true) if best.is_none_or(|b| capacity(&b.pv) > capacity(&v.pv)) => {
                best = Some(v);
            }
            Some(true) => {}
        }
    }
    best
}

/// The class's `allowedTopologies`: terms ORed, each term's expressions ANDed, each an
/// `In` over a node label; none at all allows every node.
fn topology_allows(class: &StorageClass, node: &NodeInfo) -> bool {
    let Some(terms) = class.allowed_topologies.as_ref().filter(|t| !t.is_empty()) else {
        return true;
    };
    terms.iter().any(|t| {
        t.match_label_expressions.iter().flatten().all(|e| {
            node.labels
                .get(&e.key)
                .is_some_and(|v| e.values.iter().any(|x| x == v))
        })
    })
}

/// Whether the class can provision a volume usable on `node`.
fn can_provision(class: Option<&StorageClass>, node: &NodeInfo) -> bool {
    class.is_some_and(|c| {
        !c.provisioner.is_empty() && c.provisioner != NO_PROVISIONER && topology_allows(c, node)
    })
}

/// kube-scheduler's Filter (FindPodVolumes): bound claims' volumes must allow the node;
/// waiting claims need a volume there or a class that provisions there.
pub fn filter(state: &FilterState, node: &NodeInfo) -> Option<Status> {
    let refuse = |r: &str| Some(Status::unresolvable(Plugin::VolumeBinding, r));
    for b in &state.bound {
        match &b.volume {
            None => return refuse(PV_NOT_EXIST),
            Some(v) if !v.fits(node) => return refuse(NODE_CONFLICT),
            Some(_) => {}
        }
    }
    let mut chosen: HashSet<&str> = HashSet::new();
    let mut to_provision = Vec::new();
    for w in &state.waiting {
        match w.selected.as_deref() {
            Some(n) if n != node.name => return refuse(BIND_CONFLICT),
            Some(_) => to_provision.push(w),
            None => match find_volume(w, node, &chosen) {
                Some(v) => {
                    chosen.insert(v.pv.metadata.name.as_deref().unwrap_or(""));
                }
                None => to_provision.push(w),
            },
        }
    }
    if to_provision
        .iter()
        .any(|w| !can_provision(w.class.as_deref(), node))
    {
        return refuse(BIND_CONFLICT);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{labelled_node, pod_obj};
    use serde_json::{Value, json};

    fn claim(name: &str, class: &str, volume: Option<&str>) -> Arc<PersistentVolumeClaim> {
        let mut c = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(v) = volume {
            c["spec"]["volumeName"] = json!(v);
            c["metadata"]["annotations"] = json!({ANN_BIND_COMPLETED: "yes"});
        }
        Arc::new(serde_json::from_value(c).unwrap())
    }

    fn volume(
        name: &str,
        class: &str,
        host: Option<&str>,
        claim_ref: Option<&str>,
    ) -> Arc<PersistentVolume> {
        let mut v = json!({"metadata": {"name": name},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                     "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"}},
            "status": {"phase": "Available"}});
        if let Some(h) = host {
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [h]}]}]}});
        }
        if let Some(c) = claim_ref {
            v["spec"]["claimRef"] =
                json!({"namespace": "default", "name": c, "uid": format!("u-{c}")});
            v["status"]["phase"] = json!("Bound");
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "provisioner": provisioner, "volumeBindingMode": mode}))
            .unwrap(),
        )
    }

    fn pod_using(claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::new(&pod_obj("db-1", &[], json!({}), json!({"volumes": vols})))
    }

    fn host(name: &str) -> NodeInfo {
        labelled_node(name, &[("kubernetes.io/hostname", name)])
    }

    fn run(vols: &Volumes, pod: &PodInfo, node: &str) -> Result<Option<Status>, Status> {
        let st = pre_filter(vols, pod)?.expect("the pod uses claims");
        Ok(filter(&st, &host(node)))
    }

    fn reason(s: Option<Status>) -> Option<String> {
        s.map(|s| {
            assert_eq!(s.code, super::super::Code::UnschedulableAndUnresolvable);
            assert_eq!(s.plugin, Plugin::VolumeBinding);
            s.reasons.join("; ")
        })
    }

    #[test]
    fn pods_without_claims_are_skipped() {
        let p = PodInfo::new(&pod_obj("p", &[], json!({}), json!({})));
        assert!(pre_filter(&Volumes::default(), &p).unwrap().is_none());
    }

    #[test]
    fn a_bound_volume_pins_the_pod_to_its_nodes() {
        let mut v = Volumes::default();
        v.set_claim(claim("data", "local", Some("pv1")));
        v.set_volume(volume("pv1", "local", Some("w2"), Some("data")));
        let p = pod_using(&["data"]);
        assert_eq!(reason(run(&v, &p, "w2").unwrap()), None);
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(NODE_CONFLICT)
        );
        // A volume without affinity goes anywhere.
        v.set_volume(volume("pv1", "local", None, Some("data")));
        assert_eq!(reason(run(&v, &p, "w1").unwrap()), None);
    }

    #[test]
    fn a_missing_volume_refuses_every_node() {
        let mut v = Volumes::default();
        v.set_claim(claim("data", "local", Some("gone")));
        let p = pod_using(&["data"]);
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(PV_NOT_EXIST)
        );
    }

    #[test]
    fn missing_deleting_and_lost_claims_refuse_the_pod() {
        let mut v = Volumes::default();
        let p = pod_using(&["data"]);
        let e = pre_filter(&v, &p).unwrap_err();
        assert_eq!(e.reasons, vec!["persistentvolumeclaim \"data\" not found"]);
        assert_eq!(e.code, super::super::Code::UnschedulableAndUnresolvable);
        let mut c = (*claim("data", "local", Some("pv1"))).clone();
        c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        v.set_claim(Arc::new(c));
        let e = pre_filter(&v, &p).unwrap_err();
        assert_eq!(
            e.reasons,
            vec!["persistentvolumeclaim \"data\" is being deleted"]
        );
        let mut c = (*claim("data", "local", Some("pv1"))).clone();
        c.status = Some(serde_json::from_value(json!({"phase": "Lost"})).unwrap());
        v.set_claim(Arc::new(c));
        let e = pre_filter(&v, &p).unwrap_err();
        assert_eq!(
            e.reasons,
            vec!["persistentvolumeclaim \"data\" bound to non-existent persistentvolume \"pv1\""]
        );
    }

    #[test]
    fn unbound_immediate_claims_refuse_the_pod() {
        let mut v = Volumes::default();
        v.set_class(class("fast", "example.com/x", "Immediate"));
        v.set_claim(claim("data", "fast", None));
        let p = pod_using(&["data"]);
        assert_eq!(
            pre_filter(&v, &p).unwrap_err().reasons,
            vec![UNBOUND_IMMEDIATE]
        );
        // No class at all: immediate too.
        v.set_claim(claim("data", "", None));
        assert_eq!(
            pre_filter(&v, &p).unwrap_err().reasons,
            vec![UNBOUND_IMMEDIATE]
        );
        // Named but not yet completed by the binder: still waits.
        let mut c = (*claim("data", "fast", Some("pv1"))).clone();
        c.metadata.annotations = None;
        v.set_claim(Arc::new(c));
        assert_eq!(
            pre_filter(&v, &p).unwrap_err().reasons,
            vec![UNBOUND_IMMEDIATE]
        );
    }

    #[test]
    fn wait_for_first_consumer_needs_a_volume_or_a_provisioner() {
        let mut v = Volumes::default();
        v.set_class(class("manual", NO_PROVISIONER, "WaitForFirstConsumer"));
        v.set_claim(claim("data", "manual", None));
        let p = pod_using(&["data"]);
        // Nothing to bind, nothing can provision.
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );
        // A free volume on w2: w2 only.
        v.set_volume(volume("pv-w2", "manual", Some("w2"), None));
        assert_eq!(reason(run(&v, &p, "w2").unwrap()), None);
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );
        // Two claims cannot share the one volume.
        v.set_claim(claim("logs", "manual", None));
        let two = pod_using(&["data", "logs"]);
        assert_eq!(
            reason(run(&v, &two, "w2").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );
        // Taken by another claim: not available.
        v.set_volume(volume("pv-w2", "manual", Some("w2"), Some("other")));
        assert_eq!(
            reason(run(&v, &p, "w2").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );

        // A class that provisions fits every node...
        v.set_class(class(
            "local-path",
            "rancher.io/local-path",
            "WaitForFirstConsumer",
        ));
        v.set_claim(claim("data", "local-path", None));
        assert_eq!(reason(run(&v, &p, "w1").unwrap()), None);
        // ...its allowed topologies permitting.
        let mut sc = (*class(
            "local-path",
            "rancher.io/local-path",
            "WaitForFirstConsumer",
        ))
        .clone();
        sc.allowed_topologies = Some(vec![
            serde_json::from_value(json!({"matchLabelExpressions": [
            {"key": "kubernetes.io/hostname", "values": ["w2"]}]}))
            .unwrap(),
        ]);
        v.set_class(Arc::new(sc));
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );
        assert_eq!(reason(run(&v, &p, "w2").unwrap()), None);
        // Once the binder chose a node for it, only that node.
        let mut c = (*claim("data", "local-path", None)).clone();
        c.metadata.annotations = Some([(ANN_SELECTED_NODE.to_string(), "w2".to_string())].into());
        v.set_claim(Arc::new(c));
        assert_eq!(reason(run(&v, &p, "w2").unwrap()), None);
        assert_eq!(
            reason(run(&v, &p, "w1").unwrap()).as_deref(),
            Some(BIND_CONFLICT)
        );
    }

    #[test]
    fn ephemeral_volumes_use_the_pods_own_claim() {
        let mut v = Volumes::default();
        v.set_class(class(
            "local-path",
            "rancher.io/local-path",
            "WaitForFirstConsumer",
        ));
        let p = PodInfo::new(&pod_obj(
            "web",
            &[],
            json!({}),
            json!({"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}),
        ));
        assert_eq!(
            pre_filter(&v, &p).unwrap_err().reasons,
            vec![
                "waiting for ephemeral volume controller to create the persistentvolumeclaim \"web-scratch\""
            ]
        );
        let mut c = (*claim("web-scratch", "local-path", None)).clone();
        v.set_claim(Arc::new(c.clone()));
        assert_eq!(
            pre_filter(&v, &p).unwrap_err().reasons,
            vec!["PVC default/web-scratch was not created for pod default/web (pod is not owner)"]
        );
        c.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "web", "controller": true}))
            .unwrap(),
        ]);
        v.set_claim(Arc::new(c));
        assert_eq!(run(&v, &p, "w1").unwrap(), None);
    }
}
