//! Field tables for CertificateSigningRequest, certificates.k8s.io/v1 (what
//! `kubectl certificate approve|deny` sends to `/approval`). Field numbers from the
//! Kubernetes .proto files (as k8s-pb 0.9 renders them), shapes from the Go types of
//! k8s.io/api v0.33, as in [`super::tables`].
//!
//! `spec.extra` is `map<string, ExtraValue>` where ExtraValue is `[]string` in JSON; the
//! decoder has no shape for a message that is a bare list, so it reads as `{"items": […]}`.
//! The server sets `extra` itself on create and never changes it afterwards, so what a
//! client sends there is ignored anyway.

use super::schema::{Message, Shape, Ty, f};
use super::tables::META_V1_OBJECT_META;

pub static CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST: Message = Message {
    name: "k8s.io.api.certificates.v1.CertificateSigningRequest",
    fields: &[
        f(
            1,
            "metadata",
            Ty::Message(&META_V1_OBJECT_META),
            Shape::Keep,
        ),
        f(2, "spec", Ty::Message(&SPEC), Shape::Keep),
        f(3, "status", Ty::Message(&STATUS), Shape::Keep),
    ],
};

static SPEC: Message = Message {
    name: "k8s.io.api.certificates.v1.CertificateSigningRequestSpec",
    fields: &[
        f(1, "request", Ty::Bytes, Shape::Keep),
        f(2, "username", Ty::String, Shape::OmitZero),
        f(3, "uid", Ty::String, Shape::OmitZero),
        f(4, "groups", Ty::String, Shape::Repeated),
        f(5, "usages", Ty::String, Shape::Repeated),
        f(6, "extra", Ty::Message(&EXTRA_VALUE), Shape::Map),
        f(7, "signerName", Ty::String, Shape::Keep),
        f(8, "expirationSeconds", Ty::Int32, Shape::Keep),
    ],
};

static EXTRA_VALUE: Message = Message {
    name: "k8s.io.api.certificates.v1.ExtraValue",
    fields: &[f(1, "items", Ty::String, Shape::Repeated)],
};

static STATUS: Message = Message {
    name: "k8s.io.api.certificates.v1.CertificateSigningRequestStatus",
    fields: &[
        f(1, "conditions", Ty::Message(&CONDITION), Shape::Repeated),
        f(2, "certificate", Ty::Bytes, Shape::OmitZero),
    ],
};

static CONDITION: Message = Message {
    name: "k8s.io.api.certificates.v1.CertificateSigningRequestCondition",
    fields: &[
        f(1, "type", Ty::String, Shape::Keep),
        f(2, "reason", Ty::String, Shape::OmitZero),
        f(3, "message", Ty::String, Shape::OmitZero),
        f(4, "lastUpdateTime", Ty::Time, Shape::OmitZero),
        f(5, "lastTransitionTime", Ty::Time, Shape::OmitZero),
        f(6, "status", Ty::String, Shape::Keep),
    ],
};
