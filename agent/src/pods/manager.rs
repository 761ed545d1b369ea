//! The pods of this node, fed from the API: a watch on the pods bound to the node
//! (`spec.nodeName`), admission in creation order, one [`PodWorker`] per pod, and after a
//! restart the adoption of what the runtime still runs and the removal of what belongs to
//! pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::admission::{NodeResources, admit};
use super::api::PodApi;
use super::context::PodContext;
use super::events::{EventType, PodEvent};
use super::phase::Phase;
use super::status::PodOutcome;
use super::stop::tear_down;
use super::worker::{PodMsg, PodWorker};
use crate::runtime::ContainerInfo;

/// Node-wide admission settings.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub resources: NodeResources,
    pub allowed_unsafe_sysctls: Vec<String>,
    /// How often projected volumes (configMap, secret, downwardAPI) are refreshed.
    pub volume_refresh: Duration,
}

struct WorkerEntry {
    tx: mpsc::UnboundedSender<PodMsg>,
    task: JoinHandle<()>,
    /// The pod as last seen, for admission of others.
    pod: Arc<Pod>,
    rejected: bool,
}

/// The pods this node runs, as last seen, keyed by uid: what the agent's API answers from.
#[derive(Clone, Default)]
pub struct RunningPods(Arc<std::sync::RwLock<HashMap<String, Arc<Pod>>>>);

impl RunningPods {
    pub fn list(&self) -> Vec<Arc<Pod>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut pods: Vec<Arc<Pod>> = map.values().cloned().collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            // A pod recreated under the same name: the newer one.
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .cloned()
    }

    fn set(&self, uid: &str, pod: Arc<Pod>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(uid.to_string(), pod);
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|uid, _| keep(uid));
    }
}

