//! Informers: a cache of one kind of object kept current by a watch, and a broadcast of
//! every change, so several controllers share one watch and one copy of each object.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// How many changes a slow subscriber may fall behind before it must resync.
const BACKLOG: usize = 16 * 1024;

/// A kind the controllers work with: a typed Kubernetes object.
pub trait Kind:
    Resource<DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static
{
}

/// One object that changed; `deleted` when it is gone.
#[derive(Debug, Clone)]
pub struct Change<K> {
    pub obj: Arc<K>,
    pub deleted: bool,
}

/// The cache of one kind and the feed of its changes.
pub struct Informer<K: Kind> {
    store: Store<K>,
    tx: broadcast::Sender<Change<K>>,
}

impl<K: Kind> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// Feeds an informer by hand (what [`super::FakeCluster`] writes through).
pub struct Feed<K: Kind> {
    writer: Mutex<reflector::store::Writer<K>>,
    tx: broadcast::Sender<Change<K>>,
}

impl<K: Kind> Feed<K> {
    pub fn apply(&self, obj: K) {
        self.event(Event::Apply(obj.clone()));
        let _ = self.tx.send(Change {
            obj: Arc::new(obj),
            deleted: false,
        });
    }

    pub fn delete(&self, obj: K) {
        self.event(Event::Delete(obj.clone()));
        let _ = self.tx.send(Change {
            obj: Arc::new(obj),
            deleted: true,
        });
    }

    fn event(&self, ev: Event<K>) {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply_watcher_event(&ev);
    }
}

impl<K: Kind> Informer<K> {
    /// An informer fed by hand; it is ready (synced) at once.
    pub fn manual() -> (Informer<K>, Feed<K>) {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let (tx, _) = broadcast::channel(BACKLOG);
        (
            Informer {
                store,
                tx: tx.clone(),
            },
            Feed {
                writer: Mutex::new(writer),
                tx,
            },
        )
    }

    /// An informer on the API server: a watch of the kind in every namespace, restarted
    /// (with a fresh list) whenever it breaks. Runs until the task is aborted.
    pub fn start(client: kube::Client) -> (Informer<K>, tokio::task::JoinHandle<()>) {
        let (store, mut writer) = reflector::store();
        let (tx, _) = broadcast::channel(BACKLOG);
        let informer = Informer {
            store,
            tx: tx.clone(),
        };
        let api: Api<K> = Api::all(client);
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::debug!(kind = %K::kind(&()), error = %e, "watch interrupted; resuming");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                writer.apply_watcher_event(&ev);
                let change = match ev {
                    Event::Apply(o) | Event::InitApply(o) => Change {
                        obj: Arc::new(o),
                        deleted: false,
                    },
                    Event::Delete(o) => Change {
                        obj: Arc::new(o),
                        deleted: true,
                    },
                    Event::Init | Event::InitDone => continue,
                };
                let _ = tx.send(change);
            }
        });
        (informer, task)
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.tx.subscribe()
    }

    /// Every object in the cache.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// The object `namespace/name`, if cached.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut r = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.store.get(&r)
    }

    /// Waits until the first list has arrived.
    pub async fn synced(&self) {
        let _ = self.store.wait_until_ready().await;
    }
}
