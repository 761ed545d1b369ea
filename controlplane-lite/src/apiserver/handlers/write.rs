//! create, update, patch, and the binding and scale subresources.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Api, Reply, Request, encode_for_store, object_reply, services};
use crate::apiserver::kinds::{self, validation};
use crate::apiserver::object;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::response;
use crate::apiserver::status::ApiError;
use crate::store::{KeyValue, StoreError};

/// Largest request body accepted, as in Kubernetes.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Parses a request body as JSON, or YAML when the content type says so.
pub fn decode_body(req: &Request) -> Result<Value, ApiError> {
    let ct = req.content_type();
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    // kubectl's generator commands (`kubectl create configmap`, …) send protobuf.
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        use crate::apiserver::protobuf::{ProtoError, decode};
        return decode(&req.body).map_err(|e| match e {
            // A kind or envelope we cannot read as protobuf: the client should send JSON.
            ProtoError::UnsupportedKind { .. } | ProtoError::UnsupportedEnvelope { .. } => {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("decoding the protobuf body: {e}"),
                )
            }
            other => ApiError::bad_request(format!("decoding the protobuf body: {other}")),
        });
    }
    if ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(&req.body)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        serde_yaml::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
    } else {
        serde_json::from_slice::<Value>(&req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })
    }
}

/// Checks and fills apiVersion, kind, namespace of an incoming object.
fn check_identity(info: &ResourceInfo, req: &Request, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    let want_av = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(av) if av != want_av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
        _ => obj["apiVersion"] = json!(want_av),
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
        _ => obj["kind"] = json!(info.kind),
    }
    if info.namespaced {
        let path_ns = req.namespace().unwrap_or("");
        let body_ns = object::namespace(obj).to_string();
        if !body_ns.is_empty() && body_ns != path_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        object::meta_mut(obj).insert("namespace".into(), json!(path_ns));
    }
    Ok(())
}

/// Decodes through the type of the version the request names; answers the unknown fields
/// per `fieldValidation`. Returns the object in the stored version.
fn normalize(req: &Request, obj: Value, warnings: &mut Vec<String>) -> Result<Value, ApiError> {
    let served = req.res.served;
    let kind = served.kind;
    let cannot = |e: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            served.version
        ))
    };
    let norm = kinds::normalize_as(served, obj.clone()).map_err(cannot)?;
    let unknown = kinds::unknown_fields(&obj, &norm);
    if !unknown.is_empty() {
        match req.query.get("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|u| format!("unknown field \"{u}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            "Ignore" => {}
            _ => warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\""))),
        }
    }
    if served.is_storage() {
        Ok(norm)
    } else {
        crate::apiserver::conversion::to_storage(served, norm).map_err(cannot)
    }
}

/// Refuses objects in a namespace that does not exist or is going away.
async fn check_namespace(api: &Api, info: &ResourceInfo, ns: &str) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    let cached = api.namespaces.read().ok().and_then(|c| c.get(ns).copied());
    if cached == Some(false) {
        return Ok(());
    }
    let nsinfo = crate::apiserver::registry::lookup("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces resource missing"))?;
    match api.read(nsinfo, None, ns).await? {
        None => Err(ApiError::namespace_not_found(ns)),
        Some((n, _)) if object::is_deleting(&n) => Err(ApiError::forbidden(format!(
            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            info.qualified_plural(),
        ))),
        Some(_) => Ok(()),
    }
}

fn with_warnings(mut r: response::Response, warnings: &[String]) -> response::Response {
    for w in warnings {
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))) {
            r.headers_mut().append(http::header::WARNING, v);
        }
    }
    r
}

pub async fn create(api: &Api, req: &Request) -> Reply {
    let info = req.res.info;
    if info.namespaced && req.namespace().is_none() {
        return Err(ApiError::method_not_supported(info, "create"));
    }
    let mut obj = decode_body(req)?;
    check_identity(req.res.served, req, &mut obj)?;
    let mut warnings = Vec::new();
    let mut obj = normalize(req, obj, &mut warnings)?;
    if info.kind == kinds::csr::KIND {
        kinds::csr::set_requester(&mut obj, req.identity.as_ref());
    }
    let created = create_object(api, info, &mut obj, req.dry_run()).await?;
    let r = object_reply(req, StatusCode::CREATED, &created)?;
    Ok(with_warnings(r, &warnings))
}