/// Owns the workers of the node's pods.
pub struct PodManager<A> {
    ctx: Arc<PodContext<A>>,
    running: RunningPods,
    settings: ManagerSettings,
    workers: HashMap<String, WorkerEntry>,
    /// What the runtime ran when the agent started, by pod uid, until the pod is seen.
    recovered: Option<HashMap<String, Vec<ContainerInfo>>>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl<A: PodApi> PodManager<A> {
    pub fn new(ctx: Arc<PodContext<A>>, settings: ManagerSettings) -> Self {
        PodManager {
            ctx,
            settings,
            workers: HashMap::new(),
            recovered: None,
            running: RunningPods::default(),
        }
    }

    /// The node's pods as the manager sees them, kept current while it runs.
    pub fn running(&self) -> RunningPods {
        self.running.clone()
    }

    /// Reads what an earlier run of the agent left in the runtime. Call once, before the
    /// first pods arrive.
    pub async fn recover(&mut self) -> Result<(), crate::runtime::Error> {
        let mut by_pod: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
        for c in self.ctx.runtime.list().await? {
            if let Some(meta) = &c.meta {
                by_pod.entry(meta.pod_uid.clone()).or_default().push(c);
            }
        }
        self.recovered = Some(by_pod);
        Ok(())
    }

    /// Watches the node's pods until the watch ends (it only ends with the process).
    pub async fn run(mut self, client: kube::Client) {
        let api: Api<Pod> = Api::all(client);
        let config = watcher::Config::default()
            .fields(&format!("spec.nodeName={}", self.ctx.settings.node_name));
        let mut stream = watcher::watcher(api, config).boxed();
        let mut refresh = tokio::time::interval(self.settings.volume_refresh);
        refresh.tick().await;
        let mut listed: Option<Vec<Pod>> = None;
        loop {
            tokio::select! {
                ev = stream.next() => {
                    let Some(ev) = ev else { return };
                    match ev {
                        Ok(Event::Init) => listed = Some(Vec::new()),
                        Ok(Event::InitApply(pod)) => {
                            if let Some(l) = listed.as_mut() {
                                l.push(pod);
                            }
                        }
                        Ok(Event::InitDone) => {
                            let pods = listed.take().unwrap_or_default();
                            self.resync(pods).await;
                        }
                        Ok(Event::Apply(pod)) => self.apply(pod),
                        Ok(Event::Delete(pod)) => self.gone(&uid(&pod)),
                        Err(e) => {
                            tracing::warn!(error = %e, "pod watch failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                _ = refresh.tick() => {
                    for w in self.workers.values() {
                        let _ = w.tx.send(PodMsg::RefreshVolumes);
                    }
                }
            }
            self.workers.retain(|_, w| !w.task.is_finished());
            let workers = &self.workers;
            self.running.retain(|u| workers.contains_key(u));
        }
    }

    /// A complete list of the node's pods (at start and after a watch restart): pods no
    /// longer listed are gone; new ones are admitted; on the first list, whatever the node
    /// holds for pods that do not exist is removed.
    pub async fn resync(&mut self, pods: Vec<Pod>) {
        let listed: HashSet<String> = pods.iter().map(uid).collect();
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|u| !listed.contains(*u))
            .cloned()
            .collect();
        for u in gone {
            self.gone(&u);
        }
        let mut pods = pods;
        // Pods that already ran here were admitted before; the rest in creation order.
        let recovered = self.recovered.clone().unwrap_or_default();
        let known =
            |p: &Pod| recovered.contains_key(&uid(p)) || self.ctx.sandbox.dir(&uid(p)).exists();
        pods.sort_by_key(|p| {
            (
                !known(p),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        });
        for pod in pods {
            self.apply(pod);
        }
        if self.recovered.is_some() {
            self.remove_orphans(&listed).await;
            self.recovered = None;
            if let Err(e) = self.ctx.sandbox.gc_network().await {
                tracing::warn!(error = %e, "CNI garbage collection failed");
            }
        }
    }

    /// Removes containers, sandboxes, cgroups and volumes of pods that do not exist.
    async fn remove_orphans(&mut self, listed: &HashSet<String>) {
        let mut orphans: HashSet<String> = HashSet::new();
        if let Some(rec) = &self.recovered {
            orphans.extend(rec.keys().cloned());
        }
        if let Ok(sandboxes) = self.ctx.sandbox.recover() {
            orphans.extend(sandboxes.into_iter().map(|s| s.uid));
        }
        if let Ok(cgroups) = self.ctx.cgroups.list_pods() {
            orphans.extend(cgroups);
        }
        orphans.retain(|u| !listed.contains(u));
        for u in orphans {
            tracing::info!(uid = %u, "removing what is left of a pod that no longer exists");
            if let Err(e) = tear_down(&self.ctx, &u).await {
                tracing::warn!(uid = %u, error = %e, "cannot remove an orphaned pod");
            }
        }
    }

    fn apply(&mut self, pod: Pod) {
        let u = uid(&pod);
        if u.is_empty() {
            return;
        }
        let pod = Arc::new(pod);
        self.running.set(&u, pod.clone());
        if let Some(w) = self.workers.get_mut(&u) {
            w.pod = pod.clone();
            let _ = w.tx.send(PodMsg::Update(pod));
            return;
        }
        // A pod deleted before it ever ran here still needs its object removed.
        let rejection = if is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some() {
            None
        } else {
            let admitted = self
                .workers
                .values()
                .filter(|w| !w.rejected && !is_terminal(&w.pod))
                .map(|w| w.pod.as_ref());
            admit(
                &pod,
                admitted,
                self.settings.resources,
                &self.settings.allowed_unsafe_sysctls,
            )
            .err()
        };
        let outcome = rejection.map(|r| {
            self.ctx.events.record(PodEvent::new(
                &pod,
                EventType::Warning,
                &r.reason,
                r.message.clone(),
            ));
            tracing::info!(pod = %u, reason = %r.reason, "pod rejected");
            PodOutcome {
                phase: Phase::Failed,
                reason: r.reason,
                message: format!("Pod was rejected: {}", r.message),
                rejected: true,
            }
        });
        let rejected = outcome.is_some();
        let recovered = self
            .recovered
            .as_mut()
            .and_then(|r| r.remove(&u))
            .unwrap_or_default();
        let (tx, task) = PodWorker::spawn(self.ctx.clone(), pod.clone(), outcome, recovered);
        self.workers.insert(
            u,
            WorkerEntry {
                tx,
                task,
                pod,
                rejected,
            },
        );
    }

    fn gone(&mut self, uid: &str) {
        if let Some(w) = self.workers.get(uid) {
            let _ = w.tx.send(PodMsg::Gone);
        }
    }
}
