//! One scheduling cycle, as kube-scheduler's default profile runs it: pre-filter state,
//! the filters in their order over a rotating window of nodes (stopping once enough
//! feasible nodes are found), the weighted scores of the feasible ones, and a random pick
//! among the best. Pure: a [`View`] and a pod in, a node index or a [`FitError`] out.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rand::Rng;

use super::node_info::NodeInfo;
use super::plugins::node_resources::Reserved;
use super::plugins::{
    Plugin, PluginSet, Status, inter_pod_affinity as ipa, node_affinity, node_ports,
    node_resources, node_unschedulable, pod_topology_spread as pts, taint_toleration,
    volume_binding,
};
use super::pod_info::PodInfo;
use super::snapshot::View;

/// kube-scheduler looks at every node of small clusters, and at a share of large ones
/// that shrinks as they grow, but never fewer than this many feasible nodes.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes are enough to stop filtering (`percentageOfNodesToScore`
/// left at its adaptive default).
pub fn num_feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let pct = 50usize
        .saturating_sub(all / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (all * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Score weights of the default profile.
const TAINT_TOLERATION_WEIGHT: i64 = 3;
const NODE_AFFINITY_WEIGHT: i64 = 2;
const FIT_WEIGHT: i64 = 1;
const SPREAD_WEIGHT: i64 = 2;
const INTER_POD_AFFINITY_WEIGHT: i64 = 2;
const BALANCED_WEIGHT: i64 = 1;

pub const NO_NODES: &str = "no nodes available to schedule pods";

/// Why no node could take the pod: per node, the first filter that refused it.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub num_all_nodes: usize,
    /// Failing nodes, by index, with their status.
    pub statuses: Vec<(usize, Status)>,
    /// The status of the nodes not looked at (a pre-filter narrowed the search).
    pub absent: Option<Status>,
    /// A pre-filter refused the pod outright.
    pub pre_filter: Option<Status>,
}

impl Diagnosis {
    /// The plugins that refused the pod somewhere: events that may help them wake it.
    pub fn rejectors(&self) -> PluginSet {
        let mut s = PluginSet::EMPTY;
        for (_, st) in &self.statuses {
            s.insert(st.plugin);
        }
        for st in self.absent.iter().chain(self.pre_filter.iter()) {
            s.insert(st.plugin);
        }
        s
    }

    /// kube-scheduler's FitError text: `0/3 nodes are available: 1 Insufficient cpu, 2
    /// node(s) had untolerated taint {k: v}.` — reasons counted, sorted as strings.
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(p) = &self.pre_filter {
            msg.push(' ');
            msg.push_str(&p.reasons.join(", "));
            msg.push('.');
            return msg;
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, st) in &self.statuses {
            for r in &st.reasons {
                *counts.entry(r.as_str()).or_default() += 1;
            }
        }
        let absent = self.num_all_nodes.saturating_sub(self.statuses.len());
        if absent > 0
            && let Some(st) = &self.absent
        {
            for r in &st.reasons {
                *counts.entry(r.as_str()).or_default() += absent;
            }
        }
        let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        if !parts.is_empty() {
            msg.push(' ');
            msg.push_str(&parts.join(", "));
            msg.push('.');
        }
        msg
    }
}

/// The cycle failed: no nodes at all, or none that fits.
#[derive(Debug, Clone)]
pub enum ScheduleError {
    NoNodes,
    Unfit(Diagnosis),
}

/// The node chosen, and how much of the cluster was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub node: usize,
    pub evaluated: usize,
    pub feasible: usize,
}

/// Pods nominated to nodes by preemption, by node name: they hold their place.
pub type Nominations = HashMap<String, Vec<Arc<PodInfo>>>;

/// What nominated pods at least as important as `pod` hold on `node`.
pub fn reserved_for(nominated: &Nominations, pod: &PodInfo, node: &str) -> Option<Reserved> {
    let list = nominated.get(node)?;
    let mut r = Reserved::default();
    for p in list {
        if p.uid != pod.uid && p.priority >= pod.priority {
            r.requests.add(&p.requests);
            r.pods += 1;
        }
    }
    (r.pods > 0).then_some(r)
}

/// Per-pod filter state (kube-scheduler's PreFilter results).
pub struct CycleState {
    /// Only these nodes need a look (required node affinity pins names).
    pub names: Option<BTreeSet<String>>,
    spread: Option<pts::FilterState>,
    affinity: Option<ipa::FilterState>,
    volumes: Option<volume_binding::FilterState>,
}

impl CycleState {
    pub fn new(view: &View, pod: &PodInfo) -> Result<CycleState, Status> {
        let names = pod.node_affinity.node_names()?;
        let volumes = volume_binding::pre_filter(view.volumes(), pod)?;
        let spread = pts::pre_filter(view, pod);
        let a = ipa::pre_filter(view, pod);
        let needed = !pod.required_affinity.is_empty()
            || !pod.required_anti_affinity.is_empty()
            || a.has_existing_anti();
        Ok(CycleState {
            names,
            spread,
            affinity: needed.then_some(a),
            volumes,
        })
    }
}

/// Every filter, in the default profile's order; the first refusal is the node's status.
pub fn filter_node(
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    reserved: Option<&Reserved>,
) -> Option<Status> {
    node_unschedulable::filter(pod, node)
        .or_else(|| taint_toleration::filter(pod, node))
        .or_else(|| node_affinity::filter(pod, node))
        .or_else(|| node_ports::filter(pod, node))
        .or_else(|| node_resources::filter(pod, node, reserved))
        .or_else(|| {
            state
                .volumes
                .as_ref()
                .and_then(|s| volume_binding::filter(s, node))
        })
        .or_else(|| {
            state
                .spread
                .as_ref()
                .and_then(|s| pts::filter(s, pod, node))
        })
        .or_else(|| {
            state
                .affinity
                .as_ref()
                .and_then(|s| ipa::filter(s, pod, node))
        })
}