/// The create path shared by the API and the server's own bootstrapping.
pub async fn create_object(
    api: &Api,
    info: &ResourceInfo,
    obj: &mut Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let generate = object::meta_str(obj, "generateName")
        .unwrap_or("")
        .to_string();
    let explicit = object::name(obj).to_string();
    if explicit.is_empty() && generate.is_empty() {
        return Err(ApiError::invalid(
            info,
            "",
            vec![crate::apiserver::status::Cause {
                reason: "FieldValueRequired",
                field: "metadata.name".into(),
                message: "Required value: name or generateName is required".into(),
            }],
        ));
    }
    kinds::prepare_create(info, obj);
    kinds::admission::on_create(api, info, obj).await?;
    let ns = object::namespace(obj).to_string();
    check_namespace(api, info, &ns).await?;
    // generateName collisions are retried with a fresh suffix, as Kubernetes does.
    for attempt in 0..8 {
        let name = if explicit.is_empty() {
            skiff_api::names::generate_name(&generate)
        } else {
            explicit.clone()
        };
        object::meta_mut(obj).insert("name".into(), json!(name));
        if info.kind == "Job" {
            kinds::validation_batch::prepare_job(obj);
        }
        let causes = validation::validate(info, obj, None);
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        let ns_opt = info.namespaced.then_some(ns.as_str());
        let key = api.key(info, ns_opt, &name);
        let mut guard = None;
        if info.kind == "Service" {
            // A duplicate is AlreadyExists, not an address conflict with itself.
            if api.read(info, ns_opt, &name).await?.is_some() {
                return Err(ApiError::already_exists(info, &name));
            }
            let mut alloc = api.services.lock().await;
            services::allocate(info, &mut alloc, obj, None)?;
            guard = Some(alloc);
        }
        if dry_run {
            if let Some(mut alloc) = guard {
                alloc.release(obj);
            }
            return Ok(obj.clone());
        }
        let bytes = encode_for_store(obj)?;
        match api.store.create(&key, bytes).await {
            Ok(rev) => {
                object::set_resource_version(obj, rev);
                return Ok(obj.clone());
            }
            Err(e) => {
                if let Some(mut alloc) = guard {
                    alloc.release(obj);
                }
                if matches!(e, StoreError::AlreadyExists { .. })
                    && explicit.is_empty()
                    && attempt < 7
                {
                    continue;
                }
                return Err(ApiError::from_store(info, &name, e));
            }
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

/// How an update states what it expects to replace.
enum Precondition {
    /// The client named a resourceVersion: it must match.
    Exact(String),
    /// No resourceVersion: replace whatever is current (retry on races).
    Latest,
}

pub async fn update(api: &Api, req: &Request, name: &str, sub: Option<&str>) -> Reply {
    let info = req.res.info;
    let mut obj = decode_body(req)?;
    check_identity(req.res.served, req, &mut obj)?;
    let body_name = object::name(&obj).to_string();
    if body_name.is_empty() {
        object::meta_mut(&mut obj).insert("name".into(), json!(name));
    } else if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut warnings = Vec::new();
    let obj = normalize(req, obj, &mut warnings)?;
    let pre = match object::resource_version(&obj) {
        "" => Precondition::Latest,
        rv => Precondition::Exact(rv.to_string()),
    };
    let dry = req.dry_run();
    let out = update_with(
        api,
        info,
        req.namespace(),
        name,
        sub,
        dry,
        |_| Ok(obj.clone()),
        pre,
    )
    .await?;
    let r = object_reply(req, StatusCode::OK, &out)?;
    Ok(with_warnings(r, &warnings))
}

/// Reads the current object, computes the new one with `mutate`, and writes it with
/// compare-and-swap; retried on a lost race unless the client pinned a resourceVersion.
#[allow(clippy::too_many_arguments)]
async fn update_with(
    api: &Api,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    dry_run: bool,
    mutate: impl Fn(&Value) -> Result<Value, ApiError>,
    pre: Precondition,
) -> Result<Value, ApiError> {
    for _ in 0..16 {
        let Some((old, kv)) = api.read(info, ns, name).await? else {
            return Err(ApiError::not_found(info, name));
        };
        if let Precondition::Exact(rv) = &pre
            && rv != object::resource_version(&old)
        {
            return Err(ApiError::conflict(info, name));
        }
        let mut new = mutate(&old)?;
        if object::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&new)
            )));
        }
        kinds::prepare_update(info, &mut new, &old, sub);
        if sub.is_none() {
            kinds::admission::on_update(api, info, &mut new);
        }
        let causes = validation::validate(info, &new, Some(&old));
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, name, causes));
        }
        match write_update(api, info, ns, name, &mut new, &old, &kv, dry_run).await {
            Err(e) if e.reason == "Conflict" && matches!(pre, Precondition::Latest) => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(info, name))
}

