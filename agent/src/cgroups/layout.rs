//! Where pod cgroups live, as kubelet's cgroupfs driver lays them out:
//! Guaranteed pods directly under the pod tree root, the other classes under
//! `burstable/` and `besteffort/`, each pod in `pod<uid>` and each container in
//! `<pod cgroup>/<container id>`. Paths are cgroup paths (absolute within every
//! hierarchy, as in an OCI spec's `cgroupsPath`), never filesystem paths.

use super::error::CgroupError;
use super::qos::QosClass;

const BURSTABLE: &str = "burstable";
const BESTEFFORT: &str = "besteffort";
const POD_PREFIX: &str = "pod";

/// The pod tree: its root cgroup path (kubelet's default is `/kubepods`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

/// A pod's cgroup, as created by [`super::CgroupManager::create_pod`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's uid.
    pub uid: String,
    /// The QoS class that placed it.
    pub qos: QosClass,
    /// Its cgroup path, e.g. `/kubepods/burstable/pod<uid>`.
    pub path: String,
}

impl Layout {
    /// A pod tree rooted at the cgroup path `root` (e.g. `/kubepods`).
    pub fn new(root: &str) -> Result<Layout, CgroupError> {
        let root = normalize(root)?;
        if root == "/" {
            return Err(CgroupError::InvalidPath {
                path: root,
                reason: "the pod tree needs its own cgroup, not a hierarchy root",
            });
        }
        Ok(Layout { root })
    }

    /// The root cgroup path.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The cgroup holding the pods of a QoS class.
    pub fn qos_path(&self, qos: QosClass) -> String {
        match qos {
            QosClass::Guaranteed => self.root.clone(),
            QosClass::Burstable => format!("{}/{BURSTABLE}", self.root),
            QosClass::BestEffort => format!("{}/{BESTEFFORT}", self.root),
        }
    }

    /// The cgroup of pod `uid` in class `qos`.
    pub fn pod_path(&self, uid: &str, qos: QosClass) -> Result<String, CgroupError> {
        check_name("pod uid", uid)?;
        Ok(format!("{}/{POD_PREFIX}{uid}", self.qos_path(qos)))
    }

    /// The pod's cgroup description.
    pub fn pod_cgroup(&self, uid: &str, qos: QosClass) -> Result<PodCgroup, CgroupError> {
        Ok(PodCgroup {
            uid: uid.to_string(),
            qos,
            path: self.pod_path(uid, qos)?,
        })
    }

    /// The pod uid a directory name under a QoS cgroup stands for, if it is a pod's.
    pub(crate) fn uid_of(dir_name: &str) -> Option<&str> {
        let uid = dir_name.strip_prefix(POD_PREFIX)?;
        check_name("pod uid", uid).ok()?;
        Some(uid)
    }
}

impl PodCgroup {
    /// The cgroup path of one of the pod's containers, for the OCI spec's
    /// `linux.cgroupsPath`; runc creates it.
    pub fn container_path(&self, container_id: &str) -> Result<String, CgroupError> {
        check_name("container id", container_id)?;
        Ok(format!("{}/{container_id}", self.path))
    }
}

/// A uid or id becomes one directory name: no separators, nothing the kernel or a
/// reader would take for something else.
fn check_name(what: &'static str, name: &str) -> Result<(), CgroupError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidName {
            what,
            name: name.to_string(),
        })
    }
}

/// A cgroup path in its one spelling: leading `/`, no empty, `.` or `..`
/// components, no trailing `/`. Refusing `..` keeps every path inside its hierarchy.
pub(crate) fn normalize(path: &str) -> Result<String, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(invalid("contains . or .. components"));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_go_under_their_qos_class() {
        let l = Layout::new("/kubepods").unwrap();
        assert_eq!(
            l.pod_path("abc-1", QosClass::Guaranteed).unwrap(),
            "/kubepods/podabc-1"
        );
        assert_eq!(
            l.pod_path("abc-1", QosClass::Burstable).unwrap(),
            "/kubepods/burstable/podabc-1"
        );
        assert_eq!(
            l.pod_path("abc-1", QosClass::BestEffort).unwrap(),
            "/kubepods/besteffort/podabc-1"
        );
        let pod = l.pod_cgroup("abc-1", QosClass::Burstable).unwrap();
        assert_eq!(
            pod.container_path("0123abcd").unwrap(),
            "/kubepods/burstable/podabc-1/0123abcd"
        );
    }

    #[test]
    fn roots_are_normalised() {
        assert_eq!(Layout::new("kubepods/").unwrap().root(), "/kubepods");
        assert_eq!(Layout::new("//a//b").unwrap().root(), "/a/b");
        assert!(Layout::new("/").is_err());
        assert!(Layout::new("").is_err());
        assert!(Layout::new("/a/../b").is_err());
        assert!(Layout::new("/a/./b").is_err());
    }

    #[test]
    fn names_cannot_escape() {
        let l = Layout::new("/kubepods").unwrap();
        for bad in ["", "a/b", "..", ".", "a b", "x\0"] {
            assert!(l.pod_path(bad, QosClass::Burstable).is_err(), "{bad:?}");
        }
        let pod = l.pod_cgroup("u", QosClass::Guaranteed).unwrap();
        assert!(pod.container_path("../x").is_err());
    }

    #[test]
    fn recognises_pod_directories() {
        assert_eq!(Layout::uid_of("pod1234-ab"), Some("1234-ab"));
        assert_eq!(Layout::uid_of("burstable"), None);
        assert_eq!(Layout::uid_of("pod"), None);
        assert_eq!(Layout::uid_of("cpu.shares"), None);
    }
}
