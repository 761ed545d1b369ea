//! The labels the agent puts on its containers, so that after a restart it can tell which pod
//! and container each one is without any state of its own.

use std::collections::BTreeMap;

pub const POD_UID: &str = "io.skiff.pod-uid";
pub const POD_NAMESPACE: &str = "io.skiff.pod-namespace";
pub const POD_NAME: &str = "io.skiff.pod-name";
pub const CONTAINER_NAME: &str = "io.skiff.container-name";
pub const ATTEMPT: &str = "io.skiff.attempt";

/// Which pod container a runtime container is, and which attempt (restart count) of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContainerMeta {
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub container_name: String,
    pub attempt: u32,
}

impl ContainerMeta {
    pub fn to_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (POD_UID.to_string(), self.pod_uid.clone()),
            (POD_NAMESPACE.to_string(), self.pod_namespace.clone()),
            (POD_NAME.to_string(), self.pod_name.clone()),
            (CONTAINER_NAME.to_string(), self.container_name.clone()),
            (ATTEMPT.to_string(), self.attempt.to_string()),
        ])
    }

    /// None unless the labels carry at least the pod uid and the container name.
    pub fn from_labels<'a>(
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Option<Self> {
        let mut meta = ContainerMeta::default();
        let (mut uid, mut name) = (false, false);
        for (k, v) in labels {
            match k.as_str() {
                POD_UID => {
                    meta.pod_uid = v.clone();
                    uid = true;
                }
                POD_NAMESPACE => meta.pod_namespace = v.clone(),
                POD_NAME => meta.pod_name = v.clone(),
                CONTAINER_NAME => {
                    meta.container_name = v.clone();
                    name = true;
                }
                ATTEMPT => meta.attempt = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        (uid && name).then_some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = ContainerMeta {
            pod_uid: "u1".into(),
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            container_name: "nginx".into(),
            attempt: 3,
        };
        assert_eq!(ContainerMeta::from_labels(&m.to_labels()), Some(m));
        assert_eq!(ContainerMeta::from_labels(&BTreeMap::new()), None);
    }
}
