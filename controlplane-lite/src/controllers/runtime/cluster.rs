//! How controllers change the cluster: creates, replaces, merge patches (of objects and their
//! status), deletes, pod bindings and events. A trait, so controllers run against the API
//! server ([`KubeCluster`]) or against memory in unit tests ([`super::FakeCluster`]).

use std::future::Future;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy};
use kube::core::Request;
use serde_json::Value;

use super::events::{EventSink, ObjectEvent};
use super::informer::Kind;

/// Why a change was refused, with the API server's code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{verb} {kind} {name}: {message}")]
pub struct ClusterError {
    pub verb: &'static str,
    pub kind: String,
    pub name: String,
    /// The HTTP status; 0 when the server was not reached.
    pub code: u16,
    /// Kubernetes' reason, e.g. `NotFound`, `Conflict`, `AlreadyExists`.
    pub reason: String,
    pub message: String,
}

impl ClusterError {
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
    /// A stale resourceVersion or a failed precondition: read again and retry.
    pub fn is_conflict(&self) -> bool {
        self.code == 409 && self.reason != "AlreadyExists"
    }
    pub fn is_already_exists(&self) -> bool {
        self.code == 409 && self.reason == "AlreadyExists"
    }
}

/// How to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delete {
    /// Only if the object still has this uid.
    pub uid: Option<String>,
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: Option<&'static str>,
    pub grace_period_seconds: Option<i64>,
}

/// The writes a controller makes.
pub trait Cluster: Send + Sync + 'static {
    fn create<K: Kind>(&self, obj: &K) -> impl Future<Output = Result<K, ClusterError>> + Send;

    /// Replaces the object; its resourceVersion must be current.
    fn replace<K: Kind>(&self, obj: &K) -> impl Future<Output = Result<K, ClusterError>> + Send;

    /// Replaces the object's status; its resourceVersion must be current.
    fn replace_status<K: Kind>(
        &self,
        obj: &K,
    ) -> impl Future<Output = Result<K, ClusterError>> + Send;

    /// A JSON merge patch of the object.
    fn patch<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> impl Future<Output = Result<K, ClusterError>> + Send;

    /// A JSON merge patch of the object's status.
    fn patch_status<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> impl Future<Output = Result<K, ClusterError>> + Send;

    /// Deletes the object; a missing one is [`ClusterError::is_not_found`].
    fn delete<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        how: &Delete,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Binds pod `namespace/name` (with `uid`) to `node` through `pods/binding`.
    fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Records an event about an object; never blocks, never fails the caller.
    fn record(&self, event: ObjectEvent);

    /// Replaces a CertificateSigningRequest's approval conditions through its `approval`
    /// subresource (its status, where there is no API server).
    fn replace_approval<K: Kind>(
        &self,
        obj: &K,
    ) -> impl Future<Output = Result<K, ClusterError>> + Send {
        self.replace_status(obj)
    }

    /// Sets the object's replicas through its `scale` subresource (a merge patch of
    /// `spec.replicas` where there is no API server).
    fn scale<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        replicas: i32,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        async move { self.patch::<K>(namespace, name, &patch).await.map(|_| ()) }
    }

    /// The API client behind this cluster, for reads no informer serves (aggregated APIs
    /// such as `metrics.k8s.io`); `None` in memory.
    fn api_client(&self) -> Option<kube::Client> {
        None
    }
}

fn meta_of<K: Kind>(obj: &K) -> (Option<String>, String) {
    let m = obj.meta();
    (m.namespace.clone(), m.name.clone().unwrap_or_default())
}

/// [`Cluster`] on a Kubernetes API client.
#[derive(Clone)]
pub struct KubeCluster {
    client: kube::Client,
    events: EventSink,
}

