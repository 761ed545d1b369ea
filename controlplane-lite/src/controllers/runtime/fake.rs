//! [`FakeCluster`]: the API server's bookkeeping in memory — uids, resourceVersions,
//! generations, conflicts, finalizers, bindings — with informers fed by every write, so a
//! controller's whole loop runs in a unit test and sees its own writes as it would live.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::cluster::{Cluster, ClusterError, Delete};
use super::events::ObjectEvent;
use super::informer::{Feed, Informer, Kind};

type Key = (String, Option<String>, String);
type Notify = Box<dyn Fn(&Value, bool) + Send + Sync>;

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    feeds: HashMap<String, Vec<Notify>>,
    events: Vec<ObjectEvent>,
    /// Writes seen, as `verb kind name`, for tests that check what a controller did.
    writes: Vec<String>,
}

/// An in-memory cluster.
#[derive(Default)]
pub struct FakeCluster {
    state: Mutex<State>,
}

fn err(
    verb: &'static str,
    kind: &str,
    name: &str,
    code: u16,
    reason: &str,
    message: String,
) -> ClusterError {
    ClusterError {
        verb,
        kind: kind.to_string(),
        name: name.to_string(),
        code,
        reason: reason.to_string(),
        message,
    }
}

fn key_of<K: Kind>(namespace: Option<&str>, name: &str) -> Key {
    (
        K::kind(&()).to_string(),
        namespace.map(str::to_string),
        name.to_string(),
    )
}

fn to_value<K: Kind>(obj: &K) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    v["apiVersion"] = json!(K::api_version(&()));
    v["kind"] = json!(K::kind(&()));
    v
}

fn from_value<K: Kind>(v: &Value, verb: &'static str, name: &str) -> Result<K, ClusterError> {
    serde_json::from_value(v.clone())
        .map_err(|e| err(verb, &K::kind(&()), name, 422, "Invalid", e.to_string()))
}

