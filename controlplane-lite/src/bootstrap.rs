//! What a fresh cluster starts with, made idempotently on every start: the system
//! namespaces, the `kubernetes` Service, and the Service allocator's view of the store.

use serde_json::{Value, json};

use crate::apiserver::handlers::{Api, create_object, decode_stored};
use crate::apiserver::registry;
use crate::apiserver::status::ApiError;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

fn info(group: &str, plural: &str) -> Result<&'static registry::ResourceInfo, ApiError> {
    registry::lookup(group, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not registered")))
}

async fn ensure(
    api: &Api,
    info: &'static registry::ResourceInfo,
    mut obj: Value,
) -> Result<(), ApiError> {
    match create_object(api, info, &mut obj, false).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn run(api: &Api) -> Result<(), ApiError> {
    let services = info("", "services")?;
    let listed = api
        .store
        .list(&services.storage_prefix(), None, 0, None)
        .await
        .map_err(|e| ApiError::from_store(services, "", e))?;
    {
        let mut alloc = api.services.lock().await;
        for kv in &listed.kvs {
            alloc.observe(&decode_stored(kv)?);
        }
    }
    let namespaces = info("", "namespaces")?;
    for ns in SYSTEM_NAMESPACES {
        ensure(
            api,
            namespaces,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let ip = api.services.lock().await.apiserver_ip().to_string();
    let port: u16 = api
        .server_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}], "sessionAffinity": "None", "type": "ClusterIP"},
    });
    ensure(api, services, svc).await
}
