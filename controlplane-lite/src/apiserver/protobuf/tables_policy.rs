//! Field tables for policy/v1 Eviction (what `kubectl drain` POSTs to `pods/eviction`),
//! from k8s.io/api policy/v1 generated.proto; PodDisruptionBudget is in `tables.rs`.

use super::schema::{Message, Shape, Ty, f};
use super::tables::{META_V1_DELETE_OPTIONS, META_V1_OBJECT_META};

pub static POLICY_V1_EVICTION: Message = Message {
    name: "k8s.io.api.policy.v1.Eviction",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(
            2,
            "deleteOptions",
            Ty::Message(&META_V1_DELETE_OPTIONS),
            Shape::Keep,
        ),
    ],
};