#[allow(clippy::too_many_arguments)]
async fn write_update(
    api: &Api,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    new: &mut Value,
    old: &Value,
    kv: &KeyValue,
    dry_run: bool,
) -> Result<Value, ApiError> {
    object::set_resource_version(new, kv.mod_revision);
    if new == old {
        // A no-op update writes nothing and keeps the resourceVersion, as in Kubernetes.
        return Ok(old.clone());
    }
    // Removing the last finalizer of an object being deleted completes the deletion.
    if object::is_deleting(new) && object::finalizers(new).is_empty() {
        if dry_run {
            return Ok(new.clone());
        }
        let (_, _) = super::delete::remove(api, info, ns, name, Some(kv.mod_revision)).await?;
        return Ok(new.clone());
    }
    let mut guard = None;
    if info.kind == "Service" {
        let mut alloc = api.services.lock().await;
        services::allocate(info, &mut alloc, new, Some(old))?;
        guard = Some(alloc);
    }
    if dry_run {
        if let Some(mut alloc) = guard {
            services::undo(&mut alloc, new, old);
        }
        return Ok(new.clone());
    }
    let key = api.key(info, ns, name);
    let bytes = encode_for_store(new)?;
    match api.store.update(&key, bytes, kv.mod_revision).await {
        Ok(rev) => {
            if let Some(mut alloc) = guard {
                services::commit(&mut alloc, new, old);
            }
            object::set_resource_version(new, rev);
            Ok(new.clone())
        }
        Err(e) => {
            if let Some(mut alloc) = guard {
                services::undo(&mut alloc, new, old);
            }
            Err(ApiError::from_store(info, name, e))
        }
    }
}

