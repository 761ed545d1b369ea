//! The garbage collector: follows ownerReferences when owners go away, and carries out the
//! `orphan` and `foregroundDeletion` finalizers that delete propagation policies leave.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::apiserver::handlers::{
    Api, DeleteOptions, decode_stored, delete_object, encode_for_store,
};
use crate::apiserver::object;
use crate::apiserver::registry::{self, ResourceInfo};
use crate::apiserver::status::ApiError;
use crate::store::{EventType, KeyValue};

/// The in-memory graph of who owns whom, kept current from the store's watch.
#[derive(Default)]
struct Graph {
    /// uid → storage key of every live object.
    keys: HashMap<String, String>,
    /// owner uid → storage keys of objects naming it in ownerReferences.
    dependents: HashMap<String, HashSet<String>>,
    /// storage key → owner uids it names (to undo the index on change).
    owners_of: HashMap<String, Vec<String>>,
}

impl Graph {
    fn upsert(&mut self, key: &str, obj: &Value) {
        self.remove(key, None);
        let uid = object::uid(obj).to_string();
        if !uid.is_empty() {
            self.keys.insert(uid, key.to_string());
        }
        let owners = owner_uids(obj);
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.to_string());
        }
        self.owners_of.insert(key.to_string(), owners);
    }

    fn remove(&mut self, key: &str, uid: Option<&str>) {
        if let Some(uid) = uid {
            self.keys.remove(uid);
        }
        if let Some(owners) = self.owners_of.remove(key) {
            for o in owners {
                if let Some(set) = self.dependents.get_mut(&o) {
                    set.remove(key);
                    if set.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// `/registry/<group>/<plural>/[<ns>/]<name>` → (resource, namespace, name).
fn parse_key(key: &str) -> Option<(&'static ResourceInfo, Option<String>, String)> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.splitn(4, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    let group = if group == "core" { "" } else { group };
    let info = registry::stored().find(|r| r.group == group && r.plural == plural)?;
    let a = parts.next()?.to_string();
    if info.namespaced {
        Some((info, Some(a), parts.next()?.to_string()))
    } else {
        Some((info, None, a))
    }
}

pub async fn run(api: Arc<Api>) {
    loop {
        if let Err(e) = follow(&api).await {
            tracing::warn!(error = %e, "garbage collector restarting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(api: &Api) -> Result<(), ApiError> {
    let mut graph = Graph::default();
    let listed = api
        .store
        .list("/registry/", None, 0, None)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut deleting = Vec::new();
    for kv in &listed.kvs {
        let obj = decode_stored(kv)?;
        graph.upsert(&kv.key, &obj);
        if object::is_deleting(&obj) {
            deleting.push(kv.key.clone());
        }
    }
    // Dependents whose owners vanished while the server was down.
    let orphans: Vec<String> = graph
        .dependents
        .iter()
        .filter(|(owner, _)| !graph.keys.contains_key(*owner))
        .flat_map(|(_, deps)| deps.iter().cloned())
        .collect();
    for key in orphans {
        collect_if_ownerless(api, &graph, &key).await?;
    }
    for key in deleting {
        process_finalizers(api, &graph, &key).await?;
    }
    let mut stream = api
        .store
        .watch("/registry/", listed.revision)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(|e| ApiError::internal(e.to_string()))?;
        let obj = metadata_only(&ev.kv)?;
        match ev.kind {
            EventType::Delete => {
                let uid = object::uid(&obj).to_string();
                let owners = graph.owners_of.get(&ev.kv.key).cloned().unwrap_or_default();
                graph.remove(&ev.kv.key, Some(&uid));
                let deps: Vec<String> = graph
                    .dependents
                    .get(&uid)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default();
                for d in deps {
                    collect_if_ownerless(api, &graph, &d).await?;
                }
                // An owner in foreground deletion waits for this dependent to go.
                for o in owners {
                    if let Some(k) = graph.keys.get(&o).cloned() {
                        process_finalizers(api, &graph, &k).await?;
                    }
                }
            }
            _ => {
                graph.upsert(&ev.kv.key, &obj);
                if object::is_deleting(&obj) {
                    process_finalizers(api, &graph, &ev.kv.key).await?;
                }
            }
        }
    }
    Ok(())
}

/// Just the metadata of a stored object: the collector never needs more, and skipping the
/// rest keeps it cheap on every write.
fn metadata_only(kv: &KeyValue) -> Result<Value, ApiError> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(default)]
        metadata: Value,
    }
    let top: Top = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    Ok(json!({"metadata": top.metadata}))
}

async fn read_key(api: &Api, key: &str) -> Result<Option<(Value, KeyValue)>, ApiError> {
    let (kv, _) = api
        .store
        .get(key)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match kv {
        Some(kv) => Ok(Some((decode_stored(&kv)?, kv))),
        None => Ok(None),
    }
}

/// Deletes `key` when none of the owners it names exist any more.
async fn collect_if_ownerless(api: &Api, graph: &Graph, key: &str) -> Result<(), ApiError> {
    let Some((obj, _)) = read_key(api, key).await? else {
        return Ok(());
    };
    let owners = owner_uids(&obj);
    if owners.is_empty() || owners.iter().any(|o| graph.keys.contains_key(o)) {
        return Ok(());
    }
    let Some((info, ns, name)) = parse_key(key) else {
        return Ok(());
    };
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        ..DeleteOptions::default()
    };
    tracing::info!(key, "collecting dependent whose owners are gone");
    match delete_object(api, info, ns.as_deref(), &name, &opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Carries out `orphan` and `foregroundDeletion` on an object being deleted.
async fn process_finalizers(api: &Api, graph: &Graph, key: &str) -> Result<(), ApiError> {
    let Some((obj, kv)) = read_key(api, key).await? else {
        return Ok(());
    };
    let fins = object::finalizers(&obj);
    let uid = object::uid(&obj).to_string();
    let deps: Vec<String> = graph
        .dependents
        .get(&uid)
        .map(|d| d.iter().cloned().collect())
        .unwrap_or_default();
    let mut drop_fin = None;
    if fins.iter().any(|f| f == "orphan") {
        for d in &deps {
            strip_owner(api, d, &uid).await?;
        }
        drop_fin = Some("orphan");
    } else if fins.iter().any(|f| f == "foregroundDeletion") {
        if deps.is_empty() {
            drop_fin = Some("foregroundDeletion");
        } else {
            let opts = DeleteOptions {
                propagation: Some("Foreground".into()),
                ..DeleteOptions::default()
            };
            for d in &deps {
                if let Some((info, ns, name)) = parse_key(d) {
                    match delete_object(api, info, ns.as_deref(), &name, &opts).await {
                        Ok(_) => {}
                        Err(e) if e.code == 404 || e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    let Some(fin) = drop_fin else {
        return Ok(());
    };
    let mut new = obj.clone();
    let rest: Vec<String> = fins.into_iter().filter(|f| f != fin).collect();
    let m = object::meta_mut(&mut new);
    if rest.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(rest));
    }
    let Some((info, ns, name)) = parse_key(key) else {
        return Ok(());
    };
    if rest.is_empty() && object::is_deleting(&new) && info.kind != "Namespace" {
        match crate::apiserver::handlers::delete::remove(
            api,
            info,
            ns.as_deref(),
            &name,
            Some(kv.mod_revision),
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
        return Ok(());
    }
    let bytes = encode_for_store(&new)?;
    match api.store.update(key, bytes, kv.mod_revision).await {
        Ok(_) | Err(crate::store::StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Removes the reference to `owner_uid` from the object at `key`.
async fn strip_owner(api: &Api, key: &str, owner_uid: &str) -> Result<(), ApiError> {
    for _ in 0..8 {
        let Some((obj, kv)) = read_key(api, key).await? else {
            return Ok(());
        };
        let mut new = obj.clone();
        if let Some(refs) = new
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            if refs.is_empty() {
                object::meta_mut(&mut new).remove("ownerReferences");
            }
        }
        if new == obj {
            return Ok(());
        }
        let bytes = encode_for_store(&new)?;
        match api.store.update(key, bytes, kv.mod_revision).await {
            Ok(_) => return Ok(()),
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse() {
        let (info, ns, name) =
            parse_key("/registry/apps/replicasets/default/web-1").expect("parse");
        assert_eq!(info.kind, "ReplicaSet");
        assert_eq!(ns.as_deref(), Some("default"));
        assert_eq!(name, "web-1");
        let (info, ns, name) = parse_key("/registry/core/nodes/n1").expect("parse");
        assert_eq!((info.kind, ns, name.as_str()), ("Node", None, "n1"));
    }

    #[test]
    fn graph_indexes_owners() {
        let mut g = Graph::default();
        let dep = json!({"metadata": {"uid": "d", "ownerReferences": [{"uid": "o"}]}});
        g.upsert("/k/d", &dep);
        assert!(g.dependents["o"].contains("/k/d"));
        g.remove("/k/d", Some("d"));
        assert!(g.dependents.is_empty());
    }
}
