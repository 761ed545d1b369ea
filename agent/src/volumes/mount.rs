//! What the runtime puts into a container's OCI spec for each volumeMount.

use std::path::PathBuf;

/// How mounts made later on either side propagate through a volume mount
/// (`volumeMounts[].mountPropagation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Propagation {
    /// `None`: no propagation either way (`rprivate`).
    #[default]
    Private,
    /// `HostToContainer`: host mounts appear in the container (`rslave`).
    HostToContainer,
    /// `Bidirectional`: both ways (`rshared`); privileged containers only.
    Bidirectional,
}

impl Propagation {
    /// The OCI mount option for this mode.
    pub fn oci_option(self) -> &'static str {
        match self {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        }
    }
}

/// One bind mount of a host path into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The pod volume it comes from.
    pub volume: String,
    /// What to bind: the volume, or its resolved subPath.
    pub host_path: PathBuf,
    /// Where it appears in the container (absolute).
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Mount propagation.
    pub propagation: Propagation,
}

impl Mount {
    /// Options for an OCI `bind` mount of this volume.
    pub fn oci_options(&self) -> Vec<String> {
        vec![
            "rbind".to_string(),
            self.propagation.oci_option().to_string(),
            if self.read_only { "ro" } else { "rw" }.to_string(),
        ]
    }
}
