//! The scheduling loop: one task owns the cache and the queue, applies every pod, node,
//! namespace, Service, claim, volume and StorageClass change as it arrives, takes the next pod from the queue, runs
//! the pure cycle on the cache's snapshot, assumes the pod on the chosen node and binds
//! it in the background — so binds overlap while the next pods are placed. Failures
//! become the pod's PodScheduled=False condition and a FailedScheduling event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use skiff_api::labels::Selector;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::cache::Cache;
use super::framework::{self, NO_NODES, ScheduleError};
use super::plugins::PluginSet;
use super::pod_info::{PodInfo, SCHEDULER_NAME, is_terminal, wants_scheduling};
use super::queue::{QueuedPod, SchedulingQueue};
use super::{metrics, preemption};
use crate::controllers::context::Ctx;
use crate::controllers::runtime::{Change, Cluster, ClusterError, Delete, ObjectEvent};

/// Writes (binds, status updates, evictions) in flight at once: enough to fill the API
/// server's group commits, few enough not to open a connection per pod.
const MAX_WRITES: usize = 64;
/// How often unschedulable pods that waited five minutes are looked at.
const FLUSH_EVERY: Duration = Duration::from_secs(30);
/// The loop yields to other tasks after this many cycles in a row.
const CYCLES_PER_YIELD: u32 = 8;

enum Outcome {
    Bound { uid: String },
    BindFailed { qp: QueuedPod, error: ClusterError },
}

/// Counters, for logs and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub attempts: u64,
    pub bound: u64,
    pub unschedulable: u64,
    pub bind_failures: u64,
    pub preemptions: u64,
}

pub struct Scheduler<C: Cluster> {
    cluster: Arc<C>,
    ctx: Ctx<C>,
    cache: Cache,
    queue: SchedulingQueue,
    next_start: usize,
    rng: SmallRng,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
    writes: Arc<Semaphore>,
    /// Service selectors by namespace and name: the default spreading of their pods.
    services: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
    stats: Stats,
}

/// Starts the scheduler on `ctx`.
pub fn start<C: Cluster>(ctx: &Ctx<C>) -> tokio::task::JoinHandle<()> {
    let s = Scheduler::new(ctx.clone());
    tokio::spawn(s.run())
}

