//! Storage kinds: PersistentVolume, PersistentVolumeClaim, StorageClass.

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use super::format::{
    access_modes, age, age_column, annotation, canonical_quantity, col, is_deleting, list, name,
    name_column, opt_bool, opt_text, row, text, wide,
};

/// The pre-GA annotation that still overrides spec.storageClassName.
const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn phase_or_terminating(obj: &Value) -> &str {
    if is_deleting(obj) {
        return "Terminating";
    }
    // The API server defaults volume and claim phases to Pending.
    match text(obj, "/status/phase") {
        "" => "Pending",
        p => p,
    }
}

/// Storage quantity as Quantity.String() prints it; a missing one is zero.
fn storage_quantity(obj: &Value, pointer: &str) -> String {
    canonical_quantity(opt_text(obj, pointer).unwrap_or("0"))
}

fn volume_mode(obj: &Value) -> &str {
    // The API server defaults volumeMode to Filesystem.
    opt_text(obj, "/spec/volumeMode").unwrap_or("Filesystem")
}

// ---- PersistentVolume -------------------------------------------------------

pub(super) static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Capacity",
            "string",
            "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes",
        ),
        col(
            "Reclaim Policy",
            "string",
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming",
        ),
        col(
            "Status",
            "string",
            "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase",
        ),
        col(
            "Claim",
            "string",
            "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding",
        ),
        col("StorageClass", "string", "StorageClass of the pv"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        col(
            "Reason",
            "string",
            "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
        ),
        age_column(),
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.",
        ),
    ],
    cells: persistent_volume,
};

fn persistent_volume(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match obj.pointer("/spec/claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", text(c, "/namespace"), text(c, "/name")),
        None => String::new(),
    };
    // Manually created volumes default to Retain.
    let reclaim = match text(obj, "/spec/persistentVolumeReclaimPolicy") {
        "" => "Retain",
        r => r,
    };
    let class = annotation(obj, BETA_STORAGE_CLASS_ANNOTATION)
        .unwrap_or_else(|| text(obj, "/spec/storageClassName"));
    row![
        name(obj),
        storage_quantity(obj, "/spec/capacity/storage"),
        access_modes(list(obj, "/spec/accessModes")),
        reclaim,
        phase_or_terminating(obj),
        claim,
        class,
        opt_text(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>"),
        text(obj, "/status/reason"),
        age(obj, now),
        volume_mode(obj),
    ]
}

// ---- PersistentVolumeClaim --------------------------------------------------

pub(super) static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Status",
            "string",
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
        ),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        age_column(),
        wide(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
        ),
    ],
    cells: persistent_volume_claim,
};

fn persistent_volume_claim(obj: &Value, now: Timestamp) -> Vec<Value> {
    let volume = text(obj, "/spec/volumeName");
    // Capacity and access modes are those of the bound volume, blank until bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            storage_quantity(obj, "/status/capacity/storage"),
            access_modes(list(obj, "/status/accessModes")),
        )
    };
    let class = annotation(obj, BETA_STORAGE_CLASS_ANNOTATION)
        .or_else(|| opt_text(obj, "/spec/storageClassName"))
        .unwrap_or("");
    row![
        name(obj),
        phase_or_terminating(obj),
        volume,
        capacity,
        modes,
        class,
        opt_text(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>"),
        age(obj, now),
        volume_mode(obj),
    ]
}

// ---- StorageClass -----------------------------------------------------------

pub(super) static STORAGE_CLASS: Printer = Printer {
    columns: &[
        name_column(),
        col(
            "Provisioner",
            "string",
            "provisioner indicates the type of the provisioner.",
        ),
        col(
            "ReclaimPolicy",
            "string",
            "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
        ),
        col(
            "VolumeBindingMode",
            "string",
            "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.",
        ),
        col(
            "AllowVolumeExpansion",
            "string",
            "allowVolumeExpansion shows whether the storage class allow volume expand.",
        ),
        age_column(),
    ],
    cells: storage_class,
};

/// Whether a StorageClass carries the (GA or beta) default-class annotation.
pub(super) fn is_default_class(obj: &Value) -> bool {
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| annotation(obj, key) == Some("true"))
}

fn storage_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut display_name = name(obj).to_string();
    if is_default_class(obj) {
        display_name.push_str(" (default)");
    }
    row![
        display_name,
        text(obj, "/provisioner"),
        opt_text(obj, "/reclaimPolicy").unwrap_or("Delete"),
        opt_text(obj, "/volumeBindingMode").unwrap_or("Immediate"),
        opt_bool(obj, "/allowVolumeExpansion").unwrap_or(false),
        age(obj, now),
    ]
}
