//! Events the controllers and the scheduler record (`ScalingReplicaSet`, `SuccessfulCreate`,
//! `FailedScheduling`, ...), written by a background task; a repeat of the same event within
//! ten minutes counts on the first instead of making a new one, as client-go's recorder does.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::Resource;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

/// One event about one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectEvent {
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
    /// The reporting component (`deployment-controller`, `default-scheduler`...); the
    /// sink's own when empty.
    pub component: &'static str,
}

impl ObjectEvent {
    /// The same event, as reported by `component`.
    pub fn from(mut self, component: &'static str) -> Self {
        self.component = component;
        self
    }

    /// An event about `obj`.
    pub fn of<K: Resource<DynamicType = ()>>(
        obj: &K,
        type_: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        let m = obj.meta();
        ObjectEvent {
            kind: K::kind(&()).to_string(),
            api_version: K::api_version(&()).to_string(),
            namespace: m.namespace.clone(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.into(),
            component: "",
        }
    }

    pub fn normal<K: Resource<DynamicType = ()>>(
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::of(obj, "Normal", reason, message)
    }

    pub fn warning<K: Resource<DynamicType = ()>>(
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::of(obj, "Warning", reason, message)
    }
}

const QUEUE: usize = 8192;
const AGGREGATE_FOR: Duration = Duration::from_secs(600);

/// Queues events for a background writer.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<ObjectEvent>,
}

impl EventSink {
    /// Starts the writer; events name `component` as their source.
    pub fn start(client: kube::Client, component: &str) -> EventSink {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(client, component.to_string(), rx));
        EventSink { tx }
    }

    pub fn record(&self, event: ObjectEvent) {
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

async fn write(client: kube::Client, component: String, mut rx: mpsc::Receiver<ObjectEvent>) {
    let mut seen: HashMap<ObjectEvent, Seen> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = ev.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        seen.retain(|_, s| s.at.elapsed() < AGGREGATE_FOR);
        if let Some(s) = seen.get_mut(&ev) {
            s.count += 1;
            let patch = json!({"count": s.count, "lastTimestamp": Time(now)});
            if api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                continue;
            }
        }
        let name = format!(
            "{}.{:x}",
            ev.name,
            now.as_nanosecond().unsigned_abs() as u64
        );
        let source = if ev.component.is_empty() {
            component.clone()
        } else {
            ev.component.to_string()
        };
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(ev.api_version.clone()),
                kind: Some(ev.kind.clone()),
                name: Some(ev.name.clone()),
                namespace: ev.namespace.clone(),
                uid: Some(ev.uid.clone()).filter(|u| !u.is_empty()),
                ..Default::default()
            },
            reason: Some(ev.reason.clone()),
            message: Some(ev.message.clone()),
            source: Some(EventSource {
                component: Some(source.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(ev.type_.to_string()),
            reporting_component: Some(source),
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
            Err(e) => tracing::debug!(error = %e, reason = %ev.reason, "cannot record event"),
        }
    }
}
