//! What a fresh cluster starts with, made idempotently on every start: the system
//! namespaces, the `kubernetes` and `kube-dns` Services, and the Service allocator's view
//! of the store.

use std::net::Ipv4Addr;

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

/// The label that keeps node proxies from programming a Service (kube-proxy skips every
/// Service that names a non-default proxy in it).
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// skiff-proxy answers DNS on the kube-dns address itself, on every node.
pub const NODE_DNS_PROXY: &str = "skiff-node-dns";

/// The `kube-system/kube-dns` Service as kubeadm's CoreDNS addon makes it, without a
/// selector (no CoreDNS pods: each node's skiff-proxy listens on the address) and with
/// the service-proxy-name label (so no proxy sends its traffic elsewhere).
pub fn kube_dns_service(ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kube-dns", "namespace": "kube-system",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
                SERVICE_PROXY_NAME: NODE_DNS_PROXY,
            },
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
        },
        "spec": {
            "clusterIP": ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
            "sessionAffinity": "None", "type": "ClusterIP",
        },
    })
}

/// `dns_ip`: the kube-dns Service's address, `None` for no kube-dns Service.
pub async fn run(api: &Api, dns_ip: Option<Ipv4Addr>) -> Result<(), ApiError> {
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
    ensure(api, services, svc).await?;
    if let Some(ip) = dns_ip {
        // A user Service that took the address before (an older cluster) keeps it: the
        // cluster starts without kube-dns rather than not at all.
        if let Err(e) = ensure(api, services, kube_dns_service(ip)).await {
            if e.reason != "Invalid" {
                return Err(e);
            }
            tracing::warn!(%ip, error = %e, "cannot make the kube-system/kube-dns Service");
        }
    }
    Ok(())
}

/// The kubeconfig kubeadm publishes in `kube-public/cluster-info`: the cluster's address
/// and CA, no user. Joining nodes read it anonymously and pin the CA by its hash.
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

/// Writes `kube-public/cluster-info`, or brings it up to date when the address or CA
/// changed since the last start.
pub async fn cluster_info(api: &Api, server: &str, ca_pem: &str) -> Result<(), ApiError> {
    let cms = info("", "configmaps")?;
    let kubeconfig = cluster_info_kubeconfig(server, ca_pem);
    let ns = crate::apiserver::authz::CLUSTER_INFO_NAMESPACE;
    let name = crate::apiserver::authz::CLUSTER_INFO;
    match api.read(cms, Some(ns), name).await? {
        None => {
            ensure(
                api,
                cms,
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": ns},
                       "data": {"kubeconfig": kubeconfig}}),
            )
            .await
        }
        Some((mut cm, kv)) => {
            if cm.pointer("/data/kubeconfig").and_then(Value::as_str) == Some(&kubeconfig) {
                return Ok(());
            }
            cm["data"]["kubeconfig"] = json!(kubeconfig);
            let bytes = crate::apiserver::handlers::encode_for_store(&cm)?;
            api.store
                .update(&api.key(cms, Some(ns), name), bytes, kv.mod_revision)
                .await
                .map(|_| ())
                .map_err(|e| ApiError::from_store(cms, name, e))
        }
    }
}
