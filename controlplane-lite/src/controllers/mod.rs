//! Control loops that run inside the control plane process.

use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::handlers::Api;

pub mod compactor;
pub mod gc;
pub mod namespace;
pub mod namespace_cache;
pub mod runtime;

/// Starts every controller; the returned handle aborts them all.
pub fn spawn(
    api: Arc<Api>,
    compaction_interval: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ns = tokio::spawn(namespace::run(api.clone()));
        let nsc = tokio::spawn(namespace_cache::run(api.clone()));
        let gc = tokio::spawn(gc::run(api.clone()));
        let compact = tokio::spawn(compactor::run(api.store.clone(), compaction_interval));
        let mut stop = stop;
        let _ = stop.wait_for(|s| *s).await;
        ns.abort();
        nsc.abort();
        gc.abort();
        compact.abort();
    })
}
