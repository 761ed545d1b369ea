//! Expectations: the pods a ReplicaSet created or deleted that its cache may not show yet.
//! Until the cache has caught up, the controller does not create or delete again, so a
//! burst of watch events (or a slow cache) never doubles a create.
//!
//! Kubernetes counts expected creations because it cannot know a pod's uid before the
//! create returns; here a reconcile of one key never overlaps another, so the created pods'
//! names and uids are known before the next reconcile and are checked against the cache
//! directly. Like Kubernetes, an expectation older than five minutes is dropped, so a lost
//! watch event costs a delay, never a stuck ReplicaSet.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::controllers::runtime::{Informer, ObjectKey};

/// How long an unmet expectation holds back a controller.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// One pod the controller wrote: its name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> PodRef {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    creates: Vec<PodRef>,
    deletes: Vec<PodRef>,
    since: Instant,
}

/// Expectations of every ReplicaSet, by key.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records pods created and deleted by one reconcile of `key`.
    pub fn expect(&self, key: &ObjectKey, creates: Vec<PodRef>, deletes: Vec<PodRef>) {
        if creates.is_empty() && deletes.is_empty() {
            return;
        }
        let mut m = self.lock();
        let p = m.entry(key.clone()).or_insert_with(|| Pending {
            creates: Vec::new(),
            deletes: Vec::new(),
            since: Instant::now(),
        });
        p.creates.extend(creates);
        p.deletes.extend(deletes);
        p.since = Instant::now();
    }

    /// Whether the cache shows everything `key` expects (or the expectation timed out);
    /// met expectations are dropped.
    pub fn satisfied(&self, key: &ObjectKey, pods: &Informer<Pod>) -> bool {
        let mut m = self.lock();
        let Some(p) = m.get_mut(key) else {
            return true;
        };
        p.creates.retain(|r| {
            pods.get(Some(&r.namespace), &r.name)
                .is_none_or(|pod| pod.metadata.uid.as_deref() != Some(r.uid.as_str()))
        });
        p.deletes.retain(|r| {
            pods.get(Some(&r.namespace), &r.name).is_some_and(|pod| {
                pod.metadata.uid.as_deref() == Some(r.uid.as_str())
                    && pod.metadata.deletion_timestamp.is_none()
            })
        });
        let met = (p.creates.is_empty() && p.deletes.is_empty()) || p.since.elapsed() > TIMEOUT;
        if met {
            m.remove(key);
        }
        met
    }

    /// A pod was seen deleted: it is no longer awaited, whichever way it was expected.
    pub fn observe_deleted(&self, key: &ObjectKey, uid: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.creates.retain(|r| r.uid != uid);
            p.deletes.retain(|r| r.uid != uid);
        }
    }

    /// Drops `key`'s expectations (its ReplicaSet is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pod(name: &str, uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn creations_and_deletions_are_awaited_in_the_cache() {
        let (pods, feed) = Informer::<Pod>::manual();
        let e = Expectations::default();
        let key = ObjectKey::new(Some("ns"), "rs");
        let a = pod("a", "ua");
        let b = pod("b", "ub");
        feed.apply(b.clone());
        e.expect(&key, vec![PodRef::of(&a)], vec![PodRef::of(&b)]);
        assert!(!e.satisfied(&key, &pods));
        feed.apply(a.clone());
        assert!(!e.satisfied(&key, &pods), "b is still there");
        feed.delete(b);
        assert!(e.satisfied(&key, &pods));
        // Met expectations are gone; nothing is awaited any more.
        assert!(e.satisfied(&key, &pods));

        // A pod created and deleted before the cache saw it is not awaited forever.
        let c = pod("c", "uc");
        e.expect(&key, vec![PodRef::of(&c)], vec![]);
        assert!(!e.satisfied(&key, &pods));
        e.observe_deleted(&key, "uc");
        assert!(e.satisfied(&key, &pods));
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_time_out() {
        let (pods, _feed) = Informer::<Pod>::manual();
        let e = Expectations::default();
        let key = ObjectKey::new(Some("ns"), "rs");
        e.expect(&key, vec![PodRef::of(&pod("a", "ua"))], vec![]);
        assert!(!e.satisfied(&key, &pods));
        tokio::time::advance(TIMEOUT + Duration::from_secs(1)).await;
        assert!(e.satisfied(&key, &pods));
    }
}