fn rand_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl State {
    fn next_rv(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn notify(&self, kind: &str, v: &Value, deleted: bool) {
        for f in self.feeds.get(kind).into_iter().flatten() {
            f(v, deleted);
        }
    }
}

impl FakeCluster {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An informer of `K` that sees every object of the kind, now and later.
    pub fn informer<K: Kind>(&self) -> Informer<K> {
        let (informer, feed) = Informer::<K>::manual();
        let mut s = self.lock();
        let kind = K::kind(&()).to_string();
        for ((k, _, _), v) in s.objects.iter() {
            if *k == kind
                && let Ok(obj) = serde_json::from_value::<K>(v.clone())
            {
                feed.apply(obj);
            }
        }
        let feed: Feed<K> = feed;
        s.feeds
            .entry(kind)
            .or_default()
            .push(Box::new(move |v, deleted| {
                if let Ok(obj) = serde_json::from_value::<K>(v.clone()) {
                    if deleted {
                        feed.delete(obj);
                    } else {
                        feed.apply(obj);
                    }
                }
            }));
        informer
    }

    /// The object as stored now.
    pub fn get<K: Kind>(&self, namespace: Option<&str>, name: &str) -> Option<K> {
        let s = self.lock();
        s.objects
            .get(&key_of::<K>(namespace, name))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Every stored object of the kind.
    pub fn list<K: Kind>(&self) -> Vec<K> {
        let kind = K::kind(&()).to_string();
        self.lock()
            .objects
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// Events recorded so far.
    pub fn events(&self) -> Vec<ObjectEvent> {
        self.lock().events.clone()
    }

    /// Writes so far, as `verb Kind namespace/name`.
    pub fn writes(&self) -> Vec<String> {
        self.lock().writes.clone()
    }

    /// Stores an object as a test's setup would create it (with its status).
    pub fn put<K: Kind>(&self, obj: &K) -> K {
        let mut v = to_value(obj);
        let (ns, name) = (
            obj.meta().namespace.clone(),
            obj.meta().name.clone().unwrap_or_default(),
        );
        let mut s = self.lock();
        let rv = s.next_rv();
        let meta = &mut v["metadata"];
        if meta.get("uid").is_none_or(Value::is_null) {
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        if meta.get("creationTimestamp").is_none_or(Value::is_null) {
            meta["creationTimestamp"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
        }
        if meta.get("generation").is_none_or(Value::is_null) {
            meta["generation"] = json!(1);
        }
        meta["resourceVersion"] = json!(rv);
        s.objects
            .insert(key_of::<K>(ns.as_deref(), &name), v.clone());
        s.notify(&K::kind(&()), &v, false);
        serde_json::from_value(v).unwrap_or_else(|_| obj.clone())
    }

    /// Removes an object outright (as if its deletion completed).
    pub fn remove<K: Kind>(&self, namespace: Option<&str>, name: &str) {
        let mut s = self.lock();
        if let Some(v) = s.objects.remove(&key_of::<K>(namespace, name)) {
            s.notify(&K::kind(&()), &v, true);
        }
    }

    fn write<K: Kind>(
        &self,
        verb: &'static str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(Option<&Value>) -> Result<Option<Value>, ClusterError>,
    ) -> Result<K, ClusterError> {
        let kind = K::kind(&()).to_string();
        let mut s = self.lock();
        let key = key_of::<K>(namespace, name);
        let old = s.objects.get(&key).cloned();
        let Some(mut new) = change(old.as_ref())? else {
            return Err(err(
                verb,
                &kind,
                name,
                404,
                "NotFound",
                format!("{kind} {name:?} not found"),
            ));
        };
        let rv = s.next_rv();
        new["metadata"]["resourceVersion"] = json!(rv);
        if let Some(old) = &old
            && old.get("spec") != new.get("spec")
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        s.writes.push(format!(
            "{verb} {kind} {}{name}",
            namespace.map(|n| format!("{n}/")).unwrap_or_default()
        ));
        // As on the API server: removing the last finalizer of an object being deleted
        // completes the deletion.
        let deleting = !new["metadata"]["deletionTimestamp"].is_null();
        let finalized = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if deleting && finalized {
            s.objects.remove(&key);
            s.notify(&kind, &new, true);
            drop(s);
            return from_value(&new, verb, name);
        }
        s.objects.insert(key, new.clone());
        s.notify(&kind, &new, false);
        drop(s);
        from_value(&new, verb, name)
    }
}

fn check_rv(
    verb: &'static str,
    kind: &str,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ClusterError> {
    let want = new["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !want.is_empty() && want != old["metadata"]["resourceVersion"].as_str().unwrap_or("") {
        return Err(err(
            verb,
            kind,
            name,
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        ));
    }
    Ok(())
}

impl Cluster for FakeCluster {
    async fn create<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let kind = K::kind(&()).to_string();
        let mut v = to_value(obj);
        let ns = obj.meta().namespace.clone();
        let mut name = obj.meta().name.clone().unwrap_or_default();
        if name.is_empty() {
            let prefix = obj.meta().generate_name.clone().unwrap_or_default();
            if prefix.is_empty() {
                return Err(err(
                    "create",
                    &kind,
                    "",
                    422,
                    "Invalid",
                    "name or generateName is required".into(),
                ));
            }
            name = format!("{prefix}{}", rand_suffix());
            v["metadata"]["name"] = json!(name);
        }
        let exists = self
            .lock()
            .objects
            .contains_key(&key_of::<K>(ns.as_deref(), &name));
        if exists {
            return Err(err(
                "create",
                &kind,
                &name,
                409,
                "AlreadyExists",
                format!("{kind} \"{name}\" already exists"),
            ));
        }
        v["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        v["metadata"]["creationTimestamp"] = json!(k8s_openapi::jiff::Timestamp::now().to_string());
        v["metadata"]["generation"] = json!(1);
        self.write::<K>("create", ns.as_deref(), &name, |_| Ok(Some(v)))
    }

    async fn replace<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let kind = K::kind(&()).to_string();
        let ns = obj.meta().namespace.clone();
        let name = obj.meta().name.clone().unwrap_or_default();
        let new = to_value(obj);
        self.write::<K>("update", ns.as_deref(), &name, |old| {
            let Some(old) = old else { return Ok(None) };
            check_rv("update", &kind, &name, old, &new)?;
            let mut merged = new.clone();
            // The main resource does not change the status, nor identity.
            if let Some(st) = old.get("status") {
                merged["status"] = st.clone();
            }
            for f in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ] {
                if let Some(x) = old["metadata"].get(f) {
                    merged["metadata"][f] = x.clone();
                }
            }
            Ok(Some(merged))
        })
    }

    async fn replace_status<K: Kind>(&self, obj: &K) -> Result<K, ClusterError> {
        let kind = K::kind(&()).to_string();
        let ns = obj.meta().namespace.clone();
        let name = obj.meta().name.clone().unwrap_or_default();
        let new = to_value(obj);
        self.write::<K>("update status of", ns.as_deref(), &name, |old| {
            let Some(old) = old else { return Ok(None) };
            check_rv("update status of", &kind, &name, old, &new)?;
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            Ok(Some(merged))
        })
    }

    async fn patch<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K, ClusterError> {
        self.write::<K>("patch", namespace, name, |old| {
            let Some(old) = old else { return Ok(None) };
            let mut merged = old.clone();
            let mut p = patch.clone();
            if let Some(o) = p.as_object_mut() {
                o.remove("status");
            }
            json_patch::merge(&mut merged, &p);
            Ok(Some(merged))
        })
    }

    async fn patch_status<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<K, ClusterError> {
        self.write::<K>("patch status of", namespace, name, |old| {
            let Some(old) = old else { return Ok(None) };
            let mut merged = old.clone();
            if let Some(st) = patch.get("status") {
                let mut status = merged.get("status").cloned().unwrap_or(json!({}));
                json_patch::merge(&mut status, st);
                merged["status"] = status;
            }
            Ok(Some(merged))
        })
    }

    async fn delete<K: Kind>(
        &self,
        namespace: Option<&str>,
        name: &str,
        how: &Delete,
    ) -> Result<(), ClusterError> {
        let kind = K::kind(&()).to_string();
        let mut s = self.lock();
        let key = key_of::<K>(namespace, name);
        let Some(old) = s.objects.get(&key).cloned() else {
            return Err(err(
                "delete",
                &kind,
                name,
                404,
                "NotFound",
                format!("{kind} {name:?} not found"),
            ));
        };
        if let Some(uid) = &how.uid
            && old["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(err(
                "delete",
                &kind,
                name,
                409,
                "Conflict",
                "Precondition failed: UID".into(),
            ));
        }
        s.writes.push(format!(
            "delete {kind} {}{name}",
            namespace.map(|n| format!("{n}/")).unwrap_or_default()
        ));
        let finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] =
                json!(k8s_openapi::jiff::Timestamp::now().to_string());
            let rv = s.next_rv();
            new["metadata"]["resourceVersion"] = json!(rv);
            s.objects.insert(key, new.clone());
            s.notify(&kind, &new, false);
        } else {
            s.objects.remove(&key);
            s.notify(&kind, &old, true);
        }
        Ok(())
    }

    async fn bind(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ClusterError> {
        use k8s_openapi::api::core::v1::Pod;
        self.write::<Pod>("bind", Some(namespace), name, |old| {
            let Some(old) = old else { return Ok(None) };
            if old["metadata"]["uid"].as_str() != Some(uid) {
                return Err(err(
                    "bind",
                    "Pod",
                    name,
                    409,
                    "Conflict",
                    "Precondition failed: UID".into(),
                ));
            }
            if old["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                return Err(err(
                    "bind",
                    "Pod",
                    name,
                    409,
                    "Conflict",
                    format!(
                        "pod {name} is already assigned to node {:?}",
                        old["spec"]["nodeName"]
                    ),
                ));
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(node);
            // As the API server does: binding marks the pod scheduled.
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()});
            let mut conds: Vec<Value> = new["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conds.retain(|c| c["type"] != "PodScheduled");
            conds.push(cond);
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["conditions"] = json!(conds);
            Ok(Some(new))
        })
        .map(|_| ())
    }

    fn record(&self, event: ObjectEvent) {
        self.lock().events.push(event);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::{ConfigMap, Pod};

    use super::*;

    #[tokio::test]
    async fn writes_show_in_informers_with_the_servers_bookkeeping() {
        let c = FakeCluster::new();
        let cms = c.informer::<ConfigMap>();
        let mut changes = cms.subscribe();
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.generate_name = Some("cfg-".into());
        let made = c.create(&cm).await.unwrap();
        let name = made.metadata.name.clone().unwrap();
        assert!(name.starts_with("cfg-") && name.len() == 9);
        assert!(made.metadata.uid.is_some());
        assert_eq!(cms.list().len(), 1);
        assert!(!changes.recv().await.unwrap().deleted);

        let mut stale = made.clone();
        let patched: ConfigMap = c
            .patch(Some("ns"), &name, &json!({"data": {"a": "1"}}))
            .await
            .unwrap();
        assert_eq!(patched.data.unwrap()["a"], "1");
        stale.data = Some([("b".to_string(), "2".to_string())].into());
        let e = c.replace(&stale).await.unwrap_err();
        assert!(e.is_conflict(), "{e}");
        let e = c.create(&made).await.unwrap_err();
        assert!(e.is_already_exists());

        c.delete::<ConfigMap>(Some("ns"), &name, &Delete::default())
            .await
            .unwrap();
        assert!(cms.list().is_empty());
        assert!(changes.recv().await.unwrap().deleted || changes.recv().await.unwrap().deleted);
        assert!(
            c.delete::<ConfigMap>(Some("ns"), &name, &Delete::default())
                .await
                .unwrap_err()
                .is_not_found()
        );

        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        let pod = c.put(&pod);
        let uid = pod.metadata.uid.clone().unwrap();
        c.bind("ns", "p", &uid, "n1").await.unwrap();
        assert_eq!(
            c.get::<Pod>(Some("ns"), "p")
                .unwrap()
                .spec
                .unwrap()
                .node_name
                .as_deref(),
            Some("n1")
        );
        assert!(
            c.bind("ns", "p", &uid, "n2")
                .await
                .unwrap_err()
                .is_conflict()
        );
    }
}
