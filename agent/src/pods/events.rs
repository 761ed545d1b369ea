//! Events about pods, as kubelet records them, so `kubectl describe pod` tells what
//! happened: one core/v1 Event per distinct (object, reason, message), with repeats
//! counted on the same Event instead of new ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

/// Normal or Warning, as Kubernetes types events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One thing that happened to a pod (or one of its containers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodEvent {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// `spec.containers{app}`, or empty for the pod itself.
    pub field_path: String,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

impl PodEvent {
    pub fn new(pod: &Pod, type_: EventType, reason: &str, message: impl Into<String>) -> Self {
        PodEvent {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            field_path: String::new(),
            type_,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// About one container: `spec.containers{name}` or `spec.initContainers{name}`.
    pub fn container(mut self, name: &str, init: bool) -> Self {
        let list = if init { "initContainers" } else { "containers" };
        self.field_path = format!("spec.{list}{{{name}}}");
        self
    }
}

/// Where events go. Recording never blocks and never fails the caller.
pub trait EventSink: Send + Sync {
    fn record(&self, event: PodEvent);
}

/// Events kept in memory, for tests.
#[derive(Default)]
pub struct RecordedEvents {
    events: Mutex<Vec<PodEvent>>,
}

impl RecordedEvents {
    pub fn events(&self) -> Vec<PodEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn reasons(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.reason).collect()
    }
}

impl EventSink for RecordedEvents {
    fn record(&self, event: PodEvent) {
        tracing::debug!(reason = %event.reason, message = %event.message, "event");
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}

/// How many events may wait to be written before new ones are dropped.
const QUEUE: usize = 4096;
/// Repeats within this long count on the first event.
const AGGREGATE_FOR: Duration = Duration::from_secs(600);

/// Writes events to the API server from a background task.
pub struct KubeEvents {
    tx: mpsc::Sender<PodEvent>,
}

impl KubeEvents {
    /// Starts the writer; it ends when the sink is dropped.
    pub fn start(client: kube::Client, node: &str) -> KubeEvents {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_events(client, node.to_string(), rx));
        KubeEvents { tx }
    }
}

impl EventSink for KubeEvents {
    fn record(&self, event: PodEvent) {
        if let Err(e) = self.tx.try_send(event) {
            tracing::warn!(error = %e, "event queue full; event dropped");
        }
    }
}

struct Seen {
    name: String,
    count: i32,
    at: tokio::time::Instant,
}

async fn write_events(client: kube::Client, node: String, mut rx: mpsc::Receiver<PodEvent>) {
    let mut seen: HashMap<PodEvent, Seen> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let now = k8s_openapi::jiff::Timestamp::now();
        let api: Api<Event> = Api::namespaced(client.clone(), &ev.namespace);
        seen.retain(|_, s| s.at.elapsed() < AGGREGATE_FOR);
        if let Some(s) = seen.get_mut(&ev) {
            s.count += 1;
            let patch = json!({"count": s.count, "lastTimestamp": Time(now)});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "event update failed; creating a new one");
                }
            }
        }
        let name = format!("{}.{:x}", ev.pod, now.as_nanosecond().unsigned_abs() as u64);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ev.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(ev.pod.clone()),
                namespace: Some(ev.namespace.clone()),
                uid: Some(ev.uid.clone()),
                field_path: Some(ev.field_path.clone()).filter(|f| !f.is_empty()),
                ..Default::default()
            },
            reason: Some(ev.reason.clone()),
            message: Some(ev.message.clone()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(ev.type_.as_str().into()),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                seen.insert(
                    ev,
                    Seen {
                        name,
                        count: 1,
                        at: tokio::time::Instant::now(),
                    },
                );
            }
            Err(e) => tracing::warn!(error = %e, reason = %ev.reason, "cannot record event"),
        }
    }
}
