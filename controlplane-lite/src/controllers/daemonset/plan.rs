//! What a DaemonSet sync should do, as pure functions of what the caches show: which nodes
//! need a pod, which pods must go (`manage`), and the next step of a rolling update, within
//! `maxUnavailable` or `maxSurge` (`rolling_update`), as kube-controller-manager decides them.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::placement::should_run;
use crate::controllers::revision_history::POD_REVISION_LABEL;
use crate::controllers::set_pods::{is_available, is_ready, is_terminating, phase};

/// The annotation the API server keeps the template generation in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The label daemon pods carry with their template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The changes one step makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to make a pod on.
    pub create_on: Vec<String>,
    pub delete: Vec<Arc<Pod>>,
    /// Failed pods to delete, with their node (deleted under a back-off per node).
    pub failed: Vec<(String, Arc<Pod>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty() && self.failed.is_empty()
    }
}

/// Daemon pods grouped by the node they are bound (or pinned) to.
pub type ByNode = BTreeMap<String, Vec<Arc<Pod>>>;

/// Scheduled pods first, then oldest first, then by name.
pub fn sort_oldest_first(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        bound(b)
            .cmp(&bound(a))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether the pod runs the current template: its revision hash, or the template generation
/// when the API server keeps one.
pub fn is_updated(ds: &DaemonSet, pod: &Pod, hash: &str) -> bool {
    let generation = ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION));
    (!hash.is_empty() && label(pod, POD_REVISION_LABEL) == Some(hash))
        || generation.is_some_and(|g| label(pod, TEMPLATE_GENERATION_LABEL) == Some(g.as_str()))
}

fn rolling(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let s = ds.spec.as_ref()?.update_strategy.as_ref()?;
    if s.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    s.rolling_update.as_ref()
}

/// A count or percentage of `total`, percentages rounded up.
fn scaled_up(v: Option<&IntOrString>, total: i32) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| ((p * i64::from(total) + 99) / 100) as i32)
            .unwrap_or(0),
    }
}

/// Whether the strategy lets a new pod start beside the old one.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    rolling(ds).is_some_and(|r| scaled_up(r.max_surge.as_ref(), 1) > 0)
}

/// Creates and deletes that put one daemon pod on every node that should run one and none
/// elsewhere.
pub fn manage(
    ds: &DaemonSet,
    spec: &PodSpec,
    nodes: &[Arc<Node>],
    by_node: &ByNode,
    hash: &str,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let surge = allows_surge(ds);
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (run, keep) = should_run(spec, node);
        let pods = by_node.get(&name).filter(|p| !p.is_empty());
        match pods {
            None if run => plan.create_on.push(name),
            None => {}
            Some(pods) if keep => {
                let mut running = Vec::new();
                for p in pods.iter().filter(|p| !is_terminating(p)) {
                    match phase(p) {
                        "Failed" => plan.failed.push((name.clone(), p.clone())),
                        "Succeeded" => plan.delete.push(p.clone()),
                        _ => running.push(p.clone()),
                    }
                }
                if running.len() <= 1 {
                    continue;
                }
                sort_oldest_first(&mut running);
                if !surge {
                    plan.delete.extend(running.into_iter().skip(1));
                    continue;
                }
                // Surging: the oldest old pod and the oldest new pod may stand together.
                let (mut oldest_new, mut oldest_old) = (None, None);
                for p in running {
                    let slot = if is_updated(ds, &p, hash) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(p);
                    } else {
                        plan.delete.push(p);
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                    && (!is_ready(&old) || is_available(&new, min_ready, now))
                {
                    plan.delete.push(old);
                }
            }
            Some(pods) => plan
                .delete
                .extend(pods.iter().filter(|p| !is_terminating(p)).cloned()),
        }
    }
    // Pods bound to nodes that are gone.
    for (node, pods) in by_node {
        if !nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        {
            plan.delete
                .extend(pods.iter().filter(|p| !is_terminating(p)).cloned());
        }
    }
    plan
}

/// The updated and the old pod on a node.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// The updated and the old pod on a node; None when there are several of either (manage
/// settles that first).
fn split_updated<'a>(ds: &DaemonSet, pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let (mut new, mut old) = (None, None);
    for p in pods.iter().filter(|p| !is_terminating(p)) {
        let slot = if is_updated(ds, p, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(p);
    }
    Some((new, old))
}

/// One step of a rolling update: old pods to delete (and, when surging, nodes to start a new
/// pod on beside the old), keeping within the strategy's budget.
pub fn rolling_update(
    ds: &DaemonSet,
    spec: &PodSpec,
    nodes: &[Arc<Node>],
    by_node: &ByNode,
    hash: &str,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let Some(ru) = rolling(ds) else {
        return plan;
    };
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    // Every node that should run a pod takes part, with or without one.
    let mut targets: BTreeMap<String, Vec<Arc<Pod>>> = by_node.clone();
    let mut wanted: BTreeMap<String, bool> = BTreeMap::new();
    let mut desired = 0;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (run, _) = should_run(spec, node);
        wanted.insert(name.clone(), run);
        if run {
            desired += 1;
            targets.entry(name).or_default();
        }
    }
    let mut max_unavailable = scaled_up(ru.max_unavailable.as_ref(), desired);
    let max_surge = scaled_up(ru.max_surge.as_ref(), desired);
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let available = |p: &Pod| is_available(p, min_ready, now);

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in targets.values() {
            match split_updated(ds, pods, hash) {
                None => unavailable += 1,
                Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replace.push(old.clone());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).max(0) as usize;
        plan.delete = replace;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }

    let mut surged = 0;
    let mut replace_on = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in &targets {
        let Some((new, old)) = split_updated(ds, pods, hash) else {
            surged += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if wanted.get(node) == Some(&true) {
                        replace_on.push(node.clone());
                    } else {
                        plan.delete.push(old.clone());
                    }
                } else if surged < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    plan.delete.push(old.clone());
                } else {
                    surged += 1;
                }
            }
        }
    }
    let room = (max_surge - surged).max(0) as usize;
    plan.create_on = replace_on;
    plan.create_on.extend(candidates.into_iter().take(room));
    plan
}
