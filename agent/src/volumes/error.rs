//! What can go wrong while preparing, resolving or removing pod volumes.
//!
//! Messages follow kubelet's wording where it has one, because they end up in
//! pod events that people compare against Kubernetes documentation and issues.

use std::io;
use std::path::PathBuf;

use super::sources::SourceError;

/// A volume could not be prepared, mounted into a container or removed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Setting up one of the pod's volumes failed; `source` says why.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    SetUp {
        /// The volume's name in the pod spec.
        volume: String,
        /// The underlying failure.
        #[source]
        source: Box<VolumeError>,
    },
    /// A referenced API object does not exist (and the reference is not optional).
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// `configmap`, `secret`, `persistentvolumeclaim`, `persistentvolume`.
        kind: &'static str,
        /// The object's name.
        name: String,
    },
    /// An `items` entry names a key the ConfigMap or Secret does not have.
    #[error("{kind} references non-existent {key_kind} key: {key}")]
    MissingKey {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// `config` or `secret`, as kubelet words it.
        key_kind: &'static str,
        /// The missing key.
        key: String,
    },
    /// The source of API objects failed (the API server is unreachable, forbidden...).
    #[error("couldn't get {kind} {namespace}/{name}: {source}")]
    Source {
        /// The kind of object that was asked for.
        kind: &'static str,
        /// Its namespace (empty for cluster-scoped objects).
        namespace: String,
        /// Its name.
        name: String,
        /// The source's own error.
        #[source]
        source: SourceError,
    },
    /// A hostPath `type` check failed.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        /// The host path.
        path: PathBuf,
        /// What it should have been: `directory`, `file`, `socket file`,
        /// `character device` or `block device`.
        expected: &'static str,
    },
    /// A hostPath `type` that Kubernetes does not define.
    #[error("{type_} is an invalid volume type")]
    InvalidHostPathType {
        /// The offending type.
        type_: String,
    },
    /// A hostPath (or PersistentVolume path) that is not absolute.
    #[error("hostPath path {path:?} must be an absolute path")]
    RelativeHostPath {
        /// The offending path.
        path: String,
    },
    /// A local PersistentVolume's path is missing or not a directory.
    #[error("local volume path {path} is not a directory: {reason}")]
    LocalVolumePath {
        /// The path from the PersistentVolume.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The claim is not bound to a volume yet.
    #[error(
        "PVC {namespace}/{claim} has non-bound phase ({phase:?}) or empty pvc.Spec.VolumeName ({volume_name:?})"
    )]
    ClaimNotBound {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        claim: String,
        /// The claim's phase (`Pending`, `Lost`, or empty).
        phase: String,
        /// The claim's `spec.volumeName` (may be empty).
        volume_name: String,
    },
    /// The claim is being deleted, so no new pod may use it.
    #[error("can't start pod because PVC {namespace}/{claim} is being deleted")]
    ClaimBeingDeleted {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        claim: String,
    },
    /// The claim of a generic ephemeral volume belongs to another pod.
    #[error("PVC {namespace}/{claim} was not created for pod {namespace}/{pod} (pod is not owner)")]
    ClaimNotOwned {
        /// The namespace of pod and claim.
        namespace: String,
        /// The claim's name.
        claim: String,
        /// The pod's name.
        pod: String,
    },
    /// The PersistentVolume is not bound to this claim.
    #[error(
        "found PV object {volume} but its pv.Spec.ClaimRef.UID ({found:?}) does not point to claim.UID ({expected:?})"
    )]
    VolumeNotBoundToClaim {
        /// The PersistentVolume's name.
        volume: String,
        /// The claim UID the volume points to (empty when it points nowhere).
        found: String,
        /// The claim's UID.
        expected: String,
    },
    /// A PersistentVolume of a kind this node cannot mount.
    #[error(
        "persistentvolume \"{volume}\": {kind} volumes are not supported by this node (only hostPath and local)"
    )]
    UnsupportedPersistentVolume {
        /// The PersistentVolume's name.
        volume: String,
        /// Its source kind (`nfs`, `csi`, `volumeMode Block`...).
        kind: String,
    },
    /// A pod volume (or projection) of a kind this node cannot provide.
    #[error("{kind} volumes are not supported by this node")]
    UnsupportedVolume {
        /// The volume kind (`nfs`, `csi`, `image`...).
        kind: String,
    },
    /// A `serviceAccountToken` projection, and the sources issue no tokens.
    #[error(
        "serviceAccountToken projection is not supported: this node's volume sources cannot issue tokens"
    )]
    TokenUnavailable,
    /// A downward API field path kubelet does not support.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    /// A downward API resource name kubelet does not support.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// A downward API item with neither `fieldRef` nor `resourceFieldRef`.
    #[error("downward API item {path:?} has neither fieldRef nor resourceFieldRef")]
    EmptyDownwardApiItem {
        /// The item's path.
        path: String,
    },
    /// A resource field reference names a container the pod does not have.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// A resource field reference in a volume without `containerName`.
    #[error("resourceFieldRef {resource}: containerName is required in a volume")]
    ContainerNameRequired {
        /// The referenced resource.
        resource: String,
    },
    /// A quantity (size limit, divisor) that does not parse or is unusable.
    #[error("invalid quantity {value:?} for {field}: {reason}")]
    Quantity {
        /// Which field held it.
        field: &'static str,
        /// The quantity as written.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
    /// An emptyDir medium that is not "" or "Memory".
    #[error("emptyDir medium {0:?} is not supported by this node")]
    UnsupportedMedium(String),
    /// A projected file path that kubelet's atomic writer refuses.
    #[error("invalid path: {reason}: {path}")]
    InvalidPayloadPath {
        /// The path as given in `items` or `path`.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file mode outside 0..=0777.
    #[error("invalid mode {mode:#o} for {path:?}: must be between 0 and 0777")]
    InvalidMode {
        /// The projected path.
        path: String,
        /// The offending mode.
        mode: i32,
    },
    /// A name that is used as a path component but could escape it.
    #[error("invalid {what} {value:?}: must be a single, non-empty path component")]
    InvalidName {
        /// `pod uid`, `volume name`, `container name`.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The pod has no `metadata.uid`, so it has no directory.
    #[error("pod {namespace}/{name} has no metadata.uid")]
    MissingUid {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
    },
    /// A volumeMount names a volume the pod does not have.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    VolumeNotFound {
        /// The volume name from the volumeMount.
        volume: String,
        /// The container's name.
        container: String,
    },
    /// An absolute subPath.
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    /// A subPath with a `..` component.
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// A subPath that leaves its volume once symlinks are resolved.
    #[error("subPath \"{sub_path}\" of volume \"{volume}\" escapes the volume")]
    SubPathEscapes {
        /// The volume's name.
        volume: String,
        /// The subPath (after `subPathExpr` expansion).
        sub_path: String,
    },
    /// `subPathExpr` references variables the container does not define.
    #[error("missing value for {0}")]
    SubPathExprMissing(String),
    /// A `mountPropagation` value Kubernetes does not define.
    #[error("invalid mount propagation mode {0:?}")]
    InvalidPropagation(String),
    /// Bidirectional propagation asked for by an unprivileged container.
    #[error(
        "Bidirectional mount propagation is available only to privileged containers (container \"{container}\")"
    )]
    BidirectionalUnprivileged {
        /// The container's name.
        container: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create directory`, `write`, `rename`...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A mount failed.
    #[error("mount {what} on {target}: {source}")]
    Mount {
        /// What was mounted (`tmpfs`, or the bind source).
        what: String,
        /// The mount point.
        target: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// An unmount failed.
    #[error("unmount {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Something is still mounted in the pod's volume directories, so they are
    /// kept rather than risk deleting what the mount exposes.
    #[error("{target} is still mounted; not removing the pod's volume directories")]
    StillMounted {
        /// The remaining mount point.
        target: PathBuf,
    },
    /// A blocking filesystem task died.
    #[error("volume task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Several volumes failed; each error is listed.
    #[error("{}", join(.0))]
    Many(Vec<VolumeError>),
}

fn join(errors: &[VolumeError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl VolumeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        VolumeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn set_up(volume: &str, source: VolumeError) -> Self {
        VolumeError::SetUp {
            volume: volume.to_string(),
            source: Box::new(source),
        }
    }

    /// One error as is, several as [`VolumeError::Many`], none as `Ok`.
    pub(crate) fn collect(mut errors: Vec<VolumeError>) -> Result<(), VolumeError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(VolumeError::Many(errors)),
        }
    }

    /// The innermost error: the cause without the per-volume wrapper.
    pub fn cause(&self) -> &VolumeError {
        match self {
            VolumeError::SetUp { source, .. } => source.cause(),
            other => other,
        }
    }
}
