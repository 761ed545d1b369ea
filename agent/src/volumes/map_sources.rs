//! [`MapSources`]: API objects held in memory, for tests of the pod logic.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret};

use super::sources::{SourceError, VolumeSources};

type Key = (String, String);

/// ConfigMaps, Secrets, claims and volumes kept in maps; what is not there does not exist.
#[derive(Default)]
pub struct MapSources {
    config_maps: Mutex<BTreeMap<Key, ConfigMap>>,
    secrets: Mutex<BTreeMap<Key, Secret>>,
    claims: Mutex<BTreeMap<Key, PersistentVolumeClaim>>,
    volumes: Mutex<BTreeMap<String, PersistentVolume>>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MapSources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a ConfigMap (its metadata names it).
    pub fn put_config_map(&self, cm: ConfigMap) {
        let k = key(
            cm.metadata.namespace.as_deref().unwrap_or("default"),
            cm.metadata.name.as_deref().unwrap_or_default(),
        );
        lock(&self.config_maps).insert(k, cm);
    }

    pub fn put_secret(&self, secret: Secret) {
        let k = key(
            secret.metadata.namespace.as_deref().unwrap_or("default"),
            secret.metadata.name.as_deref().unwrap_or_default(),
        );
        lock(&self.secrets).insert(k, secret);
    }

    pub fn put_claim(&self, claim: PersistentVolumeClaim) {
        let k = key(
            claim.metadata.namespace.as_deref().unwrap_or("default"),
            claim.metadata.name.as_deref().unwrap_or_default(),
        );
        lock(&self.claims).insert(k, claim);
    }

    pub fn put_volume(&self, volume: PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        lock(&self.volumes).insert(name, volume);
    }
}

impl VolumeSources for MapSources {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        Ok(lock(&self.config_maps).get(&key(namespace, name)).cloned())
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Ok(lock(&self.secrets).get(&key(namespace, name)).cloned())
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, SourceError> {
        Ok(lock(&self.claims).get(&key(namespace, name)).cloned())
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, SourceError> {
        Ok(lock(&self.volumes).get(name).cloned())
    }
}