struct Feeds {
    pods: Receiver<Change<Pod>>,
    nodes: Receiver<Change<Node>>,
    namespaces: Receiver<Change<Namespace>>,
    services: Receiver<Change<Service>>,
    claims: Receiver<Change<PersistentVolumeClaim>>,
    volumes: Receiver<Change<PersistentVolume>>,
    classes: Receiver<Change<StorageClass>>,
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

impl<C: Cluster> Scheduler<C> {
    pub fn new(ctx: Ctx<C>) -> Self {
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        Scheduler {
            cluster: ctx.cluster.clone(),
            ctx,
            cache: Cache::new(),
            queue: SchedulingQueue::new(),
            next_start: 0,
            rng: SmallRng::from_os_rng(),
            outcomes_tx,
            outcomes_rx,
            writes: Arc::new(Semaphore::new(MAX_WRITES)),
            services: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub async fn run(mut self) {
        let i = &self.ctx.informers;
        let mut feeds = Feeds {
            pods: i.pods.subscribe(),
            nodes: i.nodes.subscribe(),
            namespaces: i.namespaces.subscribe(),
            services: i.services.subscribe(),
            claims: i.pvcs.subscribe(),
            volumes: i.pvs.subscribe(),
            classes: i.storage_classes.subscribe(),
        };
        i.pods.synced().await;
        i.nodes.synced().await;
        i.namespaces.synced().await;
        i.services.synced().await;
        i.pvcs.synced().await;
        i.pvs.synced().await;
        i.storage_classes.synced().await;
        self.resync_volumes();
        self.resync_nodes();
        self.resync_namespaces();
        self.resync_services();
        self.resync_pods();
        tracing::info!(
            nodes = self.cache.snapshot().len(),
            pending = self.queue.len(),
            "scheduler running"
        );
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        let mut streak = 0u32;
        loop {
            if !self.drain(&mut feeds) {
                return;
            }
            let now = Instant::now();
            if now >= next_flush {
                self.queue.flush_unschedulable(now);
                next_flush = now + FLUSH_EVERY;
                tracing::debug!(stats = ?self.stats, queue = ?self.queue.counts(), "scheduler");
            }
            if let Some(qp) = self.queue.pop(now) {
                self.schedule_one(qp, now);
                streak += 1;
                if streak >= CYCLES_PER_YIELD {
                    streak = 0;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            streak = 0;
            let wake = self
                .queue
                .next_backoff()
                .unwrap_or(next_flush)
                .min(next_flush);
            tokio::select! {
                r = feeds.pods.recv() => match r {
                    Ok(c) => self.on_pod(c.obj, c.deleted),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_pods(),
                    Err(_) => return,
                },
                r = feeds.nodes.recv() => match r {
                    Ok(c) => self.on_node(&c.obj, c.deleted),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_nodes(),
                    Err(_) => return,
                },
                r = feeds.namespaces.recv() => match r {
                    Ok(c) => self.on_namespace(&c.obj, c.deleted),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_namespaces(),
                    Err(_) => return,
                },
                r = feeds.services.recv() => match r {
                    Ok(c) => self.on_service(&c.obj, c.deleted),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_services(),
                    Err(_) => return,
                },
                r = feeds.claims.recv() => match r {
                    Ok(c) => {
                        let helps = self.cache.apply_claim(&c.obj, c.deleted);
                        self.on_volume_change(helps);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_volumes(),
                    Err(_) => return,
                },
                r = feeds.volumes.recv() => match r {
                    Ok(c) => {
                        let helps = self.cache.apply_volume(&c.obj, c.deleted);
                        self.on_volume_change(helps);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_volumes(),
                    Err(_) => return,
                },
                r = feeds.classes.recv() => match r {
                    Ok(c) => {
                        let helps = self.cache.apply_class(&c.obj, c.deleted);
                        self.on_volume_change(helps);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.resync_volumes(),
                    Err(_) => return,
                },
                Some(o) = self.outcomes_rx.recv() => self.on_outcome(o),
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Applies everything that arrived; false once the informers are gone.
    fn drain(&mut self, f: &mut Feeds) -> bool {
        loop {
            let mut any = false;
            match f.pods.try_recv() {
                Ok(c) => {
                    any = true;
                    self.on_pod(c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_pods();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            match f.nodes.try_recv() {
                Ok(c) => {
                    any = true;
                    self.on_node(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_nodes();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            match f.namespaces.try_recv() {
                Ok(c) => {
                    any = true;
                    self.on_namespace(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_namespaces();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            match f.services.try_recv() {
                Ok(c) => {
                    any = true;
                    self.on_service(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_services();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            let mut helps = PluginSet::EMPTY;
            match f.claims.try_recv() {
                Ok(c) => {
                    any = true;
                    helps = helps | self.cache.apply_claim(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_volumes();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            match f.volumes.try_recv() {
                Ok(c) => {
                    any = true;
                    helps = helps | self.cache.apply_volume(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_volumes();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            match f.classes.try_recv() {
                Ok(c) => {
                    any = true;
                    helps = helps | self.cache.apply_class(&c.obj, c.deleted);
                }
                Err(TryRecvError::Lagged(_)) => {
                    any = true;
                    self.resync_volumes();
                }
                Err(TryRecvError::Closed) => return false,
                Err(TryRecvError::Empty) => {}
            }
            self.on_volume_change(helps);
            if let Ok(o) = self.outcomes_rx.try_recv() {
                any = true;
                self.on_outcome(o);
            }
            if !any {
                return true;
            }
        }
    }

    fn on_pod(&mut self, pod: Arc<Pod>, deleted: bool) {
        let now = Instant::now();
        let uid = uid_of(&pod).to_string();
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if deleted || assigned || is_terminal(&pod) {
            let helps = self.cache.apply_pod(&pod, deleted);
            self.queue.remove(&uid);
            self.queue.on_event(helps, now);
            return;
        }
        self.cache.apply_pod(&pod, false);
        if self.cache.is_assumed(&uid) {
            return;
        }
        if wants_scheduling(&pod) {
            self.queue.upsert(pod, now);
        } else {
            self.queue.remove(&uid);
        }
    }

    fn on_node(&mut self, node: &Node, deleted: bool) {
        if deleted {
            self.cache
                .remove_node(node.metadata.name.as_deref().unwrap_or_default());
            return;
        }
        let helps = self.cache.upsert_node(node);
        self.queue.on_event(helps, Instant::now());
    }

    fn on_namespace(&mut self, ns: &Namespace, deleted: bool) {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        if deleted {
            self.cache.remove_namespace(name);
            return;
        }
        let helps = self.cache.upsert_namespace(ns);
        self.queue.on_event(helps, Instant::now());
    }

    fn on_service(&mut self, svc: &Service, deleted: bool) {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let list = self.services.entry(ns.clone()).or_default();
        if deleted || selector.is_empty() {
            list.remove(&name);
            if list.is_empty() {
                self.services.remove(&ns);
            }
        } else {
            list.insert(name, selector);
        }
    }

    fn on_volume_change(&mut self, helps: PluginSet) {
        self.queue.on_event(helps, Instant::now());
    }

    /// Takes every claim, volume and class anew (at start, and after a watch lagged).
    fn resync_volumes(&mut self) {
        let i = &self.ctx.informers;
        let (claims, volumes, classes) = (i.pvcs.list(), i.pvs.list(), i.storage_classes.list());
        let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        self.cache.drop_missing_volumes(
            &claims
                .iter()
                .map(|c| {
                    (
                        c.metadata.namespace.clone().unwrap_or_default(),
                        key(&c.metadata),
                    )
                })
                .collect(),
            &volumes.iter().map(|v| key(&v.metadata)).collect(),
            &classes.iter().map(|c| key(&c.metadata)).collect(),
        );
        let mut helps = PluginSet::EMPTY;
        for c in &claims {
            helps = helps | self.cache.apply_claim(c, false);
        }
        for v in &volumes {
            helps = helps | self.cache.apply_volume(v, false);
        }
        for c in &classes {
            helps = helps | self.cache.apply_class(c, false);
        }
        self.on_volume_change(helps);
    }

    fn resync_pods(&mut self) {
        let pods = self.ctx.informers.pods.list();
        let live: HashSet<String> = pods.iter().map(|p| uid_of(p).to_string()).collect();
        let helps = self.cache.drop_missing(&live);
        self.queue.retain(|uid| live.contains(uid));
        for p in pods {
            self.on_pod(p, false);
        }
        self.queue.on_event(helps, Instant::now());
    }

    fn resync_nodes(&mut self) {
        let nodes = self.ctx.informers.nodes.list();
        let live: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        let gone: Vec<String> = self
            .cache
            .snapshot()
            .nodes()
            .iter()
            .filter(|n| !live.contains(n.name.as_str()))
            .map(|n| n.name.clone())
            .collect();
        for n in gone {
            self.cache.remove_node(&n);
        }
        for n in &nodes {
            self.on_node(n, false);
        }
    }

    fn resync_namespaces(&mut self) {
        for ns in self.ctx.informers.namespaces.list() {
            self.on_namespace(&ns, false);
        }
    }

    fn resync_services(&mut self) {
        self.services.clear();
        for s in self.ctx.informers.services.list() {
            self.on_service(&s, false);
        }
    }

    /// What the pod's Services and controller select: the system default spreading
    /// keeps such pods apart across hosts and zones.
    fn default_spread(&self, pod: &Pod) -> Option<Selector> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut set = BTreeMap::new();
        for sel in self.services.get(ns).into_iter().flat_map(|m| m.values()) {
            if sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut selector = Selector::from_set(&set);
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        if let Some(o) = owner {
            let i = &self.ctx.informers;
            let ls = match (o.api_version.as_str(), o.kind.as_str()) {
                ("apps/v1", "ReplicaSet") => i.replica_sets.get(Some(ns), &o.name).map(|rs| {
                    rs.spec
                        .as_ref()
                        .map(|s| s.selector.clone())
                        .unwrap_or_default()
                }),
                ("apps/v1", "StatefulSet") => i.stateful_sets.get(Some(ns), &o.name).map(|ss| {
                    ss.spec
                        .as_ref()
                        .map(|s| s.selector.clone())
                        .unwrap_or_default()
                }),
                _ => None,
            };
            if let Some(Ok(s)) = ls.as_ref().map(Selector::from_label_selector) {
                for r in s.requirements() {
                    selector.add(r.clone());
                }
            }
        }
        (!selector.is_empty()).then_some(selector)
    }

    fn schedule_one(&mut self, qp: QueuedPod, now: Instant) {
        let pod = qp.pod.clone();
        if !wants_scheduling(&pod) || self.cache.is_assumed(&qp.uid) {
            return;
        }
        self.stats.attempts += 1;
        let started = std::time::Instant::now();
        let mut info = PodInfo::new(&pod);
        if info.spread.is_empty() {
            info.default_spread = self.default_spread(&pod);
        }
        let view = self.cache.snapshot().view();
        let result = framework::schedule(
            &view,
            &info,
            self.cache.nominations(),
            &mut self.next_start,
            &mut self.rng,
        );
        match result {
            Ok(placement) => {
                let node = view.node(placement.node).name.clone();
                info.node_name = Some(node.clone());
                self.cache.assume(Arc::new(info));
                self.bind(qp, node);
                metrics::attempt("scheduled", started);
            }
            Err(ScheduleError::NoNodes) => {
                self.stats.unschedulable += 1;
                metrics::attempt("unschedulable", started);
                self.report_failure(&pod, "Unschedulable", NO_NODES.to_string(), None);
                self.queue.requeue_unschedulable(qp, PluginSet::EMPTY, now);
            }
            Err(ScheduleError::Unfit(diagnosis)) => {
                self.stats.unschedulable += 1;
                metrics::attempt("unschedulable", started);
                metrics::preemption();
                let mut msg = diagnosis.message();
                let nominated =
                    match preemption::preempt(&view, &info, &diagnosis, self.cache.nominations()) {
                        Ok(c) => {
                            let node = view.node(c.node).name.clone();
                            self.evict(&info, &node, c.victims);
                            Some(node)
                        }
                        Err(m) => {
                            msg.push_str(" preemption: ");
                            msg.push_str(&m);
                            None
                        }
                    };
                if let Some(node) = &nominated {
                    self.stats.preemptions += 1;
                    info.nominated_node = Some(node.clone());
                    self.cache.nominate(Arc::new(info), node);
                }
                let rejectors = diagnosis.rejectors();
                self.report_failure(&pod, "Unschedulable", msg, Some(nominated));
                self.queue.requeue_unschedulable(qp, rejectors, now);
            }
        }
    }

    fn bind(&self, qp: QueuedPod, node: String) {
        let cluster = self.cluster.clone();
        let tx = self.outcomes_tx.clone();
        let writes = self.writes.clone();
        tokio::spawn(async move {
            let _permit = writes.acquire_owned().await;
            let pod = qp.pod.clone();
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            match cluster.bind(ns, name, &qp.uid, &node).await {
                Ok(()) => {
                    cluster.record(
                        ObjectEvent::normal(
                            &*pod,
                            "Scheduled",
                            format!("Successfully assigned {ns}/{name} to {node}"),
                        )
                        .from(SCHEDULER_NAME),
                    );
                    let _ = tx.send(Outcome::Bound { uid: qp.uid });
                }
                Err(error) => {
                    let _ = tx.send(Outcome::BindFailed { qp, error });
                }
            }
        });
    }

    fn on_outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Bound { uid } => {
                self.stats.bound += 1;
                tracing::trace!(%uid, "bound");
            }
            Outcome::BindFailed { qp, error } => {
                self.stats.bind_failures += 1;
                metrics::bind_error();
                let now = Instant::now();
                let helps = self.cache.forget(&qp.uid);
                self.queue.on_event(helps, now);
                let pod = &qp.pod;
                let ns = pod.metadata.namespace.as_deref();
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let current = self.ctx.informers.pods.get(ns, name);
                let still_pending = current
                    .as_ref()
                    .is_some_and(|p| uid_of(p) == qp.uid && wants_scheduling(p));
                if !still_pending {
                    return;
                }
                tracing::debug!(pod = %format!("{}/{name}", ns.unwrap_or_default()), %error, "bind failed; retrying");
                self.report_failure(
                    pod,
                    "SchedulerError",
                    format!("Binding rejected: {}", error.message),
                    None,
                );
                self.queue.requeue_backoff(qp, now);
            }
        }
    }

    /// Evicts `victims` on `node` to make room for `pod`: each is marked as disrupted,
    /// told why in an event, and deleted.
    fn evict(&self, pod: &PodInfo, node: &str, victims: Vec<Arc<PodInfo>>) {
        for v in victims {
            let cluster = self.cluster.clone();
            let writes = self.writes.clone();
            let message = format!("Preempted by pod {} on node {node}", pod.uid);
            // A merge patch replaces the whole list: keep the victim's other conditions.
            let mut conditions: Vec<Value> = self
                .ctx
                .informers
                .pods
                .get(Some(&v.namespace), &v.name)
                .and_then(|p| p.status.as_ref()?.conditions.clone())
                .unwrap_or_default()
                .iter()
                .filter(|c| c.type_ != "DisruptionTarget")
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect();
            conditions.push(json!({
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            }));
            let cond = json!({"status": {"conditions": conditions}});
            tokio::spawn(async move {
                let _permit = writes.acquire_owned().await;
                let _ = cluster
                    .patch_status::<Pod>(Some(&v.namespace), &v.name, &cond)
                    .await;
                cluster.record(
                    ObjectEvent {
                        kind: "Pod".into(),
                        api_version: "v1".into(),
                        namespace: Some(v.namespace.clone()),
                        name: v.name.clone(),
                        uid: v.uid.clone(),
                        type_: "Normal",
                        reason: "Preempted".into(),
                        message,
                        component: "",
                    }
                    .from(SCHEDULER_NAME),
                );
                let how = Delete {
                    uid: Some(v.uid.clone()),
                    ..Default::default()
                };
                if let Err(e) = cluster
                    .delete::<Pod>(Some(&v.namespace), &v.name, &how)
                    .await
                    && !e.is_not_found()
                {
                    tracing::warn!(pod = %v.key(), error = %e, "cannot evict preemption victim");
                }
            });
        }
    }

    /// Records a failed attempt: a FailedScheduling event and the PodScheduled=False
    /// condition (written only when it changes). `nominated`: `Some(None)` clears the
    /// pod's nominated node, `Some(Some(n))` sets it.
    fn report_failure(
        &self,
        pod: &Arc<Pod>,
        reason: &'static str,
        message: String,
        nominated: Option<Option<String>>,
    ) {
        self.cluster.record(
            ObjectEvent::warning(&**pod, "FailedScheduling", message.clone()).from(SCHEDULER_NAME),
        );
        let status = pod.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let old = conditions.iter().find(|c| c.type_ == "PodScheduled");
        let same_condition = old.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        let current_nominated = status
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        let nominated_change = match &nominated {
            Some(n) if *n != current_nominated => Some(n.clone()),
            _ => None,
        };
        if same_condition && nominated_change.is_none() {
            return;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let transition = match old {
            Some(c) if c.status == "False" => c
                .last_transition_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.clone()),
            _ => now.clone(),
        };
        let mut list: Vec<Value> = conditions
            .iter()
            .filter(|c| c.type_ != "PodScheduled")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        list.push(json!({
            "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
            "lastProbeTime": null, "lastTransitionTime": transition,
        }));
        // A merge patch replaces the whole list, so it is only right against the version the
        // list was read from: a pod that changed meanwhile (bound elsewhere, its agent
        // reporting Ready) refuses it, and the scheduler sees the change instead.
        let mut patch = json!({"status": {"conditions": list}});
        if let Some(rv) = pod.metadata.resource_version.as_deref() {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        if let Some(n) = nominated_change {
            patch["status"]["nominatedNodeName"] = json!(n);
        }
        let cluster = self.cluster.clone();
        let writes = self.writes.clone();
        let ns = pod.metadata.namespace.clone();
        let name = pod.metadata.name.clone().unwrap_or_default();
        tokio::spawn(async move {
            let _permit = writes.acquire_owned().await;
            if let Err(e) = cluster
                .patch_status::<Pod>(ns.as_deref(), &name, &patch)
                .await
                && !e.is_not_found()
                && !e.is_conflict()
            {
                tracing::debug!(pod = %name, error = %e, "cannot record scheduling failure");
            }
        });
    }
}
