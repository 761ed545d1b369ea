//! delete and deletecollection: graceful deletion, finalizers and propagation policy.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Api, Reply, Request, decode_stored, encode_for_store, object_reply};
use crate::apiserver::object;
use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::response;
use crate::apiserver::selectors::Selectors;
use crate::apiserver::status::ApiError;
use crate::store::Revision;

/// What a client asked for in DeleteOptions (body) and query parameters.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// The options a DeleteOptions object (as JSON) carries.
    pub fn from_json(b: &Value) -> DeleteOptions {
        let mut o = DeleteOptions {
            grace_period: b.get("gracePeriodSeconds").and_then(Value::as_i64),
            propagation: b
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_uid: b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            dry_run: b
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All")),
        };
        if b.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            o.propagation = Some("Orphan".into());
        }
        o
    }

    /// The options of a DELETE: its body (JSON, or protobuf as client-go sends it for
    /// built-in kinds) and then the query parameters, which win.
    pub fn from_request(req: &Request) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions::default();
        if !req.body.is_empty() {
            let b = if req
                .content_type()
                .starts_with("application/vnd.kubernetes.protobuf")
            {
                crate::apiserver::protobuf::decode(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            } else {
                serde_json::from_slice(&req.body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            o = DeleteOptions::from_json(&b);
        }
        if let Some(g) = req.query.get("gracePeriodSeconds") {
            o.grace_period =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        if let Some(p) = req.query.get("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if req.query.flag("orphanDependents") {
            o.propagation = Some("Orphan".into());
        }
        o.check()?;
        o.dry_run |= req.dry_run();
        Ok(o)
    }

    /// Refuses a propagation policy Kubernetes does not know.
    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(p) = &self.propagation
            && !matches!(p.as_str(), "Background" | "Foreground" | "Orphan")
        {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
        Ok(())
    }
}

pub async fn delete(api: &Api, req: &Request, name: &str) -> Reply {
    let opts = DeleteOptions::from_request(req)?;
    let (code, obj) = delete_object(api, req.res.info, req.namespace(), name, &opts).await?;
    match obj {
        Some(o) => object_reply(req, code, &o),
        None => Ok(response::json(
            code,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        )),
    }
}

/// Deletes (or starts deleting) one object. Returns the status code and the object as it
/// now is (with deletionTimestamp set) or as it was when it is gone.
pub async fn delete_object(
    api: &Api,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(StatusCode, Option<Value>), ApiError> {
    for _ in 0..16 {
        let Some((obj, kv)) = api.read(info, ns, name).await? else {
            return Err(ApiError::not_found(info, name));
        };
        if let Some(uid) = &opts.precondition_uid
            && uid != object::uid(&obj)
        {
            return Err(ApiError::conflict_msg(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(&obj)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != object::resource_version(&obj)
        {
            return Err(ApiError::conflict_msg(
                info,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    object::resource_version(&obj)
                ),
            ));
        }
        let mut finalizers = object::finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            _ => {}
        }
        let grace = pod_grace_period(info, &obj, opts.grace_period);
        let namespace_terminating = info.kind == "Namespace";
        let already = object::is_deleting(&obj);
        let needs_wait = grace > 0 || !finalizers.is_empty() || namespace_terminating;
        if !needs_wait {
            if opts.dry_run {
                return Ok((StatusCode::OK, Some(obj)));
            }
            match remove(api, info, ns, name, Some(kv.mod_revision)).await {
                Ok((_, gone)) => return Ok((StatusCode::OK, Some(gone))),
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
            }
        }
        let mut new = obj.clone();
        let m = object::meta_mut(&mut new);
        let now = jiff::Timestamp::now();
        let current_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
        // A second delete may only shorten a pod's grace period.
        if !already || current_grace.is_some_and(|g| grace < g) {
            let at = now
                .checked_add(jiff::SignedDuration::from_secs(grace))
                .unwrap_or(now);
            m.insert("deletionTimestamp".into(), json!(object::rfc3339(at)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if finalizers.is_empty() {
            m.remove("finalizers");
        } else {
            m.insert("finalizers".into(), json!(finalizers));
        }
        if namespace_terminating {
            new["status"]["phase"] = json!("Terminating");
        }
        if new == obj {
            return Ok((StatusCode::OK, Some(obj)));
        }
        if opts.dry_run {
            return Ok((StatusCode::OK, Some(new)));
        }
        let key = api.key(info, ns, name);
        let bytes = encode_for_store(&new)?;
        match api.store.update(&key, bytes, kv.mod_revision).await {
            Ok(rev) => {
                object::set_resource_version(&mut new, rev);
                let code = if opts.propagation.as_deref() == Some("Foreground") {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                };
                return Ok((code, Some(new)));
            }
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(info, name, e)),
        }
    }
    Err(ApiError::conflict(info, name))
}

/// Pods on a node get time to stop; everything else goes at once.
fn pod_grace_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if info.kind != "Pod" {
        return 0;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    let spec_grace = obj
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    requested.unwrap_or(spec_grace).max(0)
}

/// Removes the key, and gives back what a Service held.
pub async fn remove(
    api: &Api,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    expected: Option<Revision>,
) -> Result<(Revision, Value), ApiError> {
    let key = api.key(info, ns, name);
    let mut guard = if info.kind == "Service" {
        Some(api.services.lock().await)
    } else {
        None
    };
    let (rev, kv) = api
        .store
        .delete(&key, expected)
        .await
        .map_err(|e| ApiError::from_store(info, name, e))?;
    let mut gone = decode_stored(&kv)?;
    object::set_resource_version(&mut gone, rev);
    if let Some(alloc) = guard.as_mut() {
        alloc.release(&gone);
    }
    Ok((rev, gone))
}

pub async fn delete_collection(api: &Api, req: &Request) -> Reply {
    let info = req.res.info;
    let opts = DeleteOptions::from_request(req)?;
    let sel = Selectors::from_query(info, &req.query)?;
    let listed = super::read::list_items(api, req, &sel, 0).await?;
    let mut items = Vec::new();
    for kv in listed.items {
        let obj = decode_stored(&kv)?;
        let ns = object::namespace(&obj).to_string();
        let ns = info.namespaced.then_some(ns.as_str());
        match delete_object(api, info, ns, object::name(&obj), &opts).await {
            Ok((_, Some(o))) => items.push(crate::apiserver::conversion::from_storage(
                req.res.served,
                &o,
            )),
            Ok((_, None)) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": req.res.served.api_version(),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": items,
    });
    Ok(response::json(StatusCode::OK, &list))
}
