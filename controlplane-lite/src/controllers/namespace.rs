//! Namespace deletion: a Terminating namespace is emptied, then removed.

use std::sync::Arc;
use std::time::Duration;

use crate::apiserver::handlers::{Api, DeleteOptions, decode_stored, delete, delete_object};
use crate::apiserver::object;
use crate::apiserver::registry;
use crate::apiserver::status::ApiError;

pub async fn run(api: Arc<Api>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&api).await {
            tracing::warn!(error = %e, "namespace controller");
        }
    }
}

async fn sweep(api: &Api) -> Result<(), ApiError> {
    let Some(nsinfo) = registry::lookup("", "v1", "namespaces") else {
        return Ok(());
    };
    let listed = api
        .store
        .list(&nsinfo.storage_prefix(), None, 0, None)
        .await
        .map_err(|e| ApiError::from_store(nsinfo, "", e))?;
    for kv in &listed.kvs {
        let ns = decode_stored(kv)?;
        if !object::is_deleting(&ns) {
            continue;
        }
        let name = object::name(&ns).to_string();
        if empty_namespace(api, &name).await? {
            match delete::remove(api, nsinfo, None, &name, Some(kv.mod_revision)).await {
                Ok(_) => tracing::info!(namespace = %name, "namespace deleted"),
                Err(e) if e.code == 409 || e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Deletes what is left in `ns`; true once nothing is.
async fn empty_namespace(api: &Api, ns: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        ..DeleteOptions::default()
    };
    for info in registry::stored().filter(|r| r.namespaced) {
        let prefix = api.prefix(info, Some(ns));
        let listed = api
            .store
            .list(&prefix, None, 0, None)
            .await
            .map_err(|e| ApiError::from_store(info, "", e))?;
        for kv in &listed.kvs {
            empty = false;
            let obj = decode_stored(kv)?;
            if object::is_deleting(&obj) {
                continue;
            }
            match delete_object(api, info, Some(ns), object::name(&obj), &opts).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(empty)
}
