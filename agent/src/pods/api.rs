//! What the pod logic asks of the API server besides volume sources: writing a pod's
//! status, removing a finished pod, and the Services whose variables containers get. A
//! trait, so the pod worker runs in tests against an in-memory stand-in.

use std::future::Future;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
    ServiceAccountTokenProjection,
};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};

use crate::volumes::{ApiSources, MapSources, SourceError, VolumeSources};

/// The API calls of the pod logic. `Err` carries the server's or the transport's message.
pub trait PodApi: VolumeSources + 'static {
    /// Replaces the fields of the pod's status given in `status` (a merge patch of
    /// `status`).
    fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &Value,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Deletes the pod object now (grace period 0), only if it is still the pod `uid`.
    /// A pod that is already gone is success.
    fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The Services of `namespace`, and `default/kubernetes`.
    fn services(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<Service>, String>> + Send;
}

/// [`PodApi`] on a Kubernetes client.
pub struct KubePodApi {
    client: kube::Client,
    sources: ApiSources,
}

impl KubePodApi {
    pub fn new(client: kube::Client) -> Self {
        KubePodApi {
            sources: ApiSources::new(client.clone()),
            client,
        }
    }
}

impl VolumeSources for KubePodApi {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        self.sources.config_map(ns, name).await
    }
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        self.sources.secret(ns, name).await
    }
    async fn persistent_volume_claim(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        self.sources.persistent_volume_claim(ns, name).await
    }
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        self.sources.persistent_volume(name).await
    }
    async fn service_account_token(
        &self,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<Option<String>, SourceError> {
        self.sources.service_account_token(pod, projection).await
    }
}

impl PodApi for KubePodApi {
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &Value,
    ) -> Result<(), String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<(), String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or a new pod of the same name (the precondition failed).
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, String> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let mut out = api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        if namespace != "default" {
            let default: Api<Service> = Api::namespaced(self.client.clone(), "default");
            match default.get_opt("kubernetes").await {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    }
}

/// [`PodApi`] in memory: statuses written are kept, deletions recorded.
#[derive(Default)]
pub struct MemoryPodApi {
    pub sources: MapSources,
    pub services: Mutex<Vec<Service>>,
    statuses: Mutex<Vec<(String, Value)>>,
    deleted: Mutex<Vec<String>>,
}

impl MemoryPodApi {
    /// Every status written, as `(namespace/name, status)`, oldest first.
    pub fn statuses(&self) -> Vec<(String, Value)> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last status written for `namespace/name`.
    pub fn last_status(&self, key: &str) -> Option<Value> {
        self.statuses()
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// UIDs of the pods deleted.
    pub fn deleted(&self) -> Vec<String> {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl VolumeSources for MemoryPodApi {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        self.sources.config_map(ns, name).await
    }
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        self.sources.secret(ns, name).await
    }
    async fn persistent_volume_claim(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        self.sources.persistent_volume_claim(ns, name).await
    }
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        self.sources.persistent_volume(name).await
    }
}

impl PodApi for MemoryPodApi {
    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &Value,
    ) -> Result<(), String> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((format!("{namespace}/{name}"), status.clone()));
        Ok(())
    }

    async fn delete_pod(&self, _namespace: &str, _name: &str, uid: &str) -> Result<(), String> {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(uid.to_string());
        Ok(())
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, String> {
        Ok(self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| {
                let ns = s.metadata.namespace.as_deref();
                ns == Some(namespace)
                    || (ns == Some("default") && s.metadata.name.as_deref() == Some("kubernetes"))
            })
            .cloned()
            .collect())
    }
}