/// Applies a patch document of the request's content type to `old`.
fn apply_patch(req: &Request, kind: &str, old: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ct = req.content_type();
    let mut doc = old.clone();
    if ct.starts_with("application/json-patch+json") {
        let p: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(&mut doc, &p).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
        Ok(doc)
    } else if ct.starts_with("application/merge-patch+json") {
        json_patch::merge(&mut doc, patch);
        Ok(doc)
    } else if ct.starts_with("application/strategic-merge-patch+json")
        || ct.starts_with("application/apply-patch+yaml")
    {
        // Server-side apply is served as a strategic merge of the applied configuration:
        // fields it names are set, list entries merge by their keys.
        skiff_api::strategic_merge::apply_strategic_merge_patch(kind, old, patch)
            .map_err(|e| ApiError::bad_request(format!("unable to apply patch: {e}")))
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

fn patch_body(req: &Request) -> Result<Value, ApiError> {
    let ct = req.content_type();
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    if req
        .content_type()
        .starts_with("application/apply-patch+yaml")
    {
        let text = std::str::from_utf8(&req.body)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        serde_yaml::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    }
}

pub async fn patch(api: &Api, req: &Request, name: &str, sub: Option<&str>) -> Reply {
    let info = req.res.info;
    let patch = patch_body(req)?;
    let is_apply = req
        .content_type()
        .starts_with("application/apply-patch+yaml");
    if is_apply && sub.is_none() && api.read(info, req.namespace(), name).await?.is_none() {
        // Server-side apply creates what does not exist yet.
        let mut obj = patch.clone();
        check_identity(req.res.served, req, &mut obj)?;
        let mut warnings = Vec::new();
        let mut obj = normalize(req, obj, &mut warnings)?;
        let created = create_object(api, info, &mut obj, req.dry_run()).await?;
        return object_reply(req, StatusCode::CREATED, &created);
    }
    let pre = match patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        Some(rv) if !rv.is_empty() => Precondition::Exact(rv.to_string()),
        _ => Precondition::Latest,
    };
    let warnings = std::sync::Mutex::new(Vec::new());
    let served = req.res.served;
    let mutate = |old: &Value| -> Result<Value, ApiError> {
        // A patch applies to the object as the client's version shows it.
        let mut new = if served.is_storage() {
            apply_patch(req, info.kind, old, &patch)?
        } else {
            let old = crate::apiserver::conversion::from_storage(served, old);
            apply_patch(req, info.kind, &old, &patch)?
        };
        // The patched object keeps its identity; a patch cannot move or rename it.
        new["apiVersion"] = json!(served.api_version());
        new["kind"] = json!(info.kind);
        let mut w = Vec::new();
        let n = normalize(req, new, &mut w)?;
        if let Ok(mut ws) = warnings.lock() {
            *ws = w;
        }
        Ok(n)
    };
    let out = update_with(
        api,
        info,
        req.namespace(),
        name,
        sub,
        req.dry_run(),
        mutate,
        pre,
    )
    .await?;
    let r = object_reply(req, StatusCode::OK, &out)?;
    let ws = warnings.into_inner().unwrap_or_default();
    Ok(with_warnings(r, &ws))
}

pub async fn bind(api: &Api, req: &Request, name: &str) -> Reply {
    let info = req.res.info;
    let binding = decode_body(req)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                info,
                name,
                vec![crate::apiserver::status::Cause::required("target.name")],
            )
        })?
        .to_string();
    let mutate = |old: &Value| -> Result<Value, ApiError> {
        if object::is_deleting(old) {
            return Err(ApiError::conflict_msg(
                info,
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(cur) = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return Err(ApiError::conflict_msg(
                info,
                name,
                &format!("pod {name} is already assigned to node \"{cur}\""),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now_rfc3339()});
        let conds = object::entry(&mut new, &["status", "conditions"]);
        if !conds.is_array() {
            *conds = json!([]);
        }
        if let Some(list) = conds.as_array_mut() {
            list.retain(|c| c.get("type") != Some(&json!("PodScheduled")));
            list.push(cond);
        }
        Ok(new)
    };
    // Binding writes spec.nodeName and a status condition at once, so it bypasses the
    // main-resource strategy that would drop the status change.
    for _ in 0..16 {
        let Some((old, kv)) = api.read(info, req.namespace(), name).await? else {
            return Err(ApiError::not_found(info, name));
        };
        let mut new = mutate(&old)?;
        let key = api.key(info, req.namespace(), name);
        let bytes = encode_for_store(&new)?;
        match api.store.update(&key, bytes, kv.mod_revision).await {
            Ok(rev) => {
                object::set_resource_version(&mut new, rev);
                let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
                return Ok(response::json(StatusCode::CREATED, &status));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(info, name, e)),
        }
    }
    Err(ApiError::conflict(info, name))
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .map(selector_string)
        .unwrap_or_default();
    let meta = object::meta(obj).cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn get_scale(api: &Api, req: &Request, name: &str) -> Reply {
    let info = req.res.info;
    let (obj, _) = api
        .read(info, req.namespace(), name)
        .await?
        .ok_or_else(|| ApiError::not_found(info, name))?;
    Ok(response::json(StatusCode::OK, &scale_of(&obj)))
}

async fn set_replicas(
    api: &Api,
    req: &Request,
    name: &str,
    scale: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Reply {
    let info = req.res.info;
    let mutate = |old: &Value| -> Result<Value, ApiError> {
        let new_scale = scale(&scale_of(old))?;
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::bad_request("scale has no spec.replicas"))?;
        if replicas < 0 {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                ),
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        Ok(new)
    };
    let pre = Precondition::Latest;
    let out = update_with(
        api,
        info,
        req.namespace(),
        name,
        None,
        req.dry_run(),
        mutate,
        pre,
    )
    .await?;
    Ok(response::json(StatusCode::OK, &scale_of(&out)))
}

pub async fn update_scale(api: &Api, req: &Request, name: &str) -> Reply {
    let body = decode_body(req)?;
    set_replicas(api, req, name, |_| Ok(body.clone())).await
}

pub async fn patch_scale(api: &Api, req: &Request, name: &str) -> Reply {
    let patch = patch_body(req)?;
    set_replicas(api, req, name, |cur| apply_patch(req, "Scale", cur, &patch)).await
}

/// A LabelSelector in the string form `kubectl` and the Scale subresource use.
fn selector_string(sel: &Value) -> String {
    serde_json::from_value(sel.clone())
        .ok()
        .and_then(|ls| skiff_api::labels::Selector::from_label_selector(&ls).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}
