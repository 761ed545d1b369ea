//! The verbs on resources: get, list, watch, create, update, patch, delete.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

use super::alloc::ServiceAllocator;
use super::registry::ResourceInfo;
use super::response::{self, Response};
use super::route::{Query, ResourceRequest};
use super::status::ApiError;
use crate::store::{DynStore, KeyValue};

pub mod connect;
pub mod delete;
pub mod eviction;
mod read;
mod services;
mod watch;
mod write;

pub use delete::{DeleteOptions, delete_object};
pub use write::{MAX_BODY, create_object};

/// Everything a request handler needs.
pub struct Api {
    pub store: DynStore,
    pub services: Mutex<ServiceAllocator>,
    /// `host:port` clients reach the server at (for discovery).
    pub server_address: String,
    /// Namespace name → terminating, kept current by a watch (see controllers).
    pub namespaces: std::sync::RwLock<std::collections::HashMap<String, bool>>,
    /// Settings of the mutating admission plugins.
    pub admission: super::kinds::admission::Admission,
    /// How agents are reached (`pods/log`, `exec`, `attach`, `portforward`, `nodes/proxy`);
    /// `None` serves none of those.
    pub nodes: Option<Arc<super::nodes::NodeConnector>>,
    /// What the resource metrics scraper has read, served as `metrics.k8s.io`.
    pub metrics: Arc<crate::metrics_api::MetricsStore>,
}

pub type Reply = Result<Response, ApiError>;

impl Api {
    pub fn key(&self, info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
        let mut k = info.storage_prefix();
        if let Some(ns) = namespace.filter(|_| info.namespaced) {
            k.push_str(ns);
            k.push('/');
        }
        k.push_str(name);
        k
    }

    pub fn prefix(&self, info: &ResourceInfo, namespace: Option<&str>) -> String {
        let mut k = info.storage_prefix();
        if let Some(ns) = namespace.filter(|_| info.namespaced) {
            k.push_str(ns);
            k.push('/');
        }
        k
    }

    /// Reads one object, with its resourceVersion filled in.
    pub async fn read(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<(Value, KeyValue)>, ApiError> {
        let key = self.key(info, namespace, name);
        let (kv, _) = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(info, name, e))?;
        match kv {
            None => Ok(None),
            Some(kv) => Ok(Some((decode_stored(&kv)?, kv))),
        }
    }
}

pub use super::codec::{decode as decode_stored, encode as encode_for_store};

/// A request on a resource, after routing and authentication.
pub struct Request {
    pub method: Method,
    pub res: ResourceRequest,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who asks; `None` for the anonymous requests the authorizer allows.
    pub identity: Option<super::server::Identity>,
}

impl Request {
    pub fn namespace(&self) -> Option<&str> {
        self.res.namespace.as_deref()
    }

    pub fn wants_table(&self) -> bool {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    pub fn wants_partial_metadata(&self) -> bool {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata") && !a.contains("as=Table"))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }
}

pub async fn handle(api: &Arc<Api>, req: Request) -> Reply {
    let info = req.res.info;
    let name = req.res.name.clone();
    let sub = req.res.subresource.clone();
    if let Some(s) = sub.as_deref() {
        let known = info.has_subresource(s) || (info.kind == "Namespace" && s == "finalize");
        if !known {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    }
    match (&req.method, name.as_deref(), sub.as_deref()) {
        (&Method::GET, None, None) if req.query.flag("watch") => watch::watch(api, &req).await,
        (&Method::GET, None, None) => read::list(api, &req).await,
        (&Method::GET, Some(n), None | Some("status")) => read::get(api, &req, n).await,
        (&Method::GET, Some(n), Some("scale")) => write::get_scale(api, &req, n).await,
        (&Method::POST, None, None) => write::create(api, &req).await,
        (&Method::POST, Some(n), Some("binding")) => write::bind(api, &req, n).await,
        (&Method::POST, Some(n), Some("eviction")) => eviction::evict(api, &req, n).await,
        (&Method::PUT, Some(n), Some("scale")) => write::update_scale(api, &req, n).await,
        (&Method::PATCH, Some(n), Some("scale")) => write::patch_scale(api, &req, n).await,
        (&Method::PUT, Some(n), s) => write::update(api, &req, n, s).await,
        (&Method::PATCH, Some(n), s) => write::patch(api, &req, n, s).await,
        (&Method::DELETE, Some(n), None) => delete::delete(api, &req, n).await,
        (&Method::DELETE, None, None) => delete::delete_collection(api, &req).await,
        (m, _, _) => Err(ApiError::method_not_supported(info, m.as_str())),
    }
}

/// Answers a stored object (or Table, when asked for) with `code`, in the version the
/// request names.
pub fn object_reply(req: &Request, code: StatusCode, obj: &Value) -> Reply {
    if req.wants_table() {
        let table = super::printers::table(
            req.res.info.kind,
            std::slice::from_ref(obj),
            jiff::Timestamp::now(),
            req.query.get("includeObject").unwrap_or("Metadata"),
        );
        return Ok(response::json(code, &table));
    }
    if req.wants_partial_metadata() {
        return Ok(response::json(code, &partial_metadata(obj)));
    }
    if !req.res.served.is_storage() {
        return Ok(response::json(
            code,
            &super::conversion::from_storage(req.res.served, obj),
        ));
    }
    Ok(response::json(code, obj))
}

pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}
