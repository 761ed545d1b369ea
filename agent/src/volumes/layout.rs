//! Where a pod's volumes live on the host, in kubelet's layout:
//! `<root>/pods/<uid>/volumes/<plugin>/<volume>` and, for subPath bind mounts,
//! `<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<mount index>`.

use std::path::{Path, PathBuf};

use super::error::VolumeError;

/// The volume plugins whose data lives in the pod directory (hostPath and
/// PersistentVolumes are used where they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plugin {
    EmptyDir,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl Plugin {
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Plugin::EmptyDir => "kubernetes.io~empty-dir",
            Plugin::ConfigMap => "kubernetes.io~configmap",
            Plugin::Secret => "kubernetes.io~secret",
            Plugin::DownwardApi => "kubernetes.io~downward-api",
            Plugin::Projected => "kubernetes.io~projected",
        }
    }

    /// Secrets and projected volumes (which may hold tokens) stay in memory,
    /// as kubelet keeps them, so that they never reach the node's disk.
    pub(crate) fn in_memory(self) -> bool {
        matches!(self, Plugin::Secret | Plugin::Projected)
    }
}

/// One pod's directory.
#[derive(Clone, Debug)]
pub(crate) struct PodDirs {
    pod: PathBuf,
}

impl PodDirs {
    pub(crate) fn new(root: &Path, uid: &str) -> Result<Self, VolumeError> {
        check_component("pod uid", uid)?;
        Ok(PodDirs {
            pod: root.join("pods").join(uid),
        })
    }

    /// The same directories under the pod directory's canonical path (created
    /// if missing), so that paths compare equal to the kernel's mount table.
    pub(crate) fn canonical(&self) -> Result<Self, VolumeError> {
        std::fs::create_dir_all(&self.pod)
            .map_err(|e| VolumeError::io("create directory", &self.pod, e))?;
        let pod = std::fs::canonicalize(&self.pod)
            .map_err(|e| VolumeError::io("resolve", &self.pod, e))?;
        Ok(PodDirs { pod })
    }

    pub(crate) fn pod(&self) -> &Path {
        &self.pod
    }

    pub(crate) fn volumes(&self) -> PathBuf {
        self.pod.join("volumes")
    }

    pub(crate) fn volume(&self, plugin: Plugin, name: &str) -> PathBuf {
        self.volumes().join(plugin.dir_name()).join(name)
    }

    pub(crate) fn subpaths(&self) -> PathBuf {
        self.pod.join("volume-subpaths")
    }

    pub(crate) fn subpath_target(&self, volume: &str, container: &str, index: usize) -> PathBuf {
        self.subpaths()
            .join(volume)
            .join(container)
            .join(index.to_string())
    }
}

/// Names that become one path component must not be able to leave it.
pub(crate) fn check_component(what: &'static str, value: &str) -> Result<(), VolumeError> {
    if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
        return Err(VolumeError::InvalidName {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_layout() {
        let dirs = PodDirs::new(Path::new("/var/lib/skiff"), "u1").unwrap();
        assert_eq!(
            dirs.volume(Plugin::ConfigMap, "cfg"),
            Path::new("/var/lib/skiff/pods/u1/volumes/kubernetes.io~configmap/cfg")
        );
        assert_eq!(
            dirs.subpath_target("data", "app", 2),
            Path::new("/var/lib/skiff/pods/u1/volume-subpaths/data/app/2")
        );
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(check_component("volume name", bad).is_err(), "{bad:?}");
        }
        assert!(check_component("volume name", "..ok").is_ok());
    }
}
