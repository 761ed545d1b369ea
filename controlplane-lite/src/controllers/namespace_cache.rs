//! An in-memory view of namespaces (name → terminating), so that every create does not
//! read its namespace from the store. A miss falls back to the store.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::apiserver::handlers::{Api, decode_stored};
use crate::apiserver::object;
use crate::store::EventType;

const PREFIX: &str = "/registry/core/namespaces/";

pub async fn run(api: Arc<Api>) {
    loop {
        if let Err(e) = follow(&api).await {
            tracing::warn!(error = %e, "namespace cache restarting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow(api: &Api) -> Result<(), String> {
    let listed = api
        .store
        .list(PREFIX, None, 0, None)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut cache = api.namespaces.write().map_err(|e| e.to_string())?;
        cache.clear();
        for kv in &listed.kvs {
            let ns = decode_stored(kv).map_err(|e| e.to_string())?;
            cache.insert(object::name(&ns).to_string(), object::is_deleting(&ns));
        }
    }
    let mut stream = api
        .store
        .watch(PREFIX, listed.revision)
        .await
        .map_err(|e| e.to_string())?;
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(|e| e.to_string())?;
        let ns = decode_stored(&ev.kv).map_err(|e| e.to_string())?;
        let mut cache = api.namespaces.write().map_err(|e| e.to_string())?;
        if ev.kind == EventType::Delete {
            cache.remove(object::name(&ns));
        } else {
            cache.insert(object::name(&ns).to_string(), object::is_deleting(&ns));
        }
    }
    Err("namespace watch ended".into())
}