/// Finds a node for `pod`. `next_start` is where the window of nodes to look at begins;
/// it advances past the nodes looked at, so successive pods spread the work.
pub fn schedule(
    view: &View,
    pod: &PodInfo,
    nominated: &Nominations,
    next_start: &mut usize,
    rng: &mut impl Rng,
) -> Result<Placement, ScheduleError> {
    let all = view.len();
    if all == 0 {
        return Err(ScheduleError::NoNodes);
    }
    let state = CycleState::new(view, pod).map_err(|st| {
        ScheduleError::Unfit(Diagnosis {
            num_all_nodes: all,
            pre_filter: Some(st),
            ..Default::default()
        })
    })?;
    let reserved = |node: &NodeInfo| {
        if nominated.is_empty() {
            None
        } else {
            reserved_for(nominated, pod, &node.name)
        }
    };

    // A pod nominated by an earlier preemption tries its node first.
    if let Some(i) = pod.nominated_node.as_deref().and_then(|n| view.index_of(n)) {
        let node = view.node(i);
        if state
            .names
            .as_ref()
            .is_none_or(|ns| ns.contains(&node.name))
            && filter_node(&state, pod, node, reserved(node).as_ref()).is_none()
        {
            return Ok(Placement {
                node: i,
                evaluated: 1,
                feasible: 1,
            });
        }
    }

    let mut diagnosis = Diagnosis {
        num_all_nodes: all,
        ..Default::default()
    };
    let mut feasible = Vec::new();
    let mut evaluated = 0;
    match &state.names {
        Some(names) => {
            for i in names.iter().filter_map(|n| view.index_of(n)) {
                evaluated += 1;
                let node = view.node(i);
                match filter_node(&state, pod, node, reserved(node).as_ref()) {
                    None => feasible.push(i),
                    Some(st) => diagnosis.statuses.push((i, st)),
                }
            }
            diagnosis.absent = Some(Status::unresolvable(
                Plugin::NodeAffinity,
                "node(s) didn't satisfy plugin(s) [NodeAffinity]",
            ));
        }
        None => {
            let want = num_feasible_nodes_to_find(all);
            feasible.reserve(want);
            let start = *next_start % all;
            for k in 0..all {
                let i = (start + k) % all;
                evaluated += 1;
                let node = view.node(i);
                match filter_node(&state, pod, node, reserved(node).as_ref()) {
                    None => {
                        feasible.push(i);
                        if feasible.len() >= want {
                            break;
                        }
                    }
                    Some(st) => diagnosis.statuses.push((i, st)),
                }
            }
            *next_start = (start + evaluated) % all;
        }
    }
    match feasible.len() {
        0 => Err(ScheduleError::Unfit(diagnosis)),
        1 => Ok(Placement {
            node: feasible[0],
            evaluated,
            feasible: 1,
        }),
        n => {
            let totals = prioritize(view, pod, &feasible);
            Ok(Placement {
                node: feasible[select_host(&totals, rng)],
                evaluated,
                feasible: n,
            })
        }
    }
}

/// The weighted sum of every score plugin's normalised score, per candidate.
pub fn prioritize(view: &View, pod: &PodInfo, candidates: &[usize]) -> Vec<i64> {
    let n = candidates.len();
    let mut totals = vec![0i64; n];
    let mut scores = vec![0i64; n];
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in totals.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };
    let nodes = || candidates.iter().map(|&i| view.node(i));

    for (s, node) in scores.iter_mut().zip(nodes()) {
        *s = taint_toleration::score(pod, node);
    }
    taint_toleration::normalize(&mut scores);
    add(&scores, TAINT_TOLERATION_WEIGHT);

    if !pod.preferred_node_affinity.is_empty() {
        for (s, node) in scores.iter_mut().zip(nodes()) {
            *s = node_affinity::score(pod, node);
        }
        node_affinity::normalize(&mut scores);
        add(&scores, NODE_AFFINITY_WEIGHT);
    }

    for (s, node) in scores.iter_mut().zip(nodes()) {
        *s = node_resources::least_allocated(pod, node);
    }
    add(&scores, FIT_WEIGHT);

    let defaults;
    let (constraints, require_all): (&[pts::Constraint], bool) = if !pod.spread.is_empty() {
        (&pod.spread.soft, true)
    } else if let Some(sel) = &pod.default_spread {
        defaults = pts::system_defaults(sel);
        (&defaults, false)
    } else {
        (&[], false)
    };
    if let Some(st) = pts::pre_score(view, pod, candidates, constraints, require_all) {
        for (k, (s, node)) in scores.iter_mut().zip(nodes()).enumerate() {
            *s = pts::score(&st, pod, k, node);
        }
        pts::normalize(&st, &mut scores);
        add(&scores, SPREAD_WEIGHT);
    }

    if let Some(m) = ipa::pre_score(view, pod) {
        for (s, node) in scores.iter_mut().zip(nodes()) {
            *s = ipa::score(&m, node);
        }
        ipa::normalize(&mut scores);
        add(&scores, INTER_POD_AFFINITY_WEIGHT);
    }

    if node_resources::balanced_applies(pod) {
        for (s, node) in scores.iter_mut().zip(nodes()) {
            *s = node_resources::balanced_allocation(pod, node);
        }
        add(&scores, BALANCED_WEIGHT);
    }
    totals
}

/// The index of the highest score, ties broken uniformly at random.
pub fn select_host(scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &s) in scores.iter().enumerate() {
        if i == 0 || s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}