impl KubeCluster {
    /// `component` names the writer in events (`deployment-controller`, `default-scheduler`).
    pub fn new(client: kube::Client, component: &str) -> Self {
        KubeCluster {
            events: EventSink::start(client.clone(), component),
            client,
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        verb: &'static str,
        kind: &str,
        name: &str,
    ) -> Result<T, ClusterError> {
        let err = |code: u16, reason: String, message: String| ClusterError {
            verb,
            kind: kind.to_string(),
            name: name.to_string(),
            code,
            reason,
            message,
        };
        let req = req.map_err(|e| err(0, String::new(), e.to_string()))?;
        self.client.request::<T>(req).await.map_err(|e| match e {
            kube::Error::Api(s) => err(s.code, s.reason.clone(), s.message.clone()),
            other => err(0, String::new(), other.to_string()),
        })
    }
}

fn request<K: Kind>(namespace: Option<&str>) -> Request {
    Request::new(K::url_path(&(), namespace))
}

fn body<K: Kind>(obj: &K) -> Result<Vec<u8>, kube::core::request::Error> {
    serde_json::to_vec(obj).map_err(kube::core::request::Error::SerializeBody)
}

impl Cluster for KubeCluster {
    async fn create<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let (ns, name) = meta_of(obj);
        let req =
            body(obj).and_then(|b| request::<K>(ns.as_deref()).create(&PostParams::default(), b));
        self.send(req, "create", &K::kind(&()), &name).await
    }

    async fn replace<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let (ns, name) = meta_of(obj);
        let req = body(obj)
            .and_then(|b| request::<K>(ns.as_deref()).replace(&name, &PostParams::default(), b));
        self.send(req, "update", &K::kind(&()), &name).await
    }

    async fn replace_status<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let (ns, name) = meta_of(obj);
        let req = body(obj).and_then(|b| {
            request::<K>(ns.as_deref()).replace_subresource(
                "status",
                &name,
                &PostParams::default(),
                b,
            )
        });
        self.send(req, "update status of", &K::kind(&()), &name)
            .await
    }

    async fn patch<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K, ClusterError> {
        let req =
            request::<K>(namespace).patch(name, &PatchParams::default(), &Patch::Merge(patch));
        self.send(req, "patch", &K::kind(&()), name).await
    }

    async fn patch_status<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K, ClusterError> {
        let req = request::<K>(namespace).patch_subresource(
            "status",
            name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        );
        self.send(req, "patch status of", &K::kind(&()), name).await
    }

    async fn delete<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        how: &Delete,
    ) -> Result<(), ClusterError> {
        let dp = DeleteParams {
            grace_period_seconds: how.grace_period_seconds.map(|g| g.max(0) as u32),
            propagation_policy: how.propagation.map(|p| match p {
                "Foreground" => PropagationPolicy::Foreground,
                "Orphan" => PropagationPolicy::Orphan,
                _ => PropagationPolicy::Background,
            }),
            preconditions: how.uid.as_ref().map(|uid| Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let req = request::<K>(namespace).delete(name, &dp);
        self.send::<Value>(req, "delete", &K::kind(&()), name)
            .await
            .map(|_| ())
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ClusterError> {
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let req = serde_json::to_vec(&binding)
            .map_err(kube::core::request::Error::SerializeBody)
            .and_then(|b| {
                Request::new(format!("/api/v1/namespaces/{namespace}/pods")).create_subresource(
                    "binding",
                    name,
                    &PostParams::default(),
                    b,
                )
            });
        self.send::<Value>(req, "bind", "Pod", name)
            .await
            .map(|_| ())
    }

    fn record(&self, event: ObjectEvent) {
        self.events.record(event);
    }

    async fn replace_approval<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let (ns, name) = meta_of(obj);
        let req = body(obj).and_then(|b| {
            request::<K>(ns.as_deref()).replace_subresource(
                "approval",
                &name,
                &PostParams::default(),
                b,
            )
        });
        self.send(req, "update approval of", &K::kind(&()), &name)
            .await
    }

    async fn scale<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        replicas: i32,
    ) -> Result<(), ClusterError> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        let req = request::<K>(namespace).patch_subresource(
            "scale",
            name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        );
        self.send::<Value>(req, "scale", &K::kind(&()), name)
            .await
            .map(|_| ())
    }

    fn api_client(&self) -> Option<kube::Client> {
        Some(self.client.clone())
    }
}
