//! Conversion between the versions of a resource served in more than one.
//!
//! Each resource is stored in one version (`ResourceInfo::storage_version`). A request in
//! another version is converted at the boundary: bodies on the way in (after decoding
//! through the served version's type), objects on the way out. Everything between —
//! defaulting, validation, strategies, storage, watches — sees the stored version only.

use serde_json::Value;

use super::kinds::hpa_v1;
use super::registry::ResourceInfo;

/// A stored object as the `served` version shows it.
pub fn from_storage(served: &ResourceInfo, obj: &Value) -> Value {
    match (served.group, served.kind, served.version) {
        ("autoscaling", "HorizontalPodAutoscaler", "v1") => hpa_v1::to_v1(obj),
        _ => obj.clone(),
    }
}

/// An object of the `served` version in the stored version; the error says why the
/// object cannot be converted.
pub fn to_storage(served: &ResourceInfo, obj: Value) -> Result<Value, String> {
    match (served.group, served.kind, served.version) {
        ("autoscaling", "HorizontalPodAutoscaler", "v1") => hpa_v1::from_v1(&obj),
        _ => Ok(obj),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry;

    #[test]
    fn every_served_version_converts() {
        for r in registry::RESOURCES.iter().filter(|r| !r.is_storage()) {
            let obj = serde_json::json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
            let stored = to_storage(r, obj).expect("converts");
            assert_eq!(
                stored["apiVersion"],
                r.storage().api_version(),
                "{}",
                r.kind
            );
            assert_eq!(from_storage(r, &stored)["apiVersion"], r.api_version());
        }
    }
}
