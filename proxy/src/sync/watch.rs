//! Services and EndpointSlices from the API server, cached by kube-rs reflectors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::Trigger;
use crate::model::{ProxyState, build_state};

/// The two caches the proxy reads.
#[derive(Clone)]
pub struct Caches {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
}

impl Caches {
    /// The desired state from what the caches hold now.
    pub fn snapshot(&self) -> ProxyState {
        let services = self.services.state();
        let slices = self.slices.state();
        build_state(
            services.iter().map(|s| s.as_ref()),
            slices.iter().map(|s| s.as_ref()),
        )
    }
}

/// Starts watching Services and EndpointSlices in all namespaces. `trigger` is notified on
/// every change once both caches hold a full list: syncing earlier would program Services
/// without their endpoints and reject their traffic for a moment.
pub fn start(client: Client, trigger: Trigger) -> Caches {
    let services_ready = Arc::new(AtomicBool::new(false));
    let slices_ready = Arc::new(AtomicBool::new(false));
    // kube-proxy leaves Services labelled for another proxy alone; skiff's node-local DNS
    // Service (kube-dns) is one of them.
    let services = spawn_reflector::<Service>(
        Api::all(client.clone()),
        watcher::Config::default().labels(&format!("!{SERVICE_PROXY_NAME}")),
        trigger.clone(),
        services_ready.clone(),
        slices_ready.clone(),
    );
    let slices = spawn_reflector::<EndpointSlice>(
        Api::all(client),
        watcher::Config::default(),
        trigger,
        slices_ready,
        services_ready,
    );
    Caches { services, slices }
}

/// The label naming a Service's proxy when it is not the default one.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";

fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    trigger: Trigger,
    ready: Arc<AtomicBool>,
    other_ready: Arc<AtomicBool>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init | Event::InitApply(_)) => {}
                Ok(Event::InitDone) => {
                    ready.store(true, Ordering::Release);
                    if other_ready.load(Ordering::Acquire) {
                        trigger.notify();
                    }
                }
                Ok(Event::Apply(_) | Event::Delete(_)) => {
                    if ready.load(Ordering::Acquire) && other_ready.load(Ordering::Acquire) {
                        trigger.notify();
                    }
                }
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying")
                }
            }
        }
    });
    store
}
