//! Keeps [`ClusterData`] up to date from watches of Namespaces, Services and EndpointSlices.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

use super::store::{ClusterData, Key, ServiceRecord, SliceRecord, service_record, slice_record};

/// A kind DNS answers from, and how its objects change the store.
trait Watched: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static {
    /// What the store keeps of one object.
    type Item: Send;
    fn item(&self) -> Option<Self::Item>;
    fn apply(data: &mut ClusterData, item: Self::Item);
    fn delete(data: &mut ClusterData, obj: &Self);
    fn replace(data: &mut ClusterData, items: Vec<Self::Item>);
    /// Whether this error means the kind cannot be read at all and DNS does without it
    /// (switching the store to that mode).
    fn forbidden_fallback(_data: &RwLock<ClusterData>, _e: &watcher::Error) -> bool {
        false
    }
}

impl Watched for Namespace {
    type Item = String;
    fn item(&self) -> Option<String> {
        self.metadata.name.clone()
    }
    fn apply(data: &mut ClusterData, item: String) {
        data.add_namespace(&item);
    }
    fn delete(data: &mut ClusterData, obj: &Self) {
        if let Some(name) = &obj.metadata.name {
            data.remove_namespace(name);
        }
    }
    fn replace(data: &mut ClusterData, items: Vec<String>) {
        data.set_namespaces(items);
    }
    fn forbidden_fallback(data: &RwLock<ClusterData>, e: &watcher::Error) -> bool {
        if !is_forbidden(e) {
            return false;
        }
        if let Ok(mut d) = data.write() {
            d.set_namespaces_unknown(true);
        }
        true
    }
}

impl Watched for Service {
    type Item = (Key, ServiceRecord);
    fn item(&self) -> Option<Self::Item> {
        service_record(self)
    }
    fn apply(data: &mut ClusterData, ((ns, name), record): Self::Item) {
        data.upsert_service(&ns, &name, record);
    }
    fn delete(data: &mut ClusterData, obj: &Self) {
        if let (Some(ns), Some(name)) = (&obj.metadata.namespace, &obj.metadata.name) {
            data.remove_service(ns, name);
        }
    }
    fn replace(data: &mut ClusterData, items: Vec<Self::Item>) {
        data.replace_services(items);
    }
}

impl Watched for EndpointSlice {
    type Item = (Key, SliceRecord);
    fn item(&self) -> Option<Self::Item> {
        slice_record(self)
    }
    fn apply(data: &mut ClusterData, ((ns, name), record): Self::Item) {
        data.upsert_slice(&ns, &name, record);
    }
    fn delete(data: &mut ClusterData, obj: &Self) {
        if let (Some(ns), Some(name)) = (&obj.metadata.namespace, &obj.metadata.name) {
            data.remove_slice(ns, name);
        }
    }
    fn replace(data: &mut ClusterData, items: Vec<Self::Item>) {
        data.replace_slices(items);
    }
}

/// Which kinds have been listed once; the store is synced when all have.
#[derive(Default)]
pub struct SyncState {
    listed: std::sync::Mutex<[bool; 3]>,
}

/// Runs the three watches until the tasks are aborted.
pub fn spawn(
    client: kube::Client,
    data: Arc<RwLock<ClusterData>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let sync = Arc::new(SyncState::default());
    vec![
        tokio::spawn(watch::<Namespace>(
            Api::all(client.clone()),
            data.clone(),
            sync.clone(),
            0,
        )),
        tokio::spawn(watch::<Service>(
            Api::all(client.clone()),
            data.clone(),
            sync.clone(),
            1,
        )),
        tokio::spawn(watch::<EndpointSlice>(Api::all(client), data, sync, 2)),
    ]
}

fn mark_synced(d: &mut ClusterData, sync: &SyncState, slot: usize) {
    if let Ok(mut listed) = sync.listed.lock() {
        listed[slot] = true;
        if listed.iter().all(|l| *l) && !d.synced() {
            d.set_synced(true);
            tracing::info!("cluster DNS synced");
        }
    }
}

fn mark_listed(data: &RwLock<ClusterData>, sync: &SyncState, slot: usize) {
    if let Ok(mut d) = data.write() {
        mark_synced(&mut d, sync, slot);
    }
}

/// Whether a watch error is the API server refusing the list outright.
fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 403,
        _ => false,
    }
}

fn now_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

async fn watch<K>(api: Api<K>, data: Arc<RwLock<ClusterData>>, sync: Arc<SyncState>, slot: usize)
where
    K: Watched,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut listing: Option<Vec<K::Item>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) if K::forbidden_fallback(&data, &e) => {
                tracing::warn!(%kind, error = %e, "cannot watch {kind}: a namespace exists while it has Services");
                mark_listed(&data, &sync, slot);
                return;
            }
            Err(e) => {
                tracing::warn!(%kind, error = %e, "cluster DNS watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(mut d) = data.write() else {
            tracing::error!("cluster DNS store poisoned");
            return;
        };
        match event {
            Event::Init => listing = Some(Vec::new()),
            Event::InitApply(obj) => {
                if let (Some(l), Some(item)) = (listing.as_mut(), obj.item()) {
                    l.push(item);
                }
            }
            Event::InitDone => {
                K::replace(&mut d, listing.take().unwrap_or_default());
                mark_synced(&mut d, &sync, slot);
            }
            Event::Apply(obj) => match obj.item() {
                Some(item) => K::apply(&mut d, item),
                // No longer something DNS answers from (a slice that lost its Service label).
                None => K::delete(&mut d, &obj),
            },
            Event::Delete(obj) => K::delete(&mut d, &obj),
        }
        d.touch(now_serial());
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn status(code: u16) -> Box<Status> {
        Status::failure("no", "Forbidden").with_code(code).boxed()
    }

    #[test]
    fn forbidden_namespaces_switch_to_judging_by_services() {
        let data = RwLock::new(ClusterData::new());
        let other = watcher::Error::WatchFailed(kube::Error::Api(status(500)));
        assert!(!Namespace::forbidden_fallback(&data, &other));
        let forbidden = watcher::Error::InitialListFailed(kube::Error::Api(status(403)));
        // Services and slices never give up.
        assert!(!Service::forbidden_fallback(&data, &forbidden));
        assert!(Namespace::forbidden_fallback(&data, &forbidden));
        let mut d = data.write().unwrap();
        d.upsert_service(
            "ns",
            "a",
            ServiceRecord {
                kind: super::super::store::ServiceKind::Headless,
                ports: vec![],
            },
        );
        assert!(d.has_namespace("ns"));
    }

    #[test]
    fn synced_once_every_kind_has_listed() {
        let data = RwLock::new(ClusterData::new());
        let sync = SyncState::default();
        mark_listed(&data, &sync, 0);
        mark_listed(&data, &sync, 2);
        assert!(!data.read().unwrap().synced());
        mark_listed(&data, &sync, 1);
        assert!(data.read().unwrap().synced());
    }
}
