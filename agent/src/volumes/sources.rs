//! Where volume contents come from: the API objects a pod's volumes reference.
//!
//! The manager only needs a handful of reads, so the trait is small enough for
//! tests to fake with a map; [`ApiSources`] is the implementation on a
//! Kubernetes API client.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, ServiceAccount,
    ServiceAccountTokenProjection,
};
use kube::Api;
use kube::api::PostParams;

/// The error type of a [`VolumeSources`] implementation.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the API objects that pod volumes reference. `Ok(None)` means the
/// object does not exist; `Err` means it could not be read.
pub trait VolumeSources: Send + Sync {
    /// The ConfigMap `namespace/name`.
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, SourceError>> + Send;

    /// The Secret `namespace/name`.
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, SourceError>> + Send;

    /// The PersistentVolumeClaim `namespace/name`.
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<PersistentVolumeClaim>, SourceError>> + Send;

    /// The PersistentVolume `name`.
    fn persistent_volume(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<PersistentVolume>, SourceError>> + Send;

    /// A token for the pod's service account, as a `serviceAccountToken`
    /// projection asks for it. `Ok(None)` (the default) means this source
    /// cannot issue tokens, and such volumes fail with a clear error.
    fn service_account_token(
        &self,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> impl Future<Output = Result<Option<String>, SourceError>> + Send {
        let _ = (pod, projection);
        async { Ok(None) }
    }
}

/// [`VolumeSources`] on a Kubernetes API client: plain GETs, and tokens from
/// the TokenRequest API bound to the pod, reused until 80% of their lifetime
/// has passed (as kubelet does) so that periodic updates do not rewrite them.
pub struct ApiSources {
    client: kube::Client,
    tokens: tokio::sync::Mutex<HashMap<TokenKey, CachedToken>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenKey {
    namespace: String,
    service_account: String,
    pod_uid: String,
    audience: String,
    expiration_seconds: i64,
}

struct CachedToken {
    token: String,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The lifetime Kubernetes gives a projected token when none is asked for.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

impl ApiSources {
    /// Reads through `client`.
    pub fn new(client: kube::Client) -> Self {
        ApiSources {
            client,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn request_token(
        &self,
        pod: &Pod,
        key: &TokenKey,
    ) -> Result<(String, Duration), SourceError> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if key.audience.is_empty() {
                    Vec::new()
                } else {
                    vec![key.audience.clone()]
                },
                expiration_seconds: Some(key.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".to_string()),
                    kind: Some("Pod".to_string()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..TokenRequest::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key.namespace);
        let issued = api
            .create_token_request(&key.service_account, &PostParams::default(), &request)
            .await?;
        let status = issued
            .status
            .ok_or("the TokenRequest response has no status")?;
        let now = k8s_openapi::jiff::Timestamp::now();
        let ttl = status
            .expiration_timestamp
            .0
            .duration_since(now)
            .max(k8s_openapi::jiff::SignedDuration::ZERO)
            .unsigned_abs();
        Ok((status.token, ttl))
    }
}

impl VolumeSources for ApiSources {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?)
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        Ok(api.get_opt(name).await?)
    }

    async fn service_account_token(
        &self,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<Option<String>, SourceError> {
        let spec = pod.spec.as_ref();
        let key = TokenKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            audience: projection.audience.clone().unwrap_or_default(),
            expiration_seconds: projection
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_SECONDS),
        };
        let mut tokens = self.tokens.lock().await;
        let now = Instant::now();
        tokens.retain(|_, cached| cached.expires_at > now);
        if let Some(cached) = tokens.get(&key)
            && cached.refresh_at > now
        {
            return Ok(Some(cached.token.clone()));
        }
        let (token, ttl) = self.request_token(pod, &key).await?;
        tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                refresh_at: now + ttl.mul_f64(0.8),
                expires_at: now + ttl,
            },
        );
        Ok(Some(token))
    }
}
